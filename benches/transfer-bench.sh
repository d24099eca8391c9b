#!/usr/bin/env bash
# How long a state transfer takes (REPLICATION.md, *State transfer*; BENCHMARKS.md): 3 etcd
# members, a primary and a standby (snapshots every SNAPSHOT_EVERY records) on 127.0.0.1;
# ledger-bench batched for SECONDS to grow the ledger; then, with the load stopped, a new node
# joins a log whose first entries are trimmed and copies the standby's state. Prints the bytes
# copied and the time to the install and to following.
#
#   benches/transfer-bench.sh [TARGET_DIR] [SECONDS] [SNAPSHOT_EVERY]
#
# TARGET_DIR holds a release build (cargo build --release -p server --bin ledgerd -p benches
# --bin ledger-bench; default: target). Everything lives in a temporary directory removed on
# exit; every process started here is killed on exit.
set -euo pipefail

DIR=${1:-target}
SECONDS_OF_LOAD=${2:-10}
SNAPSHOT_EVERY=${3:-2000000}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
command -v etcd >/dev/null || { echo "etcd missing: apt-get install etcd-server etcd-client" >&2; exit 2; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
# until_line FILE PATTERN PID: waits (at most 300 s) for a line of FILE matching PATTERN.
until_line() {
    local waited=0
    until grep -q "$2" "$1" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || { cat "$1" >&2; exit 1; }
        waited=$((waited + 1))
        [ $waited -lt 3000 ] || { echo "no '$2' in $1" >&2; cat "$1" >&2; exit 1; }
        sleep 0.1
    done
}

cluster="" ENDPOINTS=""
for i in 1 2 3; do
    c=$(port) p=$(port)
    eval "C$i=$c P$i=$p"
    cluster+="e$i=http://127.0.0.1:$p,"
    ENDPOINTS+="127.0.0.1:$c,"
done
for i in 1 2 3; do
    eval "c=\$C$i p=\$P$i"
    etcd --name "e$i" --data-dir "$TMP/etcd$i" --pre-vote --listen-client-urls "http://127.0.0.1:$c" \
        --advertise-client-urls "http://127.0.0.1:$c" --listen-peer-urls "http://127.0.0.1:$p" \
        --initial-advertise-peer-urls "http://127.0.0.1:$p" --initial-cluster "${cluster%,}" \
        --initial-cluster-token "transfer-$$" --heartbeat-interval 50 --election-timeout 500 \
        >"$TMP/etcd$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 1 2 3; do until_line "$TMP/etcd$i.log" 'ready to serve client requests' "${PIDS[$((i - 1))]}"; done
ENDPOINTS=${ENDPOINTS%,}

# node NAME: starts ledgerd NAME in $TMP/NAME (the first node's credentials store is shared).
node() {
    mkdir -p "$TMP/$1"
    [ -f "$TMP/credentials" ] && cp "$TMP/credentials" "$TMP/admin.credentials" "$TMP/$1/"
    "$DIR/release/ledgerd" --data-dir "$TMP/$1" --listen "127.0.0.1:$(port)" --metrics-listen "127.0.0.1:$(port)" \
        --cluster "$ENDPOINTS" --ledger bench --node "$1" --log-entries-max 256 \
        --snapshot-every "$SNAPSHOT_EVERY" >"$TMP/$1.log" 2>&1 &
    NODE_PID=$!
    PIDS+=($NODE_PID)
    until_line "$TMP/$1.log" '^listening on' "$NODE_PID"
    [ -f "$TMP/credentials" ] || cp "$TMP/$1/credentials" "$TMP/$1/admin.credentials" "$TMP/"
}
node a
until_line "$TMP/a.log" 'is the primary' "$NODE_PID"
PRIMARY=$(sed -n 's/^listening on //p' "$TMP/a.log")
node b
sleep 1
"$DIR/release/ledger-bench" --addr "$PRIMARY" --credentials "$TMP/admin.credentials" --workload uniform \
    --duration "$SECONDS_OF_LOAD" --connections 4 --batch 1024 --in-flight 4 --quiet | grep '^workload='
sleep 2 # the standby applies the rest; a trim passes entry 1
started=$(now_ms)
node late
until_line "$TMP/late.log" 'state transfer installed' "$NODE_PID"
installed=$(now_ms)
until_line "$TMP/late.log" 'matches the checkpoint' "$NODE_PID"
verified=$(now_ms)
grep 'state transfer installed\|matches the checkpoint\|^recovered' "$TMP/late.log"
journal_bytes=$(du -s --block-size=1 "$TMP/late/journal" | cut -f1)
snapshot_bytes=$(du -s --block-size=1 "$TMP/late/snapshots" | cut -f1)
echo "copied: journal ${journal_bytes} B on disk, snapshots ${snapshot_bytes} B;" \
    "start -> installed $((installed - started)) ms, -> state checked $((verified - started)) ms"
