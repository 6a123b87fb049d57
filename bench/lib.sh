#!/usr/bin/env bash
# lib.sh — process handling shared by the bench/ scenario scripts (sourced, not run): each
# process runs in its own session and is stopped with its whole group on exit, failure or
# Ctrl-C. The sourcing script sets WORK (its scratch directory) and KEEP (1 keeps WORK).
declare -A SID=()
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }
stop() {
  local sid=${SID[$1]:-} i
  [ -n "$sid" ] || return 0
  kill -TERM -- "-$sid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 -- "-$sid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$sid" 2>/dev/null || true
  wait "$sid" 2>/dev/null || true
  unset "SID[$1]"
}
cleanup() {
  local rc=$? n
  trap - EXIT INT TERM
  for n in "${!SID[@]}"; do stop "$n"; done
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() {  # start NAME PORT CMD... : in its own session, output to WORK/NAME.log
  local name=$1 port=$2; shift 2
  port_busy "$port" && fail "port $port ($name) is in use; try --port-base"
  setsid "$@" > "$WORK/$name.log" 2>&1 < /dev/null &
  SID[$name]=$!
}
