#!/usr/bin/env bash
# candidate.sh — tlsgate as the candidate of ../shared/bench/run (see its README, "The candidate
# contract"): writes {dir}/tlsgate.json and execs build/tlsgate in the foreground.
#   candidate.sh LISTEN_PORT BACKEND_PORT CERT KEY WORKERS DIR [CLIENT_CA]
# CLIENT_CA (the harness's {client_ca}, given in scenario m only, empty otherwise): require a
# client certificate chained to that CA (tls.client_auth mode require; identity not forwarded,
# as the peers forward none).
# TLSGATE_BIN overrides the binary (default: <repo>/build/tlsgate).
set -euo pipefail
[ $# -eq 6 ] || [ $# -eq 7 ] || {
  echo "usage: $0 LISTEN_PORT BACKEND_PORT CERT KEY WORKERS DIR [CLIENT_CA]" >&2; exit 2; }
port=$1 backend=$2 cert=$3 key=$4 workers=$5 dir=$6 client_ca=${7:-}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${TLSGATE_BIN:-$repo/build/tlsgate}
[ -x "$bin" ] || { echo "candidate.sh: $bin not found or not executable (run make build)" >&2; exit 1; }
mkdir -p "$dir/state"

# JSON string escaping for the paths (quotes and backslashes).
js() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

truststores= client_auth=
if [ -n "$client_ca" ]; then
  truststores="\"truststores\": {\"clients\": {\"type\": \"pem\", \"file\": $(js "$client_ca")}},"
  client_auth=", \"client_auth\": {\"mode\": \"require\", \"truststore\": \"clients\", \"forward\": \"none\"}"
fi

cat > "$dir/tlsgate.json" <<JSON
{
  "version": 1,
  "workers": $workers,
  "state_dir": $(js "$dir/state"),
  "log": {"level": "warn"},
  "keystores": {"bench": {"type": "pem", "cert": $(js "$cert"), "key": $(js "$key")}},
  $truststores
  "listeners": [
    {
      "name": "bench",
      "address": "127.0.0.1:$port",
      "tls": {"certificates": ["bench"]$client_auth},
      "routes": [{"path_prefix": "/", "backend": "origin"}]
    }
  ],
  "backends": {"origin": {"targets": ["127.0.0.1:$backend"]}},
  "timeouts": {"idle": 600, "request_headers": 600}
}
JSON
exec "$bin" run -c "$dir/tlsgate.json"
