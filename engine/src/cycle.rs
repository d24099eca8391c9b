//! T+1 accounts and the end-of-day cutover (`engine/CLEARING.md`).
//!
//! A T+1 account's transfers move its `available` at once, like any other; the `ledger` side
//! of the movement is booked on the account's clearing system account instead and counted as
//! the account's pending amount. `Cutover` moves each pending amount (the day's net) from the
//! clearing account to the account's `ledger`, so `Σ ledger` stays zero at every step.

use std::collections::BTreeMap;

use crate::engine::{in_range, Applied, Engine};
use crate::outcome::{Balances, Bucket, Effects, ResultCode};
use crate::types::{AccountId, AccountKind, AccountNo, AccountStatus, CurrencyCode, TxId};

/// A T+1 account's clearing account and the `ledger` amount waiting for the next cutover.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct T1Pending {
    pub clearing: AccountId,
    pub pending_minor: i128,
}

/// Settlements one channel confirmed within a business day.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct ChannelDay {
    pub deposits_minor: i128,
    pub deposits_count: u64,
    pub withdrawals_minor: i128,
    pub withdrawals_count: u64,
}

/// A T+1 account, as queries see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct T1View {
    /// The clearing system account carrying its pending `ledger`.
    pub clearing_no: AccountNo,
    /// `ledger` amount the next cutover moves to the account (negative: out of it).
    pub pending_minor: i128,
}

/// One channel's settled totals of a closed business day.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChannelDayView {
    /// The channel's system account.
    pub channel_no: AccountNo,
    /// Its currency.
    pub currency: CurrencyCode,
    /// The currency's decimals.
    pub scale: u8,
    /// Deposits confirmed that day (sum, saturating) and their number.
    pub deposits_minor: i128,
    /// Number of deposits confirmed.
    pub deposits_count: u64,
    /// Withdrawals confirmed that day (sum, saturating).
    pub withdrawals_minor: i128,
    /// Number of withdrawals confirmed.
    pub withdrawals_count: u64,
}

/// The last closed business day.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CutoverReport {
    /// YYYYMMDD.
    pub business_date: u32,
    /// Per channel that settled anything that day, in account order.
    pub channels: Vec<ChannelDayView>,
}

/// Whether `date` is a real calendar date written as YYYYMMDD.
pub(crate) fn is_business_date(date: u32) -> bool {
    let (year, month, day) = (date / 10_000, date / 100 % 100, date % 100);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=9_999).contains(&year) && (1..=days).contains(&day)
}

/// The `ledger` side of a movement that touches a T+1 account: every delta of a T+1 account
/// is redirected to its clearing account (merged per account) and added to its pending amount.
pub(crate) struct LedgerPlan {
    /// (account, new ledger, delta) per distinct account.
    moves: [(AccountId, i128, i128); 3],
    moves_len: usize,
    /// (T+1 account, new pending).
    pending: [(AccountId, i128); 3],
    pending_len: usize,
}

impl Engine {
    /// Whether the `ledger` side of a movement between these accounts waits for a cutover.
    #[inline]
    pub(crate) fn any_t1(&self, a: AccountId, b: AccountId) -> bool {
        self.acct(a).t1 || self.acct(b).t1
    }

    /// Checks and plans the `ledger` deltas of a movement (at most three accounts).
    pub(crate) fn plan_ledger(
        &self,
        deltas: &[(AccountId, i128)],
    ) -> Result<LedgerPlan, ResultCode> {
        let mut plan = LedgerPlan {
            moves: [(AccountId(0), 0, 0); 3],
            moves_len: 0,
            pending: [(AccountId(0), 0); 3],
            pending_len: 0,
        };
        for &(id, delta) in deltas {
            // `Account::t1` first: a T+0 account costs no map lookup.
            let t1 = if self.acct(id).t1 { self.t1_accounts.get(&id) } else { None };
            let target = match t1 {
                Some(t1) => {
                    let planned = &mut plan.pending[..plan.pending_len];
                    match planned.iter_mut().find(|(account, _)| *account == id) {
                        Some(existing) => existing.1 = in_range(existing.1 + delta)?,
                        None => {
                            plan.pending[plan.pending_len] =
                                (id, in_range(t1.pending_minor + delta)?);
                            plan.pending_len += 1;
                        }
                    }
                    t1.clearing
                }
                None => id,
            };
            match plan.moves[..plan.moves_len].iter_mut().find(|(a, _, _)| *a == target) {
                Some(existing) => existing.2 += delta,
                None => {
                    plan.moves[plan.moves_len] = (target, 0, delta);
                    plan.moves_len += 1;
                }
            }
        }
        for entry in &mut plan.moves[..plan.moves_len] {
            entry.1 = in_range(self.acct(entry.0).ledger_minor + entry.2)?;
        }
        Ok(plan)
    }

    /// Applies a plan from `plan_ledger` (cannot fail).
    pub(crate) fn apply_ledger(&mut self, tx_id: TxId, plan: &LedgerPlan, fx: &mut Effects) {
        for &(id, ledger_minor, delta) in &plan.moves[..plan.moves_len] {
            self.acct_mut(id).ledger_minor = ledger_minor;
            if delta != 0 {
                Self::post(fx, tx_id, id, Bucket::Ledger, delta);
            }
        }
        for &(id, pending_minor) in &plan.pending[..plan.pending_len] {
            self.t1_accounts.get_mut(&id).expect("planned from an entry").pending_minor =
                pending_minor;
        }
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
        let current = self.t1_accounts.get(&id).copied();
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
        match entry {
            Some(entry) => self.t1_accounts.insert(id, entry),
            None => self.t1_accounts.remove(&id),
        };
        self.acct_mut(id).t1 = entry.is_some();
        out.push(self.view(id));
        Ok(Applied { debit: id.0, ..Applied::admin() })
    }

    /// Counts a confirmed settlement in its channel's day.
    pub(crate) fn count_settlement(
        &mut self,
        channel: AccountId,
        amount_minor: i128,
        deposit: bool,
    ) {
        let day = self.channel_day.entry(channel).or_default();
        if deposit {
            day.deposits_minor = day.deposits_minor.saturating_add(amount_minor);
            day.deposits_count += 1;
        } else {
            day.withdrawals_minor = day.withdrawals_minor.saturating_add(amount_minor);
            day.withdrawals_count += 1;
        }
    }

    pub(crate) fn cutover(
        &mut self,
        tx_id: TxId,
        business_date: u32,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        if !is_business_date(business_date) || business_date <= self.last_cutover.0 {
            return Err(ResultCode::BusinessDateClosed);
        }
        let mut clearing_sums: BTreeMap<AccountId, i128> = BTreeMap::new();
        for (&id, t1) in &self.t1_accounts {
            if t1.pending_minor != 0 {
                in_range(self.acct(id).ledger_minor + t1.pending_minor)?;
                *clearing_sums.entry(t1.clearing).or_insert(0) += t1.pending_minor;
            }
        }
        for (&clearing, &sum) in &clearing_sums {
            in_range(self.acct(clearing).ledger_minor - sum)?;
        }
        // Nothing below can fail.
        let pending: Vec<(AccountId, T1Pending)> = self
            .t1_accounts
            .iter()
            .filter(|(_, t1)| t1.pending_minor != 0)
            .map(|(&id, &t1)| (id, t1))
            .collect();
        for (id, t1) in pending {
            self.acct_mut(id).ledger_minor += t1.pending_minor;
            self.acct_mut(t1.clearing).ledger_minor -= t1.pending_minor;
            Self::post(fx, tx_id, id, Bucket::Ledger, t1.pending_minor);
            Self::post(fx, tx_id, t1.clearing, Bucket::Ledger, -t1.pending_minor);
            self.t1_accounts.get_mut(&id).expect("listed above").pending_minor = 0;
        }
        let day = std::mem::take(&mut self.channel_day).into_iter().collect();
        self.last_cutover = (business_date, day);
        Ok(Applied::admin())
    }

    /// Clearing account and pending `ledger` of a T+1 account (`None` for a T+0 account).
    pub fn t1(&self, account_no: &AccountNo) -> Option<T1View> {
        let id = self.account_index.find(account_no, &self.accounts)?;
        let t1 = self.t1_accounts.get(&id)?;
        Some(T1View {
            clearing_no: self.acct(t1.clearing).account_no,
            pending_minor: t1.pending_minor,
        })
    }

    /// The last closed business day and its per-channel settled totals.
    pub fn cutover_report(&self) -> Option<CutoverReport> {
        let (business_date, channels) = &self.last_cutover;
        if *business_date == 0 {
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
        Some(CutoverReport { business_date: *business_date, channels })
    }

    /// Checks the T+1 entries against the accounts.
    pub(crate) fn check_cycles(&self) -> Result<(), String> {
        for (index, account) in self.accounts.iter().enumerate() {
            let entry = self.t1_accounts.get(&AccountId(index as u32));
            if account.t1 != entry.is_some() {
                return Err(format!("account {}: t1 byte disagrees", account.account_no));
            }
            if let Some(t1) = entry {
                let clearing = self.acct(t1.clearing);
                if account.kind != AccountKind::User
                    || clearing.kind != AccountKind::System
                    || clearing.currency != account.currency
                {
                    return Err(format!("account {}: invalid T+1 entry", account.account_no));
                }
            }
        }
        Ok(())
    }
}
