#!/usr/bin/env bash
# Long fuzzing run: scripts/fuzz.sh [CASES] [SEED]  (default 100 000 000 cases, a fresh seed).
# Builds shmio-fuzz optimised with overflow checks and debug assertions (profile `fuzz`), runs
# CASES mutated queue and region files, and prints the seed first: any failure prints
# `replay: shmio-fuzz --seed S --case N`, which reruns that one case printing every step
# (target/fuzz/shmio-fuzz). Extra options go through SHMIO_FUZZ_ARGS (e.g. "--jobs 8").
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
cases=${1:-100000000}
seed=${2:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}
step "build shmio-fuzz (profile fuzz)"
cargo build --locked --profile fuzz -p shmio-tests --bin shmio-fuzz
step "fuzz: $cases cases, seed $seed"
# shellcheck disable=SC2086
exec target/fuzz/shmio-fuzz --cases "$cases" --seed "$seed" ${SHMIO_FUZZ_ARGS:-}
