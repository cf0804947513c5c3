#!/usr/bin/env bash
# Installs the C library into PREFIX:
#   PREFIX/lib/libshmio.so.VERSION   stripped, SONAME libshmio.so.MAJOR, with a .gnu_debuglink
#   PREFIX/lib/libshmio.so.MAJOR     -> libshmio.so.VERSION   (what programs load)
#   PREFIX/lib/libshmio.so           -> libshmio.so.MAJOR     (what the linker finds)
#   PREFIX/lib/debug/libshmio.so.VERSION.debug   the debug info split off
#   PREFIX/lib/libshmio.a            the static library (debug info stripped)
#   PREFIX/include/shmio.h
#   PREFIX/lib/pkgconfig/shmio.pc    `pkg-config --cflags --libs shmio`, and `--static`
#   PREFIX/bin/shmio                 the shmio command (debug info stripped)
#
#   bash scripts/install.sh PREFIX [--from DIR]
#
# DIR: where libshmio.so, libshmio.a and the shmio command were built (default: target/release,
# built here first). Needs binutils (objcopy, strip). tests (capi/tests/c_abi.rs) install into a temporary
# prefix and build C programs against that copy alone.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:?usage: scripts/install.sh PREFIX [--from DIR]}
from=""
if [ "${2:-}" = "--from" ]; then
    from=${3:?--from needs a directory}
fi
if [ -z "$from" ]; then
    cargo build --release --locked -p shmio-capi -p shmio-cli
    from=target/release
fi
if [ ! -x "$from/shmio" ]; then
    echo "install.sh: no $from/shmio: build it first (cargo build -p shmio-cli)" >&2
    exit 1
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
major=${version%%.*}
lib=$prefix/lib
real=libshmio.so.$version
mkdir -p "$lib/pkgconfig" "$lib/debug" "$prefix/include" "$prefix/bin"

install -m 0755 "$from/libshmio.so" "$lib/$real"
objcopy --only-keep-debug "$lib/$real" "$lib/debug/$real.debug"
strip --strip-debug --strip-unneeded "$lib/$real"
(cd "$lib" && objcopy --add-gnu-debuglink="debug/$real.debug" "$real")
ln -sfn "$real" "$lib/libshmio.so.$major"
ln -sfn "libshmio.so.$major" "$lib/libshmio.so"

install -m 0644 "$from/libshmio.a" "$lib/libshmio.a"
strip --strip-debug "$lib/libshmio.a"
install -m 0644 include/shmio.h "$prefix/include/shmio.h"
install -m 0755 "$from/shmio" "$prefix/bin/shmio"
strip --strip-debug "$prefix/bin/shmio"
sed -e "s|@PREFIX@|$prefix|" -e 's|@LIBDIR@|${prefix}/lib|' -e 's|@INCLUDEDIR@|${prefix}/include|' \
    -e "s|@VERSION@|$version|" -e 's|@RPATH@||' capi/shmio.pc.in | grep -v '^#' \
    > "$lib/pkgconfig/shmio.pc"
echo "installed shmio $version (SONAME libshmio.so.$major) into $prefix"
