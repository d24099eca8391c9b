//! The receiver's side of a state transfer (REPLICATION.md, *State transfer*): a node the
//! trim passed copies a peer's snapshot and journal segments, verifies them, cuts them at the
//! newest checkpoint entry of the log and installs them in place of its own, with that entry
//! as its position. The state is then checked against the entry's `state_hash` when the
//! runtime has recovered it (`Follow::verify_position`), before anything is followed.
//!
//! Files arrive in `DATA_DIR/transfer/` and are installed by renames; `transfer/COMPLETE`
//! (the position, 48 bytes) marks a download verified whole. A start that finds the marker
//! finishes the install ([`finish_install`]); one that finds the directory without it removes
//! it (a download cut short).
//!
//! **Invariant:** nothing of this node's own data directory changes before a copy is verified
//! whole; after that, every step of the install can be repeated.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use protocol::auth::ClientCredentials;
use protocol::client::{Client, ClientError, ClientOptions};
use protocol::limits::STATE_CHUNK_LEN_BYTES_MAX;
use protocol::wire::{ErrorCode, StateFile, StateFileKind};

use crate::entry::{Entry, Head};
use crate::store::{Genesis, Store};

/// Where a download is kept until it is installed.
const STAGING_DIR: &str = "transfer";
/// Inside it: present once the download is verified; holds the position (a head).
const COMPLETE_FILE: &str = "COMPLETE";
/// Rounds over the peers before giving up.
const ROUNDS_MAX: u32 = 10;
/// Pause between rounds.
const ROUND_PAUSE: Duration = Duration::from_secs(1);
/// STATE_OFFERs to one peer while it answers `unavailable` (behind the checkpoint entry).
const OFFER_ATTEMPTS_MAX: u32 = 50;
/// Pause between them.
const OFFER_PAUSE: Duration = Duration::from_millis(100);
/// Role byte of a standby's replica record (a standby is asked before the primary).
const ROLE_STANDBY: u8 = 1;

/// How this node connects to its peers for a state transfer: an admin credential they know
/// (the group's nodes share their credentials store) and their TLS settings.
#[derive(Clone)]
pub struct TransferClient {
    /// The client credentials file (its first admin entry is used).
    pub credentials: PathBuf,
    /// Connection settings (TLS when the peers serve it).
    pub options: ClientOptions,
}

impl std::fmt::Debug for TransferClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferClient")
            .field("credentials", &self.credentials)
            .field("tls", &self.options.tls.is_some())
            .finish()
    }
}

/// What a transfer installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Installed {
    /// The position: the log's checkpoint entry the copy was cut at.
    pub position: Head,
    /// The snapshot it brought.
    pub snapshot_seq: u64,
}

/// What the transfer needs from the log and this node.
pub(crate) struct Receiver<'a> {
    pub store: &'a Store,
    pub node: &'a str,
    pub data_dir: &'a Path,
    pub client: &'a TransferClient,
    pub genesis: Option<Genesis>,
}

impl Receiver<'_> {
    /// Copies a peer's state through the log's newest checkpoint entry and installs it.
    pub(crate) fn run(&self) -> Result<Installed, String> {
        let credentials = ClientCredentials::from_file(&self.client.credentials, None).map_err(|error| {
            format!(
                "a state transfer needs an admin credential the peers know: {error} (--transfer-credentials)"
            )
        })?;
        let mut last_error = String::from("no peer is registered in the group");
        // Bounded: ROUNDS_MAX rounds over the peers.
        for round in 0..ROUNDS_MAX {
            if round > 0 {
                std::thread::sleep(ROUND_PAUSE);
            }
            let checkpoint = match self.checkpoint() {
                Ok(checkpoint) => checkpoint,
                Err(why) => {
                    last_error = why;
                    continue;
                }
            };
            // The hold first, so that the trim keeps what this node will follow from while it
            // copies, recovers and catches up (the replica thread removes it then).
            self.store
                .put_hold(self.node, checkpoint.index)
                .map_err(|error| format!("set this node's transfer hold: {}", error.message()))?;
            self.store
                .put_floor(self.node, checkpoint.index)
                .map_err(|error| format!("set this node's floor: {}", error.message()))?;
            // Still there once held (a trim may have passed it in between)?
            match self.store.oldest_index() {
                Ok(Some(oldest)) if oldest <= checkpoint.index => {}
                Ok(_) => {
                    last_error = format!("log entry {} was trimmed meanwhile", checkpoint.index);
                    continue;
                }
                Err(error) => {
                    last_error = format!("etcd: {}", error.message());
                    continue;
                }
            }
            let peers = match self.peers() {
                Ok(peers) if peers.is_empty() => {
                    last_error = "no peer is registered in the group".into();
                    continue;
                }
                Ok(peers) => peers,
                Err(why) => {
                    last_error = why;
                    continue;
                }
            };
            for (peer, addr) in peers {
                eprintln!(
                    "ledgerd: state transfer from {peer} ({addr}) through log entry {} (seq {})",
                    checkpoint.index, checkpoint.last_seq
                );
                match self.copy_from(&addr, &credentials, &checkpoint) {
                    Ok(installed) => return Ok(installed),
                    Err(why) => {
                        eprintln!("ledgerd: state transfer from {peer} failed: {why}");
                        last_error = format!("from {peer}: {why}");
                    }
                }
            }
        }
        Err(format!("the state transfer failed after {ROUNDS_MAX} rounds over the peers; last: {last_error}"))
    }

    /// The head of the log's newest checkpoint entry (its `state_hash` is checked once the
    /// runtime has recovered the copy).
    fn checkpoint(&self) -> Result<Head, String> {
        let etcd = |error: crate::store::StoreError| format!("etcd: {}", error.message());
        let index = self.store.checkpoint().map_err(etcd)?.ok_or(
            "the log records no checkpoint entry yet (its primary appends one every few entries)",
        )?;
        let page = self.store.entries(index, 1).map_err(etcd)?;
        let Some((found, value)) = page.entries.first().filter(|(found, _)| *found == index) else {
            return Err(format!("the checkpoint entry {index} is not in the log"));
        };
        let entry = Entry::decode(value).map_err(|error| format!("log entry {found}: {error}"))?;
        if entry.state_hash.is_none() {
            return Err(format!("log entry {found} carries no checkpoint"));
        }
        Ok(entry.head())
    }

    /// The other nodes of the group, standbys first: `(node, client address)`.
    fn peers(&self) -> Result<Vec<(String, String)>, String> {
        let (mut records, _) =
            self.store.replicas().map_err(|error| format!("etcd: {}", error.message()))?;
        records.retain(|record| record.node != self.node && !record.addr.is_empty());
        records.sort_by_key(|record| (record.role != ROLE_STANDBY, record.node.clone()));
        Ok(records.into_iter().map(|record| (record.node, record.addr)).collect())
    }

    fn copy_from(
        &self,
        addr: &str,
        credentials: &ClientCredentials,
        checkpoint: &Head,
    ) -> Result<Installed, String> {
        let through_seq = checkpoint.last_seq;
        let staging = self.data_dir.join(STAGING_DIR);
        remove_dir_if_present(&staging)?;
        let (journal_dir, snapshot_dir) =
            (journal::journal_dir(&staging), journal::snapshot_dir(&staging));
        for dir in [&journal_dir, &snapshot_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|error| format!("create {}: {error}", dir.display()))?;
        }
        let mut client = Client::connect(addr, credentials, self.client.options.clone())
            .map_err(|error| format!("connect: {error}"))?;
        // A peer that has not applied the checkpoint entry yet says `unavailable`: it is a few
        // entries behind the log at most, so ask it again shortly.
        let mut attempts = 1;
        let files = loop {
            match client.state_offer(through_seq) {
                Ok(files) => break files,
                Err(ClientError::Refused { code: ErrorCode::Unavailable, .. })
                    if attempts < OFFER_ATTEMPTS_MAX =>
                {
                    attempts += 1;
                    std::thread::sleep(OFFER_PAUSE);
                }
                Err(error) => return Err(format!("STATE_OFFER: {error}")),
            }
        };
        let first_needed = files.snapshot_seq + 1;
        match files.segments.first() {
            Some((first_seq, _)) if *first_seq <= first_needed && files.snapshot_seq <= through_seq => {}
            _ => {
                return Err(format!(
                    "the offer (snapshot {}, segments from {:?}) does not hold seqs {first_needed}..={through_seq}",
                    files.snapshot_seq,
                    files.segments.first().map(|(first_seq, _)| first_seq)
                ))
            }
        }
        let snapshot = StateFile { kind: StateFileKind::Snapshot, id: files.snapshot_seq };
        let snapshot_path = snapshot_dir.join(journal::snapshot::file_name(files.snapshot_seq));
        download(&mut client, snapshot, files.snapshot_len_bytes, &snapshot_path)?;
        for (first_seq, len_bytes) in &files.segments {
            let segment = StateFile { kind: StateFileKind::Segment, id: *first_seq };
            let path = journal_dir.join(journal::segment_file_name(*first_seq));
            download(&mut client, segment, *len_bytes, &path)?;
        }
        client.close();
        for dir in [&journal_dir, &snapshot_dir, &staging] {
            sync_dir(dir)?;
        }
        self.verify_snapshot(&snapshot_path, files.snapshot_seq)?;
        // The journal: valid by recovery's rules, intact through the checkpoint, cut there
        // (what follows it in the copy, possibly torn, is read again from the log).
        let tail = journal::intact_tail(&journal_dir)
            .map_err(|error| format!("the copied journal: {error}"))?;
        if tail.end_seq < through_seq {
            return Err(format!(
                "the copied journal's intact records end at seq {}, before seq {through_seq}",
                tail.end_seq
            ));
        }
        journal::truncate_damaged_after(&journal_dir, through_seq)
            .map_err(|error| format!("cut the copied journal after seq {through_seq}: {error}"))?;
        let complete = staging.join(COMPLETE_FILE);
        write_synced(&complete, &checkpoint.encode())?;
        sync_dir(&staging)?;
        finish_install(self.data_dir)?;
        Ok(Installed { position: *checkpoint, snapshot_seq: files.snapshot_seq })
    }

    /// The copied snapshot verifies (its container's checksums), decodes, and has the group's
    /// engine settings.
    fn verify_snapshot(&self, path: &Path, seq: u64) -> Result<(), String> {
        let info = journal::snapshot::SnapshotInfo { seq, path: path.to_path_buf() };
        let snapshot = journal::snapshot::load(&info)
            .map_err(|damage| format!("the copied snapshot {}: {damage:?}", path.display()))?;
        let engine = engine::Engine::decode_state(&snapshot.payload).map_err(|error| {
            format!("the copied snapshot {} does not decode: {error}", path.display())
        })?;
        let config = engine.config();
        if let Some(genesis) = self.genesis {
            if (config.hash_seed, config.tx_retained) != (genesis.hash_seed, genesis.tx_retained) {
                return Err(format!(
                    "the copied snapshot's engine settings (hash_seed {:x}, tx_retained {}) are not the group's",
                    config.hash_seed, config.tx_retained
                ));
            }
        }
        Ok(())
    }
}

/// Finishes an install that a verified download began (`transfer/COMPLETE` present): the
/// copy's journal and snapshots replace this node's, then its position is written. Every step
/// can be repeated after a crash. A download without the marker is removed. `Ok(Some)`: the
/// position installed.
pub(crate) fn finish_install(data_dir: &Path) -> Result<Option<Head>, String> {
    let staging = data_dir.join(STAGING_DIR);
    let complete = staging.join(COMPLETE_FILE);
    if !complete.exists() {
        remove_dir_if_present(&staging)?;
        return Ok(None);
    }
    let bytes = std::fs::read(&complete)
        .map_err(|error| format!("read {}: {error}", complete.display()))?;
    let position = Head::decode(&bytes)
        .map_err(|error| format!("{} does not hold a head: {error}", complete.display()))?;
    let moves = [
        (journal::journal_dir(&staging), journal::journal_dir(data_dir)),
        (journal::snapshot_dir(&staging), journal::snapshot_dir(data_dir)),
    ];
    for (from, to) in &moves {
        if from.exists() {
            remove_dir_if_present(to)?;
            std::fs::rename(from, to)
                .map_err(|error| format!("move {} to {}: {error}", from.display(), to.display()))?;
            sync_dir(data_dir)?;
        }
    }
    crate::position::write(data_dir, &position).map_err(|error| error.to_string())?;
    std::fs::remove_file(&complete)
        .map_err(|error| format!("remove {}: {error}", complete.display()))?;
    remove_dir_if_present(&staging)?;
    sync_dir(data_dir)?;
    Ok(Some(position))
}

/// Copies the first `len_bytes` of `file` from the peer into `path` and gives the copy the
/// file's whole length (a segment's allocated zeros are not sent: the copy's are a hole),
/// synced. A snapshot is copied whole: its length must be what was offered.
fn download(
    client: &mut Client,
    file: StateFile,
    len_bytes: u64,
    path: &Path,
) -> Result<(), String> {
    let mut out =
        File::create(path).map_err(|error| format!("create {}: {error}", path.display()))?;
    let mut offset = 0u64;
    let mut file_len_bytes = len_bytes;
    // Bounded: every pass moves `offset` forward by at least one byte, up to `len_bytes`.
    while offset < len_bytes {
        let want = (len_bytes - offset).min(u64::from(STATE_CHUNK_LEN_BYTES_MAX)) as u32;
        let chunk = client
            .state_read(file, offset, want)
            .map_err(|error| format!("STATE_READ {file:?} at {offset}: {error}"))?;
        let whole = file.kind == StateFileKind::Snapshot;
        if chunk.file_len_bytes < len_bytes || (whole && chunk.file_len_bytes != len_bytes) {
            return Err(format!(
                "{file:?} is {} bytes now, {len_bytes} when offered",
                chunk.file_len_bytes
            ));
        }
        if chunk.data.is_empty() {
            return Err(format!("{file:?}: no bytes at offset {offset} of {len_bytes}"));
        }
        file_len_bytes = chunk.file_len_bytes;
        out.write_all(&chunk.data).map_err(|error| format!("write {}: {error}", path.display()))?;
        offset += chunk.data.len() as u64;
    }
    out.set_len(file_len_bytes).map_err(|error| format!("extend {}: {error}", path.display()))?;
    out.sync_all().map_err(|error| format!("sync {}: {error}", path.display()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut file =
        File::create(path).map_err(|error| format!("create {}: {error}", path.display()))?;
    file.write_all(bytes).map_err(|error| format!("write {}: {error}", path.display()))?;
    file.sync_all().map_err(|error| format!("sync {}: {error}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| format!("sync {}: {error}", dir.display()))
}

fn remove_dir_if_present(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(format!("remove {}: {error}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        Head { index: 41, epoch: 3, last_seq: 1_505, entry_hash: 0xfeed }
    }

    /// A data directory with a journal and snapshots of its own (one file each, by content).
    fn node_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (sub, name, text) in
            [("journal", "old.seg", "old journal"), ("snapshots", "old.snap", "old")]
        {
            std::fs::create_dir_all(dir.path().join(sub)).expect("dir");
            std::fs::write(dir.path().join(sub).join(name), text).expect("file");
        }
        dir
    }

    /// A verified download, as `copy_from` leaves it before installing.
    fn staged(data_dir: &Path) {
        let staging = data_dir.join(STAGING_DIR);
        for (sub, name) in [("journal", "new.seg"), ("snapshots", "new.snap")] {
            std::fs::create_dir_all(staging.join(sub)).expect("dir");
            std::fs::write(staging.join(sub).join(name), "new").expect("file");
        }
        write_synced(&staging.join(COMPLETE_FILE), &head().encode()).expect("marker");
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn a_verified_download_replaces_the_node_s_journal_and_snapshots_and_sets_its_position() {
        let dir = node_dir();
        staged(dir.path());
        assert_eq!(finish_install(dir.path()), Ok(Some(head())));
        assert_eq!(files(&dir.path().join("journal")), ["new.seg"]);
        assert_eq!(files(&dir.path().join("snapshots")), ["new.snap"]);
        assert_eq!(crate::position::read(dir.path()).expect("position"), Some(head()));
        assert!(!dir.path().join(STAGING_DIR).exists());
        assert_eq!(finish_install(dir.path()), Ok(None), "nothing more to do");
    }

    /// A crash after any step of the install: the next start finishes it.
    #[test]
    fn an_install_cut_short_is_finished_by_the_next_start() {
        // The journal moved already, the snapshots not yet.
        let dir = node_dir();
        staged(dir.path());
        std::fs::remove_dir_all(dir.path().join("journal")).expect("remove");
        std::fs::rename(dir.path().join("transfer/journal"), dir.path().join("journal"))
            .expect("mv");
        assert_eq!(finish_install(dir.path()), Ok(Some(head())));
        assert_eq!(files(&dir.path().join("journal")), ["new.seg"]);
        assert_eq!(files(&dir.path().join("snapshots")), ["new.snap"]);
        // The old journal removed, the new one not moved in yet.
        let dir = node_dir();
        staged(dir.path());
        std::fs::remove_dir_all(dir.path().join("journal")).expect("remove");
        assert_eq!(finish_install(dir.path()), Ok(Some(head())));
        assert_eq!(files(&dir.path().join("journal")), ["new.seg"]);
        assert_eq!(crate::position::read(dir.path()).expect("position"), Some(head()));
    }

    /// A download without its marker was cut short: it goes, the node's own data stays.
    #[test]
    fn a_download_cut_short_is_removed_and_changes_nothing() {
        let dir = node_dir();
        staged(dir.path());
        std::fs::remove_file(dir.path().join("transfer").join(COMPLETE_FILE)).expect("rm");
        assert_eq!(finish_install(dir.path()), Ok(None));
        assert!(!dir.path().join(STAGING_DIR).exists());
        assert_eq!(files(&dir.path().join("journal")), ["old.seg"]);
        assert_eq!(files(&dir.path().join("snapshots")), ["old.snap"]);
        assert_eq!(crate::position::read(dir.path()).expect("position"), None);
    }

    #[test]
    fn a_damaged_marker_is_refused_and_changes_nothing() {
        let dir = node_dir();
        staged(dir.path());
        std::fs::write(dir.path().join("transfer").join(COMPLETE_FILE), [0u8; 12]).expect("write");
        let refused = finish_install(dir.path()).expect_err("not a head");
        assert!(refused.contains("does not hold a head"), "{refused}");
        assert_eq!(files(&dir.path().join("journal")), ["old.seg"]);
    }
}
