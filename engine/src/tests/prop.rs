//! Property tests: long random command sequences, checked against the invariants after every
//! command (through `Harness::run`), with retries and conflicts mixed in.

use proptest::prelude::*;

use super::{amt, deposit, freeze, no, open, transfer, withdraw, Harness};
use crate::{
    AccountKind, AccountLimits, AccountStatus, CommandBody, EngineConfig, FeeKind, Outcome,
    ResultCode, TxId, TxState,
};

const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];

/// One step of a random workload; indexes pick accounts and earlier transactions.
#[derive(Clone, Debug)]
enum Step {
    Deposit { user: usize, cents: u32 },
    Withdraw { user: usize, cents: u32 },
    Transfer { from: usize, to: usize, cents: u32 },
    Freeze { user: usize, cents: u32, expires_in_us: Option<u16> },
    Unfreeze { pick: usize },
    Capture { pick: usize, to: usize, cents: u32 },
    SettleBegin { pick: usize },
    SettleConfirm { pick: usize },
    SettleFail { pick: usize },
    Refund { pick: usize, cents: u32 },
    Status { user: usize, status: u8 },
    Retry { pick: usize },
    Conflict { pick: usize },
    Wait { us: u16 },
    Cutover,
}

fn step() -> impl Strategy<Value = Step> {
    let user = 0..USERS.len();
    let cents = 1u32..20_000;
    prop_oneof![
        3 => (user.clone(), cents.clone()).prop_map(|(user, cents)| Step::Deposit { user, cents }),
        2 => (user.clone(), cents.clone()).prop_map(|(user, cents)| Step::Withdraw { user, cents }),
        5 => (user.clone(), user.clone(), cents.clone())
            .prop_map(|(from, to, cents)| Step::Transfer { from, to, cents }),
        2 => (user.clone(), cents.clone(), proptest::option::of(1u16..50))
            .prop_map(|(user, cents, expires_in_us)| Step::Freeze { user, cents, expires_in_us }),
        1 => any::<usize>().prop_map(|pick| Step::Unfreeze { pick }),
        2 => (any::<usize>(), user.clone(), cents.clone())
            .prop_map(|(pick, to, cents)| Step::Capture { pick, to, cents }),
        2 => any::<usize>().prop_map(|pick| Step::SettleBegin { pick }),
        2 => any::<usize>().prop_map(|pick| Step::SettleConfirm { pick }),
        1 => any::<usize>().prop_map(|pick| Step::SettleFail { pick }),
        1 => (any::<usize>(), cents.clone()).prop_map(|(pick, cents)| Step::Refund { pick, cents }),
        1 => (user.clone(), 0u8..3).prop_map(|(user, status)| Step::Status { user, status }),
        2 => any::<usize>().prop_map(|pick| Step::Retry { pick }),
        1 => any::<usize>().prop_map(|pick| Step::Conflict { pick }),
        1 => (1u16..30).prop_map(|us| Step::Wait { us }),
        1 => Just(Step::Cutover),
    ]
}

fn cents(value: u32) -> String {
    format!("{}.{:02}", value / 100, value % 100)
}

/// The `n`th business date (1-based) of a 28-day-month calendar starting in 2026.
fn business_date(n: u32) -> u32 {
    let (month, day) = ((n - 1) / 28 % 12 + 1, (n - 1) % 28 + 1);
    (2_026 + (n - 1) / 336) * 10_000 + month * 100 + day
}

/// Runs the steps; returns the harness and every (tx_id, command, first outcome).
fn run(steps: &[Step], tx_retained: u32) -> (Harness, Vec<(TxId, CommandBody, Outcome)>) {
    let mut h = Harness::with_config(EngineConfig { tx_retained, ..EngineConfig::default() });
    for user in USERS {
        h.ok(open(user, "USD", AccountKind::User));
    }
    // u0 may spend at most 50.00 of unsettled deposits, u1 none at all.
    for (user, limit) in [(USERS[0], "50"), (USERS[1], "0")] {
        let limits = AccountLimits { exposure_max: Some(amt(limit)), ..AccountLimits::default() };
        h.ok(CommandBody::SetAccountLimits { account_no: no(user), limits });
    }
    h.ok(open("bank", "USD", AccountKind::System));
    h.ok(open("risk", "USD", AccountKind::Risk));
    h.ok(open("fees", "USD", AccountKind::System));
    let schedules = [
        (FeeKind::Transfer, "0.01", 30),
        (FeeKind::Capture, "0", 150),
        (FeeKind::Withdraw, "0.05", 0),
    ];
    for (kind, fixed, rate_bps) in schedules {
        let fixed = amt(fixed);
        let currency = crate::CurrencyCode::new("USD").expect("valid");
        let fee_account_no = no("fees");
        h.ok(CommandBody::SetFee { kind, currency, fee_account_no, fixed, rate_bps });
    }
    // u2 is T+1: its ledger side waits on `t1clr` until a cutover.
    h.ok(open("t1clr", "USD", AccountKind::System));
    h.ok(CommandBody::SetSettlementCycle {
        account_no: no(USERS[2]),
        t1_clearing_no: Some(no("t1clr")),
    });
    let mut days_closed = 0u32;
    let mut done: Vec<(TxId, CommandBody, Outcome)> = Vec::new();
    for step in steps {
        let pick = |i: usize| (!done.is_empty()).then(|| done[i % done.len()]);
        let target = |i: usize| pick(i).map_or(TxId(0), |(tx_id, _, _)| tx_id);
        let body = match *step {
            Step::Deposit { user, cents: c } => deposit(USERS[user], "bank", &cents(c)),
            Step::Withdraw { user, cents: c } => withdraw(USERS[user], "bank", &cents(c)),
            Step::Transfer { from, to, cents: c } => transfer(USERS[from], USERS[to], &cents(c)),
            Step::Freeze { user, cents: c, expires_in_us } => freeze(
                USERS[user],
                &cents(c),
                expires_in_us.map(|us| h.now_ns + 1_000 + us as u64 * 1_000),
            ),
            Step::Unfreeze { pick } => CommandBody::Unfreeze { hold: target(pick) },
            Step::Capture { pick, to, cents: c } => CommandBody::Capture {
                hold: target(pick),
                to: no(USERS[to]),
                amount: amt(&cents(c)),
            },
            Step::SettleBegin { pick } => CommandBody::SettleBegin { target: target(pick) },
            Step::SettleConfirm { pick } => CommandBody::SettleConfirm { target: target(pick) },
            Step::SettleFail { pick } => CommandBody::SettleFail { target: target(pick) },
            Step::Refund { pick, cents: c } => {
                CommandBody::Refund { original: target(pick), amount: amt(&cents(c)) }
            }
            Step::Status { user, status } => {
                let status =
                    [AccountStatus::Active, AccountStatus::DebitFrozen, AccountStatus::Active]
                        [status as usize];
                CommandBody::SetAccountStatus { account_no: no(USERS[user]), status }
            }
            Step::Retry { pick: i } => {
                if let Some((tx_id, body, first)) = pick(i) {
                    if h.engine.tx(tx_id).is_none() {
                        continue; // left the retention window: a resend would be new
                    }
                    let hash_before = h.engine.state_hash();
                    let again = h.run_as(tx_id, body);
                    assert!(again.duplicate, "a retry was applied again");
                    assert_eq!(
                        (again.result, again.tx_state.is_some()),
                        (first.result, first.tx_state.is_some())
                    );
                    assert_eq!(h.engine.state_hash(), hash_before);
                }
                continue;
            }
            Step::Conflict { pick: i } => {
                if let Some((tx_id, _, _)) = pick(i) {
                    if h.engine.tx(tx_id).is_none() {
                        continue;
                    }
                    let other = CommandBody::Unfreeze { hold: TxId(u128::MAX) };
                    let conflict = h.run_as(tx_id, other);
                    assert_eq!(conflict.result, ResultCode::TxIdConflict);
                }
                continue;
            }
            Step::Cutover => {
                days_closed += 1;
                CommandBody::Cutover { business_date: business_date(days_closed) }
            }
            Step::Wait { us } => {
                h.now_ns += us as u64 * 1_000;
                continue;
            }
        };
        let tx_id = h.fresh_tx();
        let outcome = h.run_as(tx_id, body);
        for user in USERS {
            let exposure = h.engine.exposure(&no(user)).expect("user exists");
            let limit = exposure.exposure_max_minor.unwrap_or(i128::MAX);
            assert!(exposure.exposure_minor <= limit, "{user} over its exposure limit");
        }
        done.push((tx_id, body, outcome));
    }
    (h, done)
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=N runs more.
    #![proptest_config(ProptestConfig::default())]

    /// Conservation, no negative customer balance, postings match balances, frozen matches
    /// holds (all checked inside `run`), retries idempotent; and two engines agree.
    #[test]
    fn random_workloads_keep_every_invariant(
        steps in proptest::collection::vec(step(), 1..300),
        tx_retained in prop_oneof![Just(4_096u32), Just(16u32)],
    ) {
        let (first, done) = run(&steps, tx_retained);
        let (second, _) = run(&steps, tx_retained);
        prop_assert_eq!(first.engine.state_hash(), second.engine.state_hash());
        let mut bytes = Vec::new();
        first.engine.encode_state(&mut bytes);
        let restored = crate::Engine::decode_state(&bytes).expect("a state decodes");
        prop_assert_eq!(restored.state_hash(), first.engine.state_hash());
        // Once nothing is pending any more, `ledger` has caught up everywhere.
        let mut settled = first;
        for (tx_id, _, _) in &done {
            match settled.engine.tx(*tx_id).and_then(|tx| tx.state) {
                Some(TxState::PendingSettlement) => {
                    settled.ok(CommandBody::SettleBegin { target: *tx_id });
                    settled.ok(CommandBody::SettleConfirm { target: *tx_id });
                }
                Some(TxState::Settling) => {
                    settled.ok(CommandBody::SettleConfirm { target: *tx_id });
                }
                Some(TxState::Frozen) => {
                    // The command's own time may expire the hold first: released either way
                    // (and a hold older than the retention window is forgotten once it ends).
                    let result = settled.run(CommandBody::Unfreeze { hold: *tx_id }).result;
                    prop_assert!(
                        matches!(
                            result,
                            ResultCode::Ok | ResultCode::HoldReleased | ResultCode::HoldNotFound
                        ),
                        "{:?}",
                        result
                    );
                }
                _ => {}
            }
        }
        // The T+1 account's ledger catches up at the next cutover.
        settled.ok(CommandBody::Cutover { business_date: 99_991_231 });
        for index in 0..settled.engine.account_count() {
            let view = settled.engine.account_by_id(crate::AccountId(index));
            prop_assert_eq!(view.frozen_minor, 0);
            prop_assert_eq!(view.ledger_minor, view.available_minor, "{}", view.account_no);
        }
        let first = settled;
        // Lifecycle: whatever is remembered went through legal transitions only.
        for (tx_id, _, _) in &done {
            if let Some(view) = first.engine.tx(*tx_id) {
                for pair in view.history.windows(2) {
                    prop_assert!(pair[0].can_become(pair[1]), "{:?}", view.history);
                }
                if let Some(state) = view.state {
                    prop_assert_eq!(view.history.last().copied(), Some(state));
                }
                prop_assert!(view.refunded_minor <= view.amount_minor);
                if view.refunded_minor > 0 {
                    prop_assert_eq!(view.state, Some(TxState::Reversed));
                }
            }
        }
    }
}
