#!/usr/bin/env bash
# pg-compare.sh — the ledger against the classic row-locking design on PostgreSQL, on this
# machine, same workloads, equal durability, measured in one run.
#
# PostgreSQL side: the schema of the design article (accounts with ledger_balance,
# available_balance, frozen_balance and version; a ledger entries table; idempotency keys) and
# its transfer as a pgbench script: BEGIN; SELECT ... FOR UPDATE on both accounts in a fixed
# lock order (lower id first); balance check; two UPDATEs; entry INSERT; idempotency key
# INSERT; COMMIT. fsync=on, synchronous_commit=on (the defaults: a commit returns once its WAL
# is flushed). pgbench runs PG_CLIENTS clients (default 32) with prepared statements.
#
# Ledger side: a freshly started ledgerd (default settings: --sync fsync, group commit) per
# workload and configuration, driven by ledger-bench over loopback TCP:
#   batched: 4 connections x 4 frames in flight x 1024 transfers per frame
#   single:  32 connections x 1 frame in flight x 1 transfer per frame (like pgbench's clients)
#
# Usage: benches/pg-compare.sh [--seconds N] [--workloads "uniform hot pingpong"]
#                              [--accounts N] [--pg-clients N] [--out DIR] [--no-build] [--keep]
# The same settings as environment variables: SECONDS_PER_RUN, WORKLOADS, ACCOUNTS, PG_CLIENTS,
# OUT_DIR, NO_BUILD=1, KEEP_TMP=1; and CARGO_TARGET_DIR, PG_PORT, LEDGER_PORT, TMPDIR.
# Default run: 20 s per workload and system (about 4 minutes in all).
#
# Installs PostgreSQL from the OS packages if its server binaries are missing (Debian:
# apt-get install -y postgresql; needs root). Runs the server as the `postgres` user when
# started as root (PostgreSQL refuses to run as root). Every server it starts is stopped on
# exit, and its temporary directory removed (unless --keep).
#
# Writes to OUT_DIR (default benches/results): pg-compare-<date>.txt (the summary and every
# raw result line) and the latency distributions <system>-<workload>.hgrm for
# benches/plot-latency.py.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
WORKLOADS=${WORKLOADS:-"uniform hot pingpong"}
ACCOUNTS=${ACCOUNTS:-100000}
PG_CLIENTS=${PG_CLIENTS:-32}
PG_THREADS=${PG_THREADS:-2}
OUT_DIR=${OUT_DIR:-$REPO/benches/results}
NO_BUILD=${NO_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}
PG_PORT=${PG_PORT:-55432}
LEDGER_PORT=${LEDGER_PORT:-57070}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}

while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --accounts) ACCOUNTS=$2; shift 2 ;;
        --pg-clients) PG_CLIENTS=$2; shift 2 ;;
        --out) OUT_DIR=$2; shift 2 ;;
        --no-build) NO_BUILD=1; shift ;;
        --keep) KEEP_TMP=1; shift ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "pg-compare: unknown argument $1 (see --help)" >&2; exit 64 ;;
    esac
done

for workload in $WORKLOADS; do
    case "$workload" in
        uniform|hot|pingpong) ;;
        *) echo "pg-compare: workload $workload has no PostgreSQL script (uniform, hot, pingpong)" >&2; exit 64 ;;
    esac
done

log() { echo "pg-compare: $*" >&2; }

# ----- prerequisites -----

pg_bin_dir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/postgres" ] && [ -x "$dir/pgbench" ]; then echo "$dir"; fi
    done | sort -V | tail -1
}

PG_BIN=$(pg_bin_dir)
if [ -z "$PG_BIN" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "PostgreSQL server binaries not found and not root: install the postgresql package"
        exit 69
    fi
    log "installing PostgreSQL from the OS packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(pg_bin_dir)
    [ -n "$PG_BIN" ] || { log "postgresql installed, but no server binaries found"; exit 69; }
fi
log "PostgreSQL: $("$PG_BIN/postgres" --version)"

if [ "$NO_BUILD" != 1 ]; then
    log "building ledgerd and ledger-bench (release)"
    (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --quiet \
        -p server --bin ledgerd -p benches --bin ledger-bench)
fi
LEDGERD=$TARGET_DIR/release/ledgerd
LEDGER_BENCH=$TARGET_DIR/release/ledger-bench
[ -x "$LEDGERD" ] && [ -x "$LEDGER_BENCH" ] || { log "missing $LEDGERD or $LEDGER_BENCH"; exit 69; }

# ----- temporary directory and cleanup -----

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pg-compare.XXXXXX")
chmod 755 "$TMP"
cd "$TMP" # the postgres user must be able to stand in the working directory
PG_STARTED=0
LEDGERD_PID=
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    RUN_AS=(runuser -u postgres --)
fi

cleanup() {
    local status=$?
    if [ -n "$LEDGERD_PID" ] && kill -0 "$LEDGERD_PID" 2>/dev/null; then
        kill -TERM "$LEDGERD_PID" 2>/dev/null || true
        wait "$LEDGERD_PID" 2>/dev/null || true
    fi
    if [ "$PG_STARTED" = 1 ]; then
        "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ "$KEEP_TMP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
SUMMARY=$OUT_DIR/pg-compare-$STAMP.txt
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

note "# pg-compare $STAMP: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
note "# $("$PG_BIN/postgres" --version); ledger at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
note "# $SECONDS_PER_RUN s per run, $ACCOUNTS accounts, workloads: $WORKLOADS"

# ----- PostgreSQL -----

psql_pg() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"; }

start_postgres() {
    # One directory the server's user owns: data, log and socket.
    mkdir -p "$TMP/pg"
    [ ${#RUN_AS[@]} -eq 0 ] || chown postgres "$TMP/pg"
    "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$TMP/pg/data" -U postgres --auth=trust --no-sync -E UTF8 >"$TMP/initdb.log" 2>&1
    # Durability as shipped (fsync, synchronous_commit, full_page_writes on); memory sized for
    # the data set; checkpoints spaced out so that none lands inside a measured run (an
    # explicit CHECKPOINT runs before each).
    "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -w -l "$TMP/pg/server.log" start -o "\
        -c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$TMP/pg \
        -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c wal_sync_method=fdatasync \
        -c shared_buffers=1GB -c max_connections=200 -c max_wal_size=16GB -c checkpoint_timeout=1h \
        -c autovacuum=off" >/dev/null
    PG_STARTED=1
    psql_pg -c "SHOW fsync" -c "SHOW synchronous_commit" >/dev/null
}

load_schema() {
    psql_pg <<SQL
CREATE TABLE accounts (
    id                bigint        PRIMARY KEY,
    account_no        varchar(32)   NOT NULL UNIQUE,
    user_id           bigint        NOT NULL,
    currency          varchar(10)   NOT NULL,
    ledger_balance    numeric(20,8) NOT NULL DEFAULT 0,
    available_balance numeric(20,8) NOT NULL DEFAULT 0,
    frozen_balance    numeric(20,8) NOT NULL DEFAULT 0,
    version           bigint        NOT NULL DEFAULT 0,
    created_at        timestamptz   NOT NULL DEFAULT now(),
    updated_at        timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX accounts_user_id ON accounts (user_id);
CREATE TABLE ledger_entries (
    id             bigserial     PRIMARY KEY,
    tx_id          bigint        NOT NULL,
    debit_account  bigint        NOT NULL,
    credit_account bigint        NOT NULL,
    amount         numeric(20,8) NOT NULL,
    created_at     timestamptz   NOT NULL DEFAULT now()
);
CREATE TABLE idempotency_keys (
    tx_id      bigint      PRIMARY KEY,
    result     varchar(16) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
SQL
}

# Every account starts with 100 000 000.00 available (and settled): the funding is not timed
# on either side.
reset_data() {
    psql_pg <<SQL
TRUNCATE ledger_entries, idempotency_keys;
TRUNCATE accounts;
INSERT INTO accounts (id, account_no, user_id, currency, ledger_balance, available_balance)
    SELECT i, 'acct-' || lpad(i::text, 10, '0'), i, 'USD', 100000000, 100000000
    FROM generate_series(1, $ACCOUNTS) AS i;
VACUUM ANALYZE;
CHECKPOINT;
SQL
}

# The classic transfer, as the design article writes it, for pgbench. :a pays 0.01 to :b.
write_pgbench_script() {
    local workload=$1 file=$2
    {
        case "$workload" in
            uniform)
                echo '\set a random(1, :accounts)'
                echo '\set b random(1, :accounts - 1)'
                echo '\if :b >= :a'
                echo '\set b :b + 1'
                echo '\endif'
                ;;
            hot)
                echo '\set a random(2, :accounts)'
                echo '\set b 1'
                ;;
            pingpong)
                echo '\set r random(0, 1)'
                echo '\set a 1 + :r'
                echo '\set b 2 - :r'
                ;;
        esac
        cat <<'PGBENCH'
\set txid random(1, 9223372036854775806)
\set lo least(:a, :b)
\set hi greatest(:a, :b)
BEGIN;
SELECT available_balance AS bal_lo FROM accounts WHERE id = :lo FOR UPDATE \gset
SELECT available_balance AS bal_hi FROM accounts WHERE id = :hi FOR UPDATE \gset
\if (:a = :lo and :bal_lo >= 0.01) or (:a = :hi and :bal_hi >= 0.01)
UPDATE accounts SET available_balance = available_balance - 0.01, version = version + 1, updated_at = now() WHERE id = :a;
UPDATE accounts SET available_balance = available_balance + 0.01, version = version + 1, updated_at = now() WHERE id = :b;
INSERT INTO ledger_entries (tx_id, debit_account, credit_account, amount) VALUES (:txid, :a, :b, 0.01);
INSERT INTO idempotency_keys (tx_id, result) VALUES (:txid, 'ok');
COMMIT;
\else
ROLLBACK;
\endif
PGBENCH
    } >"$file"
}

# Percentiles (µs) of pgbench's per-transaction log, and the same distribution as .hgrm.
pg_latency() {
    local hgrm=$1
    shift
    python3 - "$hgrm" "$@" <<'PY'
import math, sys
hgrm, files = sys.argv[1], sys.argv[2:]
values = []
for name in files:
    with open(name) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                values.append(int(fields[2]))
values.sort()
n = len(values)
def q(p):
    return values[min(n - 1, max(0, math.ceil(p * n) - 1))] if n else 0
with open(hgrm, "w") as out:
    out.write("%12s %14s %10s %14s\n\n" % ("Value", "Percentile", "TotalCount", "1/(1-Percentile)"))
    level, step = 0.0, 0
    while n:
        index = min(n - 1, max(0, math.ceil(level * n) - 1))
        if index < n - 1:
            out.write("%12.3f %14.12f %10d %14.2f\n" % (values[index], level, index + 1, 1 / (1 - level)))
        else:
            out.write("%12.3f %14.12f %10d\n" % (values[-1], 1.0, n))
            break
        # HdrHistogram's iteration: 5 ticks per halving of the distance to 100 %.
        step += 1
        halvings = step // 5
        level = 1 - 0.5 ** halvings * (1 - (step % 5) / 10)
    mean = sum(values) / n if n else 0
    deviation = math.sqrt(sum((v - mean) ** 2 for v in values) / n) if n else 0
    out.write("#[Mean    = %12.3f, StdDeviation   = %12.3f]\n" % (mean, deviation))
    out.write("#[Max     = %12.3f, Total count    = %12d]\n" % (values[-1] if n else 0, n))
print("p50_us=%d p99_us=%d p999_us=%d max_us=%d" % (q(0.5), q(0.99), q(0.999), values[-1] if n else 0))
PY
}

run_postgres() {
    local workload=$1
    local script=$TMP/transfer-$workload.sql
    write_pgbench_script "$workload" "$script"
    reset_data
    rm -f "$TMP"/pglog*
    local load
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    log "postgres $workload: pgbench -c $PG_CLIENTS for $SECONDS_PER_RUN s (load $load)"
    (cd "$TMP" && "$PG_BIN/pgbench" -n -M prepared -c "$PG_CLIENTS" -j "$PG_THREADS" \
        -T "$SECONDS_PER_RUN" -D accounts="$ACCOUNTS" -f "$script" \
        --log --log-prefix="$TMP/pglog" -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres) \
        >"$TMP/pgbench-$workload.out" 2>&1 || { cat "$TMP/pgbench-$workload.out" >&2; return 1; }
    local tps processed failed latency check
    tps=$(awk '/^tps = / {print $3}' "$TMP/pgbench-$workload.out" | tail -1)
    processed=$(awk -F': ' '/number of transactions actually processed/ {print $2}' "$TMP/pgbench-$workload.out" | awk '{print $1}')
    failed=$(awk -F': ' '/number of failed transactions/ {print $2}' "$TMP/pgbench-$workload.out" | awk '{print $1}')
    latency=$(pg_latency "$OUT_DIR/postgres-$workload.hgrm" "$TMP"/pglog*)
    # The same checks as ledger-bench: money conserved, one entry and one key per transfer.
    check=$(psql_pg -At -c "SELECT (SELECT sum(available_balance + frozen_balance) FROM accounts) = $ACCOUNTS::numeric * 100000000,
                                   (SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM idempotency_keys)")
    local conserved entries keys
    IFS='|' read -r conserved entries keys <<<"$check"
    local verified=ok
    if [ "$conserved" != t ] || [ "$entries" != "$processed" ] || [ "$keys" != "$processed" ]; then verified=FAILED; fi
    note "system=postgres workload=$workload clients=$PG_CLIENTS transfers=$processed failed=${failed:-0} seconds=$SECONDS_PER_RUN tps=$tps $latency conserved=$conserved entries=$entries verified=$verified load=\"$load\""
}

# ----- the ledger -----

start_ledgerd() {
    local data=$1
    rm -rf "$data"
    mkdir -p "$data"
    "$LEDGERD" --data-dir "$data" --listen "127.0.0.1:$LEDGER_PORT" --metrics-listen off \
        >"$data.log" 2>&1 &
    LEDGERD_PID=$!
    local waited=0
    until grep -q '^listening on' "$data.log" 2>/dev/null; do
        if ! kill -0 "$LEDGERD_PID" 2>/dev/null; then cat "$data.log" >&2; log "ledgerd did not start"; return 1; fi
        waited=$((waited + 1))
        [ $waited -lt 600 ] || { log "ledgerd did not listen within 60 s"; return 1; }
        sleep 0.1
    done
}

stop_ledgerd() {
    kill -TERM "$LEDGERD_PID"
    wait "$LEDGERD_PID" || true
    LEDGERD_PID=
}

run_ledger() {
    local workload=$1 config=$2
    shift 2
    local data=$TMP/ledger-$workload-$config
    start_ledgerd "$data"
    local load
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    log "ledger $workload $config: ledger-bench $* for $SECONDS_PER_RUN s (load $load)"
    local accounts=$ACCOUNTS
    [ "$workload" != pingpong ] || accounts=2
    "$LEDGER_BENCH" --addr "127.0.0.1:$LEDGER_PORT" --credentials "$data/admin.credentials" \
        --workload "$workload" --accounts "$accounts" --duration "$SECONDS_PER_RUN" "$@" \
        --hist-out "$OUT_DIR/ledger-$config-$workload.hgrm" --server-pid "$LEDGERD_PID" --quiet \
        >"$TMP/bench-$workload-$config.out" 2>&1 || { cat "$TMP/bench-$workload-$config.out" >&2; stop_ledgerd; return 1; }
    stop_ledgerd
    local line
    line=$(grep '^workload=' "$TMP/bench-$workload-$config.out")
    note "system=ledger-$config $line load=\"$load\""
}

field() { # field NAME LINE
    local name=$1 line=$2
    sed -n "s/.*\b$name=\([^ ]*\).*/\1/p" <<<"$line"
}

# ----- run -----

start_postgres
load_schema
for workload in $WORKLOADS; do
    run_postgres "$workload"
    run_ledger "$workload" batched --connections 4 --batch 1024 --in-flight 4
    run_ledger "$workload" single --connections 32 --batch 1 --in-flight 1
done

note ""
note "# transfers/s and per-request latency (µs; a ledger 'batched' request is a frame of 1024 transfers)"
printf '%-9s %-34s %12s %9s %9s %9s %10s\n' workload system transfers/s p50_us p99_us p999_us vs_postgres | tee -a "$SUMMARY"
for workload in $WORKLOADS; do
    pg_line=$(grep "^system=postgres workload=$workload " "$SUMMARY")
    pg_tps=$(field tps "$pg_line")
    for system in ledger-batched ledger-single postgres; do
        line=$(grep "^system=$system workload=$workload " "$SUMMARY" || true)
        [ -n "$line" ] || continue
        tps=$(field tps "$line")
        case $system in
            ledger-batched) what="ledger, 4 conn x 4 x 1024 per frame" ;;
            ledger-single) what="ledger, 32 conn x 1 transfer" ;;
            postgres) what="postgres FOR UPDATE, $PG_CLIENTS clients" ;;
        esac
        ratio=$(awk -v a="$tps" -v b="$pg_tps" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
        printf '%-9s %-34s %12.0f %9s %9s %9s %10s\n' "$workload" "$what" "$tps" \
            "$(field p50_us "$line")" "$(field p99_us "$line")" "$(field p999_us "$line")" "$ratio" | tee -a "$SUMMARY"
    done
done
if python3 -c 'import matplotlib' 2>/dev/null; then
    for workload in $WORKLOADS; do
        python3 "$REPO/benches/plot-latency.py" -o "$OUT_DIR/latency-$workload.png" \
            --title "$workload: latency per request, $STAMP" \
            "$OUT_DIR/ledger-batched-$workload.hgrm=ledger, per frame of 1024 transfers (4 conn x 4 in flight)" \
            "$OUT_DIR/ledger-single-$workload.hgrm=ledger, per transfer (32 conn x 1 in flight)" \
            "$OUT_DIR/postgres-$workload.hgrm=postgres SELECT ... FOR UPDATE, per transfer ($PG_CLIENTS clients)" >&2
    done
else
    log "no plots: matplotlib is missing (pip install matplotlib), run benches/plot-latency.py later"
fi
if grep -q 'verified=FAILED' "$SUMMARY"; then
    log "a run FAILED verification (see $SUMMARY)"
    exit 1
fi
log "summary in $SUMMARY"
