//! Startup is recovery: open the journal (zeroing a torn last record), load the newest snapshot
//! that verifies and decodes (skipping and reporting damaged ones), check that the journal holds
//! every record after it, replay those records, check the invariants, and only then serve.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::{Command, Effects, Engine, EngineConfig};

use crate::error::RuntimeError;
use crate::options::{RuntimeOptions, REPLAY_CHUNK_LEN};
use journal::{snapshot, Journal, JournalOptions, JournalReader, Recovery};

/// Whether the writer thread was pinned to its core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    /// `pin_core` was `None`.
    NotRequested,
    /// Pinned.
    Pinned {
        /// The core.
        core: usize,
    },
    /// Pinning failed; the writer runs unpinned.
    Failed {
        /// The core asked for.
        core: usize,
        /// Why.
        reason: &'static str,
    },
}

/// A snapshot recovery could not use, and why (recovery fell back to an older one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// What startup found and did; the binary logs it (its `Display` is one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The snapshot the state started from (`None`: from an empty ledger), and its file.
    pub snapshot: Option<(u64, PathBuf)>,
    /// Newer snapshots that were damaged or undecodable, newest first.
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Journal records replayed on top of the snapshot.
    pub records_replayed: u64,
    /// The last sequence number in the journal (0 when empty); appends continue after it.
    pub last_seq: u64,
    /// What `Journal::open` found: segments, records, the torn tail it zeroed, temp files.
    pub journal: Recovery,
    /// The recovered state's hash: equal to the hash the engine had when it last acknowledged.
    pub state_hash: u128,
    /// The ledger's engine settings.
    pub engine_config: EngineConfig,
    /// The snapshot of the empty ledger written for a new ledger (it records the settings).
    pub genesis_snapshot: Option<PathBuf>,
    /// Time to open the journal and load the snapshot.
    pub load_elapsed: Duration,
    /// Time to replay the journal tail.
    pub replay_elapsed: Duration,
    /// Time for the whole recovery.
    pub elapsed: Duration,
    /// Whether the writer thread was pinned.
    pub pinning: Pinning,
}

impl RecoveryReport {
    /// Replay speed in records per second (0 when nothing was replayed).
    pub fn replay_records_per_sec(&self) -> f64 {
        let secs = self.replay_elapsed.as_secs_f64();
        if self.records_replayed == 0 || secs == 0.0 {
            return 0.0;
        }
        self.records_replayed as f64 / secs
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.snapshot {
            Some((seq, path)) => write!(f, "snapshot seq {seq} ({})", path.display())?,
            None => write!(f, "no snapshot")?,
        }
        write!(
            f,
            ", {} records replayed in {:.1} ms, last seq {}, state_hash {:032x}, {:.1} ms total",
            self.records_replayed,
            self.replay_elapsed.as_secs_f64() * 1e3,
            self.last_seq,
            self.state_hash,
            self.elapsed.as_secs_f64() * 1e3,
        )?;
        if let Some(torn) = &self.journal.torn_tail {
            write!(
                f,
                ", torn tail zeroed: {} bytes of seq {} at {} offset {} ({})",
                torn.len_bytes,
                torn.seq,
                torn.path.display(),
                torn.offset,
                torn.defect
            )?;
        }
        for skipped in &self.skipped_snapshots {
            write!(f, ", skipped {}: {}", skipped.path.display(), skipped.reason)?;
        }
        if let Pinning::Failed { core, reason } = self.pinning {
            write!(f, ", writer not pinned to core {core}: {reason}")?;
        }
        Ok(())
    }
}

/// A recovered ledger, ready to serve.
pub(crate) struct Recovered {
    pub journal: Journal,
    pub engine: Engine,
    pub report: RecoveryReport,
    /// The newest timestamp replayed (the sequencer never stamps an earlier one).
    pub last_timestamp_ns: u64,
    /// The newest snapshot that exists (the follower's next one is due after it).
    pub snapshot_seq: u64,
}

pub(crate) fn recover(
    data_dir: &Path,
    options: &RuntimeOptions,
) -> Result<Recovered, RuntimeError> {
    let started = Instant::now();
    let journal_dir = journal::journal_dir(data_dir);
    let journal_options = JournalOptions {
        segment_len_bytes: options.segment_len_bytes,
        sync_mode: options.sync_mode,
    };
    let (journal, journal_recovery) = Journal::open(&journal_dir, journal_options)?;
    let SnapshotChoice { loaded, skipped: skipped_snapshots } =
        load_snapshot(&journal::snapshot_dir(data_dir))?;
    let last_seq = journal_recovery.next_seq - 1;
    let first_seq = journal_recovery.first_seq.unwrap_or(journal_recovery.next_seq);
    let (mut engine, snapshot) = match loaded {
        Some(LoadedSnapshot { engine, seq, path }) => {
            if engine.config() != options.engine_config {
                return Err(RuntimeError::ConfigMismatch {
                    stored: engine.config(),
                    requested: options.engine_config,
                });
            }
            if seq > last_seq {
                return Err(RuntimeError::SnapshotAhead { path, snapshot_seq: seq, last_seq });
            }
            (engine, Some((seq, path)))
        }
        None => (Engine::new(options.engine_config), None),
    };
    let snapshot_seq = snapshot.as_ref().map_or(0, |(seq, _)| *seq);
    if snapshot_seq + 1 < first_seq {
        return Err(RuntimeError::MissingSegments { snapshot_seq, first_seq });
    }
    let load_elapsed = started.elapsed();

    let replay_started = Instant::now();
    let replayed = replay(&journal_dir, &mut engine, snapshot_seq + 1, last_seq)?;
    let replay_elapsed = replay_started.elapsed();
    engine.check_invariants().map_err(RuntimeError::Invariant)?;
    let state_hash = engine.state_hash();

    // A new ledger (or one whose snapshots are all gone but whose journal starts at 1) gets the
    // snapshot of its empty state, so its engine settings are recorded with it.
    let genesis_snapshot = if snapshot.is_none() && first_seq == 1 {
        let mut encoded = Vec::new();
        Engine::new(options.engine_config).encode_state(&mut encoded);
        Some(snapshot::write(&journal::snapshot_dir(data_dir), 0, &encoded)?)
    } else {
        None
    };
    let report = RecoveryReport {
        snapshot,
        skipped_snapshots,
        records_replayed: replayed.records,
        last_seq,
        journal: journal_recovery,
        state_hash,
        engine_config: engine.config(),
        genesis_snapshot,
        load_elapsed,
        replay_elapsed,
        elapsed: started.elapsed(),
        pinning: Pinning::NotRequested,
    };
    Ok(Recovered {
        journal,
        engine,
        report,
        last_timestamp_ns: replayed.last_timestamp_ns,
        snapshot_seq,
    })
}

/// A snapshot that verified and decoded.
pub(crate) struct LoadedSnapshot {
    pub engine: Engine,
    pub seq: u64,
    pub path: PathBuf,
}

/// The newest snapshot that verifies and decodes, and the newer ones that did not (newest
/// first). Falling back is always safe: the journal replays the difference.
pub(crate) struct SnapshotChoice {
    pub loaded: Option<LoadedSnapshot>,
    pub skipped: Vec<SkippedSnapshot>,
}

pub(crate) fn load_snapshot(dir: &Path) -> Result<SnapshotChoice, RuntimeError> {
    let mut skipped = Vec::new();
    for info in snapshot::list(dir)?.into_iter().rev() {
        let loaded = snapshot::load(&info).map_err(|damage| damage.to_string()).and_then(|snap| {
            Engine::decode_state(&snap.payload).map_err(|error| error.to_string())
        });
        match loaded {
            Ok(engine) => {
                let loaded = LoadedSnapshot { engine, seq: info.seq, path: info.path };
                return Ok(SnapshotChoice { loaded: Some(loaded), skipped });
            }
            Err(reason) => skipped.push(SkippedSnapshot { path: info.path, reason }),
        }
    }
    Ok(SnapshotChoice { loaded: None, skipped })
}

struct Replayed {
    records: u64,
    last_timestamp_ns: u64,
}

/// Applies records `from_seq..=last_seq` to `engine`, in chunks through `apply_batch`.
fn replay(
    journal_dir: &Path,
    engine: &mut Engine,
    from_seq: u64,
    last_seq: u64,
) -> Result<Replayed, RuntimeError> {
    let mut reader = JournalReader::open(journal_dir, from_seq)?;
    let mut chunk: Vec<Command> = Vec::with_capacity(REPLAY_CHUNK_LEN);
    let mut fx = Effects::with_capacity(REPLAY_CHUNK_LEN);
    let mut replayed = Replayed { records: 0, last_timestamp_ns: 0 };
    // Bounded: each iteration consumes up to a chunk of records, and the journal is finite.
    loop {
        chunk.clear();
        while chunk.len() < REPLAY_CHUNK_LEN {
            let Some(record) = reader.next_ref()? else { break };
            let command = engine::decode_command(record.payload).map_err(|error| {
                RuntimeError::RecordDecode { seq: record.seq, reason: error.to_string() }
            })?;
            replayed.last_timestamp_ns = replayed.last_timestamp_ns.max(command.timestamp_ns);
            chunk.push(command);
        }
        if chunk.is_empty() {
            break;
        }
        fx.clear();
        engine.apply_batch(&chunk, &mut fx, |_, _| {});
        replayed.records += chunk.len() as u64;
    }
    let reached_seq = from_seq + replayed.records;
    if reached_seq != last_seq + 1 {
        return Err(RuntimeError::ReplayIncomplete { reached_seq, last_seq });
    }
    Ok(replayed)
}
