//! Scenarios: the real runtime on a temporary data dir, the bank simulator on a loopback port,
//! and one processor; after each, money is conserved and nothing user-owned is negative.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bank::sim::{BankConfig, PPM};
use engine::{
    AccountKind, AccountLimits, AccountNo, Amount, CommandBody, CurrencyCode, ResultCode, TxId,
    TxState,
};
use runtime::{Handle, NewCommand, Query, QueryAnswer, Runtime, RuntimeOptions};

use crate::{
    batch_id, netting_file, settlement_file, spawn, ChannelOptions, CoreError, Processor,
    SettlementError,
};

fn no(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid")
}

fn amount(text: &str) -> Amount {
    text.parse().expect("valid")
}

struct Scenario {
    _dir: tempfile::TempDir,
    runtime: Option<Runtime>,
    handle: Handle,
    bank: std::sync::Arc<bank::server::Bank>,
    options: ChannelOptions,
    processor: Option<Processor>,
    next_tx: u128,
}

impl Scenario {
    fn start(config: BankConfig) -> Scenario {
        Scenario::start_with(config, |options| options)
    }

    /// A scenario whose processor runs with `tune(the test defaults)`.
    fn start_with(
        config: BankConfig,
        tune: impl FnOnce(ChannelOptions) -> ChannelOptions,
    ) -> Scenario {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = RuntimeOptions { pin_core: None, ..RuntimeOptions::default() };
        let (runtime, _) = Runtime::start(dir.path(), options).expect("runtime");
        let handle = runtime.handle();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bank = bank::server::spawn(listener, config).expect("bank");
        let options = tune(ChannelOptions {
            retry_initial_ms: 20,
            retry_max_ms: 40,
            attempts_max: 3,
            poll_ms: 5,
            net_window_ms: 5,
            ..ChannelOptions::new(no("bank1"), addr)
        });
        let mut scenario = Scenario {
            _dir: dir,
            runtime: Some(runtime),
            handle,
            bank,
            options,
            processor: None,
            next_tx: 1,
        };
        for (account, kind) in [
            ("alice", AccountKind::User),
            ("bob", AccountKind::User),
            ("carol", AccountKind::User),
            ("bank1", AccountKind::System),
            ("risk", AccountKind::Risk),
        ] {
            scenario.ok(CommandBody::OpenAccount {
                account_no: no(account),
                user_id: 1,
                currency: CurrencyCode::new("USD").expect("valid"),
                kind,
                limits: AccountLimits::default(),
            });
        }
        scenario.restart_processor();
        scenario
    }

    /// Stops the processor (if any) and starts a new one, which re-reads the journal.
    fn restart_processor(&mut self) {
        if let Some(processor) = self.processor.take() {
            processor.shutdown();
        }
        let data_dir = self._dir.path().to_path_buf();
        let processor = spawn(&data_dir, self.handle.clone(), self.options.clone());
        self.processor = Some(processor.expect("spawn"));
    }

    fn run(&mut self, body: CommandBody) -> (TxId, ResultCode) {
        self.next_tx += 1;
        let tx_id = TxId(self.next_tx);
        let executed = self.handle.execute(vec![NewCommand { tx_id, body }]).expect("execute");
        (tx_id, executed.outcomes[0].result)
    }

    fn ok(&mut self, body: CommandBody) -> TxId {
        let (tx_id, result) = self.run(body);
        assert_eq!(result, ResultCode::Ok, "{body:?}");
        tx_id
    }

    fn deposit(&mut self, account: &str, value: &str) -> TxId {
        self.ok(CommandBody::Deposit {
            account_no: no(account),
            channel_no: no("bank1"),
            amount: amount(value),
        })
    }

    fn withdraw(&mut self, account: &str, value: &str) -> TxId {
        self.ok(CommandBody::Withdraw {
            account_no: no(account),
            channel_no: no("bank1"),
            amount: amount(value),
        })
    }

    /// Closes `date` and waits for the processor's files: (settlement file, netting report).
    fn cutover(&mut self, date: u32) -> (String, String) {
        self.ok(CommandBody::Cutover { business_date: date });
        let files = [
            settlement_file(self._dir.path(), &no("bank1"), date),
            netting_file(self._dir.path(), &no("bank1"), date),
        ];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !files.iter().all(|path| path.exists()) {
            assert!(Instant::now() < deadline, "no settlement files");
            std::thread::sleep(Duration::from_millis(2));
        }
        let read = |path: &std::path::Path| std::fs::read_to_string(path).expect("read");
        (read(&files[0]), read(&files[1]))
    }

    fn state(&self, tx_id: TxId) -> Option<TxState> {
        match self.handle.query(Query::Tx(tx_id)).expect("query") {
            QueryAnswer::Tx(view) => view.and_then(|view| view.state),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Polls until `tx_id` reaches `state` (never sleeps longer than needed).
    fn wait_for(&self, tx_id: TxId, state: TxState) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.state(tx_id) != Some(state) {
            assert!(Instant::now() < deadline, "{tx_id:?} stuck in {:?}", self.state(tx_id));
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// (available, frozen, ledger) in minor units.
    fn bal(&self, account: &str) -> (i128, i128, i128) {
        match self.handle.query(Query::Account(no(account))).expect("query") {
            QueryAnswer::Account(Some(view)) => {
                (view.available_minor, view.frozen_minor, view.ledger_minor)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Conservation, no negative user balance, and (when `settled`) ledger caught up.
    fn check(&self, settled: bool) {
        match self.handle.query(Query::CheckInvariants).expect("query") {
            QueryAnswer::Invariants(result) => result.expect("invariants"),
            other => panic!("unexpected {other:?}"),
        }
        if settled {
            for account in ["alice", "bob", "carol", "bank1", "risk"] {
                let (available, frozen, ledger) = self.bal(account);
                assert_eq!(ledger, available + frozen, "{account}");
            }
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if let Some(processor) = self.processor.take() {
            processor.shutdown();
        }
        if let Some(runtime) = self.runtime.take() {
            let _ = runtime.shutdown();
        }
    }
}

#[test]
fn a_t0_deposit_settles_through_the_bank() {
    let mut s = Scenario::start(BankConfig { latency_ms: 2, ..BankConfig::default() });
    let deposit = s.deposit("alice", "25.50");
    assert_eq!(s.bal("alice"), (2_550, 0, 0), "available at once");
    s.wait_for(deposit, TxState::Settled);
    assert_eq!(s.bal("alice"), (2_550, 0, 2_550));
    s.check(true);
}

#[test]
fn transactions_within_a_window_settle_as_one_net_payment() {
    let config = BankConfig { latency_ms: 2, ..BankConfig::default() };
    let mut s = Scenario::start_with(config, |options| ChannelOptions {
        net_window_ms: 1_000,
        net_items_max: 3,
        // No re-send while the bank answers, however loaded the machine.
        retry_initial_ms: 30_000,
        retry_max_ms: 30_000,
        ..options
    });
    let first = s.deposit("alice", "10");
    let second = s.deposit("bob", "20.5");
    let third = s.withdraw("alice", "4");
    // The fourth is past `net_items_max`: a batch of its own.
    let fourth = s.deposit("carol", "1");
    for tx_id in [first, second, third, fourth] {
        s.wait_for(tx_id, TxState::Settled);
    }
    s.check(true);
    // One instruction per batch, each sent once; the bank lists every transaction.
    assert_eq!(s.bank.sends(batch_id(first)), 1);
    assert_eq!(s.bank.sends(batch_id(fourth)), 1);
    for tx_id in [first, second, third, fourth] {
        assert_eq!(s.bank.sends(tx_id.0), 0, "no gross instruction");
    }
    let mut listed: Vec<u128> = s.bank.statement().iter().map(|line| line.id).collect();
    listed.sort_unstable();
    assert_eq!(listed, vec![first.0, second.0, third.0, fourth.0]);
    // Gross vs net, per batch and in total.
    let (settlement, netting) = s.cutover(20_261_127);
    assert_eq!(settlement.lines().count(), 5, "{settlement}");
    let rows: Vec<&str> = netting.lines().collect();
    assert_eq!(
        rows,
        vec![
            "batch_id,items,deposits,withdrawals,gross,net,direction",
            &format!("{:032x},3,30.5,4.0,34.5,26.5,DEPOSIT", batch_id(first)),
            &format!("{:032x},1,1.0,0.0,1.0,1.0,DEPOSIT", batch_id(fourth)),
            "total,4,31.5,4.0,35.5,27.5,",
        ]
    );
}

#[test]
fn a_restarted_processor_resends_the_same_batch() {
    // The bank never answers the first sends; the processor is restarted meanwhile.
    let config = BankConfig { latency_ms: 2, timeout_ppm: PPM, ..BankConfig::default() };
    let mut s = Scenario::start_with(config, |options| ChannelOptions {
        attempts_max: 1,
        net_window_ms: 50,
        ..options
    });
    let first = s.deposit("alice", "3");
    let second = s.deposit("bob", "4");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.processor.as_ref().map(|p| p.stuck().len()) != Some(2) {
        assert!(Instant::now() < deadline, "never given up");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The bank reads on its own thread: the send may be counted after the give-up is seen.
    while s.bank.sends(batch_id(first)) < 1 {
        assert!(Instant::now() < deadline, "never received");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(s.bank.sends(batch_id(first)), 1);
    s.restart_processor();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.bank.sends(batch_id(first)) < 2 {
        assert!(Instant::now() < deadline, "not sent again after the restart");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(s.state(first), Some(TxState::Settling));
    assert_eq!(s.state(second), Some(TxState::Settling));
    s.check(false);
}

/// A journal (written directly, beside a runtime whose durable point covers it) whose second
/// record is not a command: the processor stops there, says so, and feeds nothing past it.
#[test]
fn an_undecodable_journal_record_stops_the_processor_naming_its_seq() {
    let s = Scenario::start(BankConfig::default());
    let other = tempfile::tempdir().expect("temp dir");
    let dir = journal::journal_dir(other.path());
    let (mut journal, _) =
        journal::Journal::open(&dir, journal::JournalOptions::default()).expect("journal");
    let deposit = engine::Command {
        tx_id: TxId(77),
        timestamp_ns: 1,
        body: CommandBody::Deposit {
            account_no: no("alice"),
            channel_no: no("bank1"),
            amount: amount("1"),
        },
    };
    let mut payload = Vec::new();
    engine::encode_command(&deposit, &mut payload);
    journal.append(&payload).expect("append");
    journal.append(b"not a command").expect("append");
    journal.append(&payload).expect("append");
    journal.flush().expect("flush");
    assert!(s.handle.durable_seq() >= 3, "the runtime's durable point covers the records");

    let processor = spawn(other.path(), s.handle.clone(), s.options.clone()).expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while processor.failure().is_none() {
        assert!(Instant::now() < deadline, "never stopped");
        std::thread::sleep(Duration::from_millis(2));
    }
    let failure = processor.failure().unwrap_or_default();
    assert!(failure.starts_with("journal record 2 does not decode"), "{failure}");
    match processor.join() {
        Err(SettlementError::Core(CoreError::Undecodable { seq: 2, .. })) => {}
        other => panic!("unexpected {other:?}"),
    }
}

/// One step of the random scenario.
#[derive(Clone, Debug)]
enum Action {
    Deposit(usize, u32),
    Withdraw(usize, u32),
    Transfer(usize, usize, u32),
}

fn action() -> impl proptest::strategy::Strategy<Value = Action> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0..3usize, 1..10_000u32).prop_map(|(who, cents)| Action::Deposit(who, cents)),
        1 => (0..3usize, 1..10_000u32).prop_map(|(who, cents)| Action::Withdraw(who, cents)),
        2 => (0..3usize, 0..3usize, 1..10_000u32)
            .prop_map(|(from, to, cents)| Action::Transfer(from, to, cents)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 8, ..Default::default() })]

    /// Random bank behaviour (refusals, duplicates, lost answers, jitter) and random activity:
    /// once every channel transaction is finished, money is conserved, nothing user-owned is
    /// negative, `ledger == available + frozen` everywhere, and the bank's statement lists
    /// exactly the transactions the ledger settled.
    #[test]
    fn random_channel_outcomes_keep_the_books(
        seed in proptest::prelude::any::<u64>(),
        fail_ppm in 0..500_000u32,
        duplicate_ppm in 0..500_000u32,
        timeout_ppm in 0..300_000u32,
        net_window_ms in 1..40u64,
        actions in proptest::collection::vec(action(), 1..30),
    ) {
        let config = BankConfig { latency_ms: 3, fail_ppm, timeout_ppm, duplicate_ppm, seed };
        let mut s = Scenario::start_with(config, |options| ChannelOptions {
            attempts_max: 40,
            retry_initial_ms: 5,
            retry_max_ms: 20,
            net_window_ms,
            ..options
        });
        let names = ["alice", "bob", "carol"];
        let cents = |value: u32| Amount { mantissa: value as i128, scale: 2 };
        let mut channel_txs = Vec::new();
        for action in &actions {
            let body = match *action {
                Action::Deposit(who, value) => CommandBody::Deposit {
                    account_no: no(names[who]),
                    channel_no: no("bank1"),
                    amount: cents(value),
                },
                Action::Withdraw(who, value) => CommandBody::Withdraw {
                    account_no: no(names[who]),
                    channel_no: no("bank1"),
                    amount: cents(value),
                },
                Action::Transfer(from, to, value) => CommandBody::Transfer {
                    from: no(names[from]),
                    to: no(names[to]),
                    amount: cents(value),
                },
            };
            let (tx_id, result) = s.run(body);
            let channel = matches!(action, Action::Deposit(..) | Action::Withdraw(..));
            if channel && result == ResultCode::Ok {
                channel_txs.push(tx_id);
            }
            s.check(false);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let finished = |state| matches!(state, Some(TxState::Settled | TxState::Failed));
        while !channel_txs.iter().all(|tx_id| finished(s.state(*tx_id))) {
            assert!(Instant::now() < deadline, "not finished: {channel_txs:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        s.check(true);
        let mut settled: Vec<u128> = channel_txs
            .iter()
            .filter(|tx_id| s.state(**tx_id) == Some(TxState::Settled))
            .map(|tx_id| tx_id.0)
            .collect();
        settled.sort_unstable();
        let mut listed: Vec<u128> = s.bank.statement().iter().map(|line| line.id).collect();
        listed.sort_unstable();
        proptest::prop_assert_eq!(settled, listed);
    }
}
