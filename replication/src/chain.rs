//! The verifier a replica runs over the entries it reads from the log, in index order
//! (REPLICATION.md, *Following the log*). It knows nothing of the engine: a checkpoint it
//! accepts is returned for the caller to compare with its own `state_hash`.
//!
//! **Invariant:** an entry is accepted only if it continues the chain exactly: the next index,
//! the previous entry's hash, the next seq, an epoch that only grows and only through an
//! `EpochStart`. Anything else is an error the replica must stop on; it never skips.

use thiserror::Error;

use crate::entry::{Entry, EntryKind, Head};

/// Why an entry does not continue the chain.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    /// An entry is missing or repeated.
    #[error("log gap: expected entry {expected}, got entry {found}")]
    Index {
        /// The index the chain expects.
        expected: u64,
        /// The entry's index.
        found: u64,
    },
    /// The entry names another predecessor: two histories, or a damaged log.
    #[error("hash chain broken at entry {index}: prev_hash {found:032x}, the previous entry's hash is {expected:032x}")]
    PrevHash {
        /// The entry's index.
        index: u64,
        /// The previous entry's hash.
        expected: u128,
        /// The entry's `prev_hash`.
        found: u128,
    },
    /// The entry's records do not start right after the previous ones.
    #[error("sequence gap at entry {index}: expected first_seq {expected}, got {found}")]
    Seq {
        /// The entry's index.
        index: u64,
        /// The seq the chain expects next.
        expected: u64,
        /// The entry's `first_seq`.
        found: u64,
    },
    /// The epoch moved without an `EpochStart`, or went backwards.
    #[error("epoch error at entry {index}: {what} (chain epoch {chain_epoch}, entry epoch {entry_epoch})")]
    Epoch {
        /// The entry's index.
        index: u64,
        /// What is wrong.
        what: &'static str,
        /// The epoch of the entries before.
        chain_epoch: u64,
        /// The entry's epoch.
        entry_epoch: u64,
    },
}

/// Where a replica is in the log: the head of the last entry it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// The last accepted entry (`None`: nothing accepted yet, the log starts at entry 1).
    last: Option<Head>,
}

impl Chain {
    /// A chain before the log's first entry.
    pub fn genesis() -> Chain {
        Chain { last: None }
    }

    /// A chain continuing after `head` (a replica that already holds the log up to it).
    pub fn after(head: Head) -> Chain {
        Chain { last: Some(head) }
    }

    /// The last accepted entry.
    pub fn head(&self) -> Option<Head> {
        self.last
    }

    /// The index of the next entry.
    pub fn next_index(&self) -> u64 {
        self.last.map_or(1, |head| head.index + 1)
    }

    /// Accepts `entry` if it continues the chain (see the module's invariant) and returns the
    /// checkpoint it carries, if any: the `state_hash` the replica's engine must have after
    /// `entry.last_seq()`.
    pub fn accept(&mut self, entry: &Entry<'_>) -> Result<Option<u128>, ChainError> {
        let index = entry.index;
        let expected = self.next_index();
        if index != expected {
            return Err(ChainError::Index { expected, found: index });
        }
        let (prev_hash, chain_epoch, next_seq) = match self.last {
            Some(head) => (head.entry_hash, head.epoch, Some(head.last_seq + 1)),
            None => (0, 0, None),
        };
        if entry.prev_hash != prev_hash {
            return Err(ChainError::PrevHash {
                index,
                expected: prev_hash,
                found: entry.prev_hash,
            });
        }
        if let Some(next_seq) = next_seq {
            if entry.first_seq != next_seq {
                return Err(ChainError::Seq { index, expected: next_seq, found: entry.first_seq });
            }
        }
        let epoch_error =
            |what| ChainError::Epoch { index, what, chain_epoch, entry_epoch: entry.epoch };
        match entry.kind {
            EntryKind::EpochStart if entry.epoch <= chain_epoch => {
                return Err(epoch_error("an epoch start that does not raise the epoch"));
            }
            EntryKind::Records if self.last.is_none() => {
                return Err(epoch_error("the log does not begin with an epoch start"));
            }
            EntryKind::Records if entry.epoch != chain_epoch => {
                return Err(epoch_error("records of another epoch than the last epoch start's"));
            }
            EntryKind::EpochStart | EntryKind::Records => {}
        }
        let head = entry.head();
        assert_eq!(head.index, expected, "the accepted entry is the next one");
        self.last = Some(head);
        Ok(entry.state_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{encode_epoch_start, encode_records, push_record, EntryMeta};

    fn epoch_start(index: u64, epoch: u64, first_seq: u64, prev_hash: u128) -> Vec<u8> {
        let meta = EntryMeta { index, epoch, first_seq, prev_hash, state_hash: Some(9) };
        let mut out = Vec::new();
        encode_epoch_start(&mut out, meta, "a");
        out
    }

    fn records(index: u64, epoch: u64, first_seq: u64, prev_hash: u128, n: u32) -> Vec<u8> {
        let mut body = Vec::new();
        for i in 0..n {
            push_record(&mut body, &i.to_le_bytes());
        }
        let meta = EntryMeta { index, epoch, first_seq, prev_hash, state_hash: None };
        let mut out = Vec::new();
        encode_records(&mut out, meta, n, &body);
        out
    }

    #[test]
    fn a_log_of_two_epochs_is_accepted_in_order() {
        let mut chain = Chain::genesis();
        let e1 = epoch_start(1, 1, 1, 0);
        let e1 = Entry::decode(&e1).expect("entry");
        assert_eq!(chain.accept(&e1), Ok(Some(9)));
        let r2 = records(2, 1, 1, e1.entry_hash, 3);
        let r2 = Entry::decode(&r2).expect("entry");
        assert_eq!(chain.accept(&r2), Ok(None));
        let e3 = epoch_start(3, 2, 4, r2.entry_hash);
        let e3 = Entry::decode(&e3).expect("entry");
        assert_eq!(chain.accept(&e3), Ok(Some(9)));
        let r4 = records(4, 2, 4, e3.entry_hash, 1);
        let r4 = Entry::decode(&r4).expect("entry");
        assert!(chain.accept(&r4).is_ok());
        assert_eq!(chain.head().map(|h| (h.index, h.epoch, h.last_seq)), Some((4, 2, 4)));
    }

    #[test]
    fn gaps_forks_and_stale_epochs_are_refused() {
        let e1 = epoch_start(1, 1, 1, 0);
        let e1 = Entry::decode(&e1).expect("entry");
        let mut chain = Chain::genesis();
        chain.accept(&e1).expect("first");
        let before = chain;
        let cases = [
            (records(3, 1, 1, e1.entry_hash, 1), "index gap"),
            (records(2, 1, 1, 12345, 1), "another predecessor"),
            (records(2, 1, 2, e1.entry_hash, 1), "seq gap"),
            (records(2, 2, 1, e1.entry_hash, 1), "records of an epoch never started"),
            (epoch_start(2, 1, 1, e1.entry_hash), "an epoch start that does not raise"),
        ];
        for (bytes, what) in cases {
            let entry = Entry::decode(&bytes).expect("entry");
            assert!(chain.accept(&entry).is_err(), "{what} was accepted");
            assert_eq!(chain, before, "a refused entry changes nothing ({what})");
        }
        let orphan = records(1, 1, 1, 0, 1);
        let orphan = Entry::decode(&orphan).expect("entry");
        assert!(Chain::genesis().accept(&orphan).is_err(), "a log must begin with an epoch start");
    }
}
