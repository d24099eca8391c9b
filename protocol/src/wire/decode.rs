//! Decoding: the header, then the body per op. Every read goes through [`Cursor`], which
//! reports a short body as `Truncated` instead of panicking; every count is checked against its
//! `_max` (and against the bytes actually present) before anything is allocated; every field
//! is checked to be canonical, so a decoded frame re-encodes to the same bytes.

use engine::{
    AccountId, AccountKind, AccountNo, AccountStatus, AccountView, BalanceView, CommandBody,
    CurrencyCode, ResultCode, TxId, TxKind, TxState, TxView, COMMAND_CODEC,
};

use super::rules::{check_account_no, check_entry, EntryRefusal, RequestRules};
use super::{
    DecodeError, ErrorCode, ErrorReply, ExposureReply, Frame, FrameHeader, Hello, HelloOk, Message,
    Op, RequestId, StateChunk, StateFile, StateFileKind, StateFiles, StateRead, WireOutcome,
};
use crate::auth::{is_valid_client_id, is_valid_secret, Role, Secret};
use crate::limits::{
    ACCOUNT_REPLY_HEADER_LEN_BYTES, BALANCES_LEN_MAX, BATCH_LEN_MAX, BODY_LEN_BYTES_MAX,
    COMMAND_BODY_LEN_BYTES_MAX, ERROR_MESSAGE_LEN_BYTES_MAX, HEADER_LEN_BYTES, IN_FLIGHT_MAX,
    MAGIC, OUTCOME_HEADER_LEN_BYTES, PROTOCOL_VERSION, STATE_CHUNK_LEN_BYTES_MAX,
    STATE_SEGMENTS_MAX, SUBMIT_ENTRY_HEADER_LEN_BYTES, TX_HISTORY_LEN_MAX,
    TX_REPLY_HEADER_LEN_BYTES,
};

/// The `tx_state` byte of an outcome or TX reply that has no lifecycle state.
pub(crate) const TX_STATE_NONE: u8 = 0xFF;
/// The smallest encoded `CommandBody`: a `SetAccountLimits` of a one-byte account number
/// without limits (variant u32, key length u8, one key byte, two `None` tags).
const COMMAND_BODY_LEN_BYTES_MIN: u32 = 4 + 1 + 1 + 1 + 1;

impl FrameHeader {
    /// Decodes the first 24 bytes of `bytes`: magic, version, reserved bytes and body length
    /// are checked here. Every error closes the connection (framing is lost).
    pub fn decode(bytes: &[u8]) -> Result<FrameHeader, DecodeError> {
        let Some(header) = bytes.get(..HEADER_LEN_BYTES as usize) else {
            return Err(DecodeError::Incomplete {
                len_bytes: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                needed_bytes: HEADER_LEN_BYTES,
            });
        };
        let mut cursor = Cursor::new(header, Op::Error);
        let magic = cursor.array::<4>()?;
        if magic != MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        let version = cursor.u8()?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let op = cursor.u8()?;
        let reserved = cursor.u16()?;
        if reserved != 0 {
            return Err(DecodeError::ReservedNotZero { reserved });
        }
        let request_id = RequestId(cursor.u64()?);
        let body_len_bytes = cursor.u32()?;
        if body_len_bytes > BODY_LEN_BYTES_MAX {
            return Err(DecodeError::FrameTooLarge { body_len_bytes });
        }
        let checksum = cursor.u32()?;
        Ok(FrameHeader {
            op,
            request_id,
            body_len_bytes,
            checksum,
            prefix_crc: crc32c::crc32c(&header[..20]),
        })
    }

    /// Header plus body.
    pub fn frame_len_bytes(&self) -> u32 {
        HEADER_LEN_BYTES + self.body_len_bytes
    }
}

/// Decodes one whole frame that fills `bytes` exactly.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, DecodeError> {
    let header = FrameHeader::decode(bytes)?;
    let frame_len = header.frame_len_bytes() as usize;
    if bytes.len() < frame_len {
        return Err(DecodeError::Incomplete {
            len_bytes: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            needed_bytes: header.frame_len_bytes(),
        });
    }
    if bytes.len() > frame_len {
        return Err(DecodeError::TrailingBytes {
            op: Op::from_u8(header.op).unwrap_or(Op::Error),
            len_bytes: u32::try_from(bytes.len() - frame_len).unwrap_or(u32::MAX),
        });
    }
    let message = decode_body(&header, &bytes[HEADER_LEN_BYTES as usize..])?;
    Ok(Frame { request_id: header.request_id, message })
}

/// Checks the checksum, the op and the request id, and decodes the body of a frame whose
/// header is `header`, in either direction (a client reading replies, a test, the fuzzer).
/// `body` must be exactly `header.body_len_bytes` long. A server reads requests with
/// [`decode_request_body`] instead, which also applies its connection's [`RequestRules`].
///
/// A `ChecksumMismatch` or `RequestIdZero` closes the connection; every other error is
/// answered with an ERROR for `header.request_id` and the connection goes on.
pub fn decode_body(header: &FrameHeader, body: &[u8]) -> Result<Message, DecodeError> {
    check_checksum(header, body)?;
    let Some(op) = Op::from_u8(header.op) else {
        return Err(DecodeError::UnknownOperation { op: header.op });
    };
    if header.request_id == RequestId::CONNECTION && op != Op::Error {
        return Err(DecodeError::RequestIdZero { op: header.op });
    }
    decode_message(op, body, BATCH_LEN_MAX)
}

/// Decodes a frame a client sent to a server, checking in PROTOCOL.md's order: the checksum;
/// request id 0 (on any op: a client never sends a connection-level frame); before HELLO
/// succeeded, any op but HELLO or PING (`NotAuthenticated`, whether the op is known or not);
/// an unknown op; a reply op, and HELLO after HELLO succeeded (`UnexpectedOperation`, whatever
/// the body); then the body, a SUBMIT's count against `rules.batch_len_max` first. What the
/// client's role allows is checked afterwards, on the decoded message (`access::admit`).
pub fn decode_request_body(
    header: &FrameHeader,
    body: &[u8],
    rules: RequestRules,
) -> Result<Message, DecodeError> {
    check_checksum(header, body)?;
    if header.request_id == RequestId::CONNECTION {
        return Err(DecodeError::RequestIdZero { op: header.op });
    }
    let op = Op::from_u8(header.op);
    if !rules.authenticated && !matches!(op, Some(Op::Hello | Op::Ping)) {
        return Err(DecodeError::NotAuthenticated { op: header.op });
    }
    let Some(op) = op else {
        return Err(DecodeError::UnknownOperation { op: header.op });
    };
    if !op.is_request() {
        return Err(DecodeError::UnexpectedOperation {
            op,
            reason: "is a reply: a client may not send it",
        });
    }
    if op == Op::Hello && rules.authenticated {
        return Err(DecodeError::UnexpectedOperation {
            op,
            reason: "again: this connection is authenticated",
        });
    }
    decode_message(op, body, rules.batch_len_max.clamp(1, BATCH_LEN_MAX))
}

fn check_checksum(header: &FrameHeader, body: &[u8]) -> Result<(), DecodeError> {
    if body.len() != header.body_len_bytes as usize {
        return Err(DecodeError::Incomplete {
            len_bytes: HEADER_LEN_BYTES
                .saturating_add(u32::try_from(body.len()).unwrap_or(u32::MAX)),
            needed_bytes: header.frame_len_bytes(),
        });
    }
    let computed = crc32c::crc32c_append(header.prefix_crc, body);
    if computed != header.checksum {
        return Err(DecodeError::ChecksumMismatch { expected: header.checksum, computed });
    }
    Ok(())
}

/// The body of a frame of `op`; a SUBMIT may carry at most `batch_len_max` commands.
fn decode_message(op: Op, body: &[u8], batch_len_max: u32) -> Result<Message, DecodeError> {
    let mut cursor = Cursor::new(body, op);
    let message = match op {
        Op::Hello => Message::Hello(hello(&mut cursor)?),
        Op::HelloOk => Message::HelloOk(hello_ok(&mut cursor)?),
        Op::Ping => Message::Ping { payload: cursor.u64()? },
        Op::Pong => Message::Pong { payload: cursor.u64()? },
        Op::Submit => Message::Submit(submit(&mut cursor, batch_len_max)?),
        Op::SubmitReply => Message::SubmitReply(submit_reply(&mut cursor)?),
        Op::QueryAccount => Message::QueryAccount(request_account_no(&mut cursor)?),
        Op::Account => Message::Account(account(&mut cursor)?),
        Op::QueryTx => Message::QueryTx(TxId(cursor.u128()?)),
        Op::Tx => Message::Tx(tx(&mut cursor)?),
        Op::QueryExposure => Message::QueryExposure(request_account_no(&mut cursor)?),
        Op::Exposure => Message::Exposure(exposure(&mut cursor)?),
        Op::StateOffer => Message::StateOffer { through_seq: state_offer(&mut cursor)? },
        Op::StateRead => Message::StateRead(state_read(&mut cursor)?),
        Op::StateFiles => Message::StateFiles(state_files(&mut cursor)?),
        Op::StateChunk => Message::StateChunk(state_chunk(&mut cursor)?),
        Op::Error => Message::Error(error(&mut cursor)?),
    };
    cursor.finish()?;
    Ok(message)
}

/// The account number of a query: the engine's rule and the wire's (no space, nothing
/// invisible).
fn request_account_no(cursor: &mut Cursor<'_>) -> Result<AccountNo, DecodeError> {
    let account_no = account_no(cursor, None)?;
    check_account_no(&account_no).map_err(|reason| DecodeError::BadAccountNo {
        op: cursor.op,
        index: None,
        reason,
    })?;
    Ok(account_no)
}

fn hello(cursor: &mut Cursor<'_>) -> Result<Hello, DecodeError> {
    let client_id_len = cursor.u8()?;
    let client_id = cursor.bytes(client_id_len as usize)?;
    if !is_valid_client_id(client_id) {
        return Err(
            cursor.invalid("client_id (1..=64 of A-Z a-z 0-9 . _ -), length", client_id_len)
        );
    }
    let secret_len = cursor.u8()?;
    let secret = cursor.bytes(secret_len as usize)?;
    if !is_valid_secret(secret) {
        return Err(cursor.invalid("secret (16..=128 printable ASCII), length", secret_len));
    }
    Ok(Hello {
        client_id: String::from_utf8_lossy(client_id).into_owned(),
        secret: Secret::new(secret).map_err(|_| cursor.invalid("secret length", secret_len))?,
    })
}

fn hello_ok(cursor: &mut Cursor<'_>) -> Result<HelloOk, DecodeError> {
    let raw_role = cursor.u8()?;
    let role = Role::from_u8(raw_role).ok_or_else(|| cursor.invalid("role", raw_role))?;
    let batch_len_max = cursor.u32()?;
    if !(1..=BATCH_LEN_MAX).contains(&batch_len_max) {
        return Err(cursor.invalid("batch_len_max", batch_len_max));
    }
    let in_flight_max = cursor.u32()?;
    if !(1..=IN_FLIGHT_MAX).contains(&in_flight_max) {
        return Err(cursor.invalid("in_flight_max", in_flight_max));
    }
    Ok(HelloOk { role, batch_len_max, in_flight_max })
}

/// The count of a SUBMIT or SUBMIT_REPLY, checked against `len_max` and against the bytes
/// left (each entry needs at least `entry_len_min` bytes) before anything is allocated.
fn batch_len(
    cursor: &mut Cursor<'_>,
    entry_len_min: u32,
    len_max: u32,
) -> Result<u32, DecodeError> {
    let len = cursor.u32()?;
    if len == 0 {
        return Err(cursor.invalid("count", 0u8));
    }
    if len > len_max {
        return Err(DecodeError::BatchTooLarge { op: cursor.op, len, len_max });
    }
    if (cursor.remaining() as u64) < len as u64 * entry_len_min as u64 {
        return Err(DecodeError::Truncated { op: cursor.op });
    }
    Ok(len)
}

fn submit(
    cursor: &mut Cursor<'_>,
    batch_len_max: u32,
) -> Result<Vec<(TxId, CommandBody)>, DecodeError> {
    let entry_len_min = SUBMIT_ENTRY_HEADER_LEN_BYTES + COMMAND_BODY_LEN_BYTES_MIN;
    let len = batch_len(cursor, entry_len_min, batch_len_max)?;
    let mut commands = Vec::with_capacity(len as usize);
    for index in 0..len {
        let tx_id = TxId(cursor.u128()?);
        let body_len = cursor.u16()?;
        if !(1..=COMMAND_BODY_LEN_BYTES_MAX).contains(&body_len) {
            return Err(cursor.invalid("body_len_bytes", body_len));
        }
        let body = command_body(index, cursor.bytes(body_len as usize)?)?;
        check_entry(tx_id, &body).map_err(|refusal| match refusal {
            EntryRefusal::TxIdZero => DecodeError::TxIdZero { index },
            EntryRefusal::AmountScale { scale } => DecodeError::MalformedAmount { index, scale },
            EntryRefusal::AmountNotCanonical { amount } => DecodeError::AmountNotCanonical {
                index,
                mantissa: amount.mantissa,
                scale: amount.scale,
            },
            EntryRefusal::AccountNo { reason } => {
                DecodeError::BadAccountNo { op: Op::Submit, index: Some(index), reason }
            }
        })?;
        commands.push((tx_id, body));
    }
    Ok(commands)
}

/// One bincode `CommandBody` that must fill `bytes` exactly. The engine's decoder validates
/// account numbers and currency codes; its account-number errors start with `account_no`.
fn command_body(index: u32, bytes: &[u8]) -> Result<CommandBody, DecodeError> {
    let (body, used) =
        bincode::decode_from_slice::<CommandBody, _>(bytes, COMMAND_CODEC).map_err(|error| {
            match error {
                bincode::error::DecodeError::OtherString(reason)
                    if reason.starts_with("account_no") =>
                {
                    let reason = engine_key_words(&reason);
                    DecodeError::BadAccountNo { op: Op::Submit, index: Some(index), reason }
                }
                other => DecodeError::MalformedCommand { index, reason: in_words(&other) },
            }
        })?;
    if used != bytes.len() {
        return Err(DecodeError::MalformedCommand {
            index,
            reason: format!("{} trailing bytes after the command", bytes.len() - used),
        });
    }
    Ok(body)
}

/// The engine codec's account-number errors (`account_no of 40 bytes`, `account_no: empty`)
/// as the rest of a sentence that starts with "account number".
fn engine_key_words(reason: &str) -> String {
    if let Some(len) = reason.strip_prefix("account_no of ") {
        return format!("is {len} long (at most 32 bytes)");
    }
    match reason.strip_prefix("account_no: ").unwrap_or(reason) {
        "empty" => "is empty".into(),
        "too long" => "is longer than 32 bytes".into(),
        "not printable UTF-8" => "is not UTF-8, or has a control character".into(),
        other => format!("is invalid: {other}"),
    }
}

/// The account-number errors of `AccountNo::new`, as the rest of a sentence.
fn key_words(error: engine::KeyError) -> String {
    engine_key_words(&format!("account_no: {error}"))
}

/// What the command decoder said, for people (bincode's own `Display` shows Rust `Debug` text).
fn in_words(error: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as Bincode;
    match error {
        Bincode::UnexpectedEnd { .. } => "the command body ends before its last field".into(),
        Bincode::UnexpectedVariant { type_name, found, .. } => {
            let name = type_name.rsplit("::").next().unwrap_or(type_name);
            if name.starts_with("Option") || type_name.starts_with("core::option") {
                format!("an option tag is {found}, not 0 (absent) or 1 (present)")
            } else {
                format!("{found} is not a {name} variant")
            }
        }
        Bincode::OtherString(reason) => reason.clone(),
        Bincode::Other(reason) => (*reason).into(),
        _ => "the command body does not decode".into(),
    }
}

fn submit_reply(cursor: &mut Cursor<'_>) -> Result<Vec<WireOutcome>, DecodeError> {
    let len = batch_len(cursor, OUTCOME_HEADER_LEN_BYTES, BATCH_LEN_MAX)?;
    let mut outcomes = Vec::with_capacity(len as usize);
    for _ in 0..len {
        let tx_id = TxId(cursor.u128()?);
        let raw_result = cursor.u8()?;
        let result =
            ResultCode::from_u8(raw_result).ok_or_else(|| cursor.invalid("result", raw_result))?;
        let flags = cursor.u8()?;
        if flags & !1 != 0 {
            return Err(cursor.invalid("flags", flags));
        }
        let tx_state = tx_state(cursor)?;
        let balances_len = cursor.u8()?;
        if balances_len > BALANCES_LEN_MAX {
            return Err(cursor.invalid("balances_len", balances_len));
        }
        let mut balances = [super::EMPTY_BALANCE; BALANCES_LEN_MAX as usize];
        for balance in &mut balances[..balances_len as usize] {
            *balance = BalanceView {
                account: AccountId(cursor.u32()?),
                available_minor: cursor.i128()?,
                frozen_minor: cursor.i128()?,
                ledger_minor: cursor.i128()?,
            };
        }
        let outcome = WireOutcome::new(
            tx_id,
            result,
            flags & 1 == 1,
            tx_state,
            &balances[..balances_len as usize],
        )
        .ok_or_else(|| cursor.invalid("balances_len", balances_len))?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn tx_state(cursor: &mut Cursor<'_>) -> Result<Option<TxState>, DecodeError> {
    match cursor.u8()? {
        TX_STATE_NONE => Ok(None),
        raw => TxState::from_u8(raw).map(Some).ok_or_else(|| cursor.invalid("tx_state", raw)),
    }
}

/// `u8` length, then the bytes of an account number (validated like the engine does).
fn account_no(cursor: &mut Cursor<'_>, index: Option<u32>) -> Result<AccountNo, DecodeError> {
    let len = cursor.u8()?;
    let bytes = cursor.bytes(len as usize)?;
    AccountNo::new(bytes).map_err(|error| DecodeError::BadAccountNo {
        op: cursor.op,
        index,
        reason: key_words(error),
    })
}

fn found(cursor: &mut Cursor<'_>) -> Result<bool, DecodeError> {
    match cursor.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(cursor.invalid("found", other)),
    }
}

fn account(cursor: &mut Cursor<'_>) -> Result<Option<AccountView>, DecodeError> {
    if !found(cursor)? {
        return Ok(None);
    }
    if (cursor.remaining() as u64) < ACCOUNT_REPLY_HEADER_LEN_BYTES as u64 - 1 {
        return Err(DecodeError::Truncated { op: cursor.op });
    }
    let id = AccountId(cursor.u32()?);
    let user_id = cursor.u64()?;
    let currency = currency(cursor)?;
    let scale = cursor.u8()?;
    let raw_kind = cursor.u8()?;
    let kind = account_kind(raw_kind).ok_or_else(|| cursor.invalid("kind", raw_kind))?;
    let raw_status = cursor.u8()?;
    let status = account_status(raw_status).ok_or_else(|| cursor.invalid("status", raw_status))?;
    let available_minor = cursor.i128()?;
    let frozen_minor = cursor.i128()?;
    let ledger_minor = cursor.i128()?;
    let flags = cursor.u8()?;
    if flags & !0b11 != 0 {
        return Err(cursor.invalid("limit_flags", flags));
    }
    let tx_amount_max_minor = optional_i128(cursor, flags & 0b01 != 0, "tx_amount_max_minor")?;
    let daily_debit_max_minor = optional_i128(cursor, flags & 0b10 != 0, "daily_debit_max_minor")?;
    let account_no = account_no(cursor, None)?;
    Ok(Some(AccountView {
        id,
        account_no,
        user_id,
        currency,
        scale,
        kind,
        status,
        available_minor,
        frozen_minor,
        ledger_minor,
        tx_amount_max_minor,
        daily_debit_max_minor,
    }))
}

/// An `i128` that is present when `present`, and must be zero otherwise.
fn exposure(cursor: &mut Cursor<'_>) -> Result<Option<ExposureReply>, DecodeError> {
    if !found(cursor)? {
        return Ok(None);
    }
    let currency = currency(cursor)?;
    let scale = cursor.u8()?;
    let unsettled_minor = cursor.i128()?;
    let exposure_minor = cursor.i128()?;
    let flags = cursor.u8()?;
    if flags & !0b1 != 0 {
        return Err(cursor.invalid("limit_flags", flags));
    }
    let exposure_max_minor = optional_i128(cursor, flags & 0b1 != 0, "exposure_max_minor")?;
    let account_no = account_no(cursor, None)?;
    Ok(Some(ExposureReply {
        account_no,
        currency,
        scale,
        unsettled_minor,
        exposure_minor,
        exposure_max_minor,
    }))
}

fn optional_i128(
    cursor: &mut Cursor<'_>,
    present: bool,
    field: &'static str,
) -> Result<Option<i128>, DecodeError> {
    let value = cursor.i128()?;
    match (present, value) {
        (true, value) => Ok(Some(value)),
        (false, 0) => Ok(None),
        (false, _) => Err(cursor.invalid(field, 1u8)),
    }
}

/// 8 bytes: 3..=8 upper-case ASCII letters or digits, zero-padded.
fn currency(cursor: &mut Cursor<'_>) -> Result<CurrencyCode, DecodeError> {
    let bytes = cursor.array::<8>()?;
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let code = std::str::from_utf8(&bytes[..len])
        .ok()
        .and_then(|text| CurrencyCode::new(text).ok())
        .filter(|code| code.to_bytes() == bytes);
    code.ok_or_else(|| cursor.invalid("currency, length", len as u8))
}

fn account_kind(raw: u8) -> Option<AccountKind> {
    [AccountKind::User, AccountKind::System, AccountKind::Risk].get(raw as usize).copied()
}

fn account_status(raw: u8) -> Option<AccountStatus> {
    [AccountStatus::Active, AccountStatus::DebitFrozen, AccountStatus::Closed]
        .get(raw as usize)
        .copied()
}

fn tx(cursor: &mut Cursor<'_>) -> Result<Option<TxView>, DecodeError> {
    if !found(cursor)? {
        return Ok(None);
    }
    if (cursor.remaining() as u64) < TX_REPLY_HEADER_LEN_BYTES as u64 - 1 {
        return Err(DecodeError::Truncated { op: cursor.op });
    }
    let tx_id = TxId(cursor.u128()?);
    let raw_kind = cursor.u8()?;
    let kind = TxKind::from_u8(raw_kind).ok_or_else(|| cursor.invalid("kind", raw_kind))?;
    let raw_result = cursor.u8()?;
    let result =
        ResultCode::from_u8(raw_result).ok_or_else(|| cursor.invalid("result", raw_result))?;
    let state = tx_state(cursor)?;
    let flags = cursor.u8()?;
    if flags & !1 != 0 {
        return Err(cursor.invalid("flags", flags));
    }
    let amount_minor = cursor.i128()?;
    let refunded_minor = cursor.i128()?;
    let held_minor = cursor.i128()?;
    let captured_minor = cursor.i128()?;
    let linked = optional_i128(cursor, flags & 1 != 0, "linked")?.map(|raw| TxId(raw as u128));
    let history_len = cursor.u8()?;
    if history_len > TX_HISTORY_LEN_MAX {
        return Err(cursor.invalid("history_len", history_len));
    }
    let debit_len = cursor.u8()?;
    let credit_len = cursor.u8()?;
    let mut history = Vec::with_capacity(history_len as usize);
    for _ in 0..history_len {
        let raw = cursor.u8()?;
        history.push(TxState::from_u8(raw).ok_or_else(|| cursor.invalid("history", raw))?);
    }
    let debit = optional_account_no(cursor, debit_len)?;
    let credit = optional_account_no(cursor, credit_len)?;
    Ok(Some(TxView {
        tx_id,
        kind,
        result,
        state,
        history,
        amount_minor,
        debit,
        credit,
        refunded_minor,
        held_minor,
        captured_minor,
        linked,
    }))
}

/// `len` bytes of an account number; length 0 means none.
fn optional_account_no(cursor: &mut Cursor<'_>, len: u8) -> Result<Option<AccountNo>, DecodeError> {
    if len == 0 {
        return Ok(None);
    }
    let bytes = cursor.bytes(len as usize)?;
    AccountNo::new(bytes).map(Some).map_err(|error| DecodeError::BadAccountNo {
        op: cursor.op,
        index: None,
        reason: key_words(error),
    })
}

fn state_offer(cursor: &mut Cursor<'_>) -> Result<u64, DecodeError> {
    let through_seq = cursor.u64()?;
    if through_seq == 0 {
        return Err(cursor.invalid("through_seq", through_seq));
    }
    Ok(through_seq)
}

fn state_file(cursor: &mut Cursor<'_>) -> Result<StateFile, DecodeError> {
    let raw = cursor.u8()?;
    let kind = StateFileKind::from_u8(raw).ok_or_else(|| cursor.invalid("file kind", raw))?;
    let id = cursor.u64()?;
    if kind == StateFileKind::Segment && id == 0 {
        return Err(cursor.invalid("segment first_seq", id));
    }
    Ok(StateFile { kind, id })
}

fn state_read(cursor: &mut Cursor<'_>) -> Result<StateRead, DecodeError> {
    let file = state_file(cursor)?;
    let offset = cursor.u64()?;
    let len_max = cursor.u32()?;
    if !(1..=STATE_CHUNK_LEN_BYTES_MAX).contains(&len_max) {
        return Err(cursor.invalid("len_max", len_max));
    }
    Ok(StateRead { file, offset, len_max })
}

fn state_files(cursor: &mut Cursor<'_>) -> Result<StateFiles, DecodeError> {
    let snapshot_seq = cursor.u64()?;
    let snapshot_len_bytes = cursor.u64()?;
    let count = cursor.u32()?;
    if !(1..=STATE_SEGMENTS_MAX).contains(&count) {
        return Err(cursor.invalid("segment count", count));
    }
    if cursor.remaining() < count as usize * 16 {
        return Err(DecodeError::Truncated { op: cursor.op });
    }
    let mut segments: Vec<(u64, u64)> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (first_seq, len_bytes) = (cursor.u64()?, cursor.u64()?);
        let rising = segments.last().is_none_or(|(previous, _)| first_seq > *previous);
        if first_seq == 0 || !rising {
            return Err(cursor.invalid("segment first_seq", first_seq));
        }
        segments.push((first_seq, len_bytes));
    }
    Ok(StateFiles { snapshot_seq, snapshot_len_bytes, segments })
}

fn state_chunk(cursor: &mut Cursor<'_>) -> Result<StateChunk, DecodeError> {
    let file = state_file(cursor)?;
    let offset = cursor.u64()?;
    let file_len_bytes = cursor.u64()?;
    let data_len = cursor.u32()?;
    if data_len > STATE_CHUNK_LEN_BYTES_MAX {
        return Err(cursor.invalid("data_len", data_len));
    }
    let fits = offset.checked_add(u64::from(data_len)).is_some_and(|end| end <= file_len_bytes);
    if !fits {
        return Err(cursor.invalid("offset", offset));
    }
    let data = cursor.bytes(data_len as usize)?.to_vec();
    Ok(StateChunk { file, offset, file_len_bytes, data })
}

fn error(cursor: &mut Cursor<'_>) -> Result<ErrorReply, DecodeError> {
    let code = ErrorCode::from_u16(cursor.u16()?);
    let message_len = cursor.u16()?;
    if message_len > ERROR_MESSAGE_LEN_BYTES_MAX {
        return Err(cursor.invalid("message_len", message_len));
    }
    let bytes = cursor.bytes(message_len as usize)?;
    let message = std::str::from_utf8(bytes)
        .map_err(|_| DecodeError::NotUtf8 { op: cursor.op, field: "message" })?;
    Ok(ErrorReply { code, message: message.into() })
}

/// Reads fixed-width little-endian fields off a body; running out is `Truncated`.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    op: Op,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], op: Op) -> Cursor<'a> {
        Cursor { bytes, pos: 0, op }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len).ok_or(DecodeError::Truncated { op: self.op })?;
        let slice = self.bytes.get(self.pos..end).ok_or(DecodeError::Truncated { op: self.op })?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let slice = self.bytes(N)?;
        slice.try_into().map_err(|_| DecodeError::Truncated { op: self.op })
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    fn u128(&mut self) -> Result<u128, DecodeError> {
        self.array().map(u128::from_le_bytes)
    }

    fn i128(&mut self) -> Result<i128, DecodeError> {
        self.array().map(i128::from_le_bytes)
    }

    fn invalid(&self, field: &'static str, value: impl Into<u64>) -> DecodeError {
        DecodeError::InvalidField { op: self.op, field, value: value.into() }
    }

    /// Nothing may follow the last field.
    fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { op: self.op, len_bytes: extra as u32 }),
        }
    }
}
