#!/usr/bin/env bash
# Installs the Debian packages ckpt builds and tests with. Idempotent: does
# nothing when everything is already there.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  protobuf-compiler libprotobuf-dev
  libnl-3-dev libnl-route-3-dev
  libbpf-dev libnftnl-dev libmnl-dev
  libzstd-dev zstd
  libgtest-dev
  binutils
  python3 python3-protobuf iproute2 nftables util-linux libcap2-bin
  busybox-static runc redis-server python3-numpy openjdk-17-jdk-headless podman
  openmpi-bin libopenmpi-dev mpich libmpich-dev
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
