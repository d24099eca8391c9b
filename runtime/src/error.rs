//! The runtime's errors: [`RuntimeError`] for starting, recovering, snapshots and shutdown, and
//! [`RequestError`] for one submission or query (cloneable: one failure may answer many).

use std::path::PathBuf;

use engine::EngineConfig;

use journal::JournalError;

/// Why the runtime could not start, serve an operator request, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// [`crate::RuntimeOptions`] are out of range.
    #[error("invalid runtime options: {0}")]
    InvalidOptions(&'static str),
    /// The journal or the snapshot container failed; a corrupt record names its file and offset.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A journal record whose checksum verifies is not a command this build can decode.
    #[error("journal record {seq} is not a valid command: {reason}")]
    RecordDecode {
        /// The record's sequence number.
        seq: u64,
        /// What the command decoder said.
        reason: String,
    },
    /// The journal no longer holds the records that follow the newest usable snapshot.
    #[error(
        "journal segments are missing: the snapshot covers up to seq {snapshot_seq}, \
         but the journal starts at seq {first_seq}"
    )]
    MissingSegments {
        /// The snapshot's sequence number (0 when there is no snapshot).
        snapshot_seq: u64,
        /// The journal's first record.
        first_seq: u64,
    },
    /// The newest usable snapshot includes records the journal does not hold.
    #[error(
        "{}: snapshot at seq {snapshot_seq} is ahead of the journal, which ends at seq {last_seq}",
        path.display()
    )]
    SnapshotAhead {
        /// The snapshot file.
        path: PathBuf,
        /// Its sequence number.
        snapshot_seq: u64,
        /// The journal's last record (0 when it is empty).
        last_seq: u64,
    },
    /// The ledger was created with other engine settings than the options ask for.
    #[error("the ledger was created with {stored:?}, but the options ask for {requested:?}")]
    ConfigMismatch {
        /// The settings stored in the ledger's snapshot.
        stored: EngineConfig,
        /// The settings in the options.
        requested: EngineConfig,
    },
    /// A read-only recovery found no snapshot, so nothing records the ledger's engine settings
    /// (every ledger the runtime created has its genesis snapshot at seq 0).
    #[error("{}: no snapshot records the ledger's engine settings", dir.display())]
    NoSnapshot {
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// The system's random source failed while drawing a new ledger's hash seed.
    #[error("cannot draw a hash seed: {0}")]
    Random(String),
    /// A durability stage after the local flush failed for a round; like a failed sync, it is
    /// fatal: nothing is acknowledged any more.
    #[error("durability stage {stage} failed for seqs {first_seq}..={last_seq}: {message}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// The round's first record.
        first_seq: u64,
        /// The round's last record.
        last_seq: u64,
        /// What the stage said.
        message: String,
    },
    /// The reader stopped before the last record `Journal::open` found.
    #[error("replay stopped at seq {reached_seq}, but the journal ends at seq {last_seq}")]
    ReplayIncomplete {
        /// The next sequence number replay expected.
        reached_seq: u64,
        /// The journal's last record.
        last_seq: u64,
    },
    /// The recovered (or followed) state breaks an engine invariant: the journal or the
    /// snapshot holds something the engine would never produce.
    #[error("the ledger state breaks an invariant: {0}")]
    Invariant(String),
    /// A thread could not be started.
    #[error("cannot start the {name} thread: {source}")]
    Spawn {
        /// The thread's role.
        name: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The journal failed to make records durable: nothing is acknowledged any more, and the
    /// process must exit and restart (recovery re-reads what really reached the disk).
    #[error("fatal: {0}")]
    Fatal(String),
    /// A runtime thread panicked (a bug); nothing is acknowledged any more.
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    /// The snapshot follower stopped following the journal earlier and cannot write snapshots.
    #[error("the snapshot follower has stopped: {0}")]
    FollowerStopped(String),
    /// The runtime is shutting down or has stopped.
    #[error("the runtime is shutting down")]
    ShuttingDown,
}

/// Why one submission or query was refused. A refusal never leaves a command half done: each
/// command was either appended, applied and made durable, or not journaled at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The input ring (or this producer's in-flight window) is full; `try_submit` only.
    #[error("busy: the input ring or the in-flight window is full")]
    Busy,
    /// The submission's length is outside `1..=submission_len_max`.
    #[error("a submission of {len} commands is outside 1..={len_max}")]
    Len {
        /// Commands in the submission.
        len: usize,
        /// The runtime's `submission_len_max`.
        len_max: u32,
    },
    /// The disk is full: the journal could not create its next segment. The first
    /// `completed_len` commands of the submission were executed and are durable (re-send the
    /// submission with the same `tx_id`s: those answer as duplicates); the rest were not
    /// journaled. Later submissions may succeed once space is freed.
    #[error("no space for the journal after {completed_len} commands: {message}")]
    NoSpace {
        /// Leading commands that were executed and are durable.
        completed_len: u32,
        /// The journal's error.
        message: String,
    },
    /// Like `NoSpace`, for another I/O error while creating a segment.
    #[error("journal unavailable after {completed_len} commands: {message}")]
    Unavailable {
        /// Leading commands that were executed and are durable.
        completed_len: u32,
        /// The journal's error.
        message: String,
    },
    /// The journal failed to make records durable; nothing is acknowledged any more. Whether
    /// the commands survive is decided by recovery after the restart.
    #[error("fatal journal failure, nothing is acknowledged: {message}")]
    Fatal {
        /// The failure.
        message: String,
    },
    /// Replicated records that cannot be journaled here: not the next seq, or not a command.
    /// Nothing of the request was journaled.
    #[error("replicated records refused: {message}")]
    Replication {
        /// What is wrong.
        message: String,
    },
    /// The runtime is shutting down or has stopped; the request was not executed.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// The producer's [`crate::Replies`] was dropped, so no reply could be received.
    #[error("the producer's reply receiver was dropped")]
    RepliesDropped,
}
