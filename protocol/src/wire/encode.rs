//! Encoding: frames are appended to a caller-owned `Vec<u8>` (reuse it with `clear()`). Each
//! encoder refuses what the decoder would refuse (and then leaves `out` as it found it), so an
//! encoded frame always decodes back to the same message, with one exception that changes no
//! value: a SUBMIT's amounts are written in their canonical form (`12.50` as `125 × 10^-1`).

use engine::{AccountView, BalanceView, CommandBody, Outcome, ResultCode, TxId, TxState, TxView};

use super::decode::TX_STATE_NONE;
use super::rules::{canonical_body, check_account_no, check_entry, EntryRefusal};
use super::{
    EncodeError, ErrorCode, ExposureReply, Message, Op, RequestId, StateFile, StateFileKind,
    StateFiles,
};
use crate::auth::{is_valid_client_id, is_valid_secret};
use crate::limits::{
    BATCH_LEN_MAX, BODY_LEN_BYTES_MAX, COMMAND_BODY_LEN_BYTES_MAX, ERROR_MESSAGE_LEN_BYTES_MAX,
    HEADER_LEN_BYTES, IN_FLIGHT_MAX, MAGIC, PROTOCOL_VERSION, STATE_CHUNK_LEN_BYTES_MAX,
    STATE_SEGMENTS_MAX, TX_HISTORY_LEN_MAX,
};

/// Appends the frame of `message` with `request_id` to `out`.
pub fn encode_frame(
    request_id: RequestId,
    message: &Message,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match message {
        Message::Submit(commands) => encode_submit(request_id, commands, out),
        Message::SubmitReply(outcomes) => {
            let entries = outcomes.iter().map(|outcome| OutcomeRef {
                tx_id: outcome.tx_id,
                result: outcome.result,
                duplicate: outcome.duplicate,
                tx_state: outcome.tx_state,
                balances: outcome.balances(),
            });
            submit_reply(request_id, outcomes.len(), entries, out)
        }
        Message::Account(account) => encode_account_reply(request_id, account.as_ref(), out),
        Message::Tx(tx) => encode_tx_reply(request_id, tx.as_ref(), out),
        Message::Exposure(exposure) => encode_exposure_reply(request_id, exposure.as_ref(), out),
        Message::Error(error) => {
            encode_error(request_id, error.code, &error.message, out);
            Ok(())
        }
        Message::StateFiles(files) => encode_state_files(request_id, files, out),
        Message::StateChunk(chunk) => encode_state_chunk(
            request_id,
            chunk.file,
            chunk.offset,
            chunk.file_len_bytes,
            &chunk.data,
            out,
        ),
        Message::StateOffer { .. } | Message::StateRead(_) => {
            framed(request_id, message.op(), out, |out| state_request_body(message, out))
        }
        Message::Hello(_)
        | Message::HelloOk(_)
        | Message::Ping { .. }
        | Message::Pong { .. }
        | Message::QueryAccount(_)
        | Message::QueryTx(_)
        | Message::QueryExposure(_) => {
            framed(request_id, message.op(), out, |out| small_body(message, out))
        }
    }
}

/// The bodies of the small messages.
fn small_body(message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match message {
        Message::Hello(hello) => {
            if !is_valid_client_id(hello.client_id.as_bytes()) {
                return Err(EncodeError::Invalid {
                    what: "client id: 1..=64 of A-Z a-z 0-9 . _ -",
                });
            }
            let secret = hello.secret.expose();
            if !is_valid_secret(secret) {
                return Err(EncodeError::Invalid { what: "secret: 16..=128 printable ASCII" });
            }
            out.push(hello.client_id.len() as u8);
            out.extend_from_slice(hello.client_id.as_bytes());
            out.push(secret.len() as u8);
            out.extend_from_slice(secret);
        }
        Message::HelloOk(hello_ok) => {
            if !(1..=BATCH_LEN_MAX).contains(&hello_ok.batch_len_max)
                || !(1..=IN_FLIGHT_MAX).contains(&hello_ok.in_flight_max)
            {
                return Err(EncodeError::Invalid {
                    what: "HELLO_OK limits: batch_len_max 1..=8192, in_flight_max 1..=65536",
                });
            }
            out.push(hello_ok.role as u8);
            out.extend_from_slice(&hello_ok.batch_len_max.to_le_bytes());
            out.extend_from_slice(&hello_ok.in_flight_max.to_le_bytes());
        }
        Message::Ping { payload } | Message::Pong { payload } => {
            out.extend_from_slice(&payload.to_le_bytes());
        }
        Message::QueryAccount(account_no) | Message::QueryExposure(account_no) => {
            check_account_no(account_no)
                .map_err(|reason| EncodeError::BadAccountNo { index: None, reason })?;
            put_account_no(out, account_no)
        }
        Message::QueryTx(tx_id) => out.extend_from_slice(&tx_id.0.to_le_bytes()),
        Message::Submit(_)
        | Message::SubmitReply(_)
        | Message::Account(_)
        | Message::Tx(_)
        | Message::Exposure(_)
        | Message::StateOffer { .. }
        | Message::StateRead(_)
        | Message::StateFiles(_)
        | Message::StateChunk(_)
        | Message::Error(_) => unreachable!("encoded by their own functions"),
    }
    Ok(())
}

/// The bodies of STATE_OFFER and STATE_READ.
fn state_request_body(message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match message {
        Message::StateOffer { through_seq } => {
            if *through_seq == 0 {
                return Err(EncodeError::Invalid { what: "STATE_OFFER through_seq 0" });
            }
            out.extend_from_slice(&through_seq.to_le_bytes());
        }
        Message::StateRead(read) => {
            if !(1..=STATE_CHUNK_LEN_BYTES_MAX).contains(&read.len_max) {
                return Err(EncodeError::Invalid { what: "STATE_READ len_max: 1..=1048576" });
            }
            put_state_file(out, read.file)?;
            out.extend_from_slice(&read.offset.to_le_bytes());
            out.extend_from_slice(&read.len_max.to_le_bytes());
        }
        _ => unreachable!("only the state transfer's requests"),
    }
    Ok(())
}

fn put_state_file(out: &mut Vec<u8>, file: StateFile) -> Result<(), EncodeError> {
    if file.kind == StateFileKind::Segment && file.id == 0 {
        return Err(EncodeError::Invalid { what: "a segment's first seq is at least 1" });
    }
    out.push(file.kind.as_u8());
    out.extend_from_slice(&file.id.to_le_bytes());
    Ok(())
}

/// Appends a STATE_FILES frame: 1 to `STATE_SEGMENTS_MAX` segments, first seqs (≥ 1) rising.
pub fn encode_state_files(
    request_id: RequestId,
    files: &StateFiles,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let count = files.segments.len();
    if count == 0 || count > STATE_SEGMENTS_MAX as usize {
        return Err(EncodeError::Invalid { what: "STATE_FILES: 1..=4096 segments" });
    }
    let rising = files.segments.windows(2).all(|pair| pair[0].0 < pair[1].0);
    if !rising || files.segments[0].0 == 0 {
        return Err(EncodeError::Invalid { what: "STATE_FILES: segment first seqs ≥ 1, rising" });
    }
    framed(request_id, Op::StateFiles, out, |out| {
        out.extend_from_slice(&files.snapshot_seq.to_le_bytes());
        out.extend_from_slice(&files.snapshot_len_bytes.to_le_bytes());
        out.extend_from_slice(&(count as u32).to_le_bytes());
        for (first_seq, len_bytes) in &files.segments {
            out.extend_from_slice(&first_seq.to_le_bytes());
            out.extend_from_slice(&len_bytes.to_le_bytes());
        }
        Ok(())
    })
}

/// Appends a STATE_CHUNK frame carrying `data`, the bytes of `file` from `offset` (the server's
/// path: the data is copied once, straight into the frame).
pub fn encode_state_chunk(
    request_id: RequestId,
    file: StateFile,
    offset: u64,
    file_len_bytes: u64,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if data.len() > STATE_CHUNK_LEN_BYTES_MAX as usize {
        return Err(EncodeError::Invalid { what: "STATE_CHUNK data above 1048576 bytes" });
    }
    let fits = offset.checked_add(data.len() as u64).is_some_and(|end| end <= file_len_bytes);
    if !fits {
        return Err(EncodeError::Invalid { what: "STATE_CHUNK data beyond the file's length" });
    }
    framed(request_id, Op::StateChunk, out, |out| {
        put_state_file(out, file)?;
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&file_len_bytes.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        Ok(())
    })
}

/// Appends a SUBMIT frame (the client's fast path: no `Message` needed). Amounts are written in
/// their canonical form (no trailing zero decimal: the same value); a `tx_id` 0, an amount
/// whose value needs more than 28 decimals and an account number with a space or an invisible
/// character are refused.
pub fn encode_submit(
    request_id: RequestId,
    commands: &[(TxId, CommandBody)],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_batch_len(commands.len())?;
    framed(request_id, Op::Submit, out, |out| {
        out.extend_from_slice(&(commands.len() as u32).to_le_bytes());
        for (index, (tx_id, body)) in commands.iter().enumerate() {
            let index = index as u32;
            let body = canonical_body(body);
            check_entry(*tx_id, &body).map_err(|refusal| match refusal {
                EntryRefusal::TxIdZero => EncodeError::TxIdZero { index },
                EntryRefusal::AmountScale { scale } => {
                    EncodeError::MalformedAmount { index, scale }
                }
                EntryRefusal::AmountNotCanonical { amount } => {
                    EncodeError::MalformedAmount { index, scale: amount.scale }
                }
                EntryRefusal::AccountNo { reason } => {
                    EncodeError::BadAccountNo { index: Some(index), reason }
                }
            })?;
            out.extend_from_slice(&tx_id.0.to_le_bytes());
            let len_at = out.len();
            out.extend_from_slice(&[0, 0]);
            bincode::encode_into_std_write(body, out, engine::COMMAND_CODEC)
                .expect("writing into a Vec cannot fail");
            let body_len = out.len() - len_at - 2;
            if body_len > COMMAND_BODY_LEN_BYTES_MAX as usize {
                return Err(EncodeError::Invalid { what: "command body above 256 bytes" });
            }
            out[len_at..len_at + 2].copy_from_slice(&(body_len as u16).to_le_bytes());
        }
        Ok(())
    })
}

/// Appends a SUBMIT_REPLY frame straight from the engine's outcomes (the server's fast path).
pub fn encode_submit_reply(
    request_id: RequestId,
    outcomes: &[Outcome],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let entries = outcomes.iter().map(|outcome| OutcomeRef {
        tx_id: outcome.tx_id,
        result: outcome.result,
        duplicate: outcome.duplicate,
        tx_state: outcome.tx_state,
        balances: outcome.balances.as_slice(),
    });
    submit_reply(request_id, outcomes.len(), entries, out)
}

/// The fields of one outcome, from a `WireOutcome` or an `engine::Outcome`.
struct OutcomeRef<'a> {
    tx_id: TxId,
    result: ResultCode,
    duplicate: bool,
    tx_state: Option<TxState>,
    balances: &'a [BalanceView],
}

fn submit_reply<'a>(
    request_id: RequestId,
    len: usize,
    outcomes: impl Iterator<Item = OutcomeRef<'a>>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_batch_len(len)?;
    framed(request_id, Op::SubmitReply, out, |out| {
        out.extend_from_slice(&(len as u32).to_le_bytes());
        for outcome in outcomes {
            out.extend_from_slice(&outcome.tx_id.0.to_le_bytes());
            out.push(outcome.result as u8);
            out.push(u8::from(outcome.duplicate));
            out.push(tx_state_byte(outcome.tx_state));
            out.push(outcome.balances.len() as u8);
            for balance in outcome.balances {
                out.extend_from_slice(&balance.account.0.to_le_bytes());
                out.extend_from_slice(&balance.available_minor.to_le_bytes());
                out.extend_from_slice(&balance.frozen_minor.to_le_bytes());
                out.extend_from_slice(&balance.ledger_minor.to_le_bytes());
            }
        }
        Ok(())
    })
}

/// Appends an ACCOUNT frame (`None`: not found).
pub fn encode_account_reply(
    request_id: RequestId,
    account: Option<&AccountView>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    framed(request_id, Op::Account, out, |out| {
        let Some(account) = account else {
            out.push(0);
            return Ok(());
        };
        out.push(1);
        out.extend_from_slice(&account.id.0.to_le_bytes());
        out.extend_from_slice(&account.user_id.to_le_bytes());
        out.extend_from_slice(&account.currency.to_bytes());
        out.push(account.scale);
        out.push(account.kind as u8);
        out.push(account.status as u8);
        out.extend_from_slice(&account.available_minor.to_le_bytes());
        out.extend_from_slice(&account.frozen_minor.to_le_bytes());
        out.extend_from_slice(&account.ledger_minor.to_le_bytes());
        let tx_max = account.tx_amount_max_minor;
        let daily_max = account.daily_debit_max_minor;
        out.push(u8::from(tx_max.is_some()) | u8::from(daily_max.is_some()) << 1);
        out.extend_from_slice(&tx_max.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&daily_max.unwrap_or(0).to_le_bytes());
        put_account_no(out, &account.account_no);
        Ok(())
    })
}

/// Appends an EXPOSURE frame (`None`: not found).
pub fn encode_exposure_reply(
    request_id: RequestId,
    exposure: Option<&ExposureReply>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    framed(request_id, Op::Exposure, out, |out| {
        let Some(exposure) = exposure else {
            out.push(0);
            return Ok(());
        };
        out.push(1);
        out.extend_from_slice(&exposure.currency.to_bytes());
        out.push(exposure.scale);
        out.extend_from_slice(&exposure.unsettled_minor.to_le_bytes());
        out.extend_from_slice(&exposure.exposure_minor.to_le_bytes());
        out.push(u8::from(exposure.exposure_max_minor.is_some()));
        out.extend_from_slice(&exposure.exposure_max_minor.unwrap_or(0).to_le_bytes());
        put_account_no(out, &exposure.account_no);
        Ok(())
    })
}

/// Appends a TX frame (`None`: not found).
pub fn encode_tx_reply(
    request_id: RequestId,
    tx: Option<&TxView>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    framed(request_id, Op::Tx, out, |out| {
        let Some(tx) = tx else {
            out.push(0);
            return Ok(());
        };
        if tx.history.len() > TX_HISTORY_LEN_MAX as usize {
            return Err(EncodeError::Invalid { what: "tx history longer than 8 states" });
        }
        out.push(1);
        out.extend_from_slice(&tx.tx_id.0.to_le_bytes());
        out.push(tx.kind as u8);
        out.push(tx.result as u8);
        out.push(tx_state_byte(tx.state));
        out.push(u8::from(tx.linked.is_some()));
        out.extend_from_slice(&tx.amount_minor.to_le_bytes());
        out.extend_from_slice(&tx.refunded_minor.to_le_bytes());
        out.extend_from_slice(&tx.held_minor.to_le_bytes());
        out.extend_from_slice(&tx.captured_minor.to_le_bytes());
        out.extend_from_slice(&tx.linked.map_or(0, |linked| linked.0).to_le_bytes());
        out.push(tx.history.len() as u8);
        out.push(tx.debit.map_or(0, |no| no.as_bytes().len() as u8));
        out.push(tx.credit.map_or(0, |no| no.as_bytes().len() as u8));
        out.extend(tx.history.iter().map(|state| *state as u8));
        for account_no in [tx.debit, tx.credit].iter().flatten() {
            out.extend_from_slice(account_no.as_bytes());
        }
        Ok(())
    })
}

/// Appends an ERROR frame. A message longer than `ERROR_MESSAGE_LEN_BYTES_MAX` is cut at a
/// character boundary; this never fails.
pub fn encode_error(request_id: RequestId, code: ErrorCode, message: &str, out: &mut Vec<u8>) {
    let mut len = message.len().min(ERROR_MESSAGE_LEN_BYTES_MAX as usize);
    while !message.is_char_boundary(len) {
        len -= 1;
    }
    let written = framed(request_id, Op::Error, out, |out| {
        out.extend_from_slice(&code.as_u16().to_le_bytes());
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&message.as_bytes()[..len]);
        Ok(())
    });
    debug_assert!(written.is_ok(), "an ERROR frame is always small");
}

fn check_batch_len(len: usize) -> Result<(), EncodeError> {
    if (1..=BATCH_LEN_MAX as usize).contains(&len) {
        Ok(())
    } else {
        Err(EncodeError::BatchLen { len: len as u64 })
    }
}

fn tx_state_byte(state: Option<TxState>) -> u8 {
    state.map_or(TX_STATE_NONE, |state| state as u8)
}

fn put_account_no(out: &mut Vec<u8>, account_no: &engine::AccountNo) {
    out.push(account_no.as_bytes().len() as u8);
    out.extend_from_slice(account_no.as_bytes());
}

/// Writes the header, lets `body` append the body, then fills in the length and the
/// checksum. On any error `out` is truncated back to where it was.
fn framed(
    request_id: RequestId,
    op: Op,
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = (|| {
        if request_id == RequestId::CONNECTION && op != Op::Error {
            return Err(EncodeError::Invalid { what: "request id 0 is only for ERROR" });
        }
        out.extend_from_slice(&MAGIC);
        out.push(PROTOCOL_VERSION);
        out.push(op as u8);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&request_id.0.to_le_bytes());
        out.extend_from_slice(&[0; 8]); // body length and checksum, filled in below
        body(out)?;
        let body_start = start + HEADER_LEN_BYTES as usize;
        let body_len = out.len() - body_start;
        if body_len > BODY_LEN_BYTES_MAX as usize {
            return Err(EncodeError::FrameTooLarge { body_len_bytes: body_len as u64 });
        }
        out[start + 16..start + 20].copy_from_slice(&(body_len as u32).to_le_bytes());
        let checksum =
            crc32c::crc32c_append(crc32c::crc32c(&out[start..start + 20]), &out[body_start..]);
        out[start + 20..start + 24].copy_from_slice(&checksum.to_le_bytes());
        Ok(())
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}
