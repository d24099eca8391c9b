//! The replication stage: the durable point's step after the local flush on a primary. Each
//! round becomes one or more log entries, each appended with the fenced transaction of
//! REPLICATION.md, *Appending*; the round's replies are released only once every one of its
//! entries is committed in etcd.
//!
//! **Invariant:** the stage appends only while this node is the primary it was promoted to be;
//! a refused compare, a lost lease or a stopped role fails the round, and with it the runtime
//! (nothing is acknowledged any more). **Invariant:** an append whose outcome is unknown is
//! resolved by reading the head, never by assuming: committed, not committed (sent again),
//! or somebody else's (fenced).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use runtime::{DurableStage, Round};

use crate::entry::{
    encode_records, encode_records_compressed, Compressor, EntryMeta, Head,
    ENTRY_BODY_LEN_BYTES_MAX,
};
use crate::metrics::ReplicationMetrics;
use crate::role::{Role, RoleState};
use crate::store::{Appended, Store, StoreError};

/// How long the stage waits between reads of the head while an append's outcome is unknown.
const RESOLVE_RETRY: Duration = Duration::from_millis(50);

/// What the replica thread tells the stage.
pub(crate) enum Control {
    /// This node is the primary from now on, writing after `head` in `epoch`.
    Promote(Primary),
}

/// What a primary appends with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Primary {
    pub epoch: u64,
    /// The create revision of this primary's leader key: the fence.
    pub claim_revision: i64,
    /// The newest entry, written by this primary (its epoch start, at first).
    pub head: Head,
}

/// The [`DurableStage`] that appends rounds to the ledger's log in etcd.
pub struct Stage {
    store: Arc<Store>,
    role: Arc<Role>,
    metrics: Arc<ReplicationMetrics>,
    control: Receiver<Control>,
    primary: Option<Primary>,
    checkpoint_every_entries: u64,
    entries_since_checkpoint: u64,
    entry: Vec<u8>,
    /// `Some`: bodies are compressed (entry version 2); `None`: version 1, as every build reads.
    compressor: Option<Compressor>,
    /// The head of the last entry appended, not yet published to the role (and so to the
    /// position file): the round's local flush may still be running ([`DurableStage::settled`]).
    appended_head: Option<Head>,
}

impl Stage {
    pub(crate) fn new(
        store: Arc<Store>,
        role: Arc<Role>,
        metrics: Arc<ReplicationMetrics>,
        control: Receiver<Control>,
        checkpoint_every_entries: u64,
        compress_entries: bool,
    ) -> Stage {
        Stage {
            store,
            role,
            metrics,
            control,
            primary: None,
            checkpoint_every_entries: checkpoint_every_entries.max(1),
            entries_since_checkpoint: 0,
            // The header, and the worst case of a compressed body (LZ4's bound).
            entry: Vec::with_capacity(
                lz4_flex::block::get_maximum_output_size(ENTRY_BODY_LEN_BYTES_MAX) + 128,
            ),
            compressor: compress_entries.then(Compressor::default),
            appended_head: None,
        }
    }

    fn take_control(&mut self) {
        while let Ok(Control::Promote(primary)) = self.control.try_recv() {
            self.primary = Some(primary);
            self.entries_since_checkpoint = 0;
        }
    }

    /// Appends one entry holding `count` records of `body`; resolves an unknown outcome.
    fn append(
        &mut self,
        first_seq: u64,
        count: u32,
        body: &[u8],
        state_hash: Option<u128>,
    ) -> Result<(), String> {
        let primary = self.primary.as_mut().ok_or("this node is not the primary")?;
        let prev = primary.head;
        let meta = EntryMeta {
            index: prev.index + 1,
            epoch: primary.epoch,
            first_seq,
            prev_hash: prev.entry_hash,
            state_hash,
        };
        assert_eq!(first_seq, prev.last_seq + 1, "entries continue the log");
        self.entry.clear();
        let head = match self.compressor.as_mut() {
            Some(compressor) => {
                encode_records_compressed(&mut self.entry, meta, count, body, compressor)
            }
            None => encode_records(&mut self.entry, meta, count, body),
        };
        let started = Instant::now();
        // Bounded by the role: every pass either returns or waits for etcd, and a stopped
        // role (lease lost, shut down) ends it.
        loop {
            if self.role.state() != RoleState::Primary {
                return Err(format!(
                    "no longer the primary ({})",
                    self.role.failure().unwrap_or("stopped")
                ));
            }
            match self.store.append(&self.entry, Some(&prev), &head, primary.claim_revision, None) {
                Ok(Appended::Committed) => break,
                // An earlier attempt whose outcome was unknown committed meanwhile (etcd may
                // apply a timed-out proposal later): the head is exactly ours.
                Ok(Appended::Refused { head: Some(found) }) if found == head => break,
                Ok(Appended::Refused { head: found }) => {
                    let why = fenced(&prev, found.as_ref());
                    self.role.depose(why.clone());
                    return Err(why);
                }
                Err(StoreError::Unknown(error)) => {
                    match resolve(&self.store, &self.role, &prev, &head, &error)? {
                        Resolved::Committed => break,
                        Resolved::NotCommitted => continue,
                    }
                }
                Err(StoreError::Failed(error)) => {
                    let why = format!("append of entry {} refused by etcd: {error}", head.index);
                    self.role.stop(why.clone());
                    return Err(why);
                }
            }
        }
        self.metrics.record_append(started.elapsed(), self.entry.len());
        primary.head = head;
        // Published once the local flush is done too (`settled`): the position file, written
        // from the role's head, never runs ahead of this node's journal.
        self.appended_head = Some(head);
        Ok(())
    }
}

/// How an append with an unknown outcome turned out.
enum Resolved {
    Committed,
    NotCommitted,
}

fn resolve(
    store: &Store,
    role: &Role,
    prev: &Head,
    new: &Head,
    first_error: &str,
) -> Result<Resolved, String> {
    let mut last_error = first_error.to_owned();
    // Bounded by the role: a primary without etcd keeps waiting (nothing is acknowledged
    // meanwhile) until etcd answers or its lease is declared lost, which stops the role.
    loop {
        if role.state() != RoleState::Primary {
            return Err(format!(
                "no longer the primary while entry {} was in doubt ({last_error})",
                new.index
            ));
        }
        match store.head() {
            Ok(Some(head)) if head == *new => return Ok(Resolved::Committed),
            Ok(Some(head)) if head == *prev => return Ok(Resolved::NotCommitted),
            Ok(found) => {
                let why = fenced(prev, found.as_ref());
                role.depose(why.clone());
                return Err(why);
            }
            Err(StoreError::Unknown(error) | StoreError::Failed(error)) => last_error = error,
        }
        std::thread::sleep(RESOLVE_RETRY);
    }
}

fn fenced(prev: &Head, found: Option<&Head>) -> String {
    match found {
        Some(head) if head.epoch > prev.epoch => format!(
            "fenced: epoch {} (a new primary) wrote entry {} after this primary's entry {} of epoch {}",
            head.epoch, head.index, prev.index, prev.epoch
        ),
        Some(head) if *head == *prev => {
            "fenced: this node's leader key is gone (its lease expired or was revoked)".to_owned()
        }
        Some(head) => format!(
            "fenced: the log head is entry {} of epoch {}, not this primary's entry {}",
            head.index, head.epoch, prev.index
        ),
        None => "fenced: the log head is gone".to_owned(),
    }
}

impl DurableStage for Stage {
    fn name(&self) -> &str {
        "etcd log"
    }

    fn wants_payloads(&self) -> bool {
        true
    }

    fn wants_state_hash(&mut self, _first_seq: u64, _last_seq: u64) -> bool {
        self.take_control();
        self.primary.is_some() && self.entries_since_checkpoint + 1 >= self.checkpoint_every_entries
    }

    fn make_durable(
        &mut self,
        round: &Round<'_>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.take_control();
        let mut first_seq = round.first_seq;
        let mut rest = round.payloads;
        // Bounded: each pass appends at least one record of the round.
        while !rest.is_empty() {
            let (count, len) = chunk(rest);
            let (body, tail) = rest.split_at(len);
            let last = tail.is_empty();
            let state_hash = if last { round.state_hash } else { None };
            self.append(first_seq, count, body, state_hash)?;
            if state_hash.is_some() {
                self.entries_since_checkpoint = 0;
            } else {
                self.entries_since_checkpoint += 1;
            }
            first_seq += u64::from(count);
            rest = tail;
        }
        assert_eq!(first_seq, round.last_seq + 1, "every record of the round was appended");
        Ok(())
    }

    fn settled(&mut self, round: &Round<'_>) {
        let head = self.appended_head.take().expect("a settled round was appended");
        assert_eq!(head.last_seq, round.last_seq, "the round's last entry");
        self.role.set_log_head(head);
    }
}

/// The longest prefix of whole records (each behind its `u32` length) that fits one entry's
/// body: `(records, bytes)`. At least one record (a command is far below the bound).
fn chunk(payloads: &[u8]) -> (u32, usize) {
    let mut at = 0usize;
    let mut count = 0u32;
    while let Some(len) = payloads.get(at..at + 4) {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(len);
        let next = at + 4 + u32::from_le_bytes(bytes) as usize;
        assert!(next <= payloads.len(), "the writer frames every payload");
        if next > ENTRY_BODY_LEN_BYTES_MAX && count > 0 {
            break;
        }
        at = next;
        count += 1;
    }
    assert!(count > 0, "a record always fits an entry");
    (count, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::push_record;

    #[test]
    fn rounds_split_into_entries_of_whole_records_within_the_bound() {
        let mut payloads = Vec::new();
        let record = vec![7u8; 200];
        let n = ENTRY_BODY_LEN_BYTES_MAX / 204 * 2 + 3;
        for _ in 0..n {
            push_record(&mut payloads, &record);
        }
        let mut rest = &payloads[..];
        let mut total = 0;
        let mut entries = 0;
        while !rest.is_empty() {
            let (count, len) = chunk(rest);
            assert!(len <= ENTRY_BODY_LEN_BYTES_MAX);
            assert_eq!(len, count as usize * 204);
            total += count as usize;
            rest = &rest[len..];
            entries += 1;
        }
        assert_eq!((total, entries), (n, 3));
    }
}
