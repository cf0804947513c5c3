#!/usr/bin/env bash
# The main job: build everything, install the library and the shmio command into a prefix,
# run the producer demo with three consumers for a few seconds (with `shmio ls` and
# `shmio stat` while they run), show what each received, run the queue benchmark in its quick
# mode (every peer in the same run, with the targets checked), a queue bridged between two
# network-namespace "hosts" over Zenoh beside Zenoh's own rate and a TCP stream;
# then install the Python wheel into .venv and run the Python-level queue benchmark (--quick;
# the drivers are the package bench/python/shmio_bench, not part of the wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_missing make:make cc:gcc ip:iproute2 objcopy:binutils
python_env  # the workspace's Python extension crate needs python3 to build

step "building libshmio, the tools and the benchmarks (target/release) and the C demos (examples-c/build)"
release_build
make -C examples-c

q="shmio_demo_$$"
out=$(mktemp -d)
trap 'rm -rf "$out"; rm -f "/dev/shm/$q"' EXIT

step "installing the C library and the shmio command into a prefix (scripts/install.sh)"
bash scripts/install.sh "$out/prefix" --from target/release
shmio="$out/prefix/bin/shmio"

step "producer: 30 records of 'write Data : N' every 100 ms into a 10-slot queue '$q'"
./examples-c/build/producer -q "$q" -n 30 -i 100 -s 10 -u >"$out/producer.txt" &
producer=$!
for _ in $(seq 100); do [ -e "/dev/shm/$q" ] && break; sleep 0.02; done
pids=()
for i in 1 2 3; do
    case $i in
        1) args=(--from oldest) ;;
        2) args=(--from oldest -z) ;;
        3) args=(--from oldest -t 2) ;;
    esac
    ./examples-c/build/consumer -q "$q" "${args[@]}" >"$out/consumer$i.txt" 2>"$out/consumer$i.err" &
    pids+=($!)
    sleep 0.5
done
step "shmio ls and shmio stat $q while the producer and the consumers run"
"$shmio" ls
"$shmio" stat "$q"
wait "$producer"
status=0
for i in 1 2 3; do
    rc=0
    wait "${pids[$((i - 1))]}" || rc=$?
    n=$(wc -l <"$out/consumer$i.txt")
    desc=("copying recv" "zero-copy read in place" "2 processing threads via TQueue")
    printf 'consumer %d (%s, joined %d ms after the first): exit %d, %d records\n' \
        "$i" "${desc[$((i - 1))]}" $(((i - 1) * 500)) "$rc" "$n"
    sed -n '1p;$p' "$out/consumer$i.txt" | sed 's/^/    /'
    [ "$rc" -eq 0 ] || status=1
done

step "benchmark (--quick, under a minute): shmio vs iceoryx2, pipe, Unix socket, POSIX mq, the fcntl design, and the limits"
./target/release/shmio-bench --quick

step "bridge: two network-namespace hosts: a queue (64 B, 64 KiB records) and a replicated region (latency, 4 MiB passes), beside Zenoh raw and TCP"
./target/release/shmio-bridge-tool bench --count64 300000 --count64k 3000 --pings 500 --passes 8

step "region: the memory-sync note's test (4 MiB region vs malloc, 256 passes)"
./examples-c/build/memsync -n 256 -p "shmio_memsync_$$" | grep -E 'Sec\.|Sync/Priv'

step "dirty pages: the dirty-page note's writer, 2 MiB/s for 3 s"
./examples-c/build/dirty_writer -r 2 -d 3 -f "$out/test.dump" -u | grep '^t='

step "Python: the wheel into .venv, then python -m shmio_bench queue --quick (into bench-out/)"
install_wheel
# Optional: progress bars, the plot, and the peers compared (binary wheels only, to stay quick;
# one at a time, so that one that cannot be installed here does not keep out the others).
for pkg in tqdm matplotlib faster-fifo posix_ipc pyzmq iceoryx2; do
    .venv/bin/python -m pip install -q --disable-pip-version-check --only-binary=:all: "$pkg" ||
        echo "note: $pkg could not be installed; the benchmark skips it"
done
# The Python-level runs (shmio-bench --quick already ran above, with its targets; without
# --no-native this would run it again and put its rows in the same report).
PYTHONPATH=bench/python .venv/bin/python -m shmio_bench queue --quick --no-native --out bench-out
exit $status
