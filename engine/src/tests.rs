//! Unit tests: every command and every result code, through one door (`Harness::run`), which
//! also checks every invariant and the double-entry postings after each command.

mod bounds;
mod clearing;
mod compat;
mod fuzz;
mod plan;
mod prop;
mod retry;

use std::collections::HashMap;

use crate::limits::NS_PER_DAY;
use crate::{
    AccountId, AccountKind, AccountLimits, AccountNo, AccountStatus, Amount, Bucket, Command,
    CommandBody, CurrencyCode, Effects, Engine, EngineConfig, Outcome, ResultCode, TxId, TxKind,
    TxState,
};

pub(crate) fn no(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("test account numbers are valid")
}

pub(crate) fn amt(text: &str) -> Amount {
    text.parse().expect("test amounts are valid")
}

pub(crate) fn cur(code: &str) -> CurrencyCode {
    CurrencyCode::new(code).expect("test currency codes are valid")
}

pub(crate) fn open(account: &str, code: &str, kind: AccountKind) -> CommandBody {
    CommandBody::OpenAccount {
        account_no: no(account),
        user_id: 7,
        currency: cur(code),
        kind,
        limits: AccountLimits::default(),
    }
}

pub(crate) fn deposit(account: &str, channel: &str, amount: &str) -> CommandBody {
    CommandBody::Deposit { account_no: no(account), channel_no: no(channel), amount: amt(amount) }
}

pub(crate) fn withdraw(account: &str, channel: &str, amount: &str) -> CommandBody {
    CommandBody::Withdraw { account_no: no(account), channel_no: no(channel), amount: amt(amount) }
}

pub(crate) fn transfer(from: &str, to: &str, amount: &str) -> CommandBody {
    CommandBody::Transfer { from: no(from), to: no(to), amount: amt(amount) }
}

pub(crate) fn freeze(account: &str, amount: &str, expires_ns: Option<u64>) -> CommandBody {
    CommandBody::Freeze { account_no: no(account), amount: amt(amount), expires_ns }
}

/// Drives one engine; checks invariants and postings after every command.
pub(crate) struct Harness {
    pub engine: Engine,
    fx: Effects,
    pub now_ns: u64,
    next_tx: u128,
    /// Per account: sum of `Available + Frozen` postings, and of `Ledger` postings.
    posted: HashMap<AccountId, (i128, i128)>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(EngineConfig { tx_retained: 4_096, ..EngineConfig::default() })
    }

    pub fn with_config(config: EngineConfig) -> Harness {
        Harness {
            engine: Engine::new(config),
            fx: Effects::default(),
            now_ns: 1_700_000_000_000_000_000,
            next_tx: 1,
            posted: HashMap::new(),
        }
    }

    /// A harness with USD accounts `alice`, `bob`, `carol`, channel `bank` and `risk`.
    pub fn usd() -> Harness {
        let mut h = Harness::new();
        for (account, kind) in [
            ("alice", AccountKind::User),
            ("bob", AccountKind::User),
            ("carol", AccountKind::User),
            ("bank", AccountKind::System),
            ("risk", AccountKind::Risk),
        ] {
            h.ok(open(account, "USD", kind));
        }
        h
    }

    pub fn fresh_tx(&mut self) -> TxId {
        self.next_tx += 1;
        TxId(self.next_tx << 64 | 0xabcd)
    }

    pub fn run(&mut self, body: CommandBody) -> Outcome {
        let tx_id = self.fresh_tx();
        self.run_as(tx_id, body)
    }

    pub fn run_as(&mut self, tx_id: TxId, body: CommandBody) -> Outcome {
        self.now_ns += 1_000;
        let command = Command { tx_id, timestamp_ns: self.now_ns, body };
        let mut encoded = Vec::new();
        crate::encode_command(&command, &mut encoded);
        assert!(encoded.len() <= crate::COMMAND_LEN_BYTES_MAX);
        assert_eq!(crate::decode_command(&encoded), Ok(command), "codec round trip");
        self.fx.clear();
        let hash_before = self.engine.state_hash();
        let outcome = self.engine.apply(&command, &mut self.fx);
        if outcome.duplicate || outcome.result == ResultCode::TxIdConflict {
            assert!(self.fx.entries.is_empty());
            assert_eq!(self.engine.state_hash(), hash_before, "a retry changed the state");
        }
        for entry in &self.fx.entries {
            let posted = self.posted.entry(entry.account).or_default();
            match entry.bucket {
                Bucket::Available | Bucket::Frozen => posted.0 += entry.delta_minor,
                Bucket::Ledger => posted.1 += entry.delta_minor,
            }
        }
        self.check();
        outcome
    }

    /// Every invariant, plus: each account's balances equal the sum of its postings.
    pub fn check(&self) {
        if let Err(problem) = self.engine.check_invariants() {
            panic!("invariant broken: {problem}");
        }
        for index in 0..self.engine.account_count() {
            let view = self.engine.account_by_id(AccountId(index));
            let (assets, ledger) = self.posted.get(&view.id).copied().unwrap_or_default();
            assert_eq!(
                view.available_minor + view.frozen_minor,
                assets,
                "{}: postings",
                view.account_no
            );
            assert_eq!(view.ledger_minor, ledger, "{}: ledger postings", view.account_no);
        }
    }

    pub fn ok(&mut self, body: CommandBody) -> Outcome {
        let outcome = self.run(body);
        assert_eq!(outcome.result, ResultCode::Ok, "{body:?}");
        outcome
    }

    /// Runs a command that must be rejected with `code` and leave every balance unchanged.
    pub fn rejects(&mut self, body: CommandBody, code: ResultCode) -> Outcome {
        let before = self.balances();
        let outcome = self.run(body);
        assert_eq!(outcome.result, code, "{body:?}");
        assert!(outcome.balances.as_slice().is_empty());
        assert_eq!(self.balances(), before, "a rejected command moved money");
        outcome
    }

    pub fn balances(&self) -> Vec<(i128, i128, i128, AccountStatus)> {
        (0..self.engine.account_count())
            .map(|index| {
                let view = self.engine.account_by_id(AccountId(index));
                (view.available_minor, view.frozen_minor, view.ledger_minor, view.status)
            })
            .collect()
    }

    /// (available, frozen, ledger) of one account, in minor units.
    pub fn bal(&self, account: &str) -> (i128, i128, i128) {
        let view = self.engine.account(&no(account)).expect("account exists");
        (view.available_minor, view.frozen_minor, view.ledger_minor)
    }

    pub fn state(&self, tx_id: TxId) -> Option<TxState> {
        self.engine.tx(tx_id).and_then(|tx| tx.state)
    }
}

#[test]
fn transaction_lifecycle_allows_exactly_the_designed_transitions() {
    use TxState::*;
    let allowed = [
        (Created, RiskChecked),
        (RiskChecked, Frozen),
        (Frozen, PendingSettlement),
        (PendingSettlement, Settling),
        (Settling, Settled),
        (Created, Failed),
        (RiskChecked, Failed),
        (Frozen, Failed),
        (PendingSettlement, Failed),
        (Settling, Failed),
        (Settled, Reversed),
    ];
    for from in TxState::ALL {
        for to in TxState::ALL {
            assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from:?} -> {to:?}");
        }
    }
}

#[test]
fn amounts_convert_exactly_or_not_at_all() {
    use crate::to_minor;
    assert_eq!(to_minor(amt("10.5"), 2), Ok(1050));
    assert_eq!(to_minor(amt("10.50"), 2), Ok(1050));
    assert_eq!(to_minor(amt("10.500"), 2), Ok(1050), "trailing zeros need no rounding");
    assert_eq!(to_minor(amt("10.501"), 2), Err(ResultCode::AmountPrecision));
    assert_eq!(to_minor(amt("1.5"), 0), Err(ResultCode::AmountPrecision));
    assert_eq!(to_minor(amt("0.00000001"), 8), Ok(1));
    assert_eq!(to_minor(amt("0.000000001"), 8), Err(ResultCode::AmountPrecision));
    assert_eq!(to_minor(amt("0"), 2), Err(ResultCode::AmountNotPositive));
    assert_eq!(to_minor(amt("-1"), 2), Err(ResultCode::AmountNotPositive));
    assert_eq!(
        to_minor(amt("99999999999999999999999999.99"), 2),
        Ok(9_999_999_999_999_999_999_999_999_999)
    );
    assert_eq!(to_minor(amt("100000000000000000000000000.01"), 2), Err(ResultCode::AmountTooLarge));
    assert_eq!(
        to_minor(Amount { mantissa: i128::MAX, scale: 0 }, 8),
        Err(ResultCode::AmountTooLarge)
    );
    assert!("1.2.3".parse::<Amount>().is_err());
    assert!("1.".parse::<Amount>().is_err());
    assert!("".parse::<Amount>().is_err());
    assert_eq!(crate::format_minor(1050, 2), "10.50");
    assert_eq!(crate::format_minor(-5, 2), "-0.05");
    assert_eq!(crate::format_minor(1000, 0), "1000");
    assert_eq!(crate::format_minor(1, 8), "0.00000001");
}

#[test]
fn keys_are_validated() {
    use crate::KeyError;
    assert_eq!(AccountNo::new(b""), Err(KeyError::Empty));
    assert_eq!(AccountNo::new(&[b'a'; 33]), Err(KeyError::TooLong));
    assert!(AccountNo::new(&[b'a'; 32]).is_ok());
    assert_eq!(AccountNo::new(&[0xff, 0xfe]), Err(KeyError::NotText));
    assert_eq!(AccountNo::new(b"a\nb"), Err(KeyError::NotText));
    assert_eq!(CurrencyCode::new("usd"), Err(KeyError::NotUpperAlnum));
    assert_eq!(CurrencyCode::new("US"), Err(KeyError::NotUpperAlnum));
    assert_eq!(CurrencyCode::new("USDTTTTTT"), Err(KeyError::TooLong));
}

#[test]
fn currencies_can_be_defined_once_per_scale() {
    let mut h = Harness::new();
    h.ok(CommandBody::DefineCurrency { code: cur("XAU"), scale: 4 });
    h.ok(CommandBody::DefineCurrency { code: cur("XAU"), scale: 4 });
    h.rejects(
        CommandBody::DefineCurrency { code: cur("XAU"), scale: 2 },
        ResultCode::CurrencyExists,
    );
    h.rejects(CommandBody::DefineCurrency { code: cur("XAG"), scale: 9 }, ResultCode::InvalidScale);
    h.ok(open("gold", "XAU", AccountKind::User));
    h.rejects(open("silver", "XAG", AccountKind::User), ResultCode::CurrencyUnknown);
}

#[test]
fn open_account_rules() {
    let mut h = Harness::usd();
    let outcome = h.ok(open("dave", "USD", AccountKind::User));
    assert_eq!(outcome.balances.as_slice().len(), 1);
    assert_eq!(outcome.tx_state, None);
    h.rejects(open("dave", "EUR", AccountKind::User), ResultCode::AccountExists);
    h.rejects(open("risk2", "USD", AccountKind::Risk), ResultCode::RiskAccountExists);
    h.ok(open("risk-eur", "EUR", AccountKind::Risk));
    let bad_limit = CommandBody::OpenAccount {
        account_no: no("erin"),
        user_id: 1,
        currency: cur("USD"),
        kind: AccountKind::User,
        limits: AccountLimits { tx_amount_max: Some(amt("0.001")), ..AccountLimits::default() },
    };
    h.rejects(bad_limit, ResultCode::AmountPrecision);
    assert!(h.engine.account(&no("erin")).is_none());
}

#[test]
fn deposit_is_available_at_once_and_settles_into_ledger() {
    let mut h = Harness::usd();
    let tx = h.fresh_tx();
    let outcome = h.run_as(tx, deposit("alice", "bank", "100.00"));
    assert_eq!(outcome.result, ResultCode::Ok);
    assert_eq!(outcome.tx_state, Some(TxState::PendingSettlement));
    let [bank, alice] = outcome.balances.as_slice() else { panic!("debit, then credit") };
    assert_eq!((alice.available_minor, alice.frozen_minor, alice.ledger_minor), (10_000, 0, 0));
    assert_eq!(h.bal("bank"), (-10_000, 0, 0));
    assert_eq!(bank.available_minor, -10_000);

    h.rejects(CommandBody::SettleConfirm { target: tx }, ResultCode::IllegalTransition);
    h.ok(CommandBody::SettleBegin { target: tx });
    assert_eq!(h.state(tx), Some(TxState::Settling));
    h.rejects(CommandBody::SettleBegin { target: tx }, ResultCode::IllegalTransition);
    h.ok(CommandBody::SettleConfirm { target: tx });
    assert_eq!(h.bal("alice"), (10_000, 0, 10_000));
    assert_eq!(h.bal("bank"), (-10_000, 0, -10_000));
    let view = h.engine.tx(tx).expect("remembered");
    use TxState::*;
    assert_eq!(
        view.history,
        vec![Created, RiskChecked, Frozen, PendingSettlement, Settling, Settled]
    );
    h.rejects(CommandBody::SettleFail { target: tx }, ResultCode::IllegalTransition);
    h.rejects(CommandBody::SettleConfirm { target: TxId(999) }, ResultCode::TxNotFound);
}

#[test]
fn deposit_rejections() {
    let mut h = Harness::usd();
    h.ok(open("yen", "JPY", AccountKind::User));
    h.rejects(deposit("alice", "bob", "1"), ResultCode::NotChannelAccount);
    h.rejects(deposit("alice", "nobody", "1"), ResultCode::AccountNotFound);
    h.rejects(deposit("nobody", "bank", "1"), ResultCode::AccountNotFound);
    h.rejects(deposit("bank", "bank", "1"), ResultCode::SameAccount);
    h.rejects(deposit("yen", "bank", "1"), ResultCode::CurrencyMismatch);
    h.rejects(deposit("alice", "bank", "0"), ResultCode::AmountNotPositive);
    h.rejects(deposit("alice", "bank", "-5"), ResultCode::AmountNotPositive);
    h.rejects(deposit("alice", "bank", "1.001"), ResultCode::AmountPrecision);
    h.rejects(
        deposit("alice", "bank", "1000000000000000000000000000000"),
        ResultCode::AmountTooLarge,
    );
    h.ok(CommandBody::SetAccountStatus { account_no: no("carol"), status: AccountStatus::Closed });
    h.rejects(deposit("carol", "bank", "1"), ResultCode::AccountClosed);
    // A debit-frozen account still receives money.
    h.ok(CommandBody::SetAccountStatus {
        account_no: no("bob"),
        status: AccountStatus::DebitFrozen,
    });
    h.ok(deposit("bob", "bank", "1"));
}

#[test]
fn balances_never_overflow() {
    let mut h = Harness::usd();
    let largest = "99999999999999999999999999.99"; // AMOUNT_MINOR_MAX - 1 minor units
    let mut overflowed = false;
    for _ in 0..200 {
        let outcome = h.run(deposit("alice", "bank", largest));
        if outcome.result == ResultCode::Overflow {
            overflowed = true;
            break;
        }
        assert_eq!(outcome.result, ResultCode::Ok);
    }
    assert!(overflowed, "balances must stop at BALANCE_MINOR_MAX");
    assert!(h.bal("alice").0 <= crate::limits::BALANCE_MINOR_MAX);
}

#[test]
fn transfer_moves_available_and_ledger_at_once() {
    let mut h = Harness::usd();
    h.ok(deposit("alice", "bank", "100"));
    let outcome = h.ok(transfer("alice", "bob", "30.25"));
    assert_eq!(outcome.tx_state, Some(TxState::Settled));
    let views = outcome.balances.as_slice();
    assert_eq!((views[0].available_minor, views[1].available_minor), (6_975, 3_025));
    assert_eq!(h.bal("alice"), (6_975, 0, -3_025));
    assert_eq!(h.bal("bob"), (3_025, 0, 3_025));
    h.rejects(transfer("alice", "bob", "69.76"), ResultCode::InsufficientFunds);
    h.rejects(transfer("alice", "alice", "1"), ResultCode::SameAccount);
    h.rejects(transfer("alice", "ghost", "1"), ResultCode::AccountNotFound);
    h.ok(open("euro", "EUR", AccountKind::User));
    h.rejects(transfer("alice", "euro", "1"), ResultCode::CurrencyMismatch);
    h.ok(transfer("alice", "bob", "69.75"));
    assert_eq!(h.bal("alice").0, 0);
}

#[test]
fn account_status_blocks_and_closes() {
    let mut h = Harness::usd();
    h.ok(deposit("alice", "bank", "10"));
    let set = |status| CommandBody::SetAccountStatus { account_no: no("alice"), status };
    h.ok(set(AccountStatus::DebitFrozen));
    h.rejects(transfer("alice", "bob", "1"), ResultCode::AccountDebitFrozen);
    h.rejects(freeze("alice", "1", None), ResultCode::AccountDebitFrozen);
    h.rejects(withdraw("alice", "bank", "1"), ResultCode::AccountDebitFrozen);
    h.ok(deposit("bob", "bank", "1"));
    h.ok(transfer("bob", "alice", "1"));
    h.rejects(set(AccountStatus::Closed), ResultCode::AccountNotEmpty);
    h.ok(set(AccountStatus::Active));
    h.ok(transfer("alice", "bob", "11"));
    // Ledger still shows the unsettled deposit: closing needs every balance at zero.
    h.rejects(set(AccountStatus::Closed), ResultCode::AccountNotEmpty);
    let carol_close =
        CommandBody::SetAccountStatus { account_no: no("carol"), status: AccountStatus::Closed };
    h.ok(carol_close);
    h.rejects(carol_close, ResultCode::AccountClosed);
    h.rejects(
        CommandBody::SetAccountStatus { account_no: no("carol"), status: AccountStatus::Active },
        ResultCode::InvalidStatusChange,
    );
    h.rejects(transfer("bob", "carol", "1"), ResultCode::AccountClosed);
    h.rejects(
        CommandBody::SetAccountLimits { account_no: no("carol"), limits: AccountLimits::default() },
        ResultCode::AccountClosed,
    );
    h.rejects(
        CommandBody::SetAccountStatus { account_no: no("ghost"), status: AccountStatus::Closed },
        ResultCode::AccountNotFound,
    );
}

#[test]
fn limits_per_transaction_and_per_day() {
    let mut h = Harness::usd();
    h.ok(deposit("alice", "bank", "1000"));
    let limits = AccountLimits {
        tx_amount_max: Some(amt("100")),
        daily_debit_max: Some(amt("150")),
        exposure_max: None,
    };
    h.ok(CommandBody::SetAccountLimits { account_no: no("alice"), limits });
    h.rejects(transfer("alice", "bob", "100.01"), ResultCode::TxLimitExceeded);
    h.ok(transfer("alice", "bob", "100"));
    h.rejects(transfer("alice", "bob", "50.01"), ResultCode::DailyLimitExceeded);
    // A hold counts against the day; releasing it the same day gives the room back.
    let hold = h.fresh_tx();
    assert!(h.run_as(hold, freeze("alice", "50", None)).is_ok());
    h.rejects(withdraw("alice", "bank", "1"), ResultCode::DailyLimitExceeded);
    h.ok(CommandBody::Unfreeze { hold });
    h.ok(withdraw("alice", "bank", "50"));
    h.rejects(transfer("alice", "bob", "0.01"), ResultCode::DailyLimitExceeded);
    // The day comes from command timestamps, never from a clock.
    h.now_ns += NS_PER_DAY;
    h.ok(transfer("alice", "bob", "100"));
    h.ok(CommandBody::SetAccountLimits {
        account_no: no("alice"),
        limits: AccountLimits::default(),
    });
    h.ok(transfer("alice", "bob", "500"));
}

#[test]
fn retries_return_the_first_outcome_and_conflicts_are_refused() {
    let mut h = Harness::usd();
    h.ok(deposit("alice", "bank", "10"));
    let tx = h.fresh_tx();
    let first = h.run_as(tx, transfer("alice", "bob", "4"));
    assert!(first.is_ok() && !first.duplicate);
    let again = h.run_as(tx, transfer("alice", "bob", "4"));
    assert!(again.duplicate);
    assert_eq!((again.result, again.tx_state), (first.result, first.tx_state));
    assert_eq!(h.bal("alice").0, 600, "a retry moved money again");
    let written_otherwise = h.run_as(tx, transfer("alice", "bob", "4.00"));
    assert!(written_otherwise.duplicate, "the same amount written with trailing zeros is a retry");
    let conflict = h.run_as(tx, transfer("alice", "bob", "5"));
    assert_eq!(conflict.result, ResultCode::TxIdConflict);
    assert!(!conflict.duplicate);

    // A rejection is remembered too: the same tx_id stays rejected after funding.
    let poor = h.fresh_tx();
    assert_eq!(
        h.run_as(poor, transfer("bob", "carol", "100")).result,
        ResultCode::InsufficientFunds
    );
    h.ok(deposit("bob", "bank", "1000"));
    let retried = h.run_as(poor, transfer("bob", "carol", "100"));
    assert_eq!((retried.result, retried.duplicate), (ResultCode::InsufficientFunds, true));
    assert_eq!(h.state(poor), Some(TxState::Failed));
    assert_eq!(
        h.engine.tx(poor).map(|tx| tx.history),
        Some(vec![TxState::Created, TxState::Failed])
    );
}

#[test]
fn holds_capture_partially_and_release_the_rest() {
    let mut h = Harness::usd();
    h.ok(deposit("alice", "bank", "100"));
    let hold = h.fresh_tx();
    let held = h.run_as(hold, freeze("alice", "60", None));
    assert_eq!(held.tx_state, Some(TxState::Frozen));
    assert_eq!(h.bal("alice"), (4_000, 6_000, 0));
    h.rejects(transfer("alice", "bob", "40.01"), ResultCode::InsufficientFunds);
    let capture = |amount: &str| CommandBody::Capture { hold, to: no("bob"), amount: amt(amount) };
    h.ok(capture("20"));
    h.ok(capture("15"));
    h.rejects(capture("25.01"), ResultCode::HoldInsufficient);
    h.rejects(
        CommandBody::Capture { hold, to: no("alice"), amount: amt("1") },
        ResultCode::SameAccount,
    );
    assert_eq!(h.bal("alice"), (4_000, 2_500, -3_500));
    assert_eq!(h.bal("bob"), (3_500, 0, 3_500));
    let view = h.engine.tx(hold).expect("hold remembered");
    assert_eq!((view.held_minor, view.captured_minor), (2_500, 3_500));
    h.ok(CommandBody::Unfreeze { hold });
    assert_eq!(h.bal("alice"), (6_500, 0, -3_500));
    assert_eq!(h.state(hold), Some(TxState::Settled), "a partly captured hold ends settled");
    h.rejects(CommandBody::Unfreeze { hold }, ResultCode::HoldReleased);
    h.rejects(capture("1"), ResultCode::HoldReleased);
    h.rejects(CommandBody::Unfreeze { hold: TxId(12345) }, ResultCode::HoldNotFound);

    // A fully captured hold is finished; an untouched released one failed.
    let full = h.fresh_tx();
    h.run_as(full, freeze("alice", "10", None));
    h.ok(CommandBody::Capture { hold: full, to: no("carol"), amount: amt("10") });
    assert_eq!(h.state(full), Some(TxState::Settled));
    h.rejects(CommandBody::Unfreeze { hold: full }, ResultCode::HoldReleased);
    let unused = h.fresh_tx();
    h.run_as(unused, freeze("alice", "10", None));
    h.ok(CommandBody::Unfreeze { hold: unused });
    assert_eq!(h.state(unused), Some(TxState::Failed));

    // The id of something that is not a hold is no hold.
    let payment = h.fresh_tx();
    h.run_as(payment, transfer("alice", "bob", "1"));
    h.rejects(CommandBody::Unfreeze { hold: payment }, ResultCode::HoldNotFound);
    h.rejects(freeze("alice", "1000", None), ResultCode::InsufficientFunds);
    h.rejects(freeze("ghost", "1", None), ResultCode::AccountNotFound);
}

#[test]
fn holds_expire_from_command_time_only() {
    let mut h = Harness::usd();
    h.ok(deposit("alice", "bank", "100"));
    let expires_ns = h.now_ns + 1_000_000;
    let hold = h.fresh_tx();
    h.run_as(hold, freeze("alice", "30", Some(expires_ns)));
    h.rejects(freeze("alice", "1", Some(h.now_ns)), ResultCode::ExpiryInPast);
    h.ok(CommandBody::Capture { hold, to: no("bob"), amount: amt("10") });
    assert_eq!(h.bal("alice").1, 2_000, "nothing expires while time stands before the expiry");
    h.now_ns = expires_ns; // the next command's timestamp passes the expiry
    h.ok(deposit("carol", "bank", "1"));
    assert_eq!(h.bal("alice"), (9_000, 0, -1_000));
    assert_eq!(h.state(hold), Some(TxState::Settled));
    h.rejects(
        CommandBody::Capture { hold, to: no("bob"), amount: amt("1") },
        ResultCode::HoldReleased,
    );

    let lapsed = h.fresh_tx();
    h.run_as(lapsed, freeze("alice", "5", Some(h.now_ns + 5_000)));
    h.now_ns += 10_000;
    h.ok(deposit("carol", "bank", "1")); // any command's time releases it
    assert_eq!(h.bal("alice"), (9_000, 0, -1_000));
    h.rejects(CommandBody::Unfreeze { hold: lapsed }, ResultCode::HoldReleased);
    assert_eq!(h.state(lapsed), Some(TxState::Failed));
}

#[test]
fn withdrawal_holds_then_settles_out_or_is_released() {
    let mut h = Harness::usd();
    let dep = h.fresh_tx();
    h.run_as(dep, deposit("alice", "bank", "100"));
    h.ok(CommandBody::SettleBegin { target: dep });
    h.ok(CommandBody::SettleConfirm { target: dep });
    let out = h.fresh_tx();
    let outcome = h.run_as(out, withdraw("alice", "bank", "40"));
    assert_eq!(outcome.tx_state, Some(TxState::PendingSettlement));
    assert_eq!(h.bal("alice"), (6_000, 4_000, 10_000));
    h.rejects(withdraw("alice", "carol", "1"), ResultCode::NotChannelAccount);
    h.rejects(withdraw("alice", "bank", "60.01"), ResultCode::InsufficientFunds);
    h.ok(CommandBody::SettleBegin { target: out });
    h.ok(CommandBody::SettleConfirm { target: out });
    assert_eq!(h.bal("alice"), (6_000, 0, 6_000));
    assert_eq!(h.bal("bank"), (-6_000, 0, -6_000));

    let refused = h.fresh_tx();
    h.run_as(refused, withdraw("alice", "bank", "10"));
    h.ok(CommandBody::SettleFail { target: refused });
    assert_eq!(h.bal("alice"), (6_000, 0, 6_000));
    assert_eq!(h.state(refused), Some(TxState::Failed));
    h.rejects(CommandBody::SettleBegin { target: refused }, ResultCode::IllegalTransition);
}

#[test]
fn failed_deposit_after_money_moved_on_books_a_receivable() {
    let mut h = Harness::usd();
    let dep = h.fresh_tx();
    h.run_as(dep, deposit("alice", "bank", "100"));
    h.ok(transfer("alice", "bob", "70"));
    h.ok(transfer("bob", "carol", "70"));
    h.ok(CommandBody::SettleBegin { target: dep });
    let failed = h.ok(CommandBody::SettleFail { target: dep });
    assert_eq!(failed.balances.as_slice().len(), 3);
    assert_eq!(h.bal("alice"), (0, 0, 0));
    assert_eq!(h.bal("bank"), (0, 0, 0));
    assert_eq!(h.bal("risk"), (-7_000, 0, -7_000), "what was spent downstream is receivable");
    assert_eq!(h.bal("carol"), (7_000, 0, 7_000));
    assert_eq!(h.state(dep), Some(TxState::Failed));

    // Without a risk account the failure cannot be booked and is refused, changing nothing.
    let mut h = Harness::new();
    h.ok(open("alice", "EUR", AccountKind::User));
    h.ok(open("bob", "EUR", AccountKind::User));
    h.ok(open("bank", "EUR", AccountKind::System));
    let dep = h.fresh_tx();
    h.run_as(dep, deposit("alice", "bank", "5"));
    h.ok(transfer("alice", "bob", "5"));
    h.rejects(CommandBody::SettleFail { target: dep }, ResultCode::RiskAccountMissing);
    assert_eq!(h.state(dep), Some(TxState::PendingSettlement));
    // A deposit still fully available is simply taken back.
    let small = h.fresh_tx();
    h.run_as(small, deposit("bob", "bank", "1"));
    h.ok(CommandBody::SettleFail { target: small });
    assert_eq!(h.bal("bob"), (500, 0, 500));
}

#[test]
fn refunds_compensate_up_to_the_original() {
    let mut h = Harness::usd();
    h.ok(deposit("alice", "bank", "100"));
    let pay = h.fresh_tx();
    h.run_as(pay, transfer("alice", "bob", "50"));
    let refund = |amount: &str| CommandBody::Refund { original: pay, amount: amt(amount) };
    let first = h.ok(refund("20"));
    assert_eq!(first.tx_state, Some(TxState::Settled));
    assert_eq!(h.state(pay), Some(TxState::Reversed));
    h.ok(refund("30"));
    h.rejects(refund("0.01"), ResultCode::RefundExceedsOriginal);
    assert_eq!(h.bal("alice"), (10_000, 0, 0));
    assert_eq!(h.bal("bob"), (0, 0, 0));
    assert_eq!(h.engine.tx(pay).map(|tx| tx.refunded_minor), Some(5_000));

    let pending = h.fresh_tx();
    h.run_as(pending, deposit("alice", "bank", "1"));
    h.rejects(
        CommandBody::Refund { original: pending, amount: amt("1") },
        ResultCode::IllegalTransition,
    );
    let hold = h.fresh_tx();
    h.run_as(hold, freeze("alice", "1", None));
    h.rejects(CommandBody::Refund { original: hold, amount: amt("1") }, ResultCode::NotRefundable);
    h.rejects(
        CommandBody::Refund { original: TxId(4242), amount: amt("1") },
        ResultCode::TxNotFound,
    );

    // The refunded side must still have the money.
    let pay2 = h.fresh_tx();
    h.run_as(pay2, transfer("alice", "carol", "10"));
    h.ok(transfer("carol", "bob", "10"));
    h.rejects(
        CommandBody::Refund { original: pay2, amount: amt("1") },
        ResultCode::InsufficientFunds,
    );
}

#[test]
fn old_transactions_leave_the_window_but_open_ones_are_kept() {
    let mut h = Harness::with_config(EngineConfig { tx_retained: 8, ..EngineConfig::default() });
    for (account, kind) in [("alice", AccountKind::User), ("bank", AccountKind::System)] {
        h.ok(open(account, "USD", kind));
    }
    let dep = h.fresh_tx();
    h.run_as(dep, deposit("alice", "bank", "100"));
    let hold = h.fresh_tx();
    h.run_as(hold, freeze("alice", "1", None));
    let old = h.fresh_tx();
    h.run_as(old, transfer("alice", "bank", "1"));
    for _ in 0..20 {
        h.ok(transfer("alice", "bank", "1"));
    }
    assert!(h.engine.tx(old).is_none(), "finished transactions beyond the window are forgotten");
    // 25 remembered so far: the newest 8 in the ring, plus the 2 open ones that left it.
    assert_eq!(h.engine.tx_counts(), (10, 2));
    h.ok(CommandBody::SettleBegin { target: dep });
    assert_eq!(h.state(dep), Some(TxState::Settling));
    h.ok(CommandBody::SettleConfirm { target: dep });
    h.ok(CommandBody::Capture { hold, to: no("bank"), amount: amt("1") });
    assert_eq!(h.bal("alice"), (7_800, 0, 7_800));
    // Finished, and older than the window: now they are forgotten too.
    assert_eq!((h.state(dep), h.state(hold)), (None, None));
    assert_eq!(h.engine.tx_counts(), (8, 0));
}

#[test]
fn same_commands_give_the_same_state_hash() {
    let script = |h: &mut Harness| {
        h.ok(deposit("alice", "bank", "100"));
        h.ok(transfer("alice", "bob", "10"));
        h.run(freeze("bob", "5", Some(h.now_ns + 10)));
        h.run(transfer("carol", "bob", "1"));
    };
    let (mut a, mut b) = (Harness::usd(), Harness::usd());
    script(&mut a);
    script(&mut b);
    assert_eq!(a.engine.state_hash(), b.engine.state_hash());
    b.ok(transfer("bob", "alice", "0.01"));
    assert_ne!(a.engine.state_hash(), b.engine.state_hash());
    let seeded = Engine::new(EngineConfig { hash_seed: 1, ..EngineConfig::default() });
    assert_ne!(seeded.state_hash(), Engine::new(EngineConfig::default()).state_hash());
}

#[test]
fn every_result_code_has_a_name_and_round_trips() {
    for (index, code) in ResultCode::ALL.iter().enumerate() {
        assert_eq!(*code as usize, index);
        assert_eq!(ResultCode::from_u8(index as u8), Some(*code));
        assert!(!code.name().is_empty() && !code.describe().is_empty());
    }
    for (index, kind) in TxKind::ALL.iter().enumerate() {
        assert_eq!(TxKind::from_u8(index as u8), Some(*kind));
    }
}

#[test]
fn state_survives_encode_and_decode() {
    let mut h = Harness::with_config(EngineConfig { tx_retained: 8, hash_seed: 99 });
    for (account, kind) in [
        ("alice", AccountKind::User),
        ("bob", AccountKind::User),
        ("bank", AccountKind::System),
        ("risk", AccountKind::Risk),
    ] {
        h.ok(open(account, "USD", kind));
    }
    let pending = h.fresh_tx();
    h.run_as(pending, deposit("alice", "bank", "100"));
    h.ok(CommandBody::DefineCurrency { code: cur("XAU"), scale: 4 });
    let pay = h.fresh_tx();
    h.run_as(pay, transfer("alice", "bob", "10"));
    h.ok(CommandBody::Refund { original: pay, amount: amt("4") });
    let hold = h.fresh_tx();
    h.run_as(hold, freeze("alice", "20", Some(h.now_ns + 50_000)));
    let limits = AccountLimits { tx_amount_max: Some(amt("70")), ..AccountLimits::default() };
    h.ok(CommandBody::SetAccountLimits { account_no: no("bob"), limits });
    h.rejects(transfer("bob", "alice", "1000"), ResultCode::TxLimitExceeded);
    h.ok(transfer("alice", "bob", "1"));
    h.ok(transfer("alice", "bob", "1"));
    assert!(h.engine.tx_counts().1 > 0, "the scenario must pin open transactions");

    let mut bytes = Vec::new();
    h.engine.encode_state(&mut bytes);
    let restored = Engine::decode_state(&bytes).expect("decodes");
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    restored.check_invariants().expect("restored state is sound");

    // Both answer the future identically.
    let mut twin = Harness::with_config(h.engine.config());
    twin.engine = restored;
    twin.now_ns = h.now_ns;
    twin.next_tx = h.next_tx;
    twin.posted = h.posted.clone();
    let mut outcomes = Vec::new();
    for h in [&mut h, &mut twin] {
        outcomes.push(vec![
            h.run(CommandBody::Refund { original: pay, amount: amt("6.01") }).result,
            h.run(CommandBody::SettleBegin { target: pending }).result,
            h.run(CommandBody::SettleConfirm { target: pending }).result,
            h.run(CommandBody::Capture { hold, to: no("bob"), amount: amt("5") }).result,
            {
                h.now_ns += 100_000; // the hold expires
                h.run(transfer("bob", "alice", "1")).result
            },
        ]);
    }
    use ResultCode::{Ok as Done, RefundExceedsOriginal};
    assert_eq!(outcomes[0], vec![RefundExceedsOriginal, Done, Done, Done, Done]);
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(twin.engine.state_hash(), h.engine.state_hash());

    // Damaged input is an error, never a panic: every truncation and a flipped byte.
    for len in 0..bytes.len() {
        assert!(Engine::decode_state(&bytes[..len]).is_err(), "prefix {len} accepted");
    }
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    assert!(Engine::decode_state(&bad).is_err());
    let mut longer = bytes;
    longer.push(0);
    assert!(Engine::decode_state(&longer).is_err());
}

#[test]
fn command_decoding_refuses_bad_bytes() {
    let command =
        Command { tx_id: TxId(5), timestamp_ns: 9, body: transfer("alice", "bob", "1.25") };
    let mut bytes = Vec::new();
    crate::encode_command(&command, &mut bytes);
    for len in 0..bytes.len() {
        assert!(crate::decode_command(&bytes[..len]).is_err());
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(crate::decode_command(&trailing).is_err());
    // Layout: tx_id (16) | timestamp_ns (8) | variant u32 | from: len u8 + bytes | ...
    assert_eq!(&bytes[24..28], &6u32.to_le_bytes(), "Transfer is variant 6");
    assert_eq!(bytes[28], 5);
    let mut bad_utf8 = bytes.clone();
    bad_utf8[29] = 0xff;
    assert!(crate::decode_command(&bad_utf8).is_err());
    let mut too_long = bytes.clone();
    too_long[28] = 33;
    assert!(crate::decode_command(&too_long).is_err());
    let mut bad_variant = bytes;
    bad_variant[24] = 200;
    assert!(crate::decode_command(&bad_variant).is_err());
}
