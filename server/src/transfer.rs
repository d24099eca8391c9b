//! The donor's side of a replica group's state transfer (REPLICATION.md, *State transfer*):
//! STATE_OFFER names the files that hold this node's state through a committed seq (a snapshot
//! and the journal segments after it), STATE_READ returns their bytes in pieces. The files
//! are read, never changed: snapshots are immutable once named, sealed segments too, and the
//! active segment's bytes up to a durable record never change again (the receiver cuts what
//! follows). Everything the receiver installs it verifies against the log in etcd.
//!
//! **Bound:** one STATE_READ reads at most `STATE_CHUNK_LEN_BYTES_MAX` (1 MiB) with one
//! positioned read, on the network thread: a transfer is paced by its receiver, one piece per
//! request.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::limits::{STATE_CHUNK_LEN_BYTES_MAX, STATE_SEGMENTS_MAX};
use protocol::wire::{StateFile, StateFileKind, StateFiles, StateRead};

/// Where a node's files are, and how far its journal is committed in the group's log.
#[derive(Clone)]
pub(crate) struct StateSource {
    pub data_dir: PathBuf,
    pub role: Arc<replication::Role>,
}

/// A refusal: sent as ERROR `unavailable` with this message.
pub(crate) type Unavailable = String;

impl StateSource {
    /// The newest snapshot at or before `through_seq` and the segments holding every record
    /// after it up to `through_seq`, with their lengths now.
    pub(crate) fn offer(&self, through_seq: u64) -> Result<StateFiles, Unavailable> {
        let committed = self.role.log_head().map_or(0, |head| head.last_seq);
        if committed < through_seq {
            return Err(format!(
                "this node holds the log only through seq {committed}, not through seq {through_seq}"
            ));
        }
        let snapshot_dir = journal::snapshot_dir(&self.data_dir);
        let snapshots = journal::snapshot::list(&snapshot_dir)
            .map_err(|error| format!("list {}: {error}", snapshot_dir.display()))?;
        let newest =
            snapshots.iter().filter(|info| info.seq <= through_seq).max_by_key(|info| info.seq);
        let Some(snapshot) = newest else {
            return Err(format!("no snapshot at or before seq {through_seq}"));
        };
        let journal_dir = journal::journal_dir(&self.data_dir);
        let segments = journal::list_segments(&journal_dir)
            .map_err(|error| format!("list {}: {error}", journal_dir.display()))?;
        // From the segment holding `snapshot.seq + 1` to the last one starting by `through_seq`.
        let first_needed = snapshot.seq + 1;
        let start = segments.iter().rposition(|segment| segment.first_seq <= first_needed);
        let Some(start) = start else {
            return Err(format!(
                "the journal no longer holds seq {first_needed} (its oldest segment starts later)"
            ));
        };
        let mut listed = Vec::new();
        for segment in &segments[start..] {
            if segment.first_seq > through_seq && !listed.is_empty() {
                break;
            }
            // Only the records: the zeros a segment is allocated with are not copied.
            let data_end = journal::segment_data_end(&segment.path, segment.first_seq)
                .map_err(|error| format!("{}: {error}", segment.path.display()))?;
            listed.push((segment.first_seq, data_end));
        }
        if listed.len() > STATE_SEGMENTS_MAX as usize {
            return Err(format!(
                "{} segments hold seqs {first_needed}..={through_seq}, more than one offer lists ({STATE_SEGMENTS_MAX})",
                listed.len()
            ));
        }
        Ok(StateFiles {
            snapshot_seq: snapshot.seq,
            snapshot_len_bytes: file_len(&snapshot.path)?,
            segments: listed,
        })
    }

    /// Reads the piece `read` asks for: `(file length now, bytes)`.
    pub(crate) fn read(&self, read: &StateRead) -> Result<(u64, Vec<u8>), Unavailable> {
        let path = self.path_of(read.file)?;
        let file =
            File::open(&path).map_err(|error| format!("open {}: {error}", path.display()))?;
        let len_bytes =
            file.metadata().map_err(|error| format!("{}: {error}", path.display()))?.len();
        if read.offset > len_bytes {
            return Err(format!(
                "offset {} is beyond {} ({len_bytes} bytes)",
                read.offset,
                path.display()
            ));
        }
        let wanted =
            (len_bytes - read.offset).min(u64::from(read.len_max.min(STATE_CHUNK_LEN_BYTES_MAX)));
        let mut data = vec![0; wanted as usize];
        file.read_exact_at(&mut data, read.offset)
            .map_err(|error| format!("read {}: {error}", path.display()))?;
        Ok((len_bytes, data))
    }

    /// The file `file` names, found by listing its directory (no path is built from input).
    fn path_of(&self, file: StateFile) -> Result<PathBuf, Unavailable> {
        let found = match file.kind {
            StateFileKind::Snapshot => {
                let dir = journal::snapshot_dir(&self.data_dir);
                journal::snapshot::list(&dir)
                    .map_err(|error| format!("list {}: {error}", dir.display()))?
                    .into_iter()
                    .find(|info| info.seq == file.id)
                    .map(|info| info.path)
            }
            StateFileKind::Segment => {
                let dir = journal::journal_dir(&self.data_dir);
                journal::list_segments(&dir)
                    .map_err(|error| format!("list {}: {error}", dir.display()))?
                    .into_iter()
                    .find(|segment| segment.first_seq == file.id)
                    .map(|segment| segment.path)
            }
        };
        found.ok_or_else(|| {
            let what = match file.kind {
                StateFileKind::Snapshot => "snapshot",
                StateFileKind::Segment => "journal segment",
            };
            format!("no {what} {} on this node (any more)", file.id)
        })
    }
}

fn file_len(path: &Path) -> Result<u64, Unavailable> {
    std::fs::metadata(path)
        .map(|metadata| metadata.len())
        .map_err(|error| format!("{}: {error}", path.display()))
}
