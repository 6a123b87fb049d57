#!/bin/sh
# Fuzzing campaign: builds the libFuzzer harnesses (clang, ASan+UBSan, the library instrumented
# too) and a coverage variant, runs each harness tests/fuzz/fuzz_<x>.c with its dictionary
# tests/fuzz/<x>.dict over its corpus tests/fuzz/corpus/<x>/, merges the new inputs that add
# coverage into that corpus (libFuzzer -merge=1: only inputs with new features are copied), then
# replays the corpus on the coverage build and reports line coverage of the parser's own source
# files (llvm-cov). One fuzzer at a time, under nice -n 19: it only takes idle CPU.
#
# Usage: tests/fuzz/campaign.sh [harness...]      (default: every tests/fuzz/fuzz_*.c)
# Environment:
#   FUZZ_RUNS=10000000     executions per harness (libFuzzer -runs)
#   FUZZ_SECONDS=3600      time per harness (-max_total_time); whichever comes first ends it
#   FUZZ_OUT=build-fuzz/campaign   logs, new inputs, crash artifacts, profiles, summary.tsv
#   FUZZ_MERGE=1           0: leave tests/fuzz/corpus/ untouched
#   FUZZ_FUZZ=1            0: no fuzzing; merge what the last run left in $FUZZ_OUT/<x>/new/
#                          and report coverage
#   FUZZ_COVERAGE=1        0: skip the coverage build and report
#   FUZZ_BUILD=1           0: use the builds already in build-fuzz/ and build-fuzz-cov/
#   FUZZ_DEPS=0            1: install what the campaign needs first (scripts/deps.sh --fuzz)
#   FUZZ_CORPUS_MAX=400    a harness's corpus is not grown past this many files
#   FUZZ_TIMEOUT=10        seconds one input may take before it counts as a hang
#   FUZZ_SLOW_MS=100       a new input slower than this (coverage build) is not merged: make test
#                          replays the corpus on every run
#   FUZZ_UNTIL=HH:MM       (UTC, today) no run goes past it: each gets at most the time left, and
#                          none starts with less than a minute left (for a shared machine that must
#                          be quiet by then)
# Results: one line per harness in $FUZZ_OUT/summary.tsv (appended; the harness, executions,
# exec/s, seconds, findings, line coverage) and the per-file llvm-cov table in $FUZZ_OUT/<x>/.
# Exit status 1 when any harness found a crash, a leak, a hang or an out-of-memory.
set -eu
cd "$(dirname "$0")/../.."
RUNS=${FUZZ_RUNS:-10000000}
SECONDS_PER=${FUZZ_SECONDS:-3600}
OUT=${FUZZ_OUT:-build-fuzz/campaign}
MERGE=${FUZZ_MERGE:-1}
FUZZ=${FUZZ_FUZZ:-1}
COVERAGE=${FUZZ_COVERAGE:-1}
BUILD=${FUZZ_BUILD:-1}
CORPUS_MAX=${FUZZ_CORPUS_MAX:-400}
TIMEOUT=${FUZZ_TIMEOUT:-10}
SLOW_MS=${FUZZ_SLOW_MS:-100}
FB=build-fuzz
CB=build-fuzz-cov
NICE="nice -n 19"

[ "${FUZZ_DEPS:-0}" = 1 ] && ./scripts/deps.sh --fuzz

if [ $# -gt 0 ]; then
    HARNESSES="$*"
else
    HARNESSES=$(for f in tests/fuzz/fuzz_*.c; do n=${f##*/fuzz_}; echo "${n%.c}"; done)
fi

# The parser source files each harness is about (coverage is reported on these only).
parser_files() {
    case $1 in
    acme) echo src/tls/acme_json.c ;;
    admin) echo src/admin/allow.c src/admin/auth.c src/admin/session.c src/admin/config.c ;;
    allow) echo src/tls/allow.c src/tls/dn.c ;;
    certheader) echo src/tls/hdrcert.c ;;
    config) ls src/config/*.c | grep -v -e toml -e jsonloc ;;
    dn) echo src/tls/dn.c ;;
    esc) echo src/core/esc.c ;;
    etcd) echo src/store/reader.c ;;
    h2) echo src/proxy/h2.c src/proxy/h2stream.c src/proxy/h2calm.c src/proxy/h2timer.c ;;
    hello) echo src/tls/hello.c ;;
    http1) echo src/http/h1.c src/http/head.c src/proxy/route.c ;;
    http1_response) echo src/http/h1.c ;;
    ident) echo src/tls/ident.c ;;
    import) ls src/cli/import*.c ;;
    jks) echo src/tls/jks.c ;;
    jsonloc) echo src/config/jsonloc.c ;;
    path) echo src/http/path.c ;;
    pkcs12) echo src/tls/stores.c ;;
    proxy_in) echo src/net/ppin.c ;;
    reqcheck) echo src/http/reqcheck.c src/http/path.c ;;
    revoke) echo src/tls/revoke.c ;;
    secret) echo src/tls/secret.c ;;
    sniff) echo src/tls/failure.c ;;
    toml) echo src/config/toml.c src/config/toml_lex.c ;;
    *) ls "src/$1.c" src/*/"$1.c" 2>/dev/null || true ;;
    esac
}

# Where a file holds more than the parser: the parser's functions (llvm-cov -show-functions names,
# static ones as file.c:name). Coverage is then on these functions' lines only.
parser_funcs() {
    case $1 in
    sniff) echo '^tg_tls_sniff$' ;;
    pkcs12) echo '^stores[.]c:(p12_open|p12_key|pbe_iter|iter_refused|needs_legacy|friendly_name|local_key_id|build_chain)$' ;;
    admin) echo '^(tg__admin_(pct_decode|allow_path|b64_decode|cookie|redact|restore|merge_patch|if_match)|config[.]c:(redact|secret_value|secret_key|restore_child))$' ;;
    hello) echo '^(tg_tls__hello_record|hello[.]c:(is_grease|record_[a-z]+|suite_usable))$' ;;
    revoke) echo '^(tg_tls__(crl_parse|ocsp_parse|ocsp_check)|revoke[.]c:(asn1_time|ocsp_accept))$' ;;
    secret) echo '^(tg_tls__secret_open|secret[.]c:(unbase64|value_blob|open_blob|ecdh_key|hkdf|gcm|rsa_oaep|key_id))$' ;;
    *) echo '' ;;
    esac
}

# --table: the markdown table of docs/fuzzing.md from $FUZZ_OUT/summary.tsv (runs of a harness
# added up; coverage and corpus size from its last row).
if [ "${1:-}" = "--table" ]; then
    echo "| harness | parser files | dictionary | executions (runs) | exec/s | time | findings | corpus files | line coverage |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    awk -F'\t' 'NR > 1 {
        h = $2; if (!(h in seen)) { seen[h] = 1; order[++n] = h }
        if ($5 != "-") { ex[h] += $5; t[h] += $7; runs[h]++ }
        find[h] += $8; files[h] = $9
        if ($11 != "-") { cov[h] = $11; lines[h] = $12 }
    } END {
        for (i = 1; i <= n; i++) { h = order[i]
            printf "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", h, ex[h], runs[h], t[h], find[h], files[h], cov[h], lines[h] }
    }' "$OUT/summary.tsv" | sort | while IFS="$(printf '\t')" read -r h ex runs t find files cov lines; do
        eps=0
        [ "$t" -gt 0 ] && eps=$((ex / t))
        pf=$(parser_files "$h" | tr '\n' ' ' | sed 's/ *$//; s/ /, /g')
        fn=$(parser_funcs "$h")
        [ -n "$fn" ] && pf="$pf (parser functions only)"
        printf '| %s | %s | `%s.dict` | %s (%s) | %s | %ss | %s | %s | %s (%s) |\n' "$h" "$pf" "$h" \
            "$ex" "$runs" "$eps" "$t" "$find" "$files" "$cov" "$lines"
    done
    exit 0
fi

if [ "$BUILD" = 1 ]; then
    targets="" cov_targets=""
    for x in $HARNESSES; do
        targets="$targets fuzz_$x"
        cov_targets="$cov_targets fuzz_${x}_replay"
    done
    # -O1 as OSS-Fuzz builds; assertions stay on (no NDEBUG).
    CC=clang cmake -S . -B $FB -DTG_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 >/dev/null
    # shellcheck disable=SC2086
    $NICE cmake --build $FB -j "$(nproc)" --target $targets >/dev/null
    if [ "$COVERAGE" = 1 ]; then
        CC=clang cmake -S . -B $CB -DCMAKE_BUILD_TYPE=Debug \
            "-DCMAKE_C_FLAGS=-O1 -fprofile-instr-generate -fcoverage-mapping" >/dev/null
        # shellcheck disable=SC2086
        $NICE cmake --build $CB -j "$(nproc)" --target $cov_targets >/dev/null
    fi
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.tsv
[ -f "$SUMMARY" ] ||
    printf 'date\tharness\truns_asked\tseconds_asked\texecutions\texec_per_s\tseconds\tfindings\tcorpus_files\tadded\tline_cov\tlines\n' >"$SUMMARY"

# A stat line of libFuzzer's -print_final_stats=1 output.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

status=0
for x in $HARNESSES; do
    bin=$FB/fuzz_$x
    corpus=tests/fuzz/corpus/$x
    dict=tests/fuzz/$x.dict
    dir=$OUT/$x
    [ -x "$bin" ] || { echo "campaign: $bin missing (FUZZ_BUILD=1 builds it)" >&2; exit 2; }
    [ -f "$dict" ] || { echo "campaign: $dict missing: every harness has a dictionary" >&2; exit 2; }
    if [ "$FUZZ" = 1 ]; then
        rm -rf "$dir/new"
        # findings of earlier runs are kept in $OUT/findings/<x>/, not counted again
        if [ -d "$dir/artifacts" ] && [ -n "$(ls "$dir/artifacts")" ]; then
            mkdir -p "$OUT/findings/$x"
            mv "$dir/artifacts"/* "$OUT/findings/$x/"
        fi
    fi
    mkdir -p "$dir/new" "$dir/artifacts" "$corpus"
    before=$(ls "$corpus" | wc -l)
    ls "$corpus" | sort >"$dir/before.lst"
    start=$(date +%s)
    rc=0
    budget=$SECONDS_PER
    if [ "$FUZZ" = 1 ] && [ -n "${FUZZ_UNTIL:-}" ]; then
        left=$(($(date -u -d "$FUZZ_UNTIL" +%s) - start))
        if [ "$left" -lt 60 ]; then
            echo "campaign: $x: not started, FUZZ_UNTIL=$FUZZ_UNTIL is less than a minute away" >&2
            continue
        fi
        [ "$left" -lt "$budget" ] && budget=$left
    fi
    if [ "$FUZZ" = 1 ]; then
        echo "campaign: $x: up to $RUNS executions or $budget s" >&2
        # New inputs go to the first directory; the corpus is only read. A finding stops it.
        $NICE "$bin" -dict="$dict" -runs="$RUNS" -max_total_time="$budget" \
            -timeout="$TIMEOUT" -rss_limit_mb=2560 -print_final_stats=1 \
            -artifact_prefix="$dir/artifacts/" "$dir/new" "$corpus" >"$dir/fuzz.log" 2>&1 || rc=$?
    fi
    secs=$(($(date +%s) - start))
    execs=- eps=-
    if [ "$FUZZ" = 1 ]; then
        execs=$(stat number_of_executed_units "$dir/fuzz.log")
        eps=$(stat average_exec_per_sec "$dir/fuzz.log")
    fi
    findings=$(ls "$dir/artifacts" | grep -c -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
    if [ "$rc" = 72 ] && [ "$findings" = 0 ]; then
        # libFuzzer's exit status after SIGINT (it still prints its final figures): stopped by
        # hand, not a finding
        echo "campaign: $x: interrupted" >&2
    elif [ "$rc" -ne 0 ] || [ "$findings" -gt 0 ]; then
        echo "campaign: $x: FINDING (exit $rc): see $dir/fuzz.log and $dir/artifacts/" >&2
        grep -m 3 -E 'ERROR|SUMMARY|==[0-9]+==' "$dir/fuzz.log" >&2 || true
        status=1
        [ "$findings" -gt 0 ] || findings=1
    fi
    added=0
    if [ "$MERGE" = 1 ] && [ "$(ls "$dir/new" | wc -l)" -gt 0 ]; then
        if [ "$before" -ge "$CORPUS_MAX" ]; then
            echo "campaign: $x: corpus has $before files (FUZZ_CORPUS_MAX=$CORPUS_MAX): not grown" >&2
        else
            # Copies into the corpus only the new inputs that reach edges it does not (without
            # -use_counters=0 every new hit count would be a feature: hundreds of files).
            $NICE "$bin" -merge=1 -use_counters=0 -timeout="$TIMEOUT" -rss_limit_mb=2560 \
                "$corpus" "$dir/new" \
                >"$dir/merge.log" 2>&1 || echo "campaign: $x: merge failed: $dir/merge.log" >&2
            # make test replays the corpus on every run (under ASan, ~10x slower): an added
            # input that takes more than FUZZ_SLOW_MS on the coverage build is not kept.
            if [ -x "$CB/fuzz_${x}_replay" ]; then
                ls "$corpus" | sort >"$dir/after.lst"
                comm -13 "$dir/before.lst" "$dir/after.lst" | while read -r f; do
                    t0=$(date +%s%N)
                    LLVM_PROFILE_FILE="$dir/timing.profraw" "$CB/fuzz_${x}_replay" "$corpus/$f" \
                        >/dev/null 2>&1 || true
                    ms=$((($(date +%s%N) - t0) / 1000000))
                    if [ "$ms" -gt "$SLOW_MS" ]; then
                        echo "campaign: $x: $f takes ${ms} ms: not kept" >&2
                        rm -f "$corpus/$f"
                    fi
                done
            fi
            added=$(($(ls "$corpus" | wc -l) - before))
        fi
    fi
    cov=- lines=-
    if [ "$COVERAGE" = 1 ]; then
        rm -f "$dir"/*.profraw
        LLVM_PROFILE_FILE="$dir/replay-%p.profraw" "$CB/fuzz_${x}_replay" "$corpus" \
            >"$dir/replay.log" 2>&1 || true
        llvm-profdata merge -sparse -o "$dir/replay.profdata" "$dir"/*.profraw
        # shellcheck disable=SC2046
        llvm-cov report "$CB/fuzz_${x}_replay" -instr-profile="$dir/replay.profdata" \
            $(parser_files "$x") >"$dir/coverage.txt"
        # TOTAL: regions, missed, cover, functions, missed, executed, lines, missed lines, cover
        cov=$(awk '$1 == "TOTAL" { print $10 }' "$dir/coverage.txt")
        lines=$(awk '$1 == "TOTAL" { print $8 - $9 "/" $8 }' "$dir/coverage.txt")
        funcs=$(parser_funcs "$x")
        if [ -n "$funcs" ]; then
            # shellcheck disable=SC2046
            llvm-cov report -show-functions "$CB/fuzz_${x}_replay" \
                -instr-profile="$dir/replay.profdata" $(parser_files "$x") >"$dir/functions.txt"
            # Name, regions, missed, cover, lines, missed lines, cover, ...
            lines=$(awk -v re="$funcs" '$1 ~ re { n += $5; m += $6 } END { print n - m "/" n }' \
                "$dir/functions.txt")
            cov=$(echo "$lines" | awk -F/ '{ printf "%.2f%%", $2 ? 100 * $1 / $2 : 0 }')
        fi
    fi
    after=$(ls "$corpus" | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$x" "$RUNS" \
        "$budget" "${execs:-0}" "${eps:-0}" "$secs" "$findings" "$after" "$added" "$cov" \
        "$lines" >>"$SUMMARY"
    echo "campaign: $x: ${execs:-0} executions, ${eps:-0}/s, ${secs}s, findings $findings," \
        "corpus $after (+$added), lines $cov ($lines)" >&2
done
exit $status
