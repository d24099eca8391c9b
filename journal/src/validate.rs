//! Validating a whole journal directory with the recovery rules, read-only: every segment's
//! header, the chain of first sequence numbers, every record, and how the last segment ends
//! (the decision table in `FORMAT.md`). [`Journal::open`](crate::Journal::open) decides on this
//! before it repairs anything; [`last_seq_in`] and [`crate::truncate_after_in`] decide on it
//! without repairing.
//!
//! Nothing here writes, syncs or locks: a torn last record is reported in the scan (as the
//! stop of the last segment), not zeroed.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Corruption, JournalError};
use crate::format::{self, scan_segment, SegmentHeader, SegmentScan, Stop};
use crate::segment::{self, list_segments_in, SegmentInfo};
use crate::storage::{FileStorage, Storage};

/// One segment as the recovery rules read it.
#[derive(Debug)]
pub(crate) struct ScannedSegment {
    pub info: SegmentInfo,
    pub header: SegmentHeader,
    /// The valid records at its start and how they end.
    pub scan: SegmentScan,
}

/// Every segment of a journal, validated, oldest first.
#[derive(Debug)]
pub(crate) struct Validated {
    pub segments: Vec<ScannedSegment>,
}

impl Validated {
    /// The first sequence number of the oldest segment (1 for a journal without segments).
    pub fn first_seq(&self) -> u64 {
        self.segments.first().map_or(1, |segment| segment.info.first_seq)
    }

    /// Where appends would continue: the sequence number after the last valid record.
    pub fn next_seq(&self) -> u64 {
        self.segments.last().map_or(1, |segment| segment.scan.next_seq)
    }
}

/// Validates every segment in `dir` with the recovery rules: refuses (with the error
/// `Journal::open` returns) a bad file name, a damaged or unsupported header, a gap between
/// segments, and every corrupt record; accepts a torn last record of the last segment (its
/// scan's stop says so).
pub(crate) fn validate_in<S: Storage>(storage: &S, dir: &Path) -> Result<Validated, JournalError> {
    match validate_tolerating_tail_in(storage, dir)? {
        (validated, None) => Ok(validated),
        (_, Some(damage)) => Err(JournalError::Corrupt {
            path: damage.path,
            offset: damage.offset,
            seq: damage.seq,
            reason: damage.reason,
        }),
    }
}

/// Reads one segment with the recovery rules: its header (against its name and, unless it is the
/// first, the seq where the previous segment ended), then every record.
pub(crate) fn scan_segment_file<S: Storage>(
    storage: &S,
    info: SegmentInfo,
    expected_first_seq: Option<u64>,
    is_last: bool,
) -> Result<ScannedSegment, JournalError> {
    let path = &info.path;
    let map = storage.map_read(path).map_err(JournalError::io(path))?;
    let header = segment::check_header(path, &map, info.first_seq, expected_first_seq)?;
    let scan = scan_segment(&map, header, is_last).map_err(|bad| corrupt(path, bad))?;
    Ok(ScannedSegment { info, header, scan })
}

/// The sequence number of the last record of the journal in `dir`, on real files (see
/// [`last_seq_in`]).
pub fn last_seq(dir: &Path) -> Result<Option<u64>, JournalError> {
    last_seq_in(&FileStorage, dir)
}

/// The sequence number of the last record of the journal in `dir`, without replaying anything,
/// taking the writer lock or repairing: `None` when the journal holds no record (no directory,
/// no segment, or segments without records). The whole journal is validated exactly as
/// `Journal::open` validates it, so this refuses what recovery refuses, and a torn last record
/// does not count (recovery zeroes it). Meant for a journal no writer has open (before the
/// runtime starts): it takes no lock, so it cannot tell an append in flight from damage.
pub fn last_seq_in<S: Storage>(storage: &S, dir: &Path) -> Result<Option<u64>, JournalError> {
    match storage.list_dir(dir) {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(JournalError::Io { path: dir.to_path_buf(), source }),
    }
    let validated = validate_in(storage, dir)?;
    let (first_seq, next_seq) = (validated.first_seq(), validated.next_seq());
    Ok((next_seq > first_seq).then(|| next_seq - 1))
}

/// Damage at the end of a journal's last segment: a bad record, or zeros, followed by non-zero
/// bytes (FORMAT.md, *Known limit*: a power loss during a flush can persist a later page but not
/// an earlier one). Recovery refuses it; a replica, whose log holds every acknowledged record,
/// cuts it off instead ([`crate::truncate_damaged_after`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailDamage {
    /// The last segment.
    pub path: PathBuf,
    /// Where the run of valid records stops.
    pub offset: u64,
    /// The first seq that is not intact (records before it are).
    pub seq: u64,
    /// What recovery refuses there.
    pub reason: Corruption,
    /// The end of the last non-zero byte of the segment (what a repair zeroes up to).
    pub data_end: u64,
}

/// The intact records of a journal whose last segment may be damaged at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntactTail {
    /// The last intact record's seq (`None`: no record).
    pub last_seq: Option<u64>,
    /// The seq the journal ends at: the last intact record's, or, with none, the one before
    /// its oldest segment's first seq (a journal begun after a snapshot, by a state transfer,
    /// ends there before its first append); 0 for no journal.
    pub end_seq: u64,
    /// The damage after it, if any.
    pub damage: Option<TailDamage>,
}

/// [`intact_tail_in`] on real files.
pub fn intact_tail(dir: &Path) -> Result<IntactTail, JournalError> {
    intact_tail_in(&FileStorage, dir)
}

/// Like [`last_seq_in`], but damage of the **last** segment's records ([`TailDamage`]) is
/// reported instead of refused, with the last intact seq before it. Everything else recovery
/// refuses (a damaged header, a gap between segments, damage in a sealed segment) is refused.
pub fn intact_tail_in<S: Storage>(storage: &S, dir: &Path) -> Result<IntactTail, JournalError> {
    match storage.list_dir(dir) {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(IntactTail { last_seq: None, end_seq: 0, damage: None })
        }
        Err(source) => return Err(JournalError::Io { path: dir.to_path_buf(), source }),
    }
    let (validated, damage) = validate_tolerating_tail_in(storage, dir)?;
    let (first_seq, next_seq) = (validated.first_seq(), validated.next_seq());
    let last_seq = (next_seq > first_seq).then(|| next_seq - 1);
    Ok(IntactTail { last_seq, end_seq: next_seq.saturating_sub(1), damage })
}

/// Where the valid records of the segment file at `path` (first seq `first_seq`) end: the
/// offset after its last valid record, read-only. A torn or damaged record (one being written
/// by the journal's writer) ends them where it starts. What a state transfer copies of a
/// segment; the bytes after it are zero in a segment that ends cleanly.
pub fn segment_data_end(path: &Path, first_seq: u64) -> Result<u64, JournalError> {
    let storage = FileStorage;
    let map = storage.map_read(path).map_err(JournalError::io(path))?;
    let header = segment::check_header(path, &map, first_seq, None)?;
    Ok(match scan_segment(&map, header, true) {
        Ok(scan) => scan.end_offset,
        Err(bad) => bad.offset,
    })
}

/// [`validate_in`], except that damage of the last segment's records is returned beside the
/// segments, the damaged one scanned up to its last intact record (as if it ended there).
pub(crate) fn validate_tolerating_tail_in<S: Storage>(
    storage: &S,
    dir: &Path,
) -> Result<(Validated, Option<TailDamage>), JournalError> {
    let infos = list_segments_in(storage, dir)?;
    let count = infos.len();
    let mut segments: Vec<ScannedSegment> = Vec::with_capacity(count);
    let mut damage = None;
    for (index, info) in infos.into_iter().enumerate() {
        let expected_first_seq = segments.last().map(|previous| previous.scan.next_seq);
        if index + 1 < count {
            let scanned = scan_segment_file(storage, info, expected_first_seq, false)?;
            assert!(scanned.scan.stop == Stop::End, "a sealed segment ends cleanly or is refused");
            segments.push(scanned);
            continue;
        }
        let path = info.path.clone();
        let map = storage.map_read(&path).map_err(JournalError::io(&path))?;
        let header = segment::check_header(&path, &map, info.first_seq, expected_first_seq)?;
        let scan = match scan_segment(&map, header, true) {
            Ok(scan) => scan,
            Err(bad) => {
                // Damage is non-zero bytes at or after the stop; never less than the stop.
                let data_end = map.iter().rposition(|&byte| byte != 0).map_or(0, |at| at + 1);
                let data_end = (data_end as u64).max(bad.offset);
                damage = Some(TailDamage {
                    path: path.clone(),
                    offset: bad.offset,
                    seq: bad.seq,
                    reason: bad.reason,
                    data_end,
                });
                SegmentScan { next_seq: bad.seq, end_offset: bad.offset, stop: Stop::End }
            }
        };
        segments.push(ScannedSegment { info, header, scan });
    }
    let validated = Validated { segments };
    assert!(validated.next_seq() >= validated.first_seq(), "sequence numbers only grow");
    Ok((validated, damage))
}

fn corrupt(path: &Path, bad: format::BadSpot) -> JournalError {
    JournalError::Corrupt {
        path: PathBuf::from(path),
        offset: bad.offset,
        seq: bad.seq,
        reason: bad.reason,
    }
}

#[cfg(test)]
mod tests;
