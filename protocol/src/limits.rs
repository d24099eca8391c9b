//! Every limit of the wire protocol and the client, in one place, with their relationships
//! checked at compile time. PROTOCOL.md ("Limits") lists the same numbers; a test reads them
//! back out of the document.

use engine::TxState;

/// The four bytes every frame starts with: `LDGR`.
pub const MAGIC: [u8; 4] = *b"LDGR";
/// The protocol version this crate speaks (frame header byte 4).
pub const PROTOCOL_VERSION: u8 = 1;
/// Length of the fixed frame header.
pub const HEADER_LEN_BYTES: u32 = 24;
/// Largest frame body. A header announcing more closes the connection (framing is lost).
pub const BODY_LEN_BYTES_MAX: u32 = 4 * 1024 * 1024;
/// Largest frame, header included.
pub const FRAME_LEN_BYTES_MAX: u32 = HEADER_LEN_BYTES + BODY_LEN_BYTES_MAX;

/// Most commands in one SUBMIT frame (and outcomes in its SUBMIT_REPLY). A server may announce
/// a smaller `batch_len_max` in HELLO_OK.
pub const BATCH_LEN_MAX: u32 = 8_192;
/// Longest bincode-encoded `CommandBody` inside a SUBMIT entry.
pub const COMMAND_BODY_LEN_BYTES_MAX: u16 = 256;
/// Fixed part of a SUBMIT entry: `tx_id: u128`, `body_len_bytes: u16`.
pub const SUBMIT_ENTRY_HEADER_LEN_BYTES: u32 = 18;
/// Largest SUBMIT body: the count, then `BATCH_LEN_MAX` entries of the largest size.
pub const SUBMIT_BODY_LEN_BYTES_MAX: u32 =
    4 + BATCH_LEN_MAX * (SUBMIT_ENTRY_HEADER_LEN_BYTES + COMMAND_BODY_LEN_BYTES_MAX as u32);

/// Most balances in one outcome (accounts one command may touch).
pub const BALANCES_LEN_MAX: u8 = 3;
/// One balance in an outcome: `account_id: u32` and three `i128`.
pub const BALANCE_LEN_BYTES: u32 = 4 + 3 * 16;
/// Fixed part of an outcome: `tx_id`, result, flags, tx_state, balances_len.
pub const OUTCOME_HEADER_LEN_BYTES: u32 = 20;
/// Largest outcome.
pub const OUTCOME_LEN_BYTES_MAX: u32 =
    OUTCOME_HEADER_LEN_BYTES + BALANCES_LEN_MAX as u32 * BALANCE_LEN_BYTES;
/// Largest SUBMIT_REPLY body.
pub const SUBMIT_REPLY_BODY_LEN_BYTES_MAX: u32 = 4 + BATCH_LEN_MAX * OUTCOME_LEN_BYTES_MAX;

/// Longest account number (engine key), in bytes.
pub const ACCOUNT_NO_LEN_BYTES_MAX: u8 = 32;
/// Fixed part of a found ACCOUNT reply (the account number follows it).
pub const ACCOUNT_REPLY_HEADER_LEN_BYTES: u32 = 106;
/// Fixed part of a found TX reply (history, debit and credit follow it).
pub const TX_REPLY_HEADER_LEN_BYTES: u32 = 104;
/// Most states in a transaction's history: each lifecycle state at most once.
pub const TX_HISTORY_LEN_MAX: u8 = 8;

/// Shortest client id, in bytes.
pub const CLIENT_ID_LEN_BYTES_MIN: u8 = 1;
/// Longest client id, in bytes (`A-Z a-z 0-9 . _ -`).
pub const CLIENT_ID_LEN_BYTES_MAX: u8 = 64;
/// Shortest secret, in bytes (printable ASCII without space).
pub const SECRET_LEN_BYTES_MIN: u8 = 16;
/// Longest secret, in bytes.
pub const SECRET_LEN_BYTES_MAX: u8 = 128;
/// Random bytes in a generated secret (written as twice as many lower-case hex digits).
pub const GENERATED_SECRET_RANDOM_BYTES: u8 = 32;

/// Random salt (the HMAC key) of one hashed secret in the server's credentials store.
pub const SECRET_SALT_LEN_BYTES: u8 = 16;
/// HMAC-SHA256 output kept per hashed secret.
pub const SECRET_MAC_LEN_BYTES: u8 = 32;

/// Most bytes one STATE_CHUNK carries (a state transfer reads files in pieces this large).
pub const STATE_CHUNK_LEN_BYTES_MAX: u32 = 1024 * 1024;
/// Bytes of a STATE_CHUNK before its data.
pub const STATE_CHUNK_HEADER_LEN_BYTES: u32 = 1 + 8 + 8 + 8 + 4;
/// Most journal segments one STATE_FILES lists.
pub const STATE_SEGMENTS_MAX: u32 = 4_096;
/// Bytes of a STATE_FILES before its segments (16 bytes each).
pub const STATE_FILES_HEADER_LEN_BYTES: u32 = 8 + 8 + 4;

/// Longest message of an ERROR reply, in bytes of UTF-8.
pub const ERROR_MESSAGE_LEN_BYTES_MAX: u16 = 1_024;
/// Largest `scale` of an `Amount` on the wire (what `rust_decimal` can carry).
pub const AMOUNT_SCALE_MAX: u8 = 28;

/// Largest `in_flight_max` a server may announce in HELLO_OK, and the client's ceiling.
pub const IN_FLIGHT_MAX: u32 = 65_536;
/// The client's default number of requests in flight per connection.
pub const IN_FLIGHT_DEFAULT: u32 = 1_024;

/// Default deadline of one request, from sending it to its reply.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u32 = 5_000;
/// Default deadline of TCP connect plus handshake.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u32 = 2_000;
/// Largest timeout the client accepts (one hour).
pub const TIMEOUT_MS_MAX: u32 = 3_600_000;
/// How long one blocked socket write waits before the client reads replies in between (so a
/// full pipeline in both directions never deadlocks).
pub const WRITE_STALL_MS: u32 = 10;
/// Bytes the client asks the socket for per read.
pub const READ_CHUNK_LEN_BYTES: u32 = 64 * 1024;

/// Largest PEM file (certificates, a private key) a TLS setup reads.
pub const TLS_FILE_LEN_BYTES_MAX: u64 = 1024 * 1024;

/// Largest credentials file.
pub const CREDENTIALS_FILE_LEN_BYTES_MAX: u64 = 1024 * 1024;
/// Most entries in a credentials file.
pub const CREDENTIALS_ENTRIES_MAX: u32 = 1_024;

const _: () = assert!(HEADER_LEN_BYTES == 4 + 1 + 1 + 2 + 8 + 4 + 4);
const _: () = assert!(FRAME_LEN_BYTES_MAX > BODY_LEN_BYTES_MAX, "no overflow in the sum");
// The largest request and the largest reply both fit in one frame.
const _: () = assert!(SUBMIT_BODY_LEN_BYTES_MAX <= BODY_LEN_BYTES_MAX);
const _: () = assert!(SUBMIT_REPLY_BODY_LEN_BYTES_MAX <= BODY_LEN_BYTES_MAX);
const _: () =
    assert!(ACCOUNT_REPLY_HEADER_LEN_BYTES + ACCOUNT_NO_LEN_BYTES_MAX as u32 <= BODY_LEN_BYTES_MAX);
const _: () = assert!(
    TX_REPLY_HEADER_LEN_BYTES + TX_HISTORY_LEN_MAX as u32 + 2 * ACCOUNT_NO_LEN_BYTES_MAX as u32
        <= BODY_LEN_BYTES_MAX
);
const _: () = assert!(4 + ERROR_MESSAGE_LEN_BYTES_MAX as u32 <= BODY_LEN_BYTES_MAX);
const _: () =
    assert!(STATE_CHUNK_HEADER_LEN_BYTES + STATE_CHUNK_LEN_BYTES_MAX <= BODY_LEN_BYTES_MAX);
const _: () = assert!(STATE_FILES_HEADER_LEN_BYTES + 16 * STATE_SEGMENTS_MAX <= BODY_LEN_BYTES_MAX);
// The wire mirrors the engine's own limits.
const _: () = assert!(BALANCES_LEN_MAX as usize == engine::limits::TOUCHED_ACCOUNTS_MAX);
const _: () = assert!(ACCOUNT_NO_LEN_BYTES_MAX as usize == engine::limits::ACCOUNT_NO_LEN_MAX);
const _: () = assert!(TX_HISTORY_LEN_MAX as usize == TxState::ALL.len());
const _: () = assert!(COMMAND_BODY_LEN_BYTES_MAX as usize <= engine::COMMAND_LEN_BYTES_MAX);
const _: () =
    assert!(CLIENT_ID_LEN_BYTES_MIN >= 1 && CLIENT_ID_LEN_BYTES_MIN <= CLIENT_ID_LEN_BYTES_MAX);
const _: () = assert!(SECRET_LEN_BYTES_MIN <= SECRET_LEN_BYTES_MAX);
const _: () = assert!(
    2 * GENERATED_SECRET_RANDOM_BYTES as u32 >= SECRET_LEN_BYTES_MIN as u32
        && 2 * GENERATED_SECRET_RANDOM_BYTES as u32 <= SECRET_LEN_BYTES_MAX as u32
);
const _: () = assert!(IN_FLIGHT_DEFAULT >= 1 && IN_FLIGHT_DEFAULT <= IN_FLIGHT_MAX);
const _: () = assert!(REQUEST_TIMEOUT_MS_DEFAULT <= TIMEOUT_MS_MAX);
const _: () = assert!(CONNECT_TIMEOUT_MS_DEFAULT <= TIMEOUT_MS_MAX);
const _: () = assert!(WRITE_STALL_MS >= 1 && WRITE_STALL_MS < REQUEST_TIMEOUT_MS_DEFAULT);
const _: () = assert!(READ_CHUNK_LEN_BYTES >= HEADER_LEN_BYTES);
const _: () = assert!(
    CREDENTIALS_ENTRIES_MAX as u64 * (CLIENT_ID_LEN_BYTES_MAX as u64 + SECRET_LEN_BYTES_MAX as u64)
        <= CREDENTIALS_FILE_LEN_BYTES_MAX
);
