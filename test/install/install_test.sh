#!/usr/bin/env bash
# install_test.sh BUILD_DIR: the install rules of criu/CMakeLists.txt, into
# temporary prefixes (removed at the end, pass or fail):
#   1. default: PREFIX/sbin/ckpt and nothing else; it runs (--version, -V)
#   2. CKPT_INSTALL_CRIU_LINK=ON: also PREFIX/sbin/criu -> ckpt, which
#      answers `criu --version` and `criu check` as CRIU would
#   3. a criu that is a real file is not replaced
set -euo pipefail
build=${1:?usage: install_test.sh BUILD_DIR}
tmp=$(mktemp -d /tmp/ckpt-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/plain" >"$tmp/plain.out"
[ -x "$tmp/plain/sbin/ckpt" ] || fail "no executable sbin/ckpt"
files=$(cd "$tmp/plain" && find . -not -type d | sort)
[ "$files" = "./sbin/ckpt" ] || fail "installed more than sbin/ckpt: $files"
"$tmp/plain/sbin/ckpt" --version | head -1 | grep -Eq '^Version: [0-9]+\.[0-9]+' ||
  fail "ckpt --version does not start with 'Version: X.Y'"
"$tmp/plain/sbin/ckpt" -V | grep -q '^ckpt ' || fail "ckpt -V does not say it is ckpt"

cmake -DCMAKE_INSTALL_PREFIX="$tmp/link" -DCKPT_INSTALL_CRIU_LINK=ON \
  -P "$build/cmake_install.cmake" >"$tmp/link.out"
[ -L "$tmp/link/sbin/criu" ] || fail "no sbin/criu symlink with CKPT_INSTALL_CRIU_LINK=ON"
[ "$(readlink "$tmp/link/sbin/criu")" = ckpt ] || fail "sbin/criu does not point at ckpt"
out=$("$tmp/link/sbin/criu" --version)
grep -q '^Version: ' <<<"$out" || fail "criu --version: $out"
grep -q '^GitID: ckpt-' <<<"$out" || fail "criu --version has no GitID line: $out"
if [ "$(id -u)" = 0 ]; then
  "$tmp/link/sbin/criu" check --no-default-config | tail -1 | grep -qx 'Looks good.' ||
    fail "criu check does not end with 'Looks good.'"
fi
# Installing again over the link is fine.
cmake -DCMAKE_INSTALL_PREFIX="$tmp/link" -DCKPT_INSTALL_CRIU_LINK=ON \
  -P "$build/cmake_install.cmake" >>"$tmp/link.out"

mkdir -p "$tmp/real/sbin"
echo '#!/bin/sh' >"$tmp/real/sbin/criu"
if cmake -DCMAKE_INSTALL_PREFIX="$tmp/real" -DCKPT_INSTALL_CRIU_LINK=ON \
  -P "$build/cmake_install.cmake" >"$tmp/real.out" 2>&1; then
  fail "a real sbin/criu was replaced"
fi
grep -q 'is not a symlink' "$tmp/real.out" || fail "no reason given: $(cat "$tmp/real.out")"
[ ! -L "$tmp/real/sbin/criu" ] || fail "the real criu became a link"
echo "install_test: PASS"
