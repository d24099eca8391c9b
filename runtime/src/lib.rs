//! The runtime that makes the engine durable: producers submit batches into a bounded ring, one
//! pinned writer thread sequences, journals, applies and group-commits them, and releases each
//! reply only once the journal's durable sequence number covers it. A follower thread writes
//! snapshots off the hot path. Startup is recovery. See `RUNTIME.md` next to this crate for the
//! threading model, every queue and its bound, and the failure rules.
//!
//! ```text
//!  producers ──submit──▶ input ring ──▶ writer thread (pinned, owns Journal + Engine)
//!  (Handle, Producer)   bounded:          stamp time → append each command → apply →
//!                       ring_capacity      flush once → publish durable_seq → release replies
//!        ▲                                   │        │ under load: the sync runs on the
//!        │                                   │        ▼ flusher thread while the next round
//!        │                                   │   flusher thread (FlushJob::sync)  executes
//!        └── Replies (bounded, per producer) ◀┘
//!            or a one-shot slot (execute/query)   follower thread: JournalReader up to
//!                                                 durable_seq → second Engine →
//!                                                 snapshot::write every N records
//! ```
//!
//! **Invariant:** a command is applied only after its record was appended; a reply is released
//! only after the flush covering it; after a failed sync nothing is acknowledged again.
//! **Invariant:** every journal record is an input command (accepted or rejected), so replay
//! rebuilds the state and the idempotency memory exactly. **Boundary:** records stay opaque to
//! the journal's framing; only this module encodes and decodes them (`engine::encode_command`).

mod durability;
mod error;
mod follower;
mod handle;
mod options;
mod recovery;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};

pub use durability::{DurableStage, Round};
pub use error::{RequestError, RuntimeError};
pub use follower::SnapshotWritten;
pub use handle::{
    Answer, Executed, Handle, NewCommand, Producer, Query, QueryAnswer, Refused, Replicated,
    Replies, Reply, ReplyNotify,
};
pub use options::{
    RuntimeOptions, BATCH_DELAY_US_CEILING, BATCH_LEN_CEILING, IN_FLIGHT_CEILING,
    RING_CAPACITY_CEILING, RUNTIME_SEGMENT_LEN_BYTES_DEFAULT, SUBMISSION_LEN_CEILING,
};
pub use recovery::{
    recover, select_snapshot, select_snapshot_decoded, select_snapshot_in, Access, Base,
    LoadedSnapshot, Pinning, RecoverOptions, Recovered, RecoveredLog, RecoveryReport,
    SkippedSnapshot, SnapshotChoice,
};
pub use writer::ShutdownReport;

use durability::Stages;
use follower::{Follower, FollowerMsg};
use handle::{Block, Request, Shared};
use journal::{FileStorage, Storage};
use options::FOLLOWER_QUEUE_LEN;
use writer::{FollowerLink, Writer};

/// Counters for monitoring and benchmarks ([`Runtime::stats`], [`Handle::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuntimeStats {
    /// The highest durable sequence number.
    pub durable_seq: u64,
    /// Commands journaled, applied and made durable since start.
    pub commands: u64,
    /// Group commits (flushes with at least one record) since start.
    pub flushes: u64,
    /// Of those, the ones synced on the flusher thread while the next round executed.
    pub pipelined_flushes: u64,
    /// Time spent in those flushes' syncs, in nanoseconds.
    pub flush_ns_total: u64,
    /// The longest of those syncs, in nanoseconds.
    pub flush_ns_max: u64,
    /// Requests waiting in the input ring right now.
    pub ring_depth: u64,
}

/// What [`Runtime::archive_segments_before_snapshot`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The snapshot that covers the removed records (`None`: there is none, nothing removed).
    pub snapshot_seq: Option<u64>,
    /// The removed segment files, oldest first.
    pub removed: Vec<PathBuf>,
}

/// The running ledger: its writer and follower threads. Dropping it shuts it down.
pub struct Runtime {
    handle: Handle,
    data_dir: PathBuf,
    writer: Option<JoinHandle<ShutdownReport>>,
    follower: Option<FollowerThread>,
}

struct FollowerThread {
    requests: Sender<FollowerMsg>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.data_dir)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Recovers the ledger in `data_dir` (created if empty) and starts serving. Fails, without
    /// serving anything, on any corruption, missing journal segment or broken invariant.
    pub fn start(
        data_dir: &Path,
        options: RuntimeOptions,
    ) -> Result<(Runtime, RecoveryReport), RuntimeError> {
        Runtime::start_in(FileStorage, data_dir, options, Vec::new())
    }

    /// [`Runtime::start`] with the journal on `storage` (a [`journal::FaultyStorage`] in tests,
    /// a simulated disk in the simulation) and `stages` a round passes after its local flush
    /// before its replies are released (see [`DurableStage`]; replication adds one).
    pub fn start_in<S: Storage>(
        storage: S,
        data_dir: &Path,
        options: RuntimeOptions,
        stages: Vec<Box<dyn DurableStage>>,
    ) -> Result<(Runtime, RecoveryReport), RuntimeError> {
        options.validate().map_err(RuntimeError::InvalidOptions)?;
        let recover_options = RecoverOptions::writer(&options);
        let recovered = recover(storage.clone(), data_dir, &recover_options)?;
        let RecoveredLog::Journal(journal) = recovered.log else {
            unreachable!("a writer's recovery returns the journal");
        };
        let mut report = recovered.report;
        let durable_seq = journal.durable_seq();
        let (ring_tx, ring_rx) = bounded(options.ring_capacity as usize);
        let shared = Arc::new(Shared::new(durable_seq, ring_rx.clone()));

        let follower = FollowerThread::spawn(
            storage,
            &recovered.engine,
            (durable_seq, recovered.snapshot_seq),
            data_dir,
            options.snapshot_every_records,
            shared.clone(),
        )?;
        let follower_tx = follower.requests.clone();

        let writer = Writer::new(
            journal,
            recovered.engine,
            ring_rx,
            shared.clone(),
            FollowerLink::new(follower_tx, options.snapshot_every_records, durable_seq),
            options.batch_len_max,
            options.batch_delay_us,
            options.pipeline_flushes,
            recovered.last_timestamp_ns,
            Stages::new(stages),
        );
        let (pinned_tx, pinned_rx) = bounded(1);
        let pin_core = options.pin_core;
        let panic_guard = FailOnPanic { shared: shared.clone(), thread: "writer" };
        let spawned = spawn("ledger-writer", move || {
            let _guard = panic_guard;
            let _ = pinned_tx.send(pin(pin_core));
            writer.run()
        });
        let writer = match spawned {
            Ok(writer) => writer,
            Err(error) => {
                stop_follower(follower);
                return Err(error);
            }
        };
        report.pinning = pinned_rx.recv().map_err(|_| RuntimeError::Panicked("writer"))?;
        if let Pinning::Failed { core, reason } = report.pinning {
            eprintln!("ledger runtime: writer thread not pinned to core {core} ({reason}); running unpinned");
        }
        let handle =
            Handle { ring: ring_tx, shared, submission_len_max: options.submission_len_max };
        let runtime = Runtime {
            handle,
            data_dir: data_dir.to_path_buf(),
            writer: Some(writer),
            follower: Some(follower),
        };
        Ok((runtime, report))
    }

    /// A handle for submitting commands and queries from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The highest sequence number known durable.
    pub fn durable_seq(&self) -> u64 {
        self.handle.durable_seq()
    }

    /// Counters since start.
    pub fn stats(&self) -> RuntimeStats {
        self.handle.stats()
    }

    /// The fatal failure, if the runtime has failed. The binary should then shut down and exit
    /// non-zero with this message; a restart recovers what really reached the disk.
    pub fn failure(&self) -> Option<String> {
        self.handle.failure()
    }

    /// Waits up to `timeout` for a fatal failure (returns early, with `None`, if the writer
    /// exits cleanly). For a binary's main thread: `while runtime.wait_for_failure(..).is_none()`.
    pub fn wait_for_failure(&self, timeout: Duration) -> Option<String> {
        let _ = self.handle.shared.failure_wait.recv_timeout(timeout);
        self.failure()
    }

    /// Asks the follower to catch up to the current durable sequence number and write a
    /// snapshot there; waits for it. The writer does not stall.
    pub fn snapshot_now(&self) -> Result<SnapshotWritten, RuntimeError> {
        let follower = self.follower.as_ref().ok_or(RuntimeError::ShuttingDown)?;
        let (reply_tx, reply_rx) = bounded(1);
        follower
            .requests
            .send(FollowerMsg::Snapshot(reply_tx))
            .map_err(|_| RuntimeError::Panicked("follower"))?;
        reply_rx.recv().map_err(|_| RuntimeError::Panicked("follower"))?
    }

    /// Removes the journal segments whose records are all covered by the newest snapshot that
    /// verifies and decodes (checked on the calling thread, not the writer's). Explicit only:
    /// the runtime never removes segments by itself. Older snapshots become unusable.
    pub fn archive_segments_before_snapshot(&self) -> Result<ArchiveReport, RuntimeError> {
        let dir = journal::snapshot_dir(&self.data_dir);
        let choice = recovery::select_snapshot(&dir, Base::Newest)?;
        let Some(recovery::LoadedSnapshot { seq: snapshot_seq, .. }) = choice.loaded else {
            return Ok(ArchiveReport { snapshot_seq: None, removed: Vec::new() });
        };
        let (reply_tx, reply_rx) = bounded(1);
        if let Some(error) = self.handle.shared.refusal() {
            return Err(match error {
                RequestError::Fatal { message } => RuntimeError::Fatal(message),
                _ => RuntimeError::ShuttingDown,
            });
        }
        let request = Request::Archive { before_seq: snapshot_seq + 1, reply: reply_tx };
        // A refused request is answered through `reply_tx` (or dropped with it).
        let _ = self.handle.enqueue(request, Block::Yes);
        let removed = reply_rx.recv().map_err(|_| RuntimeError::ShuttingDown)??;
        Ok(ArchiveReport { snapshot_seq: Some(snapshot_seq), removed })
    }

    /// Stops accepting requests, finishes and flushes everything already in the ring (later
    /// requests are refused with `ShuttingDown`), stops the follower and joins both threads.
    /// Returns the fatal failure if the runtime had failed.
    pub fn shutdown(mut self) -> Result<ShutdownReport, RuntimeError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<ShutdownReport, RuntimeError> {
        let writer = self.writer.take().ok_or(RuntimeError::ShuttingDown)?;
        let shared = &self.handle.shared;
        shared.closed.store(true, Ordering::Release);
        // Blocks while the ring is full: the writer keeps taking requests, and once it has
        // stopped (or died) every sender drains the ring after sending.
        if !shared.drained.load(Ordering::SeqCst) {
            let _ = self.handle.enqueue(Request::Stop, Block::Yes);
        }
        let exit = writer.join();
        shared.close_ring();
        if let Some(follower) = self.follower.take() {
            stop_follower(follower);
        }
        let report = exit.map_err(|_| RuntimeError::Panicked("writer"))?;
        match shared.failure.get() {
            Some(message) => Err(RuntimeError::Fatal(message.clone())),
            None => Ok(report),
        }
    }

    /// Runs `hook` on the writer thread at its place in the ring order (fault injection).
    #[cfg(test)]
    pub(crate) fn run_on_writer(&self, hook: impl FnOnce() + Send + 'static) {
        let sent = self.handle.enqueue(Request::Hook(Box::new(hook)), Block::Yes);
        assert!(sent.is_ok(), "the writer is running");
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.stop();
        }
    }
}

/// Marks the runtime failed if the thread holding it panics (an engine or runtime bug), so
/// handles refuse at once and `wait_for_failure` wakes up.
struct FailOnPanic {
    shared: Arc<Shared>,
    thread: &'static str,
}

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.fail(format!("the {} thread panicked", self.thread));
            self.shared.close_ring();
        }
    }
}

impl FollowerThread {
    /// Starts the snapshot follower from the writer's state at `durable_seq` (its newest
    /// snapshot at `snapshot_seq`).
    fn spawn<S: Storage>(
        storage: S,
        engine: &engine::Engine,
        (durable_seq, snapshot_seq): (u64, u64),
        data_dir: &Path,
        every: Option<u64>,
        shared: Arc<Shared>,
    ) -> Result<FollowerThread, RuntimeError> {
        let mut initial_state = Vec::new();
        engine.encode_state(&mut initial_state);
        let (requests, follower_rx) = bounded(FOLLOWER_QUEUE_LEN);
        let stop = Arc::new(AtomicBool::new(false));
        let follower = Follower::new(
            storage,
            initial_state,
            durable_seq,
            snapshot_seq,
            data_dir,
            every,
            shared,
            stop.clone(),
        );
        let thread = spawn("ledger-follower", move || follower.run(follower_rx))?;
        Ok(FollowerThread { requests, stop, thread })
    }
}

fn stop_follower(follower: FollowerThread) {
    follower.stop.store(true, Ordering::Relaxed);
    // Blocks only while the follower's short queue is full; it drains it.
    let _ = follower.requests.send(FollowerMsg::Stop);
    let _ = follower.thread.join();
}

fn spawn<T: Send + 'static>(
    name: &'static str,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, RuntimeError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|source| RuntimeError::Spawn { name, source })
}

/// Pins the calling thread to `core`, if asked.
fn pin(core: Option<usize>) -> Pinning {
    let Some(core) = core else {
        return Pinning::NotRequested;
    };
    let Some(ids) = core_affinity::get_core_ids() else {
        return Pinning::Failed { core, reason: "the core list is unavailable" };
    };
    let Some(id) = ids.into_iter().find(|id| id.id == core) else {
        return Pinning::Failed { core, reason: "no such core" };
    };
    if core_affinity::set_for_current(id) {
        Pinning::Pinned { core }
    } else {
        Pinning::Failed { core, reason: "the OS refused" }
    }
}

#[cfg(test)]
mod tests;
