//! `ledger-replay` end to end: journals written through the real journal crate (the format the
//! runtime writes: one engine command per record, a genesis snapshot at seq 0), the real
//! binary run on them, outputs checked against an engine fed the same commands.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};

use engine::{
    encode_command, AccountKind, AccountLimits, AccountNo, Amount, Command, CommandBody,
    CurrencyCode, Effects, Engine, EngineConfig, TxId,
};
use journal::{Journal, JournalOptions, SyncMode};

const CONFIG: EngineConfig = EngineConfig { tx_retained: 1_024, hash_seed: 7 };

fn key(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid key")
}

fn amount(text: &str) -> Amount {
    text.parse().expect("valid amount")
}

/// A scripted workload: accounts, deposits (some settled, one failed), transfers, a hold.
fn workload() -> Vec<Command> {
    let usd = CurrencyCode::new("USD").expect("valid code");
    let mut bodies = Vec::new();
    for (account, kind) in [
        ("alice", AccountKind::User),
        ("bob", AccountKind::User),
        ("carol", AccountKind::User),
        ("bank", AccountKind::System),
        ("risk", AccountKind::Risk),
    ] {
        bodies.push(CommandBody::OpenAccount {
            account_no: key(account),
            user_id: 1,
            currency: usd,
            kind,
            limits: AccountLimits::default(),
        });
    }
    let deposit = |account: &str, text: &str| CommandBody::Deposit {
        account_no: key(account),
        channel_no: key("bank"),
        amount: amount(text),
    };
    bodies.push(deposit("alice", "500.00")); // tx 6
    bodies.push(deposit("bob", "80.00")); // tx 7
    bodies.push(CommandBody::SettleBegin { target: TxId(6) });
    bodies.push(CommandBody::SettleConfirm { target: TxId(6) });
    for round in 0..40 {
        let (from, to) = [("alice", "bob"), ("bob", "carol"), ("carol", "alice")][round % 3];
        bodies.push(CommandBody::Transfer { from: key(from), to: key(to), amount: amount("1.25") });
    }
    bodies.push(CommandBody::Freeze {
        account_no: key("alice"),
        amount: amount("10"),
        expires_ns: None,
    });
    let hold = TxId(bodies.len() as u128);
    bodies.push(CommandBody::Capture { hold, to: key("carol"), amount: amount("4") });
    bodies.push(CommandBody::Transfer { from: key("bob"), to: key("carol"), amount: amount("70") });
    bodies.push(CommandBody::SettleBegin { target: TxId(7) });
    bodies.push(CommandBody::SettleFail { target: TxId(7) });
    bodies.push(CommandBody::Transfer {
        from: key("bob"),
        to: key("carol"),
        amount: amount("1000"),
    });
    bodies
        .into_iter()
        .enumerate()
        .map(|(index, body)| Command {
            tx_id: TxId(index as u128 + 1),
            timestamp_ns: 1_000_000 * (index as u64 + 1),
            body,
        })
        .collect()
}

/// Writes `commands` as a ledger data directory: genesis snapshot + journal (small segments).
fn write_ledger(commands: &[Command]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut genesis = Vec::new();
    Engine::new(CONFIG).encode_state(&mut genesis);
    journal::snapshot::write(&journal::snapshot_dir(dir.path()), 0, &genesis).expect("snapshot");
    let options = JournalOptions {
        segment_len_bytes: journal::SEGMENT_LEN_BYTES_MIN,
        sync_mode: SyncMode::None,
    };
    let (mut log, _) = Journal::open(&journal::journal_dir(dir.path()), options).expect("journal");
    let mut payload = Vec::new();
    for command in commands {
        payload.clear();
        encode_command(command, &mut payload);
        log.append(&payload).expect("append");
    }
    log.flush().expect("flush");
    dir
}

/// An engine fed the first `len` commands.
fn engine_after(commands: &[Command], len: usize) -> Engine {
    let mut engine = Engine::new(CONFIG);
    let mut fx = Effects::default();
    for command in &commands[..len] {
        fx.clear();
        engine.apply(command, &mut fx);
    }
    engine
}

fn run(args: &[&str], data_dir: &Path) -> Output {
    let mut process = Process::new(env!("CARGO_BIN_EXE_ledger-replay"));
    process.arg(args[0]).arg(data_dir).args(&args[1..]);
    process.output().expect("run ledger-replay")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(journal::journal_dir(dir))
        .expect("journal dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    paths.sort();
    paths
}

/// Zeroes the second half of the last record (a write torn by a crash); returns the segment and
/// its bytes now.
fn tear_last_record(data_dir: &Path) -> (PathBuf, Vec<u8>) {
    let last = segments(data_dir).pop().expect("a segment");
    let mut bytes = std::fs::read(&last).expect("read segment");
    let end = bytes.iter().rposition(|&b| b != 0).expect("non-empty segment");
    bytes[end - 20..=end].fill(0);
    std::fs::write(&last, &bytes).expect("write segment");
    (last, bytes)
}

#[test]
fn a_sound_journal_verifies_with_the_engines_state_hash() {
    let commands = workload();
    let ledger = write_ledger(&commands);
    assert!(segments(ledger.path()).len() > 1, "the workload must span segments");
    let output = run(&["verify"], ledger.path());
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    let expected = engine_after(&commands, commands.len()).state_hash();
    assert!(text.contains(&format!("state_hash: {expected:032x}")), "{text}");
    assert!(text.contains(&format!("records: {}", commands.len())), "{text}");
    assert!(text.contains(&format!("seq range: 1..={}", commands.len())), "{text}");
    assert!(text.contains("sum(available+frozen)=0.00 sum(ledger)=0.00"), "{text}");
}

#[test]
fn a_corrupt_record_is_reported_at_its_file_and_offset() {
    let commands = workload();
    let ledger = write_ledger(&commands);
    let first = segments(ledger.path()).remove(0);
    let mut bytes = std::fs::read(&first).expect("read segment");
    // Records start after the 64-byte segment header; damage the payload of an early one.
    let offset = 64 + 3 * 64 + 40;
    bytes[offset] ^= 0x55;
    std::fs::write(&first, &bytes).expect("write segment");
    let output = run(&["verify"], ledger.path());
    assert!(!output.status.success());
    let message = stderr(&output);
    let file_name = first.file_name().and_then(|name| name.to_str()).expect("name");
    assert!(message.contains(file_name), "{message}");
    assert!(message.contains("offset"), "{message}");
}

#[test]
fn a_torn_tail_is_reported_and_the_prefix_verifies() {
    let commands = workload();
    let ledger = write_ledger(&commands);
    tear_last_record(ledger.path());
    let output = run(&["verify"], ledger.path());
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert!(text.contains("torn tail"), "{text}");
    let expected = engine_after(&commands, commands.len() - 1).state_hash();
    assert!(text.contains(&format!("records: {}", commands.len() - 1)), "{text}");
    assert!(text.contains(&format!("state_hash: {expected:032x}")), "{text}");
}

#[test]
fn state_at_a_sequence_number_matches_an_engine_at_that_point() {
    let commands = workload();
    let ledger = write_ledger(&commands);
    for seq in [7usize, 30, commands.len()] {
        let output =
            run(&["state", "--at", &seq.to_string(), "--account", "bob", "--json"], ledger.path());
        assert!(output.status.success(), "{}", stderr(&output));
        let engine = engine_after(&commands, seq);
        let bob = engine.account(&key("bob")).expect("bob exists");
        let expected = format!(
            "\"available\":\"{}\",\"frozen\":\"{}\",\"ledger\":\"{}\"",
            engine::format_minor(bob.available_minor, 2),
            engine::format_minor(bob.frozen_minor, 2),
            engine::format_minor(bob.ledger_minor, 2)
        );
        assert!(stdout(&output).contains(&expected), "seq {seq}: {}", stdout(&output));
    }
    let by_time = run(&["state", "--at-time-ns", "7000000", "--account", "bob"], ledger.path());
    assert!(stdout(&by_time).contains("as of seq 7"), "{}", stdout(&by_time));
}

#[test]
fn statements_and_exports_list_every_posting() {
    let commands = workload();
    let ledger = write_ledger(&commands);
    let output = run(&["statement", "carol", "--format", "csv"], ledger.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let last = text.lines().last().expect("rows");
    let carol = engine_after(&commands, commands.len()).account(&key("carol")).expect("carol");
    let tail = format!(
        "{},{},{}",
        engine::format_minor(carol.available_minor, 2),
        engine::format_minor(carol.frozen_minor, 2),
        engine::format_minor(carol.ledger_minor, 2)
    );
    assert!(last.ends_with(&tail), "{last} vs {tail}");

    let mut engine = Engine::new(CONFIG);
    let mut fx = Effects::default();
    let mut postings = 0;
    for command in &commands {
        fx.clear();
        engine.apply(command, &mut fx);
        postings += fx.entries.len();
    }
    for (format, header_lines) in [("csv", 1), ("jsonl", 0)] {
        let output = run(&["export", "--format", format], ledger.path());
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(stdout(&output).lines().count(), postings + header_lines, "{format}");
    }
    assert!(!run(&["statement", "nobody"], ledger.path()).status.success());
}

#[test]
fn reconcile_finds_a_balance_changed_in_a_snapshot() {
    let commands = workload();
    let ledger = write_ledger(&commands);
    let clean = run(&["reconcile"], ledger.path());
    assert!(clean.status.success(), "{}{}", stdout(&clean), stderr(&clean));
    assert!(stdout(&clean).contains("mismatches: 0"), "{}", stdout(&clean));

    // A snapshot at seq 20 with one balance altered (a valid file: the checksum is rewritten,
    // so only reconciliation can tell).
    let mut engine = engine_after(&commands, 20);
    let mut payload = Vec::new();
    engine.encode_state(&mut payload);
    let bob = engine.account(&key("bob")).expect("bob").available_minor;
    let needle = bob.to_le_bytes();
    let at = payload.windows(16).position(|window| window == needle).expect("bob's balance bytes");
    payload[at..at + 16].copy_from_slice(&(bob + 1).to_le_bytes());
    let refused = Engine::decode_state(&payload).err().expect("recovery refuses it");
    assert!(refused.reason.contains("not conserved"), "{refused}");
    engine = Engine::decode_state_for_audit(&payload).expect("an audit still reads it");
    assert!(engine.check_invariants().is_err(), "the altered snapshot no longer balances");
    journal::snapshot::write(&journal::snapshot_dir(ledger.path()), 20, &payload).expect("write");

    let output = run(&["reconcile"], ledger.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("MISMATCH snapshot: account bob available"), "{text}");
    assert!(text.contains("breaks an invariant (recovery refuses it)"), "{text}");
    assert!(text.contains("mismatches: 1"), "{text}");
}

#[test]
fn snapshot_then_tail_of_the_journal() {
    let commands = workload();
    let ledger = write_ledger(&commands);
    let output = run(&["snapshot", "--at", "25"], ledger.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = engine_after(&commands, 25).state_hash();
    assert!(stdout(&output).contains(&format!("state_hash {expected:032x}")));
    // State at 30 now starts from that snapshot and still agrees.
    let state = run(&["state", "--at", "30", "--json"], ledger.path());
    assert!(state.status.success());
    assert_eq!(stdout(&state).lines().count(), 5);

    let tail =
        run(&["tail", "--from", "1", "--idle-exit-ms", "200", "--poll-ms", "20"], ledger.path());
    assert!(tail.status.success(), "{}", stderr(&tail));
    let text = stdout(&tail);
    assert_eq!(text.lines().count(), commands.len());
    assert!(text.lines().next().is_some_and(|line| line.contains("open_account alice")), "{text}");
}

/// A journal written by the server's own runtime (what `ledgerd` runs), audited afterwards:
/// it verifies with the runtime's final state hash, and `state --at` agrees with what the
/// runtime answered at each point.
#[test]
fn a_runtime_journal_verifies_and_state_at_matches_the_served_answers() {
    use runtime::{NewCommand, Query, QueryAnswer, Runtime, RuntimeOptions};

    let dir = tempfile::tempdir().expect("temp dir");
    let options = RuntimeOptions {
        sync_mode: SyncMode::None,
        segment_len_bytes: 64 * 1024,
        engine_config: CONFIG,
        pin_core: None,
        snapshot_every_records: Some(20),
        ..RuntimeOptions::default()
    };
    let (runtime, _) = Runtime::start(dir.path(), options).expect("start the runtime");
    let handle = runtime.handle();
    let mut served = Vec::new();
    for batch in workload().chunks(7) {
        let commands = batch
            .iter()
            .map(|command| NewCommand { tx_id: command.tx_id, body: command.body })
            .collect();
        let executed = handle.execute(commands).expect("execute");
        let answer = handle.query(Query::Account(key("bob"))).expect("query");
        let QueryAnswer::Account(bob) = answer else { panic!("an account answer") };
        served.push((executed.last_seq, bob));
    }
    let report = runtime.shutdown().expect("clean shutdown");

    let output = run(&["verify"], dir.path());
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert!(text.contains(&format!("state_hash: {:032x}", report.state_hash)), "{text}");
    for (seq, bob) in served {
        let output =
            run(&["state", "--at", &seq.to_string(), "--account", "bob", "--json"], dir.path());
        assert!(output.status.success(), "{}", stderr(&output));
        match bob {
            Some(bob) => {
                let expected = format!(
                    "\"available\":\"{}\",\"frozen\":\"{}\",\"ledger\":\"{}\"",
                    engine::format_minor(bob.available_minor, 2),
                    engine::format_minor(bob.frozen_minor, 2),
                    engine::format_minor(bob.ledger_minor, 2)
                );
                assert!(stdout(&output).contains(&expected), "seq {seq}: {}", stdout(&output));
            }
            None => panic!("bob exists from the first batch on"),
        }
    }
    let reconciled = run(&["reconcile"], dir.path());
    assert!(reconciled.status.success(), "{}", stdout(&reconciled));
}

/// A journal written through the real server (the runtime behind `protocol::server`, clients
/// over TCP, as in `ledgerd`) verifies, and reconciles against that server while it runs.
#[test]
fn a_served_ledger_verifies_and_reconciles_against_the_running_server() {
    use protocol::auth::{ClientCredentials, Credentials, Secret};
    use protocol::client::Client;
    use runtime::{Runtime, RuntimeOptions};
    use server::{Server, ServerOptions};

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let credentials_path = data.join("credentials");
    std::fs::write(&credentials_path, "admin admin reconcile-secret-0123456789abcdef\n")
        .expect("write");
    std::fs::set_permissions(
        &credentials_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let options = RuntimeOptions {
        segment_len_bytes: 64 * 1024,
        engine_config: CONFIG,
        pin_core: None,
        snapshot_every_records: Some(25),
        ..RuntimeOptions::default()
    };
    let (runtime, _) = Runtime::start(&data, options).expect("start the runtime");
    let server_options = ServerOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        metrics_listen: None,
        batch_len_max: 1_024,
        in_flight_max: 64,
        write_timeout_ms: 10_000,
        replica_role: None,
        replication_metrics: None,
        tls: None,
        data_dir: None,
    };
    let credentials = Credentials::load(&credentials_path).expect("credentials");
    let server = Server::start(server_options, credentials, runtime.handle()).expect("serve");
    let secret = Secret::new(b"reconcile-secret-0123456789abcdef").expect("secret");
    let client_credentials = ClientCredentials::new("admin", secret).expect("client credentials");
    let mut client = Client::connect(server.local_addr(), &client_credentials, Default::default())
        .expect("connect");
    for batch in workload().chunks(9) {
        let commands: Vec<_> = batch.iter().map(|command| (command.tx_id, command.body)).collect();
        client.submit(commands).expect("submit");
    }

    let output = run(&["verify"], &data);
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    let addr = server.local_addr().to_string();
    let credentials_arg = credentials_path.to_string_lossy().into_owned();
    let output = run(&["reconcile", "--addr", &addr, "--credentials", &credentials_arg], &data);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert!(text.contains(&format!("server {addr}: 0 mismatches")), "{text}");
    // The served balances are what the journal says they are.
    let engine = engine_after(&workload(), workload().len());
    let carol = client.account(&key("carol")).expect("query").expect("carol");
    assert_eq!(Some(carol), engine.account(&key("carol")));

    drop(client);
    server.shutdown();
    runtime.shutdown().expect("clean shutdown");
}

#[test]
fn a_torn_tail_is_left_alone_and_a_ledger_without_snapshots_is_refused() {
    let ledger = write_ledger(&workload());
    let (last, bytes) = tear_last_record(ledger.path());
    let output = run(&["verify"], ledger.path());
    assert!(output.status.success(), "{}", stderr(&output));
    // Read-only: the torn record is still there for the server to truncate, and no lock file,
    // segment or snapshot appeared.
    assert_eq!(std::fs::read(&last).expect("read segment"), bytes);
    let snapshots = journal::snapshot::list(&journal::snapshot_dir(ledger.path())).expect("list");
    assert_eq!(snapshots.len(), 1, "only the genesis snapshot");

    // Without any snapshot nothing records the ledger's settings: refused, never guessed.
    std::fs::remove_dir_all(journal::snapshot_dir(ledger.path())).expect("remove snapshots");
    let output = run(&["verify"], ledger.path());
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("no snapshot records the ledger's engine settings"), "{message}");
    assert!(!journal::snapshot_dir(ledger.path()).exists(), "nothing was written");
}
