#!/usr/bin/env bash
# The zero-copy note's experiment (issue 14) on loopback: examples-c/build/event_server with
# WORKERS pre-forked workers (default 2) sending one file with each -m method (read+write copies,
# sendfile, splice from the shared cache, MSG_ZEROCOPY) to bench/c/zc_client (a separate
# process): one 64 MiB file to 10 concurrent clients, and 4 KiB and 1 MiB files to 100 and
# 1,000 concurrent clients. Reports throughput, the workers' CPU time (user and system, from
# getrusage of the children, printed by the server at exit) per GB sent, and memory (peak sum
# of Rss and Pss of the server's processes, sampled every 0.1 s from /proc/PID/smaps_rollup),
# with ratios against read+write. Writes a Markdown table to stdout and target/zc_study.md,
# the samples to target/zc_study.csv, and target/zc_study.png when matplotlib is importable.
#
#   bash bench/c/zc_study.sh            # SCALE=1: 0.2-3.4 GB per case and method, about a minute
#   SCALE=0.25 bash bench/c/zc_study.sh # a quarter of the requests (at least 1 per client)
#
# Bounded: every client run gives up after TIMEOUT seconds (default 60). Not run by
# scripts/test.sh. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCALE=${SCALE:-1}
WORKERS=${WORKERS:-2}
TIMEOUT=${TIMEOUT:-60}
METHODS=${METHODS:-"read sendfile splice zerocopy"}
make -s -C examples-c >/dev/null
mkdir -p target
CLIENT=target/zc_client
cc -std=c11 -O2 -Wall -Wextra -Werror -o "$CLIENT" bench/c/zc_client.c
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TMP=$(mktemp -d)
CACHE="shmio-zc-study-$$"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"; rm -f "/dev/shm/$CACHE"' EXIT
head -c $((64 << 20)) /dev/urandom > "$TMP/64MiB"
head -c $((1 << 20)) /dev/urandom > "$TMP/1MiB"
head -c 4096 /dev/urandom > "$TMP/4KiB"
OUT=target/zc_study.md
CSV=target/zc_study.csv
# case: file clients requests-per-client (SCALE applies to the requests)
CASES=("64MiB 10 5" "4KiB 100 500" "4KiB 1000 50" "1MiB 100 20" "1MiB 1000 2")

# Peak sum of Rss and Pss (KiB) over the given pids, every 0.1 s, until $TMP/stop-sampler exists.
sampler() {
    local peak_rss=0 peak_pss=0
    while [ ! -e "$TMP/stop-sampler" ]; do
        read -r rss pss < <(cat $(printf '/proc/%s/smaps_rollup ' "$@") 2>/dev/null |
            awk '/^Rss:/ {r += $2} /^Pss:/ {p += $2} END {print r + 0, p + 0}')
        [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
        [ "$pss" -gt "$peak_pss" ] && peak_pss=$pss
        sleep 0.1
    done
    echo "$peak_rss $peak_pss" > "$TMP/peak"
}

echo "case,method,clients,requests,bytes,seconds,errors,user_s,sys_s,rss_kib,pss_kib,zc_copied" > "$CSV"
for c in "${CASES[@]}"; do
  read -r file clients reqs <<<"$c"
  reqs=$(awk -v r="$reqs" -v s="$SCALE" 'BEGIN {n = int(r * s); print n < 1 ? 1 : n}')
  for m in $METHODS; do
    rm -f "/dev/shm/$CACHE" "$TMP/stop-sampler" "$TMP/peak" "$TMP/srv"
    examples-c/build/event_server -p 0 -m "$m" -f "$TMP/$file" -c "$CACHE" -w "$WORKERS" \
        -n $((clients + 64)) > "$TMP/srv" 2>&1 &
    srv=$!
    for _ in $(seq 100); do grep -qs '^workers ' "$TMP/srv" && break; sleep 0.05; done
    port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/srv")
    pids="$srv $(sed -n 's/^workers //p' "$TMP/srv")"
    sampler $pids &
    smp=$!
    res=$("$CLIENT" "$port" "$clients" "$reqs" "$TIMEOUT")
    touch "$TMP/stop-sampler"
    wait "$smp"
    kill -INT "$srv"
    wait "$srv" || true
    read -r _ _ _ nreq _ bytes _ secs _ errs <<<"$res"
    read -r user sys < <(sed -n 's/^cpu: user \([0-9.]*\) s, sys \([0-9.]*\) s/\1 \2/p' "$TMP/srv")
    copied=$(sed -n 's/.*the kernel copied \([0-9]*\),.*/\1/p' "$TMP/srv")
    read -r rss pss < "$TMP/peak"
    echo "$file,$m,$clients,$nreq,$bytes,$secs,$errs,$user,$sys,$rss,$pss,$copied" >> "$CSV"
    echo "  $file x$clients $m: $res; cpu $user+$sys s; rss $rss KiB pss $pss KiB" >&2
  done
done

PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" - "$CSV" "$OUT" "$WORKERS" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
out, workers = sys.argv[2], sys.argv[3]
base = {}
for r in rows:
    b = int(r["bytes"]) or 1
    r["mbs"] = b / 1e6 / float(r["seconds"])
    r["cpu_gb"] = (float(r["user_s"]) + float(r["sys_s"])) / (b / 1e9)
    r["user_gb"] = float(r["user_s"]) / (b / 1e9)
    r["sys_gb"] = float(r["sys_s"]) / (b / 1e9)
    r["key"] = f'{r["case"]} to {r["clients"]}'
    if r["method"] == "read":
        base[r["key"]] = r
def ratio(r, k):
    b = base.get(r["key"])
    return f'{r[k] / b[k]:.2f}' if b and b[k] else "-"
lines = [
    f"| file to clients | method | MB/s | x read | CPU s/GB (user + sys) | x read | user s/GB "
    f"| sys s/GB | Rss MiB | Pss MiB | x read (Pss) | requests | errors | zc copied |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for r in rows:
    r["pss"] = int(r["pss_kib"]) / 1024
    lines.append(
        f'| {r["key"]} | {r["method"]} | {r["mbs"]:.0f} | {ratio(r, "mbs")} | {r["cpu_gb"]:.2f} '
        f'| {ratio(r, "cpu_gb")} | {r["user_gb"]:.2f} | {r["sys_gb"]:.2f} '
        f'| {int(r["rss_kib"]) / 1024:.0f} | {r["pss"]:.0f} | {ratio(r, "pss")} '
        f'| {r["requests"]} | {r["errors"]} | {r["zc_copied"]} |')
text = "\n".join(lines) + f"\n\n({workers} workers; Rss/Pss: peak sums over the server's processes.)\n"
open(out, "w").write(text)
print(text)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: no plot (pip install matplotlib into .venv)", file=sys.stderr)
    sys.exit(0)
keys = list(dict.fromkeys(r["key"] for r in rows))
methods = list(dict.fromkeys(r["method"] for r in rows))
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
for ax, (k, label) in zip(axes, [("mbs", "MB/s"), ("cpu_gb", "CPU s per GB"), ("pss", "Pss MiB")]):
    w = 0.8 / len(methods)
    for i, m in enumerate(methods):
        v = [next((r[k] for r in rows if r["key"] == key and r["method"] == m), 0) for key in keys]
        ax.bar([x + i * w for x in range(len(keys))], v, w, label=m)
    ax.set_xticks([x + 0.4 - w / 2 for x in range(len(keys))], keys, rotation=20, fontsize=8)
    ax.set_title(label)
axes[0].legend()
fig.tight_layout()
fig.savefig(out.replace(".md", ".png"))
print("plot:", out.replace(".md", ".png"), file=sys.stderr)
PY
