#!/bin/sh
# Installs the Debian 12 packages tlsgate needs to build, test and benchmark, only those missing.
set -eu
PKGS="build-essential cmake pkg-config libssl-dev libuv1-dev node-llhttp libnghttp2-dev
libjansson-dev libcmocka-dev python3 python3-pytest python3-websockets curl openssl sslscan
nghttp2-client clang clang-format libclang-rt-14-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
