#!/usr/bin/env bash
# Interleaved before/after comparison of two builds on the same machine (BENCHMARKS.md,
# "Before and after"): for each round, A then B (or B then A on odd rounds), a fresh ledgerd
# and ledger-bench batched (4 x 1024 x 4) and single (32 x 1 x 1), then engine_apply's
# criterion executable. Prints one line per run and the B/A ratio of the medians at the end.
#
#   benches/ab-compare.sh TARGET_DIR_A TARGET_DIR_B [ROUNDS] [SECONDS]
#
# AB_WHAT="single" (any of batched, single, engine; default all three) runs only those.
# Each TARGET_DIR holds a release build of both sides' binaries:
#   CARGO_TARGET_DIR=DIR cargo build --release -p server --bin ledgerd -p benches --bin ledger-bench
#   CARGO_TARGET_DIR=DIR cargo bench -p benches --bench engine_apply --no-run
# (at the old commit the server package was `gateway`). Nothing is written outside a temporary
# directory, which is removed on exit.
set -euo pipefail

A=${1:?usage: ab-compare.sh TARGET_DIR_A TARGET_DIR_B [ROUNDS] [SECONDS]}
B=${2:?usage: ab-compare.sh TARGET_DIR_A TARGET_DIR_B [ROUNDS] [SECONDS]}
ROUNDS=${3:-3}
SECONDS_PER_RUN=${4:-10}
AB_WHAT=${AB_WHAT:-batched single engine}
TMP=$(mktemp -d)
LEDGERD_PID=
trap '[ -z "$LEDGERD_PID" ] || kill -9 "$LEDGERD_PID" 2>/dev/null || true; rm -rf "$TMP"' EXIT

for dir in "$A" "$B"; do
    for binary in ledgerd ledger-bench; do
        [ -x "$dir/release/$binary" ] || { echo "no $dir/release/$binary (see the header)" >&2; exit 2; }
    done
    compgen -G "$dir/release/deps/engine_apply-*" >/dev/null \
        || { echo "no engine_apply bench in $dir (see the header)" >&2; exit 2; }
done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run_ledger SIDE DIR SHAPE ARGS...: one fresh ledgerd, one ledger-bench run; prints its tps.
run_ledger() {
    local side=$1 dir=$2 shape=$3
    shift 3
    local data=$TMP/data-$side-$shape port
    rm -rf "$data" && mkdir -p "$data"
    port=$(free_port)
    "$dir/release/ledgerd" --data-dir "$data" --listen "127.0.0.1:$port" --metrics-listen off \
        >"$data.log" 2>&1 &
    LEDGERD_PID=$!
    local waited=0
    until grep -q '^listening on' "$data.log" 2>/dev/null; do
        kill -0 "$LEDGERD_PID" 2>/dev/null || { cat "$data.log" >&2; exit 1; }
        waited=$((waited + 1))
        [ $waited -lt 600 ] || { echo "ledgerd did not listen within 60 s" >&2; exit 1; }
        sleep 0.1
    done
    "$dir/release/ledger-bench" --addr "127.0.0.1:$port" --credentials "$data/admin.credentials" \
        --workload uniform --duration "$SECONDS_PER_RUN" "$@" --server-pid "$LEDGERD_PID" --quiet \
        >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; exit 1; }
    kill -TERM "$LEDGERD_PID"
    wait "$LEDGERD_PID" || true
    LEDGERD_PID=
    local line
    line=$(grep '^workload=' "$TMP/out")
    echo "side=$side shape=$shape $line" >&2
    sed -n 's/.*\btps=\([^ ]*\).*/\1/p' <<<"$line"
}

# run_engine SIDE DIR: engine_apply's criterion run; prints apply_batch uniform in M elements/s.
run_engine() {
    local side=$1 dir=$2 bench
    bench=$(ls -t "$dir"/release/deps/engine_apply-* | grep -v '\.d$' | head -1)
    "$bench" --bench --warm-up-time 2 --measurement-time 8 'apply_batch_transfer_uniform' >"$TMP/engine" 2>&1
    local thrpt
    thrpt=$(grep -A2 'apply_batch_transfer_uniform' "$TMP/engine" | sed -n 's/.*thrpt: *\[[^ ]* [^ ]* \([^ ]*\) \([^ ]*\).*/\1 \2/p' | head -1)
    echo "side=$side engine_apply apply_batch/uniform thrpt=$thrpt" >&2
    awk '{ v = $1; if ($2 == "Kelem/s") v /= 1000; if ($2 == "elem/s") v /= 1e6; print v }' <<<"$thrpt"
}

declare -A results
for round in $(seq 1 "$ROUNDS"); do
    order="A B"
    [ $((round % 2)) -eq 1 ] || order="B A"
    for side in $order; do
        dir=$A
        [ "$side" = A ] || dir=$B
        for what in $AB_WHAT; do
            case $what in
                batched) results[$side-batched]+="$(run_ledger "$side" "$dir" batched --connections 4 --batch 1024 --in-flight 4) " ;;
                single) results[$side-single]+="$(run_ledger "$side" "$dir" single --connections 32 --batch 1 --in-flight 1) " ;;
                engine) results[$side-engine]+="$(run_engine "$side" "$dir") " ;;
                *) echo "AB_WHAT: unknown $what" >&2; exit 2 ;;
            esac
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for what in $AB_WHAT; do
    a=$(median <<<"${results[A-$what]}")
    b=$(median <<<"${results[B-$what]}")
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
    echo "$what: A [${results[A-$what]% }] median $a; B [${results[B-$what]% }] median $b; B/A $ratio"
done
