//! One client connection: a reader thread (decode, authenticate, authorize, submit to the
//! runtime) and a writer thread (encode replies as the runtime releases them, write them back).
//!
//! Memory per connection is bounded: at most `in_flight_max` requests await a reply (the
//! runtime producer's window; the reader stops reading the socket while it is full). The reader
//! writes its own replies (HELLO_OK, PONG, errors) through the same locked buffered writer; the
//! writer thread blocks on the runtime's reply queue and never polls.

use std::io::{BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use journal::runtime::{
    Answer, NewCommand, Producer, Query, QueryAnswer, Replies, Reply, RequestError,
};
use std::sync::{Mutex, PoisonError};

use crate::auth::{admit, Credentials, Role};
use crate::limits::BATCH_LEN_MAX;
use crate::wire::{
    encode_account_reply, encode_error, encode_exposure_reply, encode_frame, encode_submit_reply,
    encode_tx_reply, ErrorCode, ExposureReply, FrameBuffer, HelloOk, Message, RequestId,
};

use super::metrics::Metrics;

/// Buffered bytes before a write reaches the socket.
const WRITE_BUFFER_LEN_BYTES: usize = 64 * 1024;

/// What a connection needs from the server.
pub(crate) struct Context {
    pub credentials: Arc<Credentials>,
    pub metrics: Arc<Metrics>,
    pub batch_len_max: u32,
    pub in_flight_max: u32,
    pub write_timeout_ms: u64,
}

/// The socket's write side, shared by the reader (its own replies) and the writer thread.
struct Out {
    writer: BufWriter<TcpStream>,
    /// False once a write failed (client gone, or stuck past the write timeout).
    healthy: bool,
}

type Shared = Arc<Mutex<Out>>;

fn lock(out: &Shared) -> std::sync::MutexGuard<'_, Out> {
    out.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Out {
    fn write(&mut self, frame: &[u8]) {
        if self.healthy && self.writer.write_all(frame).is_err() {
            self.fail();
        }
    }

    fn flush(&mut self) {
        if self.healthy && self.writer.flush().is_err() {
            self.fail();
        }
    }

    /// Stops the connection: the reader's next read ends, the writer keeps draining replies.
    fn fail(&mut self) {
        self.healthy = false;
        let _ = self.writer.get_ref().shutdown(Shutdown::Both);
    }
}

/// Serves one connection until the client leaves, the server shuts the socket down, or a
/// framing error closes it. Returns when both threads are done.
pub(crate) fn serve(
    stream: TcpStream,
    producer: Producer,
    replies: Replies,
    context: Arc<Context>,
) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(context.write_timeout_ms)));
    let Ok(write_half) = stream.try_clone() else { return };
    let out: Shared = Arc::new(Mutex::new(Out {
        writer: BufWriter::with_capacity(WRITE_BUFFER_LEN_BYTES, write_half),
        healthy: true,
    }));
    let writer_out = out.clone();
    let writer_context = context.clone();
    let writer = std::thread::Builder::new()
        .name("ledgerd-conn-w".into())
        .spawn(move || write_loop(&writer_out, replies, &writer_context));
    read_loop(&stream, producer, &out, &context);
    if let Ok(writer) = writer {
        let _ = writer.join();
    }
    let mut out = lock(&out);
    out.flush();
    let _ = out.writer.get_ref().shutdown(Shutdown::Both);
}

fn error_frame(
    request_id: RequestId,
    code: ErrorCode,
    message: &str,
    metrics: &Metrics,
) -> Vec<u8> {
    metrics.errors_out.fetch_add(1, Ordering::Relaxed);
    let mut out = Vec::with_capacity(64);
    encode_error(request_id, code, message, &mut out);
    out
}

/// Writes one of the reader's own replies, at once.
fn send_direct(out: &Shared, frame: Vec<u8>) {
    let mut out = lock(out);
    out.write(&frame);
    out.flush();
}

/// Writes a final reply and closes the connection.
fn close_with(out: &Shared, frame: Vec<u8>) {
    let mut out = lock(out);
    out.write(&frame);
    out.flush();
    out.fail();
}

/// Reads frames until the stream ends or must be closed. Dropping `producer` on return tells
/// the writer no new requests will come.
fn read_loop(mut stream: &TcpStream, producer: Producer, direct: &Shared, context: &Context) {
    let metrics = &*context.metrics;
    let mut buffer = FrameBuffer::new();
    let mut role: Option<Role> = None;
    loop {
        let frame = match buffer.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => match buffer.read_from(&mut stream) {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
            Err(error) => {
                let code = error.error.error_code();
                let frame = error_frame(error.request_id, code, &error.error.to_string(), metrics);
                if error.error.closes_connection() || role.is_none() {
                    close_with(direct, frame);
                    return;
                }
                send_direct(direct, frame);
                continue;
            }
        };
        metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        let request_id = frame.request_id;
        if let Err(code) = admit(role, &frame.message) {
            let message = match code {
                ErrorCode::NotAuthenticated => "send HELLO first",
                ErrorCode::Forbidden => "the client's role does not allow this request",
                _ => "not expected here",
            };
            let frame = error_frame(request_id, code, message, metrics);
            if role.is_none() || code.closes_connection() {
                close_with(direct, frame);
                return;
            }
            send_direct(direct, frame);
            continue;
        }
        match frame.message {
            Message::Hello(hello) => {
                if role.is_some() {
                    let frame = error_frame(
                        request_id,
                        ErrorCode::UnexpectedOperation,
                        "HELLO twice",
                        metrics,
                    );
                    send_direct(direct, frame);
                    continue;
                }
                match context.credentials.authenticate(&hello.client_id, &hello.secret) {
                    Some(granted) => {
                        role = Some(granted);
                        let ok = HelloOk {
                            role: granted,
                            batch_len_max: context.batch_len_max,
                            in_flight_max: context.in_flight_max,
                        };
                        let mut out = Vec::with_capacity(40);
                        if encode_frame(request_id, &Message::HelloOk(ok), &mut out).is_ok() {
                            send_direct(direct, out);
                        }
                    }
                    None => {
                        let frame = error_frame(
                            request_id,
                            ErrorCode::AuthFailed,
                            "unknown client id or wrong secret",
                            metrics,
                        );
                        close_with(direct, frame);
                        return;
                    }
                }
            }
            Message::Ping { payload } => {
                let mut out = Vec::with_capacity(32);
                if encode_frame(request_id, &Message::Pong { payload }, &mut out).is_ok() {
                    send_direct(direct, out);
                }
            }
            Message::Submit(commands) => {
                if commands.len() > context.batch_len_max as usize {
                    let message =
                        format!("{} commands; at most {}", commands.len(), context.batch_len_max);
                    send_direct(
                        direct,
                        error_frame(request_id, ErrorCode::BatchTooLarge, &message, metrics),
                    );
                    continue;
                }
                let commands: Vec<NewCommand> =
                    commands.into_iter().map(|(tx_id, body)| NewCommand { tx_id, body }).collect();
                // Blocks while this connection's window or the input ring is full: the socket
                // is not read meanwhile (backpressure reaches the client through TCP).
                if let Err(refused) = producer.submit(request_id.0, commands) {
                    if answer_refusal(direct, request_id, &refused.error, metrics) {
                        return;
                    }
                }
            }
            Message::QueryAccount(account_no) => {
                if let Err(error) = producer.query(request_id.0, Query::Account(account_no)) {
                    if answer_refusal(direct, request_id, &error, metrics) {
                        return;
                    }
                }
            }
            Message::QueryExposure(account_no) => {
                if let Err(error) = producer.query(request_id.0, Query::Exposure(account_no)) {
                    if answer_refusal(direct, request_id, &error, metrics) {
                        return;
                    }
                }
            }
            Message::QueryTx(tx_id) => {
                if let Err(error) = producer.query(request_id.0, Query::Tx(tx_id)) {
                    if answer_refusal(direct, request_id, &error, metrics) {
                        return;
                    }
                }
            }
            Message::HelloOk(_)
            | Message::Pong { .. }
            | Message::SubmitReply(_)
            | Message::Account(_)
            | Message::Tx(_)
            | Message::Exposure(_)
            | Message::Error(_) => {
                let frame = error_frame(
                    request_id,
                    ErrorCode::UnexpectedOperation,
                    "a reply op from a client",
                    metrics,
                );
                send_direct(direct, frame);
            }
        }
    }
}

/// Answers a request the runtime refused; true when the connection must close.
fn answer_refusal(
    direct: &Shared,
    request_id: RequestId,
    error: &RequestError,
    metrics: &Metrics,
) -> bool {
    let (code, close) = refusal(error);
    let frame = error_frame(request_id, code, &error.to_string(), metrics);
    if close {
        close_with(direct, frame);
    } else {
        send_direct(direct, frame);
    }
    close
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
        | RequestError::RepliesDropped => (ErrorCode::Internal, false),
    }
}

/// Writes replies as the runtime releases them, until the reader is gone (its producer
/// dropped) and every reply owed has been written: then `recv` ends.
fn write_loop(out: &Shared, replies: Replies, context: &Context) {
    let metrics = &*context.metrics;
    let mut frame = Vec::with_capacity(WRITE_BUFFER_LEN_BYTES);
    while let Some(reply) = replies.recv() {
        let mut out = lock(out);
        write_reply(&reply, &mut frame, metrics);
        out.write(&frame);
        // Coalesce whatever else is ready into the same write.
        while let Some(reply) = replies.try_recv() {
            write_reply(&reply, &mut frame, metrics);
            out.write(&frame);
        }
        out.flush();
    }
}

/// Encodes one runtime reply into `frame` (replacing its contents).
fn write_reply(reply: &Reply, frame: &mut Vec<u8>, metrics: &Metrics) {
    frame.clear();
    let request_id = RequestId(reply.token);
    let encoded = match &reply.result {
        Ok(Answer::Executed(executed)) => {
            for outcome in &executed.outcomes {
                metrics.outcome(outcome.result, outcome.duplicate);
            }
            encode_submit_reply(request_id, &executed.outcomes, frame)
        }
        Ok(Answer::Query(QueryAnswer::Account(account))) => {
            encode_account_reply(request_id, account.as_ref(), frame)
        }
        Ok(Answer::Query(QueryAnswer::Tx(tx))) => encode_tx_reply(request_id, tx.as_ref(), frame),
        Ok(Answer::Query(QueryAnswer::Exposure(found))) => {
            let reply = found.as_deref().map(|(account, exposure)| ExposureReply {
                account_no: account.account_no,
                currency: account.currency,
                scale: account.scale,
                unsettled_minor: exposure.unsettled_minor,
                exposure_minor: exposure.exposure_minor,
                exposure_max_minor: exposure.exposure_max_minor,
            });
            encode_exposure_reply(request_id, reply.as_ref(), frame)
        }
        Ok(Answer::Query(QueryAnswer::StateHash(_) | QueryAnswer::Invariants(_))) => {
            frame.clear();
            encode_error(request_id, ErrorCode::UnexpectedOperation, "not a wire query", frame);
            Ok(())
        }
        Err(error) => {
            let (code, _) = refusal(error);
            metrics.errors_out.fetch_add(1, Ordering::Relaxed);
            encode_error(request_id, code, &error.to_string(), frame);
            Ok(())
        }
    };
    if let Err(error) = encoded {
        frame.clear();
        encode_error(request_id, ErrorCode::Internal, &format!("reply encoding: {error}"), frame);
    }
}

const _: () = assert!(BATCH_LEN_MAX >= 1);
