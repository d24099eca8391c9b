//! The engine: all ledger state, and `apply`, the one way to change it.

use std::collections::{BTreeMap, BTreeSet};

use crate::account::{Account, AccountIndex, LIMIT_NONE};
use crate::clearing::{Exposure, FeeRule, FEE_KINDS};
use crate::command::{Command, CommandBody, TxKind};
use crate::currency::{CurrencyDef, BUILTIN_CURRENCIES};
use crate::hash::{IdBuildHasher, IdMap};
use crate::limits::{BALANCE_MINOR_MAX, NS_PER_DAY, TX_RETAINED_DEFAULT};
use crate::outcome::{BalanceView, Balances, Bucket, Effects, Entry, Outcome, ResultCode};
use crate::txtable::{Loc, TxRecord, TxTable, NO_ACCOUNT};
use crate::types::{
    AccountId, AccountKind, AccountNo, AccountStatus, CurrencyCode, CurrencyId, TxId, TxState,
};

/// Settings fixed when a ledger is created; they are part of the state (and of snapshots).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EngineConfig {
    /// How many transactions are remembered (idempotency, queries, refunds). Open
    /// transactions are remembered until they finish, however old.
    pub tx_retained: u32,
    /// Seed of the index hashes, chosen once per ledger (it keeps clients from steering their
    /// `tx_id`s into one probe chain). Replay needs the same seed, so it is part of the state.
    pub hash_seed: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { tx_retained: TX_RETAINED_DEFAULT, hash_seed: 0x5eed_1ed6_e000_0001 }
    }
}

/// An active hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Hold {
    pub account: AccountId,
    pub remaining_minor: i128,
    pub captured_minor: i128,
    pub expires_ns: Option<u64>,
    /// The day its amount was counted against the daily limit (given back if released that day).
    pub day: u32,
}

/// What a successful handler reports, to be remembered with the `tx_id`.
pub(crate) struct Applied {
    pub state: Option<TxState>,
    pub amount_minor: i128,
    pub debit: u32,
    pub credit: u32,
    pub link: TxId,
}

impl Applied {
    pub fn admin() -> Applied {
        Applied {
            state: None,
            amount_minor: 0,
            debit: NO_ACCOUNT,
            credit: NO_ACCOUNT,
            link: TxId(0),
        }
    }

    pub fn movement(
        state: TxState,
        amount_minor: i128,
        debit: AccountId,
        credit: AccountId,
    ) -> Applied {
        Applied {
            state: Some(state),
            amount_minor,
            debit: debit.0,
            credit: credit.0,
            link: TxId(0),
        }
    }

    /// The same, acting on transaction `link`.
    pub fn linked(self, link: TxId) -> Applied {
        Applied { link, ..self }
    }
}

/// The deterministic ledger state machine. See the crate documentation.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) currencies: Vec<CurrencyDef>,
    /// Per currency: its risk account, if one was opened.
    pub(crate) risk_accounts: Vec<Option<AccountId>>,
    pub(crate) accounts: Vec<Account>,
    pub(crate) account_index: AccountIndex,
    pub(crate) txs: TxTable,
    pub(crate) holds: IdMap<Hold>,
    /// (expiry, hold) for holds that expire, earliest first.
    pub(crate) expiries: BTreeSet<(u64, TxId)>,
    /// Refunded total per refunded transaction.
    pub(crate) refunded: IdMap<i128>,
    /// The fee (fee account, amount) charged by each pending withdrawal that paid one, kept
    /// to give it back if the channel refuses the withdrawal.
    pub(crate) withdrawal_fees: IdMap<(AccountId, i128)>,
    /// Per account with unsettled deposits or an exposure limit: its clearing state
    /// (`clearing.rs`). `Account::exposure_tracked` says whether an account has an entry.
    pub(crate) exposures: BTreeMap<AccountId, Exposure>,
    /// Per currency, per `FeeKind`: the fee schedule (`FeeRule::NONE` when free).
    pub(crate) fees: Vec<[FeeRule; FEE_KINDS]>,
    /// Per T+1 account: its clearing account and pending `ledger` (`cycle.rs`).
    pub(crate) t1_accounts: BTreeMap<AccountId, crate::cycle::T1Pending>,
    /// Per channel: settlements confirmed since the last cutover.
    pub(crate) channel_day: BTreeMap<AccountId, crate::cycle::ChannelDay>,
    /// The last closed business date (0: none) and its per-channel totals.
    pub(crate) last_cutover: (u32, Vec<(AccountId, crate::cycle::ChannelDay)>),
    /// The latest command timestamp seen: time never goes backwards inside the engine.
    pub(crate) now_ns: u64,
    pub(crate) commands_applied: u64,
}

impl Engine {
    /// An empty ledger with the built-in currencies.
    pub fn new(config: EngineConfig) -> Engine {
        let currencies: Vec<CurrencyDef> = BUILTIN_CURRENCIES
            .iter()
            .map(|&(code, scale)| CurrencyDef {
                code: CurrencyCode::new(code).expect("built-in currency codes are valid"),
                scale,
            })
            .collect();
        Engine {
            config,
            risk_accounts: vec![None; currencies.len()],
            fees: vec![[FeeRule::NONE; FEE_KINDS]; currencies.len()],
            currencies,
            accounts: Vec::new(),
            account_index: AccountIndex::new(config.hash_seed),
            txs: TxTable::new(config.tx_retained, config.hash_seed),
            holds: IdMap::with_hasher(IdBuildHasher { seed: config.hash_seed }),
            expiries: BTreeSet::new(),
            refunded: IdMap::with_hasher(IdBuildHasher { seed: config.hash_seed }),
            withdrawal_fees: IdMap::with_hasher(IdBuildHasher { seed: config.hash_seed }),
            exposures: BTreeMap::new(),
            t1_accounts: BTreeMap::new(),
            channel_day: BTreeMap::new(),
            last_cutover: (0, Vec::new()),
            now_ns: 0,
            commands_applied: 0,
        }
    }

    /// The configuration this ledger was created with.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Applies one command. Postings and lifecycle changes are appended to `fx`.
    ///
    /// Never fails: a broken business rule is a `ResultCode` in the outcome, remembered with
    /// the `tx_id` like a success. A panic here means the engine itself is wrong.
    pub fn apply(&mut self, cmd: &Command, fx: &mut Effects) -> Outcome {
        self.commands_applied += 1;
        let fingerprint = cmd.body.fingerprint();
        // A retry or a conflict changes nothing at all, not even the engine's notion of time.
        if let Some(loc) = self.txs.find(cmd.tx_id) {
            return self.repeat_outcome(cmd.tx_id, loc, fingerprint);
        }
        self.now_ns = self.now_ns.max(cmd.timestamp_ns);
        if self.expiries.first().is_some_and(|&(expires_ns, _)| expires_ns <= self.now_ns) {
            self.expire_holds(fx);
        }
        let entries_before = fx.entries.len();
        let mut balances = Balances::new();
        let kind = cmd.body.kind();
        let applied = self.dispatch(cmd.tx_id, &cmd.body, &mut balances, fx);
        let mut record = TxRecord::new(cmd.tx_id, kind, ResultCode::Ok);
        record.fingerprint = fingerprint;
        let result = match applied {
            Ok(applied) => {
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
                balances = Balances::new();
                record.result = code;
                if kind.has_lifecycle() {
                    record.enter(TxState::Created);
                    record.enter(TxState::Failed);
                }
                code
            }
        };
        debug_assert!(postings_balance(&fx.entries[entries_before..]));
        let tx_state = record.state;
        self.remember(record);
        Outcome { tx_id: cmd.tx_id, result, duplicate: false, tx_state, balances }
    }

    #[inline(always)]
    fn dispatch(
        &mut self,
        tx_id: TxId,
        body: &CommandBody,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        // Matched by reference: copying the 33-byte keys out of the command costs more than
        // the rest of a transfer's bookkeeping (unaligned stores read back at once).
        match body {
            CommandBody::DefineCurrency { code, scale } => self.define_currency(*code, *scale),
            CommandBody::OpenAccount { account_no, user_id, currency, kind, limits } => {
                self.open_account(*account_no, *user_id, *currency, *kind, limits, out)
            }
            CommandBody::SetAccountStatus { account_no, status } => {
                self.set_account_status(account_no, *status, out)
            }
            CommandBody::SetAccountLimits { account_no, limits } => {
                self.set_account_limits(account_no, limits, out)
            }
            CommandBody::Deposit { account_no, channel_no, amount } => {
                self.deposit(tx_id, account_no, channel_no, *amount, out, fx)
            }
            CommandBody::Withdraw { account_no, channel_no, amount } => {
                self.withdraw(tx_id, account_no, channel_no, *amount, out, fx)
            }
            CommandBody::Transfer { from, to, amount } => {
                self.transfer(tx_id, from, to, *amount, out, fx)
            }
            CommandBody::Freeze { account_no, amount, expires_ns } => {
                self.freeze(tx_id, account_no, *amount, *expires_ns, out, fx)
            }
            CommandBody::Unfreeze { hold } => self.unfreeze(*hold, out, fx),
            CommandBody::Capture { hold, to, amount } => {
                self.capture(tx_id, *hold, to, *amount, out, fx)
            }
            CommandBody::SettleBegin { target } => self.settle_begin(*target, out, fx),
            CommandBody::SettleConfirm { target } => self.settle_confirm(*target, out, fx),
            CommandBody::SettleFail { target } => self.settle_fail(*target, out, fx),
            CommandBody::Refund { original, amount } => {
                self.refund(tx_id, *original, *amount, out, fx)
            }
            CommandBody::SetFee { kind, currency, fee_account_no, fixed, rate_bps } => {
                self.set_fee(*kind, *currency, fee_account_no, *fixed, *rate_bps, out)
            }
            CommandBody::SetSettlementCycle { account_no, t1_clearing_no } => {
                self.set_settlement_cycle(account_no, t1_clearing_no.as_ref(), out)
            }
            CommandBody::Cutover { business_date } => self.cutover(tx_id, *business_date, fx),
        }
    }

    /// The outcome for a `tx_id` seen before: its first result unchanged, or a conflict.
    fn repeat_outcome(&self, tx_id: TxId, loc: Loc, fingerprint: u32) -> Outcome {
        let record = self.txs.get(loc);
        if record.fingerprint != fingerprint {
            return Outcome::rejected(tx_id, ResultCode::TxIdConflict);
        }
        let mut balances = Balances::new();
        if record.result == ResultCode::Ok {
            for account in [record.debit, record.credit] {
                if account != NO_ACCOUNT {
                    balances.push(self.view(AccountId(account)));
                }
            }
        }
        Outcome { tx_id, result: record.result, duplicate: true, tx_state: record.state, balances }
    }

    fn remember(&mut self, record: TxRecord) {
        if let Some(evicted) = self.txs.insert(record) {
            if !evicted.pinned {
                // Forgotten: its side data goes with it (holds belong to open, pinned records).
                self.drop_side_data(evicted.tx_id, evicted.reversed);
            }
        }
    }

    /// Removes what the side maps hold for a forgotten record (only a refunded one has any, so
    /// the common eviction costs no map lookup).
    fn drop_side_data(&mut self, tx_id: TxId, reversed: bool) {
        if reversed {
            self.refunded.remove(&tx_id);
        }
    }

    // ----- shared helpers for the command handlers -----

    pub(crate) fn find_account(&self, account_no: &AccountNo) -> Result<AccountId, ResultCode> {
        self.account_index.find(account_no, &self.accounts).ok_or(ResultCode::AccountNotFound)
    }

    pub(crate) fn acct(&self, id: AccountId) -> &Account {
        &self.accounts[id.0 as usize]
    }

    pub(crate) fn acct_mut(&mut self, id: AccountId) -> &mut Account {
        &mut self.accounts[id.0 as usize]
    }

    pub(crate) fn scale(&self, currency: CurrencyId) -> u8 {
        self.currencies[currency.0 as usize].scale
    }

    #[inline(always)]
    pub(crate) fn view(&self, id: AccountId) -> BalanceView {
        let account = self.acct(id);
        BalanceView {
            account: id,
            available_minor: account.available_minor,
            frozen_minor: account.frozen_minor,
            ledger_minor: account.ledger_minor,
        }
    }

    pub(crate) fn day(&self) -> u32 {
        (self.now_ns / NS_PER_DAY) as u32
    }

    /// Status, per-transaction and daily checks for money leaving `id`.
    pub(crate) fn check_debit(&self, id: AccountId, amount_minor: i128) -> Result<(), ResultCode> {
        let account = self.acct(id);
        match account.status {
            AccountStatus::Active => {}
            AccountStatus::DebitFrozen => return Err(ResultCode::AccountDebitFrozen),
            AccountStatus::Closed => return Err(ResultCode::AccountClosed),
        }
        if amount_minor > account.tx_amount_max_minor {
            return Err(ResultCode::TxLimitExceeded);
        }
        if account.daily_debit_max_minor != LIMIT_NONE {
            let used =
                if account.debit_day == self.day() { account.debit_day_used_minor } else { 0 };
            if used + amount_minor > account.daily_debit_max_minor {
                return Err(ResultCode::DailyLimitExceeded);
            }
        }
        Ok(())
    }

    /// Counts an outflow against the daily limit (after every check passed).
    pub(crate) fn count_debit(&mut self, id: AccountId, amount_minor: i128) {
        let day = self.day();
        let account = self.acct_mut(id);
        if account.debit_day != day {
            account.debit_day = day;
            account.debit_day_used_minor = 0;
        }
        account.debit_day_used_minor = account.debit_day_used_minor.saturating_add(amount_minor);
    }

    pub(crate) fn check_credit(&self, id: AccountId) -> Result<(), ResultCode> {
        match self.acct(id).status {
            AccountStatus::Active | AccountStatus::DebitFrozen => Ok(()),
            AccountStatus::Closed => Err(ResultCode::AccountClosed),
        }
    }

    /// `available` after taking `amount_minor` out: a user account may not go below zero.
    pub(crate) fn available_after_debit(
        &self,
        id: AccountId,
        amount_minor: i128,
    ) -> Result<i128, ResultCode> {
        let account = self.acct(id);
        let after = account.available_minor - amount_minor;
        if after < account.floor_minor() {
            return Err(match account.kind {
                AccountKind::User => ResultCode::InsufficientFunds,
                AccountKind::System | AccountKind::Risk => ResultCode::Overflow,
            });
        }
        Ok(after)
    }

    /// Post an entry (a balance change has already been applied by the caller).
    #[inline]
    pub(crate) fn post(
        fx: &mut Effects,
        tx_id: TxId,
        account: AccountId,
        bucket: Bucket,
        delta_minor: i128,
    ) {
        fx.entries.push(Entry { tx_id, account, bucket, delta_minor });
    }

    /// Releases what is left of a hold to `available`. The hold ends `Settled` when something
    /// was captured from it, `Failed` otherwise.
    pub(crate) fn release_hold(&mut self, hold_id: TxId, fx: &mut Effects) -> AccountId {
        let hold = self.holds.remove(&hold_id).expect("release_hold of an active hold");
        if let Some(expires_ns) = hold.expires_ns {
            self.expiries.remove(&(expires_ns, hold_id));
        }
        let remaining = hold.remaining_minor;
        let day = self.day();
        let account = self.acct_mut(hold.account);
        account.frozen_minor -= remaining;
        account.available_minor += remaining;
        assert!(account.frozen_minor >= 0, "frozen below zero after a release");
        if hold.day == day && account.debit_day == day {
            account.debit_day_used_minor = (account.debit_day_used_minor - remaining).max(0);
        }
        if remaining > 0 {
            Self::post(fx, hold_id, hold.account, Bucket::Frozen, -remaining);
            Self::post(fx, hold_id, hold.account, Bucket::Available, remaining);
        }
        self.finish_hold(hold_id, hold.captured_minor > 0, fx);
        hold.account
    }

    /// Moves a hold's record to its end state.
    pub(crate) fn finish_hold(&mut self, hold_id: TxId, captured: bool, fx: &mut Effects) {
        let loc = self.txs.find(hold_id).expect("an active hold's record is remembered (pinned)");
        let record = self.txs.get_mut(loc);
        let end = if captured { TxState::Settled } else { TxState::Failed };
        if captured {
            record.enter(TxState::PendingSettlement);
            record.enter(TxState::Settling);
        }
        record.enter(end);
        fx.transitions.push((hold_id, end));
        self.forget_if_finished(loc);
    }

    /// A pinned record (older than the window) is forgotten once its transaction finished.
    pub(crate) fn forget_if_finished(&mut self, loc: Loc) {
        if let Some(record) = self.txs.forget_if_finished(loc) {
            self.drop_side_data(record.tx_id(), record.state == Some(TxState::Reversed));
        }
    }

    fn expire_holds(&mut self, fx: &mut Effects) {
        while let Some(&(expires_ns, hold_id)) = self.expiries.first() {
            if expires_ns > self.now_ns {
                break;
            }
            self.release_hold(hold_id, fx);
        }
    }

    // ----- queries -----

    /// Balances, status and limits of one account.
    pub fn account(&self, account_no: &AccountNo) -> Option<AccountView> {
        let id = self.account_index.find(account_no, &self.accounts)?;
        Some(self.account_by_id(id))
    }

    /// An account by its internal id (ids come from outcomes and entries).
    pub fn account_by_id(&self, id: AccountId) -> AccountView {
        let account = self.acct(id);
        let currency = self.currencies[account.currency.0 as usize];
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
        self.accounts.len() as u32
    }

    /// What the engine remembers of a transaction.
    pub fn tx(&self, tx_id: TxId) -> Option<TxView> {
        let record = *self.txs.get(self.txs.find(tx_id)?);
        let history = TxState::ALL.into_iter().filter(|s| record.visited & (1 << *s as u8) != 0);
        let account_no =
            |id: u32| (id != NO_ACCOUNT).then(|| self.accounts[id as usize].account_no);
        let hold = self.holds.get(&tx_id);
        Some(TxView {
            tx_id,
            kind: record.kind,
            result: record.result,
            state: record.state,
            history: history.collect(),
            amount_minor: record.amount_minor(),
            debit: account_no(record.debit),
            credit: account_no(record.credit),
            refunded_minor: self.refunded.get(&tx_id).copied().unwrap_or(0),
            held_minor: hold.map_or(0, |hold| hold.remaining_minor),
            captured_minor: hold.map_or(0, |hold| hold.captured_minor),
            linked: record.link(),
        })
    }

    /// A currency's definition.
    pub fn currency(&self, code: CurrencyCode) -> Option<CurrencyDef> {
        self.currencies.iter().copied().find(|c| c.code == code)
    }

    /// Commands applied so far (duplicates and rejections included).
    pub fn commands_applied(&self) -> u64 {
        self.commands_applied
    }

    /// Number of remembered transactions, and how many of them are pinned (open beyond the
    /// retention window).
    pub fn tx_counts(&self) -> (usize, usize) {
        (self.txs.len(), self.txs.pinned_len())
    }

    /// Approximate bytes held by the account and transaction tables.
    pub fn memory_bytes(&self) -> usize {
        self.accounts.capacity() * std::mem::size_of::<Account>()
            + self.account_index.memory_bytes()
            + self.txs.memory_bytes()
    }

    /// Per currency: the sums over all accounts (each must be zero: double entry).
    pub fn currency_totals(&self) -> Vec<CurrencyTotals> {
        let mut totals: Vec<CurrencyTotals> = self
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
        for account in &self.accounts {
            let total = &mut totals[account.currency.0 as usize];
            total.available_minor += account.available_minor;
            total.frozen_minor += account.frozen_minor;
            total.ledger_minor += account.ledger_minor;
        }
        totals
    }

    /// Checks every invariant over the whole state (O(accounts + open transactions)): money
    /// conserved per currency, no customer balance negative, every account's `frozen` equal to
    /// its active holds plus its pending withdrawals, every account's unsettled deposits equal
    /// to its pending deposit records.
    pub fn check_invariants(&self) -> Result<(), String> {
        for total in self.currency_totals() {
            if total.available_minor + total.frozen_minor != 0 || total.ledger_minor != 0 {
                return Err(format!("{} not conserved: {total:?}", total.currency));
            }
        }
        let mut frozen_expected = vec![0i128; self.accounts.len()];
        for hold in self.holds.values() {
            assert!(hold.remaining_minor > 0);
            frozen_expected[hold.account.0 as usize] += hold.remaining_minor;
        }
        let mut fees_of_pending = 0;
        for record in self.txs.iter_canonical() {
            let pending =
                matches!(record.state, Some(TxState::PendingSettlement | TxState::Settling));
            if record.kind == TxKind::Withdraw && pending {
                frozen_expected[record.debit as usize] += record.amount_minor();
                fees_of_pending += self.withdrawal_fees.contains_key(&record.tx_id()) as usize;
            }
        }
        if fees_of_pending != self.withdrawal_fees.len() {
            return Err(format!(
                "{} withdrawal fees kept but {fees_of_pending} belong to pending withdrawals",
                self.withdrawal_fees.len()
            ));
        }
        for (index, account) in self.accounts.iter().enumerate() {
            if account.kind == AccountKind::User
                && (account.available_minor < 0 || account.frozen_minor < 0)
            {
                return Err(format!("user account {} negative: {account:?}", account.account_no));
            }
            if account.frozen_minor != frozen_expected[index] {
                return Err(format!(
                    "account {} frozen {} but holds and withdrawals total {}",
                    account.account_no, account.frozen_minor, frozen_expected[index]
                ));
            }
        }
        self.check_exposures()?;
        self.check_cycles()
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

/// Checks `value` stays within ±`BALANCE_MINOR_MAX`.
#[inline]
pub(crate) fn in_range(value: i128) -> Result<i128, ResultCode> {
    if (-BALANCE_MINOR_MAX..=BALANCE_MINOR_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(ResultCode::Overflow)
    }
}
