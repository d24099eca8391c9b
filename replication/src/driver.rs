//! The wiring of a replica into a binary (feature `driver`, on by default): [`prepare`]
//! connects to etcd and reconciles the local journal, [`Starter::start`] starts the replica
//! and lease threads on the running runtime.

use std::sync::Arc;

use crossbeam_channel::bounded;
use runtime::{DurableStage, Handle};

use crate::entry::{Entry, Head};
use crate::metrics::ReplicationMetrics;
use crate::replica::{self, ClusterOptions, Replica};
use crate::role::Role;
use crate::store::{self, Genesis};
use crate::transfer::{self, TransferClient};
use crate::{keys, position, stage};

/// The engine settings a runtime recovered with (`RecoveryReport::engine_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// `EngineConfig::hash_seed`.
    pub hash_seed: u64,
    /// `EngineConfig::tx_retained`.
    pub tx_retained: u32,
}

/// What [`prepare`] refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// A ledger name or node id that cannot be used.
    #[error(transparent)]
    Name(#[from] keys::NameError),
    /// A setting out of its range.
    #[error("{0}")]
    Options(String),
    /// The local journal cannot be reconciled with the log.
    #[error("{0}")]
    Local(String),
    /// etcd could not be reached.
    #[error("etcd at {endpoints}: {message}")]
    Etcd {
        /// The endpoints tried.
        endpoints: String,
        /// What failed.
        message: String,
    },
}

/// The second half of the wiring: starts the replica thread once the runtime runs.
pub struct Starter {
    wiring: replica::Wiring,
    genesis: Option<store::Genesis>,
    /// The confirmed position read at start ([`Starter::reconcile_local`]).
    position: Option<Head>,
    /// The seqs cut off the local journal at start.
    cut: Option<(u64, u64)>,
    /// The damage cut with them, described.
    damage: Option<String>,
    /// `(resumed at, position's)` last seqs when the position was moved back.
    rewound: Option<(u64, u64)>,
    /// How to reach peers for a state transfer (`None`: none is made).
    transfer_client: Option<TransferClient>,
    /// What a state transfer at start installed: `(position, snapshot seq)`.
    transferred: Option<(Head, u64)>,
}

/// Why one pass of reconciliation did not decide.
enum Reconcile {
    /// The log no longer holds what this node must follow from (trimmed past it), or its
    /// journal cannot be cut where it must: its state must come from a peer.
    NeedsTransfer(String),
    Failed(ReplicationError),
}

impl From<ReplicationError> for Reconcile {
    fn from(error: ReplicationError) -> Reconcile {
        Reconcile::Failed(error)
    }
}

/// The log's first entry, as reconciliation needs it.
struct FirstEntry {
    first_seq: u64,
    head: Head,
}

/// Checks the options, connects to etcd, and returns the durable stage to start the runtime
/// with and the [`Starter`] for the replica thread.
pub fn prepare(
    options: ClusterOptions,
    data_dir: &std::path::Path,
) -> Result<(Box<dyn DurableStage>, Starter), ReplicationError> {
    let keys = keys::Keys::new(&options.ledger)?;
    keys::check_name("node id", &options.node)?;
    if options.endpoints.is_empty() {
        return Err(ReplicationError::Options("no etcd endpoint given".into()));
    }
    if options.log_entries_max < 2 {
        return Err(ReplicationError::Options(format!(
            "log_entries_max {} is below 2 (the log keeps at least the head and the entry before it)",
            options.log_entries_max
        )));
    }
    // A checkpoint at least every `log_entries_max / 2` entries: the trim keeps the newest one
    // (a state transfer starts there), so the log stays within `log_entries_max` + 1 entries.
    let mut options = options;
    options.checkpoint_every_entries =
        options.checkpoint_every_entries.clamp(1, (options.log_entries_max / 2).max(1));
    if !(1..=60).contains(&options.lease_ttl_s) {
        return Err(ReplicationError::Options(format!(
            "lease TTL {} s is outside 1..=60",
            options.lease_ttl_s
        )));
    }
    let store = store::Store::connect(&options.endpoints, keys, options.request_timeout_ms)
        .map_err(|error| ReplicationError::Etcd {
            endpoints: options.endpoints.join(","),
            message: error.message().to_owned(),
        })?;
    let genesis = store.genesis().map_err(|error| ReplicationError::Etcd {
        endpoints: options.endpoints.join(","),
        message: error.message().to_owned(),
    })?;
    let store = Arc::new(store);
    let role = Arc::new(Role::default());
    let metrics = Arc::new(ReplicationMetrics::default());
    // One promotion per process: the role never goes back to standby.
    let (control, control_rx) = bounded(1);
    let stage = stage::Stage::new(
        store.clone(),
        role.clone(),
        metrics.clone(),
        control_rx,
        options.checkpoint_every_entries,
        options.compress_entries,
    );
    let data_dir = data_dir.to_path_buf();
    let wiring =
        replica::Wiring { options, data_dir, store, role, metrics, control, transfers: false };
    let starter = Starter {
        wiring,
        genesis,
        position: None,
        cut: None,
        damage: None,
        rewound: None,
        transfer_client: None,
        transferred: None,
    };
    Ok((Box::new(stage), starter))
}

impl Starter {
    /// The node's role (for the server and the metrics).
    pub fn role(&self) -> Arc<Role> {
        self.wiring.role.clone()
    }

    /// The replication counters.
    pub fn metrics(&self) -> Arc<ReplicationMetrics> {
        self.wiring.metrics.clone()
    }

    /// Lets this node catch up by a state transfer from a peer when the log was trimmed past
    /// it (REPLICATION.md, *State transfer*), connecting as `client` says.
    pub fn set_transfer_client(&mut self, client: TransferClient) {
        self.transfer_client = Some(client);
        self.wiring.transfers = true;
    }

    /// What a state transfer at start installed: `(position, snapshot seq)`.
    pub fn transferred(&self) -> Option<(Head, u64)> {
        self.transferred
    }

    /// Before the runtime starts: finishes a state transfer's install that a crash cut short,
    /// reads this node's confirmed position (REPLICATION.md, *The position file*) and decides,
    /// by the recovery decision table, what of the local journal can be kept, so that
    /// following resumes right after it. When the log no longer holds what this node needs,
    /// its state comes from a peer first (with a transfer client), or it refuses to start.
    pub fn reconcile_local(&mut self) -> Result<Option<Head>, ReplicationError> {
        let local = |message: String| ReplicationError::Local(message);
        if let Some(head) = transfer::finish_install(&self.wiring.data_dir).map_err(local)? {
            eprintln!(
                "ledgerd: finished installing a state transfer (position: log entry {}, seq {})",
                head.index, head.last_seq
            );
        }
        let why = match self.reconcile_once() {
            Ok(position) => return Ok(position),
            Err(Reconcile::Failed(error)) => return Err(error),
            Err(Reconcile::NeedsTransfer(why)) => why,
        };
        let Some(client) = self.transfer_client.clone() else {
            return Err(local(format!(
                "{why}; no state transfer is configured, so re-seed this node from a copy of a stopped \
                 standby's data directory (README, Catching up by a state transfer, and re-seeding)"
            )));
        };
        eprintln!("ledgerd: {why}: catching up by a state transfer from a peer");
        let receiver = transfer::Receiver {
            store: &self.wiring.store,
            node: &self.wiring.options.node,
            data_dir: &self.wiring.data_dir,
            client: &client,
            genesis: self.genesis,
        };
        let installed = receiver.run().map_err(|why| {
            local(format!(
                "{why}; re-seed this node from a copy of a stopped standby's data directory (README, \
                 Catching up by a state transfer, and re-seeding)"
            ))
        })?;
        eprintln!(
            "ledgerd: state transfer installed: snapshot at seq {}, journal through seq {} (log entry {})",
            installed.snapshot_seq, installed.position.last_seq, installed.position.index
        );
        self.transferred = Some((installed.position, installed.snapshot_seq));
        (self.cut, self.damage, self.rewound) = (None, None, None);
        match self.reconcile_once() {
            Ok(position) => Ok(position),
            Err(Reconcile::Failed(error)) => Err(error),
            Err(Reconcile::NeedsTransfer(why)) => Err(local(format!(
                "after a state transfer: {why} (the log moved more than --log-entries-max entries during \
                 the transfer)"
            ))),
        }
    }

    fn reconcile_once(&mut self) -> Result<Option<Head>, Reconcile> {
        let local = |message: String| ReplicationError::Local(message);
        let data_dir = self.wiring.data_dir.clone();
        let position = position::read(&data_dir).map_err(|error| local(error.to_string()))?;
        let tail = local_tail(&data_dir).map_err(local)?;
        let local_seq = tail.end_seq;
        let damage = tail.damage.as_ref().map(|damage| {
            format!(
                "{} is damaged from offset {} (seq {}: {})",
                damage.path.display(),
                damage.offset,
                damage.seq,
                damage.reason
            )
        });
        let oldest = self.wiring.store.oldest_index().map_err(|error| self.etcd_error(&error))?;
        // The log can give back what is cut only if this node follows a log (a position, or
        // a log that has begun); a journal damaged before either is recovery's to refuse.
        let (keep_seq, position) = match position {
            Some(position) if oldest.is_some_and(|oldest| oldest > position.index + 1) => {
                return Err(Reconcile::NeedsTransfer(format!(
                    "this node follows from log entry {}, but the log's oldest entry is {}: it was trimmed past \
                     this node",
                    position.index + 1,
                    oldest.unwrap_or_default()
                )));
            }
            Some(position) if local_seq >= position.last_seq => (position.last_seq, Some(position)),
            Some(position) => {
                // Records the position vouched for are lost or damaged: keep what is intact up
                // to the last entry boundary in it, and read the rest again from the log.
                let Some(head) = self.entry_ending_by(local_seq, position.index)? else {
                    return Err(Reconcile::NeedsTransfer(format!(
                        "the local journal's intact records end at seq {local_seq}, before the oldest entry \
                         the log still holds{}",
                        damage.as_deref().map(|why| format!(" ({why})")).unwrap_or_default()
                    )));
                };
                // The floor down first, so no trim removes the entries about to be read again.
                self.wiring
                    .store
                    .put_floor(&self.wiring.options.node, head.index)
                    .map_err(|error| self.etcd_error(&error))?;
                position::write(&data_dir, &head).map_err(|error| local(error.to_string()))?;
                self.rewound = Some((head.last_seq, position.last_seq));
                (head.last_seq, Some(head))
            }
            None if oldest.is_some_and(|oldest| oldest > 1) => {
                return Err(Reconcile::NeedsTransfer(format!(
                    "this node has no position and the log's first entries are gone (its oldest is entry {})",
                    oldest.unwrap_or_default()
                )));
            }
            None if local_seq == 0 && damage.is_none() => (0, None),
            None => match self.first_entry()? {
                None if damage.is_some() => {
                    return Err(Reconcile::Failed(local(format!(
                        "the local journal is damaged and the group's log has not begun, so nothing can be \
                         read again from it: {}",
                        damage.unwrap_or_default()
                    ))))
                }
                None => (local_seq, None),
                Some(first) => (first.first_seq - 1, None),
            },
        };
        if local_seq < keep_seq {
            return Err(Reconcile::NeedsTransfer(format!(
                "the local journal ends at seq {local_seq}, before seq {keep_seq}, which it must hold (the \
                 history before the log's first entry)"
            )));
        }
        if local_seq > keep_seq || damage.is_some() {
            match cut_after(&data_dir, keep_seq) {
                Ok(()) => {}
                Err(Cut::Archived(why)) => return Err(Reconcile::NeedsTransfer(why)),
                Err(Cut::Failed(why)) => return Err(Reconcile::Failed(local(why))),
            }
            self.cut = Some((keep_seq + 1, local_seq));
            self.damage = damage;
        }
        self.position = position;
        Ok(position)
    }

    /// The log's first entry (`None` before the log begins), decoded.
    fn first_entry(&self) -> Result<Option<FirstEntry>, ReplicationError> {
        let page = self.wiring.store.entries(1, 1).map_err(|error| self.etcd_error(&error))?;
        let Some((index, value)) = page.entries.first() else { return Ok(None) };
        let entry = Entry::decode(value)
            .map_err(|error| ReplicationError::Local(format!("log entry {index}: {error}")))?;
        Ok(Some(FirstEntry { first_seq: entry.first_seq, head: entry.head() }))
    }

    /// The head of the newest log entry at or before `max_index` that ends at or before
    /// `seq`: where a journal whose intact records end at `seq` resumes following. `None`
    /// when the oldest entry the log holds ends after `seq`. A binary search: entries' last
    /// seqs grow with their index.
    fn entry_ending_by(&self, seq: u64, max_index: u64) -> Result<Option<Head>, ReplicationError> {
        let Some(first) = self.first_entry()? else { return Ok(None) };
        if first.head.last_seq > seq {
            return Ok(None);
        }
        let (mut found, mut high) = (first.head, max_index);
        // Bounded: the range `found.index + 1 ..= high` halves every pass.
        while found.index < high {
            let probe = found.index + (high - found.index).div_ceil(2);
            let page =
                self.wiring.store.entries(probe, 1).map_err(|error| self.etcd_error(&error))?;
            let head = match page.entries.first() {
                Some((index, value)) if *index == probe => Entry::decode(value)
                    .map_err(|error| ReplicationError::Local(format!("log entry {index}: {error}")))?
                    .head(),
                _ => {
                    return Err(ReplicationError::Local(format!(
                        "log entry {probe} is missing, below entry {max_index} this node's position names"
                    )))
                }
            };
            if head.last_seq <= seq {
                found = head;
            } else {
                high = probe - 1;
            }
        }
        Ok(Some(found))
    }

    fn etcd_error(&self, error: &store::StoreError) -> ReplicationError {
        ReplicationError::Etcd {
            endpoints: self.wiring.options.endpoints.join(","),
            message: error.message().to_owned(),
        }
    }

    /// When the position vouched for records the journal no longer holds intact: `(resumed
    /// at, position's)` last seqs; following resumed from the entry ending at the first.
    pub fn rewound(&self) -> Option<(u64, u64)> {
        self.rewound
    }

    /// The damage cut off the local journal's last segment at start, described.
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// The records [`Starter::reconcile_local`] cut off the local journal, `(first, last)`
    /// seq: never acknowledged by this node, or committed and read again from the log.
    pub fn cut(&self) -> Option<(u64, u64)> {
        self.cut
    }

    /// Sets the address clients are sent to when this node is the primary, unless the options
    /// gave one (the server's real address is known only once it listens).
    pub fn advertise_if_unset(&mut self, addr: &str) {
        if self.wiring.options.advertise.is_empty() {
            self.wiring.options.advertise = addr.to_owned();
        }
    }

    /// The ledger's engine settings if the group has them already (its log has begun): a
    /// replica must start its runtime with exactly these (`RuntimeOptions::hash_seed` and
    /// `engine_config.tx_retained`), or its state cannot match the log's.
    pub fn genesis(&self) -> Option<Genesis> {
        self.genesis
    }

    /// Starts the lease and replica threads on the running runtime's `handle`; `engine` is
    /// the engine settings its recovery reported (the first primary writes them to etcd).
    pub fn start(self, handle: Handle, engine: EngineSettings) -> Result<Replica, String> {
        let genesis = Genesis { hash_seed: engine.hash_seed, tx_retained: engine.tx_retained };
        if let Some(group) = self.genesis.filter(|group| *group != genesis) {
            return Err(format!(
                "this replica's engine settings (hash_seed {:x}, tx_retained {}) differ from the group's \
                 (hash_seed {:x}, tx_retained {}): start it on an empty data directory",
                genesis.hash_seed, genesis.tx_retained, group.hash_seed, group.tx_retained
            ));
        }
        Replica::spawn(self.wiring, handle, genesis, self.position)
    }
}

/// The intact records of the journal in `data_dir` (none when absent), validated like
/// recovery without replaying, locking or repairing anything, except that damage at the end of
/// the last segment is reported rather than refused (`journal::intact_tail`).
fn local_tail(data_dir: &std::path::Path) -> Result<journal::IntactTail, String> {
    let dir = journal::journal_dir(data_dir);
    journal::intact_tail(&dir).map_err(|error| error.to_string())
}

/// Why the local journal could not be cut.
enum Cut {
    /// It must end before its oldest segment (archived): its state must come from a peer.
    Archived(String),
    Failed(String),
}

/// Cuts every record after `keep_seq` from the local journal in `data_dir`, snapshots after it
/// first (REPLICATION.md, *Recovery decision table*): a crash in between leaves a journal
/// longer than its newest snapshot, which recovery replays and the next start cuts again.
fn cut_after(data_dir: &std::path::Path, keep_seq: u64) -> Result<(), Cut> {
    let dir = journal::journal_dir(data_dir);
    if let Ok(segments) = journal::list_segments(&dir) {
        if let Some(first) = segments.first().filter(|first| keep_seq + 1 < first.first_seq) {
            return Err(Cut::Archived(format!(
                "the local journal must be cut after seq {keep_seq}, but its oldest segment starts at seq {}",
                first.first_seq
            )));
        }
    }
    let snapshots = journal::snapshot_dir(data_dir);
    journal::snapshot::remove_after(&snapshots, keep_seq).map_err(|error| {
        Cut::Failed(format!(
            "remove the snapshots after seq {keep_seq} in {}: {error}",
            snapshots.display()
        ))
    })?;
    journal::truncate_damaged_after(&dir, keep_seq).map_err(|error| match error {
        journal::JournalError::TruncateArchived { .. } => Cut::Archived(format!(
            "the local journal must be cut after seq {keep_seq}, which is older than its oldest segment \
             ({error})"
        )),
        error => Cut::Failed(format!("cut the local journal after seq {keep_seq}: {error}")),
    })?;
    Ok(())
}
