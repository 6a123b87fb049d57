#!/usr/bin/env bash
# backend-tls.sh — proxy CPU with a TLS backend: tlsgate (backend `tls`, keep-alive pool, session
# resumption) against nginx as the front (`proxy_pass https://` + `proxy_ssl_session_reuse on` +
# upstream `keepalive`, as nginx's docs advise), both in front of the same HTTPS origin (nginx,
# 1 worker, TLS 1.3, keep-alive, shared session cache and tickets). Load: `wrk -t1 -c64 -d10`
# GET /small (99 bytes) and GET /1m (1 MiB); clients speak TLS 1.3, AES-128-GCM, X25519.
# Figures: requests/s, and the proxy's own CPU (utime+stime from /proc/PID/stat of every process
# in its session, children included; not the origin's, not wrk's) per request (µs) and per MiB
# of response body (µs), side by side; `origin conns` = connections the origin accepted during
# the run (a working keep-alive pool keeps it near the pool size, not the request count).
#
# Usage: bench/backend-tls.sh [--quick] [--reps N] [--duration S] [--workers N]
#                             [--port-base P] [--out DIR] [--keep]
#   --quick        1 rep x 3 s (smoke test)        default: 3 reps x 10 s, rotated order
#   --workers N    workers of each proxy (2)       --port-base P  ports P..P+3 (28600)
#   --out DIR      keep results.tsv and summary.txt   --keep  keep the work directory
# TLSGATE_BIN overrides the binary (default <repo>/build/tlsgate). Installs nginx, wrk, openssl,
# curl from Debian if missing (root; the packages' services are not started). Loopback only.
# Exit status: 0 done; 1 a step failed (message on stderr); 2 bad usage.
set -Eeuo pipefail

REPS=3 DUR=10 WORKERS=2 PORT_BASE=28600 CONNS=64 WARMUP=2 OUT= KEEP=0
usage() { sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) REPS=1 DUR=3 WARMUP=1; shift ;;
    --reps) REPS=${2?}; shift 2 ;;
    --duration) DUR=${2?}; shift 2 ;;
    --workers) WORKERS=${2?}; shift 2 ;;
    --port-base) PORT_BASE=${2?}; shift 2 ;;
    --out) OUT=${2?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "backend-tls: unknown option $1" >&2; exit 2 ;;
  esac
done
for v in "$REPS" "$DUR" "$WORKERS" "$PORT_BASE"; do
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] || { echo "backend-tls: numbers must be positive integers" >&2; exit 2; }
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TLSGATE_BIN:-$REPO/build/tlsgate}
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------- packages
missing=()
for pair in nginx:nginx wrk:wrk openssl:openssl curl:curl setsid:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "backend-tls: missing ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1; }
  echo "backend-tls: installing ${missing[*]}" >&2
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep nginx's default site (port 80) from starting
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
[ -x "$BIN" ] || { echo "backend-tls: $BIN not found (run make build, or set TLSGATE_BIN)" >&2; exit 1; }

# ---------------------------------------------------------------- processes
WORK=$(mktemp -d -t tg-backend-tls.XXXXXX)
# log, fail, start, stop and the exit trap (every process in its own session)
. "$REPO/bench/lib.sh"
wait_url() {  # wait_url NAME URL : until GET gives 200 (15 s)
  local i code
  for i in $(seq 75); do
    kill -0 "${SID[$1]}" 2>/dev/null || { tail -n 20 "$WORK/$1.log" >&2; fail "$1 exited during start"; }
    code=$(curl -sk --max-time 2 -o /dev/null -w '%{http_code}' "$2" 2>/dev/null) || true
    [ "$code" = 200 ] && return 0
    sleep 0.2
  done
  tail -n 20 "$WORK/$1.log" >&2
  fail "$1 not ready at $2"
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

# ---------------------------------------------------------------- certificates, files
ORIGIN=$PORT_BASE STATUS=$((PORT_BASE + 1))
declare -A PORT=([tlsgate]=$((PORT_BASE + 2)) [nginx]=$((PORT_BASE + 3)))
C="$WORK/certs"; mkdir -p "$C" "$WORK/www" "$WORK/tmp-origin" "$WORK/tmp-nginx" "$WORK/state"
chmod 755 "$WORK" "$WORK/www"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/ca.key" -out "$C/ca.crt" \
  -days 7 -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/server.key" -out "$C/server.csr" \
  -subj /CN=localhost 2>/dev/null
openssl x509 -req -in "$C/server.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial -days 7 \
  -out "$C/server.crt" -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') 2>/dev/null
chmod 644 "$C/ca.crt" "$C/server.crt"
head -c 1048576 /dev/urandom > "$WORK/www/1m"
SMALL=$(printf 'x%.0s' $(seq 99))
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
cat > "$WORK/result.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT requests=%d bytes=%d duration_us=%d errors=%d p99_us=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(99)))
end
EOF

# ---------------------------------------------------------------- the origin (HTTPS)
cat > "$WORK/origin.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $WORK/origin.pid;
error_log $WORK/origin-error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $WORK/tmp-origin/body;
    proxy_temp_path $WORK/tmp-origin/proxy;
    fastcgi_temp_path $WORK/tmp-origin/fastcgi;
    uwsgi_temp_path $WORK/tmp-origin/uwsgi;
    scgi_temp_path $WORK/tmp-origin/scgi;
    default_type application/octet-stream;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:origin:10m;
    ssl_session_timeout 1h;
    ssl_session_tickets on;
    server {
        listen 127.0.0.1:$ORIGIN ssl backlog=4096;
        ssl_certificate $C/server.crt;
        ssl_certificate_key $C/server.key;
        root $WORK/www;
        location = /small { default_type text/plain; return 200 "$SMALL"; }
        location = /1m { }
    }
    server {
        listen 127.0.0.1:$STATUS;
        location = /status { stub_status; }
    }
}
EOF
start origin "$ORIGIN" nginx -c "$WORK/origin.conf" -e "$WORK/origin-error.log"
wait_url origin "https://127.0.0.1:$ORIGIN/small"
origin_accepts() { curl -s "http://127.0.0.1:$STATUS/status" | awk 'NR == 3 { print $1 }'; }

# ---------------------------------------------------------------- the fronts
js() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
cat > "$WORK/tlsgate.json" <<EOF
{
  "version": 1,
  "workers": $WORKERS,
  "state_dir": $(js "$WORK/state"),
  "log": {"level": "warn"},
  "keystores": {"bench": {"type": "pem", "cert": $(js "$C/server.crt"), "key": $(js "$C/server.key")}},
  "truststores": {"origin-ca": {"type": "pem", "file": $(js "$C/ca.crt")}},
  "listeners": [
    {"name": "bench", "address": "127.0.0.1:${PORT[tlsgate]}", "tls": {"certificates": ["bench"]},
     "routes": [{"path_prefix": "/", "backend": "origin"}]}
  ],
  "backends": {
    "origin": {"targets": ["127.0.0.1:$ORIGIN"],
               "tls": {"truststore": "origin-ca", "server_name": "localhost"}}
  },
  "timeouts": {"idle": 600, "request_headers": 600}
}
EOF
if ! "$BIN" check -c "$WORK/tlsgate.json" > "$WORK/tlsgate-check.txt" 2>&1; then
  cat "$WORK/tlsgate-check.txt" >&2
  fail "tlsgate ($BIN) refused the backend-TLS config above: this build lacks backend \"tls\" or \"truststores\""
fi
cat > "$WORK/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
master_process on;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
    access_log off;
    server_tokens off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_header_timeout 300s;
    client_body_temp_path $WORK/tmp-nginx/body;
    proxy_temp_path $WORK/tmp-nginx/proxy;
    fastcgi_temp_path $WORK/tmp-nginx/fastcgi;
    uwsgi_temp_path $WORK/tmp-nginx/uwsgi;
    scgi_temp_path $WORK/tmp-nginx/scgi;
    ssl_protocols TLSv1.3;
    upstream origin_tls {
        server 127.0.0.1:$ORIGIN;
        keepalive 128;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl reuseport backlog=4096;
        ssl_certificate $C/server.crt;
        ssl_certificate_key $C/server.key;
        location / {
            proxy_pass https://origin_tls;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_session_reuse on;
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $C/ca.crt;
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_busy_buffers_size 32k;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
start tlsgate "${PORT[tlsgate]}" "$BIN" run -c "$WORK/tlsgate.json"
start nginx "${PORT[nginx]}" nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"
PROXIES=(tlsgate nginx)
for n in "${PROXIES[@]}"; do
  wait_url "$n" "https://127.0.0.1:${PORT[$n]}/small"
  small=$(curl -s --cacert "$C/ca.crt" "https://localhost:${PORT[$n]}/small" --resolve "localhost:${PORT[$n]}:127.0.0.1" | wc -c)
  big=$(curl -s --cacert "$C/ca.crt" "https://localhost:${PORT[$n]}/1m" --resolve "localhost:${PORT[$n]}:127.0.0.1" | cmp - "$WORK/www/1m" && echo ok || true)
  [ "$small" -eq 99 ] && [ "$big" = ok ] || fail "$n: /small is $small bytes (want 99) or /1m differs from the origin's file"
done
log "origin nginx $(nginx -v 2>&1 | sed 's/.*version: //') :$ORIGIN (TLS, 1 worker); tlsgate :${PORT[tlsgate]}, nginx :${PORT[nginx]} ($WORKERS workers each)"
log "wrk -t1 -c$CONNS -d${DUR}s; $REPS rep(s), order rotated; $(nproc) cores, $(openssl version | cut -d' ' -f1-2)"

# ---------------------------------------------------------------- runs
RES="$WORK/results.tsv"
printf 'path\tproxy\trep\treq_s\trequests\tbody_mib\tproxy_cpu_s\tus_per_req\tus_per_mib\torigin_conns\terrors\n' > "$RES"
run() {  # run PROXY PATH SECS REP (REP 0 = warm-up, not recorded)
  local n=$1 path=$2 secs=$3 rep=$4 out="$WORK/wrk.out" c0 c1 a0 a1 line
  a0=$(origin_accepts); c0=$(sess_ticks "${SID[$n]}")
  OPENSSL_CONF="$WORK/client.cnf" timeout -k 2 $((secs + 20)) \
    wrk -t1 -c"$CONNS" -d"${secs}s" --timeout 5s -s "$WORK/result.lua" \
    "https://127.0.0.1:${PORT[$n]}$path" > "$out" 2>&1 || true
  c1=$(sess_ticks "${SID[$n]}"); a1=$(origin_accepts)
  kill -0 "${SID[$n]}" 2>/dev/null || fail "$n died (see $WORK/$n.log)"
  line=$(grep '^WRK_RESULT' "$out") || { cat "$out" >&2; fail "wrk gave no result for $n $path"; }
  [ "$rep" -eq 0 ] && return 0
  local size=99; [ "$path" = /1m ] && size=1048576
  awk -v p="$path" -v n="$n" -v r="$rep" -v ct=$((c1 - c0)) -v tck="$TCK" -v sz="$size" \
      -v ac=$((a1 - a0)) -v l="$line" 'BEGIN {
        split(l, f, " "); for (i = 2; i in f; i++) { split(f[i], kv, "="); w[kv[1]] = kv[2] }
        req = w["requests"]; secs = w["duration_us"] / 1e6; cpu = ct / tck; mib = req * sz / 1048576
        printf "%s\t%s\t%d\t%.1f\t%d\t%.1f\t%.2f\t%.2f\t%.1f\t%d\t%d\n", p, n, r, req / secs, req, mib, cpu,
          (req ? cpu * 1e6 / req : 0), (mib ? cpu * 1e6 / mib : 0), ac, w["errors"] }' >> "$RES"
  tail -n 1 "$RES" | awk -F'\t' '{ printf "  %-6s %-8s rep %s: %9.0f req/s  proxy %5.2f CPU-s  %7.1f us/req  %8s us/MiB  origin conns %s  errors %s\n",
      $1, $2, $3, $4, $7, $8, ($1 == "/1m" ? sprintf("%.1f", $9) : "-"), $10, $11 }' >&2
}
for path in /small /1m; do
  log "GET $path"
  for n in "${PROXIES[@]}"; do run "$n" "$path" "$WARMUP" 0; done
  for rep in $(seq "$REPS"); do
    order=("${PROXIES[@]}"); [ $((rep % 2)) -eq 0 ] && order=(nginx tlsgate)
    for n in "${order[@]}"; do run "$n" "$path" "$DUR" "$rep"; done
  done
done

# ---------------------------------------------------------------- summary (medians over reps)
summary() {
  awk -F'\t' 'NR > 1 { k = $1 SUBSEP $2; n[k]++; rq[k, n[k]] = $4; ur[k, n[k]] = $8; um[k, n[k]] = $9
                       oc[k, n[k]] = $10; er[k] += $11; paths[$1] = 1; px[$2] = 1
                       if ($2 == "tlsgate") tr[$1, $3] = $8; else nr[$1, $3] = $8 }
    function med(a, k, m,   i, j, t, v) { for (i = 1; i <= m; i++) v[i] = a[k, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2 }
    END {
      printf "%-6s %-8s %12s %14s %14s %13s %7s\n", "path", "proxy", "req/s", "CPU us/req", "CPU us/MiB", "origin conns", "errors"
      split("/small /1m", P, " "); split("tlsgate nginx", X, " ")
      for (i = 1; i <= 2; i++) for (j = 1; j <= 2; j++) { k = P[i] SUBSEP X[j]; if (!(k in n)) continue
        printf "%-6s %-8s %12.0f %14.1f %14s %13.0f %7d\n", P[i], X[j], med(rq, k, n[k]), med(ur, k, n[k]),
          (P[i] == "/1m" ? sprintf("%.1f", med(um, k, n[k])) : "-"), med(oc, k, n[k]), er[k] }
      for (i = 1; i <= 2; i++) { m = 0
        for (r = 1; (P[i], r) in tr; r++) if ((P[i], r) in nr && nr[P[i], r] > 0) { m++; q[P[i], m] = tr[P[i], r] / nr[P[i], r] }
        if (m) printf "tlsgate / nginx proxy CPU per request, %s: %.2fx (median of %d paired reps; lower is better)\n", P[i], med(q, P[i], m), m }
    }' "$RES"
}
echo
summary | tee "$WORK/summary.txt"
if [ -n "$OUT" ]; then mkdir -p "$OUT"; cp "$RES" "$WORK/summary.txt" "$OUT/"; log "results in $OUT"; fi
