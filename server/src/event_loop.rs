//! The network thread: one `epoll` loop (through `mio`) over the listener and every client
//! connection, woken by socket readiness and by the runtime when it released replies.
//!
//! ```text
//!  sockets ──readable──▶ ┐                    ┌──▶ for each ready connection: take replies,
//!  listener ─readable──▶ ├─ epoll (mio Poll) ─┤     read and submit requests; then write
//!  runtime ──Doorbell──▶ ┘  one thread         └──▶ accept (CONNECTIONS_MAX), write timeouts
//! ```
//!
//! **How replies wake the loop.** Each connection's producer carries a [`ConnectionNotify`]
//! (`Handle::producer_notifying`). When the writer thread has released a round's replies, it
//! notifies each producer of the round once; the notify puts the connection's key on the
//! [`Doorbell`]'s ready queue (once until the loop takes it) and rings the doorbell, a
//! `mio::Waker` (an eventfd) written only when the loop has not been rung since it last looked.
//! So a round costs the writer one eventfd write, and the loop wakes to find every reply of
//! the round queued, and turns exactly the connections that have some.
//!
//! **Invariant:** the loop never blocks except in `epoll_wait`: requests enter the runtime with
//! `try_submit`/`try_query` (a full ring leaves the request waiting in its connection, retried
//! every `STALL_RETRY`), replies leave it with `try_recv`, sockets are non-blocking.
//! **Invariant:** every queue is bounded: the ready queue (`READY_QUEUE_LEN`; when full, the
//! loop turns every connection instead), the lists of connections to turn (each connection on
//! at most one, once), and each connection's own buffers.
//!
//! One thread is enough on the 2-core development VM (a second one, tried, gained nothing);
//! it spends ~7 µs of CPU per one-transfer request there, mostly in the kernel's TCP (`send`
//! pays for the loopback delivery), so it tops out near ~140 K such requests/s. A bigger
//! machine would want one loop per few cores, each owning a share of the connections.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use runtime::Handle;

use super::connection::{After, Connection, Context};
use super::doorbell::{ConnectionNotify, Doorbell};
use super::CONNECTIONS_MAX;
use protocol::wire::{encode_error, ErrorCode, RequestId};

/// The listener's token.
pub(crate) const LISTENER: Token = Token(0);
/// The doorbell's token (replies are ready, or the server is stopping).
pub(crate) const DOORBELL: Token = Token(1);
/// Connection `key` has token `FIRST_CONNECTION + key`.
const FIRST_CONNECTION: usize = 2;
/// Readiness events taken per `epoll_wait`.
const EVENTS_LEN: usize = 1_024;
/// Connections accepted per pass of the loop (more wait for the next pass, without waiting).
const ACCEPTS_PER_PASS_MAX: u32 = 64;
/// How soon a request refused by a full input ring is tried again (`epoll_wait` counts in ms).
const STALL_RETRY: Duration = Duration::from_millis(1);
/// How soon accepting is tried again after it failed (out of file descriptors, say): the
/// connection waits in the listen backlog meanwhile.
const ACCEPT_RETRY: Duration = Duration::from_millis(5);
/// How often write timeouts are checked.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

const _: () = assert!(ACCEPTS_PER_PASS_MAX >= 1);

/// The loop's state: the listener, every connection, and what to do next.
pub(crate) struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    handle: Handle,
    context: Context,
    doorbell: Arc<Doorbell>,
    stop: Arc<AtomicBool>,
    /// Connections by key; `free` holds the keys of empty slots.
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    open: usize,
    /// Connections to turn in the next pass, and those waiting for room in the input ring (a
    /// connection is on at most one of them: its `scheduled` flag).
    due: Vec<usize>,
    stalled: Vec<usize>,
    /// The list being turned (kept to reuse its allocation).
    turning: Vec<usize>,
    /// Connections may wait in the listen backlog; not before `accept_at`.
    accept_pending: bool,
    accept_at: Option<Instant>,
    next_sweep: Instant,
    stopping: bool,
}

impl EventLoop {
    /// A loop over `poll`, in which `listener` is registered as `LISTENER` and `doorbell`'s
    /// waker as `DOORBELL`.
    pub(crate) fn new(
        poll: Poll,
        listener: TcpListener,
        handle: Handle,
        context: Context,
        doorbell: Arc<Doorbell>,
        stop: Arc<AtomicBool>,
    ) -> EventLoop {
        EventLoop {
            poll,
            listener: Some(listener),
            handle,
            context,
            doorbell,
            stop,
            connections: Vec::new(),
            free: Vec::new(),
            open: 0,
            due: Vec::new(),
            stalled: Vec::new(),
            turning: Vec::new(),
            accept_pending: true,
            accept_at: None,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            stopping: false,
        }
    }

    /// Serves until the server stops and every connection has finished.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_LEN);
        loop {
            let timeout = self.timeout(Instant::now());
            if let Err(error) = self.poll.poll(&mut events, Some(timeout)) {
                // Other errors (EBADF, EFAULT, EINVAL) would mean this code is wrong.
                assert_eq!(error.kind(), ErrorKind::Interrupted, "epoll_wait: {error}");
                continue;
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_pending = true,
                    DOORBELL => self.answer_doorbell(),
                    Token(token) => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        self.on_socket(token - FIRST_CONNECTION, readable);
                    }
                }
            }
            if !self.stopping && self.stop.load(Ordering::Acquire) {
                self.begin_stop();
            }
            if self.accept_pending && self.accept_at.is_none_or(|at| now >= at) {
                self.accept(now);
            }
            self.turn_due(now);
            if now >= self.next_sweep {
                self.sweep(now);
            }
            if self.stopping && self.open == 0 {
                return;
            }
        }
    }

    /// How long `epoll_wait` may wait: not at all while connections want another turn, a
    /// little while a request waits for the ring, and never past the next timeout check.
    fn timeout(&self, now: Instant) -> Duration {
        let mut timeout = self.next_sweep.saturating_duration_since(now);
        if !self.stalled.is_empty() {
            timeout = timeout.min(STALL_RETRY);
        }
        if self.accept_pending && !self.stopping {
            let accept_in =
                self.accept_at.map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
            timeout = timeout.min(accept_in);
        }
        if !self.due.is_empty() {
            timeout = Duration::ZERO;
        }
        timeout
    }

    /// Puts connection `key` on the list for the next pass (once).
    fn schedule(&mut self, key: usize) {
        if let Some(connection) = self.connections.get_mut(key).and_then(Option::as_mut) {
            if !connection.scheduled {
                connection.scheduled = true;
                self.due.push(key);
            }
        }
    }

    fn on_socket(&mut self, key: usize, readable: bool) {
        if let Some(connection) = self.connections.get_mut(key).and_then(Option::as_mut) {
            connection.readable |= readable;
            self.schedule(key);
        }
    }

    /// Schedules every connection whose notify rang.
    fn answer_doorbell(&mut self) {
        // Before looking: a notify that comes after this rings again.
        self.doorbell.rung.swap(false, Ordering::AcqRel);
        if self.doorbell.overflowed.swap(false, Ordering::AcqRel) {
            for key in 0..self.connections.len() {
                if let Some(connection) = &self.connections[key] {
                    connection.notify.taken();
                    self.schedule(key);
                }
            }
        }
        // Bounded by the queue's length when looked at; later keys come with a new ring.
        for _ in 0..self.doorbell.ready.len() {
            let Ok(key) = self.doorbell.ready.try_recv() else { break };
            // The key may be a closed connection's (late replies) or its successor's: a
            // spurious turn is harmless.
            if let Some(connection) = self.connections.get(key).and_then(Option::as_ref) {
                connection.notify.taken();
                self.schedule(key);
            }
        }
    }

    /// Accepts waiting connections (a bounded number per pass).
    fn accept(&mut self, now: Instant) {
        self.accept_pending = false;
        self.accept_at = None;
        for _ in 0..ACCEPTS_PER_PASS_MAX {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                    ) => {}
                Err(_) => {
                    self.accept_pending = true;
                    self.accept_at = Some(now + ACCEPT_RETRY);
                    return;
                }
            }
        }
        self.accept_pending = true;
    }

    /// Serves a new connection, or refuses it with `busy` at `CONNECTIONS_MAX`.
    fn admit(&mut self, stream: TcpStream) {
        let metrics = &self.context.metrics;
        if self.open >= CONNECTIONS_MAX as usize {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            if self.context.tls.is_some() {
                // A TLS client could not read a plain frame: it sees the connection close.
                return;
            }
            let mut frame = Vec::new();
            encode_error(
                RequestId::CONNECTION,
                ErrorCode::Busy,
                "too many connections",
                &mut frame,
            );
            // Best effort: a new socket's send buffer takes a small frame; then it is closed.
            let _ = (&stream).write(&frame);
            return;
        }
        let tls = match &self.context.tls {
            None => None,
            Some(tls) => match tls.session() {
                Some(session) => Some(Box::new(session)),
                None => return,
            },
        };
        let _ = stream.set_nodelay(true);
        let key = self.free.pop().unwrap_or(self.connections.len());
        let notify = Arc::new(ConnectionNotify::new(key, self.doorbell.clone()));
        let (producer, replies) =
            self.handle.producer_notifying(self.context.in_flight_max, notify.clone());
        let mut connection = Connection::new(stream, tls, producer, replies, notify);
        let interest = Interest::READABLE | Interest::WRITABLE;
        let token = Token(FIRST_CONNECTION + key);
        if self.poll.registry().register(connection.stream_mut(), token, interest).is_err() {
            self.free.push(key);
            return;
        }
        if key == self.connections.len() {
            self.connections.push(Some(connection));
        } else {
            self.connections[key] = Some(connection);
        }
        self.open += 1;
        metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Turns every connection due (and every one waiting for the ring).
    fn turn_due(&mut self, now: Instant) {
        let mut turning = std::mem::take(&mut self.turning);
        std::mem::swap(&mut turning, &mut self.due);
        turning.append(&mut self.stalled);
        // Every connection's replies and requests first, then every connection's writes.
        for &key in &turning {
            if let Some(connection) = self.connections.get_mut(key).and_then(Option::as_mut) {
                connection.prepare(&self.context);
            }
        }
        for key in turning.drain(..) {
            let Some(connection) = self.connections.get_mut(key).and_then(Option::as_mut) else {
                continue;
            };
            connection.scheduled = false;
            match connection.turn(&self.context, now) {
                After::Waiting => {}
                After::Again => self.schedule(key),
                After::Stalled => {
                    connection.scheduled = true;
                    self.stalled.push(key);
                }
                After::Done => self.close(key),
            }
        }
        self.turning = turning;
    }

    /// Drops connection `key`: deregistered, both directions shut, its producer and reply
    /// queue dropped (late replies for it are discarded by the runtime).
    fn close(&mut self, key: usize) {
        let Some(mut connection) = self.connections.get_mut(key).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(connection.stream_mut());
        connection.close();
        drop(connection);
        self.free.push(key);
        self.open -= 1;
        self.context.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Fails connections whose replies made no progress for `write_timeout`, and turns those
    /// that waited long enough for their client to close.
    fn sweep(&mut self, now: Instant) {
        self.next_sweep = now + SWEEP_INTERVAL;
        for key in 0..self.connections.len() {
            let Some(connection) = self.connections[key].as_mut() else { continue };
            if connection.write_timed_out(now, self.context.write_timeout) {
                connection.fail();
                self.schedule(key);
            } else if connection.linger_expired(now) {
                self.schedule(key);
            }
        }
    }

    /// Stops accepting and reading; connections finish what they already read.
    fn begin_stop(&mut self) {
        self.stopping = true;
        self.accept_pending = false;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for key in 0..self.connections.len() {
            if let Some(connection) = self.connections[key].as_mut() {
                connection.stop_reading();
                self.schedule(key);
            }
        }
    }
}
