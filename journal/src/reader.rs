//! A read-only reader that walks records from a given sequence number across segments, applying
//! the same recovery rules as the writer. It never modifies a file, so a replay tool or a
//! follower can run it while the writer (in another process) appends.
//!
//! When it reaches the end of the log (or a torn tail, which is an in-flight write while a writer
//! is live) it returns `None`; calling it again picks up records appended since.

use std::path::{Path, PathBuf};

use crate::error::{Defect, JournalError};
use crate::format::{classify_stop, read_boundary, Boundary, Stop, SEGMENT_HEADER_LEN_BYTES};
use crate::journal::TornTail;
use crate::segment::{self, list_segments_in, SegmentInfo};
use crate::storage::{FileStorage, Storage};

/// A record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// The opaque payload.
    pub payload: Vec<u8>,
}

/// A record borrowed from the reader's mapping (valid until the next call on the reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// The opaque payload.
    pub payload: &'a [u8],
}

/// The segment being read.
struct ReadSegment<S: Storage> {
    path: PathBuf,
    map: S::ReadMap,
    first_seq: u64,
    segment_len_bytes: u64,
    /// The next record boundary.
    offset: u64,
    /// Set once `[offset, end)` was found to be the clean end of the log, so polling at the end
    /// does not rescan a mostly empty segment.
    clean_end_at: Option<u64>,
}

/// Iterates the records of a journal directory from a sequence number, read-only, on storage
/// `S` (real files unless [`JournalReader::open_in`] says otherwise).
pub struct JournalReader<S: Storage = FileStorage> {
    storage: S,
    dir: PathBuf,
    from_seq: u64,
    /// The sequence number expected at the current boundary.
    next_seq: u64,
    segment: Option<ReadSegment<S>>,
    torn_tail: Option<TornTail>,
    failed: bool,
}

impl<S: Storage> std::fmt::Debug for JournalReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalReader")
            .field("dir", &self.dir)
            .field("from_seq", &self.from_seq)
            .field("next_seq", &self.next_seq)
            .field("segment", &self.segment.as_ref().map(|segment| &segment.path))
            .field("torn_tail", &self.torn_tail)
            .finish()
    }
}

impl JournalReader<FileStorage> {
    /// Opens a reader on real files that yields records with `seq >= from_seq`. Fails with
    /// [`JournalError::SeqUnavailable`] when `from_seq` precedes the journal's first segment
    /// (sequence numbers start at 1).
    pub fn open(dir: &Path, from_seq: u64) -> Result<JournalReader, JournalError> {
        JournalReader::open_in(FileStorage, dir, from_seq)
    }
}

impl<S: Storage> JournalReader<S> {
    /// [`JournalReader::open`] on `storage`.
    pub fn open_in(
        storage: S,
        dir: &Path,
        from_seq: u64,
    ) -> Result<JournalReader<S>, JournalError> {
        let segments = list_segments_in(&storage, dir)?;
        let first_seq = segments.first().map_or(1, |segment| segment.first_seq);
        if from_seq < first_seq {
            return Err(JournalError::SeqUnavailable { seq: from_seq, first_seq });
        }
        let start = segments.iter().rev().find(|segment| segment.first_seq <= from_seq);
        let segment = start.map(|info| open_segment(&storage, info, None)).transpose()?;
        Ok(JournalReader {
            storage,
            dir: dir.to_path_buf(),
            from_seq,
            next_seq: start.map_or(first_seq, |info| info.first_seq),
            segment,
            torn_tail: None,
            failed: false,
        })
    }

    /// The next record, borrowed from the mapping; `Ok(None)` at the end of the log for now.
    /// After an error the reader stays at the end.
    pub fn next_ref(&mut self) -> Result<Option<RecordRef<'_>>, JournalError> {
        if self.failed {
            return Ok(None);
        }
        match self.advance() {
            Ok(Some((seq, start, end))) => {
                let segment =
                    self.segment.as_ref().expect("a record was found in the current segment");
                Ok(Some(RecordRef { seq, payload: &segment.map[start..end] }))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                self.failed = true;
                Err(error)
            }
        }
    }

    /// The sequence number of the next record this reader will return.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.max(self.from_seq)
    }

    /// The torn record the reader stopped at, if it stopped at one. With a live writer this is
    /// usually a record being written; on a quiet journal it is what `Journal::open` will zero.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// Moves to the next record with `seq >= from_seq`: its seq and payload range in the mapping.
    fn advance(&mut self) -> Result<Option<(u64, usize, usize)>, JournalError> {
        // Bounded: every iteration consumes a record or a segment, or returns.
        loop {
            let Some(segment) = self.segment.as_mut() else {
                if !self.enter_first_segment()? {
                    return Ok(None);
                }
                continue;
            };
            match read_boundary(
                &segment.map,
                segment.segment_len_bytes,
                segment.offset,
                self.next_seq,
            ) {
                Boundary::Record { payload_offset, payload_len_bytes, next_offset } => {
                    let seq = self.next_seq;
                    segment.offset = next_offset;
                    self.next_seq += 1;
                    self.torn_tail = None;
                    if seq >= self.from_seq {
                        let start = payload_offset as usize;
                        return Ok(Some((seq, start, start + payload_len_bytes as usize)));
                    }
                }
                Boundary::Corrupt(reason) => {
                    let (path, offset, seq) = (segment.path.clone(), segment.offset, self.next_seq);
                    return Err(JournalError::Corrupt { path, offset, seq, reason });
                }
                Boundary::Stop { .. } => {
                    if !self.at_stop()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Decides what the stop at the current boundary is. Returns whether reading can go on
    /// (the record appeared meanwhile, or the next segment was entered).
    fn at_stop(&mut self) -> Result<bool, JournalError> {
        // List before re-reading: a segment that exists now was created after the writer had
        // finished the current one, so a bad record seen afterwards is not an in-flight write.
        let segments = list_segments_in(&self.storage, &self.dir)?;
        let segment = self.segment.as_mut().expect("at_stop is called inside a segment");
        let later = segments.into_iter().find(|info| info.first_seq > segment.first_seq);
        let refreshed = self.storage.refresh_read(&segment.path, &mut segment.map);
        refreshed.map_err(JournalError::io(&segment.path))?;
        let boundary =
            read_boundary(&segment.map, segment.segment_len_bytes, segment.offset, self.next_seq);
        let Boundary::Stop { defect, record_end } = boundary else {
            return Ok(true);
        };
        let stop = if defect == Defect::EndMarker && segment.clean_end_at == Some(segment.offset) {
            Stop::End
        } else {
            let (len, offset) = (segment.segment_len_bytes, segment.offset);
            classify_stop(
                &segment.map,
                len,
                offset,
                self.next_seq,
                (defect, record_end),
                later.is_none(),
            )
            .map_err(|reason| JournalError::Corrupt {
                path: segment.path.clone(),
                offset: segment.offset,
                seq: self.next_seq,
                reason,
            })?
        };
        match stop {
            Stop::End => {
                segment.clean_end_at = Some(segment.offset);
                self.torn_tail = None;
                let Some(next) = later else {
                    return Ok(false);
                };
                self.segment = Some(open_segment(&self.storage, &next, Some(self.next_seq))?);
                Ok(true)
            }
            Stop::Torn { defect, record_end } => {
                self.torn_tail = Some(TornTail {
                    path: segment.path.clone(),
                    offset: segment.offset,
                    seq: self.next_seq,
                    len_bytes: record_end - segment.offset,
                    defect,
                });
                Ok(false)
            }
        }
    }

    /// The journal had no segment when the reader opened: enter the first one once it exists.
    fn enter_first_segment(&mut self) -> Result<bool, JournalError> {
        let Some(first) = list_segments_in(&self.storage, &self.dir)?.into_iter().next() else {
            return Ok(false);
        };
        self.segment = Some(open_segment(&self.storage, &first, Some(self.next_seq))?);
        Ok(true)
    }
}

impl<S: Storage> Iterator for JournalReader<S> {
    type Item = Result<Record, JournalError>;

    /// The next record, copied. `None` means the end of the log for now: a later call returns
    /// records appended since (the iterator is not fused).
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_ref() {
            Ok(Some(record)) => {
                Some(Ok(Record { seq: record.seq, payload: record.payload.to_vec() }))
            }
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        }
    }
}

fn open_segment<S: Storage>(
    storage: &S,
    info: &SegmentInfo,
    expected_first_seq: Option<u64>,
) -> Result<ReadSegment<S>, JournalError> {
    let map = storage.map_read(&info.path).map_err(JournalError::io(&info.path))?;
    let header = segment::check_header(&info.path, &map, info.first_seq, expected_first_seq)?;
    Ok(ReadSegment {
        path: info.path.clone(),
        map,
        first_seq: header.first_seq,
        segment_len_bytes: header.segment_len_bytes,
        offset: SEGMENT_HEADER_LEN_BYTES,
        clean_end_at: None,
    })
}

#[cfg(test)]
mod tests;
