#!/bin/sh
# Checks the manual page: man/groff print no warning for it, and it names every command that
# `tlsgate --help` lists. Usage: man_check.sh PAGE TLSGATE_BINARY
set -eu
page=$1
bin=$2
warnings=$(LC_ALL=C.UTF-8 MANWIDTH=100 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null || true)
if [ -n "$warnings" ]; then
    echo "man --warnings on $page:" >&2
    echo "$warnings" >&2
    exit 1
fi
text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -E UTF-8 -l "$page" 2>/dev/null)
verbs=$("$bin" --help | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p')
[ -n "$verbs" ] || { echo "no commands in tlsgate --help" >&2; exit 1; }
missing=""
for v in $verbs; do
    printf '%s\n' "$text" | grep -q "tlsgate $v" || missing="$missing $v"
done
if [ -n "$missing" ]; then
    echo "$page does not document:$missing" >&2
    exit 1
fi
echo "man page OK: $(echo $verbs | wc -w) commands"
