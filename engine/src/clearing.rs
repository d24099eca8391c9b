//! Exposure: money a customer could use before its channel settled it (`engine/CLEARING.md`).
//!
//! A deposit is credited to `available` at once (T+0) but the channel may still refuse it.
//! Per user account the engine keeps `unsettled_minor`, the sum of its deposits that are still
//! pending settlement. If they all failed now, the engine could take back at most `available`;
//! the rest, `max(0, unsettled - available)`, would become a receivable on the risk account.
//! That shortfall is the account's *exposure*, and an optional per-account `exposure_max`
//! bounds it: an outflow that would push it past the limit is `ExposureLimitExceeded`.
//! Spending therefore uses settled money first, and money paid on to others is theirs (it is
//! never tainted or clawed back from them: the platform carries the receivable).

use crate::account::LIMIT_NONE;
use crate::engine::{in_range, Engine};
use crate::outcome::ResultCode;
use crate::types::{AccountId, AccountKind, AccountNo};

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

impl Engine {
    /// The clearing state of `id` (`Exposure::NONE` when it has none).
    #[inline]
    pub(crate) fn exposure_entry(&self, id: AccountId) -> Exposure {
        if !self.acct(id).exposure_tracked {
            return Exposure::NONE;
        }
        *self.exposures.get(&id).expect("a tracked account has an exposure entry")
    }

    /// Stores `exposure` for `id`, dropping the entry when it says nothing.
    pub(crate) fn store_exposure(&mut self, id: AccountId, exposure: Exposure) {
        assert!(exposure.unsettled_minor >= 0, "unsettled deposits below zero");
        let tracked = exposure != Exposure::NONE;
        if tracked {
            self.exposures.insert(id, exposure);
        } else {
            self.exposures.remove(&id);
        }
        self.acct_mut(id).exposure_tracked = tracked;
    }

    /// Checks that leaving `available_after` on `id` keeps its exposure within its limit.
    /// Only user accounts have exposure: system accounts mirror the outside world.
    #[inline]
    pub(crate) fn check_exposure(
        &self,
        id: AccountId,
        available_after: i128,
    ) -> Result<(), ResultCode> {
        let account = self.acct(id);
        if !account.exposure_tracked || account.kind != AccountKind::User {
            return Ok(());
        }
        let exposure = self.exposure_entry(id);
        if exposure.limit_minor != LIMIT_NONE
            && exposure.unsettled_minor - available_after > exposure.limit_minor
        {
            return Err(ResultCode::ExposureLimitExceeded);
        }
        Ok(())
    }

    /// `unsettled` of `id` after a deposit of `amount_minor` (`None`: not a user account, so
    /// nothing is tracked). Checked before any mutation.
    pub(crate) fn unsettled_after_deposit(
        &self,
        id: AccountId,
        amount_minor: i128,
    ) -> Result<Option<i128>, ResultCode> {
        if self.acct(id).kind != AccountKind::User {
            return Ok(None);
        }
        Ok(Some(in_range(self.exposure_entry(id).unsettled_minor + amount_minor)?))
    }

    /// A deposit of `amount_minor` to `id` settled or failed: it is no longer unsettled.
    pub(crate) fn deposit_finished(&mut self, id: AccountId, amount_minor: i128) {
        if self.acct(id).kind != AccountKind::User {
            return;
        }
        let mut exposure = self.exposure_entry(id);
        exposure.unsettled_minor -= amount_minor;
        self.store_exposure(id, exposure);
    }

    /// Sets (or, with `LIMIT_NONE`, removes) the exposure limit of `id`.
    pub(crate) fn set_exposure_limit(&mut self, id: AccountId, limit_minor: i128) {
        let exposure = Exposure { limit_minor, ..self.exposure_entry(id) };
        self.store_exposure(id, exposure);
    }

    /// Unsettled deposits, exposure and exposure limit of one account.
    pub fn exposure(&self, account_no: &AccountNo) -> Option<ExposureView> {
        let id = self.account_index.find(account_no, &self.accounts)?;
        let entry = self.exposure_entry(id);
        let available_minor = self.acct(id).available_minor;
        Some(ExposureView {
            unsettled_minor: entry.unsettled_minor,
            exposure_minor: (entry.unsettled_minor - available_minor).max(0),
            exposure_max_minor: (entry.limit_minor != LIMIT_NONE).then_some(entry.limit_minor),
        })
    }

    /// Per account, the unsettled deposits recomputed from the open deposit records (the
    /// source of truth `exposures` must agree with).
    pub(crate) fn unsettled_from_records(&self) -> std::collections::BTreeMap<AccountId, i128> {
        use crate::command::TxKind;
        use crate::types::TxState;
        let mut unsettled = std::collections::BTreeMap::new();
        for record in self.txs.iter_canonical() {
            let pending =
                matches!(record.state, Some(TxState::PendingSettlement | TxState::Settling));
            let user = AccountId(record.credit);
            if record.kind == TxKind::Deposit
                && pending
                && self.acct(user).kind == AccountKind::User
            {
                *unsettled.entry(user).or_insert(0) += record.amount_minor();
            }
        }
        unsettled
    }

    /// Checks `exposures` against the deposit records and the accounts' tracked bytes.
    pub(crate) fn check_exposures(&self) -> Result<(), String> {
        let expected = self.unsettled_from_records();
        for (index, account) in self.accounts.iter().enumerate() {
            let id = AccountId(index as u32);
            let entry = self.exposures.get(&id);
            if account.exposure_tracked != entry.is_some() {
                return Err(format!("account {}: tracked byte disagrees", account.account_no));
            }
            let unsettled = entry.map_or(0, |entry| entry.unsettled_minor);
            if unsettled != expected.get(&id).copied().unwrap_or(0) {
                return Err(format!(
                    "account {}: unsettled {unsettled} but pending deposits total {}",
                    account.account_no,
                    expected.get(&id).copied().unwrap_or(0)
                ));
            }
            if entry == Some(&Exposure::NONE) {
                return Err(format!("account {}: empty exposure entry", account.account_no));
            }
        }
        Ok(())
    }
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
    pub const NONE: FeeRule =
        FeeRule { account: crate::txtable::NO_ACCOUNT, fixed_minor: 0, rate_bps: 0 };
}

/// Number of `FeeKind`s (the width of a currency's row of fee rules).
pub(crate) const FEE_KINDS: usize = crate::types::FeeKind::ALL.len();

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

impl Engine {
    /// The fee a movement of `kind` of `amount_minor` in `currency` pays, and its account:
    /// `fixed + floor(amount × rate_bps / 10 000)` (exact integer arithmetic: the fraction of a
    /// minor unit is never charged). `None` when there is no fee, or when `payer` or `payee`
    /// is the fee account itself (it would pay itself).
    #[inline]
    pub(crate) fn fee_for(
        &self,
        kind: crate::types::FeeKind,
        payer: AccountId,
        payee: AccountId,
        amount_minor: i128,
    ) -> Option<(AccountId, i128)> {
        let rule = self.fees[self.acct(payer).currency.0 as usize][kind as usize];
        if rule.account == crate::txtable::NO_ACCOUNT
            || rule.account == payer.0
            || rule.account == payee.0
        {
            return None;
        }
        // amount ≤ AMOUNT_MINOR_MAX (10^28) and rate ≤ 10^4: the product fits an i128.
        let fee_minor = rule.fixed_minor + amount_minor * rule.rate_bps as i128 / 10_000;
        (fee_minor > 0).then_some((AccountId(rule.account), fee_minor))
    }

    pub(crate) fn set_fee(
        &mut self,
        kind: crate::types::FeeKind,
        currency: crate::types::CurrencyCode,
        fee_account_no: &AccountNo,
        fixed: crate::types::Amount,
        rate_bps: u32,
        out: &mut crate::outcome::Balances,
    ) -> Result<crate::engine::Applied, ResultCode> {
        let Some(currency_index) = self.currencies.iter().position(|c| c.code == currency) else {
            return Err(ResultCode::CurrencyUnknown);
        };
        let account = self.find_account(fee_account_no)?;
        if self.acct(account).currency.0 as usize != currency_index {
            return Err(ResultCode::CurrencyMismatch);
        }
        if self.acct(account).kind != AccountKind::System {
            return Err(ResultCode::NotChannelAccount);
        }
        self.check_credit(account)?;
        if rate_bps > FEE_RATE_BPS_MAX {
            return Err(ResultCode::FeeInvalid);
        }
        let fixed_minor = match fixed.mantissa {
            0 => 0,
            _ => crate::currency::to_minor(fixed, self.scale(self.acct(account).currency))?,
        };
        // Nothing below can fail.
        let rule = if fixed_minor == 0 && rate_bps == 0 {
            FeeRule::NONE
        } else {
            FeeRule { account: account.0, fixed_minor, rate_bps }
        };
        self.fees[currency_index][kind as usize] = rule;
        out.push(self.view(account));
        Ok(crate::engine::Applied { debit: account.0, ..crate::engine::Applied::admin() })
    }

    /// The fee schedule of `kind` in `currency`, if it charges anything.
    pub fn fee(
        &self,
        kind: crate::types::FeeKind,
        currency: crate::types::CurrencyCode,
    ) -> Option<FeeView> {
        let index = self.currencies.iter().position(|c| c.code == currency)?;
        let rule = self.fees[index][kind as usize];
        (rule.account != crate::txtable::NO_ACCOUNT).then(|| FeeView {
            fee_account_no: self.accounts[rule.account as usize].account_no,
            fixed_minor: rule.fixed_minor,
            rate_bps: rule.rate_bps,
        })
    }
}
