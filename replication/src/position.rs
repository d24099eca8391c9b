//! The replica's confirmed position: the head of the last log entry this node knows is both
//! committed in etcd and held by its own journal, kept in `DATA_DIR/replication.position`
//! (REPLICATION.md, *The position file*). At start, records after it are not trusted: they
//! are cut off and read again from the log (a deposed primary's unacknowledged tail goes that
//! way), and following resumes after it instead of at the log's first entry.
//!
//! **Invariant:** the file never names an entry beyond what the local journal holds durably:
//! it is written only after the journal flush that covers the entry (a standby: after
//! `Handle::replicate` returned; a primary: after the append committed, which follows its local
//! flush). It may lag behind; that only costs a re-read.

use std::io::Write;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::entry::Head;

/// `b"LRPO"`.
pub const POSITION_MAGIC: [u8; 4] = *b"LRPO";
/// The file's length: magic, version u16, reserved u16, the 48-byte head, XXH3-64 of the rest.
pub const POSITION_LEN_BYTES: usize = 64;

/// The position file of the ledger in `data_dir`.
pub fn position_path(data_dir: &Path) -> PathBuf {
    data_dir.join("replication.position")
}

/// Why the position file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    /// Reading or writing it failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Its bytes are not a position.
    #[error("{path}: not a replication position ({what})")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
}

/// The 64 bytes of a position.
pub fn encode(head: &Head) -> [u8; POSITION_LEN_BYTES] {
    let mut out = [0u8; POSITION_LEN_BYTES];
    out[0..4].copy_from_slice(&POSITION_MAGIC);
    out[4..6].copy_from_slice(&1u16.to_le_bytes());
    out[8..56].copy_from_slice(&head.encode());
    let check = xxh3_64(&out[..56]);
    out[56..64].copy_from_slice(&check.to_le_bytes());
    out
}

/// Decodes exactly what [`encode`] produces.
pub fn decode(bytes: &[u8]) -> Result<Head, &'static str> {
    let bytes: &[u8; POSITION_LEN_BYTES] = bytes.try_into().map_err(|_| "wrong length")?;
    let mut check = [0u8; 8];
    check.copy_from_slice(&bytes[56..64]);
    if u64::from_le_bytes(check) != xxh3_64(&bytes[..56]) {
        return Err("checksum mismatch");
    }
    if bytes[0..4] != POSITION_MAGIC || bytes[4..6] != 1u16.to_le_bytes() || bytes[6..8] != [0, 0] {
        return Err("magic, version or reserved bytes");
    }
    Head::decode(&bytes[8..56]).map_err(|_| "the head inside")
}

/// The position in `data_dir`, `None` if there is no file.
pub fn read(data_dir: &Path) -> Result<Option<Head>, PositionError> {
    let path = position_path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes).map(Some).map_err(|what| PositionError::Damaged { path, what }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PositionError::Io { path, source }),
    }
}

/// Replaces the position in `data_dir` with `head`: a temporary file, synced, renamed over
/// the old one (a crash leaves the old one or the new one, both valid lower bounds).
pub fn write(data_dir: &Path, head: &Head) -> Result<(), PositionError> {
    let path = position_path(data_dir);
    let temp = data_dir.join("replication.position.tmp");
    let io = |source| PositionError::Io { path: path.clone(), source };
    let mut file = std::fs::File::create(&temp).map_err(io)?;
    file.write_all(&encode(head)).map_err(io)?;
    file.sync_data().map_err(io)?;
    std::fs::rename(&temp, &path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_damage_is_refused() {
        let head = Head { index: 12, epoch: 3, last_seq: 999, entry_hash: 0xfeed };
        let bytes = encode(&head);
        assert_eq!(decode(&bytes), Ok(head));
        for at in 0..POSITION_LEN_BYTES {
            let mut damaged = bytes;
            damaged[at] ^= 0x40;
            assert!(decode(&damaged).is_err(), "byte {at} flipped still decodes");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(read(dir.path()).expect("no file yet").is_none());
        write(dir.path(), &head).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(head));
    }
}
