//! The producer side: [`Handle`] (cloneable, for any thread), [`Producer`] and [`Replies`] (a
//! gateway thread's submission path and its bounded reply queue, optionally with a
//! [`ReplyNotify`] for event loops that cannot block on it), and what travels through the input
//! ring to the writer.
//!
//! Every request carries a [`Pending`] reply that answers exactly once: with the result, or, if
//! it is dropped unanswered (shutdown, a panic), with an error. So no producer waits forever.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendError, Sender, TrySendError};
use engine::{AccountNo, AccountView, CommandBody, ExposureView, Outcome, TxId, TxView};

use crate::error::{RequestError, RuntimeError};
use crate::options::IN_FLIGHT_CEILING;
use crate::RuntimeStats;

/// A command as a producer submits it: the client's `tx_id` and what to do. The sequencer adds
/// the sequence number and the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewCommand {
    /// The client's unique id of the command (re-sending it is idempotent).
    pub tx_id: TxId,
    /// What to do.
    pub body: CommandBody,
}

/// A read-only question, answered by the writer thread in order with the producer's commands
/// (it sees every command submitted before it). Queries are not journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// One account's balances, status and limits.
    Account(AccountNo),
    /// What the ledger remembers of a transaction.
    Tx(TxId),
    /// One account's unsettled deposits, exposure and exposure limit (with the account).
    Exposure(AccountNo),
    /// The digest of the whole state. O(state): it stalls the writer; for tests and operators.
    StateHash,
    /// Every invariant over the whole state. O(state): it stalls the writer.
    CheckInvariants,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryAnswer {
    /// For [`Query::Account`].
    Account(Option<AccountView>),
    /// For [`Query::Tx`].
    Tx(Option<TxView>),
    /// For [`Query::Exposure`]: the account and its exposure, `None` when there is no account.
    Exposure(Option<Box<(AccountView, ExposureView)>>),
    /// For [`Query::StateHash`].
    StateHash(u128),
    /// For [`Query::CheckInvariants`].
    Invariants(Result<(), String>),
}

/// The result of a submission: one outcome per command, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The outcomes, in submission order.
    pub outcomes: Vec<Outcome>,
    /// The sequence number of the submission's last command; its first is
    /// `last_seq + 1 - outcomes.len()`. Durable when the reply is released.
    pub last_seq: u64,
}

/// The result of [`Handle::replicate`]: the records are journaled, applied and durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicated {
    /// The last record's sequence number.
    pub last_seq: u64,
    /// The engine's state hash after it, when asked for.
    pub state_hash: Option<u128>,
}

/// What a successful request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A submission's outcomes.
    Executed(Executed),
    /// A query's answer.
    Query(QueryAnswer),
    /// Replicated records, journaled and applied.
    Replicated(Replicated),
}

/// A reply on a producer's queue, tagged with the token the producer gave with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The producer's token (e.g. connection and request id).
    pub token: u64,
    /// The answer, or why the request was refused.
    pub result: Result<Answer, RequestError>,
}

/// A submission that was refused before it entered the ring; the commands are handed back.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Refused {
    /// Why.
    pub error: RequestError,
    /// The commands, untouched.
    pub commands: Vec<NewCommand>,
}

/// Told that replies were put on a producer's queue, for a thread that waits on many queues at
/// once (an event loop) instead of blocking on one [`Replies::recv`].
///
/// The runtime calls [`ReplyNotify::notify`] after every reply it puts on the queue, though not
/// necessarily once per reply: the writer answers a whole round first and then notifies each
/// producer of the round once. Whoever is notified should drain the queue with
/// [`Replies::try_recv`] until it is empty.
pub trait ReplyNotify: Send + Sync {
    /// Replies are waiting. Called on the writer thread (and, for refusals, on any thread):
    /// it must be quick and must never block.
    fn notify(&self);
}

/// A producer's reply queue as the requests hold it: the sending side and whom to notify.
pub(crate) struct ReplyQueue {
    replies: Sender<Reply>,
    notify: Option<Arc<dyn ReplyNotify>>,
}

impl ReplyQueue {
    /// Tells the producer's owner that replies are waiting (nothing without a notifier).
    pub(crate) fn notify(&self) {
        if let Some(notify) = &self.notify {
            notify.notify();
        }
    }

    /// Whether `self` and `other` notify the same way (so one notification covers both).
    pub(crate) fn same_notify(&self, other: &ReplyQueue) -> bool {
        match (&self.notify, &other.notify) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            (Some(_), None) | (None, Some(_)) => false,
        }
    }
}

/// Where a reply goes.
pub(crate) enum ReplyTo {
    /// A producer's bounded queue (whose window guarantees room).
    Queue { queue: Arc<ReplyQueue>, token: u64 },
    /// A one-shot slot for a blocking call.
    Once(Sender<Result<Answer, RequestError>>),
}

/// A reply owed to a producer: answered exactly once, by [`Pending::send`] or, if dropped
/// unanswered, with `ShuttingDown` (or `Fatal` while a panic unwinds).
pub(crate) struct Pending {
    to: Option<ReplyTo>,
}

impl Pending {
    pub(crate) fn new(to: ReplyTo) -> Pending {
        Pending { to: Some(to) }
    }

    pub(crate) fn send(mut self, result: Result<Answer, RequestError>) {
        if let Some(to) = self.to.take() {
            deliver(to, result);
        }
    }

    /// Like [`Pending::send`], but leaves the notification to the caller: returns the queue
    /// whose owner must be notified (the writer notifies once per producer per round).
    pub(crate) fn send_quietly(
        mut self,
        result: Result<Answer, RequestError>,
    ) -> Option<Arc<ReplyQueue>> {
        match self.to.take()? {
            ReplyTo::Queue { queue, token } => {
                let _ = queue.replies.send(Reply { token, result });
                queue.notify.is_some().then_some(queue)
            }
            to @ ReplyTo::Once(_) => {
                deliver(to, result);
                None
            }
        }
    }

    /// Takes the destination without answering (the request was handed back to its caller).
    fn disarm(mut self) {
        self.to = None;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            let error = if std::thread::panicking() {
                RequestError::Fatal { message: "a runtime thread panicked".into() }
            } else {
                RequestError::ShuttingDown
            };
            deliver(to, Err(error));
        }
    }
}

fn deliver(to: ReplyTo, result: Result<Answer, RequestError>) {
    // A send fails only when the receiver is gone: nobody is waiting for this reply any more.
    // A queue never blocks here: its producer's window keeps a slot free for every request.
    match to {
        ReplyTo::Queue { queue, token } => {
            let _ = queue.replies.send(Reply { token, result });
            queue.notify();
        }
        ReplyTo::Once(slot) => {
            let _ = slot.try_send(result);
        }
    }
}

/// What travels through the input ring to the writer thread.
pub(crate) enum Request {
    Commands {
        commands: Vec<NewCommand>,
        reply: Pending,
    },
    Query {
        query: Query,
        reply: Pending,
    },
    /// Records another replica journaled (a standby following its primary): journaled at
    /// exactly `first_seq..`, byte for byte, and applied; a round of their own.
    Replicated {
        first_seq: u64,
        /// The records, each behind its `u32` little-endian length.
        records: Vec<u8>,
        record_count: u32,
        want_state_hash: bool,
        reply: Pending,
    },
    /// Remove journal segments whose records all precede `before_seq`.
    Archive {
        before_seq: u64,
        reply: Sender<Result<Vec<PathBuf>, RuntimeError>>,
    },
    /// Finish everything before this, flush, refuse everything after it, and exit.
    Stop,
    /// Runs on the writer thread at its place in the order (fault injection in tests).
    #[cfg(test)]
    Hook(Box<dyn FnOnce() + Send>),
}

impl Request {
    /// How much of a group commit's `batch_len_max` this request uses.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Request::Commands { commands, .. } => commands.len(),
            Request::Replicated { record_count, .. } => (*record_count as usize).max(1),
            Request::Query { .. } | Request::Archive { .. } | Request::Stop => 1,
            #[cfg(test)]
            Request::Hook(_) => 1,
        }
    }
}

/// State shared by the handles, the writer, the follower and the runtime.
pub(crate) struct Shared {
    /// Set by `shutdown`: no new requests are accepted.
    pub closed: AtomicBool,
    /// The highest sequence number the journal made durable (published after each flush,
    /// before the flush's replies are released).
    pub durable_seq: AtomicU64,
    /// Flushes that made at least one record durable.
    pub flushes: AtomicU64,
    /// Of those, the ones synced on the flusher thread while the next round executed.
    pub pipelined_flushes: AtomicU64,
    /// Time spent in those syncs, in total and the longest one.
    pub flush_ns_total: AtomicU64,
    pub flush_ns_max: AtomicU64,
    /// Commands journaled and applied since start.
    pub commands: AtomicU64,
    /// The fatal failure, once there is one: nothing is acknowledged after it.
    pub failure: OnceLock<String>,
    /// Closed (by dropping the sender) when the runtime fails or its writer exits.
    pub failure_signal: Mutex<Option<Sender<()>>>,
    pub failure_wait: Receiver<()>,
    /// Set once the writer has stopped taking requests (after `Stop`, or when it died). From
    /// then on, whoever puts a request into the ring takes it out again and refuses it.
    pub drained: AtomicBool,
    /// The ring's receiving side, for that final draining: crossbeam keeps queued messages
    /// until every sender is gone, so a request that slipped in after the writer's last look
    /// would otherwise never be answered.
    ring: Receiver<Request>,
    /// The writer parks itself when the ring is empty (see [`Shared::wake_writer`]); its
    /// thread, set by the writer before it takes its first request.
    pub writer_parked: AtomicBool,
    pub writer_thread: OnceLock<std::thread::Thread>,
}

impl Shared {
    pub(crate) fn new(durable_seq: u64, ring: Receiver<Request>) -> Shared {
        let (signal, wait) = bounded(1);
        Shared {
            drained: AtomicBool::new(false),
            ring,
            writer_parked: AtomicBool::new(false),
            writer_thread: OnceLock::new(),
            closed: AtomicBool::new(false),
            durable_seq: AtomicU64::new(durable_seq),
            flushes: AtomicU64::new(0),
            pipelined_flushes: AtomicU64::new(0),
            flush_ns_total: AtomicU64::new(0),
            flush_ns_max: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            failure: OnceLock::new(),
            failure_signal: Mutex::new(Some(signal)),
            failure_wait: wait,
        }
    }

    /// Wakes the writer if it parked on an empty ring; called after every request put into it.
    ///
    /// The writer does not block in crossbeam's `recv`: its back-off spins and then calls
    /// `sched_yield` several times before it sleeps, which on a machine with as many busy
    /// threads as cores hands the writer's core to another thread and makes the next request
    /// wait for the writer to be scheduled again. Instead it announces that it parks
    /// (`writer_parked`), looks at the ring once more and parks. Dekker's pattern with a fence
    /// on each side: either the writer's second look sees this request, or this load sees the
    /// flag (or both); a wake-up is never lost, and an extra one is harmless (park's token).
    pub(crate) fn wake_writer(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.writer_parked.load(Ordering::Relaxed)
            && self.writer_parked.swap(false, Ordering::AcqRel)
        {
            if let Some(writer) = self.writer_thread.get() {
                writer.unpark();
            }
        }
    }

    /// Records the fatal failure (the first one wins) and wakes whoever waits for it.
    pub(crate) fn fail(&self, message: String) {
        let _ = self.failure.set(message);
        self.wake_failure_waiters();
    }

    /// Wakes `wait_for_failure` callers (they then read `failure`).
    pub(crate) fn wake_failure_waiters(&self) {
        self.failure_signal.lock().unwrap_or_else(PoisonError::into_inner).take();
    }

    pub(crate) fn refusal(&self) -> Option<RequestError> {
        if let Some(message) = self.failure.get() {
            return Some(RequestError::Fatal { message: message.clone() });
        }
        let closed = self.closed.load(Ordering::Acquire) || self.drained.load(Ordering::SeqCst);
        closed.then_some(RequestError::ShuttingDown)
    }

    /// Why a request is refused once the writer no longer serves: `Fatal` after a failure,
    /// `ShuttingDown` otherwise.
    pub(crate) fn refusal_error(&self) -> RequestError {
        match self.failure.get() {
            Some(message) => RequestError::Fatal { message: message.clone() },
            None => RequestError::ShuttingDown,
        }
    }

    /// The writer no longer serves: from now on every request in the ring is refused, by this
    /// call or by the sender that puts one in later (it checks `drained` after sending).
    pub(crate) fn close_ring(&self) {
        self.drained.store(true, Ordering::SeqCst);
        self.drain_ring();
    }

    /// Refuses every request queued in the ring.
    pub(crate) fn drain_ring(&self) {
        // Bounded: the ring holds at most `ring_capacity` requests, and every sender that adds
        // one after `drained` was set drains it itself.
        while let Ok(request) = self.ring.try_recv() {
            refuse(request, self.refusal_error());
        }
    }
}

/// Answers a request that will not be executed.
pub(crate) fn refuse(request: Request, error: RequestError) {
    match request {
        Request::Commands { reply, .. }
        | Request::Query { reply, .. }
        | Request::Replicated { reply, .. } => reply.send(Err(error)),
        Request::Archive { reply, .. } => {
            let error = match error {
                RequestError::Fatal { message } => RuntimeError::Fatal(message),
                _ => RuntimeError::ShuttingDown,
            };
            let _ = reply.send(Err(error));
        }
        Request::Stop => {}
        #[cfg(test)]
        Request::Hook(_) => {}
    }
}

/// A cheap, cloneable, `Send` handle for submitting commands and queries from any thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) ring: Sender<Request>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) submission_len_max: u32,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("durable_seq", &self.durable_seq()).finish_non_exhaustive()
    }
}

impl Handle {
    /// A producer with its own bounded reply queue: at most `in_flight_max` of its requests
    /// (clamped to `1..=IN_FLIGHT_CEILING`) await their reply at any time. Hand [`Producer`] to
    /// the thread that reads requests and [`Replies`] to the one that writes answers back (or
    /// use both from one thread with `try_submit`).
    pub fn producer(&self, in_flight_max: u32) -> (Producer, Replies) {
        self.new_producer(in_flight_max, None)
    }

    /// Like [`Handle::producer`], and `notify` is told whenever replies were put on the queue:
    /// for an event loop that serves many producers from one thread with
    /// [`Producer::try_submit`] and [`Replies::try_recv`], never blocking on either.
    pub fn producer_notifying(
        &self,
        in_flight_max: u32,
        notify: Arc<dyn ReplyNotify>,
    ) -> (Producer, Replies) {
        self.new_producer(in_flight_max, Some(notify))
    }

    fn new_producer(
        &self,
        in_flight_max: u32,
        notify: Option<Arc<dyn ReplyNotify>>,
    ) -> (Producer, Replies) {
        let in_flight_max = in_flight_max.clamp(1, IN_FLIGHT_CEILING);
        let (replies_tx, replies_rx) = bounded(in_flight_max as usize);
        let window = Arc::new(Window {
            state: Mutex::new(WindowState { in_flight: 0, waiting: 0, receiver_gone: false }),
            freed: Condvar::new(),
            in_flight_max,
        });
        let queue = Arc::new(ReplyQueue { replies: replies_tx, notify });
        let producer = Producer { handle: self.clone(), queue, window: window.clone() };
        (producer, Replies { replies: replies_rx, window })
    }

    /// Submits `commands` and waits until they are executed and durable. Blocks while the ring
    /// is full.
    pub fn execute(&self, commands: Vec<NewCommand>) -> Result<Executed, RequestError> {
        self.check_len(commands.len())?;
        match self.call(|reply| Request::Commands { commands, reply })? {
            Answer::Executed(executed) => Ok(executed),
            Answer::Query(_) | Answer::Replicated(_) => {
                unreachable!("a submission is answered with outcomes")
            }
        }
    }

    /// Journals `record_count` records that another replica journaled at `first_seq..` (each
    /// behind its `u32` little-endian length in `records`), byte for byte, applies them, and
    /// waits until they are durable here; with `want_state_hash`, returns the state hash after
    /// them. Refused with [`RequestError::Replication`] (nothing journaled) if `first_seq` is
    /// not the next seq or a record does not decode as a command. For a standby's follower:
    /// nothing else may submit while it does (the records' seqs would collide).
    pub fn replicate(
        &self,
        first_seq: u64,
        records: Vec<u8>,
        record_count: u32,
        want_state_hash: bool,
    ) -> Result<Replicated, RequestError> {
        let request = |reply| Request::Replicated {
            first_seq,
            records,
            record_count,
            want_state_hash,
            reply,
        };
        match self.call(request)? {
            Answer::Replicated(replicated) => Ok(replicated),
            Answer::Query(_) | Answer::Executed(_) => {
                unreachable!("replicated records are answered with their last seq")
            }
        }
    }

    /// Asks a query and waits for the answer; it sees every command submitted before it by
    /// this thread (and is released only once those are durable).
    pub fn query(&self, query: Query) -> Result<QueryAnswer, RequestError> {
        match self.call(|reply| Request::Query { query, reply })? {
            Answer::Query(answer) => Ok(answer),
            Answer::Executed(_) | Answer::Replicated(_) => {
                unreachable!("a query is answered with a query answer")
            }
        }
    }

    /// The highest sequence number known durable. Every released reply is covered by it.
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// The fatal failure, if the runtime has failed.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.get().cloned()
    }

    /// Counters since start, for monitoring.
    pub fn stats(&self) -> RuntimeStats {
        let shared = &self.shared;
        RuntimeStats {
            durable_seq: shared.durable_seq.load(Ordering::Acquire),
            commands: shared.commands.load(Ordering::Relaxed),
            flushes: shared.flushes.load(Ordering::Relaxed),
            pipelined_flushes: shared.pipelined_flushes.load(Ordering::Relaxed),
            flush_ns_total: shared.flush_ns_total.load(Ordering::Relaxed),
            flush_ns_max: shared.flush_ns_max.load(Ordering::Relaxed),
            ring_depth: self.ring.len() as u64,
        }
    }

    fn call(&self, request: impl FnOnce(Pending) -> Request) -> Result<Answer, RequestError> {
        if let Some(error) = self.shared.refusal() {
            return Err(error);
        }
        let (slot, answer) = bounded(1);
        let request = request(Pending::new(ReplyTo::Once(slot)));
        if let Err((error, request)) = self.enqueue(request, Block::Yes) {
            disarm(request);
            return Err(error);
        }
        // The pending reply always answers, so a closed slot means the request was dropped.
        answer.recv().unwrap_or(Err(RequestError::ShuttingDown))
    }

    /// Puts a request into the ring (blocking while it is full, or not). If the writer stopped
    /// serving meanwhile, drains the ring: the request is then answered with a refusal.
    pub(crate) fn enqueue(
        &self,
        request: Request,
        block: Block,
    ) -> Result<(), (RequestError, Request)> {
        let sent = match block {
            Block::Yes => self
                .ring
                .send(request)
                .map_err(|SendError(request)| (RequestError::ShuttingDown, request)),
            Block::No => self.ring.try_send(request).map_err(|error| match error {
                TrySendError::Full(request) => (RequestError::Busy, request),
                TrySendError::Disconnected(request) => (RequestError::ShuttingDown, request),
            }),
        };
        if sent.is_ok() {
            self.shared.wake_writer();
            if self.shared.drained.load(Ordering::SeqCst) {
                self.shared.drain_ring();
            }
        }
        sent
    }

    fn check_len(&self, len: usize) -> Result<(), RequestError> {
        if len == 0 || len > self.submission_len_max as usize {
            return Err(RequestError::Len { len, len_max: self.submission_len_max });
        }
        Ok(())
    }
}

/// Hands a request that never entered the ring back: its reply must not be sent as well.
fn disarm(request: Request) -> Option<Vec<NewCommand>> {
    match request {
        Request::Commands { commands, reply } => {
            reply.disarm();
            Some(commands)
        }
        Request::Query { reply, .. } | Request::Replicated { reply, .. } => {
            reply.disarm();
            None
        }
        Request::Archive { .. } | Request::Stop => None,
        #[cfg(test)]
        Request::Hook(_) => None,
    }
}

/// One producer's submission path (e.g. a gateway thread). Replies arrive on its [`Replies`]
/// in submission order, tagged with the token given here. Cloning shares the in-flight window.
#[derive(Clone)]
pub struct Producer {
    handle: Handle,
    queue: Arc<ReplyQueue>,
    window: Arc<Window>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("in_flight_max", &self.window.in_flight_max)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Submits a batch of commands; the reply comes on [`Replies`] with `token`. Blocks while
    /// the in-flight window or the ring is full (so a gateway stops reading its sockets).
    pub fn submit(&self, token: u64, commands: Vec<NewCommand>) -> Result<(), Refused> {
        self.enter(commands, token, Block::Yes)
    }

    /// Like [`Producer::submit`], but refuses with [`RequestError::Busy`] instead of blocking.
    pub fn try_submit(&self, token: u64, commands: Vec<NewCommand>) -> Result<(), Refused> {
        self.enter(commands, token, Block::No)
    }

    /// Asks a query; the answer comes on [`Replies`] with `token`, after the replies to every
    /// submission made before it. Blocks while the window or the ring is full.
    pub fn query(&self, token: u64, query: Query) -> Result<(), RequestError> {
        let request = Request::Query { query, reply: self.pending(token) };
        self.send(request, Block::Yes).map_err(|(error, _)| error)
    }

    /// Like [`Producer::query`], but refuses with [`RequestError::Busy`] instead of blocking.
    pub fn try_query(&self, token: u64, query: Query) -> Result<(), RequestError> {
        let request = Request::Query { query, reply: self.pending(token) };
        self.send(request, Block::No).map_err(|(error, _)| error)
    }

    /// Requests of this producer that await their reply.
    pub fn in_flight(&self) -> u32 {
        self.window.lock().in_flight
    }

    fn enter(&self, commands: Vec<NewCommand>, token: u64, block: Block) -> Result<(), Refused> {
        if let Err(error) = self.handle.check_len(commands.len()) {
            return Err(Refused { error, commands });
        }
        let request = Request::Commands { commands, reply: self.pending(token) };
        self.send(request, block)
            .map_err(|(error, commands)| Refused { error, commands: commands.unwrap_or_default() })
    }

    fn pending(&self, token: u64) -> Pending {
        Pending::new(ReplyTo::Queue { queue: self.queue.clone(), token })
    }

    /// Takes a window slot, then puts the request into the ring. On failure the request is
    /// handed back (its commands returned, its reply never sent) and the slot given back.
    fn send(
        &self,
        request: Request,
        block: Block,
    ) -> Result<(), (RequestError, Option<Vec<NewCommand>>)> {
        if let Some(error) = self.handle.shared.refusal() {
            return Err((error, disarm(request)));
        }
        if let Err(error) = self.window.acquire(block) {
            return Err((error, disarm(request)));
        }
        self.handle.enqueue(request, block).map_err(|(error, request)| {
            let commands = disarm(request);
            self.window.release();
            (error, commands)
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    Yes,
    No,
}

/// A producer's reply queue. Receiving a reply frees a slot of the producer's window.
pub struct Replies {
    replies: Receiver<Reply>,
    window: Arc<Window>,
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies").field("queued", &self.replies.len()).finish_non_exhaustive()
    }
}

impl Replies {
    /// The next reply; blocks (parked) until one arrives. `None` once the producer (every
    /// clone) is dropped and every reply was received.
    pub fn recv(&self) -> Option<Reply> {
        let reply = self.replies.recv().ok()?;
        self.window.release();
        Some(reply)
    }

    /// The next reply, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Reply> {
        self.recv_deadline(Instant::now() + timeout)
    }

    /// The next reply, waiting at most until `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Option<Reply> {
        match self.replies.recv_deadline(deadline) {
            Ok(reply) => {
                self.window.release();
                Some(reply)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next reply if one is queued.
    pub fn try_recv(&self) -> Option<Reply> {
        let reply = self.replies.try_recv().ok()?;
        self.window.release();
        Some(reply)
    }
}

impl Drop for Replies {
    fn drop(&mut self) {
        let mut state = self.window.lock();
        state.receiver_gone = true;
        self.window.freed.notify_all();
    }
}

/// The in-flight window of a producer: a counting semaphore, so the writer can always put a
/// reply into the producer's bounded queue without blocking.
struct Window {
    state: Mutex<WindowState>,
    freed: Condvar,
    in_flight_max: u32,
}

struct WindowState {
    in_flight: u32,
    /// Producers blocked in `acquire`: only then does a release need to wake anyone (a
    /// `Condvar` notification is a system call even when nobody waits).
    waiting: u32,
    receiver_gone: bool,
}

impl Window {
    fn lock(&self) -> std::sync::MutexGuard<'_, WindowState> {
        // The state is two plain fields, consistent after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn acquire(&self, block: Block) -> Result<(), RequestError> {
        let mut state = self.lock();
        loop {
            if state.receiver_gone {
                return Err(RequestError::RepliesDropped);
            }
            if state.in_flight < self.in_flight_max {
                state.in_flight += 1;
                return Ok(());
            }
            if block == Block::No {
                return Err(RequestError::Busy);
            }
            state.waiting += 1;
            state = self.freed.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
    }

    fn release(&self) {
        let mut state = self.lock();
        assert!(state.in_flight > 0, "a reply or refusal without a window slot");
        state.in_flight -= 1;
        if state.waiting > 0 {
            self.freed.notify_one();
        }
    }
}
