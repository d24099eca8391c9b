//! Scenarios: the real runtime on a temporary data dir, the bank simulator on a loopback port,
//! and one processor; after each, money is conserved and nothing user-owned is negative.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bank::sim::{BankConfig, PPM};
use engine::{
    AccountKind, AccountLimits, AccountNo, Amount, CommandBody, CurrencyCode, ResultCode, TxId,
    TxState,
};
use journal::runtime::{Handle, NewCommand, Query, QueryAnswer, Runtime, RuntimeOptions};

use super::{settlement_file, settlement_tx_id, spawn, ChannelOptions, Processor, Step};

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
    processor: Option<Processor>,
    next_tx: u128,
}

impl Scenario {
    fn start(config: BankConfig) -> Scenario {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = RuntimeOptions { pin_core: None, ..RuntimeOptions::default() };
        let (runtime, _) = Runtime::start(dir.path(), options).expect("runtime");
        let handle = runtime.handle();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        bank::server::spawn(listener, config).expect("bank");
        let mut scenario =
            Scenario { _dir: dir, runtime: Some(runtime), handle, processor: None, next_tx: 1 };
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
        let options = ChannelOptions {
            retry_initial_ms: 20,
            retry_max_ms: 40,
            attempts_max: 3,
            poll_ms: 5,
            ..ChannelOptions::new(no("bank1"), addr)
        };
        let data_dir = scenario._dir.path().to_path_buf();
        scenario.processor =
            Some(spawn(&data_dir, scenario.handle.clone(), options).expect("spawn"));
        scenario
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
fn a_deposit_refused_after_the_money_moved_on_is_reversed_and_booked() {
    let mut s =
        Scenario::start(BankConfig { latency_ms: 100, fail_ppm: PPM, ..BankConfig::default() });
    let deposit = s.deposit("alice", "100");
    s.ok(CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: amount("60") });
    s.ok(CommandBody::Transfer { from: no("bob"), to: no("carol"), amount: amount("60") });
    s.wait_for(deposit, TxState::Failed);
    assert_eq!(s.bal("alice"), (0, 0, 0));
    assert_eq!(s.bal("carol"), (6_000, 0, 6_000));
    assert_eq!(s.bal("risk"), (-6_000, 0, -6_000), "the receivable");
    s.check(true);
}

#[test]
fn duplicate_and_late_answers_change_nothing() {
    let config = BankConfig { latency_ms: 2, duplicate_ppm: PPM, ..BankConfig::default() };
    let mut s = Scenario::start(config);
    let deposit = s.deposit("alice", "10");
    s.wait_for(deposit, TxState::Settled);
    // The duplicate answer arrives too; resubmitting its command is a retry.
    let again = s
        .handle
        .execute(vec![NewCommand {
            tx_id: settlement_tx_id(deposit, Step::Confirm),
            body: CommandBody::SettleConfirm { target: deposit },
        }])
        .expect("execute");
    assert!(again.outcomes[0].duplicate);
    // A late refusal for a settled deposit is refused by the lifecycle.
    let (_, late) = s.run(CommandBody::SettleFail { target: deposit });
    assert_eq!(late, ResultCode::IllegalTransition);
    assert_eq!(s.bal("alice"), (1_000, 0, 1_000));
    s.check(true);
}

#[test]
fn an_unanswered_instruction_is_given_up_and_stays_settling() {
    let config = BankConfig { latency_ms: 1, timeout_ppm: PPM, ..BankConfig::default() };
    let mut s = Scenario::start(config);
    let deposit = s.deposit("alice", "5");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.processor.as_ref().map(|p| p.stuck()) != Some(vec![deposit]) {
        assert!(Instant::now() < deadline, "never given up");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(s.state(deposit), Some(TxState::Settling));
    assert_eq!(s.bal("alice"), (500, 0, 0));
    s.check(false);
    // Reconciliation (or an operator) resolves it later.
    s.ok(CommandBody::SettleConfirm { target: deposit });
    s.check(true);
}

#[test]
fn a_cutover_writes_the_days_settlement_file() {
    let mut s = Scenario::start(BankConfig { latency_ms: 2, ..BankConfig::default() });
    let first = s.deposit("alice", "10");
    let second = s.deposit("bob", "2.5");
    s.wait_for(first, TxState::Settled);
    s.wait_for(second, TxState::Settled);
    let withdrawal = s.ok(CommandBody::Withdraw {
        account_no: no("alice"),
        channel_no: no("bank1"),
        amount: amount("1"),
    });
    s.wait_for(withdrawal, TxState::Settled);
    s.ok(CommandBody::Cutover { business_date: 20_261_126 });
    let path = settlement_file(s._dir.path(), &no("bank1"), 20_261_126);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no settlement file");
        std::thread::sleep(Duration::from_millis(2));
    }
    let text = std::fs::read_to_string(&path).expect("read");
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.remove(0), "tx_id,direction,amount,currency");
    lines.sort_unstable();
    let expected =
        |tx: TxId, direction: &str, value: &str| format!("{:032x},{direction},{value},USD", tx.0);
    let mut want = vec![
        expected(first, "DEPOSIT", "10"),
        expected(second, "DEPOSIT", "2.5"),
        expected(withdrawal, "WITHDRAW", "1"),
    ];
    want.sort_unstable();
    assert_eq!(lines, want);
    s.check(true);

    // The bank's statement misses the withdrawal and has the second deposit wrong.
    let statement = s._dir.path().join("statement.csv");
    let rows = format!("tx_id,amount\n{:032x},10.00\n{:032x},2.05\n", first.0, second.0);
    std::fs::write(&statement, rows).expect("write");
    let reconciled =
        crate::cli::reconcile::run(&no("bank1"), &statement, Some(20_261_126), s._dir.path());
    assert_eq!(reconciled.exit, crate::cli::report::Exit::Rejected);
    let report = reconciled.stdout;
    assert!(report.contains(&format!("missing {:032x}: ledger 1,", withdrawal.0)), "{report}");
    assert!(
        report.contains(&format!("amount_differs {:032x}: ledger 2.5, statement 2.05", second.0)),
        "{report}"
    );
    assert!(report.contains("mismatches: 2\n"), "{report}");
}
