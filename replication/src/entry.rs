//! The replicated log's entry and head formats (REPLICATION.md, *Entry* and *Head*).
//!
//! An entry is one key's value in etcd: an 88-byte header, then a body. A `Records` entry's
//! body is the records of (part of) one writer round, exactly the bytes the primary's local
//! journal stores, each behind its length; an `EpochStart` entry's body names the node that
//! opened the epoch. Every entry carries the hash of the entry before it, so the log is a hash
//! chain: a gap, a reordering, a torn value or two histories are all visible to a reader.
//!
//! **Invariant:** decoding never panics and accepts exactly what encoding produces (one valid
//! encoding per entry: reserved bits zero, lengths exact, the hash over every byte).

use thiserror::Error;
use xxhash_rust::xxh3::Xxh3;

/// `b"LREN"`: a ledger replication entry.
pub const ENTRY_MAGIC: [u8; 4] = *b"LREN";
/// The entry format's version.
pub const ENTRY_VERSION: u16 = 1;
/// The header's length.
pub const ENTRY_HEADER_LEN_BYTES: usize = 88;
/// The largest body: 1 MiB, so that an entry, its key and the new head fit one etcd request
/// (etcd refuses requests above 1.5 MiB by default).
pub const ENTRY_BODY_LEN_BYTES_MAX: usize = 1 << 20;
/// The largest record in a `Records` entry (a command encodes in at most 256 bytes).
pub const RECORD_LEN_BYTES_MAX: usize = 1 << 16;
/// The longest node id an `EpochStart` entry names.
pub const NODE_ID_LEN_BYTES_MAX: usize = 64;
/// Flag bit 0: the entry carries a `state_hash` checkpoint.
const FLAG_CHECKPOINT: u8 = 1;

/// `b"LRHD"`: the log head.
pub const HEAD_MAGIC: [u8; 4] = *b"LRHD";
/// The head format's version.
pub const HEAD_VERSION: u16 = 1;
/// The head's length.
pub const HEAD_LEN_BYTES: usize = 48;

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Records of one writer round, in seq order.
    Records,
    /// A new primary's first entry: its epoch starts here; no records.
    EpochStart,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::Records => 1,
            EntryKind::EpochStart => 2,
        }
    }
}

/// Why bytes are not an entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryError {
    /// Fewer bytes than the header.
    #[error("entry of {len_bytes} bytes is shorter than its {ENTRY_HEADER_LEN_BYTES}-byte header")]
    Short {
        /// The value's length.
        len_bytes: usize,
    },
    /// Not an entry at all.
    #[error("entry magic is {found:02x?}, not \"LREN\"")]
    Magic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Written by a later format.
    #[error(
        "entry format version {found} is not supported (this build reads version {ENTRY_VERSION})"
    )]
    Version {
        /// The version found.
        found: u16,
    },
    /// A header field out of its range.
    #[error("entry header: {0}")]
    Header(&'static str),
    /// The body's length is not what the header says.
    #[error("entry body is {actual} bytes, its header says {declared}")]
    BodyLen {
        /// `body_len_bytes` in the header.
        declared: u32,
        /// What follows the header.
        actual: usize,
    },
    /// The body does not parse as the header says.
    #[error("entry body: {0}")]
    Body(&'static str),
    /// The hash over the entry does not match: the value is damaged.
    #[error("entry {index} hash mismatch: stored {stored:032x}, computed {computed:032x}")]
    Hash {
        /// The entry's index as its header says.
        index: u64,
        /// The hash stored in the header.
        stored: u128,
        /// The hash of the bytes.
        computed: u128,
    },
}

/// A decoded entry, borrowing its body from the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// What it holds.
    pub kind: EntryKind,
    /// Its position in the log: 1 for a ledger's first entry, then consecutive.
    pub index: u64,
    /// The epoch of the primary that wrote it.
    pub epoch: u64,
    /// `Records`: its first record's seq; `EpochStart`: the first seq the epoch will write.
    pub first_seq: u64,
    /// Records in the body (0 for `EpochStart`).
    pub record_count: u32,
    /// The previous entry's `entry_hash` (0 before the first entry).
    pub prev_hash: u128,
    /// The engine's `state_hash` after [`Entry::last_seq`], when the entry carries one
    /// (`EpochStart` always does: the new primary's state it starts from).
    pub state_hash: Option<u128>,
    /// XXH3-128 of the header's first 72 bytes and the body: the chain link.
    pub entry_hash: u128,
    body: &'a [u8],
}

/// What [`encode_records`] and [`encode_epoch_start`] need besides the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// The entry's index.
    pub index: u64,
    /// The writer's epoch.
    pub epoch: u64,
    /// See [`Entry::first_seq`].
    pub first_seq: u64,
    /// The previous entry's hash.
    pub prev_hash: u128,
    /// The checkpoint to carry, if any.
    pub state_hash: Option<u128>,
}

impl<'a> Entry<'a> {
    /// Decodes and verifies one entry (see the module's invariant).
    pub fn decode(bytes: &'a [u8]) -> Result<Entry<'a>, EntryError> {
        let Some((header, body)) = bytes.split_first_chunk::<ENTRY_HEADER_LEN_BYTES>() else {
            return Err(EntryError::Short { len_bytes: bytes.len() });
        };
        let field = Fields(header);
        let magic = field.array4(0);
        if magic != ENTRY_MAGIC {
            return Err(EntryError::Magic { found: magic });
        }
        let version = field.u16(4);
        if version != ENTRY_VERSION {
            return Err(EntryError::Version { found: version });
        }
        let kind = match header[6] {
            1 => EntryKind::Records,
            2 => EntryKind::EpochStart,
            _ => return Err(EntryError::Header("unknown kind")),
        };
        let flags = header[7];
        if flags & !FLAG_CHECKPOINT != 0 {
            return Err(EntryError::Header("reserved flag bits set"));
        }
        let index = field.u64(8);
        let epoch = field.u64(16);
        let first_seq = field.u64(24);
        let record_count = field.u32(32);
        let body_len = field.u32(36);
        let prev_hash = field.u128(40);
        let stored_state_hash = field.u128(56);
        let entry_hash = field.u128(72);
        if index == 0 {
            return Err(EntryError::Header("index 0 (entries count from 1)"));
        }
        if epoch == 0 {
            return Err(EntryError::Header("epoch 0 (epochs count from 1)"));
        }
        if first_seq == 0 {
            return Err(EntryError::Header("first_seq 0 (sequence numbers count from 1)"));
        }
        if index == 1 && prev_hash != 0 {
            return Err(EntryError::Header("the first entry's prev_hash is not 0"));
        }
        if body_len as usize != body.len() {
            return Err(EntryError::BodyLen { declared: body_len, actual: body.len() });
        }
        if body.len() > ENTRY_BODY_LEN_BYTES_MAX {
            return Err(EntryError::Header("body longer than ENTRY_BODY_LEN_BYTES_MAX"));
        }
        let state_hash = if flags & FLAG_CHECKPOINT != 0 {
            Some(stored_state_hash)
        } else if stored_state_hash != 0 {
            return Err(EntryError::Header("state_hash set without the checkpoint flag"));
        } else {
            None
        };
        match kind {
            EntryKind::Records => {
                if record_count == 0 {
                    return Err(EntryError::Header("a records entry without records"));
                }
                if first_seq.checked_add(u64::from(record_count)).is_none() {
                    return Err(EntryError::Header("first_seq + record_count overflows"));
                }
                let mut records = Records { rest: body };
                let mut counted = 0u32;
                // Bounded: each step consumes at least 5 bytes of the body.
                while let Some(record) = records.next_checked()? {
                    debug_assert!(!record.is_empty());
                    counted = counted.checked_add(1).ok_or(EntryError::Body("too many records"))?;
                }
                if counted != record_count {
                    return Err(EntryError::Body("record count differs from the header's"));
                }
            }
            EntryKind::EpochStart => {
                if record_count != 0 {
                    return Err(EntryError::Header("an epoch start with records"));
                }
                if state_hash.is_none() {
                    return Err(EntryError::Header("an epoch start without its checkpoint"));
                }
                node_id_of(body)?;
            }
        }
        let computed = hash_entry(&header[..72], body);
        if computed != entry_hash {
            return Err(EntryError::Hash { index, stored: entry_hash, computed });
        }
        Ok(Entry {
            kind,
            index,
            epoch,
            first_seq,
            record_count,
            prev_hash,
            state_hash,
            entry_hash,
            body,
        })
    }

    /// The last seq the entry holds (`first_seq - 1` for an `EpochStart`: it holds none).
    pub fn last_seq(&self) -> u64 {
        // No overflow: decode checked first_seq >= 1 and first_seq + record_count.
        self.first_seq + u64::from(self.record_count) - 1
    }

    /// The records' payloads, in seq order (none for an `EpochStart`).
    pub fn records(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let body = if self.kind == EntryKind::Records { self.body } else { &[] };
        let mut records = Records { rest: body };
        std::iter::from_fn(move || records.next_checked().ok().flatten())
    }

    /// The records exactly as the body holds them: each payload behind its `u32` length.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The node that opened the epoch (`EpochStart` only).
    pub fn node_id(&self) -> Option<&'a str> {
        match self.kind {
            EntryKind::EpochStart => node_id_of(self.body).ok(),
            EntryKind::Records => None,
        }
    }

    /// The head that points at this entry.
    pub fn head(&self) -> Head {
        Head {
            index: self.index,
            epoch: self.epoch,
            last_seq: self.last_seq(),
            entry_hash: self.entry_hash,
        }
    }
}

/// Appends a `Records` entry holding `record_count` records to `out` (`body`: each payload
/// behind its `u32` little-endian length, as [`Entry::body`] gives them back) and returns its
/// head. Panics if the body does not hold exactly `record_count` records within the bounds:
/// the caller builds it, so that is a bug, never input.
pub fn encode_records(out: &mut Vec<u8>, meta: EntryMeta, record_count: u32, body: &[u8]) -> Head {
    assert!(record_count >= 1, "a records entry holds at least one record");
    assert!(body.len() <= ENTRY_BODY_LEN_BYTES_MAX, "the body fits an entry");
    let counted = Records { rest: body }.count_checked();
    assert_eq!(counted, Ok(record_count), "the body holds exactly record_count records");
    encode(out, EntryKind::Records, meta, record_count, body)
}

/// Appends an `EpochStart` entry to `out` and returns its head: the epoch `meta.epoch` starts
/// at `meta.first_seq`, from the state whose hash is `meta.state_hash` (required), opened by
/// `node_id` (1 to 64 bytes).
pub fn encode_epoch_start(out: &mut Vec<u8>, meta: EntryMeta, node_id: &str) -> Head {
    assert!(meta.state_hash.is_some(), "an epoch start carries its checkpoint");
    assert!(
        (1..=NODE_ID_LEN_BYTES_MAX).contains(&node_id.len()),
        "node ids are 1 to 64 bytes (checked where they are configured)"
    );
    let mut body = Vec::with_capacity(1 + node_id.len());
    body.push(node_id.len() as u8);
    body.extend_from_slice(node_id.as_bytes());
    encode(out, EntryKind::EpochStart, meta, 0, &body)
}

fn encode(out: &mut Vec<u8>, kind: EntryKind, meta: EntryMeta, count: u32, body: &[u8]) -> Head {
    assert!(meta.index >= 1 && meta.epoch >= 1 && meta.first_seq >= 1, "counted from 1");
    assert!(meta.index > 1 || meta.prev_hash == 0, "the first entry has no predecessor");
    let start = out.len();
    out.extend_from_slice(&ENTRY_MAGIC);
    out.extend_from_slice(&ENTRY_VERSION.to_le_bytes());
    out.push(kind.code());
    out.push(if meta.state_hash.is_some() { FLAG_CHECKPOINT } else { 0 });
    out.extend_from_slice(&meta.index.to_le_bytes());
    out.extend_from_slice(&meta.epoch.to_le_bytes());
    out.extend_from_slice(&meta.first_seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    // The length fits: callers bound the body by ENTRY_BODY_LEN_BYTES_MAX.
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta.prev_hash.to_le_bytes());
    out.extend_from_slice(&meta.state_hash.unwrap_or(0).to_le_bytes());
    let entry_hash = hash_entry(&out[start..start + 72], body);
    out.extend_from_slice(&entry_hash.to_le_bytes());
    out.extend_from_slice(body);
    debug_assert_eq!(out.len() - start, ENTRY_HEADER_LEN_BYTES + body.len());
    let last_seq = meta.first_seq + u64::from(count) - 1;
    Head { index: meta.index, epoch: meta.epoch, last_seq, entry_hash }
}

/// XXH3-128 (seed 0) of the header's first 72 bytes followed by the body.
fn hash_entry(header_72: &[u8], body: &[u8]) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(header_72);
    hasher.update(body);
    hasher.digest128()
}

fn node_id_of(body: &[u8]) -> Result<&str, EntryError> {
    let Some((&len, id)) = body.split_first() else {
        return Err(EntryError::Body("an epoch start without its node id"));
    };
    if len == 0 || len as usize > NODE_ID_LEN_BYTES_MAX || id.len() != len as usize {
        return Err(EntryError::Body("node id length"));
    }
    std::str::from_utf8(id).map_err(|_| EntryError::Body("node id is not UTF-8"))
}

/// The records of a body, each behind its length.
struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Records<'a> {
    fn next_checked(&mut self) -> Result<Option<&'a [u8]>, EntryError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let Some((len, rest)) = self.rest.split_first_chunk::<4>() else {
            return Err(EntryError::Body("a record length is cut off"));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len == 0 || len > RECORD_LEN_BYTES_MAX {
            return Err(EntryError::Body("a record length is 0 or above RECORD_LEN_BYTES_MAX"));
        }
        if rest.len() < len {
            return Err(EntryError::Body("a record is cut off"));
        }
        let (record, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(Some(record))
    }

    fn count_checked(mut self) -> Result<u32, EntryError> {
        let mut count = 0u32;
        while self.next_checked()?.is_some() {
            count = count.checked_add(1).ok_or(EntryError::Body("too many records"))?;
        }
        Ok(count)
    }
}

/// The log head: which entry is the newest. Every append compares it byte for byte (the
/// fence) and replaces it in the same etcd transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The newest entry's index.
    pub index: u64,
    /// Its epoch.
    pub epoch: u64,
    /// The last seq in the log (an `EpochStart`: the one before its `first_seq`).
    pub last_seq: u64,
    /// Its `entry_hash`: the next entry's `prev_hash`.
    pub entry_hash: u128,
}

/// Why bytes are not a head.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeadError {
    /// Not 48 bytes.
    #[error("head of {len_bytes} bytes, expected {HEAD_LEN_BYTES}")]
    Len {
        /// The value's length.
        len_bytes: usize,
    },
    /// Wrong magic or version, or reserved bytes set.
    #[error("head: {0}")]
    Header(&'static str),
}

impl Head {
    /// The head's 48 bytes (REPLICATION.md, *Head*).
    pub fn encode(&self) -> [u8; HEAD_LEN_BYTES] {
        let mut out = [0u8; HEAD_LEN_BYTES];
        out[0..4].copy_from_slice(&HEAD_MAGIC);
        out[4..6].copy_from_slice(&HEAD_VERSION.to_le_bytes());
        out[8..16].copy_from_slice(&self.index.to_le_bytes());
        out[16..24].copy_from_slice(&self.epoch.to_le_bytes());
        out[24..32].copy_from_slice(&self.last_seq.to_le_bytes());
        out[32..48].copy_from_slice(&self.entry_hash.to_le_bytes());
        out
    }

    /// Decodes a head (exactly what [`Head::encode`] produces).
    pub fn decode(bytes: &[u8]) -> Result<Head, HeadError> {
        let Ok(bytes) = <&[u8; HEAD_LEN_BYTES]>::try_from(bytes) else {
            return Err(HeadError::Len { len_bytes: bytes.len() });
        };
        let field = Fields(bytes);
        if field.array4(0) != HEAD_MAGIC {
            return Err(HeadError::Header("magic is not \"LRHD\""));
        }
        if field.u16(4) != HEAD_VERSION {
            return Err(HeadError::Header("unsupported version"));
        }
        if field.u16(6) != 0 {
            return Err(HeadError::Header("reserved bytes set"));
        }
        let head = Head {
            index: field.u64(8),
            epoch: field.u64(16),
            last_seq: field.u64(24),
            entry_hash: field.u128(32),
        };
        if head.index == 0 || head.epoch == 0 {
            return Err(HeadError::Header("index and epoch count from 1"));
        }
        Ok(head)
    }
}

/// Little-endian fields at fixed offsets of a buffer whose length the caller checked.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.0[at..at + N]);
        out
    }
    fn array4(&self, at: usize) -> [u8; 4] {
        self.bytes::<4>(at)
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.bytes(at))
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes(at))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.bytes(at))
    }
    fn u128(&self, at: usize) -> u128 {
        u128::from_le_bytes(self.bytes(at))
    }
}

/// Appends `payload` to a body being built: its `u32` length, then its bytes.
pub fn push_record(body: &mut Vec<u8>, payload: &[u8]) {
    assert!(
        (1..=RECORD_LEN_BYTES_MAX).contains(&payload.len()),
        "records are 1 byte to RECORD_LEN_BYTES_MAX (commands are at most 256)"
    );
    body.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    body.extend_from_slice(payload);
}

/// Whether the encoded entry `bytes` has the checkpoint flag (header byte 7, bit 0) set,
/// without decoding it (the append of an entry the stage encoded itself).
pub(crate) fn flags_checkpoint(bytes: &[u8]) -> bool {
    bytes.get(7).is_some_and(|flags| flags & FLAG_CHECKPOINT != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records_entry(index: u64, prev_hash: u128, first_seq: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        for payload in payloads {
            push_record(&mut body, payload);
        }
        let meta = EntryMeta { index, epoch: 3, first_seq, prev_hash, state_hash: None };
        let mut out = Vec::new();
        encode_records(&mut out, meta, payloads.len() as u32, &body);
        out
    }

    #[test]
    fn records_round_trip() {
        let bytes = records_entry(7, 0xabc, 100, &[b"one", b"two!", b"3"]);
        let entry = Entry::decode(&bytes).expect("decodes");
        assert_eq!(entry.kind, EntryKind::Records);
        assert_eq!((entry.index, entry.epoch, entry.first_seq, entry.last_seq()), (7, 3, 100, 102));
        assert_eq!(entry.prev_hash, 0xabc);
        assert_eq!(entry.state_hash, None);
        let records: Vec<&[u8]> = entry.records().collect();
        assert_eq!(records, vec![&b"one"[..], b"two!", b"3"]);
        assert_eq!(entry.head().last_seq, 102);
    }

    #[test]
    fn epoch_start_round_trip() {
        let meta =
            EntryMeta { index: 9, epoch: 4, first_seq: 103, prev_hash: 1, state_hash: Some(77) };
        let mut out = Vec::new();
        let head = encode_epoch_start(&mut out, meta, "node-b");
        let entry = Entry::decode(&out).expect("decodes");
        assert_eq!(entry.kind, EntryKind::EpochStart);
        assert_eq!(entry.node_id(), Some("node-b"));
        assert_eq!(entry.state_hash, Some(77));
        assert_eq!(entry.last_seq(), 102);
        assert_eq!(head, entry.head());
        assert_eq!(entry.records().count(), 0);
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let bytes = records_entry(2, 5, 1, &[b"abc", b"defg"]);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(Entry::decode(&damaged).is_err(), "bit {bit} flipped still decodes");
        }
    }

    #[test]
    fn truncated_and_extended_values_are_refused() {
        let bytes = records_entry(2, 5, 1, &[b"abc", b"defg"]);
        for len in 0..bytes.len() {
            assert!(Entry::decode(&bytes[..len]).is_err(), "cut at {len} still decodes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Entry::decode(&longer).is_err());
    }

    #[test]
    fn head_round_trip_and_refusals() {
        let head = Head { index: 5, epoch: 2, last_seq: 1000, entry_hash: u128::MAX - 3 };
        let bytes = head.encode();
        assert_eq!(Head::decode(&bytes), Ok(head));
        assert!(Head::decode(&bytes[..47]).is_err());
        let mut reserved = bytes;
        reserved[6] = 1;
        assert!(Head::decode(&reserved).is_err());
        let mut magic = bytes;
        magic[0] = b'X';
        assert!(Head::decode(&magic).is_err());
    }
}
