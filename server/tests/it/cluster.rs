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

fn role_of(node: &Ledgerd) -> Option<&'static str> {
    let Some(metrics) = node.try_metrics() else {
        panic!("the node does not answer; it printed:\n{}", node.output());
    };
    ["primary", "standby", "starting", "stopped"]
        .into_iter()
        .find(|role| metrics.contains(&format!("ledger_replication_role{{role=\"{role}\"}} 1")))
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
        let nodes = Arc::new(Mutex::new(addrs.to_vec()));
        let acknowledged: Acknowledged = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let first_ack_after_mark = Arc::new(Mutex::new(None));
        let mark = Arc::new(Mutex::new(None));
        let writers = (1..=streams)
            .map(|stream| {
                let (nodes, acknowledged, stop) =
                    (nodes.clone(), acknowledged.clone(), stop.clone());
                let (first, mark) = (first_ack_after_mark.clone(), mark.clone());
                std::thread::spawn(move || writer(stream, nodes, acknowledged, stop, first, mark))
            })
            .collect();
        Load { nodes, acknowledged, stop, first_ack_after_mark, mark, writers }
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

/// Three etcd members, a primary `a` (with the accounts set up) and a standby `b`.
fn group() -> (tempfile::TempDir, etcd::local::LocalCluster, Ledgerd, Ledgerd) {
    let etcd_dir = tempfile::tempdir().expect("temp dir");
    let etcd = etcd::local::LocalCluster::start(3, etcd_dir.path()).expect("start 3 etcd members");
    let endpoints = etcd.endpoints().join(",");
    let a = start_node(&endpoints, "a");
    wait_until(Duration::from_secs(20), || role_of(&a) == Some("primary"));
    let b = start_node(&endpoints, "b");
    wait_until(Duration::from_secs(20), || role_of(&b) == Some("standby"));
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
    wait_until(Duration::from_secs(15), || role_of(&b) == Some("primary"));
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
fn a_paused_primary_is_replaced_and_acknowledges_nothing_after_it_wakes() {
    let (_etcd_dir, etcd, mut a, b) = group();
    let load = Load::start(&[a.addr, b.addr], 4);
    load.wait_for_more(200, Duration::from_secs(20));
    // Paused longer than its lease (2 s): the standby claims the leadership and serves.
    a.signal(libc::SIGSTOP);
    load.mark();
    wait_until(Duration::from_secs(15), || role_of(&b) == Some("primary"));
    let took = load.since_mark(Duration::from_secs(15));
    load.wait_for_more(100, Duration::from_secs(20));
    // Woken: its lease is gone and its appends are fenced; it stops and exits.
    a.signal(libc::SIGCONT);
    let status = a.wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(75), "the old primary exits:\n{}", a.output());
    load.wait_for_more(100, Duration::from_secs(20));
    let acknowledged = load.finish();
    verify(&[a.addr, b.addr], &acknowledged);
    eprintln!(
        "pause: {} acknowledged; the new primary served {} ms after SIGSTOP",
        acknowledged.len(),
        took.as_millis()
    );
    drop(etcd);
}
