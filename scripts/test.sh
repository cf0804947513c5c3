#!/usr/bin/env bash
# Runs every test of shmio: formatting, lints, the build (libshmio.so/.a, the header check,
# shmio.pc), the C demos with -Werror, unit, loom-model and multi-process tests, the
# benchmarks' own tests (bench/), the queue bridge between two network-namespace "hosts"
# (bridge/), the C layer under ASan/UBSan and valgrind
# (scripts/c_sanitize.sh), then the Python wheel: built and installed into .venv, its stubs
# checked by mypy.stubtest, pytest run on it and on the benchmark drivers (bench/python).
# Installs what it needs on a fresh Debian machine. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_missing make:make cc:gcc pkg-config:pkg-config ip:iproute2
python_env  # the workspace's Python extension crate needs python3 to build
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc, warnings denied (broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "release build: libshmio.so, libshmio.a, shmio.pc, tools"
# One build per crate that its own step then tests: `cargo test -p X` unifies features over X
# alone, so a `--workspace` build here (serde with std, syn with fold, ...) would leave it
# to compile Zenoh and iceoryx2 a second time.
release_build

step "C demos, -Wall -Wextra -Werror"
make -C examples-c

step "tests: unit, header freshness, C API, multi-process, C demos"
# Without bench/ and bridge/: they alone depend on iceoryx2 and Zenoh, which this step then
# never builds.
cargo test --workspace --exclude shmio-bench --exclude shmio-bridge --locked --no-fail-fast

step "benchmarks: shmio-bench end to end (its tests, on the release build above)"
cargo test -p shmio-bench --release --locked --no-fail-fast

step "bridge: queues across two network-namespace hosts over Zenoh (on the release build)"
# Root makes the namespaces; elsewhere each test says it skipped.
cargo test -p shmio-bridge --release --locked --no-fail-fast

# Its own steps: abi_smoke and the demo scenarios, sanitised and under valgrind.
bash scripts/c_sanitize.sh

step "loom model of the ring and region seqlock protocols (core/src/loom)"
RUSTFLAGS="--cfg loom" cargo test -p shmio --lib --release --locked --target-dir target/loom

step "Python: build and install the wheel into .venv"
install_wheel

step "Python: mypy.stubtest against the installed package"
(cd .venv && bin/python -m mypy.stubtest --allowlist ../python/stubtest-allowlist.txt shmio)

step "Python: pytest python/tests (against the installed wheel)"
.venv/bin/python -m pytest -q python/tests

step "Python: pytest bench/python/tests (the benchmark drivers, with the installed wheel)"
# pyzmq for its loss test (a binary wheel; if none installs here, that test says it skipped).
.venv/bin/python -m pip install -q --disable-pip-version-check --only-binary=:all: pyzmq ||
    echo "note: pyzmq could not be installed; its benchmark test skips"
.venv/bin/python -m pytest -q bench/python/tests

step "all tests passed"
