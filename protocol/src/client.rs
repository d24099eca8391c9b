//! The blocking Rust client: one TCP connection, authenticated by HELLO, with pipelining.
//!
//! [`Client::submit`], [`Client::account`], [`Client::tx`] and [`Client::ping`] send one
//! request and wait for its reply. For throughput, [`Client::send_submit`] (and the other
//! `send_*`) put a request on the wire and return its [`RequestId`]; [`Client::recv`] returns
//! the next reply, in whatever order the server answers. A bench keeps N requests in flight:
//!
//! ```no_run
//! # fn run(client: &mut protocol::Client, batches: Vec<Vec<(engine::TxId, engine::CommandBody)>>)
//! # -> Result<(), protocol::ClientError> {
//! let mut batches = batches.into_iter();
//! loop {
//!     while client.in_flight() < 8 {
//!         let Some(batch) = batches.next() else { break };
//!         client.send_submit(&batch)?;
//!     }
//!     if client.in_flight() == 0 {
//!         break;
//!     }
//!     let (_request_id, _reply) = client.recv()?;
//! }
//! # Ok(()) }
//! ```
//!
//! **Deadlines and the retry contract** (PROTOCOL.md, "Timeouts and retries"): every request
//! has a deadline of `request_timeout_ms` from when it was sent. When any deadline passes
//! without its reply, the connection is closed (a late reply can then never be matched to a
//! later request), and every request still in flight ends as
//! [`ClientError::OutcomeUnknown`] (a SUBMIT, with its `tx_id`s) or [`ClientError::NoAnswer`]
//! (a query). The client never retries and never guesses: the caller looks the `tx_id`s up or
//! re-sends the same commands on a new connection, which is safe because a re-sent `tx_id`
//! with the same content returns its first outcome. After the server's connection-level
//! `shutting_down` (it is stopping and answered everything it read), the requests still in
//! flight were not executed: they end as [`ClientError::Refused`] with that code.

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use engine::{AccountNo, AccountView, CommandBody, TxId, TxView};

use crate::auth::{ClientCredentials, Role};
use crate::limits::{
    CONNECT_TIMEOUT_MS_DEFAULT, IN_FLIGHT_DEFAULT, IN_FLIGHT_MAX, REQUEST_TIMEOUT_MS_DEFAULT,
    TIMEOUT_MS_MAX, WRITE_STALL_MS,
};
use crate::tls::{ClientTls, Stream};
use crate::wire::{
    encode_frame, encode_submit, EncodeError, ErrorCode, ErrorReply, ExposureReply, Frame,
    FrameBuffer, Hello, Message, Op, RequestId, StateChunk, StateFile, StateFiles, StateRead,
    WireOutcome,
};

/// How a [`Client`] connects and waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Deadline for the TCP connection and the handshake together.
    pub connect_timeout_ms: u32,
    /// Deadline of each request, from sending it to receiving its reply.
    pub request_timeout_ms: u32,
    /// Most requests in flight on the connection (the server's HELLO_OK may lower it).
    pub in_flight_max: u32,
    /// Speak TLS, verifying the server against this configuration's CA (`None`: plain TCP).
    pub tls: Option<ClientTls>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            in_flight_max: IN_FLIGHT_DEFAULT,
            tls: None,
        }
    }
}

/// What the handshake established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The role the server gave this client.
    pub role: Role,
    /// Most commands per SUBMIT on this connection.
    pub batch_len_max: u32,
    /// Most requests in flight: the smaller of the options' and the server's.
    pub in_flight_max: u32,
}

/// A successful reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// One outcome per submitted command, in order.
    Submitted(Vec<WireOutcome>),
    /// The account, or `None` if there is none.
    Account(Option<AccountView>),
    /// The transaction, or `None` if the ledger does not remember it.
    Tx(Option<TxView>),
    /// The account's exposure, or `None` if there is no such account.
    Exposure(Option<ExposureReply>),
    /// The answer to a PING.
    Pong,
    /// The files a state transfer reads (STATE_FILES).
    StateFiles(StateFiles),
    /// Bytes of one of them (STATE_CHUNK).
    StateChunk(StateChunk),
}

/// Why a client call failed. Secrets never appear here.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The options are out of range.
    #[error("invalid client options: {0}")]
    InvalidOptions(&'static str),
    /// No TCP connection could be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address(es) tried.
        addr: String,
        /// The last failure.
        #[source]
        source: std::io::Error,
    },
    /// The connection was made but the handshake did not complete (timeout, closed, invalid
    /// reply).
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The server's address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The TLS handshake failed: the server's certificate is not from the trusted CA or not
    /// for this server's name, the server does not speak TLS, or it refused the client's
    /// certificate.
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// The server's address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The server refused the client id or secret.
    #[error("authentication failed: {message}")]
    AuthFailed {
        /// The server's message.
        message: String,
    },
    /// The server refused the request; nothing of it was executed. The connection stays
    /// usable unless `code.closes_connection()`.
    #[error("request {request_id} refused: {code}: {message}")]
    Refused {
        /// The request.
        request_id: RequestId,
        /// Why.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// A SUBMIT whose outcome is unknown: its deadline passed, the connection broke, or the
    /// server's journal failed. Some, all or none of its commands may have been executed. Look
    /// the `tx_id`s up, or re-send the same commands (a new connection): never new `tx_id`s.
    #[error(
        "request {request_id}: outcome of {} commands unknown ({reason}); look the tx_ids up \
         or re-send the same commands",
        tx_ids.len()
    )]
    OutcomeUnknown {
        /// The request.
        request_id: RequestId,
        /// Its commands' ids, in order.
        tx_ids: Vec<TxId>,
        /// What happened.
        reason: String,
    },
    /// A query or ping that got no answer (deadline passed, connection broke).
    #[error("request {request_id}: no answer ({reason})")]
    NoAnswer {
        /// The request.
        request_id: RequestId,
        /// What happened.
        reason: String,
    },
    /// The connection is closed; make a new [`Client`].
    #[error("connection closed: {reason}")]
    Closed {
        /// Why it was closed.
        reason: String,
    },
    /// A SUBMIT with no commands, or more than the session's `batch_len_max`. Not sent.
    #[error("a batch of {len} commands is outside 1..={len_max}")]
    BatchLen {
        /// The batch's length.
        len: u64,
        /// The session's `batch_len_max`.
        len_max: u32,
    },
    /// The request cannot be encoded (an amount's scale above 28, ...). Not sent.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// `in_flight_max` requests are in flight: receive a reply first. Not sent.
    #[error("{in_flight_max} requests are in flight: receive a reply first")]
    InFlightFull {
        /// The session's limit.
        in_flight_max: u32,
    },
    /// [`Client::recv`] with nothing in flight.
    #[error("no request is in flight")]
    NothingInFlight,
}

impl ClientError {
    /// The request this error is about, if any.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            ClientError::Refused { request_id, .. }
            | ClientError::OutcomeUnknown { request_id, .. }
            | ClientError::NoAnswer { request_id, .. } => Some(*request_id),
            ClientError::InvalidOptions(_)
            | ClientError::Connect { .. }
            | ClientError::Handshake { .. }
            | ClientError::Tls { .. }
            | ClientError::AuthFailed { .. }
            | ClientError::Closed { .. }
            | ClientError::BatchLen { .. }
            | ClientError::Encode(_)
            | ClientError::InFlightFull { .. }
            | ClientError::NothingInFlight => None,
        }
    }
}

/// A request waiting for its reply.
#[derive(Debug)]
struct InFlight {
    op: Op,
    deadline: Instant,
    /// The SUBMIT's `tx_id`s, or the QUERY_TX's one.
    tx_ids: Vec<TxId>,
}

/// One authenticated connection to a ledger server. Not thread-safe: one per thread.
pub struct Client {
    stream: Stream,
    peer: SocketAddr,
    options: ClientOptions,
    session: Session,
    buffer: FrameBuffer,
    write_buf: Vec<u8>,
    next_request_id: u64,
    /// Requests awaiting a reply, by id. Ids grow and every request has the same timeout, so
    /// the first entry has the earliest deadline.
    in_flight: BTreeMap<u64, InFlight>,
    /// Replies received but not yet returned (at most one per request in flight).
    ready: VecDeque<(RequestId, Result<Reply, ClientError>)>,
    /// Why the connection is closed, once it is.
    broken: Option<String>,
    /// The server stopped (a connection-level `shutting_down`): every request still in flight
    /// was not executed.
    server_stopped: Option<ErrorReply>,
}

/// The request id of HELLO; requests after it count up from 2.
const HELLO_REQUEST_ID: RequestId = RequestId(1);

impl Client {
    /// Connects to `addr` (every resolved address in turn), sends HELLO with `credentials`,
    /// and waits for HELLO_OK, all within `options.connect_timeout_ms`.
    pub fn connect(
        addr: impl ToSocketAddrs,
        credentials: &ClientCredentials,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        validate(&options)?;
        let deadline = Instant::now() + millis(options.connect_timeout_ms);
        let (stream, peer) = connect_any(addr, deadline)?;
        let handshake_error = |reason: String| ClientError::Handshake { addr: peer, reason };
        let setup = stream
            .set_nodelay(true)
            .and_then(|()| stream.set_write_timeout(Some(millis(WRITE_STALL_MS))));
        setup.map_err(|error| handshake_error(format!("socket setup: {error}")))?;
        let stream = Stream::new(stream, peer, options.tls.as_ref(), deadline)
            .map_err(|reason| ClientError::Tls { addr: peer, reason })?;
        let mut client = Client {
            stream,
            peer,
            options,
            session: Session { role: Role::Read, batch_len_max: 1, in_flight_max: 1 },
            buffer: FrameBuffer::new(),
            write_buf: Vec::new(),
            next_request_id: HELLO_REQUEST_ID.0 + 1,
            in_flight: BTreeMap::new(),
            ready: VecDeque::new(),
            broken: None,
            server_stopped: None,
        };
        client.session = client.handshake(credentials, deadline)?;
        Ok(client)
    }

    fn handshake(
        &mut self,
        credentials: &ClientCredentials,
        deadline: Instant,
    ) -> Result<Session, ClientError> {
        let peer = self.peer;
        let handshake_error = |reason: String| ClientError::Handshake { addr: peer, reason };
        let hello = Message::Hello(Hello {
            client_id: credentials.client_id().into(),
            secret: credentials.secret().clone(),
        });
        encode_frame(HELLO_REQUEST_ID, &hello, &mut self.write_buf)?;
        self.write_out(deadline).map_err(handshake_error)?;
        self.write_buf.fill(0); // it held the secret
        self.write_buf.clear();
        let frame = match self.read_frame(deadline) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let timeout_ms = self.options.connect_timeout_ms;
                return Err(handshake_error(format!("no reply within {timeout_ms} ms")));
            }
            Err(reason) => return Err(handshake_error(reason)),
        };
        let server = match (frame.request_id, frame.message) {
            (HELLO_REQUEST_ID, Message::HelloOk(server)) => server,
            (_, Message::Error(ErrorReply { code: ErrorCode::AuthFailed, message })) => {
                return Err(ClientError::AuthFailed { message });
            }
            (request_id, Message::Error(ErrorReply { code, message })) => {
                return Err(ClientError::Refused { request_id, code, message });
            }
            (request_id, other) => {
                let op = other.op();
                return Err(handshake_error(format!("{op} (request {request_id}) to HELLO")));
            }
        };
        Ok(Session {
            role: server.role,
            batch_len_max: server.batch_len_max,
            in_flight_max: server.in_flight_max.min(self.options.in_flight_max),
        })
    }

    /// What the handshake established.
    pub fn session(&self) -> Session {
        self.session
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Requests sent and not yet returned by [`Client::recv`] (or by a blocking call).
    pub fn in_flight(&self) -> u32 {
        (self.in_flight.len() + self.ready.len()) as u32
    }

    /// Whether the connection is closed (every later request fails with `Closed`).
    pub fn is_closed(&self) -> bool {
        self.broken.is_some()
    }

    /// Submits `commands` (1 to `session().batch_len_max`) and waits for their outcomes, one
    /// per command, in order.
    pub fn submit(
        &mut self,
        commands: Vec<(TxId, CommandBody)>,
    ) -> Result<Vec<WireOutcome>, ClientError> {
        let request_id = self.send_submit(&commands)?;
        match self.wait_for(request_id)? {
            Reply::Submitted(outcomes) => Ok(outcomes),
            Reply::Account(_)
            | Reply::Tx(_)
            | Reply::Exposure(_)
            | Reply::Pong
            | Reply::StateFiles(_)
            | Reply::StateChunk(_) => Err(mismatch(request_id)),
        }
    }

    /// The exposure of `account_no` (unsettled deposits, how much of them is spent, the
    /// limit), or `None` if there is no such account.
    pub fn exposure(
        &mut self,
        account_no: &AccountNo,
    ) -> Result<Option<ExposureReply>, ClientError> {
        let request_id = self.send_query_exposure(account_no)?;
        match self.wait_for(request_id)? {
            Reply::Exposure(exposure) => Ok(exposure),
            Reply::Submitted(_)
            | Reply::Account(_)
            | Reply::Tx(_)
            | Reply::Pong
            | Reply::StateFiles(_)
            | Reply::StateChunk(_) => Err(mismatch(request_id)),
        }
    }

    /// The account `account_no`, or `None` if there is none.
    pub fn account(&mut self, account_no: &AccountNo) -> Result<Option<AccountView>, ClientError> {
        let request_id = self.send_query_account(account_no)?;
        match self.wait_for(request_id)? {
            Reply::Account(account) => Ok(account),
            Reply::Submitted(_)
            | Reply::Tx(_)
            | Reply::Exposure(_)
            | Reply::Pong
            | Reply::StateFiles(_)
            | Reply::StateChunk(_) => Err(mismatch(request_id)),
        }
    }

    /// The transaction `tx_id`, or `None` if the ledger does not remember it.
    pub fn tx(&mut self, tx_id: TxId) -> Result<Option<TxView>, ClientError> {
        let request_id = self.send_query_tx(tx_id)?;
        match self.wait_for(request_id)? {
            Reply::Tx(tx) => Ok(tx),
            Reply::Submitted(_)
            | Reply::Account(_)
            | Reply::Exposure(_)
            | Reply::Pong
            | Reply::StateFiles(_)
            | Reply::StateChunk(_) => Err(mismatch(request_id)),
        }
    }

    /// Sends a PING and waits for the PONG; returns the round-trip time.
    pub fn ping(&mut self) -> Result<Duration, ClientError> {
        let sent = Instant::now();
        let request_id = self.send_ping()?;
        match self.wait_for(request_id)? {
            Reply::Pong => Ok(sent.elapsed()),
            Reply::Submitted(_)
            | Reply::Account(_)
            | Reply::Tx(_)
            | Reply::Exposure(_)
            | Reply::StateFiles(_)
            | Reply::StateChunk(_) => Err(mismatch(request_id)),
        }
    }

    /// Which of the server's files hold its state through `through_seq` (a replica group's
    /// state transfer, REPLICATION.md; admin only).
    pub fn state_offer(&mut self, through_seq: u64) -> Result<StateFiles, ClientError> {
        let request_id = self.send_message(Message::StateOffer { through_seq }, Vec::new())?;
        match self.wait_for(request_id)? {
            Reply::StateFiles(files) => Ok(files),
            Reply::Submitted(_)
            | Reply::Account(_)
            | Reply::Tx(_)
            | Reply::Exposure(_)
            | Reply::Pong
            | Reply::StateChunk(_) => Err(mismatch(request_id)),
        }
    }

    /// Up to `len_max` bytes of `file` from `offset` (fewer only at its end; admin only).
    pub fn state_read(
        &mut self,
        file: StateFile,
        offset: u64,
        len_max: u32,
    ) -> Result<StateChunk, ClientError> {
        let read = StateRead { file, offset, len_max };
        let request_id = self.send_message(Message::StateRead(read), Vec::new())?;
        match self.wait_for(request_id)? {
            Reply::StateChunk(chunk) if chunk.file == file && chunk.offset == offset => Ok(chunk),
            Reply::StateChunk(_) => Err(ClientError::Closed {
                reason: format!("request {request_id}: STATE_CHUNK of another file or offset"),
            }),
            Reply::Submitted(_)
            | Reply::Account(_)
            | Reply::Tx(_)
            | Reply::Exposure(_)
            | Reply::Pong
            | Reply::StateFiles(_) => Err(mismatch(request_id)),
        }
    }

    /// Sends a SUBMIT without waiting; its reply comes from [`Client::recv`].
    pub fn send_submit(
        &mut self,
        commands: &[(TxId, CommandBody)],
    ) -> Result<RequestId, ClientError> {
        self.check_can_send()?;
        let len_max = self.session.batch_len_max;
        if !(1..=len_max as usize).contains(&commands.len()) {
            return Err(ClientError::BatchLen { len: commands.len() as u64, len_max });
        }
        let request_id = RequestId(self.next_request_id);
        self.write_buf.clear();
        encode_submit(request_id, commands, &mut self.write_buf)?;
        let tx_ids = commands.iter().map(|(tx_id, _)| *tx_id).collect();
        self.send(request_id, Op::Submit, tx_ids)
    }

    /// Sends a QUERY_ACCOUNT without waiting.
    pub fn send_query_account(&mut self, account_no: &AccountNo) -> Result<RequestId, ClientError> {
        self.send_message(Message::QueryAccount(*account_no), Vec::new())
    }

    /// Sends a QUERY_EXPOSURE without waiting.
    pub fn send_query_exposure(
        &mut self,
        account_no: &AccountNo,
    ) -> Result<RequestId, ClientError> {
        self.send_message(Message::QueryExposure(*account_no), Vec::new())
    }

    /// Sends a QUERY_TX without waiting.
    pub fn send_query_tx(&mut self, tx_id: TxId) -> Result<RequestId, ClientError> {
        self.send_message(Message::QueryTx(tx_id), vec![tx_id])
    }

    /// Sends a PING without waiting (its payload is the request id).
    pub fn send_ping(&mut self) -> Result<RequestId, ClientError> {
        self.send_message(Message::Ping { payload: self.next_request_id }, Vec::new())
    }

    /// The next reply, in the order the server sent them (not the order of the requests). A
    /// refused request comes back as `Err(Refused)`, a lost one as `Err(OutcomeUnknown)` or
    /// `Err(NoAnswer)`, each with its request id. Once the connection is closed, every request
    /// still in flight is returned that way, one per call, then `Err(Closed)`.
    pub fn recv(&mut self) -> Result<(RequestId, Reply), ClientError> {
        loop {
            if let Some((request_id, result)) = self.ready.pop_front() {
                return result.map(|reply| (request_id, reply));
            }
            if let Some(reason) = &self.broken {
                return match self.in_flight.pop_first() {
                    Some((id, request)) => {
                        Err(lost(RequestId(id), request, reason, self.server_stopped.as_ref()))
                    }
                    None => Err(ClientError::Closed { reason: reason.clone() }),
                };
            }
            if self.in_flight.is_empty() {
                return Err(ClientError::NothingInFlight);
            }
            self.pump();
        }
    }

    /// Closes the connection. Requests in flight stay unanswered (their outcome is unknown).
    pub fn close(mut self) {
        self.break_connection("closed by the client".into());
    }

    fn send_message(
        &mut self,
        message: Message,
        tx_ids: Vec<TxId>,
    ) -> Result<RequestId, ClientError> {
        self.check_can_send()?;
        let request_id = RequestId(self.next_request_id);
        self.write_buf.clear();
        encode_frame(request_id, &message, &mut self.write_buf)?;
        self.send(request_id, message.op(), tx_ids)
    }

    fn check_can_send(&self) -> Result<(), ClientError> {
        if let Some(reason) = &self.broken {
            return Err(ClientError::Closed { reason: reason.clone() });
        }
        let in_flight_max = self.session.in_flight_max;
        if self.in_flight() >= in_flight_max {
            return Err(ClientError::InFlightFull { in_flight_max });
        }
        Ok(())
    }

    /// Writes the frame in `write_buf` and registers the request. A frame that was not
    /// written completely cannot have been executed (the server never saw all of it, and the
    /// connection is closed), so that is `Closed`, not `OutcomeUnknown`.
    fn send(
        &mut self,
        request_id: RequestId,
        op: Op,
        tx_ids: Vec<TxId>,
    ) -> Result<RequestId, ClientError> {
        let deadline = Instant::now() + millis(self.options.request_timeout_ms);
        self.next_request_id += 1;
        if let Err(reason) = self.write_out(deadline) {
            self.break_connection(format!("request {request_id} not sent completely: {reason}"));
            return Err(ClientError::Closed { reason: self.broken.clone().unwrap_or_default() });
        }
        self.in_flight.insert(request_id.0, InFlight { op, deadline, tx_ids });
        Ok(request_id)
    }

    /// Waits for the reply to `request_id`, keeping other replies for [`Client::recv`].
    fn wait_for(&mut self, request_id: RequestId) -> Result<Reply, ClientError> {
        loop {
            if let Some(index) = self.ready.iter().position(|(id, _)| *id == request_id) {
                if let Some((_, result)) = self.ready.remove(index) {
                    return result;
                }
            }
            if let Some(reason) = &self.broken {
                return match self.in_flight.remove(&request_id.0) {
                    Some(request) => {
                        Err(lost(request_id, request, reason, self.server_stopped.as_ref()))
                    }
                    None => Err(ClientError::Closed { reason: reason.clone() }),
                };
            }
            self.pump();
        }
    }

    /// Waits until the earliest deadline for one frame and dispatches it (and any others
    /// already buffered). A passed deadline, a closed socket or an invalid frame closes the
    /// connection.
    fn pump(&mut self) {
        let Some((&first_id, first)) = self.in_flight.first_key_value() else {
            return;
        };
        let deadline = first.deadline;
        match self.read_frame(deadline) {
            Ok(Some(frame)) => {
                if let Err(reason) = self.dispatch(frame).and_then(|()| self.dispatch_buffered()) {
                    self.break_connection(reason);
                }
            }
            Ok(None) => {
                let timeout_ms = self.options.request_timeout_ms;
                self.break_connection(format!(
                    "no reply to request {first_id} within {timeout_ms} ms"
                ));
            }
            Err(reason) => self.break_connection(reason),
        }
    }

    fn dispatch_buffered(&mut self) -> Result<(), String> {
        loop {
            match self.buffer.next_frame() {
                Ok(Some(frame)) => self.dispatch(frame)?,
                Ok(None) => return Ok(()),
                Err(error) => return Err(format!("the server sent an invalid frame: {error}")),
            }
        }
    }

    /// Matches a reply to its request and queues the result. `Err` means the server broke the
    /// protocol or closed the connection: the caller closes it.
    fn dispatch(&mut self, frame: Frame) -> Result<(), String> {
        let request_id = frame.request_id;
        if request_id == RequestId::CONNECTION {
            return Err(match frame.message {
                Message::Error(ErrorReply { code, message }) => {
                    let reason = format!("the server closed the connection: {code}: {message}");
                    if code == ErrorCode::ShuttingDown {
                        self.server_stopped = Some(ErrorReply { code, message });
                    }
                    reason
                }
                other => format!("{} with request id 0", other.op()),
            });
        }
        let Some(request) = self.in_flight.remove(&request_id.0) else {
            return Err(format!("reply to request {request_id}, which is not in flight"));
        };
        let (op, message) = (request.op, frame.message);
        let reply = match (op, message) {
            (_, Message::Error(ErrorReply { code, message })) => {
                let closes = code.closes_connection();
                let reason = format!("server error {code}: {message}");
                let result = if op == Op::Submit && code.outcome_unknown() {
                    Err(ClientError::OutcomeUnknown { request_id, tx_ids: request.tx_ids, reason })
                } else {
                    Err(ClientError::Refused { request_id, code, message })
                };
                self.ready.push_back((request_id, result));
                return if closes {
                    Err(format!("request {request_id} refused: {code}"))
                } else {
                    Ok(())
                };
            }
            (Op::Submit, Message::SubmitReply(outcomes)) => {
                let ids_match = outcomes.len() == request.tx_ids.len()
                    && outcomes.iter().zip(&request.tx_ids).all(|(o, tx_id)| o.tx_id == *tx_id);
                if !ids_match {
                    self.in_flight.insert(request_id.0, request);
                    return Err(format!("SUBMIT_REPLY {request_id} does not match its tx_ids"));
                }
                Reply::Submitted(outcomes)
            }
            (Op::QueryAccount, Message::Account(account)) => Reply::Account(account),
            (Op::QueryExposure, Message::Exposure(exposure)) => Reply::Exposure(exposure),
            (Op::QueryTx, Message::Tx(tx))
                if tx.as_ref().is_none_or(|tx| request.tx_ids == [tx.tx_id]) =>
            {
                Reply::Tx(tx)
            }
            (Op::Ping, Message::Pong { payload }) if payload == request_id.0 => Reply::Pong,
            (Op::StateOffer, Message::StateFiles(files)) => Reply::StateFiles(files),
            (Op::StateRead, Message::StateChunk(chunk)) => Reply::StateChunk(chunk),
            (op, other) => {
                let reply_op = other.op();
                self.in_flight.insert(request_id.0, request);
                return Err(format!("{reply_op} {request_id} does not answer its {op}"));
            }
        };
        self.ready.push_back((request_id, Ok(reply)));
        Ok(())
    }

    /// Reads until one frame is complete (`Ok(None)`: the deadline passed first).
    fn read_frame(&mut self, deadline: Instant) -> Result<Option<Frame>, String> {
        loop {
            match self.buffer.next_frame() {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {}
                Err(error) => {
                    // A TLS alert record (content type 21, version 3.x): a TLS server.
                    let hint = if self.buffer.buffered_starts_with(&[0x15, 0x03]) {
                        " (it looks like a TLS alert: the server expects TLS; give the client its CA)"
                    } else {
                        ""
                    };
                    return Err(format!("the server sent an invalid frame: {error}{hint}"));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.stream
                .tcp()
                .set_read_timeout(Some(deadline - now))
                .map_err(|error| format!("socket setup: {error}"))?;
            match self.buffer.read_from(&mut self.stream) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(_) => {}
                Err(error) if is_retry(&error) => {}
                Err(error) => return Err(format!("read: {error}")),
            }
        }
    }

    /// Writes `write_buf` completely by `deadline`. While the socket is full, reads and
    /// dispatches replies in between, so that a client and a server both blocked on writing to
    /// each other never deadlock.
    fn write_out(&mut self, deadline: Instant) -> Result<(), String> {
        let mut written = 0;
        // Bounded by the deadline: each pass writes bytes or waits on the socket's timeout.
        loop {
            let step = if written < self.write_buf.len() {
                self.stream.write(&self.write_buf[written..]).inspect(|len| written += len)
            } else if self.stream.has_pending_output() {
                // TLS: the records of what was written, until the socket took them all.
                self.stream.write_pending().map(|()| 1)
            } else {
                return Ok(());
            };
            match step {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if is_retry(&error) => {
                    if Instant::now() >= deadline {
                        let timeout_ms = self.options.request_timeout_ms;
                        return Err(format!("the server took nothing for {timeout_ms} ms"));
                    }
                    self.read_available()?;
                }
                Err(error) => return Err(format!("write: {error}")),
            }
        }
    }

    /// Reads whatever has arrived without blocking, and dispatches the complete frames.
    fn read_available(&mut self) -> Result<(), String> {
        self.stream
            .tcp()
            .set_nonblocking(true)
            .map_err(|error| format!("socket setup: {error}"))?;
        let result = loop {
            match self.buffer.read_from(&mut self.stream) {
                Ok(0) => break Err("the server closed the connection".into()),
                Ok(_) => {
                    if let Err(reason) = self.dispatch_buffered() {
                        break Err(reason);
                    }
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => break Err(format!("read: {error}")),
            }
        };
        let restored = self.stream.tcp().set_nonblocking(false);
        result?;
        restored.map_err(|error| format!("socket setup: {error}"))
    }

    fn break_connection(&mut self, reason: String) {
        if self.broken.is_none() {
            let _ = self.stream.tcp().shutdown(Shutdown::Both);
            self.broken = Some(reason);
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .field("session", &self.session)
            .field("in_flight", &self.in_flight())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

fn validate(options: &ClientOptions) -> Result<(), ClientError> {
    if !(1..=TIMEOUT_MS_MAX).contains(&options.connect_timeout_ms) {
        return Err(ClientError::InvalidOptions("connect_timeout_ms outside 1..=3600000"));
    }
    if !(1..=TIMEOUT_MS_MAX).contains(&options.request_timeout_ms) {
        return Err(ClientError::InvalidOptions("request_timeout_ms outside 1..=3600000"));
    }
    if !(1..=IN_FLIGHT_MAX).contains(&options.in_flight_max) {
        return Err(ClientError::InvalidOptions("in_flight_max outside 1..=65536"));
    }
    Ok(())
}

/// Tries every address `addr` resolves to until one connects or `deadline` passes.
fn connect_any(
    addr: impl ToSocketAddrs,
    deadline: Instant,
) -> Result<(TcpStream, SocketAddr), ClientError> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| ClientError::Connect {
            addr: "(address did not resolve)".into(),
            source,
        })?
        .collect();
    let described = resolved.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let mut last_error = std::io::Error::new(ErrorKind::NotFound, "no address to connect to");
    for peer in &resolved {
        let now = Instant::now();
        if now >= deadline {
            last_error = std::io::Error::new(ErrorKind::TimedOut, "connect timeout");
            break;
        }
        match TcpStream::connect_timeout(peer, deadline - now) {
            Ok(stream) => return Ok((stream, *peer)),
            Err(error) => last_error = error,
        }
    }
    Err(ClientError::Connect { addr: described, source: last_error })
}

/// The error for a request whose answer will never come: `Refused` when the server said it
/// stopped (it answers every request it executes before it says so), else `OutcomeUnknown`
/// for a SUBMIT and `NoAnswer` for the others.
fn lost(
    request_id: RequestId,
    request: InFlight,
    reason: &str,
    server_stopped: Option<&ErrorReply>,
) -> ClientError {
    if let Some(ErrorReply { code, message }) = server_stopped {
        return ClientError::Refused { request_id, code: *code, message: message.clone() };
    }
    match request.op {
        Op::Submit => ClientError::OutcomeUnknown {
            request_id,
            tx_ids: request.tx_ids,
            reason: reason.into(),
        },
        Op::Hello
        | Op::Ping
        | Op::QueryAccount
        | Op::QueryTx
        | Op::QueryExposure
        | Op::StateOffer
        | Op::StateRead
        | Op::StateFiles
        | Op::StateChunk
        | Op::HelloOk
        | Op::Pong
        | Op::SubmitReply
        | Op::Account
        | Op::Tx
        | Op::Exposure
        | Op::Error => ClientError::NoAnswer { request_id, reason: reason.into() },
    }
}

/// `dispatch` only queues a reply of the request's kind; this is for the type checker.
fn mismatch(request_id: RequestId) -> ClientError {
    ClientError::Closed { reason: format!("request {request_id}: reply of another kind") }
}

fn is_retry(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted)
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(ms as u64)
}

#[cfg(test)]
mod tests;
