//! The accounts part: the account table, the `account_no → AccountId` index, and the checks
//! every movement makes on one account (status, limits, floor, range). It owns both tables:
//! an account enters through `Accounts::push`, which indexes it, and is never removed.

use crate::hash::{hash_key, Sink, SinkExt};
use crate::limits::{ACCOUNT_NO_LEN_MAX, BALANCE_MINOR_MAX};
use crate::mem::prefetch;
use crate::outcome::{BalanceView, ResultCode};
use crate::types::{AccountId, AccountKind, AccountNo, AccountStatus, CurrencyId};
use crate::wire::{Reader, StateDecodeError};

/// Bytes of one encoded account.
const ACCOUNT_ENCODED_LEN: usize = 6 * 16 + 8 + 1 + ACCOUNT_NO_LEN_MAX + 4 + 4 + 1 + 1;

/// "No limit", stored in a limit field.
pub(crate) const LIMIT_NONE: i128 = i128::MAX;

/// One account: balances, limits and identity (160 bytes). What every transfer reads — the
/// balances, the key it is found by, status and currency — comes first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub(crate) struct Account {
    pub available_minor: i128,
    pub frozen_minor: i128,
    pub ledger_minor: i128,
    pub account_no: AccountNo,
    pub status: AccountStatus,
    pub kind: AccountKind,
    /// Whether the account has an entry in `Engine::exposures` (unsettled deposits or an
    /// exposure limit): the hot path reads this byte (padding before) instead of the map.
    pub exposure_tracked: bool,
    /// Whether the account is T+1 (has an entry in `Engine::t1_accounts`).
    pub t1: bool,
    pub currency: CurrencyId,
    /// UTC day number (`timestamp_ns / NS_PER_DAY`) that `debit_day_used_minor` belongs to.
    pub debit_day: u32,
    pub user_id: u64,
    pub tx_amount_max_minor: i128,
    pub daily_debit_max_minor: i128,
    /// Outflow counted against the daily limit on `debit_day`.
    pub debit_day_used_minor: i128,
}

const _: () = assert!(std::mem::size_of::<Account>() == 160);

impl Account {
    /// User accounts may not go below zero; system accounts mirror the outside world and may.
    pub fn floor_minor(&self) -> i128 {
        match self.kind {
            AccountKind::User => 0,
            AccountKind::System | AccountKind::Risk => -crate::limits::BALANCE_MINOR_MAX,
        }
    }
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

/// Every account, and the index that finds them by `account_no`.
pub(crate) struct Accounts {
    list: Vec<Account>,
    index: AccountIndex,
}

impl Accounts {
    pub fn new(seed: u64) -> Accounts {
        Accounts { list: Vec::new(), index: AccountIndex::new(seed) }
    }

    /// Number of accounts.
    #[inline]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Every account, in id order.
    pub fn as_slice(&self) -> &[Account] {
        &self.list
    }

    #[inline(always)]
    pub fn get(&self, id: AccountId) -> &Account {
        &self.list[id.0 as usize]
    }

    #[inline(always)]
    pub fn get_mut(&mut self, id: AccountId) -> &mut Account {
        &mut self.list[id.0 as usize]
    }

    /// Whether `id` names an account.
    pub fn contains(&self, id: u32) -> bool {
        (id as usize) < self.list.len()
    }

    #[inline]
    pub fn find(&self, account_no: &AccountNo) -> Option<AccountId> {
        self.index.find(account_no, &self.list)
    }

    /// The account `account_no`, or `AccountNotFound`.
    #[inline]
    pub fn find_or_reject(&self, account_no: &AccountNo) -> Result<AccountId, ResultCode> {
        self.find(account_no).ok_or(ResultCode::AccountNotFound)
    }

    /// Adds an account whose key is absent (checked by the caller) and indexes it. The
    /// table grows by doubling inside `OpenAccount` only, never inside a movement.
    pub fn push(&mut self, account: Account) -> AccountId {
        assert!(self.find(&account.account_no).is_none(), "account keys are unique");
        let id = AccountId(self.list.len() as u32);
        assert!(id.0 < crate::limits::ACCOUNTS_MAX, "the caller checked ACCOUNTS_MAX");
        if self.list.len() == self.list.capacity() {
            self.list.reserve(self.list.len().max(1024));
            crate::mem::advise_huge_pages(self.list.as_ptr(), self.list.capacity());
        }
        self.list.push(account);
        self.index.insert(&account.account_no, id);
        assert_eq!(self.find(&account.account_no), Some(id), "an account is found by its key");
        id
    }

    #[inline(always)]
    pub fn view(&self, id: AccountId) -> BalanceView {
        let account = self.get(id);
        BalanceView {
            account: id,
            available_minor: account.available_minor,
            frozen_minor: account.frozen_minor,
            ledger_minor: account.ledger_minor,
        }
    }

    #[inline]
    pub fn hash_of(&self, account_no: &AccountNo) -> u64 {
        self.index.hash_of(account_no)
    }

    /// Prefetch hint for the index slot of an account key hashed by `hash_of`.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        self.index.prefetch_slot(hash);
    }

    /// Prefetch hint for the account an index slot points to.
    #[inline]
    pub fn prefetch_account(&self, hash: u64) {
        self.index.prefetch_account(hash, &self.list);
    }

    /// Status, per-transaction and daily checks for money leaving `id` on UTC day `day`.
    #[inline]
    pub fn check_debit(
        &self,
        id: AccountId,
        amount_minor: i128,
        day: u32,
    ) -> Result<(), ResultCode> {
        let account = self.get(id);
        match account.status {
            AccountStatus::Active => {}
            AccountStatus::DebitFrozen => return Err(ResultCode::AccountDebitFrozen),
            AccountStatus::Closed => return Err(ResultCode::AccountClosed),
        }
        if amount_minor > account.tx_amount_max_minor {
            return Err(ResultCode::TxLimitExceeded);
        }
        if account.daily_debit_max_minor != LIMIT_NONE {
            let used = if account.debit_day == day { account.debit_day_used_minor } else { 0 };
            if used + amount_minor > account.daily_debit_max_minor {
                return Err(ResultCode::DailyLimitExceeded);
            }
        }
        Ok(())
    }

    /// Counts an outflow against the daily limit of day `day` (after every check passed).
    #[inline]
    pub fn count_debit(&mut self, id: AccountId, amount_minor: i128, day: u32) {
        assert!(amount_minor > 0, "an outflow is positive");
        let account = self.get_mut(id);
        if account.debit_day != day {
            account.debit_day = day;
            account.debit_day_used_minor = 0;
        }
        account.debit_day_used_minor = account.debit_day_used_minor.saturating_add(amount_minor);
    }

    /// Gives back what a released hold counted against the daily limit of day `day`.
    pub fn uncount_debit(&mut self, id: AccountId, amount_minor: i128, day: u32) {
        let account = self.get_mut(id);
        if account.debit_day == day {
            account.debit_day_used_minor = (account.debit_day_used_minor - amount_minor).max(0);
        }
    }

    #[inline]
    pub fn check_credit(&self, id: AccountId) -> Result<(), ResultCode> {
        match self.get(id).status {
            AccountStatus::Active | AccountStatus::DebitFrozen => Ok(()),
            AccountStatus::Closed => Err(ResultCode::AccountClosed),
        }
    }

    /// `available` after taking `amount_minor` out: a user account may not go below zero.
    #[inline]
    pub fn available_after_debit(
        &self,
        id: AccountId,
        amount_minor: i128,
    ) -> Result<i128, ResultCode> {
        let account = self.get(id);
        assert!(amount_minor >= 0, "a debit takes money out");
        let after = account.available_minor - amount_minor;
        if after < account.floor_minor() {
            return Err(match account.kind {
                AccountKind::User => ResultCode::InsufficientFunds,
                AccountKind::System | AccountKind::Risk => ResultCode::Overflow,
            });
        }
        Ok(after)
    }

    /// Snapshot section "accounts": `u32` count, then per account in id order its balances,
    /// limits, owner, key, day counter, currency, status and kind.
    pub fn encode(&self, sink: &mut impl Sink) {
        sink.u32(self.list.len() as u32);
        for account in &self.list {
            sink.i128(account.available_minor);
            sink.i128(account.frozen_minor);
            sink.i128(account.ledger_minor);
            sink.i128(account.debit_day_used_minor);
            sink.i128(account.tx_amount_max_minor);
            sink.i128(account.daily_debit_max_minor);
            sink.u64(account.user_id);
            sink.u8(account.account_no.as_bytes().len() as u8);
            sink.bytes(account.account_no.padded());
            sink.u32(account.debit_day);
            sink.u32(account.currency.0 as u32);
            sink.u8(account.status as u8);
            sink.u8(account.kind as u8);
        }
    }

    /// Reads the section `encode` writes; every field is checked (keys unique and valid,
    /// currency known, status and kind defined). The clearing and cycle bytes start false:
    /// their parts set them.
    pub fn decode(
        r: &mut Reader<'_>,
        currency_count: usize,
        seed: u64,
    ) -> Result<Accounts, StateDecodeError> {
        let account_count = r.count32(ACCOUNT_ENCODED_LEN)?;
        if account_count > crate::limits::ACCOUNTS_MAX as usize {
            return r.fail("too many accounts");
        }
        let mut accounts = Accounts::new(seed);
        accounts.list.reserve_exact(account_count);
        for _ in 0..account_count {
            let available_minor = r.i128()?;
            let frozen_minor = r.i128()?;
            let ledger_minor = r.i128()?;
            let debit_day_used_minor = r.i128()?;
            let tx_amount_max_minor = r.i128()?;
            let daily_debit_max_minor = r.i128()?;
            let user_id = r.u64()?;
            let len = r.u8()? as usize;
            let padded = r.array::<ACCOUNT_NO_LEN_MAX>()?;
            let Some(account_no) = padded.get(..len).and_then(|key| AccountNo::new(key).ok())
            else {
                return r.fail("invalid account_no");
            };
            let debit_day = r.u32()?;
            let currency = r.u32()?;
            if currency as usize >= currency_count {
                return r.fail("account currency out of range");
            }
            let status = match r.u8()? {
                0 => AccountStatus::Active,
                1 => AccountStatus::DebitFrozen,
                2 => AccountStatus::Closed,
                other => return r.fail(format!("account status {other}")),
            };
            let kind = match r.u8()? {
                0 => AccountKind::User,
                1 => AccountKind::System,
                2 => AccountKind::Risk,
                other => return r.fail(format!("account kind {other}")),
            };
            if accounts.find(&account_no).is_some() {
                return r.fail(format!("duplicate account {account_no}"));
            }
            accounts.push(Account {
                available_minor,
                frozen_minor,
                ledger_minor,
                account_no,
                status,
                kind,
                currency: CurrencyId(currency as u16),
                debit_day,
                user_id,
                tx_amount_max_minor,
                daily_debit_max_minor,
                debit_day_used_minor,
                exposure_tracked: false,
                t1: false,
            });
        }
        Ok(accounts)
    }

    /// Bytes held by the table and its index.
    pub fn memory_bytes(&self) -> usize {
        self.list.capacity() * std::mem::size_of::<Account>() + self.index.memory_bytes()
    }

    /// The part's own invariants: no user balance negative, every balance within
    /// `2 × BALANCE_MINOR_MAX` (movements keep balances within `BALANCE_MINOR_MAX`, but a
    /// release gives back what its freeze took without a check, so it never fails), and the
    /// index finds every account under its key.
    pub fn check(&self) -> Result<(), String> {
        for (index, account) in self.list.iter().enumerate() {
            if account.kind == AccountKind::User
                && (account.available_minor < 0 || account.frozen_minor < 0)
            {
                return Err(format!("user account {} negative: {account:?}", account.account_no));
            }
            let balances = [account.available_minor, account.frozen_minor, account.ledger_minor];
            let bound = -2 * BALANCE_MINOR_MAX..=2 * BALANCE_MINOR_MAX;
            if balances.iter().any(|balance| !bound.contains(balance)) {
                return Err(format!("account {}: balance out of range", account.account_no));
            }
            if self.find(&account.account_no) != Some(AccountId(index as u32)) {
                return Err(format!("account {}: not indexed", account.account_no));
            }
        }
        Ok(())
    }
}

/// Open-addressing, linear-probing index from `account_no` to `AccountId`.
///
/// A slot is `u64`: high 32 bits are the top of the key's hash (a tag that also gives the home
/// slot), low 32 bits `id + 1` (0 = empty). Accounts are never deleted, so there are no
/// tombstones. The table doubles when it would pass half full; that rehash happens inside
/// `OpenAccount`, never inside a transfer.
struct AccountIndex {
    slots: Vec<u64>,
    len: u32,
    shift: u32,
    seed: u64,
}

impl AccountIndex {
    const CAPACITY_MIN_LOG2: u32 = 10;

    pub fn new(seed: u64) -> AccountIndex {
        AccountIndex {
            slots: vec![0; 1 << Self::CAPACITY_MIN_LOG2],
            len: 0,
            shift: 64 - Self::CAPACITY_MIN_LOG2,
            seed,
        }
    }

    #[inline]
    pub fn hash_of(&self, account_no: &AccountNo) -> u64 {
        let padded: &[u8; ACCOUNT_NO_LEN_MAX] = account_no.padded();
        hash_key(padded, self.seed)
    }

    /// Prefetch hint for the home slot of `hash`.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        prefetch(&self.slots[(hash >> self.shift) as usize]);
    }

    /// Prefetch hint for the account that `hash` most likely names: the first slot of its
    /// probe chain (within a few slots of home) whose tag matches. Every cache line of the
    /// account is requested.
    #[inline]
    pub fn prefetch_account(&self, hash: u64, accounts: &[Account]) {
        const PROBE_SLOTS_MAX: usize = 4;
        let mask = self.slots.len() - 1;
        let home = (hash >> self.shift) as usize;
        for offset in 0..PROBE_SLOTS_MAX {
            let slot = self.slots[(home + offset) & mask];
            if slot == 0 {
                return;
            }
            if slot >> 32 == hash >> 32 {
                if let Some(account) = accounts.get((slot as u32 - 1) as usize) {
                    let start = (account as *const Account).cast::<u8>();
                    let len = std::mem::size_of::<Account>();
                    for line in (0..len).step_by(64).chain(std::iter::once(len - 1)) {
                        prefetch(start.wrapping_add(line));
                    }
                }
                return;
            }
        }
    }

    /// Looks `account_no` up; `accounts` resolves tag collisions.
    #[inline]
    pub fn find(&self, account_no: &AccountNo, accounts: &[Account]) -> Option<AccountId> {
        let hash = self.hash_of(account_no);
        let tag = hash >> 32;
        let mask = self.slots.len() - 1;
        let mut pos = (hash >> self.shift) as usize;
        loop {
            let slot = self.slots[pos];
            if slot == 0 {
                return None;
            }
            if slot >> 32 == tag {
                let id = (slot as u32) - 1;
                if accounts[id as usize].account_no == *account_no {
                    return Some(AccountId(id));
                }
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Inserts a key known to be absent.
    pub fn insert(&mut self, account_no: &AccountNo, id: AccountId) {
        if (self.len as usize + 1) * 2 > self.slots.len() {
            self.grow();
        }
        assert!((self.len as usize + 1) * 2 <= self.slots.len(), "the index stays half empty");
        let hash = self.hash_of(account_no);
        self.place(hash, id.0);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, id: u32) {
        let mask = self.slots.len() - 1;
        let mut pos = (hash >> self.shift) as usize;
        while self.slots[pos] != 0 {
            pos = (pos + 1) & mask;
        }
        self.slots[pos] = (hash >> 32) << 32 | (id as u64 + 1);
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, vec![0; 0]);
        self.slots = vec![0; old.len() * 2];
        crate::mem::advise_huge_pages(self.slots.as_ptr(), self.slots.len());
        self.shift -= 1;
        for slot in old.into_iter().filter(|&slot| slot != 0) {
            // The tag is the hash's top 32 bits; the home slot only needs the top bits.
            let hash = (slot >> 32) << 32;
            self.place(hash, (slot as u32) - 1);
        }
    }

    /// Bytes of memory held.
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
    }
}
