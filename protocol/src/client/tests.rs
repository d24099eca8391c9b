//! Tests of the client against tiny fake servers: a thread on `127.0.0.1:0` that decodes frames
//! with the codec and answers from a script (canned replies, silence, garbage, disorder).

use std::net::TcpListener;
use std::thread::JoinHandle;

use engine::{AccountId, Amount, BalanceView, ResultCode, TxState};

use super::*;
use crate::auth::{Credentials, Secret};
use crate::wire::{encode_error, HelloOk};

const SECRET: &str = "0123456789abcdef-test";

fn credentials() -> ClientCredentials {
    ClientCredentials::new("tester", Secret::new(SECRET.as_bytes()).expect("secret"))
        .expect("valid")
}

fn store() -> Credentials {
    let text = format!("tester transact {SECRET}\n");
    Credentials::parse(text.as_bytes(), std::path::Path::new("test")).expect("valid")
}

fn no(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid account number")
}

fn transfer(tx: u128) -> (TxId, CommandBody) {
    let body =
        CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: Amount::minor(1, 0) };
    (TxId(tx), body)
}

/// The outcomes a fake server answers a SUBMIT with: ok, settled, three balances.
fn outcomes_for(commands: &[(TxId, CommandBody)]) -> Vec<WireOutcome> {
    let balance = |account| BalanceView {
        account: AccountId(account),
        available_minor: -1,
        frozen_minor: 2,
        ledger_minor: i128::MAX,
    };
    commands
        .iter()
        .map(|(tx_id, _)| {
            WireOutcome::new(
                *tx_id,
                ResultCode::Ok,
                false,
                Some(TxState::Settled),
                &[balance(0), balance(1), balance(2)],
            )
            .expect("3 balances")
        })
        .collect()
}

/// The server side of one connection.
struct Conn {
    stream: TcpStream,
    buffer: FrameBuffer,
}

impl Conn {
    /// The next frame; `None` when the client closed the connection (or sent garbage).
    fn recv(&mut self) -> Option<Frame> {
        loop {
            match self.buffer.next_frame() {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(_) => return None,
            }
            match self.buffer.read_from(&mut self.stream) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    fn send(&mut self, request_id: RequestId, message: &Message) {
        let mut out = Vec::new();
        encode_frame(request_id, message, &mut out).expect("encodes");
        self.send_raw(&out);
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        // The client may already have closed the connection: that is what some tests check.
        let _ = self.stream.write_all(bytes);
    }

    /// Reads HELLO, checks it against the store, and answers HELLO_OK with these limits.
    fn accept(&mut self, batch_len_max: u32, in_flight_max: u32) {
        let frame = self.recv().expect("HELLO");
        let Message::Hello(hello) = frame.message else { panic!("expected HELLO") };
        let role = store().authenticate(&hello.client_id, &hello.secret).expect("authenticated");
        let ok = HelloOk { role, batch_len_max, in_flight_max };
        self.send(frame.request_id, &Message::HelloOk(ok));
    }

    /// Answers one request the normal way.
    fn answer(&mut self, frame: Frame) {
        let reply = match frame.message {
            Message::Submit(commands) => Message::SubmitReply(outcomes_for(&commands)),
            Message::QueryAccount(_) => Message::Account(None),
            Message::QueryTx(_) => Message::Tx(None),
            Message::Ping { payload } => Message::Pong { payload },
            other => panic!("unexpected {other:?}"),
        };
        self.send(frame.request_id, &reply);
    }

    /// Waits until the client closes the connection; true if it did (and sent nothing more).
    fn client_closes(&mut self) -> bool {
        self.recv().is_none()
    }
}

/// Starts a server thread that accepts one connection and runs `script` on it.
fn serve<T: Send + 'static>(
    script: impl FnOnce(Conn) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        // A stuck test fails instead of hanging.
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        script(Conn { stream, buffer: FrameBuffer::new() })
    });
    (addr, handle)
}

fn options(request_timeout_ms: u32) -> ClientOptions {
    ClientOptions { request_timeout_ms, ..ClientOptions::default() }
}

fn connect(addr: SocketAddr, options: ClientOptions) -> Client {
    Client::connect(addr, &credentials(), options).expect("connects")
}

#[test]
fn handshake_reports_role_and_limits() {
    let (addr, server) = serve(|mut conn| {
        conn.accept(100, 4);
        conn.client_closes()
    });
    let client = connect(addr, ClientOptions { in_flight_max: 16, ..ClientOptions::default() });
    assert_eq!(
        client.session(),
        Session { role: Role::Transact, batch_len_max: 100, in_flight_max: 4 }
    );
    assert_eq!(client.peer_addr(), addr);
    client.close();
    assert!(server.join().expect("server"));
}

#[test]
fn handshake_with_a_wrong_secret_fails() {
    let (addr, server) = serve(|mut conn| {
        let frame = conn.recv().expect("HELLO");
        let Message::Hello(hello) = frame.message else { panic!("expected HELLO") };
        assert_eq!(store().authenticate(&hello.client_id, &hello.secret), None);
        let mut out = Vec::new();
        encode_error(frame.request_id, ErrorCode::AuthFailed, "bad credentials", &mut out);
        conn.send_raw(&out);
    });
    let wrong = ClientCredentials::new("tester", Secret::new(b"wrong-secret-0123456").expect("ok"))
        .expect("valid");
    let error = Client::connect(addr, &wrong, ClientOptions::default()).expect_err("refused");
    assert!(matches!(&error, ClientError::AuthFailed { message } if message == "bad credentials"));
    server.join().expect("server");
}

#[test]
fn handshake_with_a_server_that_sends_garbage_fails_cleanly() {
    let (addr, server) = serve(|mut conn| {
        conn.recv().expect("HELLO");
        conn.send_raw(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        conn.client_closes()
    });
    let error = Client::connect(addr, &credentials(), ClientOptions::default()).expect_err("bad");
    let ClientError::Handshake { reason, .. } = &error else { panic!("{error:?}") };
    assert!(reason.contains("invalid frame") && reason.contains("not with \"LDGR\""), "{reason}");
    assert!(server.join().expect("server"));
}

#[test]
fn handshake_with_a_silent_server_times_out() {
    let (addr, server) = serve(|mut conn| {
        conn.recv().expect("HELLO");
        conn.client_closes()
    });
    let started = Instant::now();
    let options = ClientOptions { connect_timeout_ms: 200, ..ClientOptions::default() };
    let error = Client::connect(addr, &credentials(), options).expect_err("times out");
    let elapsed = started.elapsed();
    assert!(matches!(&error, ClientError::Handshake { reason, .. } if reason.contains("200 ms")));
    assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(5));
    assert!(server.join().expect("server"), "the client closed the connection");
}

#[test]
fn connect_to_a_closed_port_fails() {
    let addr = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let error = Client::connect(addr, &credentials(), ClientOptions::default()).expect_err("no");
    assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
    let invalid = ClientOptions { request_timeout_ms: 0, ..ClientOptions::default() };
    let error = Client::connect(addr, &credentials(), invalid).expect_err("invalid");
    assert!(matches!(error, ClientError::InvalidOptions(_)), "{error:?}");
}

#[test]
fn submit_and_queries_return_the_replies() {
    let (addr, server) = serve(|mut conn| {
        conn.accept(8_192, 64);
        while let Some(frame) = conn.recv() {
            conn.answer(frame);
        }
    });
    let mut client = connect(addr, ClientOptions::default());
    let commands = vec![transfer(7), transfer(8), transfer(9)];
    let outcomes = client.submit(commands.clone()).expect("submitted");
    assert_eq!(outcomes, outcomes_for(&commands));
    assert_eq!(client.account(&no("alice")).expect("answered"), None);
    assert_eq!(client.tx(TxId(7)).expect("answered"), None);
    assert!(client.ping().expect("pong") < Duration::from_secs(5));
    assert_eq!(client.in_flight(), 0);
    assert!(matches!(client.recv(), Err(ClientError::NothingInFlight)));
    client.close();
    server.join().expect("server");
}

#[test]
fn pipelined_replies_out_of_order_are_matched_by_request_id() {
    let (addr, server) = serve(|mut conn| {
        conn.accept(8_192, 64);
        let frames: Vec<Frame> = (0..5).map(|_| conn.recv().expect("request")).collect();
        for frame in frames.into_iter().rev() {
            conn.answer(frame);
        }
        // Then: a blocking call overtakes a pipelined request.
        let pipelined = conn.recv().expect("SUBMIT");
        let blocking = conn.recv().expect("QUERY_ACCOUNT");
        conn.answer(pipelined);
        conn.answer(blocking);
        conn.client_closes()
    });
    let mut client = connect(addr, ClientOptions::default());
    let first = vec![transfer(1), transfer(2)];
    let ids = [
        client.send_submit(&first).expect("sent"),
        client.send_query_account(&no("alice")).expect("sent"),
        client.send_query_tx(TxId(1)).expect("sent"),
        client.send_ping().expect("sent"),
        client.send_submit(&[transfer(3)]).expect("sent"),
    ];
    assert_eq!(ids.map(|id| id.0), [2, 3, 4, 5, 6]);
    assert_eq!(client.in_flight(), 5);
    let mut received = Vec::new();
    for _ in 0..5 {
        received.push(client.recv().expect("reply"));
    }
    let expected = vec![
        (ids[4], Reply::Submitted(outcomes_for(&[transfer(3)]))),
        (ids[3], Reply::Pong),
        (ids[2], Reply::Tx(None)),
        (ids[1], Reply::Account(None)),
        (ids[0], Reply::Submitted(outcomes_for(&first))),
    ];
    assert_eq!(received, expected);

    let pipelined = client.send_submit(&[transfer(4)]).expect("sent");
    assert_eq!(client.account(&no("bob")).expect("answered"), None);
    let (id, reply) = client.recv().expect("kept for recv");
    assert_eq!((id, reply), (pipelined, Reply::Submitted(outcomes_for(&[transfer(4)]))));
    client.close();
    assert!(server.join().expect("server"));
}

#[test]
fn a_silent_server_makes_the_outcome_unknown_within_the_deadline() {
    let (addr, server) = serve(|mut conn| {
        conn.accept(8_192, 64);
        let frame = conn.recv().expect("SUBMIT");
        let closed = conn.client_closes();
        // A reply after the deadline goes nowhere: the connection is gone.
        conn.answer(frame);
        closed
    });
    let mut client = connect(addr, options(300));
    let started = Instant::now();
    let error = client.submit(vec![transfer(11), transfer(12)]).expect_err("no reply");
    let elapsed = started.elapsed();
    let ClientError::OutcomeUnknown { request_id, tx_ids, reason } = &error else {
        panic!("{error:?}")
    };
    assert_eq!((*request_id, tx_ids.as_slice()), (RequestId(2), &[TxId(11), TxId(12)][..]));
    assert!(reason.contains("within 300 ms"), "{reason}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(client.is_closed());
    assert!(matches!(client.send_ping(), Err(ClientError::Closed { .. })));
    assert!(server.join().expect("server"), "the client closed the connection");
}

#[test]
fn a_timeout_ends_every_request_in_flight() {
    let (addr, server) = serve(|mut conn| {
        conn.accept(8_192, 64);
        (0..3).for_each(|_| drop(conn.recv().expect("request")));
        conn.client_closes()
    });
    let mut client = connect(addr, options(200));
    let first = client.send_submit(&[transfer(1)]).expect("sent");
    let query = client.send_query_tx(TxId(1)).expect("sent");
    let last = client.send_submit(&[transfer(2), transfer(3)]).expect("sent");
    let results: Vec<ClientError> =
        (0..4).map(|_| client.recv().expect_err("nothing comes")).collect();
    assert!(matches!(&results[0], ClientError::OutcomeUnknown { request_id, tx_ids, .. }
            if *request_id == first && tx_ids == &[TxId(1)]));
    assert!(
        matches!(&results[1], ClientError::NoAnswer { request_id, .. } if *request_id == query)
    );
    assert!(matches!(&results[2], ClientError::OutcomeUnknown { request_id, tx_ids, .. }
            if *request_id == last && tx_ids == &[TxId(2), TxId(3)]));
    assert!(matches!(&results[3], ClientError::Closed { .. }));
    assert_eq!(
        results.iter().map(ClientError::request_id).collect::<Vec<_>>(),
        [Some(first), Some(query), Some(last), None]
    );
    assert!(server.join().expect("server"));
}

#[test]
fn garbage_after_the_handshake_makes_the_outcome_unknown() {
    let (addr, server) = serve(|mut conn| {
        conn.accept(8_192, 64);
        conn.recv().expect("SUBMIT");
        conn.recv().expect("QUERY_TX");
        conn.send_raw(&[0xAB; 64]);
        conn.client_closes()
    });
    let mut client = connect(addr, ClientOptions::default());
    client.send_submit(&[transfer(5)]).expect("sent");
    client.send_query_tx(TxId(5)).expect("sent");
    let error = client.recv().expect_err("garbage");
    let ClientError::OutcomeUnknown { reason, tx_ids, .. } = &error else { panic!("{error:?}") };
    assert!(reason.contains("invalid frame"), "{reason}");
    assert_eq!(tx_ids, &[TxId(5)]);
    assert!(matches!(client.recv(), Err(ClientError::NoAnswer { .. })));
    assert!(matches!(client.recv(), Err(ClientError::Closed { .. })));
    assert!(server.join().expect("server"));
}

#[test]
fn refusals_keep_the_connection_and_internal_errors_are_unknown_outcomes() {
    let (addr, server) = serve(|mut conn| {
        conn.accept(8_192, 64);
        for code in
            [ErrorCode::Forbidden, ErrorCode::Busy, ErrorCode::Internal, ErrorCode::Other(99)]
        {
            let frame = conn.recv().expect("SUBMIT");
            let mut out = Vec::new();
            encode_error(frame.request_id, code, "no", &mut out);
            conn.send_raw(&out);
        }
        let frame = conn.recv().expect("PING");
        conn.answer(frame);
        let frame = conn.recv().expect("QUERY_TX");
        let mut out = Vec::new();
        encode_error(frame.request_id, ErrorCode::Internal, "journal", &mut out);
        conn.send_raw(&out);
        conn.client_closes()
    });
    let mut client = connect(addr, ClientOptions::default());
    for (tx, code) in [(1, ErrorCode::Forbidden), (2, ErrorCode::Busy)] {
        let error = client.submit(vec![transfer(tx)]).expect_err("refused");
        assert!(
            matches!(&error, ClientError::Refused { code: got, message, .. }
                if *got == code && message == "no"),
            "{error:?}"
        );
    }
    for tx in [3, 4] {
        let error = client.submit(vec![transfer(tx)]).expect_err("unknown");
        assert!(
            matches!(&error, ClientError::OutcomeUnknown { tx_ids, .. } if tx_ids == &[TxId(tx)]),
            "{error:?}"
        );
    }
    client.ping().expect("still connected");
    let error = client.tx(TxId(1)).expect_err("refused");
    assert!(matches!(error, ClientError::Refused { code: ErrorCode::Internal, .. }), "{error:?}");
    assert!(!client.is_closed());
    client.close();
    assert!(server.join().expect("server"));
}

/// Two SUBMITs in flight, then a connection-level ERROR `code`: what `recv` returns for each.
fn after_connection_level_error(code: ErrorCode) -> Vec<ClientError> {
    let (addr, server) = serve(move |mut conn| {
        conn.accept(8_192, 64);
        conn.recv().expect("SUBMIT");
        conn.recv().expect("SUBMIT");
        let mut out = Vec::new();
        encode_error(RequestId::CONNECTION, code, "stopping", &mut out);
        conn.send_raw(&out);
        conn.client_closes()
    });
    let mut client = connect(addr, ClientOptions::default());
    client.send_submit(&[transfer(1)]).expect("sent");
    client.send_submit(&[transfer(2)]).expect("sent");
    let errors = (0..2).map(|_| client.recv().expect_err("lost")).collect();
    assert!(matches!(client.recv(), Err(ClientError::Closed { .. })));
    assert!(server.join().expect("server"));
    errors
}

#[test]
fn a_connection_level_error_ends_every_request_in_flight() {
    for (tx, error) in [1, 2].into_iter().zip(after_connection_level_error(ErrorCode::Internal)) {
        let ClientError::OutcomeUnknown { tx_ids, reason, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(tx_ids, &[TxId(tx)]);
        assert!(reason.contains("internal: stopping"), "{reason}");
    }
}

#[test]
fn shutting_down_means_the_requests_in_flight_were_not_executed() {
    for error in after_connection_level_error(ErrorCode::ShuttingDown) {
        assert!(
            matches!(&error, ClientError::Refused { code: ErrorCode::ShuttingDown, message, .. } if message == "stopping"),
            "{error:?}"
        );
    }
}

#[test]
fn replies_that_do_not_match_their_request_close_the_connection() {
    let (addr, server) = serve(|mut conn| {
        conn.accept(8_192, 64);
        let frame = conn.recv().expect("SUBMIT");
        let wrong = outcomes_for(&[transfer(99)]);
        conn.send(frame.request_id, &Message::SubmitReply(wrong));
        conn.client_closes()
    });
    let mut client = connect(addr, ClientOptions::default());
    let error = client.submit(vec![transfer(1)]).expect_err("mismatch");
    let ClientError::OutcomeUnknown { reason, .. } = &error else { panic!("{error:?}") };
    assert!(reason.contains("does not match"), "{reason}");
    assert!(server.join().expect("server"));

    let (addr, server) = serve(|mut conn| {
        conn.accept(8_192, 64);
        let frame = conn.recv().expect("PING");
        conn.send(RequestId(frame.request_id.0 + 100), &Message::Pong { payload: 0 });
        conn.client_closes()
    });
    let mut client = connect(addr, ClientOptions::default());
    let error = client.ping().expect_err("unknown request id");
    assert!(
        matches!(&error, ClientError::NoAnswer { reason, .. } if reason.contains("not in flight"))
    );
    assert!(server.join().expect("server"));
}

#[test]
fn requests_are_checked_before_sending() {
    let (addr, server) = serve(|mut conn| {
        conn.accept(2, 1);
        let frame = conn.recv().expect("the one valid request");
        conn.answer(frame);
        conn.client_closes()
    });
    let mut client = connect(addr, ClientOptions::default());
    let error = client.submit(vec![transfer(1), transfer(2), transfer(3)]).expect_err("too long");
    assert!(matches!(error, ClientError::BatchLen { len: 3, len_max: 2 }), "{error:?}");
    assert!(matches!(client.submit(Vec::new()), Err(ClientError::BatchLen { len: 0, .. })));
    let fine = CommandBody::Refund { original: TxId(1), amount: Amount::minor(1, 28) };
    let coarse = CommandBody::Refund { original: TxId(1), amount: Amount::minor(1, 29) };
    let error = client.submit(vec![(TxId(2), fine), (TxId(3), coarse)]).expect_err("scale");
    assert!(
        matches!(error, ClientError::Encode(EncodeError::MalformedAmount { index: 1, scale: 29 })),
        "{error:?}"
    );
    let first = client.send_ping().expect("sent");
    assert!(matches!(client.send_ping(), Err(ClientError::InFlightFull { in_flight_max: 1 })));
    assert_eq!(client.recv().expect("pong"), (first, Reply::Pong));
    client.close();
    assert!(server.join().expect("server"), "nothing invalid reached the server");
}

/// Shrinks a socket's kernel buffers, so that a test fills them with little data.
fn shrink_buffers(stream: &TcpStream, len_bytes: i32) {
    use std::os::fd::AsRawFd;
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a valid socket descriptor, and a pointer to an int with its length.
        let result = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&len_bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        assert_eq!(result, 0, "setsockopt");
    }
}

#[test]
fn a_full_pipeline_in_both_directions_does_not_deadlock() {
    // The server answers each SUBMIT before reading the next, with large replies; the client
    // writes every request before reading any reply. With small socket buffers both directions
    // fill up: the client must read replies while its writes are blocked.
    const FRAMES: u32 = 24;
    const COMMANDS: u128 = 1_000;
    let (addr, server) = serve(|mut conn| {
        shrink_buffers(&conn.stream, 32 * 1024);
        conn.accept(8_192, FRAMES);
        let mut answered = 0u32;
        while let Some(frame) = conn.recv() {
            conn.answer(frame);
            answered += 1;
        }
        answered
    });
    let mut client = connect(addr, ClientOptions { in_flight_max: FRAMES, ..options(20_000) });
    shrink_buffers(client.stream.tcp(), 32 * 1024);
    let batches: Vec<Vec<(TxId, CommandBody)>> = (0..FRAMES as u128)
        .map(|frame| (1..=COMMANDS).map(|i| transfer(frame * COMMANDS + i)).collect())
        .collect();
    let ids: Vec<RequestId> =
        batches.iter().map(|batch| client.send_submit(batch).expect("sent")).collect();
    for (id, batch) in ids.iter().zip(&batches) {
        let (got, reply) = client.recv().expect("reply");
        assert_eq!(got, *id);
        let Reply::Submitted(outcomes) = reply else { panic!("expected outcomes") };
        assert_eq!(outcomes.len(), batch.len());
        assert_eq!(outcomes.last().map(|o| o.tx_id), batch.last().map(|(tx_id, _)| *tx_id));
    }
    client.close();
    assert_eq!(server.join().expect("server"), FRAMES);
}
