#!/usr/bin/env bash
# candidate.sh — tlsgate as the candidate of ../shared/bench/run (see its README, "The candidate
# contract"): writes {dir}/tlsgate.json and execs build/tlsgate in the foreground.
#   candidate.sh LISTEN_PORT BACKEND_PORT CERT KEY WORKERS DIR
# TLSGATE_BIN overrides the binary (default: <repo>/build/tlsgate).
set -euo pipefail
[ $# -eq 6 ] || { echo "usage: $0 LISTEN_PORT BACKEND_PORT CERT KEY WORKERS DIR" >&2; exit 2; }
port=$1 backend=$2 cert=$3 key=$4 workers=$5 dir=$6
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${TLSGATE_BIN:-$repo/build/tlsgate}
[ -x "$bin" ] || { echo "candidate.sh: $bin not found or not executable (run make build)" >&2; exit 1; }
mkdir -p "$dir/state"

# JSON string escaping for the paths (quotes and backslashes).
js() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

cat > "$dir/tlsgate.json" <<JSON
{
  "version": 1,
  "workers": $workers,
  "state_dir": $(js "$dir/state"),
  "log": {"level": "warn"},
  "keystores": {"bench": {"type": "pem", "cert": $(js "$cert"), "key": $(js "$key")}},
  "listeners": [
    {
      "name": "bench",
      "address": "127.0.0.1:$port",
      "tls": {"certificates": ["bench"]},
      "routes": [{"path_prefix": "/", "backend": "origin"}]
    }
  ],
  "backends": {"origin": {"targets": ["127.0.0.1:$backend"]}},
  "timeouts": {"idle": 600, "request_headers": 600}
}
JSON
exec "$bin" run -c "$dir/tlsgate.json"
