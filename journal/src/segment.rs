//! Segment files on disk: names, listing, creation with preallocation, mapping, directory sync.
//!
//! A segment is created as `<name>.seg.tmp`, preallocated, given its header, fsynced and only
//! then renamed to `<name>.seg` (and the directory fsynced), so a file with a final name always
//! has a complete, durable header and its full length of real blocks.
//!
//! A *spare* (`spare.seg.tmp`) is the same file prepared ahead of need, before its first
//! sequence number is known: created, preallocated, its first page written, fsynced and mapped
//! ([`prepare_spare`], on the preparer thread). Installing it at rollover ([`install_spare`])
//! only stamps the header into the mapping, syncs that one page and renames the file; the
//! directory sync that makes the new name durable is left to the caller.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Corruption, JournalError};
use crate::format::{
    HeaderError, SegmentHeader, FORMAT_VERSION, SEGMENT_HEADER_LEN_BYTES, SEGMENT_LEN_ALIGN_BYTES,
};
use crate::storage::{FileStorage, Storage};

/// Segment files end with this.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// A segment being created ends with this; one left behind by a crash is removed by the writer.
pub(crate) const TEMP_SUFFIX: &str = ".seg.tmp";
/// The spare segment's name: a temporary name (never read, removed by the next open).
pub const SPARE_FILE_NAME: &str = "spare.seg.tmp";
const _: () = assert!(SPARE_FILE_NAME.len() > TEMP_SUFFIX.len(), "the spare is a temporary file");
/// Digits in a segment name: enough for any `u64`, zero-padded so lexical order = numeric order.
const NAME_DIGITS: usize = 20;
/// Zeros written per call when `fallocate` is not supported.
const ZERO_FILL_CHUNK_BYTES: usize = 1 << 20;

/// A segment file found in the journal directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The sequence number of the segment's first record (from its name).
    pub first_seq: u64,
    /// The segment file.
    pub path: PathBuf,
}

/// The file name of the segment whose first record is `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:0NAME_DIGITS$}{SEGMENT_SUFFIX}")
}

/// Lists the segments in `dir`, ordered by first sequence number. Other files are ignored, but
/// a `.seg` file whose name is not 20 digits is refused: it would otherwise be silently skipped.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentInfo>, JournalError> {
    list_segments_in(&FileStorage, dir)
}

/// [`list_segments`] on any storage.
pub fn list_segments_in<S: Storage>(
    storage: &S,
    dir: &Path,
) -> Result<Vec<SegmentInfo>, JournalError> {
    let mut segments = Vec::new();
    for name in storage.list_dir(dir).map_err(JournalError::io(dir))? {
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else { continue };
        let path = dir.join(&name);
        let first_seq = (stem.len() == NAME_DIGITS && stem.bytes().all(|b| b.is_ascii_digit()))
            .then(|| stem.parse::<u64>().ok())
            .flatten();
        let Some(first_seq) = first_seq else {
            return Err(JournalError::Corrupt {
                path,
                offset: 0,
                seq: 0,
                reason: Corruption::FileName,
            });
        };
        segments.push(SegmentInfo { first_seq, path });
    }
    segments.sort_by_key(|segment| segment.first_seq);
    Ok(segments)
}

/// Segments whose records all precede `seq` (the segment after them starts at or before `seq`).
/// The last segment is never included: it is where appends go.
pub fn segments_before(dir: &Path, seq: u64) -> Result<Vec<SegmentInfo>, JournalError> {
    segments_before_in(&FileStorage, dir, seq)
}

/// [`segments_before`] on any storage.
pub fn segments_before_in<S: Storage>(
    storage: &S,
    dir: &Path,
    seq: u64,
) -> Result<Vec<SegmentInfo>, JournalError> {
    let segments = list_segments_in(storage, dir)?;
    let covered = segments.windows(2).take_while(|pair| pair[1].first_seq <= seq).count();
    Ok(segments.into_iter().take(covered).collect())
}

/// Checks a segment's header against its name and, for all but the first segment read, against
/// the sequence number where the previous segment ended.
pub(crate) fn check_header(
    path: &Path,
    file: &[u8],
    name_seq: u64,
    expected_first_seq: Option<u64>,
) -> Result<SegmentHeader, JournalError> {
    let corrupt = |reason| JournalError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        seq: name_seq,
        reason,
    };
    let header = SegmentHeader::decode(file).map_err(|error| match error {
        HeaderError::Corrupt(reason) => corrupt(reason),
        HeaderError::UnsupportedVersion(version) => JournalError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
            supported: FORMAT_VERSION,
        },
    })?;
    if header.first_seq != name_seq {
        return Err(corrupt(Corruption::HeaderFirstSeq {
            found: header.first_seq,
            expected: name_seq,
        }));
    }
    if let Some(expected) = expected_first_seq {
        if name_seq != expected {
            return Err(corrupt(Corruption::SegmentGap { found: name_seq, expected }));
        }
    }
    Ok(header)
}

/// A freshly created segment, mapped for writing.
pub(crate) struct NewSegment<S: Storage> {
    pub path: PathBuf,
    pub map: S::Map,
    /// The open file (read-write), kept for syncs that run outside the writer.
    pub file: S::File,
}

/// Creates, preallocates, stamps, maps and durably names the segment that starts at `first_seq`.
/// Everything that can fail (except the directory sync) happens before the rename: once a segment
/// has its final name the writer must switch to it, or later records would leave a gap.
/// On error nothing but (at most) a temporary file is left behind, and it is removed.
pub(crate) fn create_segment<S: Storage>(
    storage: &S,
    dir: &Path,
    first_seq: u64,
    segment_len_bytes: u64,
) -> Result<NewSegment<S>, JournalError> {
    let path = dir.join(segment_file_name(first_seq));
    let temp_path = dir.join(format!("{first_seq:0NAME_DIGITS$}{TEMP_SUFFIX}"));
    let (map, file) = match write_temp_segment(storage, &temp_path, first_seq, segment_len_bytes) {
        Ok(created) => created,
        Err(error) => {
            // Best effort: a leftover temporary file is harmless and removed at the next open.
            let _ = storage.remove_file(&temp_path);
            return Err(error);
        }
    };
    if let Err(source) = storage.rename(&temp_path, &path) {
        let _ = storage.remove_file(&temp_path);
        return Err(JournalError::Io { path, source });
    }
    sync_dir(storage, dir)?;
    assert_eq!(map.len() as u64, segment_len_bytes, "a segment is mapped whole");
    Ok(NewSegment { path, map, file })
}

/// A segment file prepared ahead of need (see the module docs): full length of real blocks,
/// zero everywhere, durable, mapped. Its first sequence number is given at [`install_spare`].
pub(crate) struct Spare<S: Storage> {
    pub path: PathBuf,
    pub map: S::Map,
    pub file: S::File,
    pub segment_len_bytes: u64,
}

/// Creates `dir/spare.seg.tmp` (replacing a stale one), preallocates it, writes its first page
/// (zeros, so that stamping the header later changes no block allocation and its sync needs no
/// filesystem journal commit), fsyncs it and maps it. On error the file is removed (best
/// effort) and the error is `NoSpace` for `ENOSPC`, `Io` otherwise.
pub(crate) fn prepare_spare<S: Storage>(
    storage: &S,
    dir: &Path,
    segment_len_bytes: u64,
) -> Result<Spare<S>, JournalError> {
    let path = dir.join(SPARE_FILE_NAME);
    // Only a spare that a failed removal left behind can be here; it holds nothing.
    let _ = storage.remove_file(&path);
    match write_spare(storage, &path, segment_len_bytes) {
        Ok((map, file)) => Ok(Spare { path, map, file, segment_len_bytes }),
        Err(error) => {
            let _ = storage.remove_file(&path);
            Err(error)
        }
    }
}

fn write_spare<S: Storage>(
    storage: &S,
    path: &Path,
    segment_len_bytes: u64,
) -> Result<(S::Map, S::File), JournalError> {
    let io_error = |source| space_error(path, source);
    let file = storage.create_new(path).map_err(io_error)?;
    preallocate(storage, &file, segment_len_bytes).map_err(io_error)?;
    let first_page = [0u8; SEGMENT_LEN_ALIGN_BYTES as usize];
    storage.write_at(&file, 0, &first_page).map_err(io_error)?;
    // fsync, not fdatasync: the size and the extents must be durable before the file can get
    // a segment's name.
    storage.sync_file(&file).map_err(io_error)?;
    let map = storage.map_write(&file, segment_len_bytes).map_err(JournalError::io(path))?;
    assert_eq!(map.len() as u64, segment_len_bytes, "a spare is mapped whole");
    Ok((map, file))
}

/// Turns a spare into the segment that starts at `first_seq`: stamps the header into the mapping,
/// syncs that page (so the header is durable before the name can be), renames the file to its
/// segment name. The caller must sync the directory before acknowledging any record of the new
/// segment (and before creating the segment after it). On error the spare is removed (best
/// effort) and nothing else changed: no file with a segment name was created.
pub(crate) fn install_spare<S: Storage>(
    storage: &S,
    dir: &Path,
    mut spare: Spare<S>,
    first_seq: u64,
) -> Result<NewSegment<S>, JournalError> {
    assert_eq!(spare.map.len() as u64, spare.segment_len_bytes, "a spare is mapped whole");
    assert!(
        spare.map[..SEGMENT_HEADER_LEN_BYTES as usize].iter().all(|&b| b == 0),
        "a spare is unstamped"
    );
    let header = SegmentHeader { first_seq, segment_len_bytes: spare.segment_len_bytes }.encode();
    spare.map[..header.len()].copy_from_slice(&header);
    let path = dir.join(segment_file_name(first_seq));
    let installed = storage
        .sync_map(&spare.map, 0, header.len() as u64)
        .map_err(|source| space_error(&spare.path, source))
        .and_then(|()| {
            storage.rename(&spare.path, &path).map_err(|source| space_error(&spare.path, source))
        });
    if let Err(error) = installed {
        let _ = storage.remove_file(&spare.path);
        return Err(error);
    }
    Ok(NewSegment { path, map: spare.map, file: spare.file })
}

fn write_temp_segment<S: Storage>(
    storage: &S,
    temp_path: &Path,
    first_seq: u64,
    segment_len_bytes: u64,
) -> Result<(S::Map, S::File), JournalError> {
    let io_error = |source| space_error(temp_path, source);
    let file = storage.create_new(temp_path).map_err(io_error)?;
    preallocate(storage, &file, segment_len_bytes).map_err(io_error)?;
    assert!(first_seq >= 1, "sequence numbers start at 1");
    let header = SegmentHeader { first_seq, segment_len_bytes }.encode();
    storage.write_at(&file, 0, &header).map_err(io_error)?;
    // fsync, not fdatasync: the file's size and extents must be durable before it gets its name.
    storage.sync_file(&file).map_err(io_error)?;
    let map = storage.map_write(&file, segment_len_bytes).map_err(JournalError::io(temp_path))?;
    Ok((map, file))
}

/// `NoSpace` for `ENOSPC` (the caller may retry once space is freed), `Io` otherwise.
pub(crate) fn space_error(path: &Path, source: io::Error) -> JournalError {
    if source.raw_os_error() == Some(libc::ENOSPC) {
        JournalError::NoSpace { path: path.to_path_buf(), source }
    } else {
        JournalError::Io { path: path.to_path_buf(), source }
    }
}

/// Gives a file `len_bytes` of real blocks (so writes through a mapping can never hit ENOSPC).
/// Falls back to writing zeros where the filesystem has no `fallocate`.
pub(crate) fn preallocate<S: Storage>(
    storage: &S,
    file: &S::File,
    len_bytes: u64,
) -> io::Result<()> {
    match storage.allocate(file, len_bytes) {
        Ok(()) => Ok(()),
        Err(error) if error.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            zero_fill(storage, file, len_bytes)
        }
        Err(error) => Err(error),
    }
}

fn zero_fill<S: Storage>(storage: &S, file: &S::File, len_bytes: u64) -> io::Result<()> {
    let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
    let mut offset = storage.len_bytes(file)?;
    // Bounded: every iteration writes at least one byte towards `len_bytes`.
    while offset < len_bytes {
        let chunk_bytes = (len_bytes - offset).min(ZERO_FILL_CHUNK_BYTES as u64);
        storage.write_at(file, offset, &zeros[..chunk_bytes as usize])?;
        offset += chunk_bytes;
    }
    Ok(())
}

/// Makes creations, renames and removals in `dir` durable.
pub(crate) fn sync_dir<S: Storage>(storage: &S, dir: &Path) -> Result<(), JournalError> {
    storage
        .sync_dir(dir)
        .map_err(|source| JournalError::SyncFailed { path: dir.to_path_buf(), source })
}

/// Takes the exclusive writer lock on the journal directory (released when the lock drops).
pub(crate) fn lock_dir<S: Storage>(storage: &S, dir: &Path) -> Result<S::Lock, JournalError> {
    match storage.lock_dir(dir) {
        Ok(lock) => Ok(lock),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
            Err(JournalError::Locked { path: dir.to_path_buf() })
        }
        Err(source) => Err(JournalError::Io { path: dir.to_path_buf(), source }),
    }
}
