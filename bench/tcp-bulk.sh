#!/usr/bin/env bash
# tcp-bulk.sh — bulk throughput of TLS-in / plain-out byte tunnels: tlsgate (a `mode: tcp`
# listener) against hitch and stunnel (Debian packages, configured as in the shared harness's
# conf/hitch.conf.tmpl and stunnel.conf.tmpl). A Python TLS client (TLS 1.3, AES-128-GCM,
# X25519) pulls SIZE bytes through each from the same plain source backend (the integration
# suite's bulk backend, tests/integration/testenv/pp2.py) and checks the count; the runs
# alternate between the proxies. Figures: MB/s (10^6 bytes per second of wall time) and MB per
# proxy CPU-second (utime+stime from /proc/PID/stat of every process in the proxy's session,
# children included): what one core of that proxy would move.
#
# Usage: bench/tcp-bulk.sh [--quick] [--reps N] [--size MiB] [--workers N]
#                          [--port-base P] [--out DIR] [--keep]
#   --quick       1 rep of 256 MiB (smoke test)     default: 3 reps of 1024 MiB
#   --workers N   tlsgate and hitch workers (2)     --port-base P  ports P..P+3 (28610)
#   --out DIR     keep results.tsv and summary.txt  --keep  keep the work directory
# TLSGATE_BIN overrides the binary (default <repo>/build/tlsgate). Installs hitch, stunnel4,
# openssl, python3 from Debian if missing (root; their services are not started). Loopback only.
# Exit status: 0 done; 1 a step failed (message on stderr); 2 bad usage.
set -Eeuo pipefail

REPS=3 SIZE_MIB=1024 WORKERS=2 PORT_BASE=28610 OUT= KEEP=0
usage() { sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) REPS=1 SIZE_MIB=256; shift ;;
    --reps) REPS=${2?}; shift 2 ;;
    --size) SIZE_MIB=${2?}; shift 2 ;;
    --workers) WORKERS=${2?}; shift 2 ;;
    --port-base) PORT_BASE=${2?}; shift 2 ;;
    --out) OUT=${2?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "tcp-bulk: unknown option $1" >&2; exit 2 ;;
  esac
done
for v in "$REPS" "$SIZE_MIB" "$WORKERS" "$PORT_BASE"; do
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] || { echo "tcp-bulk: numbers must be positive integers" >&2; exit 2; }
done
SIZE=$((SIZE_MIB * 1048576))

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TLSGATE_BIN:-$REPO/build/tlsgate}
PP2="$REPO/tests/integration/testenv/pp2.py"
PY=/usr/bin/python3
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------- packages
missing=()
command -v hitch >/dev/null 2>&1 || missing+=(hitch)
command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || missing+=(stunnel4)
for pair in openssl:openssl setsid:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ -x "$PY" ] || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "tcp-bulk: missing ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1; }
  echo "tcp-bulk: installing ${missing[*]}" >&2
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep the packages' services from starting
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
STUNNEL=$(command -v stunnel4 || command -v stunnel)
[ -x "$BIN" ] || { echo "tcp-bulk: $BIN not found (run make build, or set TLSGATE_BIN)" >&2; exit 1; }
[ -f "$PP2" ] || { echo "tcp-bulk: $PP2 (the bulk source backend) is missing" >&2; exit 1; }

# ---------------------------------------------------------------- processes
WORK=$(mktemp -d -t tg-tcp-bulk.XXXXXX)
# log, fail, start, stop and the exit trap (every process in its own session)
. "$REPO/bench/lib.sh"
sess_ticks() {  # utime+stime of every process in session $1 (clock ticks)
  local p st rest total=0
  for p in $(ps -e -o pid=,sid= | awk -v s="$1" '$2 == s { print $1 }'); do
    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    rest=${st##*) }
    # shellcheck disable=SC2086
    set -- $rest
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}
TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- certificates, client
SRC=$PORT_BASE
declare -A PORT=([tlsgate]=$((PORT_BASE + 1)) [hitch]=$((PORT_BASE + 2)) [stunnel]=$((PORT_BASE + 3)))
C="$WORK/certs"; mkdir -p "$C" "$WORK/state"
chmod 755 "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/ca.key" -out "$C/ca.crt" \
  -days 7 -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/server.key" -out "$C/server.csr" \
  -subj /CN=localhost 2>/dev/null
openssl x509 -req -in "$C/server.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial -days 7 \
  -out "$C/server.crt" -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') 2>/dev/null
cat "$C/server.crt" "$C/server.key" > "$C/server.pem"
chmod 600 "$C/server.key" "$C/server.pem"
SUITES=TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256
cat > "$WORK/client.cnf" <<EOF
openssl_conf = bench_init
[bench_init]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_tls
[bench_tls]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
Groups = X25519
EOF
cat > "$WORK/pull.py" <<'EOF'
"""pull.py PORT N CA: TLS to 127.0.0.1:PORT (SNI localhost), asks the bulk backend for N bytes
("SOURCE N"), reads to EOF; prints "bytes seconds version cipher"; exit 1 on a short read or
wrong data."""
import socket, ssl, sys, time
port, n, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60),
                    server_hostname="localhost")
t0 = time.monotonic()
s.sendall(b"SOURCE %d\n" % n)
buf = bytearray(1 << 20)
got, head = 0, b""
while True:
    k = s.recv_into(buf)
    if not k:
        break
    if len(head) < 512:
        head += bytes(buf[:512 - len(head)])
    got += k
dt = time.monotonic() - t0
print(got, "%.6f" % dt, s.version(), s.cipher()[0])
want = (bytes(range(256)) * 2)[:min(n, 512)]
sys.exit(0 if got == n and head[:len(want)] == want else 1)
EOF
pull() { OPENSSL_CONF="$WORK/client.cnf" timeout -k 2 300 "$PY" "$WORK/pull.py" "$1" "$2" "$C/ca.crt"; }

# ---------------------------------------------------------------- source and proxies
start source "$SRC" "$PY" "$PP2" bulk "$SRC"
js() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
cat > "$WORK/tlsgate.json" <<EOF
{
  "version": 1,
  "workers": $WORKERS,
  "state_dir": $(js "$WORK/state"),
  "log": {"level": "warn"},
  "keystores": {"bench": {"type": "pem", "cert": $(js "$C/server.crt"), "key": $(js "$C/server.key")}},
  "listeners": [
    {"name": "bulk", "address": "127.0.0.1:${PORT[tlsgate]}", "mode": "tcp", "backend": "source",
     "proxy_protocol_out": false, "tls": {"certificates": ["bench"]}}
  ],
  "backends": {"source": {"targets": ["127.0.0.1:$SRC"]}},
  "timeouts": {"idle": 600}
}
EOF
if ! "$BIN" check -c "$WORK/tlsgate.json" > "$WORK/tlsgate-check.txt" 2>&1; then
  cat "$WORK/tlsgate-check.txt" >&2
  fail "tlsgate ($BIN) refused the tcp-listener config above: this build lacks \"mode\": \"tcp\""
fi
RUN_AS=; [ "$(id -u)" -eq 0 ] && RUN_AS='user = "nobody"'   # hitch refuses to run as root
cat > "$WORK/hitch.conf" <<EOF
frontend = "[127.0.0.1]:${PORT[hitch]}"
backend = "[127.0.0.1]:$SRC"
pem-file = "$C/server.pem"
tls-protos = TLSv1.3
ciphersuites = "$SUITES"
ecdh-curve = "X25519"
workers = $WORKERS
daemon = off
backlog = 4096
syslog = off
log-filename = "$WORK/hitch-run.log"
log-level = 1
$RUN_AS
keepalive = 300
EOF
cat > "$WORK/stunnel.conf" <<EOF
foreground = yes
pid = $WORK/stunnel.pid
output = $WORK/stunnel-run.log
debug = 3
syslog = no
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1

[tls]
accept = 127.0.0.1:${PORT[stunnel]}
connect = 127.0.0.1:$SRC
cert = $C/server.crt
key = $C/server.key
sslVersionMin = TLSv1.3
ciphersuites = $SUITES
curves = X25519
TIMEOUTidle = 300
EOF
start tlsgate "${PORT[tlsgate]}" "$BIN" run -c "$WORK/tlsgate.json"
start hitch "${PORT[hitch]}" hitch --config="$WORK/hitch.conf"
start stunnel "${PORT[stunnel]}" "$STUNNEL" "$WORK/stunnel.conf"
PROXIES=(tlsgate hitch stunnel)
for n in "${PROXIES[@]}"; do  # ready = 100 kB pulled through it, intact
  ok=
  for i in $(seq 75); do
    kill -0 "${SID[$n]}" 2>/dev/null || { tail -n 20 "$WORK/$n.log" >&2; fail "$n exited during start"; }
    if line=$(pull "${PORT[$n]}" 100000 2>/dev/null); then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { tail -n 20 "$WORK/$n.log" >&2; fail "$n does not tunnel to the source (port ${PORT[$n]})"; }
  log "  $n on :${PORT[$n]}: $(cut -d' ' -f3- <<< "$line")"
done
log "hitch $(hitch --version 2>&1 | awk '{print $NF; exit}'), stunnel $("$STUNNEL" -version 2>&1 | awk '/^stunnel/ {print $2; exit}'), $(openssl version | cut -d' ' -f1-2); $(nproc) cores; workers $WORKERS (stunnel: a thread per connection)"
log "pulling $SIZE_MIB MiB through each, $REPS rep(s), order rotated"

# ---------------------------------------------------------------- runs
RES="$WORK/results.tsv"
printf 'proxy\trep\tbytes\tsecs\tMB_s\tproxy_cpu_s\tMB_per_cpu_s\n' > "$RES"
for n in "${PROXIES[@]}"; do pull "${PORT[$n]}" $((64 << 20)) > /dev/null || true; done  # warm-up
for rep in $(seq "$REPS"); do
  k=$(( (rep - 1) % 3 ))
  order=("${PROXIES[@]:$k}" "${PROXIES[@]:0:$k}")
  for n in "${order[@]}"; do
    c0=$(sess_ticks "${SID[$n]}")
    line=$(pull "${PORT[$n]}" "$SIZE") || fail "$n: short or wrong transfer ($line)"
    c1=$(sess_ticks "${SID[$n]}")
    kill -0 "${SID[$n]}" 2>/dev/null || fail "$n died (see $WORK/$n.log)"
    read -r bytes secs _ <<< "$line"
    awk -v n="$n" -v r="$rep" -v b="$bytes" -v s="$secs" -v ct=$((c1 - c0)) -v tck="$TCK" 'BEGIN {
        cpu = ct / tck; printf "%s\t%d\t%d\t%.3f\t%.1f\t%.2f\t%.1f\n", n, r, b, s, b / s / 1e6, cpu,
          (cpu > 0 ? b / 1e6 / cpu : 0) }' >> "$RES"
    tail -n 1 "$RES" | awk -F'\t' '{ printf "  %-8s rep %s: %8.1f MB/s  proxy %5.2f CPU-s  %8.1f MB/proxy-CPU-s\n", $1, $2, $5, $6, $7 }' >&2
  done
done

# ---------------------------------------------------------------- summary (medians over reps)
summary() {
  awk -F'\t' 'NR > 1 { n[$1]++; r[$1, n[$1]] = $5; c[$1, n[$1]] = $7; pc[$1, $2] = $7 }
    function med(a, k, m,   i, j, t, v) { for (i = 1; i <= m; i++) v[i] = a[k, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2 }
    function lo(a, k, m,   i, x) { x = a[k, 1]; for (i = 2; i <= m; i++) if (a[k, i] < x) x = a[k, i]; return x }
    function hi(a, k, m,   i, x) { x = a[k, 1]; for (i = 2; i <= m; i++) if (a[k, i] > x) x = a[k, i]; return x }
    END {
      printf "%-8s %26s %30s\n", "proxy", "MB/s [min-max]", "MB/proxy-CPU-s [min-max]"
      split("tlsgate hitch stunnel", X, " ")
      for (j = 1; j <= 3; j++) { k = X[j]; if (!(k in n)) continue
        printf "%-8s %8.0f [%6.0f-%6.0f] %12.0f [%6.0f-%6.0f]\n", k, med(r, k, n[k]), lo(r, k, n[k]), hi(r, k, n[k]),
          med(c, k, n[k]), lo(c, k, n[k]), hi(c, k, n[k]) }
      for (j = 2; j <= 3; j++) { m = 0
        for (i = 1; ("tlsgate", i) in pc; i++) if ((X[j], i) in pc && pc[X[j], i] > 0) { m++; q["q", m] = pc["tlsgate", i] / pc[X[j], i] }
        if (m) printf "tlsgate / %s, MB per proxy CPU-second: %.2fx (median of %d paired reps; higher is better)\n", X[j], med(q, "q", m), m }
    }' "$RES"
}
echo
summary | tee "$WORK/summary.txt"
if [ -n "$OUT" ]; then mkdir -p "$OUT"; cp "$RES" "$WORK/summary.txt" "$OUT/"; log "results in $OUT"; fi
