//! Reference-data commands: currencies, opening accounts, status and limits.

use crate::account::{Account, LIMIT_NONE};
use crate::currency::{to_minor, CurrencyDef};
use crate::engine::{Applied, Engine};
use crate::limits::{ACCOUNTS_MAX, CURRENCIES_MAX, CURRENCY_SCALE_MAX};
use crate::outcome::{Balances, ResultCode};
use crate::types::{
    AccountId, AccountKind, AccountLimits, AccountNo, AccountStatus, CurrencyCode, CurrencyId,
};

impl Engine {
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
        self.currencies.push(CurrencyDef { code, scale });
        self.risk_accounts.push(None);
        self.fees.push([crate::clearing::FeeRule::NONE; crate::clearing::FEE_KINDS]);
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
        let Some(currency_index) = self.currencies.iter().position(|c| c.code == currency) else {
            return Err(ResultCode::CurrencyUnknown);
        };
        let currency_id = CurrencyId(currency_index as u16);
        if self.account_index.find(&account_no, &self.accounts).is_some() {
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
        let id = AccountId(self.accounts.len() as u32);
        if self.accounts.len() == self.accounts.capacity() {
            self.accounts.reserve(self.accounts.len().max(1024));
            crate::mem::advise_huge_pages(self.accounts.as_ptr(), self.accounts.capacity());
        }
        self.accounts.push(Account {
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
        self.account_index.insert(&account_no, id);
        self.set_exposure_limit(id, exposure_max_minor);
        if kind == AccountKind::Risk {
            self.risk_accounts[currency_index] = Some(id);
        }
        out.push(self.view(id));
        Ok(Applied { debit: id.0, ..Applied::admin() })
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
        self.acct_mut(id).status = status;
        out.push(self.view(id));
        Ok(Applied { debit: id.0, ..Applied::admin() })
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
        self.set_exposure_limit(id, exposure_max_minor);
        out.push(self.view(id));
        Ok(Applied { debit: id.0, ..Applied::admin() })
    }
}
