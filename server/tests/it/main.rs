//! `ledgerd` end to end: the real binary on 127.0.0.1 with an ephemeral port and a temporary
//! data directory, driven over TCP by the client library and by raw frames.

mod cluster;
mod harness;
mod tls;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{
    AccountKind, AccountLimits, Amount, CommandBody, CurrencyCode, ResultCode, TxId, TxState,
};
use harness::{client, credentials, key, Ledgerd};
use protocol::client::{Client, ClientError};
use protocol::wire::{encode_frame, ErrorCode, Hello, Message, RequestId};

fn amount(text: &str) -> Amount {
    text.parse().expect("valid amount")
}

fn open(account: &str, currency: &str, kind: AccountKind) -> CommandBody {
    CommandBody::OpenAccount {
        account_no: key(account),
        user_id: 1,
        currency: CurrencyCode::new(currency).expect("valid code"),
        kind,
        limits: AccountLimits::default(),
    }
}

fn deposit(account: &str, value: &str) -> CommandBody {
    CommandBody::Deposit {
        account_no: key(account),
        channel_no: key("bank"),
        amount: amount(value),
    }
}

fn transfer(from: &str, to: &str, value: &str) -> CommandBody {
    CommandBody::Transfer { from: key(from), to: key(to), amount: amount(value) }
}

/// Submits one command and returns (result, duplicate).
fn one(client: &mut Client, tx_id: u128, body: CommandBody) -> (ResultCode, bool) {
    let outcomes = client.submit(vec![(TxId(tx_id), body)]).expect("submit");
    (outcomes[0].result, outcomes[0].duplicate)
}

fn setup_accounts(admin: &mut Client) {
    let mut commands = Vec::new();
    for (index, (account, currency, kind)) in [
        ("alice", "USD", AccountKind::User),
        ("bob", "USD", AccountKind::User),
        ("carol", "USD", AccountKind::User),
        ("bank", "USD", AccountKind::System),
        ("risk", "USD", AccountKind::Risk),
        ("euro", "EUR", AccountKind::User),
    ]
    .into_iter()
    .enumerate()
    {
        commands.push((TxId(1_000 + index as u128), open(account, currency, kind)));
    }
    let outcomes = admin.submit(commands).expect("open accounts");
    assert!(outcomes.iter().all(|outcome| outcome.result == ResultCode::Ok), "{outcomes:?}");
}

/// A fresh server with the accounts of `setup_accounts`, alice funded with `value` (tx 1).
fn funded(value: &str) -> (Ledgerd, Client) {
    let server = Ledgerd::start_fresh(&[]);
    let mut admin = client(&server, "admin");
    setup_accounts(&mut admin);
    assert_eq!(one(&mut admin, 1, deposit("alice", value)).0, ResultCode::Ok);
    (server, admin)
}

#[test]
fn every_command_and_result_code_through_the_library() {
    let server = Ledgerd::start_fresh(&[]);
    let mut admin = client(&server, "admin");
    setup_accounts(&mut admin);
    let mut writer = client(&server, "writer");

    let outcomes = writer.submit(vec![(TxId(1), deposit("alice", "100.00"))]).expect("deposit");
    assert_eq!(outcomes[0].tx_state, Some(TxState::PendingSettlement));
    let alice = outcomes[0].balances()[1]; // the debit (the channel), then the credit
    assert_eq!((alice.available_minor, alice.ledger_minor), (10_000, 0));
    assert_eq!(one(&mut writer, 2, transfer("alice", "bob", "30")), (ResultCode::Ok, false));
    // A retry is answered from memory; the same id with other content is a conflict.
    assert_eq!(one(&mut writer, 2, transfer("alice", "bob", "30")), (ResultCode::Ok, true));
    assert_eq!(one(&mut writer, 2, transfer("alice", "bob", "31")).0, ResultCode::TxIdConflict);
    let hold =
        CommandBody::Freeze { account_no: key("alice"), amount: amount("50"), expires_ns: None };
    assert_eq!(one(&mut writer, 3, hold).0, ResultCode::Ok);
    let capture = CommandBody::Capture { hold: TxId(3), to: key("carol"), amount: amount("20") };
    assert_eq!(one(&mut writer, 4, capture).0, ResultCode::Ok);
    assert_eq!(one(&mut writer, 5, CommandBody::Unfreeze { hold: TxId(3) }).0, ResultCode::Ok);
    let settle = [
        CommandBody::SettleBegin { target: TxId(1) },
        CommandBody::SettleConfirm { target: TxId(1) },
    ];
    assert_eq!(one(&mut writer, 6, settle[0]).0, ResultCode::Ok);
    assert_eq!(one(&mut writer, 7, settle[1]).0, ResultCode::Ok);

    let refusals: Vec<(CommandBody, ResultCode)> = vec![
        (transfer("alice", "bob", "1000"), ResultCode::InsufficientFunds),
        (transfer("alice", "nobody", "1"), ResultCode::AccountNotFound),
        (transfer("alice", "euro", "1"), ResultCode::CurrencyMismatch),
        (transfer("alice", "alice", "1"), ResultCode::SameAccount),
        (transfer("alice", "bob", "0.001"), ResultCode::AmountPrecision),
        (transfer("alice", "bob", "0"), ResultCode::AmountNotPositive),
        (CommandBody::Unfreeze { hold: TxId(3) }, ResultCode::HoldReleased),
        (CommandBody::Unfreeze { hold: TxId(999) }, ResultCode::HoldNotFound),
        (CommandBody::SettleConfirm { target: TxId(1) }, ResultCode::IllegalTransition),
        (CommandBody::Refund { original: TxId(999), amount: amount("1") }, ResultCode::TxNotFound),
        (deposit("alice", "1").clone_with_channel("alice"), ResultCode::SameAccount),
    ];
    for (index, (body, expected)) in refusals.into_iter().enumerate() {
        let before = writer.account(&key("alice")).expect("query").expect("alice");
        assert_eq!(one(&mut writer, 100 + index as u128, body).0, expected, "{body:?}");
        let after = writer.account(&key("alice")).expect("query").expect("alice");
        assert_eq!(before, after, "a refused command moved money");
    }
    // Admin-only commands are refused to a transact client; a read client only reads.
    match writer.submit(vec![(TxId(200), open("dave", "USD", AccountKind::User))]) {
        Err(ClientError::Refused { code: ErrorCode::Forbidden, .. }) => {}
        other => panic!("expected forbidden, got {other:?}"),
    }
    let mut reader = client(&server, "reader");
    match reader.submit(vec![(TxId(201), transfer("alice", "bob", "1"))]) {
        Err(ClientError::Refused { code: ErrorCode::Forbidden, .. }) => {}
        other => panic!("expected forbidden, got {other:?}"),
    }
    let alice = reader.account(&key("alice")).expect("query").expect("alice exists");
    assert_eq!((alice.available_minor, alice.frozen_minor, alice.ledger_minor), (5_000, 0, 5_000));
    let tx = reader.tx(TxId(1)).expect("query").expect("deposit remembered");
    assert_eq!(tx.state, Some(TxState::Settled));
    assert_eq!(tx.history.len(), 6);
    assert!(reader.account(&key("nobody")).expect("query").is_none());
    assert!(reader.tx(TxId(424_242)).expect("query").is_none());

    // Metrics count what happened.
    let metrics = server.metrics();
    assert!(metrics.contains("ledger_commands_total{result=\"ok\"}"), "{metrics}");
    assert!(
        metrics.contains("ledger_commands_total{result=\"insufficient_funds\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ledger_connections 3"), "{metrics}");
}

/// `Deposit` with another channel (a user account), for the refusal table.
trait WithChannel {
    fn clone_with_channel(&self, channel: &str) -> CommandBody;
}

impl WithChannel for CommandBody {
    fn clone_with_channel(&self, channel: &str) -> CommandBody {
        match *self {
            CommandBody::Deposit { account_no, amount, .. } => {
                CommandBody::Deposit { account_no, channel_no: key(channel), amount }
            }
            other => other,
        }
    }
}

/// Re-computes a frame's checksum (header bytes 0..20, then the body) after editing it.
fn reseal(frame: &mut [u8]) {
    let mut covered = frame[..20].to_vec();
    covered.extend_from_slice(&frame[24..]);
    let crc = crc32c::crc32c(&covered);
    frame[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// A raw connection: sends bytes, reads the next frame's header and body.
struct Raw(TcpStream);

impl Raw {
    fn connect(server: &Ledgerd) -> Raw {
        let stream = TcpStream::connect(server.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Raw(stream)
    }

    fn hello(server: &Ledgerd, client_id: &str) -> Raw {
        let mut raw = Raw::connect(server);
        let (id, secret) = credentials(client_id);
        let hello = Message::Hello(Hello { client_id: id, secret });
        raw.send_message(RequestId(1), &hello);
        let (op, _) = raw.read_frame().expect("HELLO_OK");
        assert_eq!(op, 0x81);
        raw
    }

    fn send_message(&mut self, request_id: RequestId, message: &Message) {
        let mut frame = Vec::new();
        encode_frame(request_id, message, &mut frame).expect("encode");
        self.0.write_all(&frame).expect("send");
    }

    /// (op, body) of the next frame; `None` when the server closed the connection.
    fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        self.read_frame_with_id().map(|(op, _, body)| (op, body))
    }

    /// (op, request id, body) of the next frame; `None` when the server closed the connection.
    fn read_frame_with_id(&mut self) -> Option<(u8, u64, Vec<u8>)> {
        let mut header = [0u8; 24];
        self.0.read_exact(&mut header).ok()?;
        let request_id = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes")) as usize;
        let mut body = vec![0u8; len];
        self.0.read_exact(&mut body).ok()?;
        Some((header[5], request_id, body))
    }

    /// Encodes `message`, lets `edit` break the frame, fixes the checksum, and sends it.
    fn send_edited(&mut self, request_id: u64, message: &Message, edit: impl FnOnce(&mut Vec<u8>)) {
        let mut frame = Vec::new();
        encode_frame(RequestId(request_id), message, &mut frame).expect("encode");
        edit(&mut frame);
        reseal(&mut frame);
        self.0.write_all(&frame).expect("send");
    }

    fn expect_error(&mut self, code: ErrorCode) {
        let (op, body) = self.read_frame().expect("an ERROR frame");
        assert_eq!(op, 0xff, "expected ERROR, got op {op:#x}");
        let got = u16::from_le_bytes([body[0], body[1]]);
        assert_eq!(got, code.as_u16(), "{}", String::from_utf8_lossy(&body[4..]));
    }

    fn expect_closed(&mut self) {
        let mut byte = [0u8; 1];
        match self.0.read(&mut byte) {
            Ok(0) | Err(_) => {}
            Ok(_) => panic!("the connection should be closed"),
        }
    }

    fn ping_works(&mut self) {
        self.send_message(RequestId(77), &Message::Ping { payload: 9 });
        assert_eq!(self.read_frame().map(|(op, _)| op), Some(0x82));
    }
}

#[test]
fn malformed_input_gets_its_error_and_changes_nothing() {
    let (server, mut admin) = funded("10");
    let before = admin.account(&key("alice")).expect("query");

    // Wrong credentials: refused, connection closed.
    let mut raw = Raw::connect(&server);
    let (id, _) = credentials("admin");
    let wrong = protocol::auth::Secret::new(b"not-the-secret-at-all-0000").expect("secret");
    raw.send_message(RequestId(1), &Message::Hello(Hello { client_id: id, secret: wrong }));
    raw.expect_error(ErrorCode::AuthFailed);
    raw.expect_closed();

    // A request before HELLO: refused, closed.
    let mut raw = Raw::connect(&server);
    raw.send_message(RequestId(3), &Message::QueryTx(TxId(1)));
    raw.expect_error(ErrorCode::NotAuthenticated);
    raw.expect_closed();

    let mut raw = Raw::hello(&server, "admin");
    // An unknown operation with a valid checksum: an error, the connection carries on.
    let mut frame = Vec::new();
    encode_frame(RequestId(5), &Message::Ping { payload: 1 }, &mut frame).expect("encode");
    frame[5] = 0x42;
    reseal(&mut frame);
    raw.0.write_all(&frame).expect("send");
    raw.expect_error(ErrorCode::UnknownOperation);
    raw.ping_works();

    // Bad UTF-8 in an account number inside a SUBMIT.
    let mut frame = Vec::new();
    let submit = Message::Submit(vec![(TxId(50), transfer("alice", "bob", "1"))]);
    encode_frame(RequestId(6), &submit, &mut frame).expect("encode");
    let at = frame.windows(5).position(|w| w == b"alice").expect("account bytes");
    frame[at] = 0xff;
    reseal(&mut frame);
    raw.0.write_all(&frame).expect("send");
    raw.expect_error(ErrorCode::BadAccountNo);

    // An amount whose scale is beyond any decimal.
    let mut frame = Vec::new();
    let submit = Message::Submit(vec![(TxId(51), transfer("alice", "bob", "1.5"))]);
    encode_frame(RequestId(7), &submit, &mut frame).expect("encode");
    let scale_at = frame.len() - 1; // the last byte of a Transfer is the amount's scale
    assert_eq!(frame[scale_at], 1);
    frame[scale_at] = 40;
    reseal(&mut frame);
    raw.0.write_all(&frame).expect("send");
    raw.expect_error(ErrorCode::MalformedAmount);
    raw.ping_works();

    // A corrupt checksum loses the framing: error, then closed.
    let mut frame = Vec::new();
    encode_frame(RequestId(8), &Message::Ping { payload: 2 }, &mut frame).expect("encode");
    frame[23] ^= 0xff;
    raw.0.write_all(&frame).expect("send");
    raw.expect_error(ErrorCode::MalformedFrame);
    raw.expect_closed();

    // An oversized length: error, then closed.
    let mut raw = Raw::hello(&server, "admin");
    let mut frame = Vec::new();
    encode_frame(RequestId(9), &Message::Ping { payload: 3 }, &mut frame).expect("encode");
    frame[16..20].copy_from_slice(&(64u32 << 20).to_le_bytes());
    raw.0.write_all(&frame[..24]).expect("send");
    raw.expect_error(ErrorCode::FrameTooLarge);
    raw.expect_closed();

    // Gap 9 of issue 18, one rule each: request id 0 from a client closes, whatever the op
    // (ERROR included); a reply op is unexpected whatever its body; before HELLO every op but
    // HELLO and PING is not_authenticated, an unknown one too.
    let mut raw = Raw::hello(&server, "admin");
    let error = Message::Error(protocol::wire::ErrorReply {
        code: ErrorCode::Internal,
        message: "from a client".into(),
    });
    raw.send_edited(0, &error, |_| {});
    raw.expect_error(ErrorCode::MalformedFrame);
    raw.expect_closed();
    let mut raw = Raw::hello(&server, "admin");
    raw.send_edited(10, &Message::Pong { payload: 1 }, |frame| {
        frame[16] = 3; // a 3-byte body that does not decode as PONG's
        frame.truncate(24 + 3);
    });
    raw.expect_error(ErrorCode::UnexpectedOperation);
    raw.ping_works();
    // A SUBMIT entry with tx_id 0 (reserved), and a role refusal, in words.
    let submit = Message::Submit(vec![(TxId(53), transfer("alice", "bob", "1"))]);
    raw.send_edited(11, &submit, |frame| frame[28..44].fill(0));
    raw.expect_error(ErrorCode::MalformedBody);
    let mut reader = Raw::hello(&server, "reader");
    reader.send_message(RequestId(12), &submit);
    let (op, body) = reader.read_frame().expect("ERROR");
    assert_eq!((op, u16::from_le_bytes([body[0], body[1]])), (0xff, ErrorCode::Forbidden.as_u16()));
    assert_eq!(&body[4..], b"role read may not submit transfer (command 0)");
    let mut raw = Raw::connect(&server);
    raw.send_edited(13, &Message::Ping { payload: 1 }, |frame| frame[5] = 0x42);
    raw.expect_error(ErrorCode::NotAuthenticated);
    raw.expect_closed();

    // A truncated frame and a vanished client: the server just drops the connection.
    let mut raw = Raw::hello(&server, "admin");
    raw.0.write_all(&frame[..10]).expect("send");
    drop(raw);

    // Other connections carried on, and nothing moved.
    assert_eq!(admin.account(&key("alice")).expect("query"), before);
    assert!(admin.ping().is_ok());
    assert_eq!(one(&mut admin, 52, transfer("alice", "bob", "1")).0, ResultCode::Ok);
}

#[test]
fn kill_nine_under_load_loses_no_acknowledged_transaction() {
    let mut server = Ledgerd::start_fresh(&[]);
    let mut admin = client(&server, "admin");
    setup_accounts(&mut admin);
    let funding: Vec<(TxId, CommandBody)> = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, a)| (TxId(10 + i as u128), deposit(a, "1000")))
        .collect();
    assert!(admin.submit(funding).expect("fund").iter().all(|o| o.is_ok()));

    let acknowledged: Arc<Mutex<BTreeMap<u128, ResultCode>>> = Arc::default();
    let sent: Arc<Mutex<Vec<u128>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..3u128 {
        let (acknowledged, sent, stop) = (acknowledged.clone(), sent.clone(), stop.clone());
        let mut writer = client(&server, "writer");
        workers.push(std::thread::spawn(move || {
            let names = ["alice", "bob", "carol"];
            let mut next = 0u128;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<(TxId, CommandBody)> = (0..8)
                    .map(|i| {
                        next += 1;
                        let id = (worker + 1) << 64 | next;
                        let (from, to) =
                            (names[(next as usize + i) % 3], names[(next as usize + i + 1) % 3]);
                        (TxId(id), transfer(from, to, "0.01"))
                    })
                    .collect();
                sent.lock().expect("lock").extend(batch.iter().map(|(id, _)| id.0));
                match writer.submit(batch) {
                    Ok(outcomes) => {
                        let mut acked = acknowledged.lock().expect("lock");
                        for outcome in outcomes {
                            acked.insert(outcome.tx_id.0, outcome.result);
                        }
                    }
                    Err(_) => return, // the server died: outcome unknown for this batch
                }
            }
        }));
    }
    // Let the load run until a good number of batches are acknowledged, then kill -9.
    harness::wait_until(Duration::from_secs(30), || {
        acknowledged.lock().expect("lock").len() >= 2_000
    });
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }

    let server = Ledgerd::restart(server);
    let mut reader = client(&server, "reader");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 2_000);
    for (tx_id, result) in &acknowledged {
        let tx = reader.tx(TxId(*tx_id)).expect("query").expect("an acknowledged tx_id survives");
        assert_eq!(tx.result, *result, "tx {tx_id:#x}");
    }
    // Sent but never acknowledged: absent, or present and complete (never half applied).
    for tx_id in sent.lock().expect("lock").iter().filter(|id| !acknowledged.contains_key(id)) {
        if let Some(tx) = reader.tx(TxId(*tx_id)).expect("query") {
            assert!(matches!(tx.state, Some(TxState::Settled | TxState::Failed)), "{tx:?}");
        }
    }
    // Money conserved: the three customers plus the bank sum to zero.
    let total: i128 = ["alice", "bob", "carol", "bank"]
        .iter()
        .map(|name| {
            let view = reader.account(&key(name)).expect("query").expect("exists");
            view.available_minor + view.frozen_minor
        })
        .sum();
    assert_eq!(total, 0);
    // And the state hash is stable across a further (clean) restart.
    let first_hash = server.state_hash();
    let server = Ledgerd::restart(server.stop());
    assert_eq!(server.state_hash(), first_hash);
}

#[test]
fn sigterm_finishes_in_flight_work_and_the_next_start_recovers_it() {
    let server = Ledgerd::start_fresh(&[]);
    let mut admin = client(&server, "admin");
    setup_accounts(&mut admin);
    assert_eq!(one(&mut admin, 1, deposit("alice", "12.34")).0, ResultCode::Ok);
    assert_eq!(one(&mut admin, 2, transfer("alice", "bob", "2.34")).0, ResultCode::Ok);
    let (status, output) = server.sigterm();
    assert!(status.success(), "exit status {status:?}\n{output}");
    assert!(output.contains("stopped"), "{output}");
    let server = Ledgerd::restart_stopped();
    let mut reader = client(&server, "reader");
    let bob = reader.account(&key("bob")).expect("query").expect("bob");
    assert_eq!(bob.available_minor, 234);
    assert_eq!(
        one(&mut admin_of(&server), 2, transfer("alice", "bob", "2.34")),
        (ResultCode::Ok, true)
    );
}

#[test]
fn sigterm_answers_what_it_read_then_says_shutting_down_and_nothing_else_ran() {
    let (server, _admin) = funded("100");
    let mut idle = client(&server, "reader");
    let mut raw = Raw::hello(&server, "admin");
    // SUBMITs sent while the server stops: each one it read is executed and answered before
    // the connection-level shutting_down; any other was not executed.
    server.send_sigterm();
    let sent: Vec<u64> = (10..30).collect();
    for &request_id in &sent {
        let submit =
            Message::Submit(vec![(TxId(request_id as u128), transfer("alice", "bob", "1"))]);
        let mut frame = Vec::new();
        encode_frame(RequestId(request_id), &submit, &mut frame).expect("encode");
        if raw.0.write_all(&frame).is_err() {
            break; // the server closed already: nothing more is read
        }
    }
    let mut answered = Vec::new();
    loop {
        let (op, request_id, body) =
            raw.read_frame_with_id().expect("shutting_down before the close");
        if op == 0xff {
            assert_eq!(request_id, 0, "a connection-level ERROR");
            assert_eq!(u16::from_le_bytes([body[0], body[1]]), ErrorCode::ShuttingDown.as_u16());
            break;
        }
        assert_eq!(op, 0x83, "a SUBMIT_REPLY");
        answered.push(request_id);
    }
    raw.expect_closed();
    // A client library in flight then reports `Refused(shutting_down)`: not executed.
    match idle.ping() {
        Err(ClientError::Refused { code: ErrorCode::ShuttingDown, .. }) => {}
        other => panic!("expected shutting_down, got {other:?}"),
    }
    let (status, output) = server.sigterm();
    assert!(status.success(), "{output}");
    let server = Ledgerd::restart_stopped();
    let mut reader = client(&server, "reader");
    for request_id in sent {
        let found = reader.tx(TxId(request_id as u128)).expect("query").is_some();
        assert_eq!(found, answered.contains(&request_id), "tx {request_id}: {answered:?}");
    }
}

#[test]
fn batch_len_max_is_announced_and_checked_before_the_entries() {
    let server = Ledgerd::start_fresh(&["--batch-len-max", "2"]);
    let admin = client(&server, "admin");
    assert_eq!(admin.session().batch_len_max, 2);
    let mut raw = Raw::hello(&server, "admin");
    // Three commands announced, one sent: the count is refused before the entries are read.
    let submit = Message::Submit(vec![(TxId(1), transfer("alice", "bob", "1"))]);
    raw.send_edited(2, &submit, |frame| frame[24..28].copy_from_slice(&3u32.to_le_bytes()));
    raw.expect_error(ErrorCode::BatchTooLarge);
    raw.ping_works();
}

fn admin_of(server: &Ledgerd) -> Client {
    client(server, "admin")
}

#[test]
fn a_first_start_creates_admin_credentials() {
    let server = Ledgerd::start_fresh_without_credentials();
    let store = server.data_dir().join("credentials");
    let admin_file = server.data_dir().join("admin.credentials");
    for path in [&store, &admin_file] {
        let mode = std::fs::metadata(path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
        assert_eq!(mode.expect("credentials file") & 0o777, 0o600, "{}", path.display());
    }
    assert!(server.output().contains("created admin credentials"), "{}", server.output());
    let credentials = protocol::auth::ClientCredentials::from_file(&admin_file, None)
        .expect("the generated admin file reads");
    // The store keeps the hash only, and nothing printed the secret.
    let secret = std::str::from_utf8(credentials.secret().expose()).expect("ASCII").to_owned();
    let store_text = std::fs::read_to_string(&store).expect("read the store");
    assert!(!store_text.contains(&secret), "{store_text}");
    assert!(store_text.contains("admin admin hmac-sha256 "), "{store_text}");
    assert!(!server.output().contains(&secret), "{}", server.output());
    let mut admin =
        Client::connect(server.addr, &credentials, harness::options()).expect("connect");
    let currency =
        CommandBody::DefineCurrency { code: CurrencyCode::new("XAU").expect("code"), scale: 4 };
    assert_eq!(one(&mut admin, 1, currency).0, ResultCode::Ok);
}

#[test]
fn a_plaintext_store_is_hashed_at_start_and_no_secret_is_printed() {
    let server = Ledgerd::start_fresh(&[]);
    let store = std::fs::read_to_string(server.data_dir().join("credentials")).expect("read");
    let secrets: Vec<String> = ["admin", "writer", "reader"]
        .map(|id| String::from_utf8(credentials(id).1.expose().to_vec()).expect("ASCII"))
        .into();
    for secret in &secrets {
        assert!(!store.contains(secret.as_str()), "{store}");
    }
    let hashed = store.lines().filter(|l| !l.starts_with('#') && l.contains(" hmac-sha256 "));
    assert_eq!(hashed.count(), 3, "{store}");
    assert!(server.output().contains("replaced 3 plaintext secrets"), "{}", server.output());
    // Every client still authenticates with the secret it has (a wrong one is refused: see
    // `malformed_input_gets_its_error_and_changes_nothing`), and the CLI with the admin's file
    // the migration wrote.
    for id in ["admin", "writer", "reader"] {
        client(&server, id).ping().expect("ping");
    }
    let (exit, out, err) = cli(&server, &["balance", "nobody"]);
    assert_eq!(exit, 1, "{out}{err}");
    let first_output = server.output();
    let restarted = Ledgerd::restart(server.stop());
    let again = std::fs::read_to_string(restarted.data_dir().join("credentials")).expect("read");
    assert_eq!(again, store, "a hashed store is left as it is");
    client(&restarted, "admin").ping().expect("ping after a restart");
    let output = format!("{first_output}\n{}", restarted.output());
    for secret in &secrets {
        assert!(!output.contains(secret.as_str()), "{output}");
    }
}

/// `ledger credentials add`: a new client's secret goes to its own file, only its hash to the
/// store; after a restart it connects with its role; a second add of the same id, or over an
/// existing file, is refused and changes nothing.
#[test]
fn a_client_added_with_the_cli_connects_after_a_restart_with_its_role() {
    let server = Ledgerd::start_fresh(&[]);
    open_with_the_cli(&server);
    let stopped = server.stop();
    let store = stopped.data_dir().join("credentials");
    let teller_file = stopped.data_dir().join("teller.credentials");
    let (store_arg, out_arg) = (store.to_string_lossy(), teller_file.to_string_lossy());
    let env = cli::RunEnv { now_ns: 1, fresh_tx_id: Ok(TxId(1)) };
    let add = ["ledger", "credentials", "add", "teller", "--role", "transact", "--store"];
    let added = cli::run([&add[..], &[&store_arg, "--out", &out_arg]].concat(), &env);
    assert_eq!(added.exit as i32, 0, "{}{}", added.stdout, added.stderr);
    assert!(added.stdout.contains("restart ledgerd"), "{}", added.stdout);
    let teller = protocol::auth::ClientCredentials::from_file(&teller_file, None).expect("reads");
    let secret = String::from_utf8(teller.secret().expose().to_vec()).expect("ASCII");
    let store_text = std::fs::read_to_string(&store).expect("read the store");
    assert!(store_text.contains("teller transact hmac-sha256 "), "{store_text}");
    assert!(!store_text.contains(&secret) && !added.stdout.contains(&secret));
    // Again: the id exists (exit 1), nothing changes; over an existing file: refused too.
    let again = cli::run([&add[..], &[&store_arg, "--out", "/tmp/unused-teller"]].concat(), &env);
    assert_eq!(again.exit as i32, 1, "{}{}", again.stdout, again.stderr);
    assert!(again.stderr.contains("has an entry already"), "{}", again.stderr);
    let add_clerk = ["ledger", "credentials", "add", "clerk", "--role", "read", "--store"];
    let over = cli::run([&add_clerk[..], &[&store_arg, "--out", &out_arg]].concat(), &env);
    assert_eq!(over.exit as i32, 1, "{}{}", over.stdout, over.stderr);
    assert_eq!(std::fs::read_to_string(&store).expect("read"), store_text, "nothing changed");

    let server = Ledgerd::restart(stopped);
    let teller_cli = |args: &[&str]| cli_with(server.addr, &teller_file, args);
    let (code, out, err) = cli(&server, &["deposit", "alice", "10", "--tx-id", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = teller_cli(&["transfer", "alice", "bob", "4", "--tx-id", "2"]);
    assert_eq!(code, 0, "transact may move money: {out}{err}");
    let (code, out, err) =
        teller_cli(&["currency", "define", "XAG", "--scale", "3", "--tx-id", "3"]);
    assert_ne!(code, 0, "but not define currencies: {out}{err}");
    assert!(!server.output().contains(&secret), "{}", server.output());
}

/// Runs the `ledger` CLI (`cli::run`, what the `ledger` binary runs, in this process) against
/// `server`; returns (exit code, stdout, stderr).
fn cli(server: &Ledgerd, args: &[&str]) -> (i32, String, String) {
    cli_with(server.addr, &server.data_dir().join("admin.credentials"), args)
}

fn cli_with(
    addr: std::net::SocketAddr,
    credentials: &std::path::Path,
    args: &[&str],
) -> (i32, String, String) {
    let addr = addr.to_string();
    let credentials = credentials.to_string_lossy().into_owned();
    let line = ["ledger", "--addr", &addr, "--credentials", &credentials];
    let env = cli::RunEnv {
        now_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)),
        fresh_tx_id: cli::txid::generate_tx_id(),
    };
    let rendered = cli::run(line.iter().chain(args), &env);
    (rendered.exit as i32, rendered.stdout, rendered.stderr)
}

/// Opens USD accounts `alice`, `bob` (users) and `bank` (the channel) through the CLI.
fn open_with_the_cli(server: &Ledgerd) {
    for (account, kind) in [("alice", "user"), ("bob", "user"), ("bank", "system")] {
        let (code, out, err) = cli(
            server,
            &["account", "open", account, "--user", "1", "--currency", "USD", "--kind", kind],
        );
        assert_eq!(code, 0, "{out}{err}");
    }
}

#[test]
fn a_session_with_the_cli() {
    let server = Ledgerd::start_fresh(&[]);
    open_with_the_cli(&server);
    let (code, out, err) = cli(&server, &["deposit", "alice", "100", "--tx-id", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) =
        cli(&server, &["--json", "transfer", "alice", "bob", "30.5", "--tx-id", "2"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"result\":\"ok\""), "{out}");
    assert!(out.contains("\"available\":\"69.50\""), "{out}");
    // Re-sent: a duplicate, exit 0; written with another amount: a conflict, exit 1.
    let (code, out, _) =
        cli(&server, &["transfer", "alice", "bob", "30.50", "--tx-id", "2", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"duplicate\":true"), "{out}");
    let (code, _, err) = cli(&server, &["transfer", "alice", "bob", "31", "--tx-id", "2"]);
    assert_eq!(code, 1, "{err}");
    // A rejection says why, in words, and exits non-zero.
    let (code, _, err) = cli(&server, &["transfer", "bob", "alice", "1000", "--tx-id", "3"]);
    assert_eq!(code, 1);
    assert!(err.contains("insufficient available funds"), "{err}");
    // Holds.
    let (code, out, err) = cli(&server, &["freeze", "alice", "20", "--tx-id", "4"]);
    assert_eq!(code, 0, "{out}{err}");
    let hold = "00000000-0000-0000-0000-000000000004";
    let (code, out, err) = cli(&server, &["capture", hold, "bob", "5", "--tx-id", "5"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&server, &["unfreeze", hold, "--tx-id", "6"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = cli(&server, &["balance", "alice", "--json"]);
    assert_eq!(code, 0);
    for field in [
        "\"available\":\"64.50\"",
        "\"frozen\":\"0.00\"",
        "\"ledger\":\"-35.50\"",
        "\"currency\":\"USD\"",
    ] {
        assert!(out.contains(field), "{field} in {out}");
    }
    let (code, out, _) = cli(&server, &["--json", "tx", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"state\":\"pending_settlement\""), "{out}");
    let (code, _, _) = cli(&server, &["balance", "nobody"]);
    assert_eq!(code, 1);
    // A wrong credentials file is a connection-level failure (exit 3), nothing sent.
    let bad = server.data_dir().join("bad-credentials");
    std::fs::write(&bad, "admin admin wrong-secret-0123456789abcdef\n").expect("write");
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let (code, _, _) = cli_with(server.addr, &bad, &["balance", "alice"]);
    assert_eq!(code, 3);
}

#[test]
fn a_stuck_client_blocks_nobody_and_costs_bounded_memory() {
    // A small tx_id index (1 Mi remembered transactions instead of 16 Mi): the deposits the
    // stuck client gets executed touch a page of the index each, which would otherwise grow the
    // resident set by up to the index's size (256 MiB) and hide what this test looks for.
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config = config_dir.path().join("ledgerd.conf");
    std::fs::write(&config, "tx_retained = 1048576\n").expect("write the config");
    let server = Ledgerd::start_fresh(&["--config", &config.to_string_lossy()]);
    let mut admin = client(&server, "admin");
    setup_accounts(&mut admin);
    let rss_before = server.rss_kib();

    // A client that pipelines thousands of requests and never reads a reply.
    let mut stuck = Raw::hello(&server, "writer");
    stuck.0.set_write_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut frame = Vec::new();
    let mut sent = 0u64;
    for index in 0..300_000u128 {
        frame.clear();
        let submit = Message::Submit(vec![(TxId(1 << 100 | index), deposit("carol", "0.01"))]);
        encode_frame(RequestId(10 + index as u64), &submit, &mut frame).expect("encode");
        if stuck.0.write_all(&frame).is_err() {
            break; // the server stopped reading us: backpressure reached the socket
        }
        sent += 1;
    }
    assert!(sent < 300_000, "the server must stop reading a client that does not read");

    // Everyone else is served as usual meanwhile.
    let mut writer = client(&server, "writer");
    for index in 0..200u128 {
        // Carol may already hold some of the stuck client's deposits (those it executed before
        // it stopped reading him): either answer is fine, a hang is not.
        let (result, _) = one(&mut writer, 5_000 + index, transfer("carol", "alice", "0.01"));
        assert!(matches!(result, ResultCode::Ok | ResultCode::InsufficientFunds), "{result:?}");
    }
    assert!(writer.ping().is_ok());
    let rss_after = server.rss_kib();
    // The journal's mapped pages (the segment written and the spare prepared next) count too.
    assert!(
        rss_after < rss_before + 128 * 1024,
        "server memory grew from {rss_before} to {rss_after} KiB"
    );
}

#[test]
fn settlement_through_a_bank_channel_with_the_cli() {
    // A bank that answers quickly and always accepts.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the bank");
    let bank_addr = listener.local_addr().expect("bank address");
    let config = bank::sim::BankConfig { latency_ms: 5, ..bank::sim::BankConfig::default() };
    let _bank = bank::server::spawn(listener, config).expect("bank");
    let channel = format!("bank={bank_addr}");
    let server = Ledgerd::start_fresh(&["--channel", &channel]);
    open_with_the_cli(&server);
    let (code, out, err) = cli(&server, &["account", "limits", "alice", "--exposure-max", "50"]);
    assert_eq!(code, 0, "{out}{err}");
    // T+0: the deposit is usable at once, and its unsettled part is exposure once spent.
    let (code, out, err) =
        cli(&server, &["deposit", "alice", "100", "--channel", "bank", "--tx-id", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&server, &["transfer", "alice", "bob", "120", "--tx-id", "2"]);
    assert_ne!(code, 0, "spending beyond the exposure limit is refused: {out}{err}");
    // The bank settles it: ledger catches up, nothing is unsettled any more.
    wait_until_settled(&server, "1");
    let (code, out, _) = cli(&server, &["exposure", "alice", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"unsettled\":\"0.00\""), "{out}");
    assert!(out.contains("\"limit\":\"50.00\""), "{out}");
    let (code, out, _) = cli(&server, &["balance", "alice", "--json"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("\"available\":\"100.00\"") && out.contains("\"ledger\":\"100.00\""),
        "{out}"
    );
    // End of day: the cutover prints the settlement file ledgerd wrote for the channel.
    let data_dir = server.data_dir().to_string_lossy().into_owned();
    let (code, out, err) = cli(
        &server,
        &["cutover", "--business-date", "2026-11-26", "--data-dir", &data_dir, "--json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("bank-20261126.csv"), "{out}");
    assert!(out.contains("netting/bank-20261126.csv"), "the netting report too: {out}");
    let file = server.data_dir().join("settlement").join("bank-20261126.csv");
    let text = std::fs::read_to_string(&file).expect("settlement file");
    assert!(text.lines().count() >= 2, "{text}");
    let report = server.data_dir().join("settlement/netting/bank-20261126.csv");
    let text = std::fs::read_to_string(&report).expect("netting report");
    assert!(text.ends_with("total,1,100,0,100,100,\n"), "{text}");
    // The bank's statement has the deposit with a wrong amount and a line the ledger lacks.
    let statement = server.data_dir().join("statement.csv");
    let rows = format!("tx_id,amount\n{:032x},99.00\n{:032x},5.00\n", 1, 0xdead_u128);
    std::fs::write(&statement, rows).expect("write the statement");
    let statement = statement.to_string_lossy().into_owned();
    let args = ["reconcile", "--channel", "bank", &statement, "--data-dir", &data_dir];
    let (code, out, err) = cli(&server, &args);
    assert_eq!(code, 1, "mismatches exit 1: {out}{err}");
    assert!(out.contains(&format!("amount_differs {:032x}", 1)), "{out}");
    assert!(out.contains(&format!("extra {:032x}", 0xdead_u128)), "{out}");
}

/// Waits until the ledger reports the transaction `tx_id` settled.
fn wait_until_settled(server: &Ledgerd, tx_id: &str) {
    harness::wait_until(Duration::from_secs(20), || {
        let (_, out, _) = cli(server, &["tx", tx_id, "--json"]);
        out.contains("\"state\":\"settled\"")
    });
}

#[test]
fn exposure_of_an_unsettled_deposit_through_the_cli() {
    let server = Ledgerd::start_fresh(&[]);
    open_with_the_cli(&server);
    let (code, _, _) = cli(&server, &["deposit", "alice", "100", "--tx-id", "1"]);
    assert_eq!(code, 0);
    let (code, _, _) = cli(&server, &["transfer", "alice", "bob", "70", "--tx-id", "2"]);
    assert_eq!(code, 0);
    let (code, out, _) = cli(&server, &["exposure", "alice", "--json"]);
    assert_eq!(code, 0, "{out}");
    for field in ["\"unsettled\":\"100.00\"", "\"exposure\":\"70.00\"", "\"limit\":null"] {
        assert!(out.contains(field), "{field} in {out}");
    }
    let (code, out, _) = cli(&server, &["exposure", "alice"]);
    assert_eq!(code, 0);
    assert!(out.contains("unsettled: 100.00 USD"), "{out}");
    let (code, _, _) = cli(&server, &["exposure", "nobody"]);
    assert_eq!(code, 1);
}

/// The state transfer's requests are for an admin of a replica group's node: another role is
/// forbidden, and a single node has nothing to offer (`unavailable`); the connection goes on.
#[test]
fn a_single_node_refuses_a_state_transfer() {
    let server = Ledgerd::start_fresh(&[]);
    for client_id in ["reader", "writer"] {
        match client(&server, client_id).state_offer(1) {
            Err(ClientError::Refused { code: ErrorCode::Forbidden, .. }) => {}
            other => panic!("{client_id}: expected forbidden, got {other:?}"),
        }
    }
    let mut admin = client(&server, "admin");
    match admin.state_offer(1) {
        Err(ClientError::Refused { code: ErrorCode::Unavailable, message, .. }) => {
            assert!(message.contains("not a member of a replica group"), "{message}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    let file = protocol::wire::StateFile { kind: protocol::wire::StateFileKind::Snapshot, id: 0 };
    assert!(matches!(
        admin.state_read(file, 0, 1024),
        Err(ClientError::Refused { code: ErrorCode::Unavailable, .. })
    ));
    admin.ping().expect("the connection goes on");
}
