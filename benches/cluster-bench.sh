#!/usr/bin/env bash
# ledger-bench against a replica group and against a single node, in the same run on the same
# machine (BENCHMARKS.md, "Replicated"). Starts 3 etcd members (--pre-vote, ports the kernel
# picks), a primary and STANDBYS standbys on 127.0.0.1, waits for their roles, runs
# ledger-bench batched (4 x 1024 x 4) and single (32 x 1 x 1) against the primary, then the same
# against a fresh single-node ledgerd; prints each run's line, the CPU seconds of every process
# during the run, and the replicated/single ratios.
#
#   benches/cluster-bench.sh [TARGET_DIR] [SECONDS] [STANDBYS]
#
# CLUSTER_NODE_ARGS (environment): more ledgerd flags for the group's nodes, e.g.
# "--entry-compression none" to measure uncompressed entries with the same build.
#
# TARGET_DIR holds a release build: cargo build --release -p server --bin ledgerd -p benches
# --bin ledger-bench (default: target). Everything lives in a temporary directory removed on
# exit; every process started here is killed on exit.
set -euo pipefail

DIR=${1:-target}
SECONDS_PER_RUN=${2:-10}
STANDBYS=${3:-2}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

for binary in ledgerd ledger-bench; do
    [ -x "$DIR/release/$binary" ] || { echo "no $DIR/release/$binary (see the header)" >&2; exit 2; }
done
command -v etcd >/dev/null || { echo "etcd missing: apt-get install etcd-server etcd-client" >&2; exit 2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# cpu_ticks PID: user+system clock ticks of the process so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# wait_for FILE PATTERN PID: until FILE has a line matching PATTERN (or PID dies).
wait_for() {
    local waited=0
    until grep -q "$2" "$1" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || { cat "$1" >&2; exit 1; }
        waited=$((waited + 1))
        [ $waited -lt 600 ] || { echo "no '$2' in $1 within 60 s" >&2; cat "$1" >&2; exit 1; }
        sleep 0.1
    done
}

ETCD_PIDS=()
start_etcd() {
    local cluster="" i
    declare -gA CLIENT PEER
    for i in 1 2 3; do
        CLIENT[$i]=$(free_port)
        PEER[$i]=$(free_port)
        cluster+="e$i=http://127.0.0.1:${PEER[$i]},"
    done
    ENDPOINTS=""
    for i in 1 2 3; do
        etcd --name "e$i" --data-dir "$TMP/etcd$i" --pre-vote \
            --listen-client-urls "http://127.0.0.1:${CLIENT[$i]}" \
            --advertise-client-urls "http://127.0.0.1:${CLIENT[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${PEER[$i]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${PEER[$i]}" \
            --initial-cluster "${cluster%,}" --initial-cluster-token "bench-$$" \
            --heartbeat-interval 50 --election-timeout 500 >"$TMP/etcd$i.log" 2>&1 &
        ETCD_PIDS+=($!)
        PIDS+=($!)
        ENDPOINTS+="127.0.0.1:${CLIENT[$i]},"
    done
    ENDPOINTS=${ENDPOINTS%,}
    for i in 1 2 3; do wait_for "$TMP/etcd$i.log" 'ready to serve client requests' "${ETCD_PIDS[$((i - 1))]}"; done
}

# start_node NAME [ARGS...]: a ledgerd in $TMP/NAME; sets NODE_PID, NODE_PORT, NODE_METRICS.
start_node() {
    local name=$1
    shift
    local data=$TMP/$name
    mkdir -p "$data"
    [ -f "$TMP/credentials" ] && cp "$TMP/credentials" "$data/credentials"
    NODE_PORT=$(free_port)
    NODE_METRICS=$(free_port)
    "$DIR/release/ledgerd" --data-dir "$data" --listen "127.0.0.1:$NODE_PORT" \
        --metrics-listen "127.0.0.1:$NODE_METRICS" "$@" >"$data.log" 2>&1 &
    NODE_PID=$!
    PIDS+=($NODE_PID)
    wait_for "$data.log" '^listening on' "$NODE_PID"
    # The first node's store (hashes) goes to the others; its admin file is the bench's.
    [ -f "$TMP/credentials" ] || cp "$data/credentials" "$TMP/credentials"
    [ -f "$TMP/admin.credentials" ] || cp "$data/admin.credentials" "$TMP/admin.credentials"
}

role_is() { curl -s "127.0.0.1:$1/metrics" | grep -q "ledger_replication_role{role=\"$2\"} 1"; }

# bench NAME PORT|ADDRS SERVER_PID ARGS...: one ledger-bench run (ADDRS: host:port,... of a
# group, ledger-bench finds the primary); prints its line and the CPU
# seconds each watched process used meanwhile.
bench() {
    local name=$1 port=$2 server=$3
    shift 3
    local watched=("$server" "${WATCH[@]}") before=() pid i
    for pid in "${watched[@]}"; do before+=("$(cpu_ticks "$pid")"); done
    [[ $port == *:* ]] || port="127.0.0.1:$port"
    "$DIR/release/ledger-bench" --addr "$port" --credentials "$TMP/admin.credentials" \
        --workload uniform --duration "$SECONDS_PER_RUN" "$@" --server-pid "$server" --quiet \
        >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; exit 1; }
    local hz cpu=""
    hz=$(getconf CLK_TCK)
    for i in "${!watched[@]}"; do
        cpu+="$(awk -v a="${before[$i]}" -v b="$(cpu_ticks "${watched[$i]}")" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) / hz }') "
    done
    echo "$name $(grep '^workload=' "$TMP/out") cpu_s[server ${WATCH_NAMES}]=${cpu% }"
    sed -n 's/.*\btps=\([^ ]*\).*/\1/p' <<<"$(grep '^workload=' "$TMP/out")" >"$TMP/tps-$name"
}

start_etcd
# Word splitting of CLUSTER_NODE_ARGS is wanted: it holds flags.
# shellcheck disable=SC2086
start_node a --cluster "$ENDPOINTS" --ledger bench --node a ${CLUSTER_NODE_ARGS:-}
PRIMARY_PID=$NODE_PID PRIMARY_PORT=$NODE_PORT PRIMARY_METRICS=$NODE_METRICS
until role_is "$PRIMARY_METRICS" primary; do kill -0 "$PRIMARY_PID" || exit 1; sleep 0.1; done
WATCH=("${ETCD_PIDS[@]}")
WATCH_NAMES="etcd1 etcd2 etcd3"
GROUP_ADDRS=""
for n in $(seq 1 "$STANDBYS"); do
    # shellcheck disable=SC2086
    start_node "s$n" --cluster "$ENDPOINTS" --ledger bench --node "s$n" ${CLUSTER_NODE_ARGS:-}
    until role_is "$NODE_METRICS" standby; do kill -0 "$NODE_PID" || exit 1; sleep 0.1; done
    WATCH+=("$NODE_PID")
    WATCH_NAMES+=" standby$n"
    GROUP_ADDRS+="127.0.0.1:$NODE_PORT,"
done
# The standbys first: ledger-bench follows their not_primary answers to the primary.
GROUP_ADDRS+="127.0.0.1:$PRIMARY_PORT"
bench replicated-batched "$GROUP_ADDRS" "$PRIMARY_PID" --connections 4 --batch 1024 --in-flight 4
bench replicated-single "$GROUP_ADDRS" "$PRIMARY_PID" --connections 32 --batch 1 --in-flight 1
for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
PIDS=()

WATCH=()
WATCH_NAMES=""
start_node single
bench single-batched "$NODE_PORT" "$NODE_PID" --connections 4 --batch 1024 --in-flight 4
bench single-single "$NODE_PORT" "$NODE_PID" --connections 32 --batch 1 --in-flight 1

for shape in batched single; do
    awk -v r="$(cat "$TMP/tps-replicated-$shape")" -v s="$(cat "$TMP/tps-single-$shape")" -v shape="$shape" \
        'BEGIN { printf "%s: replicated %s, single node %s, replicated/single %.3f\n", shape, r, s, r / s }'
done
