//! The writer thread: the sequencer, the journaler and the engine's owner, in one loop.
//!
//! One round = one group commit: drain requests from the ring (up to `batch_len_max` commands,
//! waiting at most `batch_delay_us` for more), stamp the time, append every command to the
//! journal in ring order, apply the appended commands to the engine (answering queries at
//! their place), flush once, publish `durable_seq`, then release the round's replies in order.
//! Commands that arrive while a round flushes wait in the ring and form the next round.
//!
//! Pipelining: when more requests are already waiting, the round's sync runs on the flusher
//! thread (`Journal::begin_flush` / `FlushJob::sync` / `Journal::end_flush`) while the writer
//! appends and applies the next round; the writer then waits for that sync and releases the
//! earlier round before starting the next sync. At most one sync is in flight, and rounds are
//! released in order. With nothing waiting, the sync runs inline (no thread hand-off latency).
//!
//! **Invariant:** a command is applied only after its record was appended, and a reply is
//! released only after the flush that covers its records succeeded. **Invariant:** after a
//! failed flush (or any sync failure) nothing is ever acknowledged again.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError};
use engine::{Command, Effects, Engine, Outcome};

use crate::durability::{Round, Stages};
use crate::error::{RequestError, RuntimeError};
use crate::follower::FollowerMsg;
use crate::handle::{
    self, Answer, Executed, NewCommand, Query, QueryAnswer, Replicated, ReplyQueue, Request, Shared,
};
use crate::options::FOLLOWER_STEP_RECORDS;
use journal::{FlushJob, Journal, JournalError, Storage};

/// While a sync is in flight, how long the writer parks between bulk drains of the ring.
const FILL_INTERVAL: Duration = Duration::from_micros(20);

/// A round with fewer commands syncs inline: the load is light, overlap would gain little.
pub(crate) const PIPELINE_COMMANDS_MIN: usize = 32;

/// What the writer reports when it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// The last sequence number journaled.
    pub last_seq: u64,
    /// The last sequence number made durable (equal to `last_seq` after a clean shutdown).
    pub durable_seq: u64,
    /// The engine's state hash at exit: a restart recovers exactly this state.
    pub state_hash: u128,
    /// Commands journaled and applied since start.
    pub commands: u64,
    /// Flushes (group commits) since start.
    pub flushes: u64,
}

impl std::fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "last seq {}, durable seq {}, state_hash {:032x}, {} commands in {} flushes",
            self.last_seq, self.durable_seq, self.state_hash, self.commands, self.flushes
        )
    }
}

/// How the writer wakes the snapshot follower.
pub(crate) struct FollowerLink {
    pub tx: Sender<FollowerMsg>,
    /// Durable records between nudges.
    pub step_records: u64,
    /// `durable_seq` at the last nudge.
    pub nudged_seq: u64,
}

impl FollowerLink {
    pub(crate) fn new(tx: Sender<FollowerMsg>, every: Option<u64>, durable_seq: u64) -> Self {
        let step_records = every.map_or(u64::MAX, |every| every.min(FOLLOWER_STEP_RECORDS));
        FollowerLink { tx, step_records, nudged_seq: durable_seq }
    }
}

/// A [`Request::Replicated`]'s records, borrowed for appending.
struct ReplicatedRecords<'a> {
    first_seq: u64,
    records: &'a [u8],
    record_count: u32,
}

/// What appending one request's commands ran into.
enum AppendStop {
    /// The request is refused (its first `completed_len` commands were appended).
    Refused(RequestError),
    /// The journal can no longer make anything durable.
    Fatal(String),
}

/// Per request of a round: the range of its appended commands and what to reply.
#[derive(Default)]
struct Slot {
    start: usize,
    end: usize,
    refusal: Option<RequestError>,
    answer: Option<QueryAnswer>,
}

/// One round (group commit): its requests and what happened to them, kept until its flush
/// completes. Two exist at a time at most: the one being executed and the one syncing.
#[derive(Default)]
struct Batch {
    requests: Vec<Request>,
    slots: Vec<Slot>,
    commands: Vec<Command>,
    outcomes: Vec<Outcome>,
    /// The sequence number of `commands[0]`.
    first_seq: u64,
    /// How much of `batch_len_max` the requests use.
    weight: usize,
    /// Requests appended (and, unless a fatal failure stopped it, applied) so far.
    executed: usize,
    /// The commands' encodings, each behind its `u32` length, when a durability stage wants
    /// them ([`Round::payloads`]); empty otherwise.
    payloads: Vec<u8>,
    /// Whether the round is one [`Request::Replicated`] (a round of its own; it passes no
    /// stage).
    replicated: bool,
    /// The state hash after the round, when its replicated request or a stage asked for it.
    state_hash: Option<u128>,
}

impl Batch {
    fn with_capacity(len: usize) -> Batch {
        Batch {
            requests: Vec::with_capacity(len),
            slots: Vec::with_capacity(len),
            commands: Vec::with_capacity(len),
            outcomes: Vec::with_capacity(len),
            first_seq: 0,
            weight: 0,
            executed: 0,
            payloads: Vec::new(),
            replicated: false,
            state_hash: None,
        }
    }

    /// The round's last sequence number (the round has commands).
    fn last_seq(&self) -> u64 {
        self.first_seq + self.commands.len() as u64 - 1
    }

    fn clear(&mut self) {
        self.requests.clear();
        self.slots.clear();
        self.commands.clear();
        self.outcomes.clear();
        self.weight = 0;
        self.executed = 0;
        self.payloads.clear();
        self.replicated = false;
        self.state_hash = None;
    }
}

/// The flusher thread's two queues (one job in flight at most, so both hold one).
struct Flusher<S: Storage> {
    jobs: Sender<Durable<S>>,
    done: Receiver<Synced<S>>,
}

/// What makes one round durable, taken to the flusher thread and back: the journal's flush
/// job, the stages after it (they travel with the round, so no lock guards them) and the
/// round's payloads.
struct Durable<S: Storage> {
    job: FlushJob<S>,
    stages: Stages,
    first_seq: u64,
    last_seq: u64,
    payloads: Vec<u8>,
    /// Replicated records: they pass no stage.
    replicated: bool,
    state_hash: Option<u128>,
}

impl<S: Storage> Durable<S> {
    /// The local flush and every stage, at the same time (the flush on a helper thread: a
    /// replicated log's append need not wait for the local fsync, the round is released only
    /// after both), then the stages' `settled` if both succeeded: the sync's result for
    /// `Journal::end_flush`, and the stages' (their fatal message).
    fn run(&mut self) -> (io::Result<()>, Result<(), String>) {
        if self.stages.is_empty() || self.replicated {
            return (self.job.sync(), Ok(()));
        }
        let round = Round {
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            payloads: &self.payloads,
            state_hash: self.state_hash,
        };
        let (job, stages) = (&mut self.job, &mut self.stages);
        let (synced, staged) = std::thread::scope(|scope| {
            let sync = std::thread::Builder::new()
                .name("journal-sync".to_owned())
                .spawn_scoped(scope, || job.sync());
            let Ok(sync) = sync else {
                // No thread to be had: the flush first, then the stages, as one thread does.
                let synced = job.sync();
                return match synced {
                    Ok(()) => (Ok(()), stages.run(&round)),
                    Err(error) => (Err(error), Ok(())),
                };
            };
            let staged = stages.run(&round);
            let synced = sync.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (synced, staged)
        });
        if synced.is_ok() && staged.is_ok() {
            self.stages.settled(&round);
        }
        (synced, staged)
    }
}

/// A round back from the flusher thread: its flush and stage results and how long they took.
type Synced<S> = (Durable<S>, io::Result<()>, Result<(), String>, Duration);

pub(crate) struct Writer<S: Storage> {
    journal: Journal<S>,
    engine: Engine,
    ring: Receiver<Request>,
    shared: Arc<Shared>,
    follower: FollowerLink,
    batch_len_max: usize,
    batch_delay: Duration,
    pipeline_flushes: bool,
    last_timestamp_ns: u64,
    /// The request that did not fit the previous round.
    carry: Option<Request>,
    /// The round being collected and executed.
    current: Batch,
    /// The previous round, whose flush runs on the flusher thread; its replies wait.
    in_flight: Option<Batch>,
    /// A released round's buffers, reused: no allocation per command on the hot path.
    spare: Option<Batch>,
    encoded: Vec<u8>,
    fx: Effects,
    /// The reply queues a round released into whose owners want a notification, each owner
    /// once in a row (reused: at most one entry per request of a round).
    notify: Vec<Arc<ReplyQueue>>,
    /// The durability stages after the local flush; `None` while they travel with the round
    /// in flight.
    stages: Option<Stages>,
    /// Whether a stage wants the rounds' payloads.
    collect_payloads: bool,
}

impl<S: Storage> Writer<S> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        journal: Journal<S>,
        engine: Engine,
        ring: Receiver<Request>,
        shared: Arc<Shared>,
        follower: FollowerLink,
        batch_len_max: u32,
        batch_delay_us: u32,
        pipeline_flushes: bool,
        last_timestamp_ns: u64,
        stages: Stages,
    ) -> Writer<S> {
        let batch_len_max = batch_len_max as usize;
        let collect_payloads = stages.wants_payloads();
        Writer {
            journal,
            engine,
            ring,
            shared,
            follower,
            batch_len_max,
            batch_delay: Duration::from_micros(u64::from(batch_delay_us)),
            pipeline_flushes,
            last_timestamp_ns,
            carry: None,
            current: Batch::with_capacity(batch_len_max),
            in_flight: None,
            spare: None,
            encoded: Vec::with_capacity(engine::COMMAND_LEN_BYTES_MAX),
            fx: Effects::with_capacity(batch_len_max),
            notify: Vec::new(),
            stages: Some(stages),
            collect_payloads,
        }
    }

    /// Serves until `Stop`; then refuses whatever is still queued and reports.
    pub(crate) fn run(mut self) -> ShutdownReport {
        // Before the first request can be taken: producers unpark this thread.
        let _ = self.shared.writer_thread.set(std::thread::current());
        std::thread::scope(|scope| {
            let flusher = if self.pipeline_flushes { spawn_flusher(scope) } else { None };
            let stopped = self.serve(flusher.as_ref());
            if !stopped {
                self.refuse_until_stop();
            }
            self.refuse_queued();
            // Dropping the flusher's queue ends its thread; the scope joins it.
        });
        self.shared.wake_failure_waiters();
        ShutdownReport {
            last_seq: self.journal.next_seq() - 1,
            durable_seq: self.journal.durable_seq(),
            state_hash: self.engine.state_hash(),
            commands: self.shared.commands.load(Ordering::Relaxed),
            flushes: self.shared.flushes.load(Ordering::Relaxed),
        }
    }

    /// Runs rounds until `Stop` (returns true) or a fatal failure (returns false).
    fn serve(&mut self, flusher: Option<&Flusher<S>>) -> bool {
        loop {
            let stop = match flusher.filter(|_| self.in_flight.is_some()) {
                Some(flusher) => self.fill_while_syncing(flusher),
                None => {
                    let Some(first) = self.carry.take().or_else(|| self.next_request()) else {
                        // Unreachable while the runtime holds a sender; treat it as a stop.
                        return true;
                    };
                    let deadline =
                        (!self.batch_delay.is_zero()).then(|| Instant::now() + self.batch_delay);
                    let stop = self.take(first) || self.drain_ring(deadline);
                    self.execute_current();
                    stop
                }
            };
            debug_assert!(self.in_flight.is_none(), "both branches finish the round in flight");
            if !self.current.requests.is_empty() {
                self.finish_in_flight(flusher);
                let batch_len_max = self.batch_len_max;
                let next = self.spare.take().unwrap_or_else(|| Batch::with_capacity(batch_len_max));
                let batch = std::mem::replace(&mut self.current, next);
                assert!(self.current.requests.is_empty(), "a round starts empty");
                self.commit(batch, flusher);
            }
            self.nudge_follower();
            if stop || self.shared.failure.get().is_some() {
                self.finish_in_flight(flusher);
                return stop;
            }
        }
    }

    /// While the previous round syncs on the flusher thread: takes what arrives into the current
    /// round, appending and applying it, until that sync completes (or the round is full, or
    /// `Stop` came: then it just waits for the sync). So everything that arrives during a sync
    /// goes into the next one, and the CPU work overlaps the disk's. Between bulk drains of the
    /// ring it parks on the sync's completion for at most `FILL_INTERVAL` (bounded wake-ups,
    /// instead of one per arriving request). No round is in flight when it returns; returns
    /// whether `Stop` was taken.
    fn fill_while_syncing(&mut self, flusher: &Flusher<S>) -> bool {
        // Bounded: the sync completes, or the round fills up, or `Stop` comes.
        loop {
            let full = self.carry.is_some() || self.current.weight >= self.batch_len_max;
            if full || self.shared.failure.get().is_some() {
                self.finish_in_flight(Some(flusher));
                return false;
            }
            match flusher.done.recv_timeout(FILL_INTERVAL) {
                Ok(done) => {
                    self.complete(Ok(done));
                    return false;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.complete(Err(RecvError));
                    return false;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let stop = self.drain_ring(None);
                    self.execute_current();
                    if stop {
                        self.finish_in_flight(Some(flusher));
                        return true;
                    }
                }
            }
        }
    }

    /// Waits for the next request: parks while the ring is empty (see [`Shared::wake_writer`]
    /// for why not crossbeam's blocking `recv`). `None` once every sender is gone.
    fn next_request(&self) -> Option<Request> {
        let shared = &self.shared;
        // Bounded per wake-up: each iteration either returns or parks until a producer wakes
        // it (or spuriously, which only costs another look).
        loop {
            match self.ring.try_recv() {
                Ok(request) => return Some(request),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            shared.writer_parked.store(true, Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::SeqCst);
            match self.ring.try_recv() {
                Ok(request) => {
                    shared.writer_parked.store(false, Ordering::Relaxed);
                    return Some(request);
                }
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => std::thread::park(),
            }
            // Woken (by a producer, which cleared the flag, or spuriously): look again.
            shared.writer_parked.store(false, Ordering::Relaxed);
        }
    }

    /// Adds `request` to the current round, or carries it to the next one if it does not fit.
    /// Returns whether it was `Stop`.
    fn take(&mut self, request: Request) -> bool {
        let weight = request.weight();
        let round = &mut self.current;
        let replicated = matches!(request, Request::Replicated { .. });
        // Replicated records form a round of their own: they pass no stage, the others do.
        let apart = replicated || round.replicated;
        if !round.requests.is_empty() && (apart || round.weight + weight > self.batch_len_max) {
            self.carry = Some(request);
            return false;
        }
        round.replicated = replicated;
        let stop = matches!(request, Request::Stop);
        round.weight += weight;
        round.requests.push(request);
        stop
    }

    /// Takes what is queued into the current round, waiting until `deadline` (if any) for
    /// more, until the round is full. Returns whether `Stop` was taken.
    fn drain_ring(&mut self, deadline: Option<Instant>) -> bool {
        // Bounded: every iteration adds a request of weight >= 1 or ends.
        while self.current.weight < self.batch_len_max && self.carry.is_none() {
            let next = match self.ring.try_recv() {
                Ok(request) => request,
                Err(TryRecvError::Empty) => match deadline {
                    None => return false,
                    Some(deadline) => match self.ring.recv_deadline(deadline) {
                        Ok(request) => request,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                            return false;
                        }
                    },
                },
                Err(TryRecvError::Disconnected) => return false,
            };
            if self.take(next) {
                return true;
            }
        }
        false
    }

    /// Executes the current round's requests that are not executed yet.
    fn execute_current(&mut self) {
        let mut batch = std::mem::take(&mut self.current);
        if let Some(message) = self.execute(&mut batch) {
            // Recorded before any release, so nothing is acknowledged from now on.
            self.shared.fail(message);
        }
        self.current = batch;
    }

    /// Appends the round's new requests' commands in order, then applies them. Returns the
    /// fatal failure that stopped appending, if any (nothing more is applied then).
    fn execute(&mut self, batch: &mut Batch) -> Option<String> {
        let from = batch.executed;
        if from == batch.requests.len() || self.shared.failure.get().is_some() {
            return None;
        }
        if from == 0 {
            assert!(batch.commands.is_empty(), "a new round has no commands yet");
            batch.first_seq = self.journal.next_seq();
        }
        let appended_seq = batch.first_seq + batch.commands.len() as u64;
        assert_eq!(appended_seq, self.journal.next_seq(), "only this round appends now");
        let timestamp_ns = self.stamp();
        let mut fatal = None;
        for request in batch.requests[from..].iter_mut() {
            let start = batch.commands.len();
            let mut refusal = None;
            match request {
                Request::Commands { commands, .. } if fatal.is_none() => {
                    let payloads = self.collect_payloads.then_some(&mut batch.payloads);
                    let appended = append(
                        &mut self.journal,
                        &mut self.encoded,
                        commands,
                        timestamp_ns,
                        &mut batch.commands,
                        payloads,
                    );
                    match appended {
                        Ok(()) => {}
                        Err(AppendStop::Refused(error)) => refusal = Some(error),
                        Err(AppendStop::Fatal(message)) => fatal = Some(message),
                    }
                }
                Request::Replicated { first_seq, records, record_count, .. } if fatal.is_none() => {
                    let replicated = ReplicatedRecords {
                        first_seq: *first_seq,
                        records,
                        record_count: *record_count,
                    };
                    match self.append_replicated(replicated, &mut batch.commands) {
                        Ok(()) => {}
                        Err(AppendStop::Refused(error)) => refusal = Some(error),
                        Err(AppendStop::Fatal(message)) => fatal = Some(message),
                    }
                }
                #[cfg(test)]
                Request::Hook(hook) => std::mem::replace(hook, Box::new(|| {}))(),
                Request::Commands { .. }
                | Request::Replicated { .. }
                | Request::Query { .. }
                | Request::Archive { .. }
                | Request::Stop => {}
            }
            let end = batch.commands.len();
            batch.slots.push(Slot { start, end, refusal, answer: None });
        }
        batch.executed = batch.requests.len();
        assert_eq!(batch.slots.len(), batch.requests.len(), "every request has its slot");
        if fatal.is_none() {
            let appended_seq = batch.first_seq + batch.commands.len() as u64;
            assert_eq!(appended_seq, self.journal.next_seq(), "the round's records are in order");
            self.apply(batch, from);
            let wants_hash = matches!(
                batch.requests.first(),
                Some(Request::Replicated { want_state_hash: true, .. })
            );
            if batch.replicated && wants_hash && !batch.commands.is_empty() {
                batch.state_hash = Some(self.engine.state_hash());
            }
        }
        fatal
    }

    /// Journals replicated records at exactly their seqs, byte for byte, after checking them
    /// all (a refusal journals nothing); their commands go to `appended`.
    fn append_replicated(
        &mut self,
        replicated: ReplicatedRecords<'_>,
        appended: &mut Vec<Command>,
    ) -> Result<(), AppendStop> {
        let refuse =
            |message: String| Err(AppendStop::Refused(RequestError::Replication { message }));
        let ReplicatedRecords { first_seq, records, record_count } = replicated;
        let next_seq = self.journal.next_seq();
        if first_seq != next_seq {
            return refuse(format!(
                "records start at seq {first_seq}, the journal's next is {next_seq}"
            ));
        }
        let start = appended.len();
        let mut rest: &[u8] = records;
        let mut payloads = Vec::with_capacity(record_count as usize);
        // Bounded: each step consumes at least 4 bytes of `records`.
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*len) as usize;
            let Some((payload, tail)) = tail.split_at_checked(len) else {
                appended.truncate(start);
                return refuse(format!("record {} is cut off", payloads.len()));
            };
            match engine::decode_command(payload) {
                Ok(command) => appended.push(command),
                Err(error) => {
                    appended.truncate(start);
                    let seq = first_seq + payloads.len() as u64;
                    return refuse(format!("the record for seq {seq} is not a command: {error}"));
                }
            }
            payloads.push(payload);
            rest = tail;
        }
        if !rest.is_empty() || payloads.len() != record_count as usize || payloads.is_empty() {
            appended.truncate(start);
            return refuse(format!(
                "{} whole records and {} trailing bytes, {record_count} announced",
                payloads.len(),
                rest.len()
            ));
        }
        for (index, payload) in payloads.iter().enumerate() {
            let expected_seq = first_seq + index as u64;
            match self.journal.append(payload) {
                Ok(seq) => assert_eq!(seq, expected_seq, "replicated records keep their seqs"),
                Err(error) => {
                    // Commands journaled so far stay in the round; the rest are dropped.
                    appended.truncate(start + index);
                    return Err(append_stop(error, index));
                }
            }
        }
        for command in &appended[start..] {
            // Their primary stamped them; the next local stamp must not go below them.
            self.last_timestamp_ns = self.last_timestamp_ns.max(command.timestamp_ns);
        }
        Ok(())
    }

    /// Applies the commands appended for requests `from..`, answering each query after the
    /// commands before it and before the commands after it. Runs between queries go through
    /// `apply_batch` (prefetching), which is exactly `apply` in order.
    fn apply(&mut self, batch: &mut Batch, from: usize) {
        self.fx.clear();
        let Batch { requests, slots, commands, outcomes, .. } = batch;
        let mut applied = outcomes.len();
        assert!(applied <= commands.len(), "nothing is applied before it is appended");
        for (slot, request) in slots[from..].iter_mut().zip(&requests[from..]) {
            if let Request::Query { query, .. } = request {
                assert!(applied <= slot.start, "queries are answered in ring order");
                apply_run(&mut self.engine, &commands[applied..slot.start], outcomes, &mut self.fx);
                applied = slot.start;
                slot.answer = Some(answer(&self.engine, query));
            }
        }
        apply_run(&mut self.engine, &commands[applied..], outcomes, &mut self.fx);
        assert_eq!(outcomes.len(), commands.len(), "one outcome per appended command");
    }

    /// Makes the round durable and releases it: at once when it has no records (everything
    /// before it is durable: the previous round was finished first), inline when there is no
    /// next round to overlap with, or on the flusher thread while the next round executes.
    fn commit(&mut self, mut batch: Batch, flusher: Option<&Flusher<S>>) {
        debug_assert!(self.in_flight.is_none(), "the previous round was finished first");
        if batch.commands.is_empty() || self.shared.failure.get().is_some() {
            return self.settle(batch, None);
        }
        let job = match self.journal.begin_flush() {
            Ok(job) => job,
            Err(error) => return self.settle(batch, Some(Err(fatal_message(&error)))),
        };
        assert!(job.seq() >= batch.last_seq(), "the flush job covers the whole round");
        let stages = self.stages.take().expect("no round is in flight, so the stages are here");
        let has_work = job.needs_sync() || !stages.is_empty();
        let durable = Durable {
            job,
            stages,
            first_seq: batch.first_seq,
            last_seq: batch.last_seq(),
            payloads: std::mem::take(&mut batch.payloads),
            replicated: batch.replicated,
            state_hash: None,
        };
        let mut durable = durable;
        if !batch.replicated && !durable.stages.is_empty() {
            let (first_seq, last_seq) = (batch.first_seq, batch.last_seq());
            if durable.stages.wants_state_hash(first_seq, last_seq) {
                // The engine is at the round's end: the next round is not executed yet.
                durable.state_hash = Some(self.engine.state_hash());
            }
        }
        // Hand the sync off only under load: work is already waiting, and this round was big
        // enough that the next one's CPU work is worth overlapping with the sync. A light load
        // syncs inline, without the latency of waking the flusher thread.
        let more_work = self.carry.is_some() || !self.ring.is_empty();
        let more_work = more_work && batch.commands.len() >= PIPELINE_COMMANDS_MIN;
        // A round with stages to pass (a replicated log's append, milliseconds away) always
        // goes to the flusher thread: the writer takes the next round meanwhile, never blocks.
        let staged = !durable.stages.is_empty() && !durable.replicated;
        if let Some(flusher) = flusher.filter(|_| (more_work || staged) && has_work) {
            match flusher.jobs.try_send(durable) {
                Ok(()) => {
                    self.shared.pipelined_flushes.fetch_add(1, Ordering::Relaxed);
                    self.in_flight = Some(batch);
                    return;
                }
                // The flusher thread is gone (it cannot be full: one job at a time).
                Err(error) => {
                    let result = self.sync_inline(error.into_inner(), &mut batch);
                    return self.settle(batch, Some(result));
                }
            }
        }
        let result = self.sync_inline(durable, &mut batch);
        self.settle(batch, Some(result));
    }

    fn sync_inline(&mut self, mut durable: Durable<S>, batch: &mut Batch) -> Result<u64, String> {
        let started = Instant::now();
        let (synced, staged) = durable.run();
        if durable.job.needs_sync() {
            self.record_sync(started.elapsed());
        }
        self.finish_durable(durable, synced, staged, batch)
    }

    /// Records a round's flush in the journal, takes back the stages and the payload buffer,
    /// and returns the durable seq or the fatal message.
    fn finish_durable(
        &mut self,
        durable: Durable<S>,
        synced: io::Result<()>,
        staged: Result<(), String>,
        batch: &mut Batch,
    ) -> Result<u64, String> {
        let Durable { job, stages, payloads, .. } = durable;
        assert!(self.stages.is_none(), "one round holds the stages at a time");
        self.stages = Some(stages);
        batch.payloads = payloads;
        let durable_seq = self.journal.end_flush(job, synced).map_err(|e| fatal_message(&e))?;
        staged?;
        Ok(durable_seq)
    }

    fn record_sync(&self, took: Duration) {
        let took_ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.shared.flush_ns_total.fetch_add(took_ns, Ordering::Relaxed);
        self.shared.flush_ns_max.fetch_max(took_ns, Ordering::Relaxed);
    }

    /// Waits for the round in flight, if any, and releases it.
    fn finish_in_flight(&mut self, flusher: Option<&Flusher<S>>) {
        if self.in_flight.is_none() {
            return;
        }
        let flusher = flusher.expect("a round is in flight only through the flusher");
        let done = flusher.done.recv();
        self.complete(done);
    }

    fn complete(&mut self, done: Result<Synced<S>, RecvError>) {
        assert!(self.stages.is_none(), "the stages travel with the round in flight");
        let mut batch =
            self.in_flight.take().expect("a flush completes only while one is in flight");
        let durable = match done {
            Ok((durable, synced, staged, took)) => {
                self.record_sync(took);
                self.finish_durable(durable, synced, staged, &mut batch)
            }
            // The stages went down with the thread: the runtime has failed for good.
            Err(RecvError) => Err(format!(
                "{}: sync failed: the flusher thread exited",
                self.journal.dir().display()
            )),
        };
        self.settle(batch, Some(durable));
    }

    /// Publishes the flush's result, then releases the round's replies, in order.
    fn settle(&mut self, mut batch: Batch, durable: Option<Result<u64, String>>) {
        match durable {
            Some(Ok(durable_seq)) => {
                let last_seq = batch.last_seq();
                assert!(durable_seq >= last_seq, "the flush covers the whole round");
                let published = self.shared.durable_seq.load(Ordering::Relaxed);
                assert!(durable_seq >= published, "the durable seq never goes backwards");
                assert!(durable_seq < self.journal.next_seq(), "only appended records are durable");
                self.shared.commands.fetch_add(batch.commands.len() as u64, Ordering::Relaxed);
                self.shared.flushes.fetch_add(1, Ordering::Relaxed);
                // Published before any reply: a released reply is always covered.
                self.shared.durable_seq.store(durable_seq, Ordering::Release);
            }
            Some(Err(message)) => self.shared.fail(message),
            None => {}
        }
        self.release(&mut batch);
        batch.clear();
        if self.spare.is_none() {
            self.spare = Some(batch);
        }
    }

    /// Releases every reply of a round, in order (all `Fatal` once the runtime has failed),
    /// then notifies the producers that asked for it: once each after the whole round, so an
    /// event loop wakes to find every reply of the round waiting.
    fn release(&mut self, batch: &mut Batch) {
        let fatal = self.shared.failure.get().cloned();
        let fatal_error = || RequestError::Fatal { message: fatal.clone().unwrap_or_default() };
        // Published before this release, and never lowered.
        let durable_seq = self.shared.durable_seq.load(Ordering::Acquire);
        let Batch { requests, slots, outcomes, first_seq, state_hash, .. } = batch;
        assert_eq!(slots.len(), requests.len(), "one slot per request of the round");
        for (slot, request) in slots.iter_mut().zip(requests.drain(..)) {
            match request {
                Request::Commands { reply, .. } => {
                    let result = if fatal.is_some() {
                        Err(fatal_error())
                    } else if let Some(refusal) = slot.refusal.take() {
                        Err(refusal)
                    } else {
                        assert!(slot.start < slot.end, "an executed submission has commands");
                        let last_seq = *first_seq + slot.end as u64 - 1;
                        assert!(last_seq <= durable_seq, "a reply is released only once durable");
                        Ok(Answer::Executed(Executed {
                            outcomes: outcomes[slot.start..slot.end].to_vec(),
                            last_seq,
                        }))
                    };
                    remember(&mut self.notify, reply.send_quietly(result));
                }
                Request::Replicated { reply, .. } => {
                    let result = if fatal.is_some() {
                        Err(fatal_error())
                    } else if let Some(refusal) = slot.refusal.take() {
                        Err(refusal)
                    } else {
                        let last_seq = *first_seq + slot.end as u64 - 1;
                        assert!(last_seq <= durable_seq, "a reply is released only once durable");
                        Ok(Answer::Replicated(Replicated { last_seq, state_hash: *state_hash }))
                    };
                    remember(&mut self.notify, reply.send_quietly(result));
                }
                Request::Query { reply, .. } => {
                    let result = match (&fatal, slot.answer.take()) {
                        (None, Some(answer)) => Ok(Answer::Query(answer)),
                        _ => Err(fatal_error()),
                    };
                    remember(&mut self.notify, reply.send_quietly(result));
                }
                Request::Archive { before_seq, reply } => {
                    let result = match &fatal {
                        Some(message) => Err(RuntimeError::Fatal(message.clone())),
                        None => self.archive(before_seq),
                    };
                    let _ = reply.send(result);
                }
                Request::Stop => {}
                #[cfg(test)]
                Request::Hook(_) => {}
            }
        }
        for queue in self.notify.drain(..) {
            queue.notify();
        }
    }

    fn archive(&mut self, before_seq: u64) -> Result<Vec<std::path::PathBuf>, RuntimeError> {
        let removed = self.journal.remove_segments_before(before_seq);
        if let Err(error @ JournalError::SyncFailed { .. }) = &removed {
            // A failed directory sync: like any failed sync, nothing is acknowledged after it.
            self.shared.fail(fatal_message(error));
        }
        Ok(removed?)
    }

    /// The round's timestamp: the system clock, never earlier than the previous round's.
    fn stamp(&mut self) -> u64 {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX));
        let before_ns = self.last_timestamp_ns;
        self.last_timestamp_ns = self.last_timestamp_ns.max(now_ns);
        assert!(self.last_timestamp_ns >= before_ns, "timestamps never go backwards");
        self.last_timestamp_ns
    }

    fn nudge_follower(&mut self) {
        let durable_seq = self.shared.durable_seq.load(Ordering::Relaxed);
        let link = &mut self.follower;
        if durable_seq.saturating_sub(link.nudged_seq) >= link.step_records {
            // A full queue already holds a nudge: the follower will catch up to this one too.
            let _ = link.tx.try_send(FollowerMsg::Nudge);
            link.nudged_seq = durable_seq;
        }
    }

    /// After a fatal failure: refuse every request until `Stop`.
    fn refuse_until_stop(&mut self) {
        let mut next = self.carry.take();
        loop {
            let request = match next.take() {
                Some(request) => request,
                None => match self.ring.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                },
            };
            if matches!(request, Request::Stop) {
                return;
            }
            self.refuse(request);
        }
    }

    /// After `Stop`: refuse the carried request and whatever is still queued, and make every
    /// later sender refuse its own request.
    fn refuse_queued(&mut self) {
        if let Some(request) = self.carry.take() {
            self.refuse(request);
        }
        self.shared.close_ring();
    }

    fn refuse(&self, request: Request) {
        handle::refuse(request, self.shared.refusal_error());
    }
}

/// Keeps `queue` for a notification after the round, unless the previous one notifies the same
/// owner (an event loop's producers usually share one notifier).
fn remember(notify: &mut Vec<Arc<ReplyQueue>>, queue: Option<Arc<ReplyQueue>>) {
    let Some(queue) = queue else { return };
    if !notify.last().is_some_and(|last| last.same_notify(&queue)) {
        notify.push(queue);
    }
}

/// Starts the flusher thread, which runs one `FlushJob::sync` at a time. Without it (the OS
/// refused a thread) every flush runs inline on the writer: slower, equally safe.
fn spawn_flusher<'scope, S: Storage>(
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Option<Flusher<S>> {
    let (jobs, jobs_rx) = bounded::<Durable<S>>(1);
    let (done_tx, done) = bounded(1);
    let spawned = std::thread::Builder::new().name("ledger-flusher".to_owned()).spawn_scoped(
        scope,
        move || {
            for mut durable in jobs_rx {
                let started = Instant::now();
                let (synced, staged) = durable.run();
                if done_tx.send((durable, synced, staged, started.elapsed())).is_err() {
                    return;
                }
            }
        },
    );
    spawned.ok().map(|_| Flusher { jobs, done })
}

/// Stamps, encodes and appends one request's commands.
fn append<S: Storage>(
    journal: &mut Journal<S>,
    encoded: &mut Vec<u8>,
    commands: &[NewCommand],
    timestamp_ns: u64,
    appended: &mut Vec<Command>,
    mut payloads: Option<&mut Vec<u8>>,
) -> Result<(), AppendStop> {
    for (index, new) in commands.iter().enumerate() {
        let command = Command { tx_id: new.tx_id, timestamp_ns, body: new.body };
        encoded.clear();
        engine::encode_command(&command, encoded);
        let expected_seq = journal.next_seq();
        match journal.append(encoded) {
            Ok(seq) => {
                assert_eq!(seq, expected_seq, "sequence numbers are consecutive");
                appended.push(command);
            }
            Err(error) => return Err(append_stop(error, index)),
        }
        if let Some(payloads) = payloads.as_deref_mut() {
            // The length fits: `journal.append` accepted at most PAYLOAD_LEN_BYTES_MAX.
            payloads.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
            payloads.extend_from_slice(encoded);
        }
    }
    Ok(())
}

fn apply_run(engine: &mut Engine, run: &[Command], outcomes: &mut Vec<Outcome>, fx: &mut Effects) {
    if !run.is_empty() {
        engine.apply_batch(run, fx, |_, outcome| outcomes.push(outcome));
    }
}

fn answer(engine: &Engine, query: &Query) -> QueryAnswer {
    match query {
        Query::Account(account_no) => QueryAnswer::Account(engine.account(account_no)),
        Query::Tx(tx_id) => QueryAnswer::Tx(engine.tx(*tx_id)),
        Query::Exposure(account_no) => {
            let found = engine.account(account_no).zip(engine.exposure(account_no));
            QueryAnswer::Exposure(found.map(Box::new))
        }
        Query::StateHash => QueryAnswer::StateHash(engine.state_hash()),
        Query::CheckInvariants => QueryAnswer::Invariants(engine.check_invariants()),
    }
}

/// Which append failures refuse a request and which stop the runtime.
fn append_stop(error: JournalError, completed_len: usize) -> AppendStop {
    let completed_len = completed_len as u32;
    match error {
        JournalError::NoSpace { .. } => {
            AppendStop::Refused(RequestError::NoSpace { completed_len, message: error.to_string() })
        }
        // Creating a segment failed before it got its name: nothing changed, retry later.
        JournalError::Io { .. } => AppendStop::Refused(RequestError::Unavailable {
            completed_len,
            message: error.to_string(),
        }),
        JournalError::SyncFailed { .. } | JournalError::Poisoned => {
            AppendStop::Fatal(fatal_message(&error))
        }
        // Not produced by an append of a valid command: a bug, so stop acknowledging.
        JournalError::Corrupt { .. }
        | JournalError::UnsupportedVersion { .. }
        | JournalError::PayloadLen { .. }
        | JournalError::Locked { .. }
        | JournalError::SeqUnavailable { .. }
        | JournalError::NotDurable { .. }
        | JournalError::TruncateArchived { .. }
        | JournalError::TruncateDamaged { .. }
        | JournalError::InvalidOptions(_)
        | JournalError::SnapshotTooLong { .. } => {
            AppendStop::Fatal(format!("unexpected journal error on append: {error}"))
        }
    }
}

fn fatal_message(error: &JournalError) -> String {
    use std::error::Error;
    match error.source() {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}
