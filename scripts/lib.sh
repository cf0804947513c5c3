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
