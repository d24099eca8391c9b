//! T+1 accounts and the end-of-day cutover (`engine/CLEARING.md`).
//!
//! A T+1 account's transfers move its `available` at once, like any other; the `ledger` side
//! of the movement is booked on the account's clearing system account instead and counted as
//! the account's pending amount. `Cutover` moves each pending amount (the day's net) from the
//! clearing account to the account's `ledger`, so `Σ ledger` stays zero at every step.
//!
//! The cycles part owns the T+1 entries (and keeps each account's `t1` byte equal to whether
//! it has one), the open day's per-channel settlement totals and the last closed day.

use std::collections::BTreeMap;

use crate::account::{in_range, Accounts};
use crate::hash::{Sink, SinkExt};
use crate::outcome::{Bucket, Effects, ResultCode};
use crate::types::{AccountId, AccountKind, AccountNo, CurrencyCode, TxId};
use crate::wire::{Reader, StateDecodeError};

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
    /// (account, delta) per distinct account.
    moves: [(AccountId, i128); 3],
    moves_len: usize,
    /// (T+1 account, new pending).
    pending: [(AccountId, i128); 3],
    pending_len: usize,
}

impl LedgerPlan {
    /// (account, delta) per distinct account whose `ledger` moves.
    pub fn moves(&self) -> &[(AccountId, i128)] {
        &self.moves[..self.moves_len]
    }

    /// (T+1 account, its new pending amount).
    pub fn pending(&self) -> &[(AccountId, i128)] {
        &self.pending[..self.pending_len]
    }
}

/// The T+1 entries and the business days.
pub(crate) struct Cycles {
    /// Per T+1 account: its clearing account and pending `ledger`.
    t1_accounts: BTreeMap<AccountId, T1Pending>,
    /// Per channel: settlements confirmed since the last cutover.
    channel_day: BTreeMap<AccountId, ChannelDay>,
    /// The last closed business date (0: none) and its per-channel totals.
    last_cutover: (u32, Vec<(AccountId, ChannelDay)>),
}

/// What a `Cutover` will do, checked: per T+1 account with a pending amount, that amount
/// (moved from its clearing account to its `ledger`).
pub(crate) struct CutoverPlan {
    business_date: u32,
    moves: Vec<(AccountId, T1Pending)>,
}

impl Cycles {
    pub fn new() -> Cycles {
        Cycles {
            t1_accounts: BTreeMap::new(),
            channel_day: BTreeMap::new(),
            last_cutover: (0, Vec::new()),
        }
    }

    /// Whether the `ledger` side of a movement between these accounts waits for a cutover.
    #[inline(always)]
    pub fn any_t1(accounts: &Accounts, a: AccountId, b: AccountId) -> bool {
        accounts.get(a).t1 || accounts.get(b).t1
    }

    /// The T+1 entry of `id`, if it is T+1.
    pub fn t1(&self, id: AccountId) -> Option<T1Pending> {
        self.t1_accounts.get(&id).copied()
    }

    /// The last closed business date (0: none) and its totals, in channel order.
    pub fn last_cutover(&self) -> (u32, &[(AccountId, ChannelDay)]) {
        (self.last_cutover.0, &self.last_cutover.1)
    }

    /// Plans the `ledger` deltas of a movement (at most three accounts): a T+1 account's delta
    /// goes to its clearing account and its pending amount (checked here).
    pub fn plan_ledger(
        &self,
        accounts: &Accounts,
        deltas: &[(AccountId, i128)],
    ) -> Result<LedgerPlan, ResultCode> {
        assert!(!deltas.is_empty() && deltas.len() <= 3, "a movement touches 1 to 3 accounts");
        let mut plan = LedgerPlan {
            moves: [(AccountId(0), 0); 3],
            moves_len: 0,
            pending: [(AccountId(0), 0); 3],
            pending_len: 0,
        };
        for &(id, delta) in deltas {
            // `Account::t1` first: a T+0 account costs no map lookup.
            let t1 = if accounts.get(id).t1 { self.t1_accounts.get(&id) } else { None };
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
            match plan.moves[..plan.moves_len].iter_mut().find(|(a, _)| *a == target) {
                Some(existing) => existing.1 += delta,
                None => {
                    plan.moves[plan.moves_len] = (target, delta);
                    plan.moves_len += 1;
                }
            }
        }
        // The new `ledger` balances are checked where the plan is added (`Plan::add_ledger`).
        Ok(plan)
    }

    /// Sets the pending amount of a T+1 account (planned by `plan_ledger`).
    pub fn set_pending(&mut self, id: AccountId, pending_minor: i128) {
        assert!(in_range(pending_minor).is_ok(), "planned in range");
        self.t1_accounts.get_mut(&id).expect("planned from an entry").pending_minor = pending_minor;
    }

    /// Puts `id` on T+1 with `entry`, or back on T+0 with `None` (checked by the caller).
    pub fn set_cycle(&mut self, accounts: &mut Accounts, id: AccountId, entry: Option<T1Pending>) {
        assert!(accounts.get(id).kind == AccountKind::User, "only user accounts are T+1");
        let clearing = entry.map(|entry| accounts.get(entry.clearing).kind);
        assert!(
            clearing.is_none_or(|kind| kind == AccountKind::System),
            "cleared by a system account"
        );
        match entry {
            Some(entry) => self.t1_accounts.insert(id, entry),
            None => self.t1_accounts.remove(&id),
        };
        accounts.get_mut(id).t1 = entry.is_some();
    }

    /// Counts a confirmed settlement in its channel's day.
    pub fn count_settlement(&mut self, channel: AccountId, amount_minor: i128, deposit: bool) {
        assert!(amount_minor > 0, "a settlement moves something");
        let day = self.channel_day.entry(channel).or_default();
        if deposit {
            day.deposits_minor = day.deposits_minor.saturating_add(amount_minor);
            day.deposits_count += 1;
        } else {
            day.withdrawals_minor = day.withdrawals_minor.saturating_add(amount_minor);
            day.withdrawals_count += 1;
        }
    }

    /// Checks a cutover of `business_date`: a later real date, and every balance it moves stays
    /// in range.
    pub fn plan_cutover(
        &self,
        accounts: &Accounts,
        business_date: u32,
    ) -> Result<CutoverPlan, ResultCode> {
        if !is_business_date(business_date) || business_date <= self.last_cutover.0 {
            return Err(ResultCode::BusinessDateClosed);
        }
        let mut clearing_sums: BTreeMap<AccountId, i128> = BTreeMap::new();
        let mut moves = Vec::new();
        for (&id, t1) in &self.t1_accounts {
            if t1.pending_minor != 0 {
                in_range(accounts.get(id).ledger_minor + t1.pending_minor)?;
                *clearing_sums.entry(t1.clearing).or_insert(0) += t1.pending_minor;
                moves.push((id, *t1));
            }
        }
        for (&clearing, &sum) in &clearing_sums {
            in_range(accounts.get(clearing).ledger_minor - sum)?;
        }
        Ok(CutoverPlan { business_date, moves })
    }

    /// Applies a checked cutover: every pending amount moves, the open day closes.
    pub fn commit_cutover(
        &mut self,
        accounts: &mut Accounts,
        tx_id: TxId,
        plan: CutoverPlan,
        fx: &mut Effects,
    ) {
        assert!(plan.business_date > self.last_cutover.0, "each date closes once");
        for (id, t1) in plan.moves {
            assert_eq!(self.t1_accounts.get(&id), Some(&t1), "the plan is fresh");
            accounts.get_mut(id).ledger_minor += t1.pending_minor;
            accounts.get_mut(t1.clearing).ledger_minor -= t1.pending_minor;
            assert!(in_range(accounts.get(id).ledger_minor).is_ok(), "planned in range");
            assert!(in_range(accounts.get(t1.clearing).ledger_minor).is_ok(), "planned in range");
            fx.post(tx_id, id, Bucket::Ledger, t1.pending_minor);
            fx.post(tx_id, t1.clearing, Bucket::Ledger, -t1.pending_minor);
            self.t1_accounts.get_mut(&id).expect("planned from an entry").pending_minor = 0;
        }
        let day = std::mem::take(&mut self.channel_day).into_iter().collect();
        self.last_cutover = (plan.business_date, day);
    }

    /// Snapshot section "cycles" (version 2): the T+1 entries (`u64` count; per entry in
    /// account order `u32 account · u32 clearing · i128 pending_minor`), the open day (`u64`
    /// count; per channel in account order `u32 channel · i128 deposits_minor · u64
    /// deposits_count · i128 withdrawals_minor · u64 withdrawals_count`), then `u32` last
    /// closed date (0: none) and its channel totals in the same layout.
    pub fn encode(&self, sink: &mut impl Sink) {
        sink.u64(self.t1_accounts.len() as u64);
        for (account, t1) in &self.t1_accounts {
            sink.u32(account.0);
            sink.u32(t1.clearing.0);
            sink.i128(t1.pending_minor);
        }
        sink.u64(self.channel_day.len() as u64);
        encode_days(sink, self.channel_day.iter().map(|(channel, day)| (*channel, *day)));
        sink.u32(self.last_cutover.0);
        sink.u64(self.last_cutover.1.len() as u64);
        encode_days(sink, self.last_cutover.1.iter().copied());
    }

    /// Reads the section `encode` writes (absent in version 1), and sets the accounts' `t1`
    /// bytes.
    pub fn decode(
        r: &mut Reader<'_>,
        version: u32,
        accounts: &mut Accounts,
    ) -> Result<Cycles, StateDecodeError> {
        let mut cycles = Cycles::new();
        if version == 1 {
            return Ok(cycles);
        }
        let t1_count = r.count(24)?;
        for _ in 0..t1_count {
            let account = r.u32()?;
            let clearing = r.u32()?;
            let pending_minor = r.i128()?;
            let valid = accounts.contains(account) && accounts.contains(clearing) && {
                let (user, clearing) =
                    (accounts.get(AccountId(account)), accounts.get(AccountId(clearing)));
                user.kind == AccountKind::User
                    && clearing.kind == AccountKind::System
                    && user.currency == clearing.currency
                    && !user.t1
            };
            if !valid || in_range(pending_minor).is_err() {
                return r.fail("invalid T+1 entry");
            }
            let t1 = T1Pending { clearing: AccountId(clearing), pending_minor };
            cycles.set_cycle(accounts, AccountId(account), Some(t1));
        }
        cycles.channel_day = decode_days(r, accounts.len())?.into_iter().collect();
        let business_date = r.u32()?;
        let closed = decode_days(r, accounts.len())?;
        if business_date != 0 && !is_business_date(business_date) {
            return r.fail("invalid business date");
        }
        cycles.last_cutover = (business_date, closed);
        Ok(cycles)
    }

    /// The part's invariants against the accounts: the `t1` bytes agree with the entries,
    /// every entry is a user account cleared through a system account of its currency, and
    /// every channel total names a known account.
    pub fn check(&self, accounts: &Accounts) -> Result<(), String> {
        for (index, account) in accounts.as_slice().iter().enumerate() {
            let entry = self.t1_accounts.get(&AccountId(index as u32));
            if account.t1 != entry.is_some() {
                return Err(format!("account {}: t1 byte disagrees", account.account_no));
            }
            if let Some(t1) = entry {
                let valid = accounts.contains(t1.clearing.0) && {
                    let clearing = accounts.get(t1.clearing);
                    account.kind == AccountKind::User
                        && clearing.kind == AccountKind::System
                        && clearing.currency == account.currency
                };
                if !valid || in_range(t1.pending_minor).is_err() {
                    return Err(format!("account {}: invalid T+1 entry", account.account_no));
                }
            }
        }
        let known = |id: &AccountId| accounts.contains(id.0);
        let closed = &self.last_cutover.1;
        let ordered = closed.windows(2).all(|pair| pair[0].0 < pair[1].0);
        if !self.t1_accounts.keys().all(known)
            || !self.channel_day.keys().all(known)
            || !closed.iter().all(|(id, _)| known(id))
            || !ordered
        {
            return Err("cycle entry of an unknown account".to_string());
        }
        let date = self.last_cutover.0;
        if date != 0 && !is_business_date(date) {
            return Err(format!("last business date {date} invalid"));
        }
        Ok(())
    }
}

/// Writes per-channel day totals (the count is the caller's).
fn encode_days(sink: &mut impl Sink, days: impl Iterator<Item = (AccountId, ChannelDay)>) {
    for (channel, day) in days {
        sink.u32(channel.0);
        sink.i128(day.deposits_minor);
        sink.u64(day.deposits_count);
        sink.i128(day.withdrawals_minor);
        sink.u64(day.withdrawals_count);
    }
}

/// Reads a count and that many per-channel day totals, in strictly increasing channel order.
fn decode_days(
    r: &mut Reader<'_>,
    accounts_len: usize,
) -> Result<Vec<(AccountId, ChannelDay)>, StateDecodeError> {
    let count = r.count(52)?;
    let mut days = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = r.u32()?;
        let day = ChannelDay {
            deposits_minor: r.i128()?,
            deposits_count: r.u64()?,
            withdrawals_minor: r.i128()?,
            withdrawals_count: r.u64()?,
        };
        let ordered = days.last().is_none_or(|(last, _): &(AccountId, _)| last.0 < channel);
        if channel as usize >= accounts_len || !ordered {
            return r.fail("invalid channel day");
        }
        days.push((AccountId(channel), day));
    }
    Ok(days)
}
