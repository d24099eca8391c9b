//! The transaction table: what the engine remembers about every `tx_id` — for idempotency,
//! lifecycle transitions of multi-step transactions, refunds and queries.
//!
//! Records live in a ring of `retained` entries (oldest overwritten first) indexed by an
//! open-addressing, linear-probing hash table sized at start to twice the ring (load ≤ 0.5):
//! no allocation after start, O(1) insert and lookup. A record evicted from the ring while its
//! transaction is still open (pending settlement, an active hold) moves to a slab instead of
//! being forgotten, keeping its index slot, so open transactions are never lost; it is
//! forgotten when it finishes (it is older than the window by then). The index is never
//! rehashed: should open transactions beyond the window fill it to 3/4, the engine refuses
//! commands (`CapacityExceeded`, see `has_room`) until some finish.

use crate::command::TxKind;
use crate::hash::{hash_u128, IdBuildHasher, IdMap, Sink, SinkExt};
use crate::mem::prefetch;
use crate::outcome::ResultCode;
use crate::types::{TxId, TxState};
use crate::wire::{Reader, StateDecodeError};

/// "No account" in a record's account fields.
pub(crate) const NO_ACCOUNT: u32 = u32::MAX;

/// What is remembered per `tx_id`: 64 bytes, one cache line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TxRecord {
    id_lo: u64,
    id_hi: u64,
    /// Bits 0..64 of the amount; bits 64..96 are `amount_hi` (|amount| < 2^95).
    amount_lo: u64,
    /// The transaction this one acts on (hold of a capture or unfreeze, original of a refund,
    /// target of a settlement command); meaningful when `has_link()`.
    link_lo: u64,
    link_hi: u64,
    /// `CommandBody::digest` of the command (keyed with the ledger's seed), or for a record
    /// from a state encoding before version 4 its 32-bit `fingerprint` (upper half 0).
    pub digest: u64,
    amount_hi: i32,
    /// The account debited by the original movement (or `NO_ACCOUNT`).
    pub debit: u32,
    /// The account credited by the original movement (or `NO_ACCOUNT`).
    pub credit: u32,
    pub kind: TxKind,
    pub state: Option<TxState>,
    pub result: ResultCode,
    /// Bit `s` is set when state `s` was reached: the history, in lifecycle order.
    pub visited: u8,
}

const _: () = assert!(std::mem::size_of::<TxRecord>() == 64);

impl TxRecord {
    pub fn new(tx_id: TxId, kind: TxKind, result: ResultCode) -> TxRecord {
        TxRecord {
            id_lo: tx_id.0 as u64,
            id_hi: (tx_id.0 >> 64) as u64,
            amount_lo: 0,
            link_lo: 0,
            link_hi: 0,
            digest: 0,
            amount_hi: 0,
            debit: NO_ACCOUNT,
            credit: NO_ACCOUNT,
            kind,
            state: None,
            result,
            visited: 0,
        }
    }

    pub fn tx_id(&self) -> TxId {
        TxId((self.id_hi as u128) << 64 | self.id_lo as u128)
    }

    pub fn amount_minor(&self) -> i128 {
        (self.amount_hi as i128) << 64 | self.amount_lo as i128
    }

    /// Stores an amount of at most 96 bits (every amount is ≤ `AMOUNT_MINOR_MAX` < 2^95).
    pub fn set_amount_minor(&mut self, amount_minor: i128) {
        assert!(amount_minor.unsigned_abs() < 1 << 95, "a record amount fits 96 bits");
        self.amount_lo = amount_minor as u64;
        self.amount_hi = (amount_minor >> 64) as i32;
    }

    /// Whether `digest` is an old 32-bit fingerprint (from a state before version 4).
    pub fn has_legacy_fingerprint(&self) -> bool {
        self.digest >> 32 == 0
    }

    /// The linked transaction, for the kinds that act on another one (and succeeded).
    pub fn link(&self) -> Option<TxId> {
        let linked_kind = matches!(
            self.kind,
            TxKind::Capture
                | TxKind::Unfreeze
                | TxKind::SettleBegin
                | TxKind::SettleConfirm
                | TxKind::SettleFail
                | TxKind::Refund
        );
        (linked_kind && self.result == ResultCode::Ok)
            .then_some(TxId((self.link_hi as u128) << 64 | self.link_lo as u128))
    }

    pub fn set_link(&mut self, link: TxId) {
        assert!(link.0 != 0 || self.link_lo | self.link_hi == 0, "a link is not unset");
        self.link_lo = link.0 as u64;
        self.link_hi = (link.0 >> 64) as u64;
    }

    /// Moves to `state`, which the caller has checked to be a legal transition.
    pub fn enter(&mut self, state: TxState) {
        if let Some(from) = self.state {
            assert!(from.can_become(state), "illegal transition {from:?} -> {state:?}");
        }
        self.state = Some(state);
        self.visited |= 1 << state as u8;
    }

    /// Walks the linear lifecycle from `Created` to `last` (one command doing several steps).
    pub fn walk_to(&mut self, last: TxState) {
        assert!(self.state.is_none() && last <= TxState::Settled, "a walk from nothing");
        self.state = Some(last);
        // Every state of the linear path up to `last` is visited, in order.
        self.visited = ((1u16 << (last as u8 + 1)) - 1) as u8;
    }
}

/// Where a record is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Loc {
    /// Position in the ring.
    Ring(u32),
    /// Index in the pinned slab.
    Pinned(u32),
}

/// Index slot values: `tag << 32 | loc`, where `loc` is `ring position + 1` or
/// `PINNED_BIT | slab index`; 0 is an empty slot.
const PINNED_BIT: u32 = 1 << 31;
const _: () = assert!(crate::limits::TX_RETAINED_MAX < PINNED_BIT);

/// A record that left the ring. Small on purpose: it is returned by every insert once the
/// ring is full.
pub(crate) struct Evicted {
    pub tx_id: TxId,
    /// Kept in the slab because its transaction is still open.
    pub pinned: bool,
}

pub(crate) struct TxTable {
    slots: Vec<u64>,
    shift: u32,
    ring: Vec<TxRecord>,
    retained: u32,
    next: u32,
    /// Open transactions that outlived the ring; `None` entries are free (listed in
    /// `pinned_free`). Positions never influence results.
    pinned: Vec<Option<TxRecord>>,
    pinned_free: Vec<u32>,
    pinned_len: u32,
    seed: u64,
    /// Refunded total per refunded (so `Reversed`) transaction: side data of its record,
    /// forgotten with it.
    refunded: IdMap<i128>,
}

impl TxTable {
    pub fn new(retained: u32, seed: u64) -> TxTable {
        TxTable::with_records(retained, seed, 0)
    }

    /// A table whose index has room for `records` (a decoded state whose open transactions
    /// outgrew the usual size: the index of an older engine could double).
    fn with_records(retained: u32, seed: u64, records: usize) -> TxTable {
        assert!(
            (1..=crate::limits::TX_RETAINED_MAX).contains(&retained),
            "tx_retained out of range"
        );
        // At least `INDEX_SLOTS_MIN`: a small window still has room for many open
        // transactions beyond it (untouched slots cost no memory).
        let slot_count = (retained as usize * 2)
            .max((records * 4).div_ceil(3))
            .next_power_of_two()
            .max(crate::limits::INDEX_SLOTS_MIN);
        let slots: Vec<u64> = vec![0; slot_count];
        let ring: Vec<TxRecord> = Vec::with_capacity(retained as usize);
        crate::mem::advise_huge_pages(slots.as_ptr(), slots.len());
        crate::mem::advise_huge_pages(ring.as_ptr(), ring.capacity());
        TxTable {
            // Zeroed allocations are mapped lazily by the OS: untouched slots cost nothing.
            slots,
            shift: 64 - slot_count.trailing_zeros(),
            ring,
            retained,
            next: 0,
            pinned: Vec::new(),
            pinned_free: Vec::new(),
            pinned_len: 0,
            seed,
            refunded: IdMap::with_hasher(IdBuildHasher { seed }),
        }
    }

    #[inline]
    fn hash(&self, tx_id: TxId) -> u64 {
        hash_u128(tx_id.0, self.seed)
    }

    #[inline]
    fn home(&self, tag: u64) -> usize {
        // The tag is the hash's top 32 bits, and the home slot is the top `64 - shift` of them.
        ((tag << 32) >> self.shift) as usize
    }

    #[inline]
    fn loc_of(slot: u64) -> Loc {
        let raw = slot as u32;
        if raw & PINNED_BIT != 0 {
            Loc::Pinned(raw & !PINNED_BIT)
        } else {
            Loc::Ring(raw - 1)
        }
    }

    #[inline]
    fn slot_of(tag: u64, loc: Loc) -> u64 {
        let raw = match loc {
            Loc::Ring(pos) => pos + 1,
            Loc::Pinned(index) => PINNED_BIT | index,
        };
        tag << 32 | raw as u64
    }

    /// Prefetch hint for the home slot of `tx_id`.
    #[inline]
    pub fn prefetch_slot(&self, tx_id: TxId) {
        prefetch(&self.slots[self.home(self.hash(tx_id) >> 32)]);
    }

    /// Prefetch hint for the index slot of the record `ahead` inserts from now will evict.
    #[inline]
    pub fn prefetch_eviction(&self, ahead: u32) {
        let pos = (self.next as u64 + ahead as u64) % self.retained as u64;
        if let Some(record) = self.ring.get(pos as usize) {
            prefetch(&self.slots[self.home(self.hash(record.tx_id()) >> 32)]);
        }
    }

    /// Finds the index slot holding `tx_id`.
    #[inline]
    fn find_slot(&self, tx_id: TxId) -> Option<usize> {
        let tag = self.hash(tx_id) >> 32;
        let mask = self.slots.len() - 1;
        let mut pos = self.home(tag);
        loop {
            let slot = self.slots[pos];
            if slot == 0 {
                return None;
            }
            if slot >> 32 == tag && self.get(Self::loc_of(slot)).tx_id() == tx_id {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
    }

    #[inline]
    pub fn find(&self, tx_id: TxId) -> Option<Loc> {
        self.find_slot(tx_id).map(|slot| Self::loc_of(self.slots[slot]))
    }

    pub fn get(&self, loc: Loc) -> &TxRecord {
        match loc {
            Loc::Ring(pos) => &self.ring[pos as usize],
            Loc::Pinned(index) => {
                self.pinned[index as usize].as_ref().expect("index slots point at live records")
            }
        }
    }

    pub fn get_mut(&mut self, loc: Loc) -> &mut TxRecord {
        match loc {
            Loc::Ring(pos) => &mut self.ring[pos as usize],
            Loc::Pinned(index) => {
                self.pinned[index as usize].as_mut().expect("index slots point at live records")
            }
        }
    }

    /// Whether `open` transactions can be open at once with the index at most 3/4 full. The
    /// index holds at most the ring (`retained`) plus the open records that outlived it, so
    /// a command that opens a transaction (freeze, deposit, withdraw) asks this first; every
    /// other command fits. The index is sized at start and never rehashed.
    #[inline]
    pub fn has_room_for_open(&self, open: usize) -> bool {
        (self.retained as usize + open) * 4 <= self.slots.len() * 3
    }

    /// Whether one more record can be inserted with the index at most 3/4 full.
    #[inline]
    fn has_room(&self) -> bool {
        let ring_full = self.ring.len() == self.retained as usize;
        let pins = ring_full && self.ring[self.next as usize].state.is_some_and(TxState::is_open);
        let len_after = self.len() + usize::from(!ring_full || pins);
        len_after * 4 <= self.slots.len() * 3
    }

    /// Remembers a new record (its `tx_id` must be absent, and `has_room()`). Returns what
    /// left the ring, if any.
    pub fn insert(&mut self, record: TxRecord) -> Option<Evicted> {
        debug_assert!(self.find(record.tx_id()).is_none());
        assert!(self.has_room(), "the index is never filled past 3/4 (has_room_for_open)");
        let pos = self.next;
        assert!(pos < self.retained, "the next ring position is inside the ring");
        let evicted = if (pos as usize) < self.ring.len() {
            let old = self.ring[pos as usize];
            let slot = self.find_slot(old.tx_id()).expect("every ring record is indexed");
            let pinned = old.state.is_some_and(TxState::is_open);
            if pinned {
                // Still open: keep it (same slot, new place) until it finishes.
                let index = match self.pinned_free.pop() {
                    Some(index) => index,
                    None => {
                        self.pinned.push(None);
                        (self.pinned.len() - 1) as u32
                    }
                };
                assert!(self.pinned[index as usize].is_none(), "a free slab entry");
                self.pinned[index as usize] = Some(old);
                self.pinned_len += 1;
                self.slots[slot] = Self::slot_of(self.slots[slot] >> 32, Loc::Pinned(index));
            } else {
                self.remove_slot(slot);
            }
            self.ring[pos as usize] = record;
            if !pinned {
                self.drop_side_data(&old);
            }
            Some(Evicted { tx_id: old.tx_id(), pinned })
        } else {
            self.ring.push(record);
            None
        };
        self.next = if pos + 1 == self.retained { 0 } else { pos + 1 };
        let tag = self.hash(record.tx_id()) >> 32;
        self.place(Self::slot_of(tag, Loc::Ring(pos)));
        assert!(self.ring.len() <= self.retained as usize);
        evicted
    }

    fn place(&mut self, slot_value: u64) {
        assert!(slot_value != 0, "an empty slot is never placed");
        let mask = self.slots.len() - 1;
        let mut slot = self.home(slot_value >> 32);
        while self.slots[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = slot_value;
    }

    /// Forgets a pinned record whose transaction has finished: it is older than the retention
    /// window, and was only kept because it was open.
    pub fn forget_if_finished(&mut self, loc: Loc) -> Option<TxRecord> {
        let Loc::Pinned(index) = loc else { return None };
        let record = *self.get(loc);
        if record.state.is_some_and(TxState::is_open) {
            return None;
        }
        let slot = self.find_slot(record.tx_id()).expect("pinned records are indexed");
        assert!(self.pinned_len > 0, "a pinned record is counted");
        self.remove_slot(slot);
        self.pinned[index as usize] = None;
        self.pinned_free.push(index);
        self.pinned_len -= 1;
        self.drop_side_data(&record);
        Some(record)
    }

    /// Removes the side data of a forgotten record (only a refunded one has any, so the
    /// common eviction costs no map lookup).
    fn drop_side_data(&mut self, record: &TxRecord) {
        if record.state == Some(TxState::Reversed) {
            self.refunded.remove(&record.tx_id());
        }
    }

    /// What was refunded of `tx_id` so far.
    #[inline]
    pub fn refunded(&self, tx_id: TxId) -> i128 {
        self.refunded.get(&tx_id).copied().unwrap_or(0)
    }

    /// Sets the refunded total of a remembered transaction.
    pub fn set_refunded(&mut self, tx_id: TxId, refunded_minor: i128) {
        assert!(refunded_minor > 0, "a refund refunds something");
        assert!(self.find(tx_id).is_some(), "the refunded transaction is remembered");
        assert!(refunded_minor > self.refunded(tx_id), "refunds only grow");
        self.refunded.insert(tx_id, refunded_minor);
    }

    /// Refunded totals in `TxId` order: hash-map order must never reach an output.
    pub fn refunded_sorted(&self) -> Vec<(TxId, i128)> {
        let mut entries: Vec<(TxId, i128)> =
            self.refunded.iter().map(|(id, r)| (*id, *r)).collect();
        entries.sort_unstable_by_key(|(tx_id, _)| *tx_id);
        entries
    }

    /// Backward-shift deletion: keeps every probe chain unbroken without tombstones.
    fn remove_slot(&mut self, mut hole: usize) {
        assert!(self.slots[hole] != 0, "only a used slot is removed");
        let mask = self.slots.len() - 1;
        let mut pos = hole;
        loop {
            pos = (pos + 1) & mask;
            let slot = self.slots[pos];
            if slot == 0 {
                break;
            }
            let home = self.home(slot >> 32);
            // Move the entry back into the hole unless that would put it before its home.
            if (pos.wrapping_sub(home) & mask) >= (pos.wrapping_sub(hole) & mask) {
                self.slots[hole] = slot;
                hole = pos;
            }
        }
        self.slots[hole] = 0;
    }

    /// Records in canonical order: pinned ones by `tx_id`, then the ring from oldest to newest.
    pub fn iter_canonical(&self) -> impl Iterator<Item = &TxRecord> {
        let mut pinned: Vec<&TxRecord> = self.pinned.iter().flatten().collect();
        pinned.sort_unstable_by_key(|record| record.tx_id());
        let split = if self.ring.len() < self.retained as usize { 0 } else { self.next as usize };
        let (newer, older) = self.ring.split_at(split);
        pinned.into_iter().chain(older.iter()).chain(newer.iter())
    }

    pub fn len(&self) -> usize {
        self.ring.len() + self.pinned_len as usize
    }

    /// Snapshot section "transactions": `u64` count, then every record in canonical order
    /// (`journal/FORMAT.md`, "State encoding version 4"; before version 4 the digest was a
    /// `u32`).
    pub fn encode_records(&self, sink: &mut impl Sink, version: u32) {
        sink.u64(self.len() as u64);
        for record in self.iter_canonical() {
            sink.u128(record.tx_id().0);
            sink.i128(record.amount_minor());
            sink.u32(record.debit);
            sink.u32(record.credit);
            sink.u128(record.link().map_or(0, |link| link.0));
            if version >= 4 {
                sink.u64(record.digest);
            } else {
                sink.u32(record.digest as u32);
            }
            sink.u8(record.kind as u8);
            sink.u8(record.state.map_or(u8::MAX, |state| state as u8));
            sink.u8(record.result as u8);
            sink.u8(record.visited);
        }
    }

    /// Reads the section `encode_records` writes into an empty table: ids unique, kinds,
    /// states and result codes defined, no more finished records than the window holds.
    /// Before version 4 a record carries a 32-bit `fingerprint`: it is kept as its digest.
    pub fn decode_records(
        &mut self,
        r: &mut Reader<'_>,
        version: u32,
    ) -> Result<(), StateDecodeError> {
        assert_eq!(self.len(), 0, "records are decoded into an empty table");
        let digest_len = if version >= 4 { 8 } else { 4 };
        let tx_count = r.count(60 + digest_len)?;
        let mut records: Vec<TxRecord> = Vec::with_capacity(tx_count);
        for _ in 0..tx_count {
            let tx_id = TxId(r.u128()?);
            let amount_minor = r.i128()?;
            let debit = r.u32()?;
            let credit = r.u32()?;
            let link = TxId(r.u128()?);
            let digest = if version >= 4 { r.u64()? } else { r.u32()? as u64 };
            let Some(kind) = TxKind::from_u8(r.u8()?) else { return r.fail("transaction kind") };
            let state = match r.u8()? {
                u8::MAX => None,
                raw => match TxState::from_u8(raw) {
                    Some(state) => Some(state),
                    None => return r.fail("transaction state"),
                },
            };
            let Some(result) = ResultCode::from_u8(r.u8()?) else {
                return r.fail("result code");
            };
            let visited = r.u8()?;
            let mut record = TxRecord::new(tx_id, kind, result);
            if !(0..=crate::limits::AMOUNT_MINOR_MAX).contains(&amount_minor) {
                return r.fail("transaction amount out of range");
            }
            record.set_amount_minor(amount_minor);
            record.debit = debit;
            record.credit = credit;
            record.set_link(link);
            record.digest = digest;
            record.state = state;
            record.visited = visited;
            records.push(record);
        }
        // Sized for the window plus every open transaction (an older engine could have
        // doubled its index; this one never rehashes).
        let open = records.iter().filter(|record| record.state.is_some_and(TxState::is_open));
        let room = records.len().max(self.retained as usize + open.count()) + 1;
        *self = TxTable::with_records(self.retained, self.seed, room);
        for record in records {
            let tx_id = record.tx_id();
            if self.find(tx_id).is_some() {
                return r.fail(format!("duplicate tx_id {:#x}", tx_id.0));
            }
            if let Some(evicted) = self.insert(record) {
                if !evicted.pinned {
                    let tx_id = evicted.tx_id.0;
                    return r
                        .fail(format!("{tx_id:#x}: more finished transactions than the window"));
                }
            }
        }
        Ok(())
    }

    /// Snapshot section "refunds": `u64` count, then `u128 tx_id · i128 refunded_minor` in
    /// `TxId` order.
    pub fn encode_refunded(&self, sink: &mut impl Sink) {
        let refunded = self.refunded_sorted();
        sink.u64(refunded.len() as u64);
        for (tx_id, refunded_minor) in refunded {
            sink.u128(tx_id.0);
            sink.i128(refunded_minor);
        }
    }

    /// Reads the section `encode_refunded` writes (after the records).
    pub fn decode_refunded(&mut self, r: &mut Reader<'_>) -> Result<(), StateDecodeError> {
        let refund_count = r.count(32)?;
        for _ in 0..refund_count {
            let tx_id = TxId(r.u128()?);
            let refunded_minor = r.i128()?;
            if refunded_minor <= 0 || self.refunded.insert(tx_id, refunded_minor).is_some() {
                return r.fail("invalid refund total");
            }
        }
        Ok(())
    }

    /// The part's own invariants: every record names known accounts (or none), holds an
    /// amount within `AMOUNT_MINOR_MAX`, has visited its current state, and is found under its
    /// `tx_id`; only records older than the window are pinned, and only open ones; every
    /// refunded total belongs to a `Reversed` record and stays within its amount.
    pub fn check(&self, accounts_len: usize) -> Result<(), String> {
        let known = |id: u32| id == NO_ACCOUNT || (id as usize) < accounts_len;
        for record in self.iter_canonical() {
            let tx_id = record.tx_id();
            let amount_ok = (0..=crate::limits::AMOUNT_MINOR_MAX).contains(&record.amount_minor());
            let visited_ok =
                record.state.is_none_or(|state| record.visited & (1 << state as u8) != 0);
            let found = self.find(tx_id).map(|loc| self.get(loc).tx_id()) == Some(tx_id);
            if !known(record.debit) || !known(record.credit) || !amount_ok || !visited_ok || !found
            {
                return Err(format!("transaction {:#x} invalid: {record:?}", tx_id.0));
            }
        }
        for record in self.pinned.iter().flatten() {
            if !record.state.is_some_and(TxState::is_open)
                || self.ring.len() < self.retained as usize
            {
                return Err(format!("transaction {:#x} pinned but finished", record.tx_id().0));
            }
        }
        for (tx_id, refunded_minor) in &self.refunded {
            let record = self.find(*tx_id).map(|loc| *self.get(loc));
            let valid = record.is_some_and(|record| {
                record.state == Some(TxState::Reversed)
                    && (1..=record.amount_minor()).contains(refunded_minor)
            });
            if !valid {
                return Err(format!("refund total of {:#x} invalid", tx_id.0));
            }
        }
        Ok(())
    }

    pub fn pinned_len(&self) -> usize {
        self.pinned_len as usize
    }

    /// Bytes of memory held when full (index plus ring plus pinned slab).
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
            + self.ring.capacity() * std::mem::size_of::<TxRecord>()
            + self.pinned.capacity() * std::mem::size_of::<Option<TxRecord>>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::{Loc, TxRecord, TxTable};
    use crate::command::TxKind;
    use crate::outcome::ResultCode;
    use crate::types::{TxId, TxState};

    proptest! {
        /// The table against a model: every remembered id is found, every forgotten one is not.
        #[test]
        fn table_matches_a_model(
            ops in proptest::collection::vec((any::<u16>(), any::<bool>(), any::<u8>()), 1..400),
            retained in 1u32..24,
            seed in any::<u64>(),
        ) {
            let mut table = TxTable::new(retained, seed);
            // id -> open?
            let mut model: BTreeMap<u128, bool> = BTreeMap::new();
            let mut order: Vec<u128> = Vec::new();
            for (step, (raw, open, action)) in ops.into_iter().enumerate() {
                let id = (raw as u128) << 64 | step as u128;
                if action % 4 == 0 && !model.is_empty() {
                    // Finish a random open record (as the engine does when a hold ends).
                    let open_ids: Vec<u128> = model.iter().filter(|(_, o)| **o).map(|(i, _)| *i).collect();
                    if let Some(&victim) = open_ids.get(action as usize % open_ids.len().max(1)) {
                        let loc = table.find(TxId(victim)).expect("open records are remembered");
                        table.get_mut(loc).enter(TxState::Failed);
                        model.insert(victim, false);
                        if let Some(forgotten) = table.forget_if_finished(loc) {
                            prop_assert_eq!(forgotten.tx_id(), TxId(victim));
                            prop_assert!(matches!(loc, Loc::Pinned(_)));
                            model.remove(&victim);
                        }
                    }
                    continue;
                }
                if !table.has_room() {
                    continue;
                }
                let mut record = TxRecord::new(TxId(id), TxKind::Freeze, ResultCode::Ok);
                if open {
                    record.walk_to(TxState::Frozen);
                } else {
                    record.walk_to(TxState::Settled);
                }
                if let Some(evicted) = table.insert(record) {
                    let evicted_id = evicted.tx_id.0;
                    prop_assert_eq!(evicted.pinned, model[&evicted_id]);
                    if !evicted.pinned {
                        model.remove(&evicted_id);
                    }
                }
                model.insert(id, open);
                order.push(id);
                for &known in model.keys() {
                    prop_assert!(table.find(TxId(known)).is_some(), "lost {known:#x}");
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for id in order {
                prop_assert_eq!(table.find(TxId(id)).is_some(), model.contains_key(&id));
            }
        }
    }
}
