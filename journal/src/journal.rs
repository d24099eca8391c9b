//! The writer: recovery at open, appends straight into the mapped segment, group-commit flushes,
//! segment rollover and explicit archival.
//!
//! Durability contract: a record is acknowledged only once a `flush` that returned its sequence
//! number (or more) has succeeded. Everything the writer does keeps four facts true:
//! bytes past `write_offset` in the active segment are zero, every segment but the last was synced
//! in full (data and name) before the next one was created, a file with a segment name has a
//! durable header, and a failed sync poisons the journal for good.
//!
//! Rollover takes a spare segment that the preparer thread (`spare.rs`) made ready in the
//! background; the directory sync that makes its new name durable runs with the next flush.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use memmap2::MmapMut;

use crate::error::{Defect, JournalError};
use crate::format::{
    self, scan_segment, SegmentHeader, Stop, RECORD_HEADER_LEN_BYTES, SEGMENT_HEADER_LEN_BYTES,
    SEGMENT_LEN_ALIGN_BYTES, SEGMENT_LEN_BYTES_DEFAULT, SEGMENT_LEN_BYTES_MAX,
    SEGMENT_LEN_BYTES_MIN,
};
use crate::segment::{self, list_segments, NewSegment, SegmentInfo, TEMP_SUFFIX};
use crate::spare::{Preparer, Sealed};

/// Whether `flush` makes records durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `flush` syncs the dirty range of the active segment, and rollover syncs the segment it
    /// seals. The only mode in which an acknowledged record survives a power failure.
    #[default]
    Fsync,
    /// No sync on flush or rollover: a power failure may lose or tear any record, and recovery
    /// may then refuse the journal. Unsafe; for benchmarks only.
    None,
}

/// How the journal writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// Size of new segment files: a multiple of 4096 in
    /// [`SEGMENT_LEN_BYTES_MIN`]`..=`[`SEGMENT_LEN_BYTES_MAX`]. Existing segments keep their size.
    pub segment_len_bytes: u64,
    /// Whether flushes sync.
    pub sync_mode: SyncMode,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { segment_len_bytes: SEGMENT_LEN_BYTES_DEFAULT, sync_mode: SyncMode::Fsync }
    }
}

impl JournalOptions {
    fn validate(&self) -> Result<(), JournalError> {
        let len = self.segment_len_bytes;
        if !(SEGMENT_LEN_BYTES_MIN..=SEGMENT_LEN_BYTES_MAX).contains(&len) {
            return Err(JournalError::InvalidOptions("segment_len_bytes is out of range"));
        }
        if len % SEGMENT_LEN_ALIGN_BYTES != 0 {
            return Err(JournalError::InvalidOptions(
                "segment_len_bytes is not a multiple of 4096",
            ));
        }
        Ok(())
    }
}

/// What [`Journal::open`] found and repaired; the caller logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files in the journal (including one created by this open).
    pub segment_count: u64,
    /// Valid records found.
    pub record_count: u64,
    /// Sequence number of the first record, if any.
    pub first_seq: Option<u64>,
    /// Sequence number of the last record, if any.
    pub last_seq: Option<u64>,
    /// Where appends continue.
    pub next_seq: u64,
    /// The torn last record that was zeroed, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Temporary segment files left by a crash during segment creation (`<name>.seg.tmp`) or
    /// by a killed writer's preparer (`spare.seg.tmp`), now removed.
    pub removed_temp_files: Vec<PathBuf>,
}

/// A torn last record: a write that a crash interrupted before it was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub path: PathBuf,
    /// Offset of the torn record inside the segment.
    pub offset: u64,
    /// The sequence number the record would have had (it is reused by the next append).
    pub seq: u64,
    /// Bytes of the segment that the record claimed.
    pub len_bytes: u64,
    /// What was wrong with it.
    pub defect: Defect,
}

/// How segment rollovers went since [`Journal::open`] ([`Journal::rollover_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RolloverStats {
    /// Segments started after the one `open` found or created.
    pub rollovers: u64,
    /// Of those, the ones that installed a spare prepared in the background (the others were
    /// created inline, on the appending thread).
    pub from_spare: u64,
    /// Spares whose preparation or installation failed (the rollover then created its segment
    /// inline, or reported that creation's error).
    pub spare_failures: u64,
}

/// A flush taken by [`Journal::begin_flush`]: its sync may run on any thread while the writer
/// appends, and its result goes back to [`Journal::end_flush`].
#[derive(Debug)]
pub struct FlushJob {
    /// The segment file to sync; `None` when there is nothing to sync (or `SyncMode::None`).
    file: Option<Arc<File>>,
    /// The journal directory, when the segment's name is not durable yet (it was installed from a
    /// spare since the last flush): synced after the file.
    dir: Option<Arc<File>>,
    path: PathBuf,
    /// The last record the job covers.
    seq: u64,
    /// The active segment's `write_offset` when the job was taken.
    write_offset: u64,
    #[cfg(any(test, feature = "fault-injection"))]
    injected_errno: Option<i32>,
}

impl FlushJob {
    /// The highest sequence number this job makes durable.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether [`FlushJob::sync`] does any I/O (false in `SyncMode::None`, or when nothing was
    /// appended to the active segment since its last sync, unless the segment's new name still
    /// has to be made durable).
    pub fn needs_sync(&self) -> bool {
        self.file.is_some() || self.dir.is_some()
    }

    /// Makes the job's records durable with one `fdatasync` of the segment file (on Linux the
    /// same `vfs_fsync_range` as `msync` of the range, so pages written through the mapping are
    /// included; records appended meanwhile may be written too, which is harmless), then, after a
    /// rollover, the segment's name with one `fsync` of the directory. Blocks.
    pub fn sync(&self) -> std::io::Result<()> {
        #[cfg(any(test, feature = "fault-injection"))]
        if let Some(errno) = self.injected_errno {
            return Err(std::io::Error::from_raw_os_error(errno));
        }
        if let Some(file) = &self.file {
            file.sync_data()?;
        }
        // After the data: on ext4 the file's sync usually commits the rename as well, and this
        // one then returns at once.
        if let Some(dir) = &self.dir {
            dir.sync_all()?;
        }
        Ok(())
    }
}

/// The segment appends go to.
struct Active {
    path: PathBuf,
    map: MmapMut,
    /// The segment file, shared with [`FlushJob`]s that sync it from another thread.
    file: Arc<File>,
    segment_len_bytes: u64,
    /// Where the next record goes; every byte from here to the segment end is zero.
    write_offset: u64,
    /// Bytes before this offset are durable.
    synced_offset: u64,
    /// Whether the segment's name is durable (false after installing a spare, until the
    /// directory sync of the next flush).
    name_durable: bool,
}

impl Active {
    fn new(segment: NewSegment, segment_len_bytes: u64, name_durable: bool) -> Active {
        Active {
            path: segment.path,
            map: segment.map,
            file: Arc::new(segment.file),
            segment_len_bytes,
            write_offset: SEGMENT_HEADER_LEN_BYTES,
            // The header was synced when the segment was created.
            synced_offset: SEGMENT_HEADER_LEN_BYTES,
            name_durable,
        }
    }
}

/// The single writer of a journal directory (enforced with an exclusive `flock`).
pub struct Journal {
    dir: PathBuf,
    /// Prepares the next segment. Declared before `dir_file`, so it is dropped (its thread
    /// joined, an unused spare removed) while the writer lock is still held.
    preparer: Preparer,
    /// Holds the writer lock; also used to sync the directory (shared with [`FlushJob`]s).
    dir_file: Arc<File>,
    options: JournalOptions,
    active: Active,
    next_seq: u64,
    durable_seq: u64,
    poisoned: bool,
    rollovers: RolloverStats,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("segment", &self.active.path)
            .field("write_offset", &self.active.write_offset)
            .field("next_seq", &self.next_seq)
            .field("durable_seq", &self.durable_seq)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`: takes the writer lock, validates every
    /// segment, zeroes a torn last record, syncs, and positions appends at `next_seq`.
    /// Any corruption is an error: the caller must stop, never skip.
    pub fn open(dir: &Path, options: JournalOptions) -> Result<(Journal, Recovery), JournalError> {
        options.validate()?;
        create_dir(dir)?;
        let dir_file = File::open(dir).map_err(JournalError::io(dir))?;
        segment::lock_dir(dir, &dir_file)?;
        let removed_temp_files = remove_temp_files(dir, &dir_file)?;
        let segments = list_segments(dir)?;
        let (active, first_seq, next_seq, torn_tail) = match segments.split_last() {
            None => {
                let new = segment::create_segment(dir, &dir_file, 1, options.segment_len_bytes)?;
                (Active::new(new, options.segment_len_bytes, true), 1, 1, None)
            }
            Some((last, sealed)) => {
                let mut expected_first_seq = None;
                for segment in sealed {
                    expected_first_seq = Some(verify_sealed(segment, expected_first_seq)?);
                }
                let (active, next_seq, torn_tail) = open_last(last, expected_first_seq)?;
                // A crashed writer may have renamed its last segment without syncing the
                // directory: make every name found durable before appending after them.
                segment::sync_dir(dir, &dir_file)?;
                (active, segments[0].first_seq, next_seq, torn_tail)
            }
        };
        let record_count = next_seq - first_seq;
        let recovery = Recovery {
            segment_count: segments.len().max(1) as u64,
            record_count,
            first_seq: (record_count > 0).then_some(first_seq),
            last_seq: (record_count > 0).then_some(next_seq - 1),
            next_seq,
            torn_tail,
            removed_temp_files,
        };
        let journal = Journal {
            dir: dir.to_path_buf(),
            preparer: Preparer::start(dir, options.segment_len_bytes),
            dir_file: Arc::new(dir_file),
            options,
            active,
            next_seq,
            durable_seq: next_seq - 1,
            poisoned: false,
            rollovers: RolloverStats::default(),
        };
        Ok((journal, recovery))
    }

    /// Appends one record and returns its sequence number. The payload is copied straight into
    /// the mapping: no allocation and no syscall, except when a new segment is needed. The record
    /// is not durable until [`Journal::flush`] returns a sequence number at least this large.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, JournalError> {
        let len_bytes_max = self.payload_len_bytes_max();
        let len_bytes = u32::try_from(payload.len()).ok().filter(|&len| len <= len_bytes_max);
        let Some(len_bytes) = len_bytes else {
            return Err(JournalError::PayloadLen {
                len_bytes: payload.len() as u64,
                len_bytes_max,
            });
        };
        self.append_with(len_bytes, |buf| buf.copy_from_slice(payload))
    }

    /// Appends one record of `len_bytes`, letting `fill` encode the payload directly into the
    /// mapping. `fill` receives exactly `len_bytes` zeroed bytes; if it panics the space is zeroed
    /// again and nothing is appended.
    pub fn append_with(
        &mut self,
        len_bytes: u32,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u64, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        // The first append asks for the next segment (a journal opened only to read or archive
        // never creates one); later ones find it requested (one compare).
        self.preparer.request();
        let len_bytes_max = self.payload_len_bytes_max();
        if len_bytes == 0 || len_bytes > len_bytes_max {
            return Err(JournalError::PayloadLen {
                len_bytes: u64::from(len_bytes),
                len_bytes_max,
            });
        }
        let record_len_bytes = format::record_len_bytes(len_bytes);
        if self.active.write_offset + record_len_bytes > self.active.segment_len_bytes {
            self.roll_over()?;
        }
        assert!(self.active.write_offset + record_len_bytes <= self.active.segment_len_bytes);
        let seq = self.next_seq;
        let start = self.active.write_offset as usize;
        let record = &mut self.active.map[start..start + record_len_bytes as usize];
        write_record(record, len_bytes, seq, fill);
        self.active.write_offset += record_len_bytes;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Makes every record appended so far durable with one sync of the active segment's dirty
    /// range, and returns the durable sequence number (0 when the journal is empty). A failure
    /// poisons the journal: the kernel may have dropped the dirty pages, so nothing is retried.
    pub fn flush(&mut self) -> Result<u64, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        self.sync_active()?;
        Ok(self.durable_seq)
    }

    /// Starts a flush of every record appended so far whose sync can run on another thread
    /// ([`FlushJob::sync`]) while this writer goes on appending; [`Journal::end_flush`] records
    /// its result. Records appended after this call are not covered by the job. The same
    /// durability contract as [`Journal::flush`]: acknowledge only what `end_flush` returned.
    pub fn begin_flush(&mut self) -> Result<FlushJob, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        let active = &self.active;
        let needs_data =
            self.options.sync_mode == SyncMode::Fsync && active.write_offset > active.synced_offset;
        let job = FlushJob {
            file: needs_data.then(|| active.file.clone()),
            dir: (!active.name_durable).then(|| self.dir_file.clone()),
            path: active.path.clone(),
            seq: self.next_seq - 1,
            write_offset: active.write_offset,
            #[cfg(any(test, feature = "fault-injection"))]
            injected_errno: None,
        };
        #[cfg(any(test, feature = "fault-injection"))]
        let job = FlushJob {
            injected_errno: if job.needs_sync() { segment::fault::SYNC_ERRNO.take() } else { None },
            ..job
        };
        Ok(job)
    }

    /// Records the result of a job's [`FlushJob::sync`] and returns the durable sequence number.
    /// A failed sync poisons the journal, exactly like a failed [`Journal::flush`].
    pub fn end_flush(
        &mut self,
        job: FlushJob,
        result: std::io::Result<()>,
    ) -> Result<u64, JournalError> {
        if let Err(source) = result {
            self.poisoned = true;
            return Err(JournalError::SyncFailed { path: job.path, source });
        }
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        // After a rollover the job's segment is sealed (and was synced in full by the rollover).
        if job.path == self.active.path {
            self.active.synced_offset = self.active.synced_offset.max(job.write_offset);
            self.active.name_durable |= job.dir.is_some();
        }
        self.durable_seq = self.durable_seq.max(job.seq);
        Ok(self.durable_seq)
    }

    /// The highest sequence number known durable (0 when none is).
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// The sequence number the next append will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The largest payload [`Journal::append`] accepts: [`crate::PAYLOAD_LEN_BYTES_MAX`], or less
    /// when segments are too small to hold it.
    pub fn payload_len_bytes_max(&self) -> u32 {
        format::payload_len_bytes_max(self.options.segment_len_bytes)
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a failed sync has poisoned the journal.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// How rollovers went since open: how many, and how many used a prepared spare.
    pub fn rollover_stats(&self) -> RolloverStats {
        self.rollovers
    }

    /// Deletes the segments whose records all precede `seq` (see [`crate::segments_before`]),
    /// oldest first, syncing the directory after each so a crash leaves no gap. For an explicit
    /// operator command once a snapshot covers `seq - 1`; never called automatically.
    pub fn remove_segments_before(&mut self, seq: u64) -> Result<Vec<PathBuf>, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        if seq > self.durable_seq + 1 {
            return Err(JournalError::NotDurable { seq, durable_seq: self.durable_seq });
        }
        let mut removed = Vec::new();
        for segment in segment::segments_before(&self.dir, seq)? {
            assert!(segment.path != self.active.path, "the active segment is never covered");
            fs::remove_file(&segment.path).map_err(JournalError::io(&segment.path))?;
            // Like every failed sync, a failed directory sync is fatal for this writer.
            segment::sync_dir(&self.dir, &self.dir_file).inspect_err(|_| self.poisoned = true)?;
            removed.push(segment.path);
        }
        Ok(removed)
    }

    /// Seals the active segment (synced in full, data and name, so only the last segment can
    /// ever hold a torn record) and switches to a new one: the spare prepared in the background
    /// if there is one (waiting for its preparation if it is still running), else one created
    /// here. Then asks for the next spare. If no segment can be had, nothing changes and the
    /// append can be retried.
    fn roll_over(&mut self) -> Result<(), JournalError> {
        self.sync_active()?;
        let next = match self.next_segment() {
            Ok(next) => next,
            Err(error) => {
                // The retry should find a spare.
                self.preparer.request();
                return Err(error);
            }
        };
        let sealed = std::mem::replace(&mut self.active, next);
        self.rollovers.rollovers += 1;
        self.preparer.request_after_rollover(Sealed { map: sealed.map, file: sealed.file });
        Ok(())
    }

    /// The segment that starts at `next_seq`: the spare, installed, or else one created inline
    /// (which reports the errors a rollover reports: `NoSpace`, `Io`, or a failed directory sync
    /// after the rename, which poisons because the new segment may or may not survive a crash).
    fn next_segment(&mut self) -> Result<Active, JournalError> {
        let segment_len_bytes = self.options.segment_len_bytes;
        let installed = match self.preparer.take() {
            Some(Ok(spare)) => segment::install_spare(&self.dir, spare, self.next_seq).map(Some),
            Some(Err(error)) => Err(error),
            None => Ok(None),
        };
        match installed {
            Ok(Some(new)) => {
                self.rollovers.from_spare += 1;
                return Ok(Active::new(new, segment_len_bytes, false));
            }
            Ok(None) => {}
            // Not reported: the inline creation below meets the same disk and reports for it.
            Err(_) => self.rollovers.spare_failures += 1,
        }
        let created =
            segment::create_segment(&self.dir, &self.dir_file, self.next_seq, segment_len_bytes);
        if let Err(JournalError::SyncFailed { .. }) = created {
            self.poisoned = true;
        }
        Ok(Active::new(created?, segment_len_bytes, true))
    }

    /// One sync covering the active segment's bytes appended since the last sync, then its
    /// name if that is not durable yet.
    fn sync_active(&mut self) -> Result<(), JournalError> {
        let active = &mut self.active;
        if self.options.sync_mode == SyncMode::Fsync && active.write_offset > active.synced_offset {
            if let Err(source) = sync_range(active) {
                self.poisoned = true;
                return Err(JournalError::SyncFailed { path: active.path.clone(), source });
            }
        }
        if !active.name_durable {
            segment::sync_dir(&self.dir, &self.dir_file).inspect_err(|_| self.poisoned = true)?;
            active.name_durable = true;
        }
        active.synced_offset = active.write_offset;
        self.durable_seq = self.next_seq - 1;
        Ok(())
    }
}

/// Writes one record into zeroed `record` (header, payload via `fill`, padding stays zero).
/// The length word goes first and the checksum last, each behind a fence, so a reader racing
/// the writer sees either a complete record or one whose checksum fails (a tail it stops at).
fn write_record(record: &mut [u8], len_bytes: u32, seq: u64, fill: impl FnOnce(&mut [u8])) {
    let header_len = RECORD_HEADER_LEN_BYTES as usize;
    let payload_end = header_len + len_bytes as usize;
    let mut guard = ZeroOnUnwind { bytes: record, armed: true };
    let len_word = len_bytes.to_le_bytes();
    guard.bytes[0..4].copy_from_slice(&len_word);
    fence(Ordering::Release);
    fill(&mut guard.bytes[header_len..payload_end]);
    let seq_word = seq.to_le_bytes();
    let crc = format::record_crc(len_word, seq_word, &guard.bytes[header_len..payload_end]);
    fence(Ordering::Release);
    guard.bytes[8..16].copy_from_slice(&seq_word);
    guard.bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    guard.armed = false;
}

/// Restores the zeros past `write_offset` if the caller's `fill` panics mid-record.
struct ZeroOnUnwind<'a> {
    bytes: &'a mut [u8],
    armed: bool,
}

impl Drop for ZeroOnUnwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.bytes.fill(0);
        }
    }
}

/// Syncs the dirty range of the active segment. `msync(MS_SYNC)` of the range (page-aligned by
/// memmap2); FORMAT.md records the measurement against `fdatasync` that chose it.
fn sync_range(active: &Active) -> std::io::Result<()> {
    #[cfg(any(test, feature = "fault-injection"))]
    if let Some(errno) = segment::fault::SYNC_ERRNO.take() {
        return Err(std::io::Error::from_raw_os_error(errno));
    }
    let start = active.synced_offset as usize;
    let len = (active.write_offset - active.synced_offset) as usize;
    active.map.flush_range(start, len)
}

/// Creates the journal directory; a new one is made durable in its parent.
fn create_dir(dir: &Path) -> Result<(), JournalError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(JournalError::io(dir))?;
    let parent =
        dir.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let parent_file = File::open(parent).map_err(JournalError::io(parent))?;
    segment::sync_dir(parent, &parent_file)
}

/// Removes segment files whose creation a crash interrupted (they never got their final name).
fn remove_temp_files(dir: &Path, dir_file: &File) -> Result<Vec<PathBuf>, JournalError> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).map_err(JournalError::io(dir))? {
        let path = entry.map_err(JournalError::io(dir))?.path();
        if path.to_str().is_some_and(|name| name.ends_with(TEMP_SUFFIX)) {
            fs::remove_file(&path).map_err(JournalError::io(&path))?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        segment::sync_dir(dir, dir_file)?;
    }
    Ok(removed)
}

/// Validates a segment that is followed by another one and returns the seq after its last
/// record. It also syncs the file, in case the previous writer ran with [`SyncMode::None`].
fn verify_sealed(
    segment: &SegmentInfo,
    expected_first_seq: Option<u64>,
) -> Result<u64, JournalError> {
    let path = &segment.path;
    let file = File::open(path).map_err(JournalError::io(path))?;
    let map = segment::map_read_only(path, &file)?;
    let header = segment::check_header(path, &map, segment.first_seq, expected_first_seq)?;
    let scan = scan_segment(&map, header, false).map_err(|bad| corrupt(path, bad))?;
    assert_eq!(scan.stop, Stop::End, "a sealed segment either ends cleanly or is refused");
    file.sync_data().map_err(|source| JournalError::SyncFailed { path: path.clone(), source })?;
    Ok(scan.next_seq)
}

/// Validates the last segment, restores its full length, zeroes a torn tail, syncs, and maps it
/// for appending. Returns the active segment, `next_seq` and the torn tail, if any.
fn open_last(
    segment: &SegmentInfo,
    expected_first_seq: Option<u64>,
) -> Result<(Active, u64, Option<TornTail>), JournalError> {
    let path = &segment.path;
    let file =
        OpenOptions::new().read(true).write(true).open(path).map_err(JournalError::io(path))?;
    let file_len_bytes = file.metadata().map_err(JournalError::io(path))?.len();
    // Decide on the bytes physically present (past the end reads as zero), before any repair.
    let (header, scan) = {
        let map = segment::map_read_only(path, &file)?;
        let header = segment::check_header(path, &map, segment.first_seq, expected_first_seq)?;
        (header, scan_segment(&map, header, true).map_err(|bad| corrupt(path, bad))?)
    };
    let SegmentHeader { segment_len_bytes, .. } = header;
    if file_len_bytes < segment_len_bytes {
        segment::preallocate(&file, segment_len_bytes)
            .map_err(|source| segment::space_error(path, source))?;
    }
    let mut map = segment::map_read_write(path, &file, segment_len_bytes)?;
    let torn_tail = match scan.stop {
        Stop::End => None,
        Stop::Torn { defect, record_end } => {
            let end = record_end.min(segment_len_bytes);
            map[scan.end_offset as usize..end as usize].fill(0);
            Some(TornTail {
                path: path.clone(),
                offset: scan.end_offset,
                seq: scan.next_seq,
                len_bytes: end - scan.end_offset,
                defect,
            })
        }
    };
    // fsync, not fdatasync: a restored length is metadata. This also makes durable whatever a
    // previous process left in the page cache before it died, before anything is appended after it.
    file.sync_all().map_err(|source| JournalError::SyncFailed { path: path.clone(), source })?;
    let active = Active {
        path: path.clone(),
        map,
        file: Arc::new(file),
        segment_len_bytes,
        write_offset: scan.end_offset,
        synced_offset: scan.end_offset,
        // The caller syncs the directory before appending.
        name_durable: true,
    };
    Ok((active, scan.next_seq, torn_tail))
}

fn corrupt(path: &Path, bad: format::BadSpot) -> JournalError {
    JournalError::Corrupt {
        path: path.to_path_buf(),
        offset: bad.offset,
        seq: bad.seq,
        reason: bad.reason,
    }
}

#[cfg(test)]
mod tests;
