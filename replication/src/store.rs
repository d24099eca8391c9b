//! The ledger's records in etcd, as replication uses them: the head, the entries, the epoch
//! and leader keys, the replica records, the lease and the watch. The only module that talks
//! to the `etcd` crate; everything above it speaks in heads, entries and claims.
//!
//! **Boundary:** every error is either [`StoreError::Unknown`] (no answer: a write may or may
//! not have been applied, the caller resolves it) or [`StoreError::Failed`] (etcd refused).

use etcd::{Client, Cmp, Compare, Op, OpResponse, Range, Txn};

use crate::entry::Head;
use crate::keys::Keys;

/// Why a store operation failed.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// No answer in time, or the member went away: a write's outcome is unknown.
    Unknown(String),
    /// etcd answered with an error (or holds something this build cannot read).
    Failed(String),
}

impl StoreError {
    /// What went wrong, in words.
    pub fn message(&self) -> &str {
        match self {
            StoreError::Unknown(message) | StoreError::Failed(message) => message,
        }
    }
}

impl From<etcd::Error> for StoreError {
    fn from(error: etcd::Error) -> StoreError {
        if error.is_outcome_unknown() {
            StoreError::Unknown(error.to_string())
        } else {
            StoreError::Failed(error.to_string())
        }
    }
}

/// How a fenced append went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Appended {
    /// The entry and the new head are committed.
    Committed,
    /// A compare failed: the head moved or the leader key is not ours. Nothing was written.
    Refused {
        /// The head found instead.
        head: Option<Head>,
    },
}

/// A won claim: this node's epoch and the create revision of its leader key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub epoch: u64,
    pub revision: i64,
}

/// The primary's leader record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// Its epoch.
    pub epoch: u64,
    /// Its node id.
    pub node: String,
    /// Where its clients connect.
    pub addr: String,
}

/// A replica's own record (REPLICATION.md, *Leader and replica records*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRecord {
    /// Its node id.
    pub node: String,
    /// 1 standby, 2 primary.
    pub role: u8,
    /// The last entry it applied or appended.
    pub index: u64,
    /// That entry's last seq.
    pub seq: u64,
    /// Where its clients connect.
    pub addr: String,
}

impl ReplicaRecord {
    fn encode(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(32 + self.node.len() + self.addr.len());
        push_short(&mut value, self.node.as_bytes());
        value.push(self.role);
        value.extend_from_slice(&self.index.to_le_bytes());
        value.extend_from_slice(&self.seq.to_le_bytes());
        push_u16_len(&mut value, self.addr.as_bytes());
        value
    }

    fn decode(bytes: &[u8]) -> Option<ReplicaRecord> {
        let (&node_len, rest) = bytes.split_first()?;
        let (node, rest) = rest.split_at_checked(node_len as usize)?;
        let (&role, rest) = rest.split_first()?;
        let (index, rest) = rest.split_first_chunk::<8>()?;
        let (seq, rest) = rest.split_first_chunk::<8>()?;
        let (addr_len, rest) = rest.split_first_chunk::<2>()?;
        let (addr, rest) = rest.split_at_checked(u16::from_le_bytes(*addr_len) as usize)?;
        if !rest.is_empty() || !(1..=2).contains(&role) {
            return None;
        }
        Some(ReplicaRecord {
            node: String::from_utf8(node.to_vec()).ok()?,
            role,
            index: u64::from_le_bytes(*index),
            seq: u64::from_le_bytes(*seq),
            addr: String::from_utf8(addr.to_vec()).ok()?,
        })
    }
}

impl Leader {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.node.len() + self.addr.len());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        push_short(&mut out, self.node.as_bytes());
        push_u16_len(&mut out, self.addr.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Leader> {
        let (epoch, rest) = bytes.split_first_chunk::<8>()?;
        let (&node_len, rest) = rest.split_first()?;
        let (node, rest) = rest.split_at_checked(node_len as usize)?;
        let (addr_len, rest) = rest.split_first_chunk::<2>()?;
        let (addr, rest) = rest.split_at_checked(u16::from_le_bytes(*addr_len) as usize)?;
        if !rest.is_empty() {
            return None;
        }
        Some(Leader {
            epoch: u64::from_le_bytes(*epoch),
            node: String::from_utf8(node.to_vec()).ok()?,
            addr: String::from_utf8(addr.to_vec()).ok()?,
        })
    }
}

/// The epoch key's value: a little-endian `u64`.
fn epoch_of(value: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| {
        StoreError::Failed(format!("the epoch key holds {} bytes, not 8", value.len()))
    })?;
    Ok(u64::from_le_bytes(bytes))
}

fn push_short(out: &mut Vec<u8>, bytes: &[u8]) {
    // Node ids are checked to 64 bytes where they are configured.
    out.push(bytes.len().min(255) as u8);
    out.extend_from_slice(&bytes[..bytes.len().min(255)]);
}

fn push_u16_len(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len().min(u16::MAX as usize);
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&bytes[..len]);
}

/// The ledger's engine settings, fixed at its genesis (REPLICATION.md, *Genesis*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Genesis {
    /// The engine's `hash_seed`.
    pub hash_seed: u64,
    /// The engine's `tx_retained`.
    pub tx_retained: u32,
}

impl Genesis {
    /// Its 16 bytes: `u64` hash_seed, `u32` tx_retained, 4 reserved zero bytes.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.hash_seed.to_le_bytes());
        out[8..12].copy_from_slice(&self.tx_retained.to_le_bytes());
        out
    }

    /// Decodes exactly what [`Genesis::encode`] produces.
    pub fn decode(bytes: &[u8]) -> Option<Genesis> {
        let bytes: &[u8; 16] = bytes.try_into().ok()?;
        if bytes[12..] != [0; 4] {
            return None;
        }
        let (seed, rest) = bytes.split_first_chunk::<8>()?;
        let (retained, _) = rest.split_first_chunk::<4>()?;
        Some(Genesis {
            hash_seed: u64::from_le_bytes(*seed),
            tx_retained: u32::from_le_bytes(*retained),
        })
    }
}

/// One page of entries.
pub(crate) struct Page {
    /// `(index, value)` in index order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// More entries follow.
    pub more: bool,
    /// The revision the page was read at.
    pub revision: i64,
}

/// What a watch saw.
pub(crate) enum Change {
    /// A new entry.
    Entry { index: u64, value: Vec<u8> },
    /// A (new) leader record.
    Leader(Leader),
    /// The leader key is gone (its lease expired or was revoked).
    LeaderGone,
}

/// A batch of changes and the revision they reach.
pub(crate) struct Changes {
    pub changes: Vec<Change>,
    pub revision: i64,
}

/// A watch on the ledger's keys.
pub(crate) struct Watch {
    watch: etcd::Watch,
    keys: Keys,
}

impl Watch {
    /// The next batch, waiting at most `timeout_ms`; `Ok(None)` when nothing came.
    pub(crate) fn next(&mut self, timeout_ms: u64) -> Result<Option<Changes>, StoreError> {
        let Some(batch) = self.watch.recv_timeout(timeout_ms)? else {
            return Ok(None);
        };
        let leader_key = self.keys.leader();
        let mut changes = Vec::new();
        let mut revision = batch.revision;
        for event in batch.events {
            revision = revision.max(event.kv.mod_revision);
            if event.kv.key == leader_key {
                match event.kind {
                    etcd::EventKind::Delete => changes.push(Change::LeaderGone),
                    etcd::EventKind::Put => {
                        if let Some(leader) = Leader::decode(&event.kv.value) {
                            changes.push(Change::Leader(leader));
                        }
                    }
                }
            } else if event.kind == etcd::EventKind::Put {
                if let Some(index) = self.keys.index_of(&event.kv.key) {
                    changes.push(Change::Entry { index, value: event.kv.value });
                }
            }
        }
        Ok(Some(Changes { changes, revision }))
    }
}

/// The ledger's records in one etcd cluster.
pub struct Store {
    client: Client,
    keys: Keys,
}

impl Store {
    /// Connects to the cluster at `endpoints` for the ledger whose keys are `keys`.
    pub fn connect(
        endpoints: &[String],
        keys: Keys,
        request_timeout_ms: u64,
    ) -> Result<Store, StoreError> {
        let client = Client::connect(endpoints, request_timeout_ms, request_timeout_ms)?;
        Ok(Store { client, keys })
    }

    /// The log head (a linearizable read).
    pub fn head(&self) -> Result<Option<Head>, StoreError> {
        match self.client.get(&self.keys.head())? {
            None => Ok(None),
            Some(kv) => Head::decode(&kv.value)
                .map(Some)
                .map_err(|error| StoreError::Failed(format!("the log head: {error}"))),
        }
    }

    /// Up to `limit` entries from `from_index` on.
    pub(crate) fn entries(&self, from_index: u64, limit: i64) -> Result<Page, StoreError> {
        let (_, end) = self.keys.entries();
        let range = Range::between(self.keys.entry(from_index), end).limit(limit);
        let result = self.client.range_with(range)?;
        let mut entries = Vec::with_capacity(result.kvs.len());
        for kv in result.kvs {
            let index = self.keys.index_of(&kv.key).ok_or_else(|| {
                StoreError::Failed(format!("a key in the log range is not an entry: {:?}", kv.key))
            })?;
            entries.push((index, kv.value));
        }
        Ok(Page { entries, more: result.more, revision: result.header.revision })
    }

    /// The fenced append of REPLICATION.md, *Appending*: `entry` becomes entry `new.index`
    /// and `new` the head, iff the head is still `prev` (absent for the first entry) and the
    /// leader key is still the one created at `claim_revision`.
    pub(crate) fn append(
        &self,
        entry: &[u8],
        prev: Option<&Head>,
        new: &Head,
        claim_revision: i64,
        genesis: Option<Genesis>,
    ) -> Result<Appended, StoreError> {
        let head_key = self.keys.head();
        let head_is_prev = match prev {
            Some(prev) => Compare::value(head_key.clone(), Cmp::Equal, prev.encode().to_vec()),
            None => Compare::version(head_key.clone(), Cmp::Equal, 0),
        };
        let txn = Txn::new()
            .when(head_is_prev)
            .when(Compare::create_revision(self.keys.leader(), Cmp::Equal, claim_revision))
            .then(Op::put(self.keys.entry(new.index), entry.to_vec(), 0))
            .then(Op::put(head_key.clone(), new.encode().to_vec(), 0))
            .otherwise(Op::get(head_key));
        // An entry with a checkpoint is the newest one: the trim keeps it, a state transfer
        // starts there (REPLICATION.md, *State transfer*).
        let txn = if crate::entry::flags_checkpoint(entry) {
            txn.then(Op::put(self.keys.checkpoint(), new.index.to_le_bytes().to_vec(), 0))
        } else {
            txn
        };
        let txn = match genesis {
            Some(genesis) => txn
                .when(Compare::version(self.keys.genesis(), Cmp::Equal, 0))
                .then(Op::put(self.keys.genesis(), genesis.encode().to_vec(), 0)),
            None => txn,
        };
        let result = self.client.txn(txn)?;
        if result.succeeded {
            return Ok(Appended::Committed);
        }
        let head = match result.responses.first() {
            Some(OpResponse::Range { kvs, .. }) => match kvs.first() {
                Some(kv) => Some(
                    Head::decode(&kv.value)
                        .map_err(|error| StoreError::Failed(format!("the log head: {error}")))?,
                ),
                None => None,
            },
            _ => {
                return Err(StoreError::Failed("a refused append answered without the head".into()))
            }
        };
        Ok(Appended::Refused { head })
    }

    /// Claims the leadership with `lease_id` if nobody holds it (REPLICATION.md, *Electing a
    /// primary*, step 2). `Ok(None)`: somebody else holds or just won it.
    pub(crate) fn claim(
        &self,
        node: &str,
        addr: &str,
        lease_id: i64,
    ) -> Result<Option<Claim>, StoreError> {
        let epoch_key = self.keys.epoch();
        let (epoch, epoch_unchanged) = match self.client.get(&epoch_key)? {
            None => (0, Compare::version(epoch_key.clone(), Cmp::Equal, 0)),
            Some(kv) => {
                let seen = Compare::mod_revision(epoch_key.clone(), Cmp::Equal, kv.mod_revision);
                (epoch_of(&kv.value)?, seen)
            }
        };
        let epoch = epoch + 1;
        let leader = Leader { epoch, node: node.to_owned(), addr: addr.to_owned() };
        let txn = Txn::new()
            .when(Compare::create_revision(self.keys.leader(), Cmp::Equal, 0))
            .when(epoch_unchanged)
            .then(Op::put(epoch_key, epoch.to_le_bytes().to_vec(), 0))
            .then(Op::put(self.keys.leader(), leader.encode(), lease_id));
        let result = self.client.txn(txn)?;
        if !result.succeeded {
            return Ok(None);
        }
        Ok(Some(Claim { epoch, revision: result.header.revision }))
    }

    /// Gives a claim up (its leader key goes, if it is still ours).
    pub(crate) fn resign(&self, claim: &Claim) -> Result<(), StoreError> {
        let txn = Txn::new()
            .when(Compare::create_revision(self.keys.leader(), Cmp::Equal, claim.revision))
            .then(Op::delete(self.keys.leader()));
        self.client.txn(txn)?;
        Ok(())
    }

    /// The index of the newest entry that carries a checkpoint (`None`: none was appended
    /// since the key exists).
    pub fn checkpoint(&self) -> Result<Option<u64>, StoreError> {
        match self.client.get(&self.keys.checkpoint())? {
            None => Ok(None),
            Some(kv) => epoch_of(&kv.value).map(Some).map_err(|_| {
                StoreError::Failed(format!(
                    "the checkpoint key holds {} bytes, not 8",
                    kv.value.len()
                ))
            }),
        }
    }

    /// The ledger's genesis settings, once its first entry exists.
    pub fn genesis(&self) -> Result<Option<Genesis>, StoreError> {
        match self.client.get(&self.keys.genesis())? {
            None => Ok(None),
            Some(kv) => Genesis::decode(&kv.value).map(Some).ok_or_else(|| {
                StoreError::Failed(format!(
                    "the genesis key holds {} bytes of no known form",
                    kv.value.len()
                ))
            }),
        }
    }

    /// The leader record, if there is a leader.
    pub fn leader(&self) -> Result<Option<Leader>, StoreError> {
        Ok(self.client.get(&self.keys.leader())?.and_then(|kv| Leader::decode(&kv.value)))
    }

    pub(crate) fn grant_lease(&self, ttl_s: i64) -> Result<i64, StoreError> {
        Ok(self.client.lease_grant(ttl_s)?.id)
    }

    /// Renews the lease: `Ok(false)` if it is gone.
    pub(crate) fn keep_alive(&self, lease_id: i64) -> Result<bool, StoreError> {
        match self.client.lease_keep_alive(lease_id) {
            Ok(ttl_s) => Ok(ttl_s > 0),
            Err(etcd::Error::LeaseNotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    pub(crate) fn revoke_lease(&self, lease_id: i64) -> Result<(), StoreError> {
        Ok(self.client.lease_revoke(lease_id)?)
    }

    /// Watches every key of the ledger from `revision` on.
    pub(crate) fn watch(&self, revision: i64) -> Result<Watch, StoreError> {
        let prefix = self.keys.prefix().as_bytes().to_vec();
        let end = etcd::prefix_end(&prefix);
        let watch = self.client.watch(&prefix, &end, revision)?;
        Ok(Watch { watch, keys: self.keys.clone() })
    }

    /// This replica's record (REPLICATION.md, *Leader and replica records*), with its lease.
    pub(crate) fn put_replica(
        &self,
        record: &ReplicaRecord,
        lease_id: i64,
    ) -> Result<(), StoreError> {
        self.client.put(&self.keys.replica(&record.node), &record.encode(), lease_id)?;
        Ok(())
    }

    /// Every replica record there is (those of live replicas: each is attached to its lease),
    /// and records this build cannot read, by key.
    pub fn replicas(&self) -> Result<(Vec<ReplicaRecord>, Vec<String>), StoreError> {
        let (start, end) = self.keys.replicas();
        let result = self.client.range(&start, &end, 0)?;
        let mut records = Vec::new();
        let mut unreadable = Vec::new();
        for kv in result.kvs {
            match ReplicaRecord::decode(&kv.value) {
                Some(record) => records.push(record),
                None => unreadable.push(String::from_utf8_lossy(&kv.key).into_owned()),
            }
        }
        Ok((records, unreadable))
    }

    /// Sets `node`'s trimming floor (REPLICATION.md, *Trimming*): the primary deletes no entry
    /// at or after `index`.
    pub(crate) fn put_floor(&self, node: &str, index: u64) -> Result<(), StoreError> {
        self.client.put(&self.keys.floor(node), &index.to_le_bytes(), 0)?;
        Ok(())
    }

    /// Every node's trimming floor, by node id, and the revision they were read at; a value
    /// that is not 8 bytes is refused.
    pub fn floors(&self) -> Result<(Vec<(String, u64)>, i64), StoreError> {
        self.indexes(self.keys.floors(), "trimming floor")
    }

    /// Sets `node`'s transfer hold (REPLICATION.md, *Trimming*).
    pub(crate) fn put_hold(&self, node: &str, index: u64) -> Result<(), StoreError> {
        self.client.put(&self.keys.hold(node), &index.to_le_bytes(), 0)?;
        Ok(())
    }

    /// Removes `node`'s transfer hold, if any.
    pub(crate) fn delete_hold(&self, node: &str) -> Result<(), StoreError> {
        let key = self.keys.hold(node);
        let mut end = key.clone();
        end.push(0);
        self.client.delete_range(&key, &end)?;
        Ok(())
    }

    /// Every node's transfer hold, by node id.
    pub fn holds(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self.indexes(self.keys.holds(), "transfer hold")?.0)
    }

    /// The `u64` values under a range of per-node keys, by node id, and the revision read at.
    fn indexes(
        &self,
        (start, end): (Vec<u8>, Vec<u8>),
        what: &str,
    ) -> Result<(Vec<(String, u64)>, i64), StoreError> {
        let result = self.client.range(&start, &end, 0)?;
        let mut values = Vec::with_capacity(result.kvs.len());
        for kv in result.kvs {
            let node = String::from_utf8_lossy(&kv.key[start.len()..]).into_owned();
            let index: [u8; 8] =
                kv.value.as_slice().try_into().map_err(|_| {
                    StoreError::Failed(format!("the {what} of {node} is not 8 bytes"))
                })?;
            values.push((node, u64::from_le_bytes(index)));
        }
        Ok((values, result.header.revision))
    }

    /// The oldest entry's index the log still holds (`None`: no entry).
    pub fn oldest_index(&self) -> Result<Option<u64>, StoreError> {
        let (start, end) = self.keys.entries();
        let result = self.client.range_with(Range::between(start, end).limit(1).keys_only())?;
        Ok(result.kvs.first().and_then(|kv| self.keys.index_of(&kv.key)))
    }

    /// Deletes every entry before `index`; the revision of the deletion.
    pub(crate) fn trim_below(&self, index: u64) -> Result<i64, StoreError> {
        let (start, _) = self.keys.entries();
        let (_, header) = self.client.delete_range(&start, &self.keys.entry(index))?;
        Ok(header.revision)
    }

    /// Compacts etcd's history up to `revision` (older versions of every key go).
    pub(crate) fn compact(&self, revision: i64) -> Result<(), StoreError> {
        self.client.compact(revision, false)?;
        Ok(())
    }

    /// The highest epoch claimed (0: none yet).
    pub fn epoch(&self) -> Result<u64, StoreError> {
        match self.client.get(&self.keys.epoch())? {
            None => Ok(0),
            Some(kv) => epoch_of(&kv.value),
        }
    }

    /// The etcd client underneath (for member status).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_records_round_trip_and_refuse_trailing_bytes() {
        let leader = Leader { epoch: 9, node: "b".into(), addr: "127.0.0.1:7070".into() };
        let mut bytes = leader.encode();
        assert_eq!(Leader::decode(&bytes), Some(leader));
        bytes.push(0);
        assert_eq!(Leader::decode(&bytes), None);
        assert_eq!(Leader::decode(&bytes[..5]), None);
    }

    #[test]
    fn replica_records_round_trip_and_refuse_bad_roles() {
        let record =
            ReplicaRecord { node: "c".into(), role: 1, index: 7, seq: 99, addr: "h:1".into() };
        let bytes = record.encode();
        assert_eq!(ReplicaRecord::decode(&bytes), Some(record.clone()));
        let mut bad = bytes.clone();
        bad[2] = 9;
        assert_eq!(ReplicaRecord::decode(&bad), None);
        assert_eq!(ReplicaRecord::decode(&bytes[..bytes.len() - 1]), None);
    }
}
