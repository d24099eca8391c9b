//! Accounts and the `account_no → AccountId` index.

use crate::batch::prefetch;
use crate::hash::hash_key;
use crate::limits::ACCOUNT_NO_LEN_MAX;
use crate::types::{AccountId, AccountKind, AccountNo, AccountStatus, CurrencyId};

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

/// Open-addressing, linear-probing index from `account_no` to `AccountId`.
///
/// A slot is `u64`: high 32 bits are the top of the key's hash (a tag that also gives the home
/// slot), low 32 bits `id + 1` (0 = empty). Accounts are never deleted, so there are no
/// tombstones. The table doubles when it would pass half full; that rehash happens inside
/// `OpenAccount`, never inside a transfer.
pub(crate) struct AccountIndex {
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
