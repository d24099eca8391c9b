//! The replicated log's entry and head formats (REPLICATION.md, *Entry* and *Head*).
//!
//! An entry is one key's value in etcd: an 88-byte header, then a body. A `Records` entry's
//! body is the records of (part of) one writer round, exactly the bytes the primary's local
//! journal stores, each behind its length; an `EpochStart` entry's body names the node that
//! opened the epoch. Every entry carries the hash of the entry before it, so the log is a hash
//! chain: a gap, a reordering, a torn value or two histories are all visible to a reader.
//!
//! A version-2 `Records` entry may store its body compressed (LZ4 block format, flag bit 1): the
//! log in etcd, raft, the WAL, bbolt and the watches then carry ≈ 2.3× fewer bytes. The hash
//! covers the stored (compressed) bytes, so a damaged value is refused before it is
//! decompressed, and decompression is bounded by the uncompressed length the body states (at
//! most `ENTRY_BODY_LEN_BYTES_MAX`).
//!
//! **Invariant:** decoding never panics and accepts exactly what encoding produces (one valid
//! encoding per entry: reserved bits zero, lengths exact, the hash over every byte), except that
//! a compressed body is any LZ4 block that decompresses to exactly the stated bytes (LZ4 has many
//! encodings of one input; the hash pins the one stored).

use std::borrow::Cow;

use thiserror::Error;
use xxhash_rust::xxh3::Xxh3;

/// `b"LREN"`: a ledger replication entry.
pub const ENTRY_MAGIC: [u8; 4] = *b"LREN";
/// The newest entry format's version: 2, whose `Records` bodies may be compressed.
pub const ENTRY_VERSION: u16 = 2;
/// The oldest version this build reads: 1, the same header with flag bit 1 reserved (0).
pub const ENTRY_VERSION_MIN: u16 = 1;
/// What every uncompressed entry is written as (and every `EpochStart`): a replica built
/// before version 2 reads it.
pub const ENTRY_VERSION_UNCOMPRESSED: u16 = 1;
const _: () = assert!(ENTRY_VERSION_MIN <= ENTRY_VERSION_UNCOMPRESSED);
const _: () = assert!(ENTRY_VERSION_UNCOMPRESSED < ENTRY_VERSION);
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
/// Flag bit 1 (version 2, `Records` only): the body is compressed: a `u32` uncompressed length,
/// then an LZ4 block that decompresses to exactly that many bytes.
const FLAG_BODY_LZ4: u8 = 2;
/// The bytes before a compressed body's LZ4 block: its uncompressed length.
pub const COMPRESSED_PREFIX_LEN_BYTES: usize = 4;
/// The largest LZ4 block a compressed body holds: what `ENTRY_BODY_LEN_BYTES_MAX` leaves.
const LZ4_BLOCK_LEN_BYTES_MAX: usize = ENTRY_BODY_LEN_BYTES_MAX - COMPRESSED_PREFIX_LEN_BYTES;

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
        "entry format version {found} is not supported (this build reads versions \
         {ENTRY_VERSION_MIN} to {ENTRY_VERSION})"
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

/// A decoded entry, borrowing its body from the value (or owning it, decompressed).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// XXH3-128 of the header's first 72 bytes and the body as stored (compressed, if it
    /// is): the chain link.
    pub entry_hash: u128,
    /// The body's length as stored in the value (what the header's `body_len` says).
    pub stored_body_len: u32,
    /// The body uncompressed: borrowed from the value, or decompressed from it.
    body: Cow<'a, [u8]>,
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
    /// Decodes and verifies one entry (see the module's invariant). A compressed body is
    /// decompressed (into a new buffer of exactly its stated length) after the hash matched.
    pub fn decode(bytes: &'a [u8]) -> Result<Entry<'a>, EntryError> {
        let Some((header, stored)) = bytes.split_first_chunk::<ENTRY_HEADER_LEN_BYTES>() else {
            return Err(EntryError::Short { len_bytes: bytes.len() });
        };
        let field = Fields(header);
        let magic = field.array4(0);
        if magic != ENTRY_MAGIC {
            return Err(EntryError::Magic { found: magic });
        }
        let version = field.u16(4);
        if !(ENTRY_VERSION_MIN..=ENTRY_VERSION).contains(&version) {
            return Err(EntryError::Version { found: version });
        }
        let kind = match header[6] {
            1 => EntryKind::Records,
            2 => EntryKind::EpochStart,
            _ => return Err(EntryError::Header("unknown kind")),
        };
        let flags = header[7];
        let flags_known =
            if version >= 2 { FLAG_CHECKPOINT | FLAG_BODY_LZ4 } else { FLAG_CHECKPOINT };
        if flags & !flags_known != 0 {
            return Err(EntryError::Header("reserved flag bits set"));
        }
        let compressed = flags & FLAG_BODY_LZ4 != 0;
        if compressed && kind != EntryKind::Records {
            return Err(EntryError::Header("a compressed body outside a records entry"));
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
        if body_len as usize != stored.len() {
            return Err(EntryError::BodyLen { declared: body_len, actual: stored.len() });
        }
        if stored.len() > ENTRY_BODY_LEN_BYTES_MAX {
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
            }
            EntryKind::EpochStart => {
                if record_count != 0 {
                    return Err(EntryError::Header("an epoch start with records"));
                }
                if state_hash.is_none() {
                    return Err(EntryError::Header("an epoch start without its checkpoint"));
                }
            }
        }
        // The hash before the body is parsed: damaged bytes are never decompressed.
        let computed = hash_entry(&header[..72], stored);
        if computed != entry_hash {
            return Err(EntryError::Hash { index, stored: entry_hash, computed });
        }
        let body = if compressed { Cow::Owned(decompress(stored)?) } else { Cow::Borrowed(stored) };
        match kind {
            EntryKind::Records => {
                let counted = Records { rest: &body }.count_checked()?;
                if counted != record_count {
                    return Err(EntryError::Body("record count differs from the header's"));
                }
            }
            EntryKind::EpochStart => {
                node_id_of(&body)?;
            }
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
            stored_body_len: body_len,
            body,
        })
    }

    /// The last seq the entry holds (`first_seq - 1` for an `EpochStart`: it holds none).
    pub fn last_seq(&self) -> u64 {
        // No overflow: decode checked first_seq >= 1 and first_seq + record_count.
        self.first_seq + u64::from(self.record_count) - 1
    }

    /// The records' payloads, in seq order (none for an `EpochStart`).
    pub fn records(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let body: &[u8] = if self.kind == EntryKind::Records { &self.body } else { &[] };
        let mut records = Records { rest: body };
        std::iter::from_fn(move || records.next_checked().ok().flatten())
    }

    /// The records exactly as the primary's journal holds them (uncompressed): each payload
    /// behind its `u32` length.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The uncompressed body, owned: a decompressed body is moved out, a borrowed one copied.
    pub fn into_body(self) -> Vec<u8> {
        self.body.into_owned()
    }

    /// Whether the value stores the body compressed (flag bit 1).
    pub fn is_compressed(&self) -> bool {
        matches!(self.body, Cow::Owned(_))
    }

    /// The node that opened the epoch (`EpochStart` only).
    pub fn node_id(&self) -> Option<&str> {
        match self.kind {
            EntryKind::EpochStart => node_id_of(&self.body).ok(),
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
/// head: version 1, the body as it is. Panics if the body does not hold exactly
/// `record_count` records within the bounds: the caller builds it, so that is a bug, never
/// input.
pub fn encode_records(out: &mut Vec<u8>, meta: EntryMeta, record_count: u32, body: &[u8]) -> Head {
    check_records_body(record_count, body);
    let start = begin(out, ENTRY_VERSION_UNCOMPRESSED, EntryKind::Records, meta, 0, record_count);
    out.extend_from_slice(body);
    finish(out, start, meta, record_count)
}

/// As [`encode_records`], but version 2 with the body compressed (flag bit 1) by
/// `compressor`, unless compressing saves nothing: then the body is stored as it is (version 2,
/// flag bit 1 clear).
pub fn encode_records_compressed(
    out: &mut Vec<u8>,
    meta: EntryMeta,
    record_count: u32,
    body: &[u8],
    compressor: &mut Compressor,
) -> Head {
    check_records_body(record_count, body);
    let start = begin(out, ENTRY_VERSION, EntryKind::Records, meta, FLAG_BODY_LZ4, record_count);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let block_at = out.len();
    // Room for LZ4's worst case, zeroed, then cut back to what the block took (a reused `out`
    // keeps its capacity: no allocation once it has held a full entry).
    out.resize(block_at + lz4_flex::block::get_maximum_output_size(body.len()), 0);
    let block_len = lz4_flex::block::compress_into_with_table(
        body,
        &mut out[block_at..],
        &mut compressor.table,
    )
    .expect("the output has room for LZ4's worst case");
    out.truncate(block_at + block_len);
    if COMPRESSED_PREFIX_LEN_BYTES + block_len >= body.len() {
        // Compressing saves nothing: the body is stored as it is, flag bit 1 clear.
        out.truncate(start + ENTRY_HEADER_LEN_BYTES);
        out[start + 7] &= !FLAG_BODY_LZ4;
        out.extend_from_slice(body);
    }
    finish(out, start, meta, record_count)
}

/// What compressing bodies needs between entries: LZ4's hash table (16 KiB), kept so that no
/// entry allocates one.
#[derive(Default)]
pub struct Compressor {
    table: lz4_flex::block::CompressTable,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compressor")
    }
}

fn check_records_body(record_count: u32, body: &[u8]) {
    assert!(record_count >= 1, "a records entry holds at least one record");
    assert!(body.len() <= ENTRY_BODY_LEN_BYTES_MAX, "the body fits an entry");
    let counted = Records { rest: body }.count_checked();
    assert_eq!(counted, Ok(record_count), "the body holds exactly record_count records");
}

/// Decompresses a compressed body (its `u32` uncompressed length, then an LZ4 block) into a
/// new buffer of exactly that length: never more than `ENTRY_BODY_LEN_BYTES_MAX` bytes, and a
/// block that would write more, or fewer, is refused.
fn decompress(stored: &[u8]) -> Result<Vec<u8>, EntryError> {
    let Some((raw_len, block)) = stored.split_first_chunk::<COMPRESSED_PREFIX_LEN_BYTES>() else {
        return Err(EntryError::Body("a compressed body without its uncompressed length"));
    };
    let raw_len = u32::from_le_bytes(*raw_len) as usize;
    if raw_len == 0 || raw_len > ENTRY_BODY_LEN_BYTES_MAX {
        return Err(EntryError::Body(
            "a compressed body's uncompressed length is 0 or above ENTRY_BODY_LEN_BYTES_MAX",
        ));
    }
    debug_assert!(block.len() <= LZ4_BLOCK_LEN_BYTES_MAX, "the stored body was bounded");
    if block.is_empty() {
        return Err(EntryError::Body("a compressed body without its LZ4 block"));
    }
    let mut raw = vec![0u8; raw_len];
    match lz4_flex::block::decompress_into(block, &mut raw) {
        Ok(written) if written == raw_len => Ok(raw),
        Ok(_) => Err(EntryError::Body(
            "a compressed body decompresses to fewer bytes than its uncompressed length",
        )),
        Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => {
            Err(EntryError::Body("a compressed body decompresses beyond its uncompressed length"))
        }
        Err(_) => Err(EntryError::Body("a compressed body is not a valid LZ4 block")),
    }
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
    let start = out.len();
    begin(out, ENTRY_VERSION_UNCOMPRESSED, EntryKind::EpochStart, meta, 0, 0);
    out.push(node_id.len() as u8);
    out.extend_from_slice(node_id.as_bytes());
    finish(out, start, meta, 0)
}

/// Appends a header whose `body_len` and `entry_hash` are left 0 for [`finish`]; returns where
/// the entry starts in `out`.
fn begin(
    out: &mut Vec<u8>,
    version: u16,
    kind: EntryKind,
    meta: EntryMeta,
    flags: u8,
    count: u32,
) -> usize {
    assert!(meta.index >= 1 && meta.epoch >= 1 && meta.first_seq >= 1, "counted from 1");
    assert!(meta.index > 1 || meta.prev_hash == 0, "the first entry has no predecessor");
    let start = out.len();
    out.extend_from_slice(&ENTRY_MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.push(kind.code());
    out.push(flags | if meta.state_hash.is_some() { FLAG_CHECKPOINT } else { 0 });
    out.extend_from_slice(&meta.index.to_le_bytes());
    out.extend_from_slice(&meta.epoch.to_le_bytes());
    out.extend_from_slice(&meta.first_seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&meta.prev_hash.to_le_bytes());
    out.extend_from_slice(&meta.state_hash.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&0u128.to_le_bytes());
    debug_assert_eq!(out.len() - start, ENTRY_HEADER_LEN_BYTES);
    start
}

/// Fills in `body_len` and `entry_hash` of the entry at `start` in `out`, whose stored body is
/// everything after its header; returns its head.
fn finish(out: &mut [u8], start: usize, meta: EntryMeta, count: u32) -> Head {
    let (header, body) = out[start..].split_at_mut(ENTRY_HEADER_LEN_BYTES);
    assert!(body.len() <= ENTRY_BODY_LEN_BYTES_MAX, "callers bound the stored body");
    header[36..40].copy_from_slice(&(body.len() as u32).to_le_bytes());
    let entry_hash = hash_entry(&header[..72], body);
    header[72..88].copy_from_slice(&entry_hash.to_le_bytes());
    let last_seq = meta.first_seq + u64::from(count) - 1;
    Head { index: meta.index, epoch: meta.epoch, last_seq, entry_hash }
}

/// XXH3-128 (seed 0) of the header's first 72 bytes followed by the body as stored.
pub(crate) fn hash_entry(header_72: &[u8], body: &[u8]) -> u128 {
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

    /// A body of `n` transfer-like records: compressible, as the journal's records are.
    fn compressible_body(n: u32) -> Vec<u8> {
        let mut body = Vec::new();
        for i in 0..n {
            let mut payload = b"transfer acct-000000 -> acct-000000 amount 100.00 USD tx ".to_vec();
            payload.extend_from_slice(&i.to_le_bytes());
            push_record(&mut body, &payload);
        }
        body
    }

    fn compressed_entry(meta: EntryMeta, n: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_records_compressed(
            &mut out,
            meta,
            n,
            &compressible_body(n),
            &mut Compressor::default(),
        );
        out
    }

    fn meta(index: u64, prev_hash: u128) -> EntryMeta {
        EntryMeta { index, epoch: 3, first_seq: 100, prev_hash, state_hash: Some(42) }
    }

    /// Recomputes `entry_hash` (and `body_len`) after a test changed the bytes: the refusal
    /// under test must come from the body, not the hash.
    fn rehash(bytes: &mut [u8]) {
        let body_len = (bytes.len() - ENTRY_HEADER_LEN_BYTES) as u32;
        bytes[36..40].copy_from_slice(&body_len.to_le_bytes());
        let hash = hash_entry(&bytes[..72], &bytes[ENTRY_HEADER_LEN_BYTES..]);
        bytes[72..88].copy_from_slice(&hash.to_le_bytes());
    }

    /// A version-2 compressed entry whose stored body is `stored` (prefix and block).
    fn with_stored_body(stored: &[u8], count: u32) -> Vec<u8> {
        let mut bytes = compressed_entry(meta(5, 9), count);
        bytes.truncate(ENTRY_HEADER_LEN_BYTES);
        bytes.extend_from_slice(stored);
        rehash(&mut bytes);
        bytes
    }

    fn body_error(bytes: &[u8]) -> &'static str {
        match Entry::decode(bytes) {
            Err(EntryError::Body(why)) => why,
            other => panic!("expected a body refusal, got {other:?}"),
        }
    }

    #[test]
    fn compressed_round_trip() {
        let body = compressible_body(500);
        let bytes = compressed_entry(meta(7, 0xabc), 500);
        assert!(bytes.len() * 2 < body.len(), "{} bytes stored for {}", bytes.len(), body.len());
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), ENTRY_VERSION);
        assert_eq!(bytes[7], FLAG_CHECKPOINT | FLAG_BODY_LZ4);
        let raw_len = u32::from_le_bytes(bytes[88..92].try_into().expect("4 bytes"));
        assert_eq!(raw_len as usize, body.len());
        let entry = Entry::decode(&bytes).expect("decodes");
        assert!(entry.is_compressed());
        assert_eq!(entry.body(), &body[..]);
        assert_eq!(entry.records().count(), 500);
        assert_eq!((entry.first_seq, entry.last_seq(), entry.state_hash), (100, 599, Some(42)));
        assert_eq!(entry.stored_body_len as usize, bytes.len() - ENTRY_HEADER_LEN_BYTES);
        // The hash covers the stored (compressed) bytes.
        let stored_hash = hash_entry(&bytes[..72], &bytes[ENTRY_HEADER_LEN_BYTES..]);
        assert_eq!(entry.entry_hash, stored_hash);
        // Encoding is deterministic: the same input, the same bytes (and so the same hash).
        assert_eq!(compressed_entry(meta(7, 0xabc), 500), bytes);
        assert_eq!(entry.into_body(), body);
    }

    #[test]
    fn an_incompressible_body_is_stored_as_it_is_in_version_2() {
        let mut body = Vec::new();
        push_record(&mut body, &[0x5a]);
        let mut out = Vec::new();
        let head =
            encode_records_compressed(&mut out, meta(2, 1), 1, &body, &mut Compressor::default());
        assert_eq!(u16::from_le_bytes([out[4], out[5]]), ENTRY_VERSION);
        assert_eq!(out[7], FLAG_CHECKPOINT, "flag bit 1 clear");
        assert_eq!(&out[ENTRY_HEADER_LEN_BYTES..], &body[..]);
        let entry = Entry::decode(&out).expect("decodes");
        assert!(!entry.is_compressed());
        assert_eq!(entry.head(), head);
    }

    #[test]
    fn version_1_entries_still_decode_and_are_what_encode_records_writes() {
        let bytes = records_entry(7, 0xabc, 100, &[b"one", b"two!"]);
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 1);
        assert!(!Entry::decode(&bytes).expect("decodes").is_compressed());
        let meta =
            EntryMeta { index: 9, epoch: 4, first_seq: 3, prev_hash: 1, state_hash: Some(7) };
        let mut out = Vec::new();
        encode_epoch_start(&mut out, meta, "b");
        assert_eq!(u16::from_le_bytes([out[4], out[5]]), 1, "epoch starts stay version 1");
    }

    #[test]
    fn bad_flag_bits_are_refused() {
        let header = |bytes: &[u8]| match Entry::decode(bytes) {
            Err(EntryError::Header(why)) => why,
            other => panic!("expected a header refusal, got {other:?}"),
        };
        // Bit 1 in version 1 is reserved.
        let mut v1 = records_entry(2, 5, 1, &[b"abc"]);
        v1[7] |= FLAG_BODY_LZ4;
        rehash(&mut v1);
        assert_eq!(header(&v1), "reserved flag bits set");
        // Bits 2-7 in version 2.
        for bit in 2..8 {
            let mut v2 = compressed_entry(meta(5, 9), 50);
            v2[7] |= 1 << bit;
            rehash(&mut v2);
            assert_eq!(header(&v2), "reserved flag bits set");
        }
        // A compressed epoch start.
        let mut epoch = Vec::new();
        let epoch_meta =
            EntryMeta { index: 9, epoch: 4, first_seq: 3, prev_hash: 1, state_hash: Some(7) };
        encode_epoch_start(&mut epoch, epoch_meta, "b");
        epoch[4..6].copy_from_slice(&ENTRY_VERSION.to_le_bytes());
        epoch[7] |= FLAG_BODY_LZ4;
        rehash(&mut epoch);
        assert_eq!(header(&epoch), "a compressed body outside a records entry");
        // An unknown version.
        let mut v3 = compressed_entry(meta(5, 9), 50);
        v3[4..6].copy_from_slice(&3u16.to_le_bytes());
        rehash(&mut v3);
        assert_eq!(Entry::decode(&v3), Err(EntryError::Version { found: 3 }));
    }

    #[test]
    fn a_compressed_length_that_lies_is_refused() {
        let body = compressible_body(50);
        let block = lz4_flex::block::compress(&body);
        let stored = |raw_len: u32| {
            let mut stored = raw_len.to_le_bytes().to_vec();
            stored.extend_from_slice(&block);
            with_stored_body(&stored, 50)
        };
        assert!(Entry::decode(&stored(body.len() as u32)).is_ok(), "the honest length decodes");
        assert_eq!(
            body_error(&stored(body.len() as u32 + 1)),
            "a compressed body decompresses to fewer bytes than its uncompressed length"
        );
        assert_eq!(
            body_error(&stored(body.len() as u32 - 1)),
            "a compressed body decompresses beyond its uncompressed length"
        );
        let out_of_range =
            "a compressed body's uncompressed length is 0 or above ENTRY_BODY_LEN_BYTES_MAX";
        assert_eq!(body_error(&stored(0)), out_of_range);
        assert_eq!(body_error(&stored(ENTRY_BODY_LEN_BYTES_MAX as u32 + 1)), out_of_range);
        assert_eq!(body_error(&stored(u32::MAX)), out_of_range);
        // No length, no block.
        assert_eq!(
            body_error(&with_stored_body(&[1, 0], 50)),
            "a compressed body without its uncompressed length"
        );
        assert_eq!(
            body_error(&with_stored_body(&(body.len() as u32).to_le_bytes(), 50)),
            "a compressed body without its LZ4 block"
        );
    }

    #[test]
    fn a_body_that_decompresses_beyond_the_bound_is_refused() {
        // 4 MiB of zeros compress to ≈ 16 KiB: a tiny value that would expand past 1 MiB.
        let bomb = lz4_flex::block::compress(&vec![0u8; 4 * ENTRY_BODY_LEN_BYTES_MAX]);
        let mut stored = (ENTRY_BODY_LEN_BYTES_MAX as u32).to_le_bytes().to_vec();
        stored.extend_from_slice(&bomb);
        assert!(stored.len() < ENTRY_BODY_LEN_BYTES_MAX);
        assert_eq!(
            body_error(&with_stored_body(&stored, 1)),
            "a compressed body decompresses beyond its uncompressed length"
        );
    }

    #[test]
    fn a_body_that_decompresses_to_bad_records_is_refused() {
        let mut records = compressible_body(3);
        records.extend_from_slice(&[9, 0, 0]); // a record length cut off
        let mut stored = (records.len() as u32).to_le_bytes().to_vec();
        stored.extend_from_slice(&lz4_flex::block::compress(&records));
        assert_eq!(body_error(&with_stored_body(&stored, 3)), "a record length is cut off");
        let good = compressible_body(3);
        let mut stored = (good.len() as u32).to_le_bytes().to_vec();
        stored.extend_from_slice(&lz4_flex::block::compress(&good));
        assert_eq!(
            body_error(&with_stored_body(&stored, 4)),
            "record count differs from the header's"
        );
    }

    #[test]
    fn every_flipped_bit_of_a_compressed_entry_is_refused() {
        let bytes = compressed_entry(meta(2, 5), 20);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(Entry::decode(&damaged).is_err(), "bit {bit} flipped still decodes");
        }
        for len in 0..bytes.len() {
            assert!(Entry::decode(&bytes[..len]).is_err(), "cut at {len} still decodes");
        }
    }

    #[test]
    fn garbage_blocks_behind_a_good_hash_never_panic() {
        // Every one-byte change of the block, the hash fixed up: refused or decoded, no panic.
        let bytes = compressed_entry(meta(2, 5), 20);
        let start = ENTRY_HEADER_LEN_BYTES + COMPRESSED_PREFIX_LEN_BYTES;
        for at in start..bytes.len() {
            for value in [0u8, 0x0f, 0xf0, 0xff, bytes[at] ^ 0x55] {
                let mut changed = bytes.clone();
                changed[at] = value;
                crate::fuzz::entry_bytes(&changed);
            }
        }
    }

    #[test]
    fn the_fuzz_checks_pass_on_good_and_cut_entries() {
        let v1 = records_entry(2, 5, 1, &[b"abc", b"defg"]);
        let v2 = compressed_entry(meta(2, 5), 40);
        let mut epoch = Vec::new();
        let epoch_meta =
            EntryMeta { index: 1, epoch: 1, first_seq: 1, prev_hash: 0, state_hash: Some(7) };
        encode_epoch_start(&mut epoch, epoch_meta, "node-a");
        for bytes in [&v1, &v2, &epoch] {
            crate::fuzz::entry_bytes(bytes);
            for len in 0..bytes.len() {
                crate::fuzz::entry_bytes(&bytes[..len]);
            }
        }
    }

    /// The fuzz target's seeds (`fuzz/seeds/decode_entry/`) are golden entries: a version-1
    /// records entry, a version-1 epoch start and a version-2 compressed entry, each checked
    /// here byte for byte against the encoder (a build that can no longer read a checked-in
    /// version-1 entry fails this). `LEDGER_WRITE_SEEDS=1` writes them anew.
    #[test]
    fn the_checked_in_seed_entries_decode_and_are_what_the_encoder_writes() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/decode_entry");
        let mut epoch = Vec::new();
        let epoch_meta =
            EntryMeta { index: 1, epoch: 1, first_seq: 1, prev_hash: 0, state_hash: Some(7) };
        encode_epoch_start(&mut epoch, epoch_meta, "node-a");
        let seeds = [
            ("v1-records.bin", records_entry(2, 5, 1, &[b"abc", b"defg"])),
            ("v1-epoch-start.bin", epoch),
            ("v2-compressed.bin", compressed_entry(meta(3, 9), 40)),
        ];
        for (name, bytes) in seeds {
            let path = dir.join(name);
            if std::env::var_os("LEDGER_WRITE_SEEDS").is_some() {
                std::fs::create_dir_all(&dir).expect("seed dir");
                std::fs::write(&path, &bytes).expect("write seed");
            }
            let stored = std::fs::read(&path).expect("a checked-in seed");
            assert_eq!(stored, bytes, "{name}: the encoder's bytes");
            Entry::decode(&stored).expect("a seed decodes");
        }
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
