//! Truncating a journal after a sequence number: a replica that holds records the replicated
//! log never acknowledged (a deposed primary restarting, `replication/REPLICATION.md`, rows
//! "ahead" and "diverged") removes every record after the last one the log holds, before its
//! runtime starts. `FORMAT.md`, *Truncating after a seq*, has the bytes and the order.
//!
//! **Crash safety.** The journal is validated first with the recovery rules (a refusal changes
//! nothing). Then, for a cut after `seq` with record `seq + 1` in segment `k`:
//!
//! 1. The segments after `k` are removed **newest first, the directory synced after each**. At
//!    every crash point the durable segments are `1..=j` for some `j ≥ k`, each of them valid
//!    and sealed (synced whole before its successor existed), so recovery finds the journal's
//!    old records up to the end of segment `j`: a prefix, never a hole. Oldest first, or one
//!    directory sync at the end, could leave segment `j + 2` without `j + 1`: a gap, refused.
//! 2. Only then is segment `k`, now the last one, cut: its bytes from record `seq + 1` to the
//!    end of its last record are zeroed **back to front, one page per write, each synced before
//!    the page before it is written**. At every crash point the segment holds its records up to
//!    some page boundary at or after record `seq + 1`, then zeros: recovery sees valid records,
//!    then at most one record cut by that boundary with only zeros after it, a torn tail (row 3
//!    of the decision table, zeroed and reported), because the segment is the last one. Zeroing
//!    while later segments exist would make the same bytes a bad record in a sealed segment, or
//!    a segment gap; zeroing front to back, or all at once with one sync (the kernel writes the
//!    pages back in any order), can leave zeros before records, which recovery refuses.
//!
//! So a crash at any point leaves a journal that opens with its old records up to some seq in
//! `seq..=old last seq`, byte for byte, and running the truncation again finishes it. The
//! argument takes a page write (4096 aligned bytes) to reach the disk whole or not at all; a
//! device that tears inside a page can at worst leave zeros before non-zero bytes, which
//! recovery refuses (never misreads: only zeros were written, and recovery accepts records only
//! as a consecutive run from the segment's start).
//!
//! Cost: one `fsync` per page of the removed records, plus one directory sync per removed
//! segment, and a full validation of the journal (as `Journal::open` does).

use std::io;
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::format::{read_boundary, Boundary, SegmentHeader, Stop, SEGMENT_HEADER_LEN_BYTES};
use crate::format::{RECORD_ALIGN_BYTES, SEGMENT_LEN_ALIGN_BYTES};
use crate::segment;
use crate::storage::{FileStorage, Storage};
use crate::validate::{
    scan_segment_file, validate_in, validate_tolerating_tail_in, ScannedSegment,
};
use crate::TailDamage;

/// Bytes zeroed (and synced) per step of a cut: one page, the unit a crash keeps or loses.
const ZERO_STEP_BYTES: u64 = SEGMENT_LEN_ALIGN_BYTES;
const _: () = assert!(ZERO_STEP_BYTES % RECORD_ALIGN_BYTES == 0);

/// What [`truncate_after_in`] did. A journal without records whose first segment starts at
/// `F` has last seq `F - 1` here (0 for a new journal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateReport {
    /// The last seq before the truncation (a torn last record does not count).
    pub last_seq_before: u64,
    /// The last seq now: the requested seq, or `last_seq_before` when that was not after it.
    pub last_seq_after: u64,
    /// The segment files removed, newest first.
    pub removed_segments: Vec<PathBuf>,
    /// The segment that was cut, and the offset from which its records were zeroed.
    pub zeroed_from: Option<(PathBuf, u64)>,
}

impl TruncateReport {
    /// Whether any record was removed (false: the journal already ended at or before the seq).
    pub fn changed(&self) -> bool {
        self.last_seq_after != self.last_seq_before
    }

    fn unchanged(last_seq: u64) -> TruncateReport {
        TruncateReport {
            last_seq_before: last_seq,
            last_seq_after: last_seq,
            removed_segments: Vec::new(),
            zeroed_from: None,
        }
    }
}

/// [`truncate_after_in`] on real files.
pub fn truncate_after(dir: &Path, seq: u64) -> Result<TruncateReport, JournalError> {
    truncate_after_in(&FileStorage, dir, seq)
}

/// Removes every record with a seq after `seq` from the journal in `dir` (see the module docs
/// for the order and why a crash at any point is safe), holding the writer lock meanwhile
/// (`Locked` while a writer runs).
///
/// Refuses, changing nothing, what `Journal::open` refuses, and a `seq` below the first seq of
/// the oldest segment minus one (`TruncateArchived`). A journal that ends at or before `seq`
/// (or a missing directory) is left as it is, torn last record included (the next open zeroes
/// it). Otherwise the journal ends at `seq`; when record `seq + 1` is the first of the oldest
/// segment, that segment is kept with its header and no record, so the journal still starts
/// there and appends continue at `seq + 1`.
///
/// Remove the snapshots after `seq` first ([`crate::snapshot::remove_after`]): recovery
/// refuses a snapshot ahead of the journal.
pub fn truncate_after_in<S: Storage>(
    storage: &S,
    dir: &Path,
    seq: u64,
) -> Result<TruncateReport, JournalError> {
    truncate_in(storage, dir, seq, false)
}

/// [`truncate_damaged_after_in`] on real files.
pub fn truncate_damaged_after(dir: &Path, seq: u64) -> Result<TruncateReport, JournalError> {
    truncate_damaged_after_in(&FileStorage, dir, seq)
}

/// [`truncate_after_in`] for a journal whose last segment may be damaged at its end
/// ([`crate::TailDamage`], FORMAT.md *Known limit*): the damage is zeroed with the records
/// after `seq`, instead of refused. `seq` must be before the damage (records up to it intact:
/// `TruncateDamaged` otherwise, changing nothing); damage anywhere else is refused as recovery
/// refuses it. Only for a journal whose records after `seq` can be had again (a replica: from
/// its replicated log); the crash argument is `truncate_after_in`'s: the zeroing runs back to
/// front, so the damage goes first, and a crash leaves intact records up to some seq at or
/// after `seq`, then zeros, or the damage still there for the next run.
pub fn truncate_damaged_after_in<S: Storage>(
    storage: &S,
    dir: &Path,
    seq: u64,
) -> Result<TruncateReport, JournalError> {
    truncate_in(storage, dir, seq, true)
}

/// Both truncations under the writer lock: validated with the recovery rules, damage of the
/// last segment's records tolerated (after `seq`) only if `tolerate_damage`.
fn truncate_in<S: Storage>(
    storage: &S,
    dir: &Path,
    seq: u64,
    tolerate_damage: bool,
) -> Result<TruncateReport, JournalError> {
    let lock = match segment::lock_dir(storage, dir) {
        Ok(lock) => lock,
        Err(JournalError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(TruncateReport::unchanged(0));
        }
        Err(error) => return Err(error),
    };
    let (segments, damage) = if tolerate_damage {
        let (validated, damage) = validate_tolerating_tail_in(storage, dir)?;
        (validated.segments, damage)
    } else {
        (validate_in(storage, dir)?.segments, None)
    };
    if let Some(damage) = &damage {
        if seq >= damage.seq {
            return Err(JournalError::TruncateDamaged { seq, intact_last_seq: damage.seq - 1 });
        }
    }
    let report = cut_validated(storage, dir, segments, seq, damage.as_ref());
    drop(lock);
    report
}

/// The cut of `truncate_after_in` on validated `segments` (the writer lock held); `damage`, if
/// any, is in the last one, after `seq`.
fn cut_validated<S: Storage>(
    storage: &S,
    dir: &Path,
    mut segments: Vec<ScannedSegment>,
    seq: u64,
    damage: Option<&TailDamage>,
) -> Result<TruncateReport, JournalError> {
    let first_seq = segments.first().map_or(1, |first| first.info.first_seq);
    let last_seq_before = segments.last().map_or(1, |last| last.scan.next_seq) - 1;
    if seq < first_seq - 1 {
        return Err(JournalError::TruncateArchived { seq, first_seq });
    }
    if last_seq_before <= seq && damage.is_none() {
        return Ok(TruncateReport::unchanged(last_seq_before));
    }
    // From here `seq < last_seq_before`, so `seq + 1` is a record of the journal, or `seq + 1`
    // is where the damage starts (`seq == last_seq_before`).
    let cut_seq = seq + 1;
    // The segment holding `cut_seq`: the last one that starts at or before it.
    let holding = segments.iter().rposition(|s| s.info.first_seq <= cut_seq);
    let holding = holding.expect("the oldest segment starts at or before seq + 1");
    let keep = if segments[holding].info.first_seq == cut_seq && holding > 0 {
        holding
    } else {
        holding + 1
    };
    let removed = segments.split_off(keep);
    let mut report = TruncateReport {
        last_seq_before,
        last_seq_after: seq,
        removed_segments: Vec::with_capacity(removed.len()),
        zeroed_from: None,
    };
    for segment in removed.iter().rev() {
        assert!(segment.info.first_seq >= cut_seq, "only segments after seq are removed");
        let path = &segment.info.path;
        storage.remove_file(path).map_err(JournalError::io(path))?;
        segment::sync_dir(storage, dir)?;
        report.removed_segments.push(path.clone());
    }
    let last = segments.last().expect("the oldest segment is always kept");
    // The damage is in the journal's last segment: still here only if the cut is in it.
    let damage = damage.filter(|damage| damage.path == last.info.path);
    if last.scan.next_seq > cut_seq || damage.is_some() {
        let offset = cut_segment(storage, last, cut_seq, damage.map(|damage| damage.data_end))?;
        report.zeroed_from = Some((last.info.path.clone(), offset));
    } else {
        assert_eq!(last.scan.next_seq, cut_seq, "the kept segments end at seq");
    }
    Ok(report)
}

/// Zeroes the records from `cut_seq` on of the (validated, last) segment `segment`, back to
/// front a page at a time, each page synced before the one before it is written; returns the
/// offset of record `cut_seq`. Bytes past the end of its last record (or of a torn one) are
/// zero already (the recovery rules checked it) and are not rewritten.
fn cut_segment<S: Storage>(
    storage: &S,
    segment: &ScannedSegment,
    cut_seq: u64,
    damaged_end: Option<u64>,
) -> Result<u64, JournalError> {
    let path = &segment.info.path;
    let file = storage.open_write(path).map_err(JournalError::io(path))?;
    let (cut_offset, end) = {
        let map = storage.map_read(path).map_err(JournalError::io(path))?;
        let cut_offset = record_offset(&map, segment.header, cut_seq);
        // Validated under the lock we hold: the record is there.
        let cut_offset = cut_offset.expect("a validated segment holds its records");
        let claimed_end = match segment.scan.stop {
            Stop::End => segment.scan.end_offset,
            Stop::Torn { record_end, .. } => record_end,
        };
        let claimed_end = damaged_end.map_or(claimed_end, |end| end.max(claimed_end));
        (cut_offset, claimed_end.min(map.len() as u64))
    };
    assert!(cut_offset >= SEGMENT_HEADER_LEN_BYTES, "records follow the header");
    assert_eq!(cut_offset % RECORD_ALIGN_BYTES, 0, "records start aligned");
    assert!(damaged_end.is_some() || cut_offset < end, "the cut record's bytes are present");
    let zeros = [0u8; ZERO_STEP_BYTES as usize];
    let mut step_end = end;
    // Bounded: every step moves `step_end` down by at least one byte, towards `cut_offset`.
    while step_end > cut_offset {
        let step_start = ((step_end - 1) / ZERO_STEP_BYTES * ZERO_STEP_BYTES).max(cut_offset);
        assert!(step_end - step_start <= ZERO_STEP_BYTES, "one page per step");
        let step = &zeros[..(step_end - step_start) as usize];
        storage.write_at(&file, step_start, step).map_err(JournalError::io(path))?;
        let synced = storage.sync_file(&file);
        synced.map_err(|source| JournalError::SyncFailed { path: path.clone(), source })?;
        step_end = step_start;
    }
    // What the next recovery will see: the segment ends cleanly just before `cut_seq`.
    let rescanned = scan_segment_file(storage, segment.info.clone(), None, true)?;
    assert_eq!(
        (rescanned.scan.next_seq, rescanned.scan.end_offset, rescanned.scan.stop),
        (cut_seq, cut_offset, Stop::End),
        "a cut segment ends at the cut"
    );
    Ok(cut_offset)
}

/// The offset of record `seq` in a segment whose records up to it are valid; `None` if the run
/// of valid records ends before it.
fn record_offset(file: &[u8], header: SegmentHeader, seq: u64) -> Option<u64> {
    let (mut offset, mut at_seq) = (SEGMENT_HEADER_LEN_BYTES, header.first_seq);
    // Bounded: every iteration moves past one record, and records stay inside the segment.
    while at_seq < seq {
        match read_boundary(file, header.segment_len_bytes, offset, at_seq) {
            Boundary::Record { next_offset, .. } => (offset, at_seq) = (next_offset, at_seq + 1),
            Boundary::Stop { .. } | Boundary::Corrupt(_) => return None,
        }
    }
    (at_seq == seq).then_some(offset)
}

#[cfg(test)]
mod tests;
