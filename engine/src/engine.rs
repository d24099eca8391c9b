//! The engine: all ledger state, and `apply`, the one way to change it.

use crate::account::LIMIT_NONE;
use crate::clearing::{ExposureView, FeeView};
use crate::command::{Command, CommandBody, TxKind};
use crate::currency::CurrencyDef;
use crate::cycle::{ChannelDayView, CutoverReport, T1View};
use crate::ledger::{Applied, Ledger};
use crate::limits::EXPIRIES_PER_COMMAND_MAX;
use crate::outcome::{Balances, Bucket, Effects, Entry, Outcome, ResultCode};
use crate::plan::Plan;
use crate::txtable::{Loc, TxRecord, NO_ACCOUNT};
use crate::types::{
    AccountId, AccountKind, AccountNo, AccountStatus, CurrencyCode, FeeKind, TxId, TxState,
};

pub use crate::ledger::EngineConfig;

/// The deterministic ledger state machine. See the crate documentation.
pub struct Engine {
    pub(crate) ledger: Ledger,
    /// The one plan every movement fills and commits in place (scratch, not state).
    pub(crate) plan: Plan,
    /// A statistic, not state: retries count too, and it is not encoded.
    pub(crate) commands_applied: u64,
}

impl Engine {
    /// An empty ledger with the built-in currencies.
    pub fn new(config: EngineConfig) -> Engine {
        Engine { ledger: Ledger::new(config), plan: Plan::new(), commands_applied: 0 }
    }

    /// The configuration this ledger was created with.
    pub fn config(&self) -> EngineConfig {
        self.ledger.config
    }

    /// Applies one command. Postings and lifecycle changes are appended to `fx`.
    ///
    /// Never fails: a broken business rule is a `ResultCode` in the outcome, remembered with
    /// the `tx_id` like a success. A panic here means the engine itself is wrong.
    pub fn apply(&mut self, cmd: &Command, fx: &mut Effects) -> Outcome {
        self.commands_applied += 1;
        let digest = cmd.body.digest(self.ledger.config.hash_seed);
        // A retry or a conflict changes nothing at all, not even the engine's notion of time.
        let ledger = &mut self.ledger;
        if let Some(loc) = ledger.txs.find(cmd.tx_id) {
            return self.repeat_outcome(cmd, loc, digest);
        }
        let (now_before_ns, entries_start) = (ledger.now_ns, fx.entries.len());
        let transitions_start = fx.transitions.len();
        ledger.now_ns = ledger.now_ns.max(cmd.timestamp_ns);
        assert!(ledger.now_ns >= now_before_ns, "time never goes backwards");
        ledger.expire_holds(&mut self.plan, EXPIRIES_PER_COMMAND_MAX, fx);
        let entries_before = fx.entries.len();
        let transitions_before = fx.transitions.len();
        let mut balances = Balances::new();
        let kind = cmd.body.kind();
        let applied = Self::dispatch(
            &mut self.ledger,
            &mut self.plan,
            cmd.tx_id,
            &cmd.body,
            &mut balances,
            fx,
        );
        let mut record = TxRecord::new(cmd.tx_id, kind, ResultCode::Ok);
        record.digest = digest;
        let result = match applied {
            Ok(applied) => {
                assert_eq!(applied.state.is_some(), kind.has_lifecycle(), "lifecycle of {kind:?}");
                if let Some(state) = applied.state {
                    record.walk_to(state);
                }
                record.set_amount_minor(applied.amount_minor);
                record.debit = applied.debit;
                record.credit = applied.credit;
                record.set_link(applied.link);
                ResultCode::Ok
            }
            Err(code) => {
                assert_eq!(fx.entries.len(), entries_before, "a rejected command posted entries");
                assert_eq!(fx.transitions.len(), transitions_before, "nor moved a lifecycle");
                assert!(code != ResultCode::Ok && code != ResultCode::TxIdConflict);
                balances = Balances::new();
                record.result = code;
                if kind.has_lifecycle() {
                    record.enter(TxState::Created);
                    record.enter(TxState::Failed);
                }
                code
            }
        };
        // A command's postings (expiries included) balance: asserted in release by each
        // `Plan::commit` over its own postings (the cutover posts pairs that cancel).
        let postings = &fx.entries[entries_start..];
        debug_assert!(postings_balance(postings), "a command's postings balance");
        debug_assert!(postings.iter().all(|entry| self.ledger.accounts.contains(entry.account.0)));
        assert!(fx.transitions.len() >= transitions_start);
        let tx_state = record.state;
        assert!(tx_state.is_none_or(|state| record.visited & (1 << state as u8) != 0));
        self.ledger.txs.insert(record);
        Outcome { tx_id: cmd.tx_id, result, duplicate: false, tx_state, balances }
    }

    #[inline(always)]
    fn dispatch(
        ledger: &mut Ledger,
        plan: &mut Plan,
        tx_id: TxId,
        body: &CommandBody,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        // Matched by reference: copying the 33-byte keys out of the command costs more than
        // the rest of a transfer's bookkeeping (unaligned stores read back at once).
        match body {
            CommandBody::DefineCurrency { code, scale } => ledger.define_currency(*code, *scale),
            CommandBody::OpenAccount { account_no, user_id, currency, kind, limits } => {
                ledger.open_account(*account_no, *user_id, *currency, *kind, limits, out)
            }
            CommandBody::SetAccountStatus { account_no, status } => {
                ledger.set_account_status(account_no, *status, out)
            }
            CommandBody::SetAccountLimits { account_no, limits } => {
                ledger.set_account_limits(account_no, limits, out)
            }
            CommandBody::Deposit { account_no, channel_no, amount } => {
                ledger.deposit(tx_id, account_no, channel_no, *amount, plan, out, fx)
            }
            CommandBody::Withdraw { account_no, channel_no, amount } => {
                ledger.withdraw(tx_id, account_no, channel_no, *amount, plan, out, fx)
            }
            CommandBody::Transfer { from, to, amount } => {
                ledger.transfer(tx_id, from, to, *amount, plan, out, fx)
            }
            CommandBody::Freeze { account_no, amount, expires_ns } => {
                ledger.freeze(tx_id, account_no, *amount, *expires_ns, plan, out, fx)
            }
            CommandBody::Unfreeze { hold } => ledger.unfreeze(*hold, plan, out, fx),
            CommandBody::Capture { hold, to, amount } => {
                ledger.capture(tx_id, *hold, to, *amount, plan, out, fx)
            }
            CommandBody::SettleBegin { target } => ledger.settle_begin(*target, out, fx),
            CommandBody::SettleConfirm { target } => ledger.settle_confirm(*target, plan, out, fx),
            CommandBody::SettleFail { target } => ledger.settle_fail(*target, plan, out, fx),
            CommandBody::Refund { original, amount } => {
                ledger.refund(tx_id, *original, *amount, plan, out, fx)
            }
            CommandBody::SetFee { kind, currency, fee_account_no, fixed, rate_bps } => {
                ledger.set_fee(*kind, *currency, fee_account_no, *fixed, *rate_bps, out)
            }
            CommandBody::SetSettlementCycle { account_no, t1_clearing_no } => {
                ledger.set_settlement_cycle(account_no, t1_clearing_no.as_ref(), out)
            }
            CommandBody::Cutover { business_date } => ledger.cutover(tx_id, *business_date, fx),
        }
    }

    /// The outcome for a `tx_id` seen before: its first result unchanged, or a conflict.
    fn repeat_outcome(&self, cmd: &Command, loc: Loc, digest: u64) -> Outcome {
        let (tx_id, record) = (cmd.tx_id, self.ledger.txs.get(loc));
        if !self.ledger.is_retry(record, &cmd.body, digest) {
            return Outcome::rejected(tx_id, ResultCode::TxIdConflict);
        }
        // The current balances of the record's debit and credit accounts (once each: a
        // hold's record names its account on both sides).
        let mut balances = Balances::new();
        if record.result == ResultCode::Ok {
            let credit = (record.credit != record.debit).then_some(record.credit);
            for account in [Some(record.debit), credit].into_iter().flatten() {
                if account != NO_ACCOUNT {
                    balances.push(self.ledger.view(AccountId(account)));
                }
            }
        }
        Outcome { tx_id, result: record.result, duplicate: true, tx_state: record.state, balances }
    }

    // ----- queries -----

    /// Balances, status and limits of one account.
    pub fn account(&self, account_no: &AccountNo) -> Option<AccountView> {
        let id = self.ledger.accounts.find(account_no)?;
        Some(self.account_by_id(id))
    }

    /// An account by its internal id (ids come from outcomes and entries).
    pub fn account_by_id(&self, id: AccountId) -> AccountView {
        let account = self.ledger.acct(id);
        let currency = self.ledger.currencies[account.currency.0 as usize];
        let limit = |minor: i128| (minor != LIMIT_NONE).then_some(minor);
        AccountView {
            id,
            account_no: account.account_no,
            user_id: account.user_id,
            currency: currency.code,
            scale: currency.scale,
            kind: account.kind,
            status: account.status,
            available_minor: account.available_minor,
            frozen_minor: account.frozen_minor,
            ledger_minor: account.ledger_minor,
            tx_amount_max_minor: limit(account.tx_amount_max_minor),
            daily_debit_max_minor: limit(account.daily_debit_max_minor),
        }
    }

    /// Number of accounts.
    pub fn account_count(&self) -> u32 {
        self.ledger.accounts.len() as u32
    }

    /// What the engine remembers of a transaction.
    pub fn tx(&self, tx_id: TxId) -> Option<TxView> {
        let ledger = &self.ledger;
        let record = *ledger.txs.get(ledger.txs.find(tx_id)?);
        let history = TxState::ALL.into_iter().filter(|s| record.visited & (1 << *s as u8) != 0);
        let account_no =
            |id: u32| (id != NO_ACCOUNT).then(|| ledger.acct(AccountId(id)).account_no);
        let hold = ledger.holds.get(tx_id);
        Some(TxView {
            tx_id,
            kind: record.kind,
            result: record.result,
            state: record.state,
            history: history.collect(),
            amount_minor: record.amount_minor(),
            debit: account_no(record.debit),
            credit: account_no(record.credit),
            refunded_minor: ledger.txs.refunded(tx_id),
            held_minor: hold.map_or(0, |hold| hold.remaining_minor),
            captured_minor: hold.map_or(0, |hold| hold.captured_minor),
            linked: record.link(),
        })
    }

    /// A currency's definition.
    pub fn currency(&self, code: CurrencyCode) -> Option<CurrencyDef> {
        self.ledger.currency(code)
    }

    /// Commands applied so far (duplicates and rejections included).
    pub fn commands_applied(&self) -> u64 {
        self.commands_applied
    }

    /// Number of remembered transactions, and how many of them are pinned (open beyond the
    /// retention window).
    pub fn tx_counts(&self) -> (usize, usize) {
        (self.ledger.txs.len(), self.ledger.txs.pinned_len())
    }

    /// Approximate bytes held by the account and transaction tables.
    pub fn memory_bytes(&self) -> usize {
        self.ledger.accounts.memory_bytes() + self.ledger.txs.memory_bytes()
    }

    /// Unsettled deposits, exposure and exposure limit of one account.
    pub fn exposure(&self, account_no: &AccountNo) -> Option<ExposureView> {
        let id = self.ledger.accounts.find(account_no)?;
        Some(self.ledger.clearing.exposure_view(&self.ledger.accounts, id))
    }

    /// The fee schedule of `kind` in `currency`, if it charges anything.
    pub fn fee(&self, kind: FeeKind, currency: CurrencyCode) -> Option<FeeView> {
        let index = self.ledger.currency_index(currency).ok()?;
        let rule = self.ledger.clearing.fee_rule(index, kind);
        (rule.account != NO_ACCOUNT).then(|| FeeView {
            fee_account_no: self.ledger.acct(AccountId(rule.account)).account_no,
            fixed_minor: rule.fixed_minor,
            rate_bps: rule.rate_bps,
        })
    }

    /// Clearing account and pending `ledger` of a T+1 account (`None` for a T+0 account).
    pub fn t1(&self, account_no: &AccountNo) -> Option<T1View> {
        let id = self.ledger.accounts.find(account_no)?;
        let t1 = self.ledger.cycles.t1(id)?;
        Some(T1View {
            clearing_no: self.ledger.acct(t1.clearing).account_no,
            pending_minor: t1.pending_minor,
        })
    }

    /// The last closed business day and its per-channel settled totals.
    pub fn cutover_report(&self) -> Option<CutoverReport> {
        let (business_date, channels) = self.ledger.cycles.last_cutover();
        if business_date == 0 {
            return None;
        }
        let channels = channels
            .iter()
            .map(|(id, day)| {
                let view = self.account_by_id(*id);
                ChannelDayView {
                    channel_no: view.account_no,
                    currency: view.currency,
                    scale: view.scale,
                    deposits_minor: day.deposits_minor,
                    deposits_count: day.deposits_count,
                    withdrawals_minor: day.withdrawals_minor,
                    withdrawals_count: day.withdrawals_count,
                }
            })
            .collect();
        Some(CutoverReport { business_date, channels })
    }

    /// Per currency: the sums over all accounts (each must be zero: double entry).
    pub fn currency_totals(&self) -> Vec<CurrencyTotals> {
        let mut totals: Vec<CurrencyTotals> = self
            .ledger
            .currencies
            .iter()
            .map(|c| CurrencyTotals {
                currency: c.code,
                scale: c.scale,
                available_minor: 0,
                frozen_minor: 0,
                ledger_minor: 0,
            })
            .collect();
        for account in self.ledger.accounts.as_slice() {
            let total = &mut totals[account.currency.0 as usize];
            total.available_minor += account.available_minor;
            total.frozen_minor += account.frozen_minor;
            total.ledger_minor += account.ledger_minor;
        }
        totals
    }

    /// Checks every invariant over the whole state (O(accounts + remembered transactions)):
    /// money conserved per currency, no customer balance negative, every account's `frozen`
    /// equal to its active holds plus its pending withdrawals, every account's unsettled
    /// deposits equal to its pending deposit records, and each part's own invariants. Never
    /// panics: `decode_state` runs all of it but the sums on every decoded state.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.ledger.check()
    }
}

/// True when postings sum to zero over `Available + Frozen` and separately over `Ledger`.
/// (One command's postings are always in one currency.)
pub fn postings_balance(entries: &[Entry]) -> bool {
    let (mut assets, mut ledger) = (0i128, 0i128);
    for entry in entries {
        match entry.bucket {
            Bucket::Available | Bucket::Frozen => assets += entry.delta_minor,
            Bucket::Ledger => ledger += entry.delta_minor,
        }
    }
    assets == 0 && ledger == 0
}

/// Per-currency sums over every account.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CurrencyTotals {
    /// The currency.
    pub currency: CurrencyCode,
    /// Its decimals.
    pub scale: u8,
    /// Sum of `available`.
    pub available_minor: i128,
    /// Sum of `frozen`.
    pub frozen_minor: i128,
    /// Sum of `ledger`.
    pub ledger_minor: i128,
}

/// An account as queries see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AccountView {
    /// Internal id.
    pub id: AccountId,
    /// External key.
    pub account_no: AccountNo,
    /// Owner.
    pub user_id: u64,
    /// Currency.
    pub currency: CurrencyCode,
    /// Its decimals.
    pub scale: u8,
    /// User, system or risk.
    pub kind: AccountKind,
    /// Status.
    pub status: AccountStatus,
    /// Usable now.
    pub available_minor: i128,
    /// Held.
    pub frozen_minor: i128,
    /// Settled.
    pub ledger_minor: i128,
    /// Per-transaction limit, if any.
    pub tx_amount_max_minor: Option<i128>,
    /// Daily outflow limit, if any.
    pub daily_debit_max_minor: Option<i128>,
}

/// A transaction as queries see it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxView {
    /// Its id.
    pub tx_id: TxId,
    /// What kind of command created it.
    pub kind: TxKind,
    /// The result of that command.
    pub result: ResultCode,
    /// Current lifecycle state (`None` for commands without a lifecycle).
    pub state: Option<TxState>,
    /// Every state it went through, in order.
    pub history: Vec<TxState>,
    /// Amount moved or held, in minor units.
    pub amount_minor: i128,
    /// Debited account of the movement.
    pub debit: Option<AccountNo>,
    /// Credited account of the movement.
    pub credit: Option<AccountNo>,
    /// Refunded so far.
    pub refunded_minor: i128,
    /// For an active hold: what it still holds.
    pub held_minor: i128,
    /// For an active hold: what was captured from it.
    pub captured_minor: i128,
    /// The hold of a capture, the original of a refund, the target of a settlement command.
    pub linked: Option<TxId>,
}
