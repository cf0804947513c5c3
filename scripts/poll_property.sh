#!/usr/bin/env bash
# The poller property test (core/tests/poll_property.rs) on a longer run: N cases per backend
# (default 20000) from a seed, random unless SHMIO_POLL_PROP_SEED is set. The seed is printed
# first; a failure prints the seed of its case and how to replay it.
#
#   bash scripts/poll_property.sh 50000
#   SHMIO_POLL_PROP_SEED=0x1234 bash scripts/poll_property.sh 1
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-20000}"
seed="${SHMIO_POLL_PROP_SEED:-$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n' | sed 's/^/0x/')}"
echo "poll property test: $cases cases per backend, SHMIO_POLL_PROP_SEED=$seed"
SHMIO_POLL_PROP_SEED="$seed" SHMIO_POLL_PROP_CASES="$cases" \
    cargo test -p shmio --locked --test poll_property -- --nocapture
