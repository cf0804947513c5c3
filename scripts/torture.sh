#!/usr/bin/env bash
# The kill suite at scale (not run in CI): N producer-kill cycles (default 10,000), with
# consumer kills (3 per 10 cycles) and the two rounds of issue 10 item 1 (1 per 5 cycles each:
# producer killed together with the consumer asleep first; producer's owner word scribbled),
# the hostile-peer rounds (1 per 5 cycles: a third process scribbles the live file),
# then the figures and the targets (exit 1 if one is missed). Arguments after N go to
# shmio-killsuite, e.g. `--seed S` to replay a run, `--max-stuck 1000000` to measure every round
# even where consumers get stuck. 10,000 cycles take about 5 minutes on 2 cores when no
# consumer gets stuck, plus about 2 minutes for the 2,000 hostile rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
n=${1:-10000}
[ "$#" -gt 0 ] && shift
case $n in
    '' | *[!0-9]*) echo "usage: scripts/torture.sh [N] [shmio-killsuite options]" >&2; exit 2 ;;
esac

step "building shmio-qtool and shmio-killsuite (release)"
cargo build -p shmio-tests --release --locked --bin shmio-qtool --bin shmio-killsuite

step "kill suite: $n producer-kill cycles, $((n * 3 / 10)) consumer kills, $((n / 5)) + $((n / 5)) + $((n / 5)) rounds"
exec ./target/release/shmio-killsuite --cycles "$n" --consumer-kills $((n * 3 / 10)) \
    --together $((n / 5)) --scribble $((n / 5)) --hostile $((n / 5)) --check "$@"
