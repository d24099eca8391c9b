//! The journal: an append-only, checksummed, memory-mapped log of opaque records, with group
//! commit driven by the caller, crash recovery, and a snapshot container.
//!
//! Records are opaque bytes: the caller encodes its commands, the journal frames them with a
//! length, a CRC32C and a strictly consecutive sequence number (starting at 1). The byte layout,
//! the limits and the recovery decision table are in `FORMAT.md` next to this crate.
//!
//! - [`Journal`] is the single writer: [`Journal::open`] recovers, [`Journal::append`] copies a
//!   record into the mapped segment, [`Journal::flush`] makes everything appended durable with one
//!   sync (the caller appends a batch, flushes once, then releases the batch's replies);
//!   [`Journal::begin_flush`] / [`FlushJob::sync`] / [`Journal::end_flush`] split that flush so
//!   its sync runs on another thread while the writer appends the next batch. A preparer thread
//!   makes the next segment file ready in the background, so a rollover only stamps its header,
//!   syncs one page and renames it.
//! - [`JournalReader`] reads records from a sequence number, read-only, even while a writer in
//!   another process appends.
//! - [`snapshot`] writes and loads `snap-<seq>.snap` files.
//! - [`truncate_after`] removes every record after a seq, crash-safely (a replica dropping
//!   records the replicated log never acknowledged); [`last_seq`] reads where a journal ends
//!   without opening it for writing.
//! - [`storage`]: the [`Storage`] trait every file operation goes through, with real files
//!   ([`FileStorage`], the default), [`FaultyStorage`] (scripted failures, simulated power
//!   loss) for tests, and [`MemoryStorage`] (a disk in memory) for the simulation. [`Journal::open_in`] and [`JournalReader::open_in`]
//!   take one.
//!
//! The `runtime` crate builds the ledger on it (the writer thread, group commit across producers,
//! recovery); nothing here knows what a payload is.
//!
//! **Invariant:** record framing never interprets a payload. **Invariant:** nothing is ever
//! skipped: a bad record is either a torn tail (zeroed and reported) or an error.

#![warn(missing_docs)]

mod error;
mod format;
pub mod fuzz;
mod journal;
mod reader;
mod segment;
pub mod snapshot;
mod spare;
pub mod storage;
mod truncate;
mod validate;

use std::path::{Path, PathBuf};

pub use error::{Corruption, Defect, JournalError};
pub use format::{
    FORMAT_VERSION, PAYLOAD_LEN_BYTES_MAX, RECORD_ALIGN_BYTES, RECORD_HEADER_LEN_BYTES,
    SEGMENT_HEADER_LEN_BYTES, SEGMENT_LEN_ALIGN_BYTES, SEGMENT_LEN_BYTES_DEFAULT,
    SEGMENT_LEN_BYTES_MAX, SEGMENT_LEN_BYTES_MIN, SEGMENT_MAGIC,
};
pub use journal::{FlushJob, Journal, JournalOptions, Recovery, RolloverStats, SyncMode, TornTail};
pub use reader::{JournalReader, Record, RecordRef};
pub use segment::{
    list_segments, list_segments_in, segment_file_name, segments_before, segments_before_in,
    SegmentInfo, SPARE_FILE_NAME,
};
pub use storage::{FaultOp, FaultyStorage, FileStorage, MemoryStorage, Storage};
pub use truncate::{
    truncate_after, truncate_after_in, truncate_damaged_after, truncate_damaged_after_in,
    TruncateReport,
};
pub use validate::{
    intact_tail, intact_tail_in, last_seq, last_seq_in, segment_data_end, IntactTail, TailDamage,
};

/// The journal's directory inside the data directory.
pub const JOURNAL_DIR_NAME: &str = "journal";
/// The snapshots' directory inside the data directory.
pub const SNAPSHOT_DIR_NAME: &str = "snapshots";

/// `DATA_DIR/journal`: where [`Journal::open`] and [`JournalReader::open`] look.
pub fn journal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(JOURNAL_DIR_NAME)
}

/// `DATA_DIR/snapshots`: where the [`snapshot`] functions look.
pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SNAPSHOT_DIR_NAME)
}
