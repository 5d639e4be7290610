#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test
# (unit tests and zdtm round trips) through CTest. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: the round-trip tests need root (ptrace, clone3 with pids)" >&2
  exit 1
fi
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
"$BUILD_DIR"/ckpt check
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 "$@"
