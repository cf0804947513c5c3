#!/usr/bin/env bash
# The C layer under sanitisers, a step of scripts/test.sh (also runs alone):
#  1. capi/tests/c/abi_smoke.c and the C demos built with -fsanitize=address,undefined
#     (`make -C examples-c SAN=1`, into examples-c/build-san), linked to the release
#     libshmio.so (the ASan runtime comes with the executable; the library's allocations go
#     through it, so its leaks and bad frees are caught too). abi_smoke also linked to
#     libshmio.a. The demos run in the multi-process scenarios of tests/tests/c_demos.rs and
#     tests/tests/poll_c_demos.rs and zc_server.rs (SHMIO_C_DEMO_DIR points those tests at
#     them).
#  2. The same, plain builds, under valgrind --leak-check=full (valgrind and ASan do not mix),
#     through wrappers of the demos' names. Suppressions: scripts/valgrind.supp (every run),
#     scripts/valgrind-fork-child.supp (abi_smoke only); each entry says why.
# Any sanitiser report or valgrind error fails the step, even one from a process whose exit
# status no test looks at: ASan/LSan and valgrind write theirs to target/c-sanitize/; UBSan
# (gcc 12, with ASan) ignores log_path and writes to stderr, so the output of the sanitised
# runs is kept there (sanitised-runs.log) and searched too.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_missing make:make cc:gcc valgrind:valgrind

ROOT=$PWD
OUT=$ROOT/target/c-sanitize
LIB=$ROOT/target/release
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/asan" "$OUT/valgrind" "$OUT/valgrind-demos"

SANFLAGS=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
SMOKE_CFLAGS=(-Wall -Wextra -Werror -std=c11 -pedantic -g -O1 -I"$ROOT/include")
STATIC_LIBS=$(sed -n 's/^Libs.private://p' capi/shmio.pc.in)
DEMOS=(producer consumer queue_stat memsync dirty_writer event_server et_lt_pipe)

# ASan and LSan reports land in $OUT/asan/report.PID, not on stderr.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$OUT/asan/report"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
VALGRIND=(valgrind -q --error-exitcode=1 --leak-check=full --num-callers=40
          --suppressions="$ROOT/scripts/valgrind.supp")

# check_reports DIR WHAT: prints and fails on any report in DIR. valgrind writes errors as
# "==PID== ..." lines and its own notes as "--PID-- ..." lines; only errors count.
check_reports() {
    local dir=$1 what=$2 bad=0 f
    for f in "$dir"/*; do
        [ -s "$f" ] || continue
        if [ "$what" = valgrind ] && ! grep -q '^==[0-9]*==' "$f"; then
            continue
        fi
        printf '\n--- %s ---\n' "${f#"$ROOT"/}"
        cat "$f"
        bad=1
    done
    if ((bad)); then
        echo "c_sanitize: $what reported errors (above)" >&2
        return 1
    fi
}

# run_demo_tests DIR [TEST-ARGS]: the demo scenarios of the end-to-end tests, on the demos in
# DIR.
run_demo_tests() {
    local dir=$1
    shift
    SHMIO_C_DEMO_DIR=$dir cargo test -p shmio-tests --locked --no-fail-fast \
        --test c_demos --test poll_c_demos --test zc_server -- "$@"
}

# logged CMD...: runs CMD, its output also appended to $OUT/asan/output.log.
logged() {
    "$@" 2>&1 | tee -a "$OUT/asan/output.log"
}

step "C sanitisers: build libshmio, the demos (plain and SAN=1) and abi_smoke"
cargo build --release --locked -p shmio-capi
make -C examples-c
make -C examples-c SAN=1
gcc "${SMOKE_CFLAGS[@]}" "${SANFLAGS[@]}" capi/tests/c/abi_smoke.c -o "$OUT/bin/abi_smoke-san" \
    -L"$LIB" -lshmio -Wl,-rpath,"$LIB" -Wl,--disable-new-dtags
# shellcheck disable=SC2086 # STATIC_LIBS is a list of flags
gcc "${SMOKE_CFLAGS[@]}" "${SANFLAGS[@]}" capi/tests/c/abi_smoke.c \
    -o "$OUT/bin/abi_smoke-san-static" "$LIB/libshmio.a" $STATIC_LIBS
gcc "${SMOKE_CFLAGS[@]}" capi/tests/c/abi_smoke.c -o "$OUT/bin/abi_smoke" \
    -L"$LIB" -lshmio -Wl,-rpath,"$LIB" -Wl,--disable-new-dtags

step "C sanitisers: ASan+UBSan, abi_smoke (shared and static) and the demo scenarios"
status=0
logged "$OUT/bin/abi_smoke-san" || status=1
logged "$OUT/bin/abi_smoke-san-static" || status=1
logged run_demo_tests "$ROOT/examples-c/build-san" || status=1
mv "$OUT/asan/output.log" "$OUT/sanitised-runs.log"
check_reports "$OUT/asan" ASan/LSan || status=1
if grep -E 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer)' "$OUT/sanitised-runs.log"; then
    echo "c_sanitize: sanitiser reports in the output (above)" >&2
    status=1
fi
((status == 0))

step "C sanitisers: valgrind, abi_smoke and the demo scenarios"
for d in "${DEMOS[@]}"; do
    printf '#!/usr/bin/env bash\nexec %s--log-file=%q %q "$@"\n' "$(printf '%q ' "${VALGRIND[@]}")" \
        "$OUT/valgrind/$d.%p.log" "$ROOT/examples-c/build/$d" >"$OUT/valgrind-demos/$d"
    chmod +x "$OUT/valgrind-demos/$d"
done
"${VALGRIND[@]}" --suppressions="$ROOT/scripts/valgrind-fork-child.supp" \
    --log-file="$OUT/valgrind/abi_smoke.%p.log" "$OUT/bin/abi_smoke" || status=1
# One test at a time: a few tests bound how long a demo may take to react (a consumer noticing
# its producer's death within a second), and valgrind makes every demo much slower.
run_demo_tests "$OUT/valgrind-demos" --test-threads=1 || status=1
check_reports "$OUT/valgrind" valgrind || status=1
# Not errors: valgrind does not know some newer system calls and answers ENOSYS, which
# shmio handles (futex_waitv 449: sleeps in 10 ms slices on one word instead; cachestat 451:
# dirty_writer prints "file dirty n/a").
cat "$OUT"/valgrind/*.log | sed -n 's/^--[0-9]*-- WARNING: \(unhandled .*\)/\1/p' | sort | uniq -c
((status == 0))
