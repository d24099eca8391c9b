//! The journal's error type: every way the outside world (disk, files, the operator) can fail us.
//!
//! Callers match on [`JournalError`]; [`Corruption`] says precisely why bytes on disk were refused,
//! and the recovery decision table in `FORMAT.md` says when each variant is returned.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the journal and the snapshot container.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Bytes on disk break the format in a way that is not a torn tail. Startup must stop; nothing
    /// is ever skipped silently. `offset` is the byte offset inside `path` of the first bad record
    /// (or header) and `seq` the sequence number expected there.
    #[error("{}: corrupt at offset {offset} (expected seq {seq}): {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record or header inside the file.
        offset: u64,
        /// The sequence number that was expected at `offset`.
        seq: u64,
        /// What exactly is wrong.
        reason: Corruption,
    },
    /// A segment header carries a format version this build does not read.
    #[error("{}: format version {version} is not supported (this build reads {supported})", path.display())]
    UnsupportedVersion {
        /// The segment or snapshot file.
        path: PathBuf,
        /// The version found in the header.
        version: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// An append was refused because the payload length is outside `1..=len_bytes_max`.
    #[error("payload of {len_bytes} bytes is outside 1..={len_bytes_max}")]
    PayloadLen {
        /// Length of the refused payload.
        len_bytes: u64,
        /// The largest payload this journal accepts (bounded by the segment size).
        len_bytes_max: u32,
    },
    /// A sync (msync, fsync or fdatasync of a segment, or fsync of the journal directory) failed.
    /// A writer is now poisoned: the kernel may have dropped the dirty pages, so retrying could
    /// report durability that does not exist. During `Journal::open` the open fails instead.
    #[error("{}: sync failed (fatal: the journal must be reopened)", path.display())]
    SyncFailed {
        /// The segment whose sync failed.
        path: PathBuf,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// An earlier sync failed; every append and flush is refused until the process reopens the
    /// journal (which re-reads what really reached the disk).
    #[error("the journal is poisoned by an earlier failed sync")]
    Poisoned,
    /// The disk is full while creating or preallocating a segment. Nothing written before is
    /// affected and the append may be retried once space is freed.
    #[error("{}: no space left to preallocate a segment", path.display())]
    NoSpace {
        /// The segment file that could not be created.
        path: PathBuf,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// Another process holds the writer lock on the journal directory.
    #[error("{}: locked by another journal writer", path.display())]
    Locked {
        /// The journal directory.
        path: PathBuf,
    },
    /// A reader asked for a sequence number that is no longer (or not) in the journal.
    #[error("seq {seq} is not in the journal: its first record is seq {first_seq}")]
    SeqUnavailable {
        /// The requested sequence number.
        seq: u64,
        /// The first sequence number the journal still holds.
        first_seq: u64,
    },
    /// Segments may only be removed below the durable sequence number.
    #[error("cannot remove segments before seq {seq}: only seqs up to {durable_seq} are durable")]
    NotDurable {
        /// The requested bound.
        seq: u64,
        /// The durable sequence number.
        durable_seq: u64,
    },
    /// [`crate::truncate_after`] was asked to cut the journal before its first segment: the
    /// records it would have to end with were archived.
    #[error(
        "cannot truncate after seq {seq}: the journal starts at seq {first_seq} (the records \
         before it were archived), so the lowest seq it can end at is {}",
        .first_seq.saturating_sub(1)
    )]
    TruncateArchived {
        /// The requested seq.
        seq: u64,
        /// The first sequence number of the journal's oldest segment.
        first_seq: u64,
    },
    /// A cut of a damaged journal ([`crate::truncate_damaged_after`]) after a seq that is not
    /// intact: the records the caller wanted kept are damaged.
    #[error(
        "cannot truncate after seq {seq}: the journal's records are intact only up to seq \
         {intact_last_seq} (its last segment is damaged after that)"
    )]
    TruncateDamaged {
        /// The requested seq.
        seq: u64,
        /// The last intact record.
        intact_last_seq: u64,
    },
    /// [`crate::JournalOptions`] are out of range.
    #[error("invalid journal options: {0}")]
    InvalidOptions(&'static str),
    /// A snapshot payload is larger than the container allows.
    #[error("snapshot payload of {len_bytes} bytes exceeds {len_bytes_max}")]
    SnapshotTooLong {
        /// Length of the refused payload.
        len_bytes: u64,
        /// [`crate::snapshot::SNAPSHOT_PAYLOAD_LEN_BYTES_MAX`].
        len_bytes_max: u64,
    },
    /// Any other I/O error, with the file or directory it concerns.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
}

/// Why bytes on disk were refused (see the recovery decision table in `FORMAT.md`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The file is shorter than a segment header.
    #[error("file is shorter than the {len_bytes}-byte header")]
    HeaderTruncated {
        /// The file length.
        len_bytes: u64,
    },
    /// The header does not start with the segment magic.
    #[error("bad magic")]
    HeaderMagic,
    /// The header CRC32C does not match.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The header's first sequence number disagrees with the file name or the previous segment.
    #[error("header says first seq {found}, expected {expected}")]
    HeaderFirstSeq {
        /// The sequence number in the header.
        found: u64,
        /// The sequence number the name or the previous segment implies.
        expected: u64,
    },
    /// The header's segment length is out of range, or the file is longer than it.
    #[error("segment length {segment_len_bytes} is invalid for a file of {file_len_bytes} bytes")]
    HeaderSegmentLen {
        /// The length in the header.
        segment_len_bytes: u64,
        /// The length of the file.
        file_len_bytes: u64,
    },
    /// A segment file name is not `<20 digits>.seg`.
    #[error("unexpected segment file name")]
    FileName,
    /// The next segment does not start where the previous one ended: records are missing.
    #[error("segment gap: next segment starts at seq {found}, expected {expected}")]
    SegmentGap {
        /// First sequence number of the next segment.
        found: u64,
        /// The sequence number that follows the previous segment's last record.
        expected: u64,
    },
    /// A record whose checksum verifies carries the wrong sequence number. A torn write cannot
    /// produce this, so it is never treated as a torn tail.
    #[error("record has seq {found}")]
    SeqMismatch {
        /// The sequence number in the record.
        found: u64,
    },
    /// A record whose checksum verifies has non-zero padding.
    #[error("record padding is not zero")]
    Padding,
    /// A bad record (or the end-of-log marker) is followed by non-zero bytes in the same segment.
    #[error("{defect}, and non-zero data follows at offset {data_offset}")]
    DataAfterBadRecord {
        /// What is wrong with the record.
        defect: Defect,
        /// Offset of the first non-zero byte after the bad record.
        data_offset: u64,
    },
    /// A bad record claims bytes that hold a valid next record: its length word is corrupt.
    #[error(
        "{defect}, and a valid record for the next seq sits inside it at offset {record_offset}"
    )]
    RecordInsideBadRecord {
        /// What is wrong with the record.
        defect: Defect,
        /// Offset of the valid record.
        record_offset: u64,
    },
    /// A bad record sits in a segment that is followed by another segment.
    #[error("{defect} in a segment that is followed by another segment")]
    BadRecordInSealedSegment {
        /// What is wrong with the record.
        defect: Defect,
    },
}

/// What is wrong with a record that may be a torn write (which one it is depends on what follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    /// The record header is all zero: the end-of-log marker.
    #[error("end-of-log marker")]
    EndMarker,
    /// The length word is zero but the rest of the record header is not.
    #[error("zero length with a non-zero record header")]
    LenZero,
    /// The length word exceeds [`crate::PAYLOAD_LEN_BYTES_MAX`].
    #[error("length {len_bytes} exceeds the maximum")]
    LenTooLong {
        /// The length word.
        len_bytes: u32,
    },
    /// The record would run past the end of the segment.
    #[error("length {len_bytes} runs past the segment end")]
    PastSegmentEnd {
        /// The length word.
        len_bytes: u32,
    },
    /// The record's CRC32C does not match.
    #[error("checksum mismatch")]
    Checksum,
}

impl JournalError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> JournalError {
        let path = path.into();
        move |source| JournalError::Io { path, source }
    }
}
