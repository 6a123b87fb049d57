#!/usr/bin/env bash
# profile.sh — the cost model: per full handshake, resumed handshake, mutual-TLS handshake and
# kept-alive request, what tlsgate and nginx spend on the same load, in counts that do not depend
# on what else the machine is doing: user-space instructions by library (callgrind), system calls
# by name (strace), allocations and bytes (an LD_PRELOAD counter), and perf cycles where the
# machine has hardware counters. See docs/performance.md for the method and the figures.
#   bench/profile.sh [--n N] [--k K] [--idle-conns M] [--servers tlsgate,nginx] [--tools cg,native,perf]
#                    [--workers W] [--port-base P] [--out DIR] [--keep] [--preload LIB]
# --preload LIB runs tlsgate with LIB preloaded (another allocator: libjemalloc.so.2,
# libmimalloc.so.2); its allocation counts are then not taken.
# TLSGATE_BIN picks the binary (default build/tlsgate). About 3 minutes with the defaults.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# the shared harness beside the repository (../shared/bench), or beside a worktree's parent
shared=
for d in "$repo/../shared/bench" "$repo/../../shared/bench"; do
  [ -f "$d/conf/nginx.conf.tmpl" ] && { shared=$(cd "$d" && pwd); break; }
done
N=100 K=1000 IDLE_CONNS=500 SERVERS=tlsgate,nginx TOOLS=cg,native,perf WORKERS=1 PORT_BASE=28450 OUT= KEEP=0 PRELOAD=
while [ $# -gt 0 ]; do
  case $1 in
    --n) N=$2; shift 2 ;;
    --k) K=$2; shift 2 ;;
    --idle-conns) IDLE_CONNS=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --tools) TOOLS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --port-base) PORT_BASE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --preload) PRELOAD=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin=${TLSGATE_BIN:-$repo/build/tlsgate}
[ -x "$bin" ] || { echo "profile.sh: $bin not found (run make build)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
[ -n "$shared" ] || { echo "profile.sh: ../shared/bench (the shared harness) not found beside $repo" >&2; exit 1; }
missing=()
for pair in valgrind:valgrind strace:strace nginx:nginx gcc:gcc openssl:openssl perf:linux-perf; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then  # as the other bench scripts: Debian packages, services kept off
  [ "$(id -u)" -eq 0 ] || { echo "profile.sh: missing ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1; }
  echo "profile.sh: installing ${missing[*]}" >&2
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
WORK=$(mktemp -d /tmp/tlsgate-profile.XXXXXX)
chmod 755 "$WORK"
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
[ -n "$OUT" ] || OUT=$WORK
mkdir -p "$OUT"

# certificates as the shared bench makes them: ECDSA P-256 server, a client CA and client cert
d=$WORK/certs; mkdir -p "$d"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$d/server.key" -out "$d/server.crt" -days 7 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
openssl req -x509 "${ec[@]}" -keyout "$d/client-ca.key" -out "$d/client-ca.crt" -days 7 \
  -subj "/CN=bench client CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req "${ec[@]}" -keyout "$d/client.key" -out "$d/client.csr" -subj "/CN=bench-client" 2>/dev/null
openssl x509 -req -in "$d/client.csr" -CA "$d/client-ca.crt" -CAkey "$d/client-ca.key" \
  -CAcreateserial -days 7 -out "$d/client.crt" \
  -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n') 2>/dev/null
chmod 644 "$d"/*.crt "$d"/*.key  # nginx workers (nobody) read nothing here; the master does

# configs: the shared bench's templates, rendered as its run script does
BACKEND_PORT=$PORT_BASE PORT=$((PORT_BASE + 1))
SUITES=TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256
render() {  # render TEMPLATE OUT MODE DIR
  local small; small=$(printf 'x%.0s' $(seq 99))
  sed -e "s|@DIR@|$4|g" -e "s|@PORT@|$PORT|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
      -e "s|@WORKERS@|$WORKERS|g" -e "s|@BACKEND_WORKERS@|1|g" -e "s|@CERT@|$d/server.crt|g" \
      -e "s|@KEY@|$d/server.key|g" -e "s|@SUITES@|$SUITES|g" -e "s|@SMALL_BODY@|$small|g" \
      -e "s|@CLIENT_CA@|$d/client-ca.crt|g" "$shared/conf/$1" |
    awk -v mode="$3" '{
      if (match($0, /^[ \t]*@IF:[a-z0-9,]+@/)) {
        lead = $0; sub(/@IF:.*/, "", lead)
        tag = substr($0, length(lead) + 5, RLENGTH - length(lead) - 5)
        n = split(tag, ms, ","); keep = 0
        for (i = 1; i <= n; i++) if (ms[i] == mode) keep = 1
        if (!keep) next
        $0 = lead substr($0, RLENGTH + 1)
      }
      print }' > "$2"
}
mkdir -p "$WORK/origin/www" "$WORK/origin/backend-tmp"
render backend-nginx.conf.tmpl "$WORK/origin/backend.conf" plain "$WORK/origin"
for m in plain mtls; do
  mkdir -p "$WORK/nginx-$m/nginx-tmp"
  chmod 1777 "$WORK/nginx-$m" "$WORK/nginx-$m/nginx-tmp"
done
render nginx.conf.tmpl "$WORK/nginx-plain.conf" plain "$WORK/nginx-plain"
render nginx.conf.tmpl "$WORK/nginx-mtls.conf" mtls "$WORK/nginx-mtls"
# one nginx process serves (valgrind's gdbserver, which callgrind_control needs, does not reach
# forked workers); tlsgate gets --workers (1) worker threads
sed -i 's/^master_process on;/master_process off;/' "$WORK/nginx-plain.conf" "$WORK/nginx-mtls.conf"
sed "s|@SUITES@|TLS_AES_128_GCM_SHA256|" "$shared/conf/client-openssl.cnf.tmpl" > "$WORK/client.cnf"

gcc -O2 -shared -fPIC -o "$WORK/malloc_count.so" "$repo/bench/profile/malloc_count.c"
chmod 755 "$WORK/malloc_count.so"
printf '#!/bin/sh\nexec $PROFILE_PREFIX "$TLSGATE_REAL" "$@"\n' > "$WORK/wrap"
chmod 755 "$WORK/wrap"

ulimit -n 4096 2>/dev/null || true
start origin "$BACKEND_PORT" nginx -c "$WORK/origin/backend.conf" -p "$WORK/origin/"
for _ in $(seq 50); do port_busy "$BACKEND_PORT" && break; sleep 0.1; done
port_busy "$BACKEND_PORT" || fail "origin did not start (see $WORK/origin.log)"
port_busy "$PORT" && fail "port $PORT is in use; try --port-base"

log "machine: $(nproc) cores, $(openssl version); tlsgate $bin; N=$N K=$K workers=$WORKERS"
OPENSSL_CONF=$WORK/client.cnf TLSGATE_BIN=$WORK/wrap /usr/bin/python3 "$repo/bench/profile/profile.py" \
  --work "$WORK" --servers "$SERVERS" --tools "$TOOLS" --n "$N" --k "$K" --idle-conns "$IDLE_CONNS" --workers "$WORKERS" \
  --port "$PORT" --backend-port "$BACKEND_PORT" --tlsgate-bin "$bin" --candidate "$repo/bench/candidate.sh" \
  --nginx-conf-plain "$WORK/nginx-plain.conf" --nginx-conf-mtls "$WORK/nginx-mtls.conf" \
  --cert "$d/server.crt" --key "$d/server.key" --client-ca "$d/client-ca.crt" \
  --client-cert "$d/client.crt" --client-key "$d/client.key" --malloc-so "$WORK/malloc_count.so" \
  --out "$OUT" --preload "$PRELOAD" | tee "$OUT/profile.md"
