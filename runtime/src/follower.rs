//! The snapshot follower: a second engine in a background thread that tails the journal with a
//! [`JournalReader`] (only records up to `durable_seq`) and writes snapshots every
//! `snapshot_every_records` records or on request, so the writer never stalls for one.
//!
//! It is deterministic like any replay: its engine equals the writer's at the same sequence
//! number. It wakes only when nudged (the writer does so every few thousand durable records) or
//! asked, and sleeps on its bounded queue otherwise.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use engine::{Command, Effects, Engine};

use crate::error::RuntimeError;
use crate::handle::Shared;
use crate::options::REPLAY_CHUNK_LEN;
use journal::{snapshot, JournalReader, Storage};

/// A snapshot the follower wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotWritten {
    /// The last record it includes.
    pub seq: u64,
    /// The file.
    pub path: PathBuf,
    /// Payload size.
    pub len_bytes: u64,
    /// Time to check, encode and write it (not counting catching up).
    pub elapsed: Duration,
}

/// What the follower is asked to do.
pub(crate) enum FollowerMsg {
    /// Durable records are waiting: catch up, and snapshot if one is due.
    Nudge,
    /// Catch up to the current `durable_seq` and write a snapshot there now.
    Snapshot(Sender<Result<SnapshotWritten, RuntimeError>>),
    /// Exit.
    Stop,
}

pub(crate) struct Follower<S: Storage> {
    storage: S,
    /// The writer's engine encoding at start; decoded on this thread so start is not delayed.
    initial_state: Option<Vec<u8>>,
    engine: Option<Engine>,
    reader: Option<JournalReader<S>>,
    journal_dir: PathBuf,
    snapshot_dir: PathBuf,
    /// The last record applied.
    applied_seq: u64,
    /// The newest snapshot known to exist (the one recovery used, or the last one written).
    snapshot_seq: u64,
    last_written: Option<SnapshotWritten>,
    every: Option<u64>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    /// Set when following failed for good (a record it cannot read or decode).
    stopped: Option<String>,
    chunk: Vec<Command>,
    fx: Effects,
    encoded: Vec<u8>,
}

impl<S: Storage> Follower<S> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        storage: S,
        initial_state: Vec<u8>,
        applied_seq: u64,
        snapshot_seq: u64,
        data_dir: &Path,
        every: Option<u64>,
        shared: Arc<Shared>,
        stop: Arc<AtomicBool>,
    ) -> Follower<S> {
        Follower {
            storage,
            initial_state: Some(initial_state),
            engine: None,
            reader: None,
            journal_dir: journal::journal_dir(data_dir),
            snapshot_dir: journal::snapshot_dir(data_dir),
            applied_seq,
            snapshot_seq,
            last_written: None,
            every,
            shared,
            stop,
            stopped: None,
            chunk: Vec::with_capacity(REPLAY_CHUNK_LEN),
            fx: Effects::default(),
            encoded: Vec::new(),
        }
    }

    pub(crate) fn run(mut self, requests: Receiver<FollowerMsg>) {
        while let Ok(message) = requests.recv() {
            match message {
                FollowerMsg::Nudge => self.follow(),
                FollowerMsg::Snapshot(reply) => {
                    let _ = reply.send(self.snapshot_now());
                }
                FollowerMsg::Stop => return,
            }
        }
    }

    /// Catches up to `durable_seq`, writing snapshots when they are due. A failed snapshot
    /// write is retried at the next nudge; a record that cannot be followed stops following.
    fn follow(&mut self) {
        let durable_seq = self.shared.durable_seq.load(Ordering::Acquire);
        let _ = self.follow_to(durable_seq);
    }

    /// Applies records up to `target_seq`, writing every periodic snapshot it passes (at
    /// exact multiples of `every` after the last one).
    fn follow_to(&mut self, target_seq: u64) -> Result<(), RuntimeError> {
        // Bounded: every iteration applies at least one record, writes a snapshot (which moves
        // the next due point past `applied_seq`), or returns.
        loop {
            if let Some(reason) = &self.stopped {
                return Err(RuntimeError::FollowerStopped(reason.clone()));
            }
            if self.stop.load(Ordering::Relaxed) {
                return Err(RuntimeError::ShuttingDown);
            }
            let due_seq = self.every.map(|every| self.snapshot_seq.saturating_add(every));
            if due_seq.is_some_and(|due_seq| due_seq <= self.applied_seq) {
                self.write_snapshot()?;
                continue;
            }
            let step_seq = due_seq.map_or(target_seq, |due_seq| due_seq.min(target_seq));
            if self.applied_seq >= step_seq {
                return Ok(());
            }
            if let Err(error) = self.apply_chunk(step_seq) {
                self.stopped = Some(error.to_string());
            }
        }
    }

    fn snapshot_now(&mut self) -> Result<SnapshotWritten, RuntimeError> {
        let durable_seq = self.shared.durable_seq.load(Ordering::Acquire);
        self.follow_to(durable_seq)?;
        self.write_snapshot()
    }

    /// Reads, decodes and applies up to `REPLAY_CHUNK_LEN` records, none past `target_seq`.
    fn apply_chunk(&mut self, target_seq: u64) -> Result<(), RuntimeError> {
        self.ensure_started()?;
        let reader = self.reader.as_mut().expect("started above");
        let engine = self.engine.as_mut().expect("started above");
        self.chunk.clear();
        while self.chunk.len() < REPLAY_CHUNK_LEN && reader.next_seq() <= target_seq {
            let Some(record) = reader.next_ref()? else { break };
            let command = engine::decode_command(record.payload).map_err(|error| {
                RuntimeError::RecordDecode { seq: record.seq, reason: error.to_string() }
            })?;
            self.chunk.push(command);
        }
        if self.chunk.is_empty() {
            // Records up to `durable_seq` are complete in the shared page cache: the reader
            // must see them. Not seeing one means the journal changed under us.
            return Err(RuntimeError::FollowerStopped(format!(
                "durable record {} is not readable",
                self.applied_seq + 1
            )));
        }
        self.fx.clear();
        engine.apply_batch(&self.chunk, &mut self.fx, |_, _| {});
        self.applied_seq += self.chunk.len() as u64;
        Ok(())
    }

    /// Decodes the initial state and opens the reader, the first time they are needed.
    fn ensure_started(&mut self) -> Result<(), RuntimeError> {
        if let Some(state) = self.initial_state.take() {
            let engine = Engine::decode_state(&state)
                .expect("the writer's own state encoding decodes (it was encoded in process)");
            self.engine = Some(engine);
        }
        if self.reader.is_none() {
            let storage = self.storage.clone();
            let reader = JournalReader::open_in(storage, &self.journal_dir, self.applied_seq + 1)?;
            self.reader = Some(reader);
        }
        Ok(())
    }

    /// Writes the snapshot at `applied_seq` (once per seq), after checking the invariants.
    fn write_snapshot(&mut self) -> Result<SnapshotWritten, RuntimeError> {
        if let Some(written) = self.last_written.as_ref().filter(|w| w.seq == self.applied_seq) {
            return Ok(written.clone());
        }
        self.ensure_started()?;
        let engine = self.engine.as_ref().expect("started above");
        let started = Instant::now();
        if let Err(broken) = engine.check_invariants() {
            // The follower's state is the writer's at this seq: never persist a broken one.
            self.stopped = Some(format!("invariant broken at seq {}: {broken}", self.applied_seq));
            return Err(RuntimeError::Invariant(broken));
        }
        self.encoded.clear();
        engine.encode_state(&mut self.encoded);
        let path =
            snapshot::write_in(&self.storage, &self.snapshot_dir, self.applied_seq, &self.encoded)?;
        let written = SnapshotWritten {
            seq: self.applied_seq,
            path,
            len_bytes: self.encoded.len() as u64,
            elapsed: started.elapsed(),
        };
        self.snapshot_seq = self.applied_seq;
        self.last_written = Some(written.clone());
        Ok(written)
    }
}
