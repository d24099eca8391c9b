//! Reference-data commands: currencies, opening accounts, status and limits, fee schedules
//! and settlement cycles.

use crate::account::{Account, LIMIT_NONE};
use crate::clearing::{FeeRule, FEE_RATE_BPS_MAX};
use crate::currency::{to_minor, CurrencyDef};
use crate::cycle::T1Pending;
use crate::ledger::{Applied, Ledger};
use crate::limits::{ACCOUNTS_MAX, CURRENCIES_MAX, CURRENCY_SCALE_MAX};
use crate::outcome::{Balances, ResultCode};
use crate::types::{
    AccountKind, AccountLimits, AccountNo, AccountStatus, Amount, CurrencyCode, CurrencyId, FeeKind,
};

impl Ledger {
    pub(crate) fn define_currency(
        &mut self,
        code: CurrencyCode,
        scale: u8,
    ) -> Result<Applied, ResultCode> {
        if scale > CURRENCY_SCALE_MAX {
            return Err(ResultCode::InvalidScale);
        }
        if let Some(existing) = self.currency(code) {
            // Defining it again with the same scale is harmless; another scale is not.
            return if existing.scale == scale {
                Ok(Applied::admin())
            } else {
                Err(ResultCode::CurrencyExists)
            };
        }
        if self.currencies.len() >= CURRENCIES_MAX as usize {
            return Err(ResultCode::CapacityExceeded);
        }
        assert_eq!(self.currencies.len(), self.risk_accounts.len(), "one risk slot per currency");
        self.currencies.push(CurrencyDef { code, scale });
        self.risk_accounts.push(None);
        self.clearing.add_currency();
        Ok(Applied::admin())
    }

    /// Converts optional limit amounts to minor units (`LIMIT_NONE` when absent): per
    /// transaction, daily, exposure.
    fn limits_minor(limits: &AccountLimits, scale: u8) -> Result<(i128, i128, i128), ResultCode> {
        let convert = |limit: Option<crate::types::Amount>| match limit {
            Some(amount) => to_minor(amount, scale),
            None => Ok(LIMIT_NONE),
        };
        // An exposure limit of zero is meaningful: unsettled money may not be spent at all.
        let exposure_max_minor = match limits.exposure_max {
            Some(amount) if amount.mantissa == 0 => 0,
            other => convert(other)?,
        };
        Ok((convert(limits.tx_amount_max)?, convert(limits.daily_debit_max)?, exposure_max_minor))
    }

    pub(crate) fn open_account(
        &mut self,
        account_no: AccountNo,
        user_id: u64,
        currency: CurrencyCode,
        kind: AccountKind,
        limits: &AccountLimits,
        out: &mut Balances,
    ) -> Result<Applied, ResultCode> {
        let currency_index = self.currency_index(currency)?;
        let currency_id = CurrencyId(currency_index as u16);
        if self.accounts.find(&account_no).is_some() {
            return Err(ResultCode::AccountExists);
        }
        let (tx_amount_max_minor, daily_debit_max_minor, exposure_max_minor) =
            Self::limits_minor(limits, self.scale(currency_id))?;
        if kind == AccountKind::Risk && self.risk_accounts[currency_index].is_some() {
            return Err(ResultCode::RiskAccountExists);
        }
        if self.accounts.len() >= ACCOUNTS_MAX as usize {
            return Err(ResultCode::CapacityExceeded);
        }
        assert!(self.accounts.len() < ACCOUNTS_MAX as usize, "checked above");
        let id = self.accounts.push(Account {
            available_minor: 0,
            frozen_minor: 0,
            ledger_minor: 0,
            debit_day_used_minor: 0,
            tx_amount_max_minor,
            daily_debit_max_minor,
            user_id,
            account_no,
            debit_day: 0,
            currency: currency_id,
            status: AccountStatus::Active,
            kind,
            exposure_tracked: false,
            t1: false,
        });
        self.clearing.set_exposure_limit(&mut self.accounts, id, exposure_max_minor);
        if kind == AccountKind::Risk {
            assert!(self.risk_accounts[currency_index].is_none(), "one risk account per currency");
            self.risk_accounts[currency_index] = Some(id);
        }
        out.push(self.view(id));
        Ok(Applied::on_account(id))
    }

    pub(crate) fn set_account_status(
        &mut self,
        account_no: &AccountNo,
        status: AccountStatus,
        out: &mut Balances,
    ) -> Result<Applied, ResultCode> {
        let id = self.find_account(account_no)?;
        let account = self.acct(id);
        match (account.status, status) {
            (AccountStatus::Closed, AccountStatus::Closed) => {
                return Err(ResultCode::AccountClosed)
            }
            (AccountStatus::Closed, AccountStatus::Active | AccountStatus::DebitFrozen) => {
                return Err(ResultCode::InvalidStatusChange)
            }
            (AccountStatus::Active | AccountStatus::DebitFrozen, AccountStatus::Closed) => {
                if account.available_minor != 0
                    || account.frozen_minor != 0
                    || account.ledger_minor != 0
                {
                    return Err(ResultCode::AccountNotEmpty);
                }
            }
            (
                AccountStatus::Active | AccountStatus::DebitFrozen,
                AccountStatus::Active | AccountStatus::DebitFrozen,
            ) => {}
        }
        let account = self.acct(id);
        let empty = account.available_minor == 0 && account.frozen_minor == 0;
        assert!(status != AccountStatus::Closed || empty, "only an empty account closes");
        self.acct_mut(id).status = status;
        out.push(self.view(id));
        Ok(Applied::on_account(id))
    }

    pub(crate) fn set_account_limits(
        &mut self,
        account_no: &AccountNo,
        limits: &AccountLimits,
        out: &mut Balances,
    ) -> Result<Applied, ResultCode> {
        let id = self.find_account(account_no)?;
        let account = self.acct(id);
        if account.status == AccountStatus::Closed {
            return Err(ResultCode::AccountClosed);
        }
        let (tx_amount_max_minor, daily_debit_max_minor, exposure_max_minor) =
            Self::limits_minor(limits, self.scale(account.currency))?;
        let account = self.acct_mut(id);
        account.tx_amount_max_minor = tx_amount_max_minor;
        account.daily_debit_max_minor = daily_debit_max_minor;
        self.clearing.set_exposure_limit(&mut self.accounts, id, exposure_max_minor);
        out.push(self.view(id));
        Ok(Applied::on_account(id))
    }

    pub(crate) fn set_fee(
        &mut self,
        kind: FeeKind,
        currency: CurrencyCode,
        fee_account_no: &AccountNo,
        fixed: Amount,
        rate_bps: u32,
        out: &mut Balances,
    ) -> Result<Applied, ResultCode> {
        let currency_index = self.currency_index(currency)?;
        let account = self.find_account(fee_account_no)?;
        if self.acct(account).currency.0 as usize != currency_index {
            return Err(ResultCode::CurrencyMismatch);
        }
        if self.acct(account).kind != AccountKind::System {
            return Err(ResultCode::NotChannelAccount);
        }
        self.accounts.check_credit(account)?;
        if rate_bps > FEE_RATE_BPS_MAX {
            return Err(ResultCode::FeeInvalid);
        }
        let fixed_minor = match fixed.mantissa {
            0 => 0,
            _ => to_minor(fixed, self.scale(self.acct(account).currency))?,
        };
        let rule = if fixed_minor == 0 && rate_bps == 0 {
            FeeRule::NONE
        } else {
            FeeRule { account: account.0, fixed_minor, rate_bps }
        };
        // Nothing below can fail.
        assert!(rule == FeeRule::NONE || rule.account == account.0, "credited to the fee account");
        self.clearing.set_fee_rule(currency_index, kind, rule);
        out.push(self.view(account));
        Ok(Applied::on_account(account))
    }

    pub(crate) fn set_settlement_cycle(
        &mut self,
        account_no: &AccountNo,
        t1_clearing_no: Option<&AccountNo>,
        out: &mut Balances,
    ) -> Result<Applied, ResultCode> {
        let id = self.find_account(account_no)?;
        if self.acct(id).status == AccountStatus::Closed {
            return Err(ResultCode::AccountClosed);
        }
        if self.acct(id).kind != AccountKind::User {
            return Err(ResultCode::SettlementCycleInvalid);
        }
        let current = self.cycles.t1(id);
        let pending_minor = current.map_or(0, |t1| t1.pending_minor);
        let entry = match t1_clearing_no {
            Some(clearing_no) => {
                let clearing = self.find_account(clearing_no)?;
                if self.acct(clearing).currency != self.acct(id).currency {
                    return Err(ResultCode::CurrencyMismatch);
                }
                let moved = current.is_some_and(|t1| t1.clearing != clearing);
                if self.acct(clearing).kind != AccountKind::System || (moved && pending_minor != 0)
                {
                    return Err(ResultCode::SettlementCycleInvalid);
                }
                Some(T1Pending { clearing, pending_minor })
            }
            None if pending_minor != 0 => return Err(ResultCode::SettlementCycleInvalid),
            None => None,
        };
        // Nothing below can fail.
        assert!(entry.is_none_or(|t1| t1.pending_minor == pending_minor), "pending kept");
        self.cycles.set_cycle(&mut self.accounts, id, entry);
        out.push(self.view(id));
        Ok(Applied::on_account(id))
    }
}
