# Sourced by main.sh and test.sh: shared helpers.
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

# install_missing CMD:PACKAGE ...: installs the Debian package of each missing command.
install_missing() {
    local need=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
    done
    if ((${#need[@]})); then
        step "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

# python_env: makes sure python3 (with its shared library, which a plain `cargo build` of the
# extension crate links) is there, and a virtual environment at .venv with the build and test
# tools (numpy: the tests check that numpy.frombuffer over a region is zero copy; iceoryx2:
# the tests run the Python benchmark's iceoryx2 peer). Reuses .venv when present.
python_env() {
    install_missing python3:python3 python3-config:python3-dev
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check \
        "maturin>=1.9.4,<2" "pytest>=9,<10" "mypy>=1.10,<2" "numpy>=2,<3" \
        "iceoryx2==0.10.*"
}

# install_wheel: builds the shmio wheel (maturin, the build backend named in
# python/pyproject.toml) and installs it into .venv.
install_wheel() {
    .venv/bin/python -m pip install -q --disable-pip-version-check ./python
}

# release_build: target/release for everything: the default members (libshmio.so/.a, the
# header check, shmio.pc, the tools, the shmio command), then the benchmark crate and the bridge, each on its
# own (`-p`), as their test steps build them, so neither compiles iceoryx2 or Zenoh twice.
release_build() {
    cargo build --release --locked
    cargo build -p shmio-bench --release --locked
    cargo build -p shmio-bridge --release --locked
}
