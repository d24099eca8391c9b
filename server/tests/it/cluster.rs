//! Replica groups for real: three etcd members and `ledgerd` processes on 127.0.0.1, driven
//! over TCP. A standby refuses with `not_primary` and follows the log; when the primary is
//! killed, the standby takes over and every acknowledged transaction is on it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::{AccountKind, AccountLimits, Amount, CommandBody, CurrencyCode, ResultCode, TxId};
use protocol::client::{Client, ClientError};
use protocol::group::GroupClient;
use protocol::wire::ErrorCode;

use crate::harness::{client, key, wait_until, Ledgerd};

const USERS: u32 = 8;
const DEPOSIT_MINOR: i128 = 1_000_000;

fn node_args(endpoints: &str, node: &str) -> Vec<String> {
    ["--cluster", endpoints, "--ledger", "test", "--node", node, "--lease-ttl-s", "2"]
        .iter()
        .map(|arg| arg.to_string())
        .collect()
}

fn start_node(endpoints: &str, node: &str) -> Ledgerd {
    let args = node_args(endpoints, node);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ledgerd::start_fresh(&args)
}

/// Starts `previous`'s node again on its data directory (after a kill -9).
fn restart_node(previous: Ledgerd, endpoints: &str, node: &str) -> Ledgerd {
    let args = node_args(endpoints, node);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ledgerd::restart_with(previous, &args)
}

/// The node's role; `None` while its metrics do not answer (it is down, or starting again).
fn role_of(node: &Ledgerd) -> Option<&'static str> {
    let metrics = node.try_metrics()?;
    ["primary", "standby", "starting", "stopped"]
        .into_iter()
        .find(|role| metrics.contains(&format!("ledger_replication_role{{role=\"{role}\"}} 1")))
}

/// Waits up to `timeout_s` for the node to have `role`; fails with what it printed.
fn wait_for_role(node: &Ledgerd, role: &str, timeout_s: u64) {
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    while role_of(node) != Some(role) {
        assert!(
            Instant::now() < deadline,
            "not {role} within {timeout_s} s (now {:?}); it printed:\n{}",
            role_of(node),
            node.output()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn log_seq(node: &Ledgerd) -> u64 {
    let Some(metrics) = node.try_metrics() else {
        panic!("the node does not answer; it printed:\n{}", node.output());
    };
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("ledger_replication_log_seq "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

fn user(index: u32) -> String {
    format!("user-{index}")
}

fn setup(admin: &mut Client) {
    let usd = CurrencyCode::new("USD").expect("code");
    let open = |account: &str, kind| CommandBody::OpenAccount {
        account_no: key(account),
        user_id: 1,
        currency: usd,
        kind,
        limits: AccountLimits::default(),
    };
    let mut commands = vec![(TxId(1), open("bank", AccountKind::System))];
    for index in 0..USERS {
        commands.push((TxId(10 + u128::from(index)), open(&user(index), AccountKind::User)));
        let deposit = CommandBody::Deposit {
            account_no: key(&user(index)),
            channel_no: key("bank"),
            amount: Amount { mantissa: DEPOSIT_MINOR, scale: 2 },
        };
        commands.push((TxId(100 + u128::from(index)), deposit));
    }
    let outcomes = admin.submit(commands).expect("setup");
    assert!(outcomes.iter().all(|outcome| outcome.result == ResultCode::Ok), "{outcomes:?}");
}

/// What the writers saw acknowledged: tx_id → result.
type Acknowledged = Arc<Mutex<BTreeMap<u128, ResultCode>>>;

/// A writer: transfers between the users, one per request, against whichever node serves,
/// re-sending a command whose outcome is unknown with the same tx_id elsewhere.
fn writer(
    stream: u128,
    nodes: Arc<Mutex<Vec<std::net::SocketAddr>>>,
    acknowledged: Acknowledged,
    stop: Arc<AtomicBool>,
    first_ack_after_kill: Arc<Mutex<Option<Instant>>>,
    killed_at: Arc<Mutex<Option<Instant>>>,
) {
    let mut next = 0u128;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ stream as u64;
    let mut pending: Option<(u128, CommandBody)> = None;
    let mut connection: Option<Client> = None;
    while !stop.load(Ordering::Acquire) || pending.is_some() {
        let (tx_id, body) = pending.take().unwrap_or_else(|| {
            next += 1;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let from = (rng % u64::from(USERS)) as u32;
            let to = ((rng >> 8) % u64::from(USERS)) as u32;
            let amount = Amount { mantissa: 1 + i128::from((rng >> 16) % 5_000), scale: 2 };
            let body = CommandBody::Transfer { from: key(&user(from)), to: key(&user(to)), amount };
            ((stream << 64) | next, body)
        });
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => {
                let addrs = nodes.lock().expect("lock").clone();
                let found = addrs.iter().find_map(|addr| {
                    let (id, secret) = crate::harness::credentials("writer");
                    let credentials = protocol::auth::ClientCredentials::new(&id, secret).ok()?;
                    let options = protocol::client::ClientOptions {
                        connect_timeout_ms: 500,
                        request_timeout_ms: 2_000,
                        in_flight_max: 4,
                        tls: None,
                    };
                    Client::connect(*addr, &credentials, options).ok()
                });
                match found {
                    Some(conn) => connection.insert(conn),
                    None => {
                        pending = Some((tx_id, body));
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
            }
        };
        match conn.submit(vec![(TxId(tx_id), body)]) {
            Ok(outcomes) => {
                acknowledged.lock().expect("lock").insert(tx_id, outcomes[0].result);
                if killed_at.lock().expect("lock").is_some() {
                    first_ack_after_kill.lock().expect("lock").get_or_insert_with(Instant::now);
                }
            }
            Err(ClientError::Refused { code: ErrorCode::NotPrimary, .. }) => {
                // Nothing executed: try the other nodes.
                pending = Some((tx_id, body));
                connection = None;
                nodes.lock().expect("lock").rotate_left(1);
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => {
                // Outcome unknown (the node died, or its journal/log stage failed): re-send
                // the same tx_id, on whichever node serves now.
                pending = Some((tx_id, body));
                connection = None;
                nodes.lock().expect("lock").rotate_left(1);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Writers running against a group, and what they saw acknowledged.
struct Load {
    nodes: Arc<Mutex<Vec<std::net::SocketAddr>>>,
    acknowledged: Acknowledged,
    stop: Arc<AtomicBool>,
    first_ack_after_mark: Arc<Mutex<Option<Instant>>>,
    mark: Arc<Mutex<Option<Instant>>>,
    writers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addrs: &[std::net::SocketAddr], streams: u128) -> Load {
        Load::start_streams(addrs, 1..=streams)
    }

    /// Writers for `streams` (their tx_ids are `stream << 64 | n`: another range, other ids).
    fn start_streams(
        addrs: &[std::net::SocketAddr],
        streams: std::ops::RangeInclusive<u128>,
    ) -> Load {
        let nodes = Arc::new(Mutex::new(addrs.to_vec()));
        let acknowledged: Acknowledged = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let first_ack_after_mark = Arc::new(Mutex::new(None));
        let mark = Arc::new(Mutex::new(None));
        let writers = streams
            .map(|stream| {
                let (nodes, acknowledged, stop) =
                    (nodes.clone(), acknowledged.clone(), stop.clone());
                let (first, mark) = (first_ack_after_mark.clone(), mark.clone());
                std::thread::spawn(move || writer(stream, nodes, acknowledged, stop, first, mark))
            })
            .collect();
        Load { nodes, acknowledged, stop, first_ack_after_mark, mark, writers }
    }

    /// A node restarted on a new port: the writers look for it there.
    fn replace(&self, old: std::net::SocketAddr, new: std::net::SocketAddr) {
        for addr in self.nodes.lock().expect("lock").iter_mut().filter(|addr| **addr == old) {
            *addr = new;
        }
    }

    fn acked(&self) -> usize {
        self.acknowledged.lock().expect("lock").len()
    }

    /// Waits until `more` acknowledgements beyond the current count arrived.
    fn wait_for_more(&self, more: usize, timeout: Duration) {
        let target = self.acked() + more;
        wait_until(timeout, || self.acked() >= target);
    }

    /// Marks now (a fault injected): `since_mark` then tells when the first write after it
    /// was acknowledged.
    fn mark(&self) {
        *self.first_ack_after_mark.lock().expect("lock") = None;
        *self.mark.lock().expect("lock") = Some(Instant::now());
    }

    fn since_mark(&self, timeout: Duration) -> Duration {
        wait_until(timeout, || self.first_ack_after_mark.lock().expect("lock").is_some());
        let mark = self.mark.lock().expect("lock").expect("marked");
        let first = self.first_ack_after_mark.lock().expect("lock").expect("acknowledged");
        first.duration_since(mark)
    }

    /// Stops the writers (each finishes the command it holds) and returns what was acknowledged.
    fn finish(self) -> BTreeMap<u128, ResultCode> {
        self.stop.store(true, Ordering::Release);
        for writer in self.writers {
            writer.join().expect("writer");
        }
        let _ = self.nodes;
        self.acknowledged.lock().expect("lock").clone()
    }
}

/// Every acknowledged transaction is on the group's primary with the same result, and the
/// users hold exactly what was deposited. Reads through a group client given every address.
fn verify(addrs: &[std::net::SocketAddr], acknowledged: &BTreeMap<u128, ResultCode>) {
    let (id, secret) = crate::harness::credentials("reader");
    let credentials = protocol::auth::ClientCredentials::new(&id, secret).expect("credentials");
    let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let mut reader = GroupClient::connect(&addrs, &credentials, crate::harness::options(), 15_000)
        .expect("a node serves");
    for (tx_id, result) in acknowledged {
        let tx =
            reader.tx(TxId(*tx_id)).expect("query").unwrap_or_else(|| panic!("tx {tx_id:x} lost"));
        assert_eq!(tx.result, *result, "tx {tx_id:x}");
    }
    let mut total_minor = 0;
    for index in 0..USERS {
        let view = reader.account(&key(&user(index))).expect("query").expect("account");
        total_minor += view.available_minor + view.frozen_minor;
    }
    assert_eq!(total_minor, DEPOSIT_MINOR * i128::from(USERS), "money conserved");
}

/// Every node reaches the same log seq, then, stopped one by one (standbys first), reports
/// the same last seq and `state_hash`: the replicas converged.
fn converge(nodes: Vec<Ledgerd>) {
    let caught_up = (0..2000).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        let seqs: Vec<u64> = nodes.iter().map(log_seq).collect();
        seqs.iter().all(|seq| *seq == seqs[0] && *seq > 0)
    });
    let seqs: Vec<u64> = nodes.iter().map(log_seq).collect();
    assert!(caught_up, "the replicas did not reach the same log seq: {seqs:?}");
    // Caught up, the standbys say so (their lag is measured every 500 ms).
    for node in nodes.iter().filter(|node| role_of(node) == Some("standby")) {
        let caught_up = (0..300).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            let metrics = node.try_metrics().unwrap_or_default();
            metrics.contains("\nledger_replication_lag_records 0\n")
                && metrics.contains("\nledger_replication_lag_seconds 0\n")
        });
        assert!(
            caught_up,
            "a standby still reports a lag:\n{}",
            node.try_metrics().unwrap_or_default()
        );
    }
    let mut nodes = nodes;
    nodes.sort_by_key(|node| role_of(node) == Some("primary"));
    let stopped: Vec<String> = nodes
        .into_iter()
        .map(|node| {
            let (status, output) = node.sigterm();
            assert!(status.success(), "{output}");
            let line = output.lines().rev().find(|line| line.starts_with("stopped: "));
            let line = line.unwrap_or_else(|| panic!("no stop report:\n{output}"));
            // "stopped: last seq N, durable seq N, state_hash H, ..."
            line.split(", ")
                .filter(|part| !part.contains("commands"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    assert!(stopped.iter().all(|line| *line == stopped[0]), "the replicas diverged: {stopped:#?}");
}

/// Three etcd members, a primary `a` (with the accounts set up) and a standby `b`.
fn group() -> (tempfile::TempDir, etcd::local::LocalCluster, Ledgerd, Ledgerd) {
    let etcd_dir = tempfile::tempdir().expect("temp dir");
    let etcd = etcd::local::LocalCluster::start(3, etcd_dir.path()).expect("start 3 etcd members");
    let endpoints = etcd.endpoints().join(",");
    let a = start_node(&endpoints, "a");
    wait_for_role(&a, "primary", 20);
    let b = start_node(&endpoints, "b");
    wait_for_role(&b, "standby", 20);
    setup(&mut client(&a, "admin"));
    (etcd_dir, etcd, a, b)
}

#[test]
fn a_standby_follows_refuses_and_takes_over_with_every_acknowledged_transaction() {
    let (_etcd_dir, etcd, mut a, b) = group();
    // The standby refuses, and says where the primary is.
    let mut on_b = client(&b, "writer");
    match on_b.account(&key("user-0")) {
        Err(ClientError::Refused { code: ErrorCode::NotPrimary, message, .. }) => {
            assert_eq!(message, format!("primary={}", a.addr));
        }
        other => panic!("a standby answered {other:?}"),
    }
    let load = Load::start(&[a.addr, b.addr], 4);
    load.wait_for_more(300, Duration::from_secs(20));
    // The standby keeps up.
    let caught_up = (0..1000).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        log_seq(&b) + 200 >= log_seq(&a)
    });
    assert!(
        caught_up,
        "standby at seq {}, primary at {}:\n{}",
        log_seq(&b),
        log_seq(&a),
        b.output()
    );

    a.kill9();
    load.mark();
    wait_for_role(&b, "primary", 15);
    let took = load.since_mark(Duration::from_secs(15));
    assert!(took < Duration::from_secs(5), "failover took {took:?}");
    load.wait_for_more(200, Duration::from_secs(20));
    let acknowledged = load.finish();
    // A group client given the dead node first finds the one that serves.
    verify(&[a.addr, b.addr], &acknowledged);
    // The CLI: given both addresses (the dead one first), and the group's status from etcd.
    let env = cli::RunEnv { now_ns: 1, fresh_tx_id: Ok(TxId(u128::MAX - 1)) };
    let credentials = b.data_dir().join("admin.credentials").to_string_lossy().into_owned();
    let addrs = format!("{},{}", a.addr, b.addr);
    let line = ["ledger", "--addr", &addrs, "--credentials", &credentials, "balance", "user-0"];
    let balance = cli::run(line, &env);
    assert_eq!(balance.exit as i32, 0, "{}{}", balance.stdout, balance.stderr);
    let endpoints = etcd.endpoints().join(",");
    let line = ["ledger", "--json", "cluster", "status", "--etcd", &endpoints, "--ledger", "test"];
    // Replica records are refreshed every 500 ms: give the new primary's a moment.
    let mut status = cli::run(line, &env);
    for _ in 0..30 {
        if status.stdout.contains("\"role\":\"primary\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        status = cli::run(line, &env);
    }
    assert_eq!(status.exit as i32, 0, "{}{}", status.stdout, status.stderr);
    assert!(status.stdout.contains("\"primary\":\"b\""), "{}", status.stdout);
    assert!(status.stdout.contains("\"epoch\":2"), "{}", status.stdout);
    assert!(status.stdout.contains("\"node\":\"b\",\"role\":\"primary\""), "{}", status.stdout);
    // The log's range and the floors: the dead node keeps its floor.
    assert!(status.stdout.contains("\"oldest_entry\":1,"), "{}", status.stdout);
    assert!(status.stdout.contains("{\"node\":\"a\",\"entry\":"), "{}", status.stdout);
    eprintln!(
        "failover: {} acknowledged, first write on the new primary {} ms after kill -9",
        acknowledged.len(),
        took.as_millis()
    );
    drop(etcd);
}

#[test]
fn etcd_member_failures_lose_nothing_and_without_a_quorum_nothing_is_acknowledged() {
    let (_etcd_dir, mut etcd, a, b) = group();
    let load = Load::start(&[a.addr, b.addr], 4);
    load.wait_for_more(200, Duration::from_secs(20));

    // kill -9 the etcd leader under load: writes go on (at most an append's timeout later).
    let leader = etcd.wait_for_leader(5_000).expect("an etcd leader");
    etcd.kill(leader).expect("kill the etcd leader");
    load.mark();
    let resumed = load.since_mark(Duration::from_secs(15));
    load.wait_for_more(200, Duration::from_secs(20));
    etcd.restart(leader).expect("restart it");
    load.wait_for_more(100, Duration::from_secs(20));

    // Two of three members stopped: no quorum, nothing is acknowledged.
    let leader = etcd.wait_for_leader(5_000).expect("an etcd leader");
    let other = (0..3).find(|&member| member != leader).expect("three members");
    let stopped = [leader, other];
    for &member in &stopped {
        etcd.stop(member).expect("SIGSTOP a member");
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = load.acked();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(load.acked(), during, "acknowledged without an etcd quorum");
    for &member in &stopped {
        etcd.cont(member).expect("SIGCONT");
    }
    load.mark();
    let back = (0..2000).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        load.first_ack_after_mark.lock().expect("lock").is_some()
    });
    assert!(back, "no write after the quorum came back\na:\n{}\nb:\n{}", a.output(), b.output());
    let regained = load.since_mark(Duration::from_secs(1));
    load.wait_for_more(200, Duration::from_secs(20));
    // The primary rides out the outage, or (its lease expired meanwhile: etcd expires leases
    // after an outage longer than their TTL when the same etcd leader carries on) it exits and
    // the standby takes over.
    let served_by = if a.try_metrics().is_some() { "a" } else { "b" };
    let acknowledged = load.finish();
    verify(&[a.addr, b.addr], &acknowledged);
    eprintln!(
        "etcd faults: {} acknowledged; writes resumed {} ms after the etcd leader's kill, {} ms after the quorum came back (then served by {served_by})",
        acknowledged.len(),
        resumed.as_millis(),
        regained.as_millis()
    );
}

#[test]
fn a_paused_primary_is_replaced_acknowledges_nothing_after_it_wakes_and_rejoins() {
    let (_etcd_dir, etcd, mut a, b) = group();
    let load = Load::start(&[a.addr, b.addr], 4);
    load.wait_for_more(200, Duration::from_secs(20));
    // Paused longer than its lease (2 s): the standby claims the leadership and serves.
    a.signal(libc::SIGSTOP);
    load.mark();
    wait_for_role(&b, "primary", 15);
    let took = load.since_mark(Duration::from_secs(15));
    load.wait_for_more(100, Duration::from_secs(20));
    // Woken: its lease is gone and its appends are fenced; it acknowledges nothing more,
    // starts again on its data directory (its unacknowledged tail cut off) and follows.
    a.signal(libc::SIGCONT);
    wait_until(Duration::from_secs(20), || a.output().contains("rejoining as a standby"));
    wait_for_role(&a, "standby", 20);
    assert!(a.wait_exit(Duration::ZERO).is_none(), "the old primary exited:\n{}", a.output());
    load.wait_for_more(100, Duration::from_secs(20));
    let acknowledged = load.finish();
    verify(&[a.addr, b.addr], &acknowledged);
    let cut =
        a.output().lines().find(|line| line.contains("off the local journal")).map(str::to_owned);
    converge(vec![a, b]);
    eprintln!(
        "pause: {} acknowledged; the new primary served {} ms after SIGSTOP; the old one rejoined ({})",
        acknowledged.len(),
        took.as_millis(),
        cut.as_deref().unwrap_or("nothing to cut")
    );
    drop(etcd);
}

/// Failovers in a row: `LEDGER_FAILOVER_ROUNDS` (default 20) times, the primary of a group of
/// three is killed with -9 at a random instant under load and started again on its data
/// directory; nothing acknowledged is lost, and the replicas converge.
#[test]
fn failovers_by_kill_9_in_a_row_lose_nothing() {
    let rounds: usize = std::env::var("LEDGER_FAILOVER_ROUNDS")
        .ok()
        .map(|value| value.parse().expect("LEDGER_FAILOVER_ROUNDS is a number"))
        .unwrap_or(20);
    let seed: u64 = std::env::var("LEDGER_FAILOVER_SEED")
        .ok()
        .map(|value| value.parse().expect("LEDGER_FAILOVER_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |since| since.as_nanos() as u64)
                | 1
        });
    eprintln!("failover loop: {rounds} rounds, LEDGER_FAILOVER_SEED={seed}");
    let mut rng = seed;
    let mut next_random = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let (_etcd_dir, etcd, a, b) = group();
    let endpoints = etcd.endpoints().join(",");
    let c = start_node(&endpoints, "c");
    wait_for_role(&c, "standby", 20);
    let names = ["a", "b", "c"];
    let mut nodes = vec![a, b, c];
    let addrs: Vec<_> = nodes.iter().map(|node| node.addr).collect();
    let load = Load::start(&addrs, 4);
    let mut took_ms = Vec::new();
    let mut cuts = 0;
    for round in 0..rounds {
        load.wait_for_more(50, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(next_random(700)));
        let primary = nodes
            .iter()
            .position(|node| role_of(node) == Some("primary"))
            .unwrap_or_else(|| panic!("round {round}: no primary (seed {seed})"));
        nodes[primary].kill9();
        load.mark();
        let serving = (0..1500).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            nodes
                .iter()
                .enumerate()
                .any(|(index, node)| index != primary && role_of(node) == Some("primary"))
        });
        assert!(serving, "round {round}: no new primary (seed {seed})");
        let took = load.since_mark(Duration::from_secs(15));
        assert!(
            took < Duration::from_secs(5),
            "round {round}: failover took {took:?} (seed {seed})"
        );
        took_ms.push(took.as_millis() as u64);
        // Started again on its data directory: it cuts what it never had acknowledged and
        // follows; the next round may kill it again once it is the primary.
        let killed = nodes.remove(primary);
        let old_addr = killed.addr;
        let again = restart_node(killed, &endpoints, names[primary]);
        load.replace(old_addr, again.addr);
        wait_for_role(&again, "standby", 30);
        cuts += usize::from(again.output().contains("off the local journal"));
        nodes.insert(primary, again);
    }
    load.wait_for_more(100, Duration::from_secs(30));
    let acknowledged = load.finish();
    let addrs: Vec<_> = nodes.iter().map(|node| node.addr).collect();
    verify(&addrs, &acknowledged);
    // The primaries trimmed the log meanwhile, never past a node that was restarting.
    let oldest = oldest_log_index(&etcd.endpoints()).unwrap_or(0);
    let head = nodes.iter().map(log_index).max().unwrap_or(0);
    converge(nodes);
    took_ms.sort_unstable();
    let p50 = took_ms.get(took_ms.len() / 2).copied().unwrap_or(0);
    let max = took_ms.last().copied().unwrap_or(0);
    eprintln!(
        "failover loop: {rounds} kill -9 failovers, {} acknowledged, none lost; kill -9 -> first acknowledged \
         write p50 {p50} ms, max {max} ms; {cuts} restarts cut a tail off their journal; the log in etcd \
         holds entries {oldest}..={head} (seed {seed})",
        acknowledged.len()
    );
    assert!(oldest > 1 || head < 300, "no trim in a log of {head} entries");
    drop(etcd);
}

/// The newest segment of the journal in `data_dir` and the end of its last non-zero byte.
fn last_segment(data_dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>, usize) {
    let mut segments: Vec<_> = std::fs::read_dir(data_dir.join("journal"))
        .expect("journal dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    segments.sort();
    let path = segments.pop().expect("a segment");
    let bytes = std::fs::read(&path).expect("read the segment");
    let data_end = bytes.iter().rposition(|&byte| byte != 0).map_or(0, |at| at + 1);
    (path, bytes, data_end)
}

/// A standby stopped, its journal damaged on disk, started again: it repairs the journal from
/// the log (records lost off the end: a tail zeroed; then a page lost in the middle, later
/// pages intact, as a power loss mid-flush leaves it) and converges with the primary.
#[test]
fn a_standby_with_a_lost_or_damaged_journal_tail_repairs_it_from_the_log() {
    let (_etcd_dir, etcd, a, b) = group();
    let endpoints = etcd.endpoints().join(",");
    let load = Load::start(&[a.addr, b.addr], 4);
    let mut b = b;
    for damage in ["lost tail", "lost page"] {
        load.wait_for_more(400, Duration::from_secs(30));
        let stopped = b.stop();
        let (path, mut bytes, data_end) = last_segment(&stopped.data_dir());
        // Near the end (the log keeps a margin of entries below the lowest floor to read
        // again): the last two pages lost, or the page before them with the later ones kept.
        let page = 4096;
        let near_end = (data_end / page).saturating_sub(2) * page;
        assert!(near_end >= 2 * page, "{damage}: enough records ({data_end} bytes)");
        match damage {
            "lost tail" => bytes[near_end..data_end].fill(0),
            _ => bytes[near_end - page..near_end].fill(0),
        }
        std::fs::write(&path, &bytes).expect("damage the segment");
        b = restart_node(stopped, &endpoints, "b");
        wait_for_role(&b, "standby", 30);
        let output = b.output();
        assert!(output.contains("following again from seq"), "{damage}: not rewound:\n{output}");
        if damage == "lost page" {
            assert!(output.contains("the local journal was damaged"), "{damage}:\n{output}");
        }
        for line in output.lines().filter(|line| line.starts_with("replication: ")) {
            eprintln!("{damage}: {line}");
        }
    }
    load.wait_for_more(200, Duration::from_secs(30));
    let acknowledged = load.finish();
    verify(&[a.addr, b.addr], &acknowledged);
    converge(vec![a, b]);
    drop(etcd);
}

/// The log's oldest entry index in etcd (`None`: no entry).
fn oldest_log_index(endpoints: &[String]) -> Option<u64> {
    let client = etcd::Client::connect(endpoints, 2_000, 2_000).expect("etcd");
    let result = client.range_prefix(b"/ledger/test/log/", 1).expect("range");
    let key = result.kvs.first()?.key.clone();
    String::from_utf8(key).ok()?.rsplit('/').next()?.parse().ok()
}

/// The log is trimmed in etcd. A standby away while the log moved more than
/// `--log-entries-max` ahead is passed by the trim: it catches up by a state transfer from a
/// peer (the peer's newest snapshot and the journal segments after it, cut at the log's newest
/// checkpoint entry, the state checked against that entry's `state_hash`), and so does a new
/// node that joins once the first entries are gone; both follow and converge. A node that can
/// reach no peer that serves says how to re-seed it, and its data directory is unchanged.
#[test]
fn a_replica_passed_by_the_trim_catches_up_by_a_state_transfer() {
    let etcd_dir = tempfile::tempdir().expect("temp dir");
    let etcd = etcd::local::LocalCluster::start(3, etcd_dir.path()).expect("start 3 etcd members");
    let endpoints = etcd.endpoints().join(",");
    // Snapshots every 300 records: the transfer brings a snapshot, not only the journal.
    let small = |node: &str| {
        let mut args = node_args(&endpoints, node);
        args.extend(["--log-entries-max", "32", "--snapshot-every", "300"].map(str::to_owned));
        args
    };
    let start = |node: &str| Ledgerd::start_fresh(&args_of(&small(node)));
    let a = start("a");
    wait_for_role(&a, "primary", 20);
    let b = start("b");
    wait_for_role(&b, "standby", 20);
    let c = start("c");
    wait_for_role(&c, "standby", 20);
    setup(&mut client(&a, "admin"));
    let load = Load::start(&[a.addr], 4);
    load.wait_for_more(100, Duration::from_secs(30));
    let b = b.stop();
    let b_position = std::fs::read(b.data_dir().join("replication.position")).expect("position");
    // Single-request writers make an entry of a few commands each: far more than 32 + the trim.
    load.wait_for_more(1_200, Duration::from_secs(60));
    let head_index = log_index(&a);
    wait_until(Duration::from_secs(10), || {
        oldest_log_index(&etcd.endpoints()).is_some_and(|oldest| oldest + 64 > head_index)
    });
    // The transfers below run while the log stands still: under this test's load (hundreds
    // of one-command entries a second) a log of 32 entries (and a hold of 32 more) moves past
    // a debug build's copy and recovery. Load runs again once both have caught up.
    let mut acknowledged = load.finish();
    // Without a credential for the peers, no transfer: the node says what to do and changes
    // nothing.
    let mut without = small("b");
    without.extend(["--transfer-credentials", "/nonexistent/admin.credentials"].map(str::to_owned));
    let (b, status, output) = Ledgerd::restart_failing(b, &args_of(&without));
    assert!(!status.success(), "it cannot start:\n{output}");
    assert!(
        output.contains("trimmed past") && output.contains("re-seed"),
        "it says why and what to do:\n{output}"
    );
    let unchanged = std::fs::read(b.data_dir().join("replication.position")).expect("position");
    assert_eq!(unchanged, b_position, "nothing changed");
    // With it (DATA_DIR/admin.credentials, the shared admin), b copies a peer's state.
    let b = Ledgerd::restart_with(b, &args_of(&small("b")));
    wait_for_role(&b, "standby", 60);
    let output = b.output();
    assert!(output.contains("state transfer installed: snapshot at seq"), "{output}");
    assert!(output.contains("matches the checkpoint of log entry"), "{output}");
    let snapshot_seq: u64 = output
        .split("state transfer installed: snapshot at seq ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|seq| seq.parse().ok())
        .unwrap_or_else(|| panic!("the installed snapshot's seq:\n{output}"));
    assert!(snapshot_seq > 0, "a peer's snapshot, not only the genesis one:\n{output}");
    assert!(!b.data_dir().join("transfer").exists(), "the download was installed");
    // What a peer refuses: other roles, a seq it has not applied, a file it does not have.
    match client(&c, "writer").state_offer(1) {
        Err(ClientError::Refused { code: ErrorCode::Forbidden, .. }) => {}
        other => panic!("a writer may not copy the ledger: {other:?}"),
    }
    let mut admin = client(&c, "admin");
    match admin.state_offer(u64::MAX) {
        Err(ClientError::Refused { code: ErrorCode::Unavailable, message, .. }) => {
            assert!(message.contains("holds the log only through seq"), "{message}")
        }
        other => panic!("not applied that far: {other:?}"),
    }
    let missing =
        protocol::wire::StateFile { kind: protocol::wire::StateFileKind::Segment, id: u64::MAX };
    match admin.state_read(missing, 0, 1) {
        Err(ClientError::Refused { code: ErrorCode::Unavailable, message, .. }) => {
            assert!(message.contains("no journal segment"), "{message}")
        }
        other => panic!("no such segment: {other:?}"),
    }
    let files = admin.state_offer(log_seq(&c)).expect("an offer through what c applied");
    assert!(!files.segments.is_empty() && files.snapshot_seq <= log_seq(&c), "{files:?}");
    // A new node joining now: its first entries are gone, so it starts from a peer's state.
    let d = start("d");
    wait_for_role(&d, "standby", 60);
    assert!(d.output().contains("state transfer installed"), "{}", d.output());
    // A standby paused while the log is trimmed past it: its watch still delivers the deleted
    // entries' puts from etcd's history (kept until compaction), so it usually catches up from
    // there; when its watch is cut (compacted), it starts again and transfers instead.
    c.signal(libc::SIGSTOP);
    let c_index = log_index(&a);
    let load = Load::start_streams(&[a.addr], 5..=8);
    wait_until(Duration::from_secs(60), || {
        oldest_log_index(&etcd.endpoints()).is_some_and(|oldest| oldest > c_index + 1)
    });
    acknowledged.extend(load.finish());
    c.signal(libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_seq(&c) < log_seq(&a) || role_of(&c) != Some("standby") {
        assert!(Instant::now() < deadline, "c did not catch up; it printed:\n{}", c.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    // All three follow what comes next.
    let load = Load::start_streams(&[a.addr], 9..=12);
    load.wait_for_more(300, Duration::from_secs(60));
    acknowledged.extend(load.finish());
    verify(&[a.addr], &acknowledged);
    converge(vec![a, b, c, d]);
    drop(etcd);
}

/// A group whose nodes serve mutual TLS only: a node that joins after the trim copies a peer's
/// state over TLS, presenting the admin's client certificate (`--transfer-tls-*`).
#[test]
fn a_state_transfer_runs_over_mutual_tls() {
    let pki = crate::tls::Pki::new("group CA");
    let etcd_dir = tempfile::tempdir().expect("temp dir");
    let etcd = etcd::local::LocalCluster::start(3, etcd_dir.path()).expect("start 3 etcd members");
    let endpoints = etcd.endpoints().join(",");
    let args = |node: &str| {
        let mut args = node_args(&endpoints, node);
        args.extend(["--log-entries-max".to_owned(), "4".to_owned()]);
        args.extend(pki.server_flags(true));
        args
    };
    let a = Ledgerd::start_fresh(&args_of(&args("a")));
    wait_for_role(&a, "primary", 20);
    let b = Ledgerd::start_fresh(&args_of(&args("b")));
    wait_for_role(&b, "standby", 20);
    let admin_cert = pki.client("admin");
    let mut admin =
        crate::tls::connect(&a, "admin", pki.options(Some(&admin_cert))).expect("mutual TLS");
    setup(&mut admin);
    // One request per round, one round per entry: far more entries than the log keeps.
    for n in 0..40u128 {
        let body = CommandBody::Transfer {
            from: key(&user(0)),
            to: key(&user(1)),
            amount: Amount { mantissa: 1, scale: 2 },
        };
        let outcome = admin.submit(vec![(TxId(1_000 + n), body)]).expect("submit");
        assert_eq!(outcome[0].result, ResultCode::Ok);
    }
    wait_until(Duration::from_secs(10), || {
        oldest_log_index(&etcd.endpoints()).is_some_and(|oldest| oldest > 1)
    });
    let mut late = args("c");
    let (cert, key_file) = (admin_cert.0.display().to_string(), admin_cert.1.display().to_string());
    let ca = pki.path("ca.pem").display().to_string();
    late.extend(
        ["--transfer-tls-ca", &ca, "--transfer-tls-cert", &cert, "--transfer-tls-key", &key_file]
            .map(str::to_owned),
    );
    let c = Ledgerd::start_fresh(&args_of(&late));
    wait_for_role(&c, "standby", 60);
    assert!(c.output().contains("state transfer installed"), "{}", c.output());
    assert!(c.output().contains("matches the checkpoint of log entry"), "{}", c.output());
    converge(vec![a, b, c]);
    drop(etcd);
}

fn args_of(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn log_index(node: &Ledgerd) -> u64 {
    let metrics = node.try_metrics().unwrap_or_default();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("ledger_replication_log_index "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// The CLI against a group (`--addr A,B`, whichever serves), with `credentials`.
fn group_cli(addrs: &str, credentials: &std::path::Path, args: &[&str]) -> cli::Rendered {
    let credentials = credentials.to_string_lossy().into_owned();
    let mut line = vec!["ledger", "--addr", addrs, "--credentials", &credentials];
    line.extend_from_slice(args);
    let env = cli::RunEnv {
        now_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)),
        fresh_tx_id: Ok(TxId(u128::MAX - 7)),
    };
    cli::run(line, &env)
}

/// Settlement on a replica group: only the primary settles with the bank; after a kill -9 the
/// new primary's processor takes over what was in flight (from the journal it followed) and
/// settles what comes next.
#[test]
fn the_primary_settles_and_its_successor_takes_over() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the bank");
    let bank_addr = listener.local_addr().expect("bank address");
    let config = bank::sim::BankConfig { latency_ms: 5, ..bank::sim::BankConfig::default() };
    let _bank = bank::server::spawn(listener, config).expect("bank");
    let channel = format!("bank={bank_addr}");
    let etcd_dir = tempfile::tempdir().expect("temp dir");
    let etcd = etcd::local::LocalCluster::start(3, etcd_dir.path()).expect("start 3 etcd members");
    let endpoints = etcd.endpoints().join(",");
    let start = |node: &str| {
        let mut args = node_args(&endpoints, node);
        args.extend(["--channel".to_owned(), channel.clone()]);
        Ledgerd::start_fresh(&args_of(&args))
    };
    let mut a = start("a");
    wait_for_role(&a, "primary", 20);
    let b = start("b");
    wait_for_role(&b, "standby", 20);
    wait_until(Duration::from_secs(5), || a.output().contains("settling channel bank"));
    assert!(!b.output().contains("settling channel"), "a standby does not settle:\n{}", b.output());
    let addrs = format!("{},{}", a.addr, b.addr);
    let credentials = b.data_dir().join("admin.credentials");
    let run = |args: &[&str]| {
        let out = group_cli(&addrs, &credentials, args);
        assert_eq!(out.exit as i32, 0, "{args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    };
    for (account, kind, tx_id) in [("alice", "user", "100"), ("bank", "system", "101")] {
        let open = ["account", "open", account, "--user", "1", "--currency", "USD"];
        run(&[&open[..], &["--kind", kind, "--tx-id", tx_id]].concat());
    }
    let settled = |tx_id: &str| {
        let out = group_cli(&addrs, &credentials, &["tx", tx_id, "--json"]);
        out.stdout.contains("\"state\":\"settled\"")
    };
    run(&["deposit", "alice", "100", "--channel", "bank", "--tx-id", "1"]);
    wait_until(Duration::from_secs(20), || settled("1"));
    // Deposits in flight at the kill: the successor finishes them and settles new ones.
    for tx_id in 2..=6 {
        run(&["deposit", "alice", "1", "--channel", "bank", "--tx-id", &tx_id.to_string()]);
    }
    a.kill9();
    wait_for_role(&b, "primary", 15);
    run(&["deposit", "alice", "2", "--channel", "bank", "--tx-id", "7"]);
    for tx_id in 2..=7 {
        let tx_id = tx_id.to_string();
        wait_until(Duration::from_secs(30), || settled(&tx_id));
    }
    assert!(b.output().contains("this node is the primary: settlement starts"), "{}", b.output());
    assert_eq!(b.output().matches("settling channel bank").count(), 1, "{}", b.output());
    let balance = run(&["balance", "alice", "--json"]);
    assert!(balance.contains("\"ledger\":\"107.00\""), "{balance}");
    drop(etcd);
}
