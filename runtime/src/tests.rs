//! Tests for the runtime, through its public door (`Runtime::start`, `Handle`, `Producer`,
//! `recover`), with faults scripted in a `journal::FaultyStorage` at the writer's place in the
//! ring order. No test waits
//! on time: threads meet on channels, and the follower is synchronized by `snapshot_now`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use engine::{
    AccountKind, AccountLimits, AccountNo, Amount, Command, CommandBody, CurrencyCode, Effects,
    Engine, EngineConfig, Outcome, ResultCode, TxId,
};
use proptest::prelude::*;

use super::*;
use journal::{list_segments, snapshot, JournalError, JournalReader, SyncMode};
use journal::{FaultOp, FaultyStorage};
use journal::{RECORD_ALIGN_BYTES, RECORD_HEADER_LEN_BYTES, SEGMENT_HEADER_LEN_BYTES};

const ENGINE_CONFIG: EngineConfig = EngineConfig { tx_retained: 4_096, hash_seed: 42 };
const ACCOUNTS: u32 = 8;

fn options() -> RuntimeOptions {
    RuntimeOptions {
        sync_mode: SyncMode::Fsync,
        segment_len_bytes: 16 * 4096,
        batch_len_max: 256,
        batch_delay_us: 0,
        submission_len_max: 64,
        ring_capacity: 16,
        engine_config: ENGINE_CONFIG,
        hash_seed: Some(ENGINE_CONFIG.hash_seed),
        pin_core: None,
        snapshot_every_records: None,
        pipeline_flushes: true,
    }
}

fn small_segments() -> RuntimeOptions {
    RuntimeOptions { segment_len_bytes: 4096, ..options() }
}

fn start(dir: &Path, options: RuntimeOptions) -> (Runtime, RecoveryReport) {
    Runtime::start(dir, options).expect("start")
}

/// Starts the runtime with its journal behind a [`FaultyStorage`] the test scripts.
fn start_faulty(dir: &Path, options: RuntimeOptions) -> (Runtime, FaultyStorage) {
    let storage = FaultyStorage::default();
    let (runtime, _) = Runtime::start_in(storage.clone(), dir, options, Vec::new()).expect("start");
    (runtime, storage)
}

fn no(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("test account numbers are valid")
}

fn account(index: u32) -> AccountNo {
    no(&format!("acct-{index}"))
}

fn usd() -> CurrencyCode {
    CurrencyCode::new("USD").expect("valid code")
}

fn cents(minor: i128) -> Amount {
    Amount { mantissa: minor, scale: 2 }
}

/// Generates commands with unique `tx_id`s: the accounts, then transfers between them.
struct Workload {
    next_tx: u128,
    rng: u64,
}

impl Workload {
    /// `stream` keeps the `tx_id`s of concurrent producers apart.
    fn new(stream: u128) -> Workload {
        Workload { next_tx: (stream << 64) | 1, rng: 0x9e37_79b9_7f4a_7c15 ^ stream as u64 }
    }

    fn command(&mut self, body: CommandBody) -> NewCommand {
        self.next_tx += 1;
        NewCommand { tx_id: TxId(self.next_tx), body }
    }

    /// A channel account and `ACCOUNTS` user accounts holding 1000.00 USD each.
    fn setup(&mut self) -> Vec<NewCommand> {
        let open = |account_no, kind| CommandBody::OpenAccount {
            account_no,
            user_id: 7,
            currency: usd(),
            kind,
            limits: AccountLimits::default(),
        };
        let mut commands = vec![self.command(open(no("bank"), AccountKind::System))];
        for index in 0..ACCOUNTS {
            commands.push(self.command(open(account(index), AccountKind::User)));
            commands.push(self.command(CommandBody::Deposit {
                account_no: account(index),
                channel_no: no("bank"),
                amount: cents(100_000),
            }));
        }
        commands
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// A transfer between two random accounts; some are rejected (same account, no funds).
    fn transfer(&mut self) -> NewCommand {
        let from = (self.next() % u64::from(ACCOUNTS)) as u32;
        let to = (self.next() % u64::from(ACCOUNTS)) as u32;
        let amount = cents(1 + (self.next() % 40_000) as i128);
        self.command(CommandBody::Transfer { from: account(from), to: account(to), amount })
    }

    fn transfers(&mut self, len: usize) -> Vec<NewCommand> {
        (0..len).map(|_| self.transfer()).collect()
    }
}

/// Executes `commands` in submissions of at most `len` and returns every outcome.
fn execute_all(handle: &Handle, commands: &[NewCommand], len: usize) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for chunk in commands.chunks(len) {
        let executed = handle.execute(chunk.to_vec()).expect("execute");
        assert_eq!(executed.outcomes.len(), chunk.len());
        assert!(handle.durable_seq() >= executed.last_seq, "released before durable");
        outcomes.extend(executed.outcomes);
    }
    outcomes
}

fn state_hash(handle: &Handle) -> u128 {
    match handle.query(Query::StateHash).expect("query") {
        QueryAnswer::StateHash(hash) => hash,
        other => panic!("expected a state hash, got {other:?}"),
    }
}

/// Every command in the journal, in order.
fn journaled(data_dir: &Path) -> Vec<Command> {
    JournalReader::open(&journal::journal_dir(data_dir), 1)
        .expect("reader")
        .map(|record| engine::decode_command(&record.expect("record").payload).expect("command"))
        .collect()
}

/// The state hash of an engine fed exactly `commands`, one by one.
fn reference_hash(commands: &[Command]) -> u128 {
    let mut engine = Engine::new(ENGINE_CONFIG);
    let mut fx = Effects::default();
    for command in commands {
        engine.apply(command, &mut fx);
    }
    engine.check_invariants().expect("reference invariants");
    engine.state_hash()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).expect("copy");
        }
    }
}

fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let segments = list_segments(&journal::journal_dir(data_dir)).expect("list");
    segments.into_iter().map(|segment| segment.path).collect()
}

/// `(seq, offset, payload_len, record_len)` of every record of a segment file, parsed from the
/// bytes as FORMAT.md lays them out (length, CRC32C, seq, payload, zero padding to 8 bytes);
/// the walk stops at the first word that is not the next record.
fn records_of(path: &Path, first_seq: u64) -> Vec<(u64, u64, u64, u64)> {
    let file = fs::read(path).expect("read segment");
    let (mut offset, mut seq, mut records) = (SEGMENT_HEADER_LEN_BYTES, first_seq, vec![]);
    loop {
        let at = offset as usize;
        let Some(header) = file.get(at..at + RECORD_HEADER_LEN_BYTES as usize) else { break };
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let found_seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let payload_start = at + RECORD_HEADER_LEN_BYTES as usize;
        let Some(payload) = file.get(payload_start..payload_start + len as usize) else { break };
        let expected_crc = crc32c::crc32c_append(crc32c::crc32c(&header[0..4]), &header[8..16]);
        if len == 0 || found_seq != seq || crc != crc32c::crc32c_append(expected_crc, payload) {
            break;
        }
        let record_len = (RECORD_HEADER_LEN_BYTES + u64::from(len)).div_ceil(RECORD_ALIGN_BYTES)
            * RECORD_ALIGN_BYTES;
        records.push((seq, offset, u64::from(len), record_len));
        (offset, seq) = (offset + record_len, seq + 1);
    }
    records
}

fn snapshot_seqs(data_dir: &Path) -> Vec<u64> {
    let infos = snapshot::list(&journal::snapshot_dir(data_dir)).expect("list snapshots");
    infos.into_iter().map(|info| info.seq).collect()
}

#[test]
fn end_to_end_concurrent_producers_then_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, report) = start(temp.path(), options());
    assert_eq!((report.records_replayed, report.last_seq, report.snapshot), (0, 0, None));
    assert!(report.genesis_snapshot.is_some(), "a new ledger records its settings");
    let handle = runtime.handle();
    let mut setup = Workload::new(0);
    for outcome in execute_all(&handle, &setup.setup(), 64) {
        assert_eq!(outcome.result, ResultCode::Ok);
    }

    // Four producers, each with its own reply queue and a small window, submit concurrently.
    const PRODUCERS: u128 = 4;
    const SUBMISSIONS: u64 = 30;
    let mut sent: Vec<NewCommand> = Vec::new();
    let mut answered: BTreeMap<TxId, Outcome> = BTreeMap::new();
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for stream in 1..=PRODUCERS {
            let (producer, replies) = handle.producer(4);
            let handle = handle.clone();
            let submitter = scope.spawn(move || {
                let mut workload = Workload::new(stream);
                let mut sent = Vec::new();
                for token in 0..SUBMISSIONS {
                    let batch = workload.transfers(1 + (token as usize * 7) % 40);
                    sent.extend(batch.iter().copied());
                    producer.submit(token, batch).expect("submit");
                }
                sent
            });
            let receiver = scope.spawn(move || {
                let mut replies_seen = Vec::new();
                while let Some(reply) = replies.recv() {
                    let Ok(Answer::Executed(executed)) = reply.result else {
                        panic!("token {}: {:?}", reply.token, reply.result);
                    };
                    assert!(handle.durable_seq() >= executed.last_seq, "released before durable");
                    replies_seen.push((reply.token, executed.outcomes));
                }
                replies_seen
            });
            workers.push((submitter, receiver));
        }
        for (submitter, receiver) in workers {
            let batch_sent = submitter.join().expect("submitter");
            let replies = receiver.join().expect("receiver");
            let tokens: Vec<u64> = replies.iter().map(|(token, _)| *token).collect();
            assert_eq!(tokens, (0..SUBMISSIONS).collect::<Vec<_>>(), "every reply, in order");
            let outcomes = replies.into_iter().flat_map(|(_, outcomes)| outcomes);
            for (command, outcome) in batch_sent.iter().zip(outcomes) {
                assert_eq!(command.tx_id, outcome.tx_id);
                answered.insert(command.tx_id, outcome);
            }
            sent.extend(batch_sent);
        }
    });
    assert_eq!(answered.len(), sent.len());
    assert!(answered.values().any(|outcome| outcome.result != ResultCode::Ok), "rejections too");
    let hash_before = state_hash(&handle);
    let stats = runtime.stats();
    assert!(stats.flushes < stats.commands, "group commit: {stats:?}");
    let shutdown = runtime.shutdown().expect("shutdown");
    assert_eq!(shutdown.state_hash, hash_before);
    assert_eq!(shutdown.durable_seq, shutdown.last_seq);
    assert_eq!(handle.execute(vec![setup.transfer()]), Err(RequestError::ShuttingDown));

    // Every journaled command is an input, in seq order, with non-decreasing timestamps.
    let commands = journaled(temp.path());
    assert_eq!(commands.len() as u64, shutdown.last_seq);
    assert!(commands.windows(2).all(|pair| pair[0].timestamp_ns <= pair[1].timestamp_ns));
    assert_eq!(reference_hash(&commands), hash_before);

    let (runtime, report) = start(temp.path(), options());
    assert_eq!(report.state_hash, hash_before);
    assert_eq!(report.records_replayed, shutdown.last_seq);
    assert_eq!(report.snapshot.as_ref().map(|(seq, _)| *seq), Some(0));
    let handle = runtime.handle();
    assert_eq!(handle.query(Query::CheckInvariants), Ok(QueryAnswer::Invariants(Ok(()))));

    // Idempotency memory survived: a re-sent tx_id answers its first outcome and changes
    // nothing; the same tx_id with other content is a conflict.
    let retried: Vec<NewCommand> = sent.iter().step_by(41).take(64).copied().collect();
    let executed = handle.execute(retried.clone()).expect("retry");
    for (command, outcome) in retried.iter().zip(&executed.outcomes) {
        assert!(outcome.duplicate, "{command:?}");
        assert_eq!(outcome.result, answered[&command.tx_id].result);
    }
    let mut conflicting = retried[0];
    conflicting.body = Workload::new(99).transfer().body;
    let conflict = handle.execute(vec![conflicting]).expect("conflict");
    assert_eq!(conflict.outcomes[0].result, ResultCode::TxIdConflict);
    assert_eq!(state_hash(&handle), hash_before, "retries change nothing");
    runtime.shutdown().expect("shutdown");
    let commands = journaled(temp.path());
    assert!(commands.windows(2).all(|pair| pair[0].timestamp_ns <= pair[1].timestamp_ns));
}

#[test]
fn queries_see_the_producers_earlier_commands_and_reply_in_order() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, _) = start(temp.path(), options());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), 64);
    let (producer, replies) = handle.producer(8);
    let deposit = workload.command(CommandBody::Deposit {
        account_no: account(3),
        channel_no: no("bank"),
        amount: cents(250),
    });
    producer.submit(1, vec![deposit]).expect("submit");
    producer.query(2, Query::Account(account(3))).expect("query");
    producer.query(3, Query::Tx(deposit.tx_id)).expect("query");
    producer.query(4, Query::Account(no("nobody"))).expect("query");
    let mut tokens = Vec::new();
    for _ in 0..4 {
        let reply = replies.recv().expect("reply");
        tokens.push(reply.token);
        match reply.result.expect("answer") {
            Answer::Executed(executed) => assert!(executed.outcomes[0].is_ok()),
            Answer::Query(QueryAnswer::Account(Some(view))) => {
                assert_eq!(view.available_minor, 100_250)
            }
            Answer::Query(QueryAnswer::Tx(Some(tx))) => assert_eq!(tx.amount_minor, 250),
            Answer::Query(QueryAnswer::Account(None)) => assert_eq!(reply.token, 4),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(tokens, [1, 2, 3, 4]);
    assert_eq!(producer.in_flight(), 0);
    drop(producer);
    assert_eq!(replies.recv(), None, "closed once the producer is gone");
    runtime.shutdown().expect("shutdown");
}

#[derive(Debug, Clone, Copy)]
enum Tear {
    /// The bytes from the offset to the record's end were never written (still zero).
    Zero,
    /// The file ends at the offset.
    Cut,
}

/// Tells a test thread about every notification, with the replies queued at that moment.
struct Notified(std::sync::Mutex<mpsc::Sender<()>>);

impl ReplyNotify for Notified {
    fn notify(&self) {
        let _ = self.0.lock().expect("not poisoned").send(());
    }
}

#[test]
fn a_notifying_producer_is_told_once_its_replies_are_queued() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, _) = start(temp.path(), options());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), 64);
    let (notified_tx, notified) = mpsc::channel();
    let notify = std::sync::Arc::new(Notified(std::sync::Mutex::new(notified_tx)));
    let (producer, replies) = handle.producer_notifying(8, notify);
    // Held on the writer, so all four requests land in one round: one notification for them.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    runtime.run_on_writer(move || {
        entered_tx.send(()).expect("test waits");
        let _ = release_rx.recv();
    });
    entered_rx.recv().expect("the writer entered the hook");
    for token in 1..=3 {
        producer.try_submit(token, workload.transfers(2)).expect("room in the ring");
    }
    producer.try_query(4, Query::Account(account(1))).expect("room in the ring");
    release_tx.send(()).expect("release");
    // Never waits on the queue itself: every reply is there by the time of a notification.
    let mut tokens = Vec::new();
    while tokens.len() < 4 {
        notified.recv().expect("a notification");
        while let Some(reply) = replies.try_recv() {
            assert!(reply.result.is_ok(), "{reply:?}");
            tokens.push(reply.token);
        }
    }
    assert_eq!(tokens, [1, 2, 3, 4]);
    assert_eq!(producer.in_flight(), 0);
    assert!(notified.try_recv().is_err(), "one round, one notification");
    runtime.shutdown().expect("shutdown");
}

#[test]
fn torn_last_record_at_every_offset_recovers_exactly_the_prefix() {
    let template = tempfile::tempdir().expect("temp dir");
    let (runtime, _) = start(template.path(), small_segments());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    let mut commands = workload.setup();
    commands.extend(workload.transfers(40));
    for command in &commands {
        handle.execute(vec![*command]).expect("execute");
    }
    runtime.shutdown().expect("shutdown");
    let all = journaled(template.path());
    let count = all.len() as u64;
    let hash_all = reference_hash(&all);
    let hash_prefix = reference_hash(&all[..all.len() - 1]);
    let last_segment = segments(template.path()).pop().expect("a segment");
    assert!(segments(template.path()).len() > 1, "the journal spans segments");
    let first_seq = list_segments(&journal::journal_dir(template.path()))
        .expect("list")
        .last()
        .expect("a segment")
        .first_seq;
    let &(seq, offset, payload_len, record_len) =
        records_of(&last_segment, first_seq).last().expect("the last segment has records");
    assert_eq!(seq, count);
    let payload_end = offset + RECORD_HEADER_LEN_BYTES + payload_len;

    for tear_at in offset..offset + record_len {
        for tear in [Tear::Zero, Tear::Cut] {
            let temp = tempfile::tempdir().expect("temp dir");
            copy_dir(template.path(), temp.path());
            let segment = temp.path().join("journal").join(last_segment.file_name().expect("name"));
            match tear {
                Tear::Zero => {
                    let mut bytes = fs::read(&segment).expect("read");
                    bytes[tear_at as usize..(offset + record_len) as usize].fill(0);
                    fs::write(&segment, bytes).expect("write");
                }
                Tear::Cut => {
                    let file = fs::OpenOptions::new().write(true).open(&segment).expect("open");
                    file.set_len(tear_at).expect("truncate");
                }
            }
            let context = format!("{tear:?} at offset {tear_at} of the record at {offset}");
            let (runtime, report) = Runtime::start(temp.path(), small_segments())
                .unwrap_or_else(|error| panic!("{context}: {error}"));
            let intact = tear_at >= payload_end; // only zero padding was lost
            let expected = if intact { (count, hash_all) } else { (count - 1, hash_prefix) };
            assert_eq!((report.last_seq, report.state_hash), expected, "{context}");
            let torn = report.journal.torn_tail.is_some();
            assert_eq!(torn, !intact && tear_at > offset, "{context}: {:?}", report.journal);
            // The next command gets the torn record's seq, and the ledger goes on.
            let executed = runtime.handle().execute(vec![workload.transfer()]).expect("execute");
            assert_eq!(executed.last_seq, expected.0 + 1, "{context}");
            runtime.shutdown().expect("shutdown");
        }
    }
}

#[test]
fn corrupt_middle_record_refuses_startup_naming_file_and_offset() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, _) = start(temp.path(), options());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    for command in workload.setup() {
        handle.execute(vec![command]).expect("execute");
    }
    runtime.shutdown().expect("shutdown");
    let segment = segments(temp.path()).pop().expect("segment");
    let records = records_of(&segment, 1);
    let (seq, offset, _, _) = records[records.len() / 2];
    let mut bytes = fs::read(&segment).expect("read");
    bytes[(offset + RECORD_HEADER_LEN_BYTES + 3) as usize] ^= 0x40;
    fs::write(&segment, bytes).expect("write");

    let error = Runtime::start(temp.path(), options()).expect_err("corruption stops startup");
    let message = error.to_string();
    match error {
        RuntimeError::Journal(JournalError::Corrupt {
            path, offset: at, seq: expected, ..
        }) => {
            assert_eq!((path, at, expected), (segment.clone(), offset, seq));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(message.contains(&segment.display().to_string()), "{message}");
    assert!(message.contains(&format!("offset {offset}")), "{message}");
}

#[test]
fn snapshot_plus_tail_equals_full_replay_and_damaged_newest_falls_back() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, _) = start(temp.path(), options());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), 64);
    execute_all(&handle, &workload.transfers(100), 10);
    let older = runtime.snapshot_now().expect("snapshot");
    assert_eq!(older.seq, handle.durable_seq());
    assert_eq!(runtime.snapshot_now().expect("again").seq, older.seq, "one per seq");
    execute_all(&handle, &workload.transfers(100), 7);
    let newer = runtime.snapshot_now().expect("snapshot");
    execute_all(&handle, &workload.transfers(50), 5);
    let hash = state_hash(&handle);
    let shutdown = runtime.shutdown().expect("shutdown");

    // The newest snapshot plus the tail.
    let (runtime, report) = start(temp.path(), options());
    assert_eq!(report.snapshot, Some((newer.seq, newer.path.clone())));
    assert_eq!(report.records_replayed, shutdown.last_seq - newer.seq);
    assert_eq!(report.state_hash, hash);
    runtime.shutdown().expect("shutdown");

    // A full replay from the genesis snapshot gives the same state.
    let full = tempfile::tempdir().expect("temp dir");
    copy_dir(temp.path(), full.path());
    for seq in [older.seq, newer.seq] {
        let name = newer.path.file_name().expect("name").to_str().expect("utf-8");
        let name = name.replace(&format!("{:020}", newer.seq), &format!("{seq:020}"));
        fs::remove_file(journal::snapshot_dir(full.path()).join(name)).expect("remove");
    }
    let (runtime, report) = start(full.path(), options());
    assert_eq!(report.snapshot.map(|(seq, _)| seq), Some(0));
    assert_eq!((report.records_replayed, report.state_hash), (shutdown.last_seq, hash));
    runtime.shutdown().expect("shutdown");

    // A damaged newest snapshot is skipped and reported; the previous one is used.
    let mut bytes = fs::read(&newer.path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&newer.path, bytes).expect("write");
    // A snapshot that verifies but does not decode as a ledger is skipped the same way.
    let garbage = snapshot::write(&journal::snapshot_dir(temp.path()), shutdown.last_seq, b"junk")
        .expect("write snapshot");
    let (runtime, report) = start(temp.path(), options());
    let skipped: Vec<&Path> = report.skipped_snapshots.iter().map(|s| s.path.as_path()).collect();
    assert_eq!(skipped, [garbage.as_path(), newer.path.as_path()]);
    assert_eq!(report.snapshot, Some((older.seq, older.path.clone())));
    assert_eq!((report.records_replayed, report.state_hash), (shutdown.last_seq - older.seq, hash));
    assert!(report.to_string().contains("skipped"), "{report}");
    runtime.shutdown().expect("shutdown");
}

#[test]
fn follower_writes_snapshots_every_n_records_without_removing_segments() {
    let temp = tempfile::tempdir().expect("temp dir");
    let every = 64;
    let options = RuntimeOptions { snapshot_every_records: Some(every), ..small_segments() };
    let (runtime, _) = start(temp.path(), options.clone());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), 64);
    execute_all(&handle, &workload.transfers(300), 20);
    let segment_count = segments(temp.path()).len();
    // The follower handles requests in order: every nudge sent so far is done before this.
    let now = runtime.snapshot_now().expect("snapshot");
    let seqs = snapshot_seqs(temp.path());
    let periodic: Vec<u64> = (1..=now.seq / every).map(|n| n * every).collect();
    for seq in &periodic {
        assert!(seqs.contains(seq), "snapshot at {seq} missing from {seqs:?}");
    }
    assert_eq!(segments(temp.path()).len(), segment_count, "snapshots never remove segments");
    let hash = state_hash(&handle);

    // Archival is explicit, and removes only segments covered by the newest snapshot.
    let archived = runtime.archive_segments_before_snapshot().expect("archive");
    assert_eq!(archived.snapshot_seq, Some(now.seq));
    assert!(!archived.removed.is_empty());
    for path in &archived.removed {
        assert!(!path.exists());
    }
    let first_seq = list_segments(&journal::journal_dir(temp.path())).expect("list")[0].first_seq;
    assert!(first_seq <= now.seq + 1);
    runtime.shutdown().expect("shutdown");
    let (runtime, report) = start(temp.path(), options.clone());
    assert_eq!((report.snapshot.map(|(seq, _)| seq), report.state_hash), (Some(now.seq), hash));
    runtime.shutdown().expect("shutdown");

    // Without that snapshot the journal no longer reaches back far enough: refused.
    fs::remove_file(&now.path).expect("remove snapshot");
    for seq in periodic.iter().filter(|&&seq| seq + 1 >= first_seq) {
        let _ = fs::remove_file(
            journal::snapshot_dir(temp.path()).join(format!("snap-{seq:020}.snap")),
        );
    }
    match Runtime::start(temp.path(), options) {
        Err(RuntimeError::MissingSegments { first_seq: found, .. }) => assert_eq!(found, first_seq),
        other => panic!("expected MissingSegments, got {other:?}"),
    }
}

#[test]
fn segment_rollover_under_concurrent_load_and_recovery_across_segments() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, _) = start(temp.path(), small_segments());
    let handle = runtime.handle();
    execute_all(&handle, &Workload::new(0).setup(), 64);
    std::thread::scope(|scope| {
        for stream in 1..=3 {
            let handle = handle.clone();
            scope.spawn(move || {
                let mut workload = Workload::new(stream);
                for len in 1..=25 {
                    execute_all(&handle, &workload.transfers(len), 64);
                }
            });
        }
    });
    let hash = state_hash(&handle);
    let shutdown = runtime.shutdown().expect("shutdown");
    let segment_count = segments(temp.path()).len();
    assert!(segment_count > 10, "{segment_count} segments: rollover was not exercised");
    let (runtime, report) = start(temp.path(), small_segments());
    assert_eq!(report.journal.segment_count, segment_count as u64);
    assert_eq!((report.last_seq, report.state_hash), (shutdown.last_seq, hash));
    assert_eq!(report.journal.removed_temp_files, Vec::<PathBuf>::new(), "shutdown removed it");
    runtime.shutdown().expect("shutdown");
}

#[test]
fn a_copy_taken_while_serving_recovers_without_the_spare_segment() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, _) = start(temp.path(), small_segments());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    let mut acknowledged = workload.setup();
    acknowledged.extend(workload.transfers(300));
    execute_all(&handle, &acknowledged, 64);
    let hash = state_hash(&handle);
    // What a kill leaves: the files as they are now, with the spare the preparer made (or is
    // making) for the next rollover, complete, cut short or not there yet.
    let crashed = tempfile::tempdir().expect("temp dir");
    copy_dir(temp.path(), crashed.path());
    runtime.shutdown().expect("shutdown");
    let spare = journal::journal_dir(crashed.path()).join(journal::SPARE_FILE_NAME);
    let copied_a_spare = spare.exists();
    let (runtime, report) = start(crashed.path(), small_segments());
    let expected_removed = if copied_a_spare { vec![spare.clone()] } else { Vec::new() };
    assert_eq!(report.journal.removed_temp_files, expected_removed);
    assert_eq!((report.last_seq, report.state_hash), (acknowledged.len() as u64, hash));
    // It goes on rolling over, with new spares.
    execute_all(&runtime.handle(), &workload.transfers(300), 64);
    let shutdown = runtime.shutdown().expect("shutdown");
    assert_eq!(shutdown.last_seq, acknowledged.len() as u64 + 300);
    assert!(!spare.exists(), "an unused spare is removed at shutdown");
}

#[test]
fn a_failed_sync_is_fatal_and_nothing_is_acknowledged_after_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, storage) = start_faulty(temp.path(), options());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    let acknowledged = workload.setup();
    execute_all(&handle, &acknowledged, 64);
    runtime.run_on_writer(move || storage.fail_next(FaultOp::SyncData, libc::EIO));
    // Everything submitted after the fault is refused, from every producer: asynchronously
    // if it entered the ring before the failure was known, synchronously after.
    std::thread::scope(|scope| {
        for stream in 1..=3 {
            let (producer, replies) = handle.producer(8);
            scope.spawn(move || {
                let mut workload = Workload::new(stream);
                let mut accepted = 0;
                for token in 0..5 {
                    match producer.submit(token, workload.transfers(3)) {
                        Ok(()) => accepted += 1,
                        Err(refused) => {
                            assert!(matches!(refused.error, RequestError::Fatal { .. }));
                        }
                    }
                }
                drop(producer);
                let mut count = 0;
                while let Some(reply) = replies.recv() {
                    assert!(matches!(reply.result, Err(RequestError::Fatal { .. })), "{reply:?}");
                    count += 1;
                }
                assert_eq!(count, accepted);
            });
        }
    });
    let failure = runtime.wait_for_failure(Duration::from_secs(10)).expect("failed");
    assert!(failure.contains("sync failed"), "{failure}");
    assert!(matches!(handle.execute(workload.transfers(1)), Err(RequestError::Fatal { .. })));
    assert!(matches!(handle.query(Query::StateHash), Err(RequestError::Fatal { .. })));
    let (producer, _replies) = handle.producer(1);
    let refused = producer.try_submit(0, workload.transfers(2)).expect_err("refused");
    assert!(matches!(refused.error, RequestError::Fatal { .. }));
    assert_eq!(refused.commands.len(), 2, "the commands are handed back");
    match runtime.shutdown() {
        Err(RuntimeError::Fatal(message)) => assert_eq!(message, failure),
        other => panic!("expected Fatal, got {other:?}"),
    }
    // A restart re-reads what the disk holds: at least everything acknowledged.
    let (runtime, report) = start(temp.path(), options());
    assert!(report.last_seq >= acknowledged.len() as u64);
    let view = runtime.handle().query(Query::Account(account(ACCOUNTS - 1))).expect("query");
    assert!(matches!(view, QueryAnswer::Account(Some(_))));
    runtime.shutdown().expect("shutdown");
}

#[test]
fn a_failed_sync_on_the_flusher_thread_fails_the_round_in_flight_and_the_one_behind_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let round_len = writer::PIPELINE_COMMANDS_MIN as u32;
    let options =
        RuntimeOptions { batch_len_max: round_len, submission_len_max: round_len, ..options() };
    let (runtime, storage) = start_faulty(temp.path(), options);
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), round_len as usize);
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    runtime.run_on_writer(move || {
        // The next data sync fails, on whichever thread runs it.
        storage.fail_next(FaultOp::SyncData, libc::EIO);
        entered_tx.send(()).expect("test waits");
        let _ = release_rx.recv();
    });
    entered_rx.recv().expect("the writer entered the hook");
    let (producer, replies) = handle.producer(8);
    for token in 0..3 {
        producer.submit(token, workload.transfers(round_len as usize)).expect("submit");
    }
    release_tx.send(()).expect("release");
    for token in 0..3 {
        let reply = replies.recv().expect("reply");
        assert_eq!(reply.token, token);
        assert!(matches!(reply.result, Err(RequestError::Fatal { .. })), "{reply:?}");
    }
    assert!(runtime.stats().pipelined_flushes >= 1, "the failing sync ran on the flusher");
    assert!(matches!(runtime.shutdown(), Err(RuntimeError::Fatal(_))));
}

#[test]
fn a_writer_panic_fails_the_runtime_and_answers_every_waiting_producer() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, _) = start(temp.path(), options());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), 64);
    let (producer, replies) = handle.producer(4);
    runtime.run_on_writer(|| panic!("injected writer bug (expected in this test)"));
    // Refused up front, or answered with an error once it was dropped with the ring: never
    // left waiting.
    if producer.submit(1, workload.transfers(2)).is_ok() {
        let reply = replies.recv().expect("a reply");
        assert!(reply.result.is_err(), "{reply:?}");
    }
    let failure = runtime.wait_for_failure(Duration::from_secs(10)).expect("failed");
    assert!(failure.contains("panicked"), "{failure}");
    assert!(handle.execute(workload.transfers(1)).is_err());
    assert!(matches!(runtime.shutdown(), Err(RuntimeError::Panicked("writer"))));
}

#[test]
fn no_space_for_a_segment_refuses_the_rest_of_the_submission_and_recovers() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, storage) = start_faulty(temp.path(), small_segments());
    let handle = runtime.handle();
    // The disk is full: the spare asked for at the first append cannot be prepared.
    storage.fail_next_on(FaultOp::Allocate, journal::SPARE_FILE_NAME, libc::ENOSPC);
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), 64);
    let segment_count = segments(temp.path()).len();
    // Nor the next segment the writer creates inline (`<20 digits>.seg.tmp`).
    runtime.run_on_writer(move || storage.fail_next_on(FaultOp::Allocate, "0000", libc::ENOSPC));
    // 64 transfers do not fit the rest of a 4 KiB segment: the next segment is needed, and
    // creating it on the writer fails too.
    let batch = workload.transfers(64);
    let completed = match handle.execute(batch.clone()) {
        Err(RequestError::NoSpace { completed_len, .. }) => completed_len as usize,
        other => panic!("expected NoSpace, got {other:?}"),
    };
    assert!(completed < batch.len());
    assert_eq!(segments(temp.path()).len(), segment_count, "no segment was created");
    assert_eq!(handle.failure(), None, "not fatal");
    let tx = |index: usize| match handle.query(Query::Tx(batch[index].tx_id)) {
        Ok(QueryAnswer::Tx(tx)) => tx,
        other => panic!("{other:?}"),
    };
    assert!(tx(completed).is_none(), "the refused command was not journaled");
    if completed > 0 {
        assert!(tx(completed - 1).is_some(), "the completed ones were");
    }
    // Space is back: re-sending the submission completes it.
    let executed = handle.execute(batch).expect("retry");
    for (index, outcome) in executed.outcomes.iter().enumerate() {
        assert_eq!(outcome.duplicate, index < completed, "command {index}");
    }
    let hash = state_hash(&handle);
    let shutdown = runtime.shutdown().expect("shutdown");
    let (runtime, report) = start(temp.path(), small_segments());
    assert_eq!((report.last_seq, report.state_hash), (shutdown.last_seq, hash));
    runtime.shutdown().expect("shutdown");
}

#[test]
fn a_full_ring_blocks_or_refuses_producers_without_growing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let options = RuntimeOptions { ring_capacity: 2, ..options() };
    let (runtime, _) = start(temp.path(), options);
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), 64);
    // Hold the writer inside a hook until released.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    runtime.run_on_writer(move || {
        entered_tx.send(()).expect("test waits");
        let _ = release_rx.recv();
    });
    entered_rx.recv().expect("the writer entered the hook");
    let (producer, replies) = handle.producer(8);
    producer.try_submit(1, workload.transfers(2)).expect("fits");
    producer.try_submit(2, workload.transfers(2)).expect("fits");
    let refused = producer.try_submit(3, workload.transfers(5)).expect_err("ring full");
    assert_eq!(refused.error, RequestError::Busy);
    assert_eq!(refused.commands.len(), 5);
    assert_eq!(producer.in_flight(), 2, "a refused request holds no window slot");
    // The window bounds a producer the same way.
    let (narrow, narrow_replies) = handle.producer(1);
    release_tx.send(()).expect("release");
    let tokens: Vec<u64> = (0..2).map(|_| replies.recv().expect("reply").token).collect();
    assert_eq!(tokens, [1, 2]);
    narrow.submit(1, workload.transfers(1)).expect("submit");
    let refused = narrow.try_submit(2, workload.transfers(1)).expect_err("window full");
    assert_eq!(refused.error, RequestError::Busy);
    assert!(narrow_replies.recv().expect("reply").result.is_ok());
    narrow.try_submit(3, workload.transfers(1)).expect("a slot was freed");
    assert!(narrow_replies.recv().expect("reply").result.is_ok());
    drop(narrow_replies);
    let refused = narrow.submit(4, workload.transfers(1)).expect_err("nobody reads replies");
    assert_eq!(refused.error, RequestError::RepliesDropped);
    runtime.shutdown().expect("shutdown");
    let refused = producer.submit(5, workload.transfers(1)).expect_err("stopped");
    assert_eq!(refused.error, RequestError::ShuttingDown);
}

#[test]
fn a_round_syncs_on_the_flusher_while_the_next_executes_and_replies_stay_in_order() {
    let temp = tempfile::tempdir().expect("temp dir");
    let round_len = writer::PIPELINE_COMMANDS_MIN as u32;
    let options =
        RuntimeOptions { batch_len_max: round_len, submission_len_max: round_len, ..options() };
    let (runtime, _) = start(temp.path(), options);
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), round_len as usize);
    let before = runtime.stats();
    // Hold the writer while three rounds' worth of submissions queue up behind it.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    runtime.run_on_writer(move || {
        entered_tx.send(()).expect("test waits");
        let _ = release_rx.recv();
    });
    entered_rx.recv().expect("the writer entered the hook");
    let (producer, replies) = handle.producer(8);
    for token in 0..3 {
        producer.submit(token, workload.transfers(round_len as usize)).expect("submit");
    }
    producer.query(3, Query::StateHash).expect("query");
    release_tx.send(()).expect("release");
    let mut last_seq = 0;
    for token in 0..3 {
        let reply = replies.recv().expect("reply");
        assert_eq!(reply.token, token);
        let Ok(Answer::Executed(executed)) = reply.result else { panic!("{reply:?}") };
        assert!(executed.last_seq > last_seq && handle.durable_seq() >= executed.last_seq);
        last_seq = executed.last_seq;
    }
    let reply = replies.recv().expect("reply");
    assert!(matches!(reply.result, Ok(Answer::Query(QueryAnswer::StateHash(_)))), "{reply:?}");
    // A full round found the next one waiting (it did not fit): its sync was handed off.
    let after = runtime.stats();
    assert!(after.pipelined_flushes > before.pipelined_flushes, "{after:?}");
    assert_eq!(after.durable_seq, last_seq);
    let hash = state_hash(&handle);
    let shutdown = runtime.shutdown().expect("shutdown");
    assert_eq!(reference_hash(&journaled(temp.path())), hash);
    assert_eq!(shutdown.durable_seq, shutdown.last_seq);
}

#[test]
fn start_refuses_bad_options_a_second_writer_and_other_engine_settings() {
    let temp = tempfile::tempdir().expect("temp dir");
    for bad in [
        RuntimeOptions { batch_len_max: 0, ..options() },
        RuntimeOptions { submission_len_max: 512, ..options() },
        RuntimeOptions { ring_capacity: 0, ..options() },
        RuntimeOptions { snapshot_every_records: Some(0), ..options() },
        RuntimeOptions { batch_delay_us: BATCH_DELAY_US_CEILING + 1, ..options() },
    ] {
        assert!(matches!(Runtime::start(temp.path(), bad), Err(RuntimeError::InvalidOptions(_))));
    }
    let (runtime, _) = start(temp.path(), options());
    let second = Runtime::start(temp.path(), options());
    assert!(matches!(second, Err(RuntimeError::Journal(JournalError::Locked { .. }))));
    let handle = runtime.handle();
    let too_long = handle.execute(Workload::new(0).transfers(65));
    assert_eq!(too_long, Err(RequestError::Len { len: 65, len_max: 64 }));
    assert_eq!(handle.execute(Vec::new()), Err(RequestError::Len { len: 0, len_max: 64 }));
    runtime.shutdown().expect("shutdown");
    let other_seed =
        Runtime::start(temp.path(), RuntimeOptions { hash_seed: Some(43), ..options() });
    assert!(matches!(other_seed, Err(RuntimeError::ConfigMismatch { .. })), "{other_seed:?}");
    let other = EngineConfig { tx_retained: 8_192, ..ENGINE_CONFIG };
    let mismatch =
        Runtime::start(temp.path(), RuntimeOptions { engine_config: other, ..options() });
    assert!(matches!(mismatch, Err(RuntimeError::ConfigMismatch { .. })), "{mismatch:?}");
}

#[test]
fn group_commit_with_a_batch_delay_serves_every_producer() {
    let temp = tempfile::tempdir().expect("temp dir");
    let options = RuntimeOptions { batch_delay_us: 200, batch_len_max: 64, ..options() };
    let (runtime, _) = start(temp.path(), options);
    let handle = runtime.handle();
    execute_all(&handle, &Workload::new(0).setup(), 64);
    std::thread::scope(|scope| {
        for stream in 1..=4 {
            let handle = handle.clone();
            scope.spawn(move || {
                let mut workload = Workload::new(stream);
                for _ in 0..20 {
                    execute_all(&handle, &workload.transfers(1), 1);
                }
            });
        }
    });
    let stats = runtime.stats();
    assert_eq!(stats.durable_seq, stats.commands);
    runtime.shutdown().expect("shutdown");
}

/// The writer parks on an empty ring and every submission wakes it (`Shared::wake_writer`):
/// producers with one request in flight each make it park and wake thousands of times, from
/// several threads at once. A lost wake-up would leave a producer waiting forever; the deadline
/// below turns that into a failure instead of a hung test (it is not a timing assertion: a
/// correct writer finishes in well under a second).
#[test]
fn a_parked_writer_is_woken_by_every_submission() {
    let temp = tempfile::tempdir().expect("temp dir");
    let options = RuntimeOptions { sync_mode: SyncMode::None, ..options() };
    let (runtime, _) = start(temp.path(), options);
    let handle = runtime.handle();
    const PRODUCERS: u128 = 4;
    const SUBMISSIONS: usize = 2_000;
    let (done_tx, done_rx) = mpsc::channel();
    // Everything that waits for the writer runs on this thread, so that the test thread can
    // give up on it.
    let driver = std::thread::spawn(move || {
        execute_all(&handle, &Workload::new(0).setup(), 64);
        std::thread::scope(|scope| {
            for stream in 1..=PRODUCERS {
                let handle = handle.clone();
                scope.spawn(move || {
                    let mut workload = Workload::new(stream);
                    for _ in 0..SUBMISSIONS {
                        execute_all(&handle, &workload.transfers(1), 1);
                    }
                });
            }
        });
        let _ = done_tx.send(());
    });
    if done_rx.recv_timeout(std::time::Duration::from_secs(120)).is_err() {
        // Its shutdown would wait for the same wake-up.
        std::mem::forget(runtime);
        panic!("a producer never got its reply: a lost wake-up");
    }
    driver.join().expect("producers");
    let stats = runtime.stats();
    assert_eq!(stats.commands, stats.durable_seq);
    assert_eq!(stats.commands, 1 + 2 * u64::from(ACCOUNTS) + PRODUCERS as u64 * SUBMISSIONS as u64);
    runtime.shutdown().expect("shutdown");
}

/// The `# golden: <name>` bytes in FORMAT.md (`OFFSET: hex bytes | comment` lines).
fn golden(name: &str) -> Vec<u8> {
    const FORMAT_MD: &str = include_str!("../../journal/FORMAT.md");
    let marker = format!("# golden: {name}");
    let start = FORMAT_MD.find(&marker).unwrap_or_else(|| panic!("FORMAT.md has no {marker}"));
    let mut bytes = Vec::new();
    for line in FORMAT_MD[start..].lines().skip(1).take_while(|line| !line.starts_with("```")) {
        let (offset, rest) = line.split_once(':').expect("golden lines start with `OFFSET:`");
        assert_eq!(usize::from_str_radix(offset.trim(), 16), Ok(bytes.len()), "{name}: {line}");
        let hex = rest.split('|').next().unwrap_or_default();
        for token in hex.split_whitespace() {
            bytes.push(u8::from_str_radix(token, 16).expect("golden bytes are hex"));
        }
    }
    bytes
}

#[test]
fn golden_bytes_of_a_journaled_transfer() {
    let command = Command {
        tx_id: TxId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
        timestamp_ns: 1_700_000_000_000_000_000,
        body: CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: cents(1250) },
    };
    let mut encoded = Vec::new();
    engine::encode_command(&command, &mut encoded);
    assert_eq!(encoded, golden("command-transfer"));
    assert_eq!(engine::decode_command(&golden("command-transfer")), Ok(command));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// However commands are split into submissions, the runtime answers exactly what an engine
    /// fed the journal's commands answers, and a restart rebuilds the same state.
    #[test]
    fn outcomes_and_recovery_match_a_plain_engine(
        splits in proptest::collection::vec(1usize..=12, 1..20),
        seed in 1u128..1_000,
    ) {
        let temp = tempfile::tempdir().expect("temp dir");
        let options = RuntimeOptions { sync_mode: SyncMode::None, ..small_segments() };
        let (runtime, _) = start(temp.path(), options.clone());
        let handle = runtime.handle();
        let mut workload = Workload::new(seed);
        let mut outcomes = execute_all(&handle, &workload.setup(), 64);
        for len in splits {
            let mut batch = workload.transfers(len);
            batch[0].tx_id = TxId(seed << 64 | 2); // sometimes a retry, sometimes a conflict
            outcomes.extend(handle.execute(batch).expect("execute").outcomes);
        }
        let shutdown = runtime.shutdown().expect("shutdown");
        let commands = journaled(temp.path());
        let mut engine = Engine::new(ENGINE_CONFIG);
        let mut fx = Effects::default();
        let expected: Vec<Outcome> = commands.iter().map(|c| engine.apply(c, &mut fx)).collect();
        prop_assert_eq!(outcomes, expected);
        prop_assert_eq!(engine.state_hash(), shutdown.state_hash);
        let (runtime, report) = start(temp.path(), options);
        prop_assert_eq!(report.state_hash, shutdown.state_hash);
        runtime.shutdown().expect("shutdown");
    }
}

/// A test-only durability stage after the local flush: it tells the test which round it was
/// given, then waits for the test's verdict on it.
struct Gate {
    rounds: mpsc::Sender<(u64, u64, usize)>,
    verdicts: std::sync::Mutex<mpsc::Receiver<Result<(), String>>>,
    /// The last seq of every round `settled` was called for.
    settled: mpsc::Sender<u64>,
}

impl DurableStage for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    fn wants_payloads(&self) -> bool {
        true
    }

    fn make_durable(
        &mut self,
        round: &Round<'_>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let _ = self.rounds.send((round.first_seq, round.last_seq, round.payloads.len()));
        let verdict = self.verdicts.lock().expect("not poisoned").recv();
        Ok(verdict.unwrap_or(Err("the test is gone".to_owned()))?)
    }

    fn settled(&mut self, round: &Round<'_>) {
        let _ = self.settled.send(round.last_seq);
    }
}

#[test]
fn replies_wait_for_every_durability_stage_and_a_failed_stage_fails_the_runtime() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (rounds_tx, rounds) = mpsc::channel();
    let (verdicts, verdicts_rx) = mpsc::channel();
    let (settled_tx, settled) = mpsc::channel();
    let gate = Gate {
        rounds: rounds_tx,
        verdicts: std::sync::Mutex::new(verdicts_rx),
        settled: settled_tx,
    };
    let stages: Vec<Box<dyn DurableStage>> = vec![Box::new(gate)];
    let (runtime, _) =
        Runtime::start_in(journal::FileStorage, temp.path(), options(), stages).expect("start");
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    let (producer, replies) = handle.producer(4);
    let setup = workload.setup();
    producer.submit(1, setup.clone()).expect("submit");
    // The round was flushed locally and handed to the gate, with every payload: no reply yet.
    let (first_seq, last_seq, payloads_len) = rounds.recv().expect("the gate saw the round");
    assert_eq!((first_seq, last_seq), (1, setup.len() as u64));
    let journaled_len: usize = journaled(temp.path())
        .iter()
        .map(|command| {
            let mut encoded = Vec::new();
            engine::encode_command(command, &mut encoded);
            4 + encoded.len()
        })
        .sum();
    assert_eq!(payloads_len, journaled_len);
    assert!(replies.try_recv().is_none(), "released before the last stage");
    assert_eq!(handle.durable_seq(), 0, "not durable before the last stage");
    verdicts.send(Ok(())).expect("gate waits");
    let reply = replies.recv().expect("reply");
    assert!(reply.result.is_ok(), "{reply:?}");
    assert_eq!(handle.durable_seq(), last_seq);
    // Settled before the reply was released (the local flush and the stage both done).
    assert_eq!(settled.try_recv(), Ok(last_seq));

    // The stage fails the next round: nothing is acknowledged any more.
    producer.submit(2, workload.transfers(3)).expect("submit");
    rounds.recv().expect("the gate saw the round");
    verdicts.send(Err("etcd is gone".to_owned())).expect("gate waits");
    let reply = replies.recv().expect("reply");
    assert!(matches!(reply.result, Err(RequestError::Fatal { .. })), "{reply:?}");
    let failure = runtime.failure().expect("failed");
    assert!(failure.contains("gate") && failure.contains("etcd is gone"), "{failure}");
    assert_eq!(handle.durable_seq(), last_seq);
    assert!(matches!(handle.execute(workload.transfers(1)), Err(RequestError::Fatal { .. })));
    assert!(matches!(runtime.shutdown(), Err(RuntimeError::Fatal(_))));
    assert!(settled.try_recv().is_err(), "a failed round is never settled");
}

#[test]
fn a_new_ledger_draws_its_hash_seed_and_keeps_it() {
    let random = RuntimeOptions { hash_seed: None, ..options() };
    let mut seeds = Vec::new();
    for _ in 0..2 {
        let temp = tempfile::tempdir().expect("temp dir");
        let (runtime, report) = start(temp.path(), random.clone());
        let seed = report.engine_config.hash_seed;
        execute_all(&runtime.handle(), &Workload::new(0).setup(), 64);
        let hash = state_hash(&runtime.handle());
        runtime.shutdown().expect("shutdown");
        // Stored in the genesis snapshot: a restart with `None` or the same seed gets it back.
        for hash_seed in [None, Some(seed)] {
            let options = RuntimeOptions { hash_seed, ..options() };
            let (runtime, report) = start(temp.path(), options);
            assert_eq!((report.engine_config.hash_seed, report.state_hash), (seed, hash));
            runtime.shutdown().expect("shutdown");
        }
        let other = RuntimeOptions { hash_seed: Some(seed ^ 1), ..options() };
        let mismatch = Runtime::start(temp.path(), other);
        assert!(matches!(mismatch, Err(RuntimeError::ConfigMismatch { .. })), "{mismatch:?}");
        seeds.push(seed);
    }
    assert_ne!(seeds[0], seeds[1], "each new ledger draws its own seed");
    assert!(!seeds.contains(&EngineConfig::default().hash_seed));
}

#[test]
fn read_only_recovery_of_a_live_ledger_takes_no_lock_and_changes_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (runtime, _) = start(temp.path(), small_segments());
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), 64);
    execute_all(&handle, &workload.transfers(200), 16);
    let hash = state_hash(&handle);
    // While the writer holds the lock.
    let read_only = RecoverOptions::read_only(Base::Newest, None);
    let recovered = recover(journal::FileStorage, temp.path(), &read_only).expect("recover");
    assert_eq!(recovered.report.state_hash, hash);
    assert_eq!(recovered.report.last_seq, handle.durable_seq());
    assert_eq!(recovered.report.genesis_snapshot, None);
    // Through a seq, from the snapshot at or before it.
    let at = RecoverOptions::read_only(Base::AtOrBefore(10), Some(10));
    let recovered = recover(journal::FileStorage, temp.path(), &at).expect("recover");
    assert_eq!(recovered.report.last_seq, 10);
    assert_eq!(recovered.report.state_hash, reference_hash(&journaled(temp.path())[..10]));
    let RecoveredLog::Reader(mut reader) = recovered.log else { panic!("a reader") };
    assert_eq!(reader.next_ref().expect("read").map(|record| record.seq), Some(11));
    runtime.shutdown().expect("shutdown");

    // A torn tail is reported and left alone; no snapshot: refused, nothing created.
    let segment = segments(temp.path()).pop().expect("segment");
    let mut bytes = fs::read(&segment).expect("read");
    let first_seq = list_segments(&journal::journal_dir(temp.path()))
        .expect("list")
        .last()
        .expect("segment")
        .first_seq;
    let &(_, offset, _, _) = records_of(&segment, first_seq).last().expect("a record");
    bytes[offset as usize + 20] ^= 0xff;
    fs::write(&segment, &bytes).expect("write");
    let recovered = recover(journal::FileStorage, temp.path(), &read_only).expect("recover");
    assert!(recovered.report.journal.torn_tail.is_some());
    assert_eq!(fs::read(&segment).expect("read"), bytes, "the torn tail is not zeroed");
    fs::remove_dir_all(journal::snapshot_dir(temp.path())).expect("remove snapshots");
    let refused = recover(journal::FileStorage, temp.path(), &read_only).map(|_| ());
    assert!(matches!(refused, Err(RuntimeError::NoSnapshot { .. })), "{refused:?}");
    assert!(!journal::snapshot_dir(temp.path()).exists(), "no genesis snapshot was written");
}

#[test]
fn a_runtime_on_the_in_memory_disk_recovers_after_a_power_failure() {
    let temp = tempfile::tempdir().expect("temp dir");
    let storage = journal::MemoryStorage::new();
    let start_on = |storage: &journal::MemoryStorage| {
        let (runtime, report) =
            Runtime::start_in(storage.clone(), temp.path(), small_segments(), Vec::new())
                .expect("start");
        (runtime, report)
    };
    let (runtime, _) = start_on(&storage);
    let handle = runtime.handle();
    let mut workload = Workload::new(0);
    execute_all(&handle, &workload.setup(), 64);
    execute_all(&handle, &workload.transfers(300), 16);
    // The follower reads the in-memory journal up to the durable seq.
    let written = runtime.snapshot_now().expect("snapshot");
    assert_eq!(written.seq, handle.durable_seq());
    execute_all(&handle, &workload.transfers(50), 16);
    let hash = state_hash(&handle);
    let shutdown = runtime.shutdown().expect("shutdown");
    // Nothing on the real disk: the journal and the snapshots (genesis and the follower's)
    // are on the in-memory one, and the synced snapshot survives its power failure.
    assert!(!journal::journal_dir(temp.path()).exists());
    assert!(!journal::snapshot_dir(temp.path()).exists());
    storage.crash();
    let (runtime, report) = start_on(&storage);
    assert_eq!((report.last_seq, report.state_hash), (shutdown.last_seq, hash));
    assert_eq!(report.snapshot.map(|(seq, _)| seq), Some(written.seq));
    runtime.shutdown().expect("shutdown");
}

/// A stage that hands every round (its seqs, payloads and checkpoint) to the test and asks for
/// a checkpoint on every round.
struct Capture {
    rounds: mpsc::Sender<(u64, u64, Vec<u8>, Option<u128>)>,
}

impl DurableStage for Capture {
    fn name(&self) -> &str {
        "capture"
    }

    fn wants_payloads(&self) -> bool {
        true
    }

    fn wants_state_hash(&mut self, _first_seq: u64, _last_seq: u64) -> bool {
        true
    }

    fn make_durable(
        &mut self,
        round: &Round<'_>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let captured = (round.first_seq, round.last_seq, round.payloads.to_vec(), round.state_hash);
        self.rounds.send(captured).map_err(|_| "the test is gone")?;
        Ok(())
    }
}

#[test]
fn a_standby_journals_replicated_rounds_byte_for_byte_and_reaches_the_same_state() {
    let primary_dir = tempfile::tempdir().expect("temp dir");
    let standby_dir = tempfile::tempdir().expect("temp dir");
    let (rounds_tx, rounds) = mpsc::channel();
    let stages: Vec<Box<dyn DurableStage>> = vec![Box::new(Capture { rounds: rounds_tx })];
    let (primary, _) =
        Runtime::start_in(journal::FileStorage, primary_dir.path(), options(), stages)
            .expect("start");
    let mut workload = Workload::new(0);
    execute_all(&primary.handle(), &workload.setup(), 64);
    execute_all(&primary.handle(), &workload.transfers(300), 7);
    let primary_hash = state_hash(&primary.handle());
    let primary_report = primary.shutdown().expect("shutdown");

    let (standby, _) = start(standby_dir.path(), options());
    let handle = standby.handle();
    let captured: Vec<_> = rounds.try_iter().collect();
    assert!(captured.len() > 1, "several rounds");
    let mut checked = 0;
    for (first_seq, last_seq, payloads, state_hash) in &captured {
        // Refused, and nothing journaled: a gap, a record that is not a command, a bad count.
        let gap = handle.replicate(first_seq + 1, payloads.clone(), 1, false);
        assert!(matches!(gap, Err(RequestError::Replication { .. })), "{gap:?}");
        let mut garbage = 3u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[0xff; 3]);
        garbage.extend_from_slice(payloads);
        let count = (last_seq - first_seq + 1) as u32;
        let refused = handle.replicate(*first_seq, garbage, count, false);
        assert!(matches!(refused, Err(RequestError::Replication { .. })), "{refused:?}");
        let miscounted = handle.replicate(*first_seq, payloads.clone(), count + 1, false);
        assert!(matches!(miscounted, Err(RequestError::Replication { .. })), "{miscounted:?}");
        assert_eq!(handle.durable_seq(), first_seq - 1, "refusals journal nothing");

        let replicated =
            handle.replicate(*first_seq, payloads.clone(), count, true).expect("replicate");
        assert_eq!(replicated.last_seq, *last_seq);
        assert_eq!(
            replicated.state_hash, *state_hash,
            "the checkpoints agree after seq {last_seq}"
        );
        assert!(state_hash.is_some(), "the stage asked for a checkpoint of every round");
        checked += 1;
    }
    assert_eq!(checked, captured.len());
    assert_eq!(state_hash(&handle), primary_hash);
    // A command submitted here after the replicated ones continues the sequence.
    let after = handle.execute(workload.transfers(1)).expect("execute");
    assert_eq!(after.last_seq, primary_report.last_seq + 1);
    standby.shutdown().expect("shutdown");
    // The journals are the same records, byte for byte, up to the primary's end.
    let primary_records = journaled(primary_dir.path());
    let standby_records = journaled(standby_dir.path());
    assert_eq!(standby_records[..primary_records.len()], primary_records[..]);
}
