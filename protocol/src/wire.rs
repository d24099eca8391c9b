//! The wire protocol of PROTOCOL.md: frame header, operations, message bodies, error codes,
//! and their encoding ([`encode_frame`] and the caller-buffer fast paths) and decoding
//! ([`FrameHeader::decode`], [`decode_body`], [`decode_frame`], and [`FrameBuffer`] for a
//! byte stream).
//!
//! Every frame is a 24-byte header (magic, version, op, request id, body length, CRC32C) and a
//! body whose layout depends on the op. Decoders never panic, check every length against its
//! `_max` before allocating, and accept only canonical encodings, so whatever decodes
//! re-encodes to the same bytes.

use std::fmt;

use engine::{AccountView, BalanceView, CommandBody, Outcome, ResultCode, TxId, TxState, TxView};

use crate::auth::{Role, Secret};
use crate::limits::{
    AMOUNT_SCALE_MAX, BALANCES_LEN_MAX, BATCH_LEN_MAX, BODY_LEN_BYTES_MAX,
    COMMAND_BODY_LEN_BYTES_MAX, ERROR_MESSAGE_LEN_BYTES_MAX, MAGIC, PROTOCOL_VERSION,
};

mod buffer;
mod decode;
mod encode;
pub mod fuzz;
mod rules;

pub use buffer::{FrameBuffer, FrameError};
pub use decode::{decode_body, decode_frame, decode_request_body};
pub use encode::{
    encode_account_reply, encode_error, encode_exposure_reply, encode_frame, encode_state_chunk,
    encode_state_files, encode_submit, encode_submit_reply, encode_tx_reply,
};
pub use rules::{
    account_no_char_allowed, amount_is_canonical, check_account_no, RequestRules,
    ACCOUNT_NO_REFUSED,
};

/// The id a client gives a request; its reply carries the same id. `0` is reserved for ERROR
/// replies that concern the whole connection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct RequestId(pub u64);

impl RequestId {
    /// The id of connection-level ERROR replies.
    pub const CONNECTION: RequestId = RequestId(0);
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The operation of a frame (header byte 5). Replies are their request's op with the high bit
/// set; ERROR is `0xFF`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum Op {
    /// Authenticate (client id + secret).
    Hello = 0x01,
    /// Liveness check; answered with PONG.
    Ping = 0x02,
    /// A batch of commands.
    Submit = 0x03,
    /// One account's balances, status and limits.
    QueryAccount = 0x04,
    /// One transaction's lifecycle.
    QueryTx = 0x05,
    /// One account's unsettled deposits and exposure.
    QueryExposure = 0x06,
    /// A replica group's state transfer: which files hold the state through a seq.
    StateOffer = 0x07,
    /// A replica group's state transfer: bytes of one of the offered files.
    StateRead = 0x08,
    /// Authenticated: the role and the server's limits.
    HelloOk = 0x81,
    /// Answer to PING.
    Pong = 0x82,
    /// One outcome per submitted command, in order.
    SubmitReply = 0x83,
    /// Answer to QUERY_ACCOUNT.
    Account = 0x84,
    /// Answer to QUERY_TX.
    Tx = 0x85,
    /// Answer to QUERY_EXPOSURE.
    Exposure = 0x86,
    /// Answer to STATE_OFFER.
    StateFiles = 0x87,
    /// Answer to STATE_READ.
    StateChunk = 0x88,
    /// A refused request, or a connection-level error (request id 0).
    Error = 0xFF,
}

impl Op {
    /// Every op.
    pub const ALL: [Op; 17] = [
        Op::Hello,
        Op::Ping,
        Op::Submit,
        Op::QueryAccount,
        Op::QueryTx,
        Op::QueryExposure,
        Op::StateOffer,
        Op::StateRead,
        Op::HelloOk,
        Op::Pong,
        Op::SubmitReply,
        Op::Account,
        Op::Tx,
        Op::Exposure,
        Op::StateFiles,
        Op::StateChunk,
        Op::Error,
    ];

    /// The op for a header byte.
    pub fn from_u8(raw: u8) -> Option<Op> {
        Op::ALL.into_iter().find(|op| *op as u8 == raw)
    }

    /// The name used in PROTOCOL.md (`QUERY_ACCOUNT`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Hello => "HELLO",
            Op::Ping => "PING",
            Op::Submit => "SUBMIT",
            Op::QueryAccount => "QUERY_ACCOUNT",
            Op::QueryTx => "QUERY_TX",
            Op::QueryExposure => "QUERY_EXPOSURE",
            Op::StateOffer => "STATE_OFFER",
            Op::StateRead => "STATE_READ",
            Op::HelloOk => "HELLO_OK",
            Op::Pong => "PONG",
            Op::SubmitReply => "SUBMIT_REPLY",
            Op::Account => "ACCOUNT",
            Op::Tx => "TX",
            Op::Exposure => "EXPOSURE",
            Op::StateFiles => "STATE_FILES",
            Op::StateChunk => "STATE_CHUNK",
            Op::Error => "ERROR",
        }
    }

    /// True for ops a client sends.
    pub fn is_request(self) -> bool {
        (self as u8) & 0x80 == 0
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The code of an ERROR reply (`u16`). Codes are stable; a code this build does not know
/// decodes as [`ErrorCode::Other`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ErrorCode {
    /// 1: bad magic, checksum mismatch, reserved bytes not zero, request id 0. Closes.
    MalformedFrame,
    /// 2: a protocol version the server does not speak. Closes.
    UnsupportedVersion,
    /// 3: the header announces a body above the maximum. Closes.
    FrameTooLarge,
    /// 4: an op the server does not know.
    UnknownOperation,
    /// 5: a known op that is not allowed here (a reply op from a client, HELLO twice).
    UnexpectedOperation,
    /// 6: the body does not decode (truncated, trailing bytes, invalid field, bad command).
    MalformedBody,
    /// 7: an account number that is empty, too long, not UTF-8 or has control characters.
    BadAccountNo,
    /// 8: an amount whose scale is above 28.
    MalformedAmount,
    /// 9: more commands than the batch maximum.
    BatchTooLarge,
    /// 10: a request before a successful HELLO. Closes.
    NotAuthenticated,
    /// 11: unknown client id or wrong secret. Closes.
    AuthFailed,
    /// 12: the client's role does not allow the request.
    Forbidden,
    /// 13: the server's queue is full; nothing was executed, try again later.
    Busy,
    /// 14: the server is stopping; nothing was executed. Closes.
    ShuttingDown,
    /// 15: the journal failed; for a SUBMIT the outcome is unknown (some commands may be
    /// durable): look the `tx_id`s up or re-send them.
    Internal,
    /// 16: this server is a standby (or a deposed primary) of a replica group: nothing was
    /// executed. The message is `primary=HOST:PORT` when the primary is known, else
    /// `primary=unknown`; re-send there with the same `tx_id`s.
    NotPrimary,
    /// 17: this node cannot serve the state transfer asked for now (it is not in a replica
    /// group, it has not committed the seq asked for, or a file it offered is gone): nothing
    /// changed; ask another node, or this one again later.
    Unavailable,
    /// A code this build does not know (treated like `Internal`: outcome unknown).
    Other(u16),
}

impl ErrorCode {
    /// Every known code, in numeric order.
    pub const KNOWN: [ErrorCode; 17] = [
        ErrorCode::MalformedFrame,
        ErrorCode::UnsupportedVersion,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownOperation,
        ErrorCode::UnexpectedOperation,
        ErrorCode::MalformedBody,
        ErrorCode::BadAccountNo,
        ErrorCode::MalformedAmount,
        ErrorCode::BatchTooLarge,
        ErrorCode::NotAuthenticated,
        ErrorCode::AuthFailed,
        ErrorCode::Forbidden,
        ErrorCode::Busy,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
        ErrorCode::NotPrimary,
        ErrorCode::Unavailable,
    ];

    /// The code on the wire.
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::MalformedFrame => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::FrameTooLarge => 3,
            ErrorCode::UnknownOperation => 4,
            ErrorCode::UnexpectedOperation => 5,
            ErrorCode::MalformedBody => 6,
            ErrorCode::BadAccountNo => 7,
            ErrorCode::MalformedAmount => 8,
            ErrorCode::BatchTooLarge => 9,
            ErrorCode::NotAuthenticated => 10,
            ErrorCode::AuthFailed => 11,
            ErrorCode::Forbidden => 12,
            ErrorCode::Busy => 13,
            ErrorCode::ShuttingDown => 14,
            ErrorCode::Internal => 15,
            ErrorCode::NotPrimary => 16,
            ErrorCode::Unavailable => 17,
            ErrorCode::Other(raw) => raw,
        }
    }

    /// The code for a wire value (every value is accepted).
    pub fn from_u16(raw: u16) -> ErrorCode {
        ErrorCode::KNOWN
            .into_iter()
            .find(|code| code.as_u16() == raw)
            .unwrap_or(ErrorCode::Other(raw))
    }

    /// A short snake_case name, stable, for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownOperation => "unknown_operation",
            ErrorCode::UnexpectedOperation => "unexpected_operation",
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::BadAccountNo => "bad_account_no",
            ErrorCode::MalformedAmount => "malformed_amount",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Busy => "busy",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::NotPrimary => "not_primary",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Other(_) => "other",
        }
    }

    /// Whether the server closes the connection after sending this error (framing is lost,
    /// or the client may not go on).
    pub fn closes_connection(self) -> bool {
        match self {
            ErrorCode::MalformedFrame
            | ErrorCode::UnsupportedVersion
            | ErrorCode::FrameTooLarge
            | ErrorCode::NotAuthenticated
            | ErrorCode::AuthFailed
            | ErrorCode::ShuttingDown => true,
            ErrorCode::UnknownOperation
            | ErrorCode::UnexpectedOperation
            | ErrorCode::MalformedBody
            | ErrorCode::BadAccountNo
            | ErrorCode::MalformedAmount
            | ErrorCode::BatchTooLarge
            | ErrorCode::Forbidden
            | ErrorCode::Busy
            | ErrorCode::Internal
            | ErrorCode::NotPrimary
            | ErrorCode::Unavailable
            | ErrorCode::Other(_) => false,
        }
    }

    /// Whether a SUBMIT refused with this code may have executed some of its commands. False
    /// means: none was executed.
    pub fn outcome_unknown(self) -> bool {
        match self {
            ErrorCode::Internal | ErrorCode::Other(_) => true,
            ErrorCode::MalformedFrame
            | ErrorCode::UnsupportedVersion
            | ErrorCode::FrameTooLarge
            | ErrorCode::UnknownOperation
            | ErrorCode::UnexpectedOperation
            | ErrorCode::MalformedBody
            | ErrorCode::BadAccountNo
            | ErrorCode::MalformedAmount
            | ErrorCode::BatchTooLarge
            | ErrorCode::NotAuthenticated
            | ErrorCode::AuthFailed
            | ErrorCode::Forbidden
            | ErrorCode::Busy
            | ErrorCode::ShuttingDown
            | ErrorCode::NotPrimary
            | ErrorCode::Unavailable => false,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Other(raw) => write!(f, "error code {raw}"),
            known => f.write_str(known.name()),
        }
    }
}

/// HELLO: who the client is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// 1 to 64 bytes of `A-Z a-z 0-9 . _ -`.
    pub client_id: String,
    /// Its secret (redacted in `Debug`).
    pub secret: Secret,
}

/// HELLO_OK: the client's role and the limits this server applies to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloOk {
    /// What the client may do.
    pub role: Role,
    /// Most commands per SUBMIT this server accepts (`1..=BATCH_LEN_MAX`).
    pub batch_len_max: u32,
    /// Requests this server reads ahead on one connection before it stops reading
    /// (`1..=IN_FLIGHT_MAX`); a client keeping more in flight only waits longer.
    pub in_flight_max: u32,
}

/// ERROR: why a request (or the connection, with request id 0) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// What went wrong.
    pub code: ErrorCode,
    /// For people: at most `ERROR_MESSAGE_LEN_BYTES_MAX` bytes of UTF-8 (longer messages are
    /// cut at a character boundary when encoded).
    pub message: String,
}

/// One command's outcome as carried by SUBMIT_REPLY: `engine::Outcome` with its balances in
/// an inline array (the engine's `Balances` cannot be built outside the engine).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WireOutcome {
    /// The command's `tx_id`.
    pub tx_id: TxId,
    /// What happened (for a duplicate: what happened the first time).
    pub result: ResultCode,
    /// True when this `tx_id` had been applied before and nothing changed now.
    pub duplicate: bool,
    /// The transaction's lifecycle state after the command (`None`: no lifecycle).
    pub tx_state: Option<TxState>,
    balances_len: u8,
    balances: [BalanceView; BALANCES_LEN_MAX as usize],
}

const EMPTY_BALANCE: BalanceView = BalanceView {
    account: engine::AccountId(0),
    available_minor: 0,
    frozen_minor: 0,
    ledger_minor: 0,
};

impl WireOutcome {
    /// An outcome with up to `BALANCES_LEN_MAX` balances (`None` if there are more).
    pub fn new(
        tx_id: TxId,
        result: ResultCode,
        duplicate: bool,
        tx_state: Option<TxState>,
        balances: &[BalanceView],
    ) -> Option<WireOutcome> {
        let mut inline = [EMPTY_BALANCE; BALANCES_LEN_MAX as usize];
        inline.get_mut(..balances.len())?.copy_from_slice(balances);
        Some(WireOutcome {
            tx_id,
            result,
            duplicate,
            tx_state,
            balances_len: balances.len() as u8,
            balances: inline,
        })
    }

    /// Balances of the touched accounts right after the command, in the order the engine
    /// touched them (`account` is the engine's `AccountId`, as in ACCOUNT replies).
    pub fn balances(&self) -> &[BalanceView] {
        &self.balances[..self.balances_len as usize]
    }

    /// True when the command was applied (first time or as a duplicate of an applied one).
    pub fn is_ok(&self) -> bool {
        self.result == ResultCode::Ok
    }
}

impl From<&Outcome> for WireOutcome {
    fn from(outcome: &Outcome) -> WireOutcome {
        WireOutcome::new(
            outcome.tx_id,
            outcome.result,
            outcome.duplicate,
            outcome.tx_state,
            outcome.balances.as_slice(),
        )
        .expect("the engine's Balances hold at most TOUCHED_ACCOUNTS_MAX = BALANCES_LEN_MAX")
    }
}

impl PartialEq<Outcome> for WireOutcome {
    fn eq(&self, other: &Outcome) -> bool {
        self.tx_id == other.tx_id
            && self.result == other.result
            && self.duplicate == other.duplicate
            && self.tx_state == other.tx_state
            && self.balances() == other.balances.as_slice()
    }
}

/// The body of a frame, one variant per [`Op`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// [`Op::Hello`].
    Hello(Hello),
    /// [`Op::HelloOk`].
    HelloOk(HelloOk),
    /// [`Op::Ping`]: any value, echoed by PONG.
    Ping {
        /// Echoed.
        payload: u64,
    },
    /// [`Op::Pong`].
    Pong {
        /// The PING's payload.
        payload: u64,
    },
    /// [`Op::Submit`]: `1..=BATCH_LEN_MAX` commands, executed in order.
    Submit(Vec<(TxId, CommandBody)>),
    /// [`Op::SubmitReply`]: one outcome per command, in order.
    SubmitReply(Vec<WireOutcome>),
    /// [`Op::QueryAccount`].
    QueryAccount(engine::AccountNo),
    /// [`Op::Account`]: `None` when there is no such account.
    Account(Option<AccountView>),
    /// [`Op::QueryTx`].
    QueryTx(TxId),
    /// [`Op::Tx`]: `None` when the ledger does not remember the transaction.
    Tx(Option<TxView>),
    /// [`Op::QueryExposure`].
    QueryExposure(engine::AccountNo),
    /// [`Op::Exposure`]: `None` when there is no such account.
    Exposure(Option<ExposureReply>),
    /// [`Op::StateOffer`]: the files that hold this ledger's state through `through_seq`.
    StateOffer {
        /// The last seq the receiver needs (a committed entry's last seq).
        through_seq: u64,
    },
    /// [`Op::StateRead`].
    StateRead(StateRead),
    /// [`Op::StateFiles`].
    StateFiles(StateFiles),
    /// [`Op::StateChunk`].
    StateChunk(StateChunk),
    /// [`Op::Error`].
    Error(ErrorReply),
}

impl Message {
    /// The op of this message.
    pub fn op(&self) -> Op {
        match self {
            Message::Hello(_) => Op::Hello,
            Message::HelloOk(_) => Op::HelloOk,
            Message::Ping { .. } => Op::Ping,
            Message::Pong { .. } => Op::Pong,
            Message::Submit(_) => Op::Submit,
            Message::SubmitReply(_) => Op::SubmitReply,
            Message::QueryAccount(_) => Op::QueryAccount,
            Message::Account(_) => Op::Account,
            Message::QueryTx(_) => Op::QueryTx,
            Message::Tx(_) => Op::Tx,
            Message::QueryExposure(_) => Op::QueryExposure,
            Message::Exposure(_) => Op::Exposure,
            Message::StateOffer { .. } => Op::StateOffer,
            Message::StateRead(_) => Op::StateRead,
            Message::StateFiles(_) => Op::StateFiles,
            Message::StateChunk(_) => Op::StateChunk,
            Message::Error(_) => Op::Error,
        }
    }
}

/// Which of a node's files a state transfer reads (REPLICATION.md, *State transfer*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateFileKind {
    /// 1: `snapshots/snap-<id>.snap`, `id` its seq.
    Snapshot,
    /// 2: `journal/<id>.seg`, `id` its first seq.
    Segment,
}

impl StateFileKind {
    /// The byte on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            StateFileKind::Snapshot => 1,
            StateFileKind::Segment => 2,
        }
    }

    /// The kind for a wire byte.
    pub fn from_u8(raw: u8) -> Option<StateFileKind> {
        match raw {
            1 => Some(StateFileKind::Snapshot),
            2 => Some(StateFileKind::Segment),
            _ => None,
        }
    }
}

/// One file of a state transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateFile {
    /// Snapshot or journal segment.
    pub kind: StateFileKind,
    /// The snapshot's seq, the segment's first seq.
    pub id: u64,
}

/// STATE_READ: up to `len_max` bytes of `file` from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateRead {
    /// The file (one that STATE_FILES offered).
    pub file: StateFile,
    /// The first byte wanted.
    pub offset: u64,
    /// At most this many bytes (`1..=STATE_CHUNK_LEN_BYTES_MAX`).
    pub len_max: u32,
}

/// STATE_FILES: what holds the node's state through the offer's `through_seq`: a snapshot at
/// `snapshot_seq <= through_seq` and the journal segments holding every record after it up to
/// `through_seq`, oldest first, with their lengths now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateFiles {
    /// The snapshot's seq (0: the genesis snapshot).
    pub snapshot_seq: u64,
    /// The snapshot file's length.
    pub snapshot_len_bytes: u64,
    /// `(first_seq, len_bytes)` of each segment, `1..=STATE_SEGMENTS_MAX` of them, first seqs
    /// rising.
    pub segments: Vec<(u64, u64)>,
}

/// STATE_CHUNK: bytes of a file from `offset`; fewer than asked only at the file's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChunk {
    /// The file.
    pub file: StateFile,
    /// Where `data` starts.
    pub offset: u64,
    /// The file's length now.
    pub file_len_bytes: u64,
    /// `0..=STATE_CHUNK_LEN_BYTES_MAX` bytes.
    pub data: Vec<u8>,
}

/// EXPOSURE: an account's deposits made available but not yet settled by their channel, and
/// how much of them it has already spent (amounts in minor units of `currency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExposureReply {
    /// The account.
    pub account_no: engine::AccountNo,
    /// Its currency.
    pub currency: engine::CurrencyCode,
    /// The currency's decimals.
    pub scale: u8,
    /// Deposits credited but not yet settled.
    pub unsettled_minor: i128,
    /// What of them is already spent: `max(0, unsettled - available)`.
    pub exposure_minor: i128,
    /// The exposure limit, if any.
    pub exposure_max_minor: Option<i128>,
}

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The request id of the header.
    pub request_id: RequestId,
    /// The body.
    pub message: Message,
}

/// The fixed 24-byte header of a frame, as decoded by [`FrameHeader::decode`]: magic,
/// version, reserved bytes and body length are checked; the op and the checksum are checked
/// with the body by [`decode_body`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The op byte (maybe unknown).
    pub op: u8,
    /// The request id.
    pub request_id: RequestId,
    /// Length of the body that follows (`<= BODY_LEN_BYTES_MAX`).
    pub body_len_bytes: u32,
    /// CRC32C of header bytes 0..20 followed by the body.
    pub checksum: u32,
    /// CRC32C of header bytes 0..20 (the body is appended to it).
    prefix_crc: u32,
}

/// Why bytes are not a frame. [`DecodeError::error_code`] is the code of the ERROR reply;
/// when that code closes the connection, framing is lost and the reader must stop.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// [`decode_frame`] was given fewer bytes than the frame needs.
    #[error("incomplete frame: {len_bytes} bytes, {needed_bytes} needed")]
    Incomplete {
        /// Bytes given.
        len_bytes: u32,
        /// Bytes needed (at least).
        needed_bytes: u32,
    },
    /// The frame does not start with `LDGR`.
    #[error("the frame starts with 0x{:08x}, not with \"LDGR\" (0x{:08x})", u32::from_be_bytes(*found), u32::from_be_bytes(MAGIC))]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// The version byte is not [`PROTOCOL_VERSION`].
    #[error("protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// Header bytes 6..8 are not zero.
    #[error("reserved header bytes are {reserved:#06x}, not zero")]
    ReservedNotZero {
        /// Their value.
        reserved: u16,
    },
    /// The header announces a body larger than [`BODY_LEN_BYTES_MAX`].
    #[error("body of {body_len_bytes} bytes exceeds {BODY_LEN_BYTES_MAX}")]
    FrameTooLarge {
        /// The announced length.
        body_len_bytes: u32,
    },
    /// The CRC32C does not match: the header itself may be corrupt.
    #[error("checksum {computed:#010x} does not match the header's {expected:#010x}")]
    ChecksumMismatch {
        /// From the header.
        expected: u32,
        /// Over the received bytes.
        computed: u32,
    },
    /// Request id 0 on anything but an ERROR (or, from a client, on anything).
    #[error("{} with request id 0 (reserved for the server's connection-level errors)", Op::from_u8(*op).map_or_else(|| format!("op 0x{op:02x}"), |op| op.name().to_string()))]
    RequestIdZero {
        /// The op byte.
        op: u8,
    },
    /// A request other than HELLO or PING before HELLO succeeded.
    #[error("{} before HELLO: send HELLO first", Op::from_u8(*op).map_or_else(|| format!("op 0x{op:02x}"), |op| op.name().to_string()))]
    NotAuthenticated {
        /// The op byte (maybe unknown).
        op: u8,
    },
    /// A known op that a client may not send here: a reply op, or HELLO after HELLO_OK.
    #[error("{op} {reason}")]
    UnexpectedOperation {
        /// The op.
        op: Op,
        /// Why, in words.
        reason: &'static str,
    },
    /// The op byte names no operation.
    #[error("unknown operation {op:#04x}")]
    UnknownOperation {
        /// The op byte.
        op: u8,
    },
    /// The body ends before its last field.
    #[error("{op} body is truncated")]
    Truncated {
        /// The op.
        op: Op,
    },
    /// Bytes follow the body's last field.
    #[error("{op} body has {len_bytes} trailing bytes")]
    TrailingBytes {
        /// The op.
        op: Op,
        /// How many.
        len_bytes: u32,
    },
    /// A field has a value the format does not allow.
    #[error("{op} body: {field} = {value} is not allowed")]
    InvalidField {
        /// The op.
        op: Op,
        /// Which field.
        field: &'static str,
        /// Its value (a length for text fields, never a secret).
        value: u64,
    },
    /// The ERROR message is not UTF-8.
    #[error("{op} body: {field} is not valid UTF-8")]
    NotUtf8 {
        /// The op.
        op: Op,
        /// Which field.
        field: &'static str,
    },
    /// A SUBMIT (or SUBMIT_REPLY) with more entries than [`BATCH_LEN_MAX`], or than the
    /// `batch_len_max` the server announced.
    #[error("{op} of {len} commands: at most {len_max} per {op}")]
    BatchTooLarge {
        /// The op.
        op: Op,
        /// The count field.
        len: u32,
        /// The largest count allowed.
        len_max: u32,
    },
    /// A SUBMIT entry whose `tx_id` is 0.
    #[error("SUBMIT command {index}: tx_id 0 is reserved (it names no transaction)")]
    TxIdZero {
        /// Position in the batch, from 0.
        index: u32,
    },
    /// A SUBMIT command body that is not a valid bincode `CommandBody`.
    #[error("SUBMIT command {index}: {reason}")]
    MalformedCommand {
        /// Position in the batch, from 0.
        index: u32,
        /// What the command decoder said.
        reason: String,
    },
    /// An account number that is empty, longer than 32 bytes, not UTF-8 or has control
    /// characters.
    #[error("{op}{}: account number {reason}", .index.map(|i| format!(" command {i}")).unwrap_or_default())]
    BadAccountNo {
        /// The op.
        op: Op,
        /// The command's position in a SUBMIT.
        index: Option<u32>,
        /// Why.
        reason: String,
    },
    /// A SUBMIT amount whose scale is above [`AMOUNT_SCALE_MAX`].
    #[error("SUBMIT command {index}: amount scale {scale} is above {AMOUNT_SCALE_MAX}")]
    MalformedAmount {
        /// Position in the batch, from 0.
        index: u32,
        /// The scale.
        scale: u8,
    },
    /// A SUBMIT amount with a trailing zero decimal (not its one canonical encoding).
    #[error(
        "SUBMIT command {index}: amount {mantissa} × 10^-{scale} has a trailing zero decimal; \
         its one encoding is {} × 10^-{}",
        engine::Amount { mantissa: *mantissa, scale: *scale }.normalized().mantissa,
        engine::Amount { mantissa: *mantissa, scale: *scale }.normalized().scale
    )]
    AmountNotCanonical {
        /// Position in the batch, from 0.
        index: u32,
        /// The mantissa sent.
        mantissa: i128,
        /// The scale sent.
        scale: u8,
    },
}

impl DecodeError {
    /// The code of the ERROR reply for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            DecodeError::Incomplete { .. }
            | DecodeError::BadMagic { .. }
            | DecodeError::ReservedNotZero { .. }
            | DecodeError::ChecksumMismatch { .. }
            | DecodeError::RequestIdZero { .. } => ErrorCode::MalformedFrame,
            DecodeError::NotAuthenticated { .. } => ErrorCode::NotAuthenticated,
            DecodeError::UnexpectedOperation { .. } => ErrorCode::UnexpectedOperation,
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            DecodeError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::UnknownOperation { .. } => ErrorCode::UnknownOperation,
            DecodeError::Truncated { .. }
            | DecodeError::TrailingBytes { .. }
            | DecodeError::InvalidField { .. }
            | DecodeError::NotUtf8 { .. }
            | DecodeError::MalformedCommand { .. }
            | DecodeError::TxIdZero { .. } => ErrorCode::MalformedBody,
            DecodeError::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
            DecodeError::BadAccountNo { .. } => ErrorCode::BadAccountNo,
            DecodeError::MalformedAmount { .. } | DecodeError::AmountNotCanonical { .. } => {
                ErrorCode::MalformedAmount
            }
        }
    }

    /// Whether the reader must close the connection (framing is lost or untrustworthy).
    pub fn closes_connection(&self) -> bool {
        self.error_code().closes_connection()
    }
}

/// Why a message cannot be encoded: it breaks a rule the decoder would refuse it for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A SUBMIT or SUBMIT_REPLY with no entries, or more than [`BATCH_LEN_MAX`].
    #[error("a batch of {len} is outside 1..={BATCH_LEN_MAX}")]
    BatchLen {
        /// The batch's length.
        len: u64,
    },
    /// An amount whose scale is above [`AMOUNT_SCALE_MAX`].
    #[error("command {index}: amount scale {scale} is above {AMOUNT_SCALE_MAX}")]
    MalformedAmount {
        /// Position in the batch.
        index: u32,
        /// The scale.
        scale: u8,
    },
    /// A SUBMIT entry whose `tx_id` is 0 (reserved: it names no transaction).
    #[error("command {index}: tx_id 0 is reserved (it names no transaction)")]
    TxIdZero {
        /// Position in the batch.
        index: u32,
    },
    /// An account number a server refuses (a space or an invisible character).
    #[error("{}account number {reason}", .index.map(|i| format!("command {i}: ")).unwrap_or_default())]
    BadAccountNo {
        /// Position in the batch (`None`: a query).
        index: Option<u32>,
        /// Why.
        reason: String,
    },
    /// A field breaks its rule (named in the message).
    #[error("cannot encode: {what}")]
    Invalid {
        /// The field and its rule.
        what: &'static str,
    },
    /// The body would exceed [`BODY_LEN_BYTES_MAX`].
    #[error("body of {body_len_bytes} bytes exceeds {BODY_LEN_BYTES_MAX}")]
    FrameTooLarge {
        /// The body's length.
        body_len_bytes: u64,
    },
}

const _: () = assert!(COMMAND_BODY_LEN_BYTES_MAX as u32 <= u16::MAX as u32);
const _: () = assert!(ERROR_MESSAGE_LEN_BYTES_MAX as u32 <= u16::MAX as u32);

#[cfg(test)]
mod tests;
