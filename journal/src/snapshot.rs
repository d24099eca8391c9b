//! The snapshot container: one file per snapshot, `snap-<seq, 20 digits>.snap`, holding a
//! checksummed header and an opaque payload (the caller's encoded state as of record `seq`).
//!
//! Writes go to a `.tmp` file that is fsynced and renamed into place, and the directory is
//! fsynced, so a snapshot file with its final name is complete. Loading prefers the newest
//! snapshot and falls back to older ones when it is damaged, reporting every one it skipped:
//! falling back is always safe because the journal replays the difference.
//!
//! Snapshots newer than a sequence number are removed by [`remove_after`] (a replica dropping
//! records that were never acknowledged, before [`crate::truncate_after`] cuts its journal).
//!
//! Every file operation goes through a [`Storage`] (`write_in`, `list_in`, `load_in`,
//! `load_newest_in`, `remove_after_in`); `write`, `list`, `load`, `load_newest` and
//! `remove_after` are their real-file shorthands.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::storage::{FileStorage, Storage};

/// Magic at the start of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"LDGRSNAP";
/// The snapshot container version this build reads and writes.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Size of the snapshot header.
pub const SNAPSHOT_HEADER_LEN_BYTES: u64 = 64;
/// The largest snapshot payload (checked on write, and on load before allocating).
pub const SNAPSHOT_PAYLOAD_LEN_BYTES_MAX: u64 = 1 << 36;

const NAME_PREFIX: &str = "snap-";
const NAME_SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".tmp";
const NAME_DIGITS: usize = 20;

const _: () = assert!(SNAPSHOT_HEADER_LEN_BYTES == 64);
const _: () =
    assert!(SNAPSHOT_PAYLOAD_LEN_BYTES_MAX <= isize::MAX as u64, "a payload fits one allocation");

/// A loaded, verified snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The sequence number of the last record the snapshot includes.
    pub seq: u64,
    /// The opaque payload.
    pub payload: Vec<u8>,
    /// The file it came from.
    pub path: PathBuf,
}

/// A snapshot file found in the directory (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The sequence number from the file name.
    pub seq: u64,
    /// The file.
    pub path: PathBuf,
}

/// A snapshot that [`load_newest`] skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub damage: SnapshotDamage,
}

/// What is wrong with a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotDamage {
    /// The file could not be read.
    #[error("cannot read: {kind}")]
    Read {
        /// The kind of I/O error.
        kind: io::ErrorKind,
    },
    /// The file is shorter than the header.
    #[error("file of {len_bytes} bytes is shorter than the header")]
    Truncated {
        /// The file length.
        len_bytes: u64,
    },
    /// The header does not start with the snapshot magic.
    #[error("bad magic")]
    Magic,
    /// The header carries a version this build does not read.
    #[error("unsupported version {version}")]
    Version {
        /// The version found.
        version: u32,
    },
    /// The header CRC32C does not match.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The header's sequence number disagrees with the file name.
    #[error("header says seq {found}, the name says {expected}")]
    Seq {
        /// The sequence number in the header.
        found: u64,
        /// The sequence number in the name.
        expected: u64,
    },
    /// The header's payload length disagrees with the file length (or exceeds the maximum).
    #[error("header says {header_len_bytes} payload bytes, the file holds {file_len_bytes}")]
    Len {
        /// The payload length in the header.
        header_len_bytes: u64,
        /// The payload bytes the file holds.
        file_len_bytes: u64,
    },
    /// The payload CRC32C does not match.
    #[error("payload checksum mismatch")]
    PayloadChecksum,
}

/// The result of [`load_newest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewestSnapshot {
    /// The newest snapshot that verified, if any.
    pub snapshot: Option<Snapshot>,
    /// Newer snapshots that were skipped because they are damaged (newest first); the caller logs them.
    pub damaged: Vec<DamagedSnapshot>,
}

/// Writes the snapshot of state as of record `seq` into `dir` (created if needed) and returns
/// its path. Durable when this returns: tmp file, fsync, rename, directory fsync.
pub fn write(dir: &Path, seq: u64, payload: &[u8]) -> Result<PathBuf, JournalError> {
    write_in(&FileStorage, dir, seq, payload)
}

/// [`write`] through `storage`.
pub fn write_in<S: Storage>(
    storage: &S,
    dir: &Path,
    seq: u64,
    payload: &[u8],
) -> Result<PathBuf, JournalError> {
    let len_bytes = payload.len() as u64;
    if len_bytes > SNAPSHOT_PAYLOAD_LEN_BYTES_MAX {
        return Err(JournalError::SnapshotTooLong {
            len_bytes,
            len_bytes_max: SNAPSHOT_PAYLOAD_LEN_BYTES_MAX,
        });
    }
    storage.create_dir(dir).map_err(JournalError::io(dir))?;
    let path = dir.join(file_name(seq));
    let temp_path = dir.join(format!("{}{TEMP_SUFFIX}", file_name(seq)));
    let header = encode_header(seq, payload);
    let written = write_file(storage, &temp_path, &header, payload)
        .and_then(|()| storage.rename(&temp_path, &path));
    if let Err(source) = written {
        // Best effort: a leftover temporary file is never loaded, and the next write replaces it.
        let _ = storage.remove_file(&temp_path);
        return Err(JournalError::Io { path: temp_path, source });
    }
    storage.sync_dir(dir).map_err(JournalError::io(dir))?;
    Ok(path)
}

/// The snapshot files in `dir` by ascending sequence number (an absent directory has none).
/// Files are not verified; temporary and unrelated files are ignored.
pub fn list(dir: &Path) -> Result<Vec<SnapshotInfo>, JournalError> {
    list_in(&FileStorage, dir)
}

/// [`list`] through `storage`.
pub fn list_in<S: Storage>(storage: &S, dir: &Path) -> Result<Vec<SnapshotInfo>, JournalError> {
    let names = match storage.list_dir(dir) {
        Ok(names) => names,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(JournalError::Io { path: dir.to_path_buf(), source }),
    };
    let mut snapshots: Vec<SnapshotInfo> = names
        .into_iter()
        .filter_map(|name| Some(SnapshotInfo { seq: parse_name(&name)?, path: dir.join(name) }))
        .collect();
    snapshots.sort_by_key(|snapshot| snapshot.seq);
    Ok(snapshots)
}

/// Removes every snapshot in `dir` of a state after record `seq` (file seq > `seq`) and returns
/// them, newest first; see [`remove_after_in`].
pub fn remove_after(dir: &Path, seq: u64) -> Result<Vec<PathBuf>, JournalError> {
    remove_after_in(&FileStorage, dir, seq)
}

/// [`remove_after`] through `storage`. Newest first, syncing the directory after each removal,
/// so a crash leaves the snapshots up to some seq: the newest one left never moves up. An
/// absent directory has nothing to remove; temporary files are left (they are never loaded).
///
/// Before cutting a journal after `seq`, remove its snapshots after `seq` first: a crash in
/// between then leaves a journal longer than its newest snapshot, which recovery replays,
/// never a snapshot ahead of the journal, which recovery refuses.
pub fn remove_after_in<S: Storage>(
    storage: &S,
    dir: &Path,
    seq: u64,
) -> Result<Vec<PathBuf>, JournalError> {
    let mut removed = Vec::new();
    for info in list_in(storage, dir)?.into_iter().rev().take_while(|info| info.seq > seq) {
        let path = info.path;
        storage.remove_file(&path).map_err(JournalError::io(&path))?;
        storage.sync_dir(dir).map_err(JournalError::io(dir))?;
        removed.push(path);
    }
    Ok(removed)
}

/// Loads the newest snapshot in `dir` that verifies, skipping (and reporting) damaged newer ones.
pub fn load_newest(dir: &Path) -> Result<NewestSnapshot, JournalError> {
    load_newest_in(&FileStorage, dir)
}

/// [`load_newest`] through `storage`.
pub fn load_newest_in<S: Storage>(storage: &S, dir: &Path) -> Result<NewestSnapshot, JournalError> {
    let mut newest = NewestSnapshot::default();
    for info in list_in(storage, dir)?.into_iter().rev() {
        match load_in(storage, &info) {
            Ok(snapshot) => {
                newest.snapshot = Some(snapshot);
                break;
            }
            Err(damage) => newest.damaged.push(DamagedSnapshot { path: info.path, damage }),
        }
    }
    Ok(newest)
}

/// Reads and verifies one snapshot file.
pub fn load(info: &SnapshotInfo) -> Result<Snapshot, SnapshotDamage> {
    load_in(&FileStorage, info)
}

/// [`load`] through `storage`.
pub fn load_in<S: Storage>(storage: &S, info: &SnapshotInfo) -> Result<Snapshot, SnapshotDamage> {
    let read_error = |error: io::Error| SnapshotDamage::Read { kind: error.kind() };
    // A snapshot file is never changed in place (a new one is renamed over it), so a view
    // of it is stable.
    let bytes = storage.map_read(&info.path).map_err(read_error)?;
    let file_len_bytes = bytes.len() as u64;
    let Some((header, rest)) = bytes.split_first_chunk::<{ SNAPSHOT_HEADER_LEN_BYTES as usize }>()
    else {
        return Err(SnapshotDamage::Truncated { len_bytes: file_len_bytes });
    };
    let decoded = decode_header(header, info.seq, file_len_bytes - SNAPSHOT_HEADER_LEN_BYTES)?;
    // `decode_header` checked the length against the file's.
    assert_eq!(decoded.payload_len_bytes, rest.len() as u64, "payload length checked");
    if crc32c::crc32c(rest) != decoded.payload_crc {
        return Err(SnapshotDamage::PayloadChecksum);
    }
    Ok(Snapshot { seq: info.seq, payload: rest.to_vec(), path: info.path.clone() })
}

struct DecodedHeader {
    payload_crc: u32,
    payload_len_bytes: u64,
}

/// The 64 header bytes: magic, version, reserved, seq, payload length, payload CRC, reserved,
/// header CRC.
fn encode_header(seq: u64, payload: &[u8]) -> [u8; SNAPSHOT_HEADER_LEN_BYTES as usize] {
    let mut out = [0u8; SNAPSHOT_HEADER_LEN_BYTES as usize];
    out[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
    out[8..12].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out[16..24].copy_from_slice(&seq.to_le_bytes());
    out[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    out[32..36].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let crc = crc32c::crc32c(&out[0..60]);
    out[60..64].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode_header(
    header: &[u8; SNAPSHOT_HEADER_LEN_BYTES as usize],
    name_seq: u64,
    file_payload_len_bytes: u64,
) -> Result<DecodedHeader, SnapshotDamage> {
    let u32_at = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
    if header[0..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotDamage::Magic);
    }
    let version = u32_at(8);
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotDamage::Version { version });
    }
    if crc32c::crc32c(&header[0..60]) != u32_at(60) {
        return Err(SnapshotDamage::HeaderChecksum);
    }
    let seq = u64_at(16);
    if seq != name_seq {
        return Err(SnapshotDamage::Seq { found: seq, expected: name_seq });
    }
    let payload_len_bytes = u64_at(24);
    if payload_len_bytes != file_payload_len_bytes
        || payload_len_bytes > SNAPSHOT_PAYLOAD_LEN_BYTES_MAX
    {
        return Err(SnapshotDamage::Len {
            header_len_bytes: payload_len_bytes,
            file_len_bytes: file_payload_len_bytes,
        });
    }
    Ok(DecodedHeader { payload_crc: u32_at(32), payload_len_bytes })
}

/// A new file at `path` holding `header` then `payload`, synced. A leftover of an earlier
/// failed write at the same path is replaced.
fn write_file<S: Storage>(
    storage: &S,
    path: &Path,
    header: &[u8],
    payload: &[u8],
) -> io::Result<()> {
    match storage.remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let file = storage.create_new(path)?;
    storage.write_at(&file, 0, header)?;
    storage.write_at(&file, header.len() as u64, payload)?;
    storage.sync_file(&file)
}

/// The file name of the snapshot as of record `seq`: `snap-<seq, 20 digits>.snap`.
pub fn file_name(seq: u64) -> String {
    format!("{NAME_PREFIX}{seq:0NAME_DIGITS$}{NAME_SUFFIX}")
}

/// `snap-<20 digits>.snap` → the sequence number.
fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests;
