//! [`recover`]: the one way a ledger is rebuilt from its data directory, by `Runtime::start`
//! (read-write) and by `ledger-replay` (read-only). Open the journal (as its writer: zeroing a
//! torn last record; or as a reader: touching nothing), pick the snapshot by the one selection
//! rule ([`Base`]: the most preferred one that verifies and decodes, skipping and reporting
//! damaged ones), check its settings against the options, check that the journal holds every
//! record after it, replay those records through `apply_batch`, check the invariants.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::{Command, Effects, Engine, EngineConfig, StateDecodeError};

use crate::error::RuntimeError;
use crate::options::{RuntimeOptions, REPLAY_CHUNK_LEN};
use journal::{
    snapshot, FileStorage, Journal, JournalError, JournalOptions, JournalReader, Recovery, Storage,
};

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
    /// What `Journal::open` found: segments, records, the torn tail it zeroed, temp files. A
    /// read-only recovery reports what its reader found: a torn tail is reported, not zeroed.
    pub journal: Recovery,
    /// The recovered state's hash: equal to the hash the engine had when it last acknowledged.
    pub state_hash: u128,
    /// The ledger's engine settings, including its hash seed.
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

/// How [`recover`] treats the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// As the journal's single writer (what `Runtime::start` does): takes the writer lock,
    /// zeroes a torn last record, creates the first segment and the genesis snapshot of a new
    /// ledger, and replays every record the journal holds.
    Write(JournalOptions),
    /// Read-only (`ledger-replay`): no lock, no file created, changed or removed, so it may run
    /// while a `ledgerd` appends. Replay stops at the end of what is readable now (a torn tail
    /// is an append in flight, reported in `report.journal.torn_tail` and left alone).
    ReadOnly,
}

/// Which snapshot recovery starts from. The one rule: candidates in this order of preference,
/// the first that verifies and decodes wins, each one skipped is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The newest snapshot (what a restart uses).
    Newest,
    /// The newest snapshot at or before this seq (state as of a past seq).
    AtOrBefore(u64),
    /// The oldest snapshot: a ledger's genesis snapshot at seq 0, so the whole journal replays.
    Oldest,
}

/// What [`recover`] is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverOptions {
    /// Writer or read-only.
    pub access: Access,
    /// Which snapshot to start from.
    pub base: Base,
    /// Replay the journal only through this seq (`None`: to its end; at or below the snapshot's
    /// seq: nothing, the state is the snapshot's). A writer must replay everything, so with
    /// [`Access::Write`] this must be `None`.
    pub through_seq: Option<u64>,
    /// The settings a **new** ledger gets, and that an existing one must have (its hash seed
    /// aside, see `hash_seed`). `None`: whatever the ledger has; then a ledger without any
    /// snapshot is refused (nothing records its settings).
    pub engine_config: Option<EngineConfig>,
    /// The hash seed. `None`: the ledger's own (a new ledger draws a random one); `Some(seed)`:
    /// a new ledger gets `seed`, an existing one must have it. `engine_config.hash_seed` is
    /// never used by recovery.
    pub hash_seed: Option<u64>,
}

impl RecoverOptions {
    /// What `Runtime::start` recovers with: as the writer, from the newest snapshot, the whole
    /// journal, the options' settings.
    pub fn writer(options: &RuntimeOptions) -> RecoverOptions {
        let journal_options = JournalOptions {
            segment_len_bytes: options.segment_len_bytes,
            sync_mode: options.sync_mode,
        };
        RecoverOptions {
            access: Access::Write(journal_options),
            base: Base::Newest,
            through_seq: None,
            engine_config: Some(options.engine_config),
            hash_seed: options.hash_seed,
        }
    }

    /// Read-only recovery from `base` through `through_seq`, with the ledger's own settings.
    pub fn read_only(base: Base, through_seq: Option<u64>) -> RecoverOptions {
        RecoverOptions {
            access: Access::ReadOnly,
            base,
            through_seq,
            engine_config: None,
            hash_seed: None,
        }
    }
}

/// The journal as recovery leaves it.
#[derive(Debug)]
pub enum RecoveredLog<S: Storage = FileStorage> {
    /// The writer, positioned after the last record ([`Access::Write`]).
    Journal(Journal<S>),
    /// A reader positioned right after the last record replayed ([`Access::ReadOnly`]): calling
    /// it goes on where recovery stopped.
    Reader(JournalReader<S>),
}

/// A recovered ledger.
pub struct Recovered<S: Storage = FileStorage> {
    /// The journal, as writer or reader.
    pub log: RecoveredLog<S>,
    /// The state after the last record replayed.
    pub engine: Engine,
    /// What recovery found and did.
    pub report: RecoveryReport,
    /// The newest timestamp replayed (the sequencer never stamps an earlier one).
    pub last_timestamp_ns: u64,
    /// The snapshot the state started from (0: none, or the genesis snapshot).
    pub snapshot_seq: u64,
}

/// Rebuilds the ledger in `data_dir` (journal on `storage`, snapshots on real files): the
/// snapshot `options.base` picks, the journal tail through `engine.apply_batch`, the invariants
/// checked. Fails on any corruption, a missing segment, a snapshot ahead of the journal, other
/// engine settings than the options ask for (`ConfigMismatch`), or a broken invariant.
pub fn recover<S: Storage>(
    storage: S,
    data_dir: &Path,
    options: &RecoverOptions,
) -> Result<Recovered<S>, RuntimeError> {
    let started = Instant::now();
    let journal_dir = journal::journal_dir(data_dir);
    let snapshot_dir = journal::snapshot_dir(data_dir);
    let writer = open_writer(&storage, &journal_dir, options)?;
    let (mut engine, snapshot, skipped_snapshots) = load_base(&storage, &snapshot_dir, options)?;
    let snapshot_seq = snapshot.as_ref().map_or(0, |(seq, _)| *seq);
    if let Some((_, recovery)) = &writer {
        check_journal_covers(recovery, snapshot.as_ref())?;
    }
    let load_elapsed = started.elapsed();

    let replay_started = Instant::now();
    let through_seq = match &writer {
        Some((_, recovery)) => recovery.next_seq - 1,
        None => options.through_seq.unwrap_or(u64::MAX),
    };
    let mut reader = open_reader(storage.clone(), &journal_dir, snapshot_seq)?;
    let replayed = replay(&mut reader, &mut engine, through_seq)?;
    let replay_elapsed = replay_started.elapsed();
    let reached_seq = snapshot_seq + replayed.records;
    if writer.is_some() && reached_seq != through_seq {
        return Err(RuntimeError::ReplayIncomplete {
            reached_seq: reached_seq + 1,
            last_seq: through_seq,
        });
    }
    engine.check_invariants().map_err(RuntimeError::Invariant)?;
    let state_hash = engine.state_hash();

    let (log, journal_recovery, genesis_snapshot) = match writer {
        Some((journal, recovery)) => {
            let genesis =
                write_genesis(&storage, &snapshot_dir, &engine, snapshot.is_none(), &recovery)?;
            (RecoveredLog::Journal(journal), recovery, genesis)
        }
        None => {
            let recovery = reader_recovery(&storage, &journal_dir, &reader, reached_seq)?;
            (RecoveredLog::Reader(reader), recovery, None)
        }
    };
    let report = RecoveryReport {
        snapshot,
        skipped_snapshots,
        records_replayed: replayed.records,
        last_seq: reached_seq,
        journal: journal_recovery,
        state_hash,
        engine_config: engine.config(),
        genesis_snapshot,
        load_elapsed,
        replay_elapsed,
        elapsed: started.elapsed(),
        pinning: Pinning::NotRequested,
    };
    let last_timestamp_ns = replayed.last_timestamp_ns;
    Ok(Recovered { log, engine, report, last_timestamp_ns, snapshot_seq })
}

/// The snapshot a state started from: its seq and file.
type SnapshotUsed = (u64, PathBuf);

/// The journal's writer and what its open found, for [`Access::Write`].
fn open_writer<S: Storage>(
    storage: &S,
    journal_dir: &Path,
    options: &RecoverOptions,
) -> Result<Option<(Journal<S>, Recovery)>, RuntimeError> {
    match &options.access {
        Access::Write(_) if options.through_seq.is_some() => {
            Err(RuntimeError::InvalidOptions("a writer replays the whole journal"))
        }
        Access::Write(journal_options) => {
            Ok(Some(Journal::open_in(storage.clone(), journal_dir, journal_options.clone())?))
        }
        Access::ReadOnly => Ok(None),
    }
}

/// The state to replay onto: the snapshot the options' [`Base`] picks (its settings checked),
/// or a new ledger's empty state; and the snapshots skipped.
fn load_base<S: Storage>(
    storage: &S,
    snapshot_dir: &Path,
    options: &RecoverOptions,
) -> Result<(Engine, Option<SnapshotUsed>, Vec<SkippedSnapshot>), RuntimeError> {
    let SnapshotChoice { loaded, skipped } =
        select_snapshot_in(storage, snapshot_dir, options.base)?;
    match loaded {
        Some(LoadedSnapshot { engine, seq, path }) => {
            check_config(engine.config(), options)?;
            Ok((engine, Some((seq, path)), skipped))
        }
        None => Ok((Engine::new(new_ledger_config(options, snapshot_dir)?), None, skipped)),
    }
}

/// The stored settings against the options: `tx_retained` must match when the options name
/// settings, the hash seed only when the options fix one.
fn check_config(stored: EngineConfig, options: &RecoverOptions) -> Result<(), RuntimeError> {
    let Some(requested) = options.engine_config else {
        return Ok(());
    };
    let requested = EngineConfig {
        tx_retained: requested.tx_retained,
        hash_seed: options.hash_seed.unwrap_or(stored.hash_seed),
    };
    if stored != requested {
        return Err(RuntimeError::ConfigMismatch { stored, requested });
    }
    Ok(())
}

/// The settings of a ledger that has no snapshot: the options', with the fixed seed or a
/// random one.
fn new_ledger_config(
    options: &RecoverOptions,
    snapshot_dir: &Path,
) -> Result<EngineConfig, RuntimeError> {
    let Some(config) = options.engine_config else {
        return Err(RuntimeError::NoSnapshot { dir: snapshot_dir.to_path_buf() });
    };
    let hash_seed = match options.hash_seed {
        Some(seed) => seed,
        None => random_seed()?,
    };
    Ok(EngineConfig { hash_seed, ..config })
}

fn random_seed() -> Result<u64, RuntimeError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| RuntimeError::Random(error.to_string()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// The writer's journal must hold every record after the snapshot, and the snapshot none past
/// the journal's end.
fn check_journal_covers(
    recovery: &Recovery,
    snapshot: Option<&SnapshotUsed>,
) -> Result<(), RuntimeError> {
    let last_seq = recovery.next_seq - 1;
    let first_seq = recovery.first_seq.unwrap_or(recovery.next_seq);
    let snapshot_seq = snapshot.map_or(0, |(seq, _)| *seq);
    if let Some((seq, path)) = snapshot.filter(|(seq, _)| *seq > last_seq) {
        let path = path.clone();
        return Err(RuntimeError::SnapshotAhead { path, snapshot_seq: *seq, last_seq });
    }
    if snapshot_seq + 1 < first_seq {
        return Err(RuntimeError::MissingSegments { snapshot_seq, first_seq });
    }
    Ok(())
}

/// A new ledger (or one whose snapshots are all gone but whose journal starts at 1) gets the
/// snapshot of its empty state, so its engine settings (and its hash seed) are recorded with it.
fn write_genesis<S: Storage>(
    storage: &S,
    snapshot_dir: &Path,
    engine: &Engine,
    no_snapshot: bool,
    recovery: &Recovery,
) -> Result<Option<PathBuf>, RuntimeError> {
    if !no_snapshot || recovery.first_seq.unwrap_or(recovery.next_seq) != 1 {
        return Ok(None);
    }
    let mut encoded = Vec::new();
    Engine::new(engine.config()).encode_state(&mut encoded);
    Ok(Some(snapshot::write_in(storage, snapshot_dir, 0, &encoded)?))
}

fn open_reader<S: Storage>(
    storage: S,
    journal_dir: &Path,
    snapshot_seq: u64,
) -> Result<JournalReader<S>, RuntimeError> {
    JournalReader::open_in(storage, journal_dir, snapshot_seq + 1).map_err(|error| match error {
        JournalError::SeqUnavailable { first_seq, .. } => {
            RuntimeError::MissingSegments { snapshot_seq, first_seq }
        }
        other => RuntimeError::Journal(other),
    })
}

/// What a read-only recovery saw of the journal, in the writer's terms.
fn reader_recovery<S: Storage>(
    storage: &S,
    journal_dir: &Path,
    reader: &JournalReader<S>,
    last_seq: u64,
) -> Result<Recovery, RuntimeError> {
    let segments = journal::list_segments_in(storage, journal_dir)?;
    let first_seq = segments.first().map_or(1, |segment| segment.first_seq);
    let record_count = (last_seq + 1).saturating_sub(first_seq);
    Ok(Recovery {
        segment_count: segments.len() as u64,
        record_count,
        first_seq: (record_count > 0).then_some(first_seq),
        last_seq: (record_count > 0).then_some(last_seq),
        next_seq: last_seq + 1,
        torn_tail: reader.torn_tail().cloned(),
        removed_temp_files: Vec::new(),
    })
}

/// A snapshot that verified and decoded.
pub struct LoadedSnapshot {
    /// The state it holds (its invariants not checked yet).
    pub engine: Engine,
    /// The last record it includes.
    pub seq: u64,
    /// The file.
    pub path: PathBuf,
}

/// The snapshot [`Base`] picks, and the more preferred ones that did not verify or decode.
/// Falling back is always safe: the journal replays the difference.
pub struct SnapshotChoice {
    /// The snapshot picked (`None`: no snapshot verifies and decodes).
    pub loaded: Option<LoadedSnapshot>,
    /// The more preferred ones skipped, in order of preference.
    pub skipped: Vec<SkippedSnapshot>,
}

/// The one snapshot selection rule (see [`Base`]), on the snapshot directory `dir`. [`recover`]
/// starts from what it picks; tools that compare snapshots (`ledger-replay reconcile`) call it.
pub fn select_snapshot(dir: &Path, base: Base) -> Result<SnapshotChoice, RuntimeError> {
    select_snapshot_in(&FileStorage, dir, base)
}

/// [`select_snapshot`] through `storage`.
pub fn select_snapshot_in<S: Storage>(
    storage: &S,
    dir: &Path,
    base: Base,
) -> Result<SnapshotChoice, RuntimeError> {
    select_snapshot_decoded(storage, dir, base, Engine::decode_state)
}

/// The selection rule with another state decoder: `ledger-replay reconcile` passes
/// `Engine::decode_state_for_audit`, to read a snapshot whose sums are off and report it.
/// Recovery always uses `Engine::decode_state`.
pub fn select_snapshot_decoded<S: Storage>(
    storage: &S,
    dir: &Path,
    base: Base,
    decode: fn(&[u8]) -> Result<Engine, StateDecodeError>,
) -> Result<SnapshotChoice, RuntimeError> {
    let mut candidates = snapshot::list_in(storage, dir)?;
    match base {
        Base::Newest => candidates.reverse(),
        Base::AtOrBefore(seq) => {
            candidates.retain(|info| info.seq <= seq);
            candidates.reverse();
        }
        Base::Oldest => {}
    }
    let mut skipped = Vec::new();
    for info in candidates {
        let loaded = snapshot::load_in(storage, &info)
            .map_err(|damage| damage.to_string())
            .and_then(|snap| decode(&snap.payload).map_err(|error| error.to_string()));
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

/// Applies the reader's records through `through_seq` (or to the end of what is readable) to
/// `engine`, in chunks through `apply_batch`.
fn replay<S: Storage>(
    reader: &mut JournalReader<S>,
    engine: &mut Engine,
    through_seq: u64,
) -> Result<Replayed, RuntimeError> {
    let mut chunk: Vec<Command> = Vec::with_capacity(REPLAY_CHUNK_LEN);
    let mut fx = Effects::with_capacity(REPLAY_CHUNK_LEN);
    let mut replayed = Replayed { records: 0, last_timestamp_ns: 0 };
    // Bounded: each iteration consumes up to a chunk of records, and the journal is finite.
    loop {
        chunk.clear();
        while chunk.len() < REPLAY_CHUNK_LEN && reader.next_seq() <= through_seq {
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
    Ok(replayed)
}
