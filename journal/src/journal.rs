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

use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use crate::error::{Defect, JournalError};
use crate::format::{
    self, SegmentHeader, Stop, RECORD_ALIGN_BYTES, RECORD_HEADER_LEN_BYTES,
    SEGMENT_HEADER_LEN_BYTES, SEGMENT_LEN_ALIGN_BYTES, SEGMENT_LEN_BYTES_DEFAULT,
    SEGMENT_LEN_BYTES_MAX, SEGMENT_LEN_BYTES_MIN,
};
use crate::segment::{self, NewSegment, TEMP_SUFFIX};
use crate::spare::{Preparer, Sealed};
use crate::storage::{FileStorage, Storage};
use crate::validate::{validate_in, ScannedSegment};

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
pub struct FlushJob<S: Storage = FileStorage> {
    storage: S,
    /// The segment file to sync and its dirty range; `None` when there is nothing to sync (or
    /// `SyncMode::None`).
    file: Option<(Arc<S::File>, S::Dirty)>,
    /// The journal directory, when the segment's name is not durable yet (it was installed from a
    /// spare since the last flush): synced after the file.
    dir: Option<PathBuf>,
    path: PathBuf,
    /// The last record the job covers.
    seq: u64,
    /// The active segment's `write_offset` when the job was taken.
    write_offset: u64,
}

impl<S: Storage> std::fmt::Debug for FlushJob<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushJob")
            .field("path", &self.path)
            .field("seq", &self.seq)
            .field("write_offset", &self.write_offset)
            .field("syncs_data", &self.file.is_some())
            .field("syncs_dir", &self.dir.is_some())
            .finish()
    }
}

impl<S: Storage> FlushJob<S> {
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

    /// Makes the job's records durable with one data sync of the segment file
    /// ([`Storage::sync_data`]: `fdatasync`; records appended meanwhile may be written too, which
    /// is harmless), then, after a rollover, the segment's name with one sync of the directory.
    /// Blocks.
    pub fn sync(&self) -> std::io::Result<()> {
        if let Some((file, dirty)) = &self.file {
            self.storage.sync_data(file, dirty)?;
        }
        // After the data: on ext4 the file's sync usually commits the rename as well, and this
        // one then returns at once.
        if let Some(dir) = &self.dir {
            self.storage.sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The segment appends go to.
struct Active<S: Storage> {
    path: PathBuf,
    map: S::Map,
    /// The segment file, shared with [`FlushJob`]s that sync it from another thread.
    file: Arc<S::File>,
    segment_len_bytes: u64,
    /// Where the next record goes; every byte from here to the segment end is zero.
    write_offset: u64,
    /// Bytes before this offset are durable.
    synced_offset: u64,
    /// Whether the segment's name is durable (false after installing a spare, until the
    /// directory sync of the next flush).
    name_durable: bool,
}

impl<S: Storage> Active<S> {
    fn new(segment: NewSegment<S>, segment_len_bytes: u64, name_durable: bool) -> Active<S> {
        assert_eq!(segment.map.len() as u64, segment_len_bytes, "a segment is mapped whole");
        assert!(segment_len_bytes % SEGMENT_LEN_ALIGN_BYTES == 0, "segments are whole pages");
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

impl<S: Storage> Active<S> {
    /// The offsets' invariants: header ≤ synced ≤ write ≤ segment end, write aligned.
    #[inline]
    fn check_offsets(&self) {
        assert!(SEGMENT_HEADER_LEN_BYTES <= self.synced_offset, "the header is always synced");
        assert!(self.synced_offset <= self.write_offset, "nothing past the last record is synced");
        assert!(self.write_offset <= self.segment_len_bytes, "records stay inside the segment");
        assert_eq!(self.write_offset % RECORD_ALIGN_BYTES, 0, "records start aligned");
    }
}

/// The single writer of a journal directory (enforced with an exclusive lock, `flock` on real
/// files), on storage `S` (real files unless [`Journal::open_in`] says otherwise).
pub struct Journal<S: Storage = FileStorage> {
    storage: S,
    dir: PathBuf,
    /// Prepares the next segment. Declared before `_lock`, so it is dropped (its thread
    /// joined, an unused spare removed) while the writer lock is still held.
    preparer: Preparer<S>,
    /// Holds the writer lock.
    _lock: S::Lock,
    options: JournalOptions,
    active: Active<S>,
    next_seq: u64,
    durable_seq: u64,
    poisoned: bool,
    rollovers: RolloverStats,
}

impl<S: Storage> std::fmt::Debug for Journal<S> {
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

impl Journal<FileStorage> {
    /// Opens (creating if needed) the journal in `dir` on real files: takes the writer lock,
    /// validates every segment, zeroes a torn last record, syncs, and positions appends at
    /// `next_seq`. Any corruption is an error: the caller must stop, never skip.
    pub fn open(dir: &Path, options: JournalOptions) -> Result<(Journal, Recovery), JournalError> {
        Journal::open_in(FileStorage, dir, options)
    }
}

impl<S: Storage> Journal<S> {
    /// [`Journal::open`] on `storage`: the fault-injecting one in tests, a simulated disk in
    /// the simulation.
    pub fn open_in(
        storage: S,
        dir: &Path,
        options: JournalOptions,
    ) -> Result<(Journal<S>, Recovery), JournalError> {
        options.validate()?;
        storage.create_dir(dir).map_err(JournalError::io(dir))?;
        let lock = segment::lock_dir(&storage, dir)?;
        let removed_temp_files = remove_temp_files(&storage, dir)?;
        // Decide on every segment before repairing any: a refused journal is left as it was.
        let segments = validate_in(&storage, dir)?.segments;
        let (active, first_seq, next_seq, torn_tail) = match segments.split_last() {
            None => {
                let new = segment::create_segment(&storage, dir, 1, options.segment_len_bytes)?;
                (Active::new(new, options.segment_len_bytes, true), 1, 1, None)
            }
            Some((last, sealed)) => {
                for segment in sealed {
                    sync_sealed(&storage, &segment.info.path)?;
                }
                let (active, next_seq, torn_tail) = open_last(&storage, last)?;
                // A crashed writer may have renamed its last segment without syncing the
                // directory: make every name found durable before appending after them.
                segment::sync_dir(&storage, dir)?;
                (active, segments[0].info.first_seq, next_seq, torn_tail)
            }
        };
        assert!(first_seq >= 1 && next_seq >= first_seq, "sequence numbers start at 1");
        active.check_offsets();
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
            preparer: Preparer::start(storage.clone(), dir, options.segment_len_bytes),
            storage,
            dir: dir.to_path_buf(),
            _lock: lock,
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
        assert_eq!(self.active.write_offset % RECORD_ALIGN_BYTES, 0, "records start aligned");
        assert!(self.durable_seq < self.next_seq, "only appended records are durable");
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
        assert_eq!(self.durable_seq + 1, self.next_seq, "a flush covers every appended record");
        Ok(self.durable_seq)
    }

    /// Starts a flush of every record appended so far whose sync can run on another thread
    /// ([`FlushJob::sync`]) while this writer goes on appending; [`Journal::end_flush`] records
    /// its result. Records appended after this call are not covered by the job. The same
    /// durability contract as [`Journal::flush`]: acknowledge only what `end_flush` returned.
    pub fn begin_flush(&mut self) -> Result<FlushJob<S>, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        let active = &self.active;
        active.check_offsets();
        let needs_data =
            self.options.sync_mode == SyncMode::Fsync && active.write_offset > active.synced_offset;
        let file = needs_data.then(|| {
            let dirty = self.storage.dirty(&active.map, active.synced_offset, active.write_offset);
            (active.file.clone(), dirty)
        });
        Ok(FlushJob {
            storage: self.storage.clone(),
            file,
            dir: (!active.name_durable).then(|| self.dir.clone()),
            path: active.path.clone(),
            seq: self.next_seq - 1,
            write_offset: active.write_offset,
        })
    }

    /// Records the result of a job's [`FlushJob::sync`] and returns the durable sequence number.
    /// A failed sync poisons the journal, exactly like a failed [`Journal::flush`].
    pub fn end_flush(
        &mut self,
        job: FlushJob<S>,
        result: std::io::Result<()>,
    ) -> Result<u64, JournalError> {
        if let Err(source) = result {
            self.poisoned = true;
            return Err(JournalError::SyncFailed { path: job.path, source });
        }
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        assert!(job.seq < self.next_seq, "a job covers only appended records");
        // After a rollover the job's segment is sealed (and was synced in full by the rollover).
        if job.path == self.active.path {
            assert!(job.write_offset <= self.active.write_offset, "the segment only grows");
            self.active.synced_offset = self.active.synced_offset.max(job.write_offset);
            self.active.name_durable |= job.dir.is_some();
            self.active.check_offsets();
        }
        let durable_seq_before = self.durable_seq;
        self.durable_seq = self.durable_seq.max(job.seq);
        assert!(self.durable_seq >= durable_seq_before, "the durable seq never goes backwards");
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
        for segment in segment::segments_before_in(&self.storage, &self.dir, seq)? {
            assert!(segment.path != self.active.path, "the active segment is never covered");
            let path = &segment.path;
            self.storage.remove_file(path).map_err(JournalError::io(path))?;
            // Like every failed sync, a failed directory sync is fatal for this writer.
            segment::sync_dir(&self.storage, &self.dir).inspect_err(|_| self.poisoned = true)?;
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
        assert_eq!(next.write_offset, SEGMENT_HEADER_LEN_BYTES, "a new segment holds no record");
        let sealed = std::mem::replace(&mut self.active, next);
        assert!(sealed.name_durable, "a sealed segment's name is durable");
        assert_eq!(sealed.synced_offset, sealed.write_offset, "a sealed segment is synced whole");
        assert_eq!(self.durable_seq + 1, self.next_seq, "sealing made every record durable");
        self.rollovers.rollovers += 1;
        self.preparer.request_after_rollover(Sealed { map: sealed.map, file: sealed.file });
        Ok(())
    }

    /// The segment that starts at `next_seq`: the spare, installed, or else one created inline
    /// (which reports the errors a rollover reports: `NoSpace`, `Io`, or a failed directory sync
    /// after the rename, which poisons because the new segment may or may not survive a crash).
    fn next_segment(&mut self) -> Result<Active<S>, JournalError> {
        let segment_len_bytes = self.options.segment_len_bytes;
        let installed = match self.preparer.take() {
            Some(Ok(spare)) => {
                segment::install_spare(&self.storage, &self.dir, spare, self.next_seq).map(Some)
            }
            Some(Err(error)) => Err(error),
            None => Ok(None),
        };
        match installed {
            Ok(Some(new)) => {
                assert!(new.path.ends_with(segment::segment_file_name(self.next_seq)));
                self.rollovers.from_spare += 1;
                return Ok(Active::new(new, segment_len_bytes, false));
            }
            Ok(None) => {}
            // Not reported: the inline creation below meets the same disk and reports for it.
            Err(_) => self.rollovers.spare_failures += 1,
        }
        let created =
            segment::create_segment(&self.storage, &self.dir, self.next_seq, segment_len_bytes);
        if let Err(JournalError::SyncFailed { .. }) = created {
            self.poisoned = true;
        }
        Ok(Active::new(created?, segment_len_bytes, true))
    }

    /// One sync covering the active segment's bytes appended since the last sync, then its
    /// name if that is not durable yet.
    fn sync_active(&mut self) -> Result<(), JournalError> {
        let active = &mut self.active;
        active.check_offsets();
        if self.options.sync_mode == SyncMode::Fsync && active.write_offset > active.synced_offset {
            if let Err(source) = sync_range(&self.storage, active) {
                self.poisoned = true;
                return Err(JournalError::SyncFailed { path: active.path.clone(), source });
            }
        }
        if !active.name_durable {
            segment::sync_dir(&self.storage, &self.dir).inspect_err(|_| self.poisoned = true)?;
            active.name_durable = true;
        }
        let durable_seq_before = self.durable_seq;
        active.synced_offset = active.write_offset;
        self.durable_seq = self.next_seq - 1;
        assert!(self.durable_seq >= durable_seq_before, "the durable seq never goes backwards");
        Ok(())
    }
}

/// Writes one record into zeroed `record` (header, payload via `fill`, padding stays zero).
/// The length word goes first and the checksum last, each behind a fence, so a reader racing
/// the writer sees either a complete record or one whose checksum fails (a tail it stops at).
fn write_record(record: &mut [u8], len_bytes: u32, seq: u64, fill: impl FnOnce(&mut [u8])) {
    let header_len = RECORD_HEADER_LEN_BYTES as usize;
    let payload_end = header_len + len_bytes as usize;
    assert!(payload_end <= record.len(), "the record holds its payload");
    assert_eq!(record.len() % RECORD_ALIGN_BYTES as usize, 0, "records are padded whole");
    assert!(seq >= 1, "sequence numbers start at 1");
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

/// Syncs the dirty range of the active segment: `msync(MS_SYNC)` of the range on real files
/// (page-aligned by memmap2); FORMAT.md records the measurement against `fdatasync` that chose it.
fn sync_range<S: Storage>(storage: &S, active: &Active<S>) -> std::io::Result<()> {
    storage.sync_map(&active.map, active.synced_offset, active.write_offset)
}

/// Removes segment files whose creation a crash interrupted (they never got their final name).
fn remove_temp_files<S: Storage>(storage: &S, dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let mut removed = Vec::new();
    let mut names = storage.list_dir(dir).map_err(JournalError::io(dir))?;
    names.sort();
    for name in names.iter().filter(|name| name.ends_with(TEMP_SUFFIX)) {
        let path = dir.join(name);
        storage.remove_file(&path).map_err(JournalError::io(&path))?;
        removed.push(path);
    }
    if !removed.is_empty() {
        segment::sync_dir(storage, dir)?;
    }
    Ok(removed)
}

/// Syncs a sealed segment (validated), in case the previous writer ran with [`SyncMode::None`].
fn sync_sealed<S: Storage>(storage: &S, path: &Path) -> Result<(), JournalError> {
    let file = storage.open_write(path).map_err(JournalError::io(path))?;
    let synced = storage.sync_file(&file);
    synced.map_err(|source| JournalError::SyncFailed { path: path.to_path_buf(), source })
}

/// Restores the (validated) last segment's full length, zeroes a torn tail, syncs, and maps it
/// for appending. Returns the active segment, `next_seq` and the torn tail, if any.
fn open_last<S: Storage>(
    storage: &S,
    last: &ScannedSegment,
) -> Result<(Active<S>, u64, Option<TornTail>), JournalError> {
    let ScannedSegment { info, header, scan, .. } = last;
    let path = &info.path;
    let file = storage.open_write(path).map_err(JournalError::io(path))?;
    let file_len_bytes = storage.len_bytes(&file).map_err(JournalError::io(path))?;
    let SegmentHeader { segment_len_bytes, .. } = *header;
    if file_len_bytes < segment_len_bytes {
        segment::preallocate(storage, &file, segment_len_bytes)
            .map_err(|source| segment::space_error(path, source))?;
    }
    let torn_tail = match scan.stop {
        Stop::End => None,
        Stop::Torn { defect, record_end } => {
            let end = record_end.min(segment_len_bytes);
            // Zeroed with a write before the file is mapped, so the fsync below covers it.
            let zeros = vec![0u8; (end - scan.end_offset) as usize];
            storage.write_at(&file, scan.end_offset, &zeros).map_err(JournalError::io(path))?;
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
    let synced = storage.sync_file(&file);
    synced.map_err(|source| JournalError::SyncFailed { path: path.clone(), source })?;
    let map = storage.map_write(&file, segment_len_bytes).map_err(JournalError::io(path))?;
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

#[cfg(test)]
mod tests;
