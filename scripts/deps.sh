#!/bin/sh
# Installs the Debian 12 packages tlsgate needs to build, test and benchmark, only those missing.
# nginx (the package with /usr/sbin/nginx and its ssl module) is a TLS backend for the
# integration tests, which run their own instances with private configs (so is haproxy, a PROXY
# protocol sender in front of the gateway; pebble, Let's Encrypt's test ACME server, with
# pebble-challtestsrv as its DNS; etcd-server, a 3-member cluster on loopback ports for the
# cluster tests, with etcd-client for operators); the system services
# are never started by this script (nginx's default site would take port 80).
set -eu
PKGS="build-essential cmake pkg-config libssl-dev libuv1-dev node-llhttp libnghttp2-dev
libjansson-dev libxml2-dev libseccomp-dev libcmocka-dev python3 python3-pytest python3-pytest-timeout
python3-websockets python3-h2 python3-hyperframe curl openssl sslscan nghttp2-client clang
clang-format libclang-rt-14-dev nginx openjdk-17-jre-headless haproxy python3-cryptography man-db
python3-prometheus-client chromium pebble etcd-server etcd-client strace"
# --fuzz: also what tests/fuzz/campaign.sh needs beyond `make fuzz` (llvm-profdata, llvm-cov).
[ "${1:-}" = "--fuzz" ] && PKGS="$PKGS llvm"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Keep package scripts from starting services (nginx's default site on port 80) while we
# install: policy-rc.d exit 101 = "action forbidden", honoured by invoke-rc.d and
# deb-systemd-invoke. Only a policy we put there ourselves is removed again.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    trap '$SUDO rm -f "$POLICY"' EXIT
    trap 'exit 130' INT TERM
    $SUDO sh -c "printf '#!/bin/sh\nexit 101\n' > $POLICY && chmod 755 $POLICY"
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
