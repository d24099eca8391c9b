//! The runtime's options and every limit on them, with their relationships checked at compile
//! time. Every queue the runtime owns is bounded by one of these numbers.

use engine::{EngineConfig, COMMAND_LEN_BYTES_MAX};

use journal::{
    SyncMode, PAYLOAD_LEN_BYTES_MAX, RECORD_HEADER_LEN_BYTES, SEGMENT_HEADER_LEN_BYTES,
    SEGMENT_LEN_ALIGN_BYTES, SEGMENT_LEN_BYTES_DEFAULT, SEGMENT_LEN_BYTES_MIN,
};

/// The runtime's segment size. Smaller than the journal's own default on purpose: on the
/// development VM (ext4), a flush of 256 records into a 256 MiB preallocated segment took
/// 565 µs at p50 and into an 8–32 MiB one 110–117 µs (`runtime_bench append DIR 2000000 256
/// SEGMENT_MIB`; RUNTIME.md). Rollover then happens every ~350 000 transfers; with the spare
/// the journal prepares in the background it costs the writer 0.3–0.5 ms (FORMAT.md).
pub const RUNTIME_SEGMENT_LEN_BYTES_DEFAULT: u64 = 32 << 20;

/// Largest `batch_len_max`: commands appended, applied and made durable by one flush.
pub const BATCH_LEN_CEILING: u32 = 65_536;
/// Largest `submission_len_max`: commands in one submission (a gateway frame).
pub const SUBMISSION_LEN_CEILING: u32 = 8_192;
/// Largest `ring_capacity`: submissions waiting in the input ring.
pub const RING_CAPACITY_CEILING: u32 = 65_536;
/// Largest `batch_delay_us`: how long the writer may hold a batch open for more commands.
pub const BATCH_DELAY_US_CEILING: u32 = 100_000;
/// Largest in-flight window of one producer (submissions awaiting their reply).
pub const IN_FLIGHT_CEILING: u32 = 65_536;
/// Commands decoded and applied per step when replaying the journal (recovery and follower).
pub(crate) const REPLAY_CHUNK_LEN: usize = 4_096;
/// The writer wakes the snapshot follower at most once per this many durable records (or per
/// `snapshot_every_records`, if smaller), so the follower catches up in large, cheap steps.
pub(crate) const FOLLOWER_STEP_RECORDS: u64 = 65_536;
/// Requests waiting for the snapshot follower (nudges are dropped when it is full).
pub(crate) const FOLLOWER_QUEUE_LEN: usize = 16;

const _: () = assert!(SUBMISSION_LEN_CEILING <= BATCH_LEN_CEILING);
const _: () = assert!(
    RUNTIME_SEGMENT_LEN_BYTES_DEFAULT >= SEGMENT_LEN_BYTES_MIN
        && RUNTIME_SEGMENT_LEN_BYTES_DEFAULT <= SEGMENT_LEN_BYTES_DEFAULT
        && RUNTIME_SEGMENT_LEN_BYTES_DEFAULT % SEGMENT_LEN_ALIGN_BYTES == 0
        && RUNTIME_SEGMENT_LEN_BYTES_DEFAULT
            >= SEGMENT_HEADER_LEN_BYTES + RECORD_HEADER_LEN_BYTES + PAYLOAD_LEN_BYTES_MAX as u64,
    "a valid segment length that holds the largest record"
);
const _: () = assert!(REPLAY_CHUNK_LEN as u64 <= FOLLOWER_STEP_RECORDS);
const _: () = assert!(FOLLOWER_QUEUE_LEN >= 2, "a nudge never blocks a snapshot request");
const _: () = assert!(
    COMMAND_LEN_BYTES_MAX as u64
        <= SEGMENT_LEN_BYTES_MIN - SEGMENT_HEADER_LEN_BYTES - RECORD_HEADER_LEN_BYTES
        && COMMAND_LEN_BYTES_MAX as u64 <= PAYLOAD_LEN_BYTES_MAX as u64,
    "every command fits a record of the smallest segment"
);

/// How the runtime runs. `Default` is the production setting; tests and benchmarks shrink it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// [`SyncMode::Fsync`] (default): a reply is released only once its record is on disk.
    /// [`SyncMode::None`] is **unsafe**: replies are released after the record is written to the
    /// page cache, and a power failure may lose acknowledged commands. Benchmarks only.
    pub sync_mode: SyncMode,
    /// Size of new journal segment files (see `FORMAT.md`); default
    /// [`RUNTIME_SEGMENT_LEN_BYTES_DEFAULT`] (32 MiB).
    pub segment_len_bytes: u64,
    /// Most commands in one group commit: appended, applied, then made durable by one flush.
    pub batch_len_max: u32,
    /// How long the writer keeps a group commit open for more submissions after the first one,
    /// in microseconds. 0: take what is in the ring and flush (commands that arrive during a
    /// flush go into the next one, so batching still happens under load).
    pub batch_delay_us: u32,
    /// Most commands in one submission; at most `batch_len_max`.
    pub submission_len_max: u32,
    /// Submissions the input ring holds; a full ring blocks producers (or makes `try_submit`
    /// return `Busy`). Memory is bounded by `ring_capacity × submission_len_max` commands.
    pub ring_capacity: u32,
    /// The engine settings for a **new** ledger. An existing ledger keeps the ones it was
    /// created with (they are part of its snapshots); a different `tx_retained` here is
    /// refused (`ConfigMismatch`). Its `hash_seed` is not used: see `hash_seed`.
    pub engine_config: EngineConfig,
    /// The ledger's hash seed (it keys the engine's indexes). `None` (default): a new ledger
    /// draws a random one (stored in its genesis snapshot), an existing ledger keeps its own.
    /// `Some(seed)`: a new ledger gets `seed`; an existing one must have it (`ConfigMismatch`).
    pub hash_seed: Option<u64>,
    /// The core the writer thread is pinned to. A failure to pin is reported, never fatal.
    pub pin_core: Option<usize>,
    /// The snapshot follower writes a snapshot every this many records; `None` only on request.
    pub snapshot_every_records: Option<u64>,
    /// Under load, sync a round on a flusher thread while the writer executes the next one
    /// (default). `false`: every sync runs inline on the writer (one thread fewer).
    pub pipeline_flushes: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            sync_mode: SyncMode::Fsync,
            segment_len_bytes: RUNTIME_SEGMENT_LEN_BYTES_DEFAULT,
            batch_len_max: 8_192,
            batch_delay_us: 0,
            submission_len_max: 1_024,
            ring_capacity: 1_024,
            engine_config: EngineConfig::default(),
            hash_seed: None,
            pin_core: Some(1),
            snapshot_every_records: Some(4_000_000),
            pipeline_flushes: true,
        }
    }
}

impl RuntimeOptions {
    /// Checks every option against its limit.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if !(1..=BATCH_LEN_CEILING).contains(&self.batch_len_max) {
            return Err("batch_len_max is outside 1..=BATCH_LEN_CEILING");
        }
        if !(1..=SUBMISSION_LEN_CEILING).contains(&self.submission_len_max) {
            return Err("submission_len_max is outside 1..=SUBMISSION_LEN_CEILING");
        }
        if self.submission_len_max > self.batch_len_max {
            return Err("submission_len_max exceeds batch_len_max");
        }
        if !(1..=RING_CAPACITY_CEILING).contains(&self.ring_capacity) {
            return Err("ring_capacity is outside 1..=RING_CAPACITY_CEILING");
        }
        if self.batch_delay_us > BATCH_DELAY_US_CEILING {
            return Err("batch_delay_us exceeds BATCH_DELAY_US_CEILING");
        }
        if self.snapshot_every_records == Some(0) {
            return Err("snapshot_every_records is 0");
        }
        Ok(())
    }
}
