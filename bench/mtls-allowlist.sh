#!/usr/bin/env bash
# mtls-allowlist.sh — the cost of a large client-certificate allow list: tlsgate requiring a
# client certificate (tls.client_auth.mode require) with no allow list, and with a
# 100,000-entry allowed_subjects list that holds the client's subject last. Load: full TLS 1.3
# handshakes with a client certificate, one GET /small each (`openssl s_time -new`, 2 clients in
# parallel), origin: nginx (1 worker, plain HTTP). Figure: tlsgate's own CPU (utime+stime from
# /proc) per handshake, median of the reps, and the ratio list/none (the aim: under 1.02).
#
# Usage: bench/mtls-allowlist.sh [--quick] [--reps N] [--duration S] [--entries N]
#                                [--workers N] [--port-base P] [--out DIR] [--keep]
#   --quick        1 rep x 4 s                       default: 3 reps x 10 s, rotated order
#   --entries N    allow-list size (100000)          --workers N  tlsgate workers (2)
#   --port-base P  ports P..P+2 (28700)              --out DIR    keep results.tsv, summary.txt
#   --keep         keep the work directory
# TLSGATE_BIN overrides the binary (default <repo>/build/tlsgate). Loopback only.
# Exit status: 0 done; 1 a step failed (message on stderr); 2 bad usage.
set -Eeuo pipefail

REPS=3 DUR=10 ENTRIES=100000 WORKERS=2 PORT_BASE=28700 OUT= KEEP=0
usage() { sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) REPS=1 DUR=4; shift ;;
    --reps) REPS=${2?}; shift 2 ;;
    --duration) DUR=${2?}; shift 2 ;;
    --entries) ENTRIES=${2?}; shift 2 ;;
    --workers) WORKERS=${2?}; shift 2 ;;
    --port-base) PORT_BASE=${2?}; shift 2 ;;
    --out) OUT=${2?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "mtls-allowlist: unknown option $1" >&2; exit 2 ;;
  esac
done
for v in "$REPS" "$DUR" "$ENTRIES" "$WORKERS" "$PORT_BASE"; do
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] || { echo "mtls-allowlist: numbers must be positive integers" >&2; exit 2; }
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TLSGATE_BIN:-$REPO/build/tlsgate}
export PATH="$PATH:/usr/sbin:/sbin"
for t in nginx openssl curl python3 setsid; do
  command -v "$t" >/dev/null 2>&1 || { echo "mtls-allowlist: $t is missing" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "mtls-allowlist: $BIN not found (run make build, or set TLSGATE_BIN)" >&2; exit 1; }

WORK=$(mktemp -d -t tg-mtls-allowlist.XXXXXX)
# log, fail, start, stop and the exit trap (every process in its own session)
. "$REPO/bench/lib.sh"
wait_port() {
  local i
  for i in $(seq 100); do
    kill -0 "${SID[$1]}" 2>/dev/null || { tail -n 20 "$WORK/$1.log" >&2; fail "$1 exited during start"; }
    port_busy "$2" && return 0
    sleep 0.1
  done
  fail "$1 not listening on $2"
}
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

# ---------------------------------------------------------------- certificates, configs
ORIGIN=$PORT_BASE GW=$((PORT_BASE + 1))
C="$WORK/certs"; mkdir -p "$C" "$WORK/www" "$WORK/tmp-origin" "$WORK/state"
chmod 755 "$WORK" "$WORK/www"
mk() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" -out "$C/$1.csr" -subj "$2" 2>/dev/null; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/ca.key" -out "$C/ca.crt" \
  -days 7 -subj "/CN=bench client CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
mk server /CN=localhost
openssl x509 -req -in "$C/server.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial -days 7 \
  -out "$C/server.crt" -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') 2>/dev/null
mk client "/O=Bench Org/CN=client-$ENTRIES"
openssl x509 -req -in "$C/client.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial -days 7 \
  -out "$C/client.crt" -extfile <(printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n') 2>/dev/null
printf 'x%.0s' $(seq 99) > "$WORK/www/small"
cat > "$WORK/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/origin.pid;
error_log $WORK/origin-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/tmp-origin; proxy_temp_path $WORK/tmp-origin;
  fastcgi_temp_path $WORK/tmp-origin; uwsgi_temp_path $WORK/tmp-origin; scgi_temp_path $WORK/tmp-origin;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$ORIGIN; root $WORK/www; }
}
EOF
# config with allowed_subjects of N entries (N = 0: none); the client's subject is the last one
write_config() {
  python3 - "$1" "$WORK" "$C" "$GW" "$ORIGIN" "$WORKERS" "$ENTRIES" > "$WORK/$1.json" <<'PY'
import json, sys
kind, work, c, gw, origin, workers, entries = sys.argv[1:]
ca = {"mode": "require", "truststore": "clients", "forward": "none"}
if kind == "list":
    ca["allowed_subjects"] = ["CN=client-%d,O=Bench Org" % i for i in range(1, int(entries) + 1)]
print(json.dumps({
    "version": 1, "workers": int(workers), "state_dir": work + "/state", "log": {"level": "warn"},
    "keystores": {"bench": {"type": "pem", "cert": c + "/server.crt", "key": c + "/server.key"}},
    "truststores": {"clients": {"type": "pem", "file": c + "/ca.crt"}},
    "listeners": [{"name": "bench", "address": "127.0.0.1:" + gw,
                   "tls": {"certificates": ["bench"], "client_auth": ca},
                   "routes": [{"path_prefix": "/", "backend": "origin"}]}],
    "backends": {"origin": {"targets": ["127.0.0.1:" + origin]}},
    "timeouts": {"idle": 600}}))
PY
  "$BIN" check -c "$WORK/$1.json" > "$WORK/check-$1.log" 2>&1 || { cat "$WORK/check-$1.log" >&2; fail "tlsgate refuses the $1 config"; }
}
write_config none
write_config list

start origin "$ORIGIN" nginx -c "$WORK/origin.conf"
wait_port origin "$ORIGIN"

# One run on config $1: start tlsgate, load it for DUR s with 2 s_time clients; prints the
# handshakes completed and tlsgate's CPU ticks.
run_one() {
  local kind=$1 t0 t1 n=0 f k
  start gw "$GW" "$BIN" run -c "$WORK/$kind.json"
  wait_port gw "$GW"
  # the first handshakes fill caches; not measured
  curl -sk --cert "$C/client.crt" --key "$C/client.key" "https://127.0.0.1:$GW/small" -o /dev/null \
    || fail "warm-up request failed ($kind)"
  t0=$(sess_ticks "${SID[gw]}")
  local pids=()
  for f in 1 2; do
    timeout $((DUR + 20)) openssl s_time -connect "127.0.0.1:$GW" -new -time "$DUR" \
      -cert "$C/client.crt" -key "$C/client.key" -www /small > "$WORK/stime-$kind-$f.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  t1=$(sess_ticks "${SID[gw]}")
  for f in 1 2; do
    k=$(awk '/connections in [0-9.]+s;/ || /connections in [0-9.]+ real seconds/ { print $1; exit }' "$WORK/stime-$kind-$f.log")
    n=$((n + ${k:-0}))
  done
  stop gw
  [ "$n" -gt 0 ] || { cat "$WORK/stime-$kind-1.log" >&2; fail "no handshake completed ($kind)"; }
  echo "$n $((t1 - t0))"
}

printf 'rep\tconfig\thandshakes\tcpu_ticks\tcpu_us_per_handshake\n' > "$WORK/results.tsv"
for rep in $(seq "$REPS"); do
  order="none list"; [ $((rep % 2)) -eq 0 ] && order="list none"
  for kind in $order; do
    read -r n ticks < <(run_one "$kind")
    us=$(awk -v t="$ticks" -v n="$n" -v hz="$TCK" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    log "rep $rep $kind: $n handshakes, $us us CPU each"
    printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$kind" "$n" "$ticks" "$us" >> "$WORK/results.tsv"
  done
done
python3 - "$WORK/results.tsv" "$ENTRIES" > "$WORK/summary.txt" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
med = {k: statistics.median(float(r[4]) for r in rows if r[1] == k) for k in ("none", "list")}
hs = {k: statistics.median(int(r[2]) for r in rows if r[1] == k) for k in ("none", "list")}
print("full mTLS handshakes (TLS 1.3, client certificate, GET /small), tlsgate CPU per handshake")
print("%-28s %12s %14s" % ("config", "handshakes", "CPU us/hs"))
print("%-28s %12d %14.1f" % ("no allow list", hs["none"], med["none"]))
print("%-28s %12d %14.1f" % ("%s-entry allow list" % sys.argv[2], hs["list"], med["list"]))
print("ratio list/none: %.3f (medians; aim: under 1.02)" % (med["list"] / med["none"]))
PY
cat "$WORK/summary.txt"
if [ -n "$OUT" ]; then mkdir -p "$OUT"; cp "$WORK/results.tsv" "$WORK/summary.txt" "$OUT/"; fi
