//! The clearing part (`engine/CLEARING.md`): exposure — money a customer could use before its
//! channel settled it — and fees, with the fees of pending withdrawals.
//!
//! A deposit is credited to `available` at once (T+0) but the channel may still refuse it.
//! Per user account the engine keeps `unsettled_minor`, the sum of its deposits that are still
//! pending settlement. If they all failed now, the engine could take back at most `available`;
//! the rest, `max(0, unsettled - available)`, would become a receivable on the risk account.
//! That shortfall is the account's *exposure*, and an optional per-account `exposure_max`
//! bounds it: an outflow that would push it past the limit is `ExposureLimitExceeded`.
//! Spending therefore uses settled money first, and money paid on to others is theirs (it is
//! never tainted or clawed back from them: the platform carries the receivable).

//!
//! It owns the exposure entries (and keeps each account's `exposure_tracked` byte equal to
//! whether it has one), the fee schedules and the fees pending withdrawals paid.

use std::collections::BTreeMap;

use crate::account::{in_range, Accounts, LIMIT_NONE};
use crate::command::TxKind;
use crate::hash::{IdBuildHasher, IdMap, Sink, SinkExt};
use crate::outcome::ResultCode;
use crate::txtable::{TxTable, NO_ACCOUNT};
use crate::types::{AccountId, AccountKind, AccountNo, FeeKind, TxId, TxState};
use crate::wire::{Reader, StateDecodeError};

/// One account's clearing state, kept only while it says something (unsettled money or a
/// limit): most accounts have no entry, and their `exposure_tracked` byte is false.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Exposure {
    /// Deposits credited to `available` and not yet settled or failed, in minor units.
    pub unsettled_minor: i128,
    /// The exposure limit in minor units, `LIMIT_NONE` when there is none.
    pub limit_minor: i128,
}

impl Exposure {
    pub const NONE: Exposure = Exposure { unsettled_minor: 0, limit_minor: LIMIT_NONE };
}

/// An account's exposure, as queries see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExposureView {
    /// Deposits made available but not yet settled by their channel.
    pub unsettled_minor: i128,
    /// What of it the account has already spent: `max(0, unsettled - available)`, the
    /// receivable the platform would book if every pending deposit failed now.
    pub exposure_minor: i128,
    /// The exposure limit, if any.
    pub exposure_max_minor: Option<i128>,
}

/// A fee schedule: what one kind of movement in one currency pays, and to which account.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FeeRule {
    /// The credited system account, `NO_ACCOUNT` when the movement pays no fee.
    pub account: u32,
    /// Fixed part, in minor units.
    pub fixed_minor: i128,
    /// Proportional part, in basis points of the amount.
    pub rate_bps: u32,
}

impl FeeRule {
    pub const NONE: FeeRule = FeeRule { account: NO_ACCOUNT, fixed_minor: 0, rate_bps: 0 };
}

/// Number of `FeeKind`s (the width of a currency's row of fee rules).
pub(crate) const FEE_KINDS: usize = FeeKind::ALL.len();

/// Largest fee rate: 100 %.
pub const FEE_RATE_BPS_MAX: u32 = 10_000;

/// A fee schedule as queries see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FeeView {
    /// The credited account.
    pub fee_account_no: AccountNo,
    /// Fixed part, in minor units.
    pub fixed_minor: i128,
    /// Proportional part, in basis points.
    pub rate_bps: u32,
}

/// Exposure entries, fee schedules and the fees of pending withdrawals.
pub(crate) struct Clearing {
    /// Per account with unsettled deposits or an exposure limit.
    exposures: BTreeMap<AccountId, Exposure>,
    /// Per currency, per `FeeKind`: the fee schedule (`FeeRule::NONE` when free).
    fees: Vec<[FeeRule; FEE_KINDS]>,
    /// The fee (fee account, amount) charged by each pending withdrawal that paid one, kept
    /// to give it back if the channel refuses the withdrawal.
    withdrawal_fees: IdMap<(AccountId, i128)>,
}

impl Clearing {
    pub fn new(currency_count: usize, seed: u64) -> Clearing {
        Clearing {
            exposures: BTreeMap::new(),
            fees: vec![[FeeRule::NONE; FEE_KINDS]; currency_count],
            withdrawal_fees: IdMap::with_hasher(IdBuildHasher { seed }),
        }
    }

    /// A new currency: it charges no fees.
    pub fn add_currency(&mut self) {
        assert!(self.fees.len() < crate::limits::CURRENCIES_MAX as usize, "CURRENCIES_MAX");
        self.fees.push([FeeRule::NONE; FEE_KINDS]);
    }

    /// The clearing state of `id` (`Exposure::NONE` when it has none).
    #[inline]
    pub fn exposure_entry(&self, accounts: &Accounts, id: AccountId) -> Exposure {
        if !accounts.get(id).exposure_tracked {
            return Exposure::NONE;
        }
        *self.exposures.get(&id).expect("a tracked account has an exposure entry")
    }

    /// Stores `exposure` for `id`, dropping the entry when it says nothing.
    pub fn store_exposure(&mut self, accounts: &mut Accounts, id: AccountId, exposure: Exposure) {
        assert!(exposure.unsettled_minor >= 0, "unsettled deposits below zero");
        let tracked = exposure != Exposure::NONE;
        if tracked {
            self.exposures.insert(id, exposure);
        } else {
            self.exposures.remove(&id);
        }
        accounts.get_mut(id).exposure_tracked = tracked;
    }

    /// Checks that leaving `available_after` on `id` keeps its exposure within its limit.
    /// Only user accounts have exposure: system accounts mirror the outside world.
    #[inline]
    pub fn check_exposure(
        &self,
        accounts: &Accounts,
        id: AccountId,
        available_after: i128,
    ) -> Result<(), ResultCode> {
        let account = accounts.get(id);
        if !account.exposure_tracked || account.kind != AccountKind::User {
            return Ok(());
        }
        let exposure = self.exposure_entry(accounts, id);
        if exposure.limit_minor != LIMIT_NONE
            && exposure.unsettled_minor - available_after > exposure.limit_minor
        {
            return Err(ResultCode::ExposureLimitExceeded);
        }
        Ok(())
    }

    /// `unsettled` of `id` after a deposit of `amount_minor` (`None`: not a user account, so
    /// nothing is tracked). Checked before any mutation.
    pub fn unsettled_after_deposit(
        &self,
        accounts: &Accounts,
        id: AccountId,
        amount_minor: i128,
    ) -> Result<Option<i128>, ResultCode> {
        if accounts.get(id).kind != AccountKind::User {
            return Ok(None);
        }
        Ok(Some(in_range(self.exposure_entry(accounts, id).unsettled_minor + amount_minor)?))
    }

    /// Records the unsettled total `unsettled_after_deposit` planned.
    pub fn set_unsettled(&mut self, accounts: &mut Accounts, id: AccountId, unsettled_minor: i128) {
        assert!(accounts.get(id).kind == AccountKind::User, "only user accounts are tracked");
        assert!(
            unsettled_minor > self.exposure_entry(accounts, id).unsettled_minor,
            "a deposit adds"
        );
        let exposure = Exposure { unsettled_minor, ..self.exposure_entry(accounts, id) };
        self.store_exposure(accounts, id, exposure);
    }

    /// A deposit of `amount_minor` to `id` settled or failed: it is no longer unsettled.
    pub fn deposit_finished(&mut self, accounts: &mut Accounts, id: AccountId, amount_minor: i128) {
        if accounts.get(id).kind != AccountKind::User {
            return;
        }
        let mut exposure = self.exposure_entry(accounts, id);
        assert!(amount_minor > 0 && amount_minor <= exposure.unsettled_minor, "a pending deposit");
        exposure.unsettled_minor -= amount_minor;
        self.store_exposure(accounts, id, exposure);
    }

    /// Sets (or, with `LIMIT_NONE`, removes) the exposure limit of `id`.
    pub fn set_exposure_limit(
        &mut self,
        accounts: &mut Accounts,
        id: AccountId,
        limit_minor: i128,
    ) {
        let exposure = Exposure { limit_minor, ..self.exposure_entry(accounts, id) };
        self.store_exposure(accounts, id, exposure);
    }

    /// Unsettled deposits, exposure and exposure limit of one account.
    pub fn exposure_view(&self, accounts: &Accounts, id: AccountId) -> ExposureView {
        let entry = self.exposure_entry(accounts, id);
        let available_minor = accounts.get(id).available_minor;
        ExposureView {
            unsettled_minor: entry.unsettled_minor,
            exposure_minor: (entry.unsettled_minor - available_minor).max(0),
            exposure_max_minor: (entry.limit_minor != LIMIT_NONE).then_some(entry.limit_minor),
        }
    }

    /// Number of exposure entries.
    #[cfg(test)]
    pub fn exposures_len(&self) -> usize {
        self.exposures.len()
    }

    /// The fee a movement of `kind` of `amount_minor` in `currency` pays, and its account:
    /// `fixed + floor(amount × rate_bps / 10 000)` (exact integer arithmetic: the fraction of a
    /// minor unit is never charged). `None` when there is no fee, or when `payer` or `payee`
    /// is the fee account itself (it would pay itself).
    #[inline]
    pub fn fee_for(
        &self,
        accounts: &Accounts,
        kind: FeeKind,
        payer: AccountId,
        payee: AccountId,
        amount_minor: i128,
    ) -> Option<(AccountId, i128)> {
        let rule = self.fees[accounts.get(payer).currency.0 as usize][kind as usize];
        if rule.account == NO_ACCOUNT || rule.account == payer.0 || rule.account == payee.0 {
            return None;
        }
        // amount ≤ AMOUNT_MINOR_MAX (10^28) and rate ≤ 10^4: the product fits an i128.
        assert!(amount_minor > 0 && rule.rate_bps <= FEE_RATE_BPS_MAX && rule.fixed_minor >= 0);
        let fee_minor = rule.fixed_minor + amount_minor * rule.rate_bps as i128 / 10_000;
        (fee_minor > 0).then_some((AccountId(rule.account), fee_minor))
    }

    /// The fee schedule of `kind` in currency number `currency`.
    pub fn fee_rule(&self, currency: usize, kind: FeeKind) -> FeeRule {
        self.fees[currency][kind as usize]
    }

    /// Replaces the fee schedule of `kind` in currency number `currency`.
    pub fn set_fee_rule(&mut self, currency: usize, kind: FeeKind, rule: FeeRule) {
        assert!(rule == FeeRule::NONE || rule.fixed_minor > 0 || rule.rate_bps > 0, "charges");
        assert!(rule.rate_bps <= FEE_RATE_BPS_MAX && rule.fixed_minor >= 0, "a valid rule");
        self.fees[currency][kind as usize] = rule;
    }

    /// The fee rules that charge something, as (currency, kind, rule), in that order.
    pub fn fee_rules(&self) -> Vec<(u32, u8, FeeRule)> {
        let mut rules = Vec::new();
        for (currency, row) in self.fees.iter().enumerate() {
            for (kind, rule) in row.iter().enumerate() {
                if *rule != FeeRule::NONE {
                    rules.push((currency as u32, kind as u8, *rule));
                }
            }
        }
        rules
    }

    /// The fee a pending withdrawal paid, if any.
    #[inline]
    pub fn withdrawal_fee(&self, withdrawal: TxId) -> Option<(AccountId, i128)> {
        self.withdrawal_fees.get(&withdrawal).copied()
    }

    /// Remembers the fee a new pending withdrawal paid.
    pub fn keep_withdrawal_fee(&mut self, withdrawal: TxId, fee: (AccountId, i128)) {
        assert!(fee.1 > 0, "a kept fee is positive");
        let previous = self.withdrawal_fees.insert(withdrawal, fee);
        assert!(previous.is_none(), "one fee per withdrawal");
    }

    /// A withdrawal settled or failed: its fee is no longer pending.
    pub fn forget_withdrawal_fee(&mut self, withdrawal: TxId) {
        let forgotten = self.withdrawal_fees.remove(&withdrawal);
        assert!(forgotten.is_none_or(|(_, fee_minor)| fee_minor > 0), "kept fees are positive");
    }

    /// Fees of pending withdrawals in `TxId` order: hash-map order must never reach an output.
    pub fn withdrawal_fees_sorted(&self) -> Vec<(TxId, (AccountId, i128))> {
        let mut fees: Vec<_> = self.withdrawal_fees.iter().map(|(id, fee)| (*id, *fee)).collect();
        fees.sort_unstable_by_key(|(tx_id, _)| *tx_id);
        fees
    }

    /// Snapshot section "exposures" (version 2): `u64` count, then per entry in account order
    /// `u32 account · i128 unsettled_minor · i128 limit_minor`.
    pub fn encode_exposures(&self, sink: &mut impl Sink) {
        sink.u64(self.exposures.len() as u64);
        for (account, exposure) in &self.exposures {
            sink.u32(account.0);
            sink.i128(exposure.unsettled_minor);
            sink.i128(exposure.limit_minor);
        }
    }

    /// Reads the exposures section. A version 1 state has none: its unsettled amounts are
    /// recomputed from the pending deposit records, and it has no limits.
    pub fn decode_exposures(
        &mut self,
        r: &mut Reader<'_>,
        version: u32,
        accounts: &mut Accounts,
        txs: &TxTable,
    ) -> Result<(), StateDecodeError> {
        if version == 1 {
            for (account, unsettled_minor) in unsettled_from_records(accounts, txs) {
                let exposure = Exposure { unsettled_minor, limit_minor: LIMIT_NONE };
                self.store_exposure(accounts, account, exposure);
            }
            return Ok(());
        }
        let exposure_count = r.count(36)?;
        for _ in 0..exposure_count {
            let account = r.u32()?;
            let unsettled_minor = r.i128()?;
            let limit_minor = r.i128()?;
            let exposure = Exposure { unsettled_minor, limit_minor };
            if !accounts.contains(account)
                || unsettled_minor < 0
                || exposure == Exposure::NONE
                || accounts.get(AccountId(account)).exposure_tracked
            {
                return r.fail("invalid exposure entry");
            }
            self.store_exposure(accounts, AccountId(account), exposure);
        }
        Ok(())
    }

    /// Snapshot section "fees" (version 2): `u64` count, then per rule that charges
    /// something, ordered by currency then kind, `u32 currency · u8 kind · u32 account · i128
    /// fixed_minor · u32 rate_bps`.
    pub fn encode_fees(&self, sink: &mut impl Sink) {
        let fee_rules = self.fee_rules();
        sink.u64(fee_rules.len() as u64);
        for (currency, kind, rule) in fee_rules {
            sink.u32(currency);
            sink.u8(kind);
            sink.u32(rule.account);
            sink.i128(rule.fixed_minor);
            sink.u32(rule.rate_bps);
        }
    }

    /// Reads the fees section (absent before version 2).
    pub fn decode_fees(
        &mut self,
        r: &mut Reader<'_>,
        version: u32,
        accounts: &Accounts,
    ) -> Result<(), StateDecodeError> {
        if version == 1 {
            return Ok(());
        }
        let fee_count = r.count(29)?;
        for _ in 0..fee_count {
            let currency = r.u32()? as usize;
            let kind = r.u8()? as usize;
            let account = r.u32()?;
            let fixed_minor = r.i128()?;
            let rate_bps = r.u32()?;
            let valid = currency < self.fees.len()
                && kind < FEE_KINDS
                && accounts.contains(account)
                && accounts.get(AccountId(account)).kind == AccountKind::System
                && accounts.get(AccountId(account)).currency.0 as usize == currency
                && (0..=crate::limits::AMOUNT_MINOR_MAX).contains(&fixed_minor)
                && rate_bps <= FEE_RATE_BPS_MAX
                && (fixed_minor > 0 || rate_bps > 0)
                && self.fees[currency][kind] == FeeRule::NONE;
            if !valid {
                return r.fail("invalid fee rule");
            }
            self.fees[currency][kind] = FeeRule { account, fixed_minor, rate_bps };
        }
        Ok(())
    }

    /// Snapshot section "withdrawal fees" (version 3): `u64` count, then per pending
    /// withdrawal that paid a fee, in `TxId` order, `u128 tx_id · u32 account · i128 fee_minor`.
    pub fn encode_withdrawal_fees(&self, sink: &mut impl Sink) {
        let fees = self.withdrawal_fees_sorted();
        sink.u64(fees.len() as u64);
        for (tx_id, (account, fee_minor)) in fees {
            sink.u128(tx_id.0);
            sink.u32(account.0);
            sink.i128(fee_minor);
        }
    }

    /// Reads the withdrawal fees section (absent before version 3).
    pub fn decode_withdrawal_fees(
        &mut self,
        r: &mut Reader<'_>,
        version: u32,
        accounts: &Accounts,
    ) -> Result<(), StateDecodeError> {
        if version < 3 {
            return Ok(());
        }
        let fee_count = r.count(36)?;
        for _ in 0..fee_count {
            let tx_id = TxId(r.u128()?);
            let account = r.u32()?;
            let fee_minor = r.i128()?;
            let valid = accounts.contains(account)
                && (1..=crate::limits::AMOUNT_MINOR_MAX * 2).contains(&fee_minor)
                && self.withdrawal_fees.insert(tx_id, (AccountId(account), fee_minor)).is_none();
            if !valid {
                return r.fail("invalid withdrawal fee");
            }
        }
        Ok(())
    }

    /// The part's invariants against the accounts and the transaction records: every
    /// exposure entry equals the account's pending deposits and agrees with its tracked byte,
    /// every fee rule credits a system account of its currency, and every kept withdrawal fee
    /// belongs to a pending withdrawal.
    pub fn check(&self, accounts: &Accounts, txs: &TxTable) -> Result<(), String> {
        let expected = unsettled_from_records(accounts, txs);
        for (index, account) in accounts.as_slice().iter().enumerate() {
            let id = AccountId(index as u32);
            let entry = self.exposures.get(&id);
            if account.exposure_tracked != entry.is_some() {
                return Err(format!("account {}: tracked byte disagrees", account.account_no));
            }
            let unsettled = entry.map_or(0, |entry| entry.unsettled_minor);
            let pending = expected.get(&id).copied().unwrap_or(0);
            if unsettled != pending {
                return Err(format!(
                    "account {}: unsettled {unsettled} but pending deposits total {pending}",
                    account.account_no
                ));
            }
            if entry == Some(&Exposure::NONE) {
                return Err(format!("account {}: empty exposure entry", account.account_no));
            }
        }
        if let Some((id, _)) = self.exposures.range(AccountId(accounts.len() as u32)..).next() {
            return Err(format!("exposure of unknown account {}", id.0));
        }
        for (currency, kind, rule) in self.fee_rules() {
            let valid = accounts.contains(rule.account) && {
                let account = accounts.get(AccountId(rule.account));
                account.kind == AccountKind::System && account.currency.0 as u32 == currency
            };
            let charges = (0..=crate::limits::AMOUNT_MINOR_MAX).contains(&rule.fixed_minor)
                && rule.rate_bps <= FEE_RATE_BPS_MAX
                && (rule.fixed_minor > 0 || rule.rate_bps > 0);
            if !valid || !charges {
                return Err(format!("fee rule {kind} of currency {currency} invalid: {rule:?}"));
            }
        }
        for (withdrawal, (account, fee_minor)) in &self.withdrawal_fees {
            let pending = txs.find(*withdrawal).map(|loc| txs.get(loc)).is_some_and(|record| {
                record.kind == TxKind::Withdraw
                    && matches!(record.state, Some(TxState::PendingSettlement | TxState::Settling))
            });
            let fee_ok = (1..=crate::limits::AMOUNT_MINOR_MAX * 2).contains(fee_minor);
            if !pending || !fee_ok || !accounts.contains(account.0) {
                return Err(format!("withdrawal fee of {:#x} invalid", withdrawal.0));
            }
        }
        Ok(())
    }
}

/// Per account, the unsettled deposits recomputed from the open deposit records (the source
/// of truth the exposure entries must agree with).
pub(crate) fn unsettled_from_records(
    accounts: &Accounts,
    txs: &TxTable,
) -> BTreeMap<AccountId, i128> {
    let mut unsettled = BTreeMap::new();
    for record in txs.iter_canonical() {
        let pending = matches!(record.state, Some(TxState::PendingSettlement | TxState::Settling));
        if record.kind == TxKind::Deposit && pending && accounts.contains(record.credit) {
            let user = AccountId(record.credit);
            if accounts.get(user).kind == AccountKind::User {
                *unsettled.entry(user).or_insert(0) += record.amount_minor();
            }
        }
    }
    unsettled
}
