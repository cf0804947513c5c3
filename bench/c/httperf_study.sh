#!/usr/bin/env bash
# The HP Labs study ("Scalability of Linux Event-Dispatch Mechanisms") reproduced on loopback:
# examples-c/build/event_server with each backend under httperf at rising request rates, with
# 0, 251 and 6,000 idle connections held open, reporting reply rate, response time and server
# CPU. Bounded: each point runs DURATION seconds (default 2). Writes a Markdown table to stdout
# and to target/httperf_study.md.
#
#   bash bench/c/httperf_study.sh [RATES] [IDLE] [BACKENDS]
#   e.g. bash bench/c/httperf_study.sh "200 400 800" "0 251 6000" "select poll epoll rtsig"
#
# RATES are new connections per second, each making CALLS (default 5) keep-alive requests:
# one request per connection would exhaust loopback's ephemeral ports (TIME_WAIT) within a
# few runs and turn client failures into false server errors.
#
# Installs httperf (Debian package) if missing; not run by scripts/test.sh. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${1:-"200 400 800"}      # new connections per second, CALLS requests each
CALLS=${CALLS:-5}
IDLE=${2:-"0 251 6000"}
BACKENDS=${3:-"select poll epoll epoll-et rtsig rtsig-onefd"}
DURATION=${DURATION:-2}
PORT=${PORT:-18089}
. scripts/lib.sh
install_missing httperf:httperf
command -v httperf >/dev/null || { echo "httperf is missing: apt-get install -y httperf" >&2; exit 2; }
make -s -C examples-c >/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
OUT=target/httperf_study.md
mkdir -p target
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
head -c 6144 /dev/urandom > "$TMP/file"   # a 6 KiB file, as in the study

# Holds N idle connections open until killed.
idle_holder() {
    python3 - "$1" "$PORT" <<'PY'
import socket, sys, time, resource
n, port = int(sys.argv[1]), int(sys.argv[2])
s, h = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
conns = []
for i in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    conns.append(c)
print("idle", len(conns), flush=True)
time.sleep(3600)
PY
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

{
echo "| backend | idle | conn/s (x$CALLS req) | reply rate (replies/s) | response time (ms) | errors | server CPU (%) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT"
HZ=$(getconf CLK_TCK)
for b in $BACKENDS; do
  for idle in $IDLE; do
    # The previous server may still hold the port for a moment: retry until it listens.
    for _ in $(seq 20); do
      ./examples-c/build/event_server -b "$b" -p "$PORT" -f "$TMP/file" > "$TMP/server.out" 2>&1 &
      spid=$!
      for _ in $(seq 30); do grep -q listening "$TMP/server.out" && break; sleep 0.1; done
      grep -q listening "$TMP/server.out" && break
      kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; sleep 0.5
    done
    hpid=""
    if [ "$idle" -gt 0 ]; then
      idle_holder "$idle" > "$TMP/idle.out" 2>&1 &
      hpid=$!
      for _ in $(seq 100); do grep -q '^idle' "$TMP/idle.out" && break; sleep 0.1; done
    fi
    for rate in $RATES; do
      n=$((rate * DURATION))   # connections
      t0=$(cpu_ticks "$spid")
      # httperf uses select(): keep its own fds below FD_SETSIZE (it overflows fd_sets otherwise).
      res=$(ulimit -n 1024; timeout $((DURATION * 4 + 10)) httperf --hog --server 127.0.0.1 --port "$PORT" --uri / \
            --rate "$rate" --num-conns "$n" --num-calls "$CALLS" --timeout 5 2>&1 || true)
      t1=$(cpu_ticks "$spid")
      # httperf samples "Reply rate" every 5 s: too coarse for short runs; use the totals.
      reply=$(echo "$res" | awk '/^Total: connections/ {r = $7; d = $9} END {if (d > 0) printf "%.0f", r / d}')
      resp=$(echo "$res" | awk '/^Reply time/ {print $5}')
      errs=$(echo "$res" | awk '/^Errors: total/ {print $3}')
      cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v d="$DURATION" 'BEGIN {printf "%.0f", (b - a) * 100 / hz / d}')
      [ -n "$reply" ] || echo "httperf gave no totals ($b, $idle idle, $rate/s): $(echo "$res" | head -2 | tr '\n' ' ')" >&2
      echo "| $b | $idle | $rate | ${reply:-?} | ${resp:-?} | ${errs:-?} | $cpu |" | tee -a "$OUT"
    done
    if [ -n "$hpid" ]; then kill "$hpid" 2>/dev/null || true; wait "$hpid" 2>/dev/null || true; fi
    kill -INT "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
    sleep 0.5
  done
done
echo "table written to $OUT"
