//! The holds part: every active hold (money frozen by `Freeze` until it is captured, released
//! or expires) and the expiry queue. It owns both: a hold enters through `insert` and leaves
//! through `remove`, which keep the queue equal to the holds that expire.

use std::collections::BTreeSet;

use crate::hash::{IdBuildHasher, IdMap, Sink, SinkExt};
use crate::types::{AccountId, TxId};
use crate::wire::{Reader, StateDecodeError};

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

/// The active holds, by the `tx_id` of their `Freeze`.
pub(crate) struct Holds {
    map: IdMap<Hold>,
    /// (expiry, hold) for holds that expire, earliest first.
    expiries: BTreeSet<(u64, TxId)>,
}

impl Holds {
    pub fn new(seed: u64) -> Holds {
        Holds { map: IdMap::with_hasher(IdBuildHasher { seed }), expiries: BTreeSet::new() }
    }

    /// Number of open holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[inline]
    pub fn get(&self, hold_id: TxId) -> Option<&Hold> {
        self.map.get(&hold_id)
    }

    /// Adds a hold (its id must be new) and queues its expiry.
    pub fn insert(&mut self, hold_id: TxId, hold: Hold) {
        assert!(hold.remaining_minor > 0, "a hold holds something");
        let previous = self.map.insert(hold_id, hold);
        assert!(previous.is_none(), "hold ids are unique");
        if let Some(expires_ns) = hold.expires_ns {
            self.expiries.insert((expires_ns, hold_id));
        }
    }

    /// Takes `debit_minor` out of an active hold, which still holds at least that much.
    /// Returns what it still holds.
    pub fn capture(&mut self, hold_id: TxId, debit_minor: i128) -> i128 {
        let hold = self.map.get_mut(&hold_id).expect("capture of an active hold");
        assert!(0 < debit_minor && debit_minor <= hold.remaining_minor, "capture within the hold");
        hold.remaining_minor -= debit_minor;
        hold.captured_minor += debit_minor;
        hold.remaining_minor
    }

    /// Removes an active hold and its queued expiry.
    pub fn remove(&mut self, hold_id: TxId) -> Hold {
        let hold = self.map.remove(&hold_id).expect("remove of an active hold");
        assert!(hold.remaining_minor >= 0 && hold.captured_minor >= 0, "a sound hold");
        if let Some(expires_ns) = hold.expires_ns {
            let queued = self.expiries.remove(&(expires_ns, hold_id));
            assert!(queued, "an expiring hold is queued");
        }
        hold
    }

    /// The earliest hold due at `now_ns`, if any.
    #[inline]
    pub fn next_due(&self, now_ns: u64) -> Option<TxId> {
        let &(expires_ns, hold_id) = self.expiries.first()?;
        debug_assert!(self.map.contains_key(&hold_id), "a queued expiry has its hold");
        (expires_ns <= now_ns).then_some(hold_id)
    }

    /// The holds in `TxId` order: hash-map order must never reach an output.
    pub fn sorted(&self) -> Vec<(TxId, Hold)> {
        let mut holds: Vec<(TxId, Hold)> = self.map.iter().map(|(id, hold)| (*id, *hold)).collect();
        holds.sort_unstable_by_key(|(hold_id, _)| *hold_id);
        holds
    }

    /// Snapshot section "holds": `u64` count, then per hold in `TxId` order `u128 hold ·
    /// u32 account · i128 remaining_minor · i128 captured_minor · u8 has_expiry · u64
    /// expires_ns · u32 day`.
    pub fn encode(&self, sink: &mut impl Sink) {
        sink.u64(self.map.len() as u64);
        for (hold_id, hold) in self.sorted() {
            sink.u128(hold_id.0);
            sink.u32(hold.account.0);
            sink.i128(hold.remaining_minor);
            sink.i128(hold.captured_minor);
            sink.u8(hold.expires_ns.is_some() as u8);
            sink.u64(hold.expires_ns.unwrap_or(0));
            sink.u32(hold.day);
        }
    }

    /// Reads the section `encode` writes: accounts known, something held, ids unique.
    pub fn decode(
        r: &mut Reader<'_>,
        accounts_len: usize,
        seed: u64,
    ) -> Result<Holds, StateDecodeError> {
        let mut holds = Holds::new(seed);
        let hold_count = r.count(65)?;
        for _ in 0..hold_count {
            let hold_id = TxId(r.u128()?);
            let account = r.u32()?;
            let remaining_minor = r.i128()?;
            let captured_minor = r.i128()?;
            let has_expiry = r.u8()?;
            let expires_ns = r.u64()?;
            let day = r.u32()?;
            let valid = (account as usize) < accounts_len
                && has_expiry <= 1
                && remaining_minor > 0
                && captured_minor >= 0
                && holds.get(hold_id).is_none();
            if !valid {
                return r.fail("invalid hold");
            }
            let expires_ns = (has_expiry == 1).then_some(expires_ns);
            let hold = Hold {
                account: AccountId(account),
                remaining_minor,
                captured_minor,
                expires_ns,
                day,
            };
            holds.insert(hold_id, hold);
        }
        Ok(holds)
    }

    /// The part's own invariants: every hold holds something of a known account, and the
    /// expiry queue lists exactly the holds that expire. Adds each hold to its account's
    /// expected `frozen` (`frozen_expected` is indexed by account).
    pub fn check(&self, frozen_expected: &mut [i128]) -> Result<(), String> {
        let mut expiring = 0;
        for (hold_id, hold) in &self.map {
            let Some(frozen) = frozen_expected.get_mut(hold.account.0 as usize) else {
                return Err(format!("hold {:#x}: unknown account", hold_id.0));
            };
            if hold.remaining_minor <= 0 || hold.captured_minor < 0 {
                return Err(format!("hold {:#x}: holds {}", hold_id.0, hold.remaining_minor));
            }
            *frozen += hold.remaining_minor;
            if let Some(expires_ns) = hold.expires_ns {
                expiring += 1;
                if !self.expiries.contains(&(expires_ns, *hold_id)) {
                    return Err(format!("hold {:#x}: expiry not queued", hold_id.0));
                }
            }
        }
        if expiring != self.expiries.len() {
            return Err(format!("{} expiries queued for {expiring} holds", self.expiries.len()));
        }
        Ok(())
    }
}
