//! One client connection, as the event loop ([`super::event_loop`]) drives it: a non-blocking
//! socket, the frames read from it, a runtime `Producer`/`Replies` pair, and the bytes waiting
//! to be written back. When the event loop turns it, [`Connection::prepare`] takes the replies
//! the runtime released and handles the requests already read or readable (decode,
//! authenticate, authorize, submit), then [`Connection::turn`] writes what is queued and does
//! whatever else it can, all without blocking.
//!
//! Memory per connection is bounded, and backpressure reaches the client through TCP: at most
//! `in_flight_max` requests await a reply (the producer's window), and while the window is
//! full, or more than `OUT_LEN_BYTES_HIGH` bytes wait to be written (a client that does not
//! read), or the runtime's input ring is full, the connection takes no reply, handles no
//! request and reads nothing more from its socket.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use runtime::{
    Answer, NewCommand, Producer, Query, QueryAnswer, Refused, Replies, Reply, RequestError,
};

use protocol::access::{admit, forbidden_message};
use protocol::auth::{Credentials, Role};
use protocol::limits::{BATCH_LEN_MAX, READ_CHUNK_LEN_BYTES};
use protocol::wire::{
    encode_account_reply, encode_error, encode_exposure_reply, encode_frame, encode_state_chunk,
    encode_state_files, encode_submit_reply, encode_tx_reply, ErrorCode, ExposureReply, Frame,
    FrameBuffer, HelloOk, Message, RequestId, RequestRules,
};

use super::doorbell::ConnectionNotify;
use super::metrics::Metrics;
use super::tls::{ServerTls, TlsSession};
use super::transfer::StateSource;

/// Bytes queued for the socket beyond which a connection takes no more replies and reads no
/// more requests (until the client reads). One reply may take it past this, by at most one
/// frame.
pub(crate) const OUT_LEN_BYTES_HIGH: usize = 64 * 1024;
/// Reads from one socket per turn, so a client that sends a lot cannot starve the others.
const READS_PER_TURN_MAX: u32 = 16;
/// After its last frame (a closing ERROR, or the server's `shutting_down`), a connection
/// half-closes and discards what the client still sends, for at most this long, before it
/// closes: closing a socket with unread input resets it, which can destroy replies still on
/// their way to the client.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_millis(500);
/// Bytes discarded per read while lingering.
const DISCARD_CHUNK_LEN_BYTES: usize = 4_096;
/// The message of the connection-level `shutting_down` the server sends when it stops.
const SHUTDOWN_MESSAGE: &str =
    "the server is stopping: every request on this connection without a reply was not executed";

/// The ERROR a plaintext client gets from a TLS listener.
const PLAINTEXT_TO_TLS_MESSAGE: &str =
    "this server speaks TLS: connect with TLS (ledger --tls-ca FILE; PROTOCOL.md, TLS)";

/// What a connection needs from the server.
pub(crate) struct Context {
    pub credentials: Arc<Credentials>,
    pub metrics: Arc<Metrics>,
    pub batch_len_max: u32,
    pub in_flight_max: u32,
    /// A client whose queued replies make no progress for this long is disconnected.
    pub write_timeout: Duration,
    /// The node's role in its replica group (`None`: a single node, always serving).
    pub replica_role: Option<Arc<replication::Role>>,
    /// TLS on every connection (`None`: plain TCP).
    pub tls: Option<ServerTls>,
    /// This node's files for a state transfer (`None`: a single node, which refuses one).
    pub state_source: Option<StateSource>,
}

/// A request for the runtime. One refused by a full input ring is kept and tried again until
/// it enters: nothing read after it is handled before it.
enum RuntimeRequest {
    Submit { request_id: RequestId, commands: Vec<NewCommand> },
    Query { request_id: RequestId, query: Query },
}

/// What a turn left behind, for the event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// Waiting for the socket or the runtime.
    Waiting,
    /// More bytes may wait in the socket: turn again soon, without waiting for an event.
    Again,
    /// A request waits for room in the input ring: try again soon.
    Stalled,
    /// Finished (the client left, or must be dropped): close it.
    Done,
}

/// One client connection.
pub(crate) struct Connection {
    stream: TcpStream,
    /// The TLS session over `stream` (`None`: plain TCP, whose bytes go straight between the
    /// socket and the buffers, without a copy).
    tls: Option<Box<TlsSession>>,
    producer: Producer,
    replies: Replies,
    /// How the runtime tells the event loop that replies are waiting.
    pub(crate) notify: Arc<ConnectionNotify>,
    frames: FrameBuffer,
    /// Bytes to write; `out[out_written..]` are not written yet.
    out: Vec<u8>,
    out_written: usize,
    /// Since when the queued bytes made no progress (the client does not read).
    write_blocked_since: Option<Instant>,
    role: Option<Role>,
    /// Requests submitted whose reply was not taken yet (equal to the producer's window).
    in_flight: u32,
    stalled: Option<RuntimeRequest>,
    /// The socket may hold unread bytes: readiness is edge-triggered, so this remembers an
    /// edge the connection could not act on yet (its window was full, say).
    pub(crate) readable: bool,
    /// No more reading: end of stream, a read error, or the server is stopping. The requests
    /// already read are still answered.
    read_done: bool,
    /// The server is stopping: once every request read is answered, the connection sends a
    /// connection-level `shutting_down` and closes.
    stopping: bool,
    /// Since when the last frame is written and the connection waits for the client to close
    /// (at most `CLOSE_LINGER`).
    lingering_since: Option<Instant>,
    /// Whole frames may wait in `frames` (the last turn stopped taking them).
    frames_pending: bool,
    /// A closing ERROR is queued: write what is queued, then close. Nothing more is read or
    /// answered.
    closing: bool,
    /// Writing failed or timed out: close at once.
    broken: bool,
    /// Already on the event loop's list of connections to turn.
    pub(crate) scheduled: bool,
}

impl Connection {
    pub(crate) fn new(
        stream: TcpStream,
        tls: Option<Box<TlsSession>>,
        producer: Producer,
        replies: Replies,
        notify: Arc<ConnectionNotify>,
    ) -> Connection {
        Connection {
            stream,
            tls,
            producer,
            replies,
            notify,
            frames: FrameBuffer::new(),
            out: Vec::new(),
            out_written: 0,
            write_blocked_since: None,
            role: None,
            in_flight: 0,
            stalled: None,
            readable: true,
            read_done: false,
            stopping: false,
            lingering_since: None,
            frames_pending: false,
            closing: false,
            broken: false,
            scheduled: false,
        }
    }

    /// The socket, to register it with the loop's `Poll`.
    pub(crate) fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Stops reading the socket (the server is stopping); requests already read are answered,
    /// then the connection says `shutting_down` and closes.
    pub(crate) fn stop_reading(&mut self) {
        self.read_done = true;
        self.stopping = true;
    }

    /// Gives up on the connection (its client does not read): the next turn closes it.
    pub(crate) fn fail(&mut self) {
        self.broken = true;
    }

    /// Whether queued replies have made no progress for longer than `timeout`.
    pub(crate) fn write_timed_out(&self, now: Instant, timeout: Duration) -> bool {
        self.write_blocked_since
            .is_some_and(|since| now.saturating_duration_since(since) >= timeout)
    }

    /// Whether the connection waited `CLOSE_LINGER` for its client to close.
    pub(crate) fn linger_expired(&self, now: Instant) -> bool {
        self.lingering_since
            .is_some_and(|since| now.saturating_duration_since(since) >= CLOSE_LINGER)
    }

    /// Closes the socket in both directions (the event loop deregisters it first).
    pub(crate) fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The first half of a turn: takes the released replies and handles the requests already
    /// read or readable, without writing anything yet. The event loop does this for every
    /// connection of a pass before any [`Connection::turn`] writes, so new requests reach the
    /// runtime as early as possible; the writes then wake the clients just before the loop
    /// goes back to `epoll_wait`.
    pub(crate) fn prepare(&mut self, context: &Context) {
        if self.broken {
            return;
        }
        self.retry_stalled(context);
        self.take_replies(&context.metrics);
        let mut reads_left = READS_PER_TURN_MAX;
        self.take_requests(context, &mut reads_left);
    }

    /// The second half: writes, then does whatever else the connection can do now without
    /// blocking (more replies, requests), and says what it waits for.
    pub(crate) fn turn(&mut self, context: &Context, now: Instant) -> After {
        if self.broken {
            return After::Done;
        }
        let mut reads_left = READS_PER_TURN_MAX;
        // Bounded: a pass that does not end queued more output, which takes a reply or a
        // buffered frame, and both are finite (the window; the bytes read so far).
        loop {
            let written = self.flush(now);
            if self.broken {
                return After::Done;
            }
            let replies_left = self.in_flight > 0;
            let frames_left = self.frames_pending && self.may_take_request(context);
            if !written || !(replies_left || frames_left) {
                break;
            }
            let queued_len = self.out.len();
            self.take_replies(&context.metrics);
            self.take_requests(context, &mut reads_left);
            if self.out.len() == queued_len {
                break;
            }
        }
        if self.stalled.is_some() && !self.closing {
            return After::Stalled;
        }
        let finished =
            self.read_done && self.in_flight == 0 && !self.frames_pending && self.output_done();
        if finished && self.stopping && !self.closing {
            // Every request read is answered: say so, then close like after any closing ERROR.
            self.error(
                RequestId::CONNECTION,
                ErrorCode::ShuttingDown,
                SHUTDOWN_MESSAGE,
                true,
                &context.metrics,
            );
            if !self.flush(now) {
                return if self.broken { After::Done } else { After::Waiting };
            }
        }
        if self.closing {
            if let Some(tls) = self.tls.as_deref_mut() {
                tls.queue_close();
            }
            if !self.flush(now) {
                return if self.broken { After::Done } else { After::Waiting };
            }
            return self.linger(now);
        }
        if self.tls.as_deref().is_some_and(TlsSession::wants_write) {
            // What reading produced (handshake messages, alerts): the socket's next writable
            // edge, or the next turn, writes the rest.
            self.flush(now);
            if self.broken {
                return After::Done;
            }
        }
        if finished {
            return After::Done;
        }
        if self.readable && !self.read_done && self.may_take_request(context) {
            return After::Again;
        }
        After::Waiting
    }

    /// The last frame is written: half-close, then discard what the client still sends until
    /// it closes or `CLOSE_LINGER` passed.
    fn linger(&mut self, now: Instant) -> After {
        let since = *self.lingering_since.get_or_insert_with(|| {
            let _ = self.stream.shutdown(Shutdown::Write);
            now
        });
        let mut discard = [0u8; DISCARD_CHUNK_LEN_BYTES];
        for _ in 0..READS_PER_TURN_MAX {
            match (&self.stream).read(&mut discard) {
                Ok(0) => return After::Done,
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => return After::Done,
            }
        }
        if now.saturating_duration_since(since) >= CLOSE_LINGER {
            After::Done
        } else {
            After::Waiting
        }
    }

    /// Whether the connection may handle another request now.
    fn may_take_request(&self, context: &Context) -> bool {
        !self.closing
            && !self.broken
            && self.stalled.is_none()
            && self.in_flight < context.in_flight_max
            && self.out.len() - self.out_written < OUT_LEN_BYTES_HIGH
    }

    /// Encodes the replies the runtime released, until none is left or enough bytes are
    /// queued. Returns whether replies may be left.
    fn take_replies(&mut self, metrics: &Metrics) -> bool {
        if self.closing {
            return false;
        }
        // Bounded: at most `in_flight_max` replies are queued.
        while self.out.len() - self.out_written < OUT_LEN_BYTES_HIGH {
            let Some(reply) = self.replies.try_recv() else { return false };
            assert!(self.in_flight > 0, "a reply to a request that was not submitted");
            self.in_flight -= 1;
            encode_reply(&reply, &mut self.out, metrics);
        }
        self.in_flight > 0
    }

    /// Handles the whole frames already read, and reads more, while the connection may take
    /// requests (at most `reads_left` reads).
    fn take_requests(&mut self, context: &Context, reads_left: &mut u32) {
        // Bounded: each pass handles buffered frames (finitely many) and then reads at most
        // once, and at most `READS_PER_TURN_MAX` reads happen per turn.
        loop {
            self.frames_pending = false;
            // Frames already read first: the buffer holds at most one read chunk beyond a
            // frame only if nothing is read while whole frames wait.
            loop {
                if !self.may_take_request(context) {
                    self.frames_pending = true;
                    return;
                }
                let rules = RequestRules {
                    authenticated: self.role.is_some(),
                    batch_len_max: context.batch_len_max,
                };
                match self.frames.next_request(rules) {
                    Ok(Some(frame)) => self.request(frame, context),
                    Ok(None) => break,
                    Err(error) => {
                        let code = error.error.error_code();
                        let message = error.error.to_string();
                        let closes = error.error.closes_connection() || self.role.is_none();
                        self.error(error.request_id, code, &message, closes, &context.metrics);
                        if closes {
                            return;
                        }
                    }
                }
            }
            if self.read_done || !self.readable || *reads_left == 0 {
                return;
            }
            *reads_left -= 1;
            let read = match self.tls.as_deref_mut() {
                None => self.frames.read_from(&mut ReadHalf(&self.stream)),
                Some(tls) => self.frames.read_from(&mut TlsReadHalf(tls, &self.stream)),
            };
            match read {
                Ok(0) => self.read_done = true,
                // A short read emptied the socket: more bytes come with a new readiness edge.
                // (Not so with TLS: rustls may hold records or plaintext the socket no longer
                // has, so a TLS connection reads until the socket says `WouldBlock`.)
                Ok(read) if read < READ_CHUNK_LEN_BYTES as usize && self.tls.is_none() => {
                    self.readable = false
                }
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => self.readable = false,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                // A plaintext client on a TLS listener: told so in plaintext (what it can
                // read), then closed like after any closing ERROR.
                Err(_) if self.tls.as_deref().is_some_and(TlsSession::plaintext_peer) => {
                    self.tls = None;
                    let (code, message) = (ErrorCode::MalformedFrame, PLAINTEXT_TO_TLS_MESSAGE);
                    self.error(RequestId::CONNECTION, code, message, true, &context.metrics);
                    return;
                }
                // A failed TLS session: its alert goes out, then the connection closes.
                Err(_) if self.tls.as_deref().is_some_and(TlsSession::failed) => {
                    self.closing = true;
                    self.read_done = true;
                    return;
                }
                // A reset: as after the end of the stream, answer what was read (the writes
                // will fail and close the connection).
                Err(_) => self.read_done = true,
            }
        }
    }

    /// Writes queued bytes until none is left or the socket is full. Returns whether all were
    /// written.
    fn flush(&mut self, now: Instant) -> bool {
        let written = match self.tls.as_deref_mut() {
            None => write_plain(&self.stream, &self.out, &mut self.out_written),
            Some(tls) => tls.write(&self.stream, &self.out, &mut self.out_written),
        };
        let Ok(progress) = written else {
            self.broken = true;
            return false;
        };
        if self.output_done() {
            self.out.clear();
            self.out_written = 0;
            self.write_blocked_since = None;
            if self.out.capacity() > OUT_LEN_BYTES_HIGH {
                // After one large reply, an idle connection goes back to a small buffer.
                self.out = Vec::new();
            }
            return true;
        }
        if progress || self.write_blocked_since.is_none() {
            self.write_blocked_since = Some(now);
        }
        false
    }

    /// Whether every queued byte reached the socket (with TLS, every record too).
    fn output_done(&self) -> bool {
        self.out_written == self.out.len()
            && !self.tls.as_deref().is_some_and(TlsSession::wants_write)
    }

    /// Queues an ERROR; with `closes`, the connection then closes (after writing it).
    fn error(
        &mut self,
        request_id: RequestId,
        code: ErrorCode,
        message: &str,
        closes: bool,
        metrics: &Metrics,
    ) {
        metrics.errors_out.fetch_add(1, Ordering::Relaxed);
        encode_error(request_id, code, message, &mut self.out);
        if closes {
            self.closing = true;
            self.read_done = true;
        }
    }

    /// Handles one request frame.
    fn request(&mut self, frame: Frame, context: &Context) {
        let metrics = &*context.metrics;
        metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        let request_id = frame.request_id;
        // The decoder already refused what the connection does not admit before a body
        // (`RequestRules`); what is left is the role's rule for the decoded request.
        if let Err(code) = admit(self.role, &frame.message) {
            let message = match (code, self.role) {
                (ErrorCode::Forbidden, Some(role)) => forbidden_message(role, &frame.message),
                (ErrorCode::NotAuthenticated, _) => "send HELLO first".to_string(),
                _ => format!("{} is not expected here", frame.message.op()),
            };
            let closes = self.role.is_none() || code.closes_connection();
            return self.error(request_id, code, &message, closes, metrics);
        }
        let for_the_ledger = matches!(
            frame.message,
            Message::Submit(_)
                | Message::QueryAccount(_)
                | Message::QueryExposure(_)
                | Message::QueryTx(_)
        );
        if let Some(role) = context.replica_role.as_ref().filter(|_| for_the_ledger) {
            if !role.is_primary() {
                let primary = role.primary_addr().filter(|addr| !addr.is_empty());
                let message = format!("primary={}", primary.as_deref().unwrap_or("unknown"));
                let code = ErrorCode::NotPrimary;
                return self.error(request_id, code, &message, false, metrics);
            }
        }
        match frame.message {
            Message::Hello(hello) => {
                let verifies_clients =
                    context.tls.as_ref().is_some_and(ServerTls::verifies_clients);
                if verifies_clients {
                    let name = self.tls.as_deref().and_then(TlsSession::client_common_name);
                    if name.as_deref() != Some(hello.client_id.as_str()) {
                        let message = "the client certificate's subject CN is not this client id";
                        return self.error(
                            request_id,
                            ErrorCode::AuthFailed,
                            message,
                            true,
                            metrics,
                        );
                    }
                }
                match context.credentials.authenticate(&hello.client_id, &hello.secret) {
                    Some(granted) => {
                        self.role = Some(granted);
                        let ok = HelloOk {
                            role: granted,
                            batch_len_max: context.batch_len_max,
                            in_flight_max: context.in_flight_max,
                        };
                        // Cannot fail for limits the server announces (clamped at start); an
                        // encoder that refuses leaves `out` as it was.
                        let _ = encode_frame(request_id, &Message::HelloOk(ok), &mut self.out);
                    }
                    None => {
                        let message = "unknown client id or wrong secret";
                        self.error(request_id, ErrorCode::AuthFailed, message, true, metrics);
                    }
                }
            }
            Message::Ping { payload } => {
                let _ = encode_frame(request_id, &Message::Pong { payload }, &mut self.out);
            }
            Message::Submit(commands) => {
                // The decoder refused a count above `batch_len_max` before the first entry.
                debug_assert!(commands.len() <= context.batch_len_max as usize);
                let commands: Vec<NewCommand> =
                    commands.into_iter().map(|(tx_id, body)| NewCommand { tx_id, body }).collect();
                self.submit(RuntimeRequest::Submit { request_id, commands }, metrics);
            }
            Message::QueryAccount(account_no) => {
                self.submit(
                    RuntimeRequest::Query { request_id, query: Query::Account(account_no) },
                    metrics,
                );
            }
            Message::QueryExposure(account_no) => {
                let query = Query::Exposure(account_no);
                self.submit(RuntimeRequest::Query { request_id, query }, metrics);
            }
            Message::QueryTx(tx_id) => {
                self.submit(RuntimeRequest::Query { request_id, query: Query::Tx(tx_id) }, metrics);
            }
            Message::StateOffer { through_seq } => {
                let Some(source) = &context.state_source else {
                    let message = "not a member of a replica group";
                    return self.error(request_id, ErrorCode::Unavailable, message, false, metrics);
                };
                match source.offer(through_seq) {
                    Ok(files) => {
                        // Cannot fail: `offer` lists 1..=STATE_SEGMENTS_MAX rising segments.
                        let _ = encode_state_files(request_id, &files, &mut self.out);
                    }
                    Err(why) => {
                        self.error(request_id, ErrorCode::Unavailable, &why, false, metrics)
                    }
                }
            }
            Message::StateRead(read) => {
                let Some(source) = &context.state_source else {
                    let message = "not a member of a replica group";
                    return self.error(request_id, ErrorCode::Unavailable, message, false, metrics);
                };
                match source.read(&read) {
                    Ok((file_len_bytes, data)) => {
                        let (file, offset) = (read.file, read.offset);
                        let encoded = encode_state_chunk(
                            request_id,
                            file,
                            offset,
                            file_len_bytes,
                            &data,
                            &mut self.out,
                        );
                        if let Err(error) = encoded {
                            let message = error.to_string();
                            self.error(request_id, ErrorCode::Internal, &message, false, metrics);
                        }
                    }
                    Err(why) => {
                        self.error(request_id, ErrorCode::Unavailable, &why, false, metrics)
                    }
                }
            }
            Message::HelloOk(_)
            | Message::Pong { .. }
            | Message::SubmitReply(_)
            | Message::Account(_)
            | Message::Tx(_)
            | Message::Exposure(_)
            | Message::StateFiles(_)
            | Message::StateChunk(_)
            | Message::Error(_) => {
                // `next_request` refuses reply ops before their body; kept for exhaustiveness.
                let (code, message) = (ErrorCode::UnexpectedOperation, "a reply op from a client");
                self.error(request_id, code, message, false, metrics);
            }
        }
    }

    /// Puts a request into the runtime's input ring without blocking. A full ring keeps it
    /// (`stalled`) until it fits: meanwhile the connection handles and reads nothing more.
    fn submit(&mut self, request: RuntimeRequest, metrics: &Metrics) {
        debug_assert!(self.stalled.is_none(), "nothing is handled while a request waits");
        let refused = match request {
            RuntimeRequest::Submit { request_id, commands } => {
                match self.producer.try_submit(request_id.0, commands) {
                    Ok(()) => None,
                    Err(Refused { error: RequestError::Busy, commands }) => {
                        self.stalled = Some(RuntimeRequest::Submit { request_id, commands });
                        None
                    }
                    Err(refused) => Some((request_id, refused.error)),
                }
            }
            RuntimeRequest::Query { request_id, query } => {
                match self.producer.try_query(request_id.0, query) {
                    Ok(()) => None,
                    Err(RequestError::Busy) => {
                        self.stalled = Some(RuntimeRequest::Query { request_id, query });
                        None
                    }
                    Err(error) => Some((request_id, error)),
                }
            }
        };
        match refused {
            // Our own count of the window: `may_take_request` kept a slot free, so `Busy`
            // above can only mean a full ring.
            None if self.stalled.is_none() => self.in_flight += 1,
            None => {}
            Some((request_id, error)) => {
                let (code, closes) = refusal(&error);
                self.error(request_id, code, &error.to_string(), closes, metrics);
            }
        }
    }

    /// Tries the request that waits for room in the ring again.
    fn retry_stalled(&mut self, context: &Context) {
        if let Some(request) = self.stalled.take() {
            self.submit(request, &context.metrics);
        }
    }
}

/// Writes `out[*out_written..]` to the plain socket until all is written or it is full.
/// `Ok(progress)`: whether it took bytes; `Err`: the connection is broken.
fn write_plain(stream: &TcpStream, out: &[u8], out_written: &mut usize) -> Result<bool, ()> {
    let mut progress = false;
    // Bounded: every pass writes at least one byte, or ends.
    while *out_written < out.len() {
        let mut socket = stream;
        match socket.write(&out[*out_written..]) {
            Ok(0) => return Err(()),
            Ok(written) => {
                *out_written += written;
                progress = true;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
    Ok(progress)
}

/// The TLS session's plaintext side for [`FrameBuffer::read_from`].
struct TlsReadHalf<'a>(&'a mut TlsSession, &'a TcpStream);

impl Read for TlsReadHalf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(self.1, buf)
    }
}

/// The socket's read side for [`FrameBuffer::read_from`].
struct ReadHalf<'a>(&'a TcpStream);

impl Read for ReadHalf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut stream = self.0;
        stream.read(buf)
    }
}

/// The ERROR code for a runtime refusal, and whether the connection closes after it.
fn refusal(error: &RequestError) -> (ErrorCode, bool) {
    match error {
        RequestError::Busy => (ErrorCode::Busy, false),
        RequestError::Len { .. } => (ErrorCode::BatchTooLarge, false),
        RequestError::ShuttingDown => (ErrorCode::ShuttingDown, true),
        RequestError::NoSpace { .. }
        | RequestError::Unavailable { .. }
        | RequestError::Fatal { .. }
        | RequestError::Replication { .. }
        | RequestError::RepliesDropped => (ErrorCode::Internal, false),
    }
}

/// Appends the frame of one runtime reply to `out`.
fn encode_reply(reply: &Reply, out: &mut Vec<u8>, metrics: &Metrics) {
    let request_id = RequestId(reply.token);
    let encoded = match &reply.result {
        Ok(Answer::Executed(executed)) => {
            for outcome in &executed.outcomes {
                metrics.outcome(outcome.result, outcome.duplicate);
            }
            encode_submit_reply(request_id, &executed.outcomes, out)
        }
        Ok(Answer::Query(QueryAnswer::Account(account))) => {
            encode_account_reply(request_id, account.as_ref(), out)
        }
        Ok(Answer::Query(QueryAnswer::Tx(tx))) => encode_tx_reply(request_id, tx.as_ref(), out),
        Ok(Answer::Query(QueryAnswer::Exposure(found))) => {
            let reply = found.as_deref().map(|(account, exposure)| ExposureReply {
                account_no: account.account_no,
                currency: account.currency,
                scale: account.scale,
                unsettled_minor: exposure.unsettled_minor,
                exposure_minor: exposure.exposure_minor,
                exposure_max_minor: exposure.exposure_max_minor,
            });
            encode_exposure_reply(request_id, reply.as_ref(), out)
        }
        Ok(
            Answer::Query(QueryAnswer::StateHash(_) | QueryAnswer::Invariants(_))
            | Answer::Replicated(_),
        ) => {
            encode_error(request_id, ErrorCode::UnexpectedOperation, "not a wire query", out);
            Ok(())
        }
        Err(error) => {
            let (code, _) = refusal(error);
            metrics.errors_out.fetch_add(1, Ordering::Relaxed);
            encode_error(request_id, code, &error.to_string(), out);
            Ok(())
        }
    };
    // An encoder that refuses leaves `out` as it was: answer with an ERROR instead.
    if let Err(error) = encoded {
        encode_error(request_id, ErrorCode::Internal, &format!("reply encoding: {error}"), out);
    }
}

const _: () = assert!(BATCH_LEN_MAX >= 1);
const _: () = assert!(OUT_LEN_BYTES_HIGH >= READ_CHUNK_LEN_BYTES as usize);
