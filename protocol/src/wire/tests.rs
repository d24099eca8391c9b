//! Tests of the codec: the worked examples of PROTOCOL.md byte for byte, round trips of
//! random messages, every refusal with its error code, truncation at every offset, the
//! stream buffer, and the fuzz target's checks on random and mutated input.

use engine::{
    AccountId, AccountKind, AccountLimits, AccountNo, AccountStatus, AccountView, Amount,
    BalanceView, Command, CommandBody, CurrencyCode, Effects, Engine, EngineConfig, ResultCode,
    TxId, TxKind, TxState, TxView,
};
use proptest::prelude::*;

use super::*;
use crate::limits::{
    ACCOUNT_NO_LEN_BYTES_MAX, HEADER_LEN_BYTES, IN_FLIGHT_MAX, SUBMIT_BODY_LEN_BYTES_MAX,
    SUBMIT_REPLY_BODY_LEN_BYTES_MAX,
};

const PROTOCOL_MD: &str = include_str!("../../PROTOCOL.md");

/// The bytes of the `# golden: <name>` block in PROTOCOL.md: lines `OFFSET: hex bytes | comment`.
fn golden(name: &str) -> Vec<u8> {
    let marker = format!("# golden: {name}\n");
    let start = PROTOCOL_MD.find(&marker).unwrap_or_else(|| panic!("PROTOCOL.md has no {marker}"));
    let mut bytes = Vec::new();
    for line in PROTOCOL_MD[start..].lines().skip(1).take_while(|line| !line.starts_with("```")) {
        let (offset, rest) = line.split_once(':').expect("golden lines start with `OFFSET:`");
        assert_eq!(usize::from_str_radix(offset.trim(), 16), Ok(bytes.len()), "{name}: {line}");
        let hex = rest.split('|').next().unwrap_or_default();
        for token in hex.split_whitespace() {
            bytes.push(u8::from_str_radix(token, 16).expect("golden bytes are hex"));
        }
    }
    bytes
}

fn no(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid account number")
}

fn secret(text: &str) -> Secret {
    Secret::new(text.as_bytes()).expect("valid secret")
}

const EXAMPLE_TX: TxId = TxId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);

fn example_transfer() -> CommandBody {
    CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: Amount::minor(125, 1) }
}

fn balance(account: u32, available_minor: i128, ledger_minor: i128) -> BalanceView {
    BalanceView { account: AccountId(account), available_minor, frozen_minor: 0, ledger_minor }
}

/// The worked examples of PROTOCOL.md, by golden name.
fn examples() -> Vec<(&'static str, Frame)> {
    let frame = |request_id, message| Frame { request_id: RequestId(request_id), message };
    let alice = AccountView {
        id: AccountId(0),
        account_no: no("alice"),
        user_id: 42,
        currency: CurrencyCode::new("USD").expect("code"),
        scale: 2,
        kind: AccountKind::User,
        status: AccountStatus::Active,
        available_minor: 8_750,
        frozen_minor: 0,
        ledger_minor: 8_750,
        tx_amount_max_minor: Some(100_000),
        daily_debit_max_minor: None,
    };
    let transfer = TxView {
        tx_id: EXAMPLE_TX,
        kind: TxKind::Transfer,
        result: ResultCode::Ok,
        state: Some(TxState::Settled),
        history: TxState::ALL[..6].to_vec(),
        amount_minor: 1_250,
        debit: Some(no("alice")),
        credit: Some(no("bob")),
        refunded_minor: 0,
        held_minor: 0,
        captured_minor: 0,
        linked: None,
    };
    let outcome = WireOutcome::new(
        EXAMPLE_TX,
        ResultCode::Ok,
        false,
        Some(TxState::Settled),
        &[balance(0, 8_750, 8_750), balance(1, 1_250, 1_250)],
    )
    .expect("two balances");
    vec![
        (
            "hello",
            frame(
                1,
                Message::Hello(Hello {
                    client_id: "admin".into(),
                    secret: secret("0123456789abcdef0123456789abcdef"),
                }),
            ),
        ),
        (
            "hello-ok",
            frame(
                1,
                Message::HelloOk(HelloOk {
                    role: Role::Admin,
                    batch_len_max: 1_024,
                    in_flight_max: 1_024,
                }),
            ),
        ),
        ("submit", frame(2, Message::Submit(vec![(EXAMPLE_TX, example_transfer())]))),
        ("submit-reply", frame(2, Message::SubmitReply(vec![outcome]))),
        ("query-account", frame(3, Message::QueryAccount(no("alice")))),
        ("account", frame(3, Message::Account(Some(alice)))),
        ("account-not-found", frame(3, Message::Account(None))),
        ("query-tx", frame(4, Message::QueryTx(EXAMPLE_TX))),
        ("tx", frame(4, Message::Tx(Some(transfer)))),
        (
            "error",
            frame(
                5,
                Message::Error(ErrorReply {
                    code: ErrorCode::Forbidden,
                    message: "role read may not submit transfer (command 0)".into(),
                }),
            ),
        ),
        ("ping", frame(6, Message::Ping { payload: 0x1122_3344_5566_7788 })),
        ("pong", frame(6, Message::Pong { payload: 0x1122_3344_5566_7788 })),
    ]
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(frame.request_id, &frame.message, &mut out).expect("encodes");
    out
}

#[test]
#[ignore = "prints the worked examples as hex, to write PROTOCOL.md"]
fn print_examples() {
    for (name, frame) in examples() {
        let bytes = encode(&frame);
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        println!("{name} {}", hex.join(" "));
    }
}

#[test]
fn golden_bytes_of_the_worked_examples() {
    for (name, frame) in examples() {
        let bytes = golden(name);
        assert_eq!(encode(&frame), bytes, "{name}: encoding differs from PROTOCOL.md");
        assert_eq!(decode_frame(&bytes), Ok(frame), "{name}: decoding differs");
    }
}

#[test]
fn golden_submit_body_is_the_journal_encoding_of_the_command_body() {
    // The SUBMIT entry carries exactly the bytes of FORMAT.md's command example after its
    // tx_id and timestamp: the two documents describe one encoding.
    let command = Command { tx_id: EXAMPLE_TX, timestamp_ns: 1, body: example_transfer() };
    let mut journaled = Vec::new();
    engine::encode_command(&command, &mut journaled);
    let submit = golden("submit");
    let entry_body = &submit[HEADER_LEN_BYTES as usize + 4 + 18..];
    assert_eq!(entry_body, &journaled[24..]);
}

/// Outcomes of a small real workload, with 0 to 3 balances.
fn engine_outcomes() -> Vec<engine::Outcome> {
    let mut engine = Engine::new(EngineConfig { tx_retained: 1_024, ..EngineConfig::default() });
    let mut effects = Effects::default();
    let usd = CurrencyCode::new("USD").expect("code");
    let open = |account_no: &str, kind| CommandBody::OpenAccount {
        account_no: no(account_no),
        user_id: 7,
        currency: usd,
        kind,
        limits: AccountLimits::default(),
    };
    let bodies = [
        open("bank", AccountKind::System),
        open("risk", AccountKind::Risk),
        open("alice", AccountKind::User),
        open("bob", AccountKind::User),
        CommandBody::Deposit {
            account_no: no("alice"),
            channel_no: no("bank"),
            amount: Amount::minor(10_000, 2),
        },
        CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: Amount::minor(500, 2) },
        CommandBody::Transfer { from: no("bob"), to: no("alice"), amount: Amount::minor(1, 0) },
        CommandBody::SettleFail { target: TxId(5) },
        CommandBody::Transfer { from: no("alice"), to: no("zed"), amount: Amount::minor(1, 0) },
    ];
    let mut outcomes = Vec::new();
    for (index, body) in bodies.into_iter().enumerate() {
        let command = Command {
            tx_id: TxId(index as u128 + 1),
            timestamp_ns: 1_700_000_000_000_000_000,
            body,
        };
        outcomes.push(engine.apply(&command, &mut effects));
    }
    assert!(outcomes.iter().any(|outcome| outcome.balances.as_slice().len() == 3));
    outcomes
}

#[test]
fn submit_reply_fast_path_matches_the_message_encoding() {
    let outcomes = engine_outcomes();
    let wire: Vec<WireOutcome> = outcomes.iter().map(WireOutcome::from).collect();
    for (wire, engine) in wire.iter().zip(&outcomes) {
        assert_eq!(wire, engine);
    }
    let mut fast = Vec::new();
    encode_submit_reply(RequestId(9), &outcomes, &mut fast).expect("encodes");
    let message = Message::SubmitReply(wire);
    assert_eq!(fast, encode(&Frame { request_id: RequestId(9), message: message.clone() }));
    assert_eq!(decode_frame(&fast).map(|frame| frame.message), Ok(message));
}

#[test]
fn largest_batches_fit_in_a_frame() {
    let long = |c: char| AccountNo::new(c.to_string().repeat(32).as_bytes()).expect("32 bytes");
    let big = Some(Amount::minor(i128::MAX, 28));
    let body = CommandBody::OpenAccount {
        account_no: long('a'),
        user_id: u64::MAX,
        currency: CurrencyCode::new("ABCDEFGH").expect("code"),
        kind: AccountKind::Risk,
        limits: AccountLimits { tx_amount_max: big, daily_debit_max: big, exposure_max: big },
    };
    let commands = vec![(TxId(u128::MAX), body); BATCH_LEN_MAX as usize];
    let mut out = Vec::new();
    encode_submit(RequestId(1), &commands, &mut out).expect("encodes");
    assert!(out.len() <= (HEADER_LEN_BYTES + SUBMIT_BODY_LEN_BYTES_MAX) as usize);
    assert_eq!(decode_frame(&out).map(|frame| frame.message), Ok(Message::Submit(commands)));

    let full = balance(u32::MAX, i128::MIN, i128::MAX);
    let outcome =
        WireOutcome::new(TxId(1), ResultCode::Ok, true, None, &[full; 3]).expect("3 balances");
    let message = Message::SubmitReply(vec![outcome; BATCH_LEN_MAX as usize]);
    let bytes = encode(&Frame { request_id: RequestId(1), message });
    assert_eq!(bytes.len(), (HEADER_LEN_BYTES + SUBMIT_REPLY_BODY_LEN_BYTES_MAX) as usize);
}

#[test]
fn encoders_refuse_what_decoders_refuse() {
    let mut out = vec![0xAA];
    let cases: Vec<(Message, EncodeError)> = vec![
        (Message::Submit(Vec::new()), EncodeError::BatchLen { len: 0 }),
        (
            Message::Submit(vec![(TxId(1), example_transfer()); BATCH_LEN_MAX as usize + 1]),
            EncodeError::BatchLen { len: BATCH_LEN_MAX as u64 + 1 },
        ),
        (
            Message::Submit(vec![
                (TxId(1), example_transfer()),
                (TxId(2), CommandBody::Refund { original: TxId(1), amount: Amount::minor(1, 29) }),
            ]),
            EncodeError::MalformedAmount { index: 1, scale: 29 },
        ),
        (
            Message::HelloOk(HelloOk { role: Role::Read, batch_len_max: 0, in_flight_max: 1 }),
            EncodeError::Invalid {
                what: "HELLO_OK limits: batch_len_max 1..=8192, in_flight_max 1..=65536",
            },
        ),
        (
            Message::Hello(Hello {
                client_id: "no spaces".into(),
                secret: secret("a".repeat(16).as_str()),
            }),
            EncodeError::Invalid { what: "client id: 1..=64 of A-Z a-z 0-9 . _ -" },
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(encode_frame(RequestId(1), &message, &mut out), Err(expected));
        assert_eq!(out, [0xAA], "a refused frame leaves the buffer as it was");
    }
    let ping = Message::Ping { payload: 1 };
    assert_eq!(
        encode_frame(RequestId::CONNECTION, &ping, &mut out),
        Err(EncodeError::Invalid { what: "request id 0 is only for ERROR" })
    );
}

#[test]
fn error_messages_are_cut_at_a_character_boundary() {
    let message = "é".repeat(ERROR_MESSAGE_LEN_BYTES_MAX as usize); // 2 bytes each
    let mut out = Vec::new();
    encode_error(RequestId(3), ErrorCode::Internal, &format!("x{message}"), &mut out);
    let Ok(Frame { message: Message::Error(reply), .. }) = decode_frame(&out) else {
        panic!("an ERROR frame decodes");
    };
    assert_eq!(reply.message.len(), ERROR_MESSAGE_LEN_BYTES_MAX as usize - 1);
    assert!(reply.message.starts_with("xé"));
}

/// Re-frames `body` as `op` with a correct checksum, so that only the body is under test.
fn frame_with_body(op: u8, request_id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"LDGR");
    out.push(1);
    out.push(op);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let checksum = crc32c::crc32c_append(crc32c::crc32c(&out[..20]), body);
    out.extend_from_slice(&checksum.to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn body_of(name: &str) -> Vec<u8> {
    golden(name)[HEADER_LEN_BYTES as usize..].to_vec()
}

/// The error code `bytes` decode to (and whether it closes the connection).
fn check_refused(bytes: &[u8], expected: ErrorCode) {
    let error = decode_frame(bytes).expect_err("must be refused");
    assert_eq!(error.error_code(), expected, "{error}");
    assert_eq!(error.closes_connection(), expected.closes_connection());
}

#[test]
fn header_errors_close_the_connection() {
    let good = golden("ping");
    let mutate = |offset: usize, value: u8| {
        let mut bytes = good.clone();
        bytes[offset] = value;
        bytes
    };
    check_refused(&mutate(0, b'X'), ErrorCode::MalformedFrame);
    check_refused(&mutate(4, 2), ErrorCode::UnsupportedVersion);
    check_refused(&mutate(6, 1), ErrorCode::MalformedFrame);
    check_refused(&mutate(23, 0), ErrorCode::MalformedFrame); // checksum
    check_refused(&mutate(30, 0), ErrorCode::MalformedFrame); // body byte: checksum
    let mut too_large = good.clone();
    too_large[16..20].copy_from_slice(&(BODY_LEN_BYTES_MAX + 1).to_le_bytes());
    check_refused(&too_large, ErrorCode::FrameTooLarge);
    check_refused(&frame_with_body(Op::Ping as u8, 0, &[0; 8]), ErrorCode::MalformedFrame);
    // An ERROR may carry request id 0: a connection-level error.
    let mut connection_error = Vec::new();
    encode_error(RequestId::CONNECTION, ErrorCode::ShuttingDown, "bye", &mut connection_error);
    assert!(decode_frame(&connection_error).is_ok());
}

#[test]
fn body_errors_are_answered_with_their_code() {
    let submit_body = |count: u32, entries: &[u8]| {
        let mut body = count.to_le_bytes().to_vec();
        body.extend_from_slice(entries);
        frame_with_body(Op::Submit as u8, 2, &body)
    };
    let entry = body_of("submit")[4..].to_vec();
    let mut bad_utf8 = entry.clone();
    bad_utf8[23] = 0xFF; // inside "alice"
    let mut control = entry.clone();
    control[23] = b'\n';
    let mut long_no = entry.clone();
    long_no[22] = 33;
    let mut scale = entry.clone();
    let last = scale.len() - 1;
    scale[last] = 29;
    let mut variant = entry.clone();
    variant[18] = 14;
    let mut body_len = entry.clone();
    body_len[16] = 0;
    let mut query_bad_utf8 = body_of("query-account");
    query_bad_utf8[1] = 0xC3;
    let hello = body_of("hello");
    let mut short_secret = hello[..7].to_vec();
    short_secret.push(15);
    short_secret.extend_from_slice(&[b'x'; 15]);
    let mut space_secret = hello.clone();
    space_secret[10] = b' ';
    let mut error_utf8 = body_of("error");
    error_utf8[5] = 0xFF;

    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (frame_with_body(0x09, 1, &[]), ErrorCode::UnknownOperation),
        (frame_with_body(0x80, 1, &[]), ErrorCode::UnknownOperation),
        (submit_body(0, &[]), ErrorCode::MalformedBody),
        (submit_body(BATCH_LEN_MAX + 1, &[]), ErrorCode::BatchTooLarge),
        (submit_body(2, &entry), ErrorCode::MalformedBody), // truncated, checked before allocating
        (submit_body(1, &bad_utf8), ErrorCode::BadAccountNo),
        (submit_body(1, &control), ErrorCode::BadAccountNo),
        (submit_body(1, &long_no), ErrorCode::BadAccountNo),
        (submit_body(1, &scale), ErrorCode::MalformedAmount),
        (submit_body(1, &variant), ErrorCode::MalformedBody),
        (submit_body(1, &body_len), ErrorCode::MalformedBody),
        (frame_with_body(Op::QueryAccount as u8, 3, &query_bad_utf8), ErrorCode::BadAccountNo),
        (frame_with_body(Op::QueryAccount as u8, 3, &[0]), ErrorCode::BadAccountNo),
        (frame_with_body(Op::Hello as u8, 1, &short_secret), ErrorCode::MalformedBody),
        (frame_with_body(Op::Hello as u8, 1, &space_secret), ErrorCode::MalformedBody),
        (frame_with_body(Op::Ping as u8, 1, &[0; 9]), ErrorCode::MalformedBody),
        (frame_with_body(Op::Account as u8, 1, &[2]), ErrorCode::MalformedBody),
        (frame_with_body(Op::Tx as u8, 1, &[1, 0]), ErrorCode::MalformedBody),
        (frame_with_body(Op::Error as u8, 1, &error_utf8), ErrorCode::MalformedBody),
    ];
    for (bytes, expected) in cases {
        check_refused(&bytes, expected);
    }
}

#[test]
fn every_truncation_is_refused() {
    for (name, _) in examples() {
        let bytes = golden(name);
        for len in 0..bytes.len() {
            let error = decode_frame(&bytes[..len]).expect_err("a prefix is not a frame");
            assert!(matches!(error, DecodeError::Incomplete { .. }), "{name}[..{len}]: {error}");
            // The same prefix of the body, framed with a correct length and checksum.
            if len >= HEADER_LEN_BYTES as usize {
                let short = frame_with_body(bytes[5], 7, &bytes[HEADER_LEN_BYTES as usize..len]);
                let error = decode_frame(&short).expect_err("a truncated body is refused");
                assert!(!error.closes_connection(), "{name} body[..{len}]: {error}");
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode_frame(&longer), Err(DecodeError::TrailingBytes { .. })));
        let trailing = frame_with_body(bytes[5], 7, &longer[HEADER_LEN_BYTES as usize..]);
        assert!(matches!(decode_frame(&trailing), Err(DecodeError::TrailingBytes { .. })));
    }
}

#[test]
fn frame_buffer_splits_a_stream_fed_byte_by_byte() {
    let mut stream = Vec::new();
    let frames: Vec<Frame> = examples().into_iter().map(|(_, frame)| frame).collect();
    for frame in &frames {
        stream.extend(encode(frame));
    }
    let mut buffer = FrameBuffer::new();
    let mut decoded = Vec::new();
    for byte in &stream {
        buffer.extend_from_slice(std::slice::from_ref(byte));
        while let Some(frame) = buffer.next_frame().expect("valid stream") {
            decoded.push(frame);
        }
    }
    assert_eq!(decoded, frames);
    assert_eq!(buffer.buffered_len_bytes(), 0);
}

#[test]
fn frame_buffer_skips_a_bad_body_and_stops_at_a_bad_header() {
    let mut buffer = FrameBuffer::new();
    buffer.extend_from_slice(&frame_with_body(0x09, 41, &[1, 2, 3]));
    buffer.extend_from_slice(&golden("ping"));
    let error = buffer.next_frame().expect_err("unknown op");
    assert_eq!(error.request_id, RequestId(41));
    assert_eq!(error.error, DecodeError::UnknownOperation { op: 9 });
    assert!(matches!(buffer.next_frame(), Ok(Some(Frame { request_id: RequestId(6), .. }))));

    buffer.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let error = buffer.next_frame().expect_err("not a frame");
    assert_eq!(error.request_id, RequestId::CONNECTION);
    assert!(error.error.closes_connection());
    let buffered = buffer.buffered_len_bytes();
    assert!(buffer.next_frame().is_err());
    assert_eq!(buffer.buffered_len_bytes(), buffered, "a header error consumes nothing");
}

#[test]
fn frame_buffer_reads_a_large_frame_in_chunks() {
    let commands = vec![(TxId(1), example_transfer()); 4_000];
    let mut frame = Vec::new();
    encode_submit(RequestId(8), &commands, &mut frame).expect("encodes");
    let mut buffer = FrameBuffer::new();
    let mut reader = std::io::Cursor::new(frame.clone());
    let mut reads = 0;
    let decoded = loop {
        if let Some(frame) = buffer.next_frame().expect("valid") {
            break frame;
        }
        assert!(buffer.read_from(&mut reader).expect("in memory") > 0);
        reads += 1;
    };
    assert_eq!(decoded.message, Message::Submit(commands));
    assert_eq!(reads, frame.len().div_ceil(crate::limits::READ_CHUNK_LEN_BYTES as usize));
    assert_eq!(buffer.buffered_len_bytes(), 0);
}

#[test]
fn fuzz_check_accepts_the_worked_examples_and_their_mutations() {
    let mut stream = Vec::new();
    for (name, _) in examples() {
        let bytes = golden(name);
        fuzz::decode_frame_roundtrip(&bytes);
        stream.extend_from_slice(&bytes);
        for index in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut mutated = bytes.clone();
                mutated[index] ^= flip;
                fuzz::decode_frame_roundtrip(&mutated);
            }
        }
    }
    fuzz::decode_frame_roundtrip(&stream);
}

#[test]
fn limits_in_protocol_md_match_the_code() {
    use crate::limits::*;
    let expected: [(&str, u64); 16] = [
        ("HEADER_LEN_BYTES", HEADER_LEN_BYTES as u64),
        ("BODY_LEN_BYTES_MAX", BODY_LEN_BYTES_MAX as u64),
        ("FRAME_LEN_BYTES_MAX", FRAME_LEN_BYTES_MAX as u64),
        ("BATCH_LEN_MAX", BATCH_LEN_MAX as u64),
        ("COMMAND_BODY_LEN_BYTES_MAX", COMMAND_BODY_LEN_BYTES_MAX as u64),
        ("SUBMIT_BODY_LEN_BYTES_MAX", SUBMIT_BODY_LEN_BYTES_MAX as u64),
        ("OUTCOME_LEN_BYTES_MAX", OUTCOME_LEN_BYTES_MAX as u64),
        ("SUBMIT_REPLY_BODY_LEN_BYTES_MAX", SUBMIT_REPLY_BODY_LEN_BYTES_MAX as u64),
        ("ACCOUNT_NO_LEN_BYTES_MAX", ACCOUNT_NO_LEN_BYTES_MAX as u64),
        ("CLIENT_ID_LEN_BYTES_MAX", CLIENT_ID_LEN_BYTES_MAX as u64),
        ("SECRET_LEN_BYTES_MIN", SECRET_LEN_BYTES_MIN as u64),
        ("SECRET_LEN_BYTES_MAX", SECRET_LEN_BYTES_MAX as u64),
        ("ERROR_MESSAGE_LEN_BYTES_MAX", ERROR_MESSAGE_LEN_BYTES_MAX as u64),
        ("AMOUNT_SCALE_MAX", AMOUNT_SCALE_MAX as u64),
        ("IN_FLIGHT_MAX", IN_FLIGHT_MAX as u64),
        ("CREDENTIALS_ENTRIES_MAX", CREDENTIALS_ENTRIES_MAX as u64),
    ];
    for (name, value) in expected {
        let row = PROTOCOL_MD
            .lines()
            .find(|line| line.starts_with(&format!("| `{name}`")))
            .unwrap_or_else(|| panic!("PROTOCOL.md's limits table has no row for {name}"));
        let documented: String = row
            .split('|')
            .nth(2)
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        assert_eq!(documented.parse::<u64>().ok(), Some(value), "{row}");
    }
}

#[test]
fn error_codes_in_protocol_md_match_the_code() {
    for code in ErrorCode::KNOWN {
        let row = format!("| {} | `{}` |", code.as_u16(), code.name());
        let line = PROTOCOL_MD
            .lines()
            .find(|line| line.starts_with(&row))
            .unwrap_or_else(|| panic!("PROTOCOL.md's error table has no row {row}"));
        let closes = if code.closes_connection() { "closes" } else { "stays open" };
        assert!(line.contains(closes), "{line}: expected `{closes}`");
        let executed = if code.outcome_unknown() { "unknown" } else { "nothing" };
        assert!(line.contains(executed), "{line}: expected `{executed}`");
    }
    assert_eq!(ErrorCode::from_u16(0), ErrorCode::Other(0));
    assert_eq!(ErrorCode::from_u16(900).as_u16(), 900);
}

#[test]
fn ops_roundtrip_and_mark_direction() {
    for op in Op::ALL {
        assert_eq!(Op::from_u8(op as u8), Some(op));
        assert!(PROTOCOL_MD.contains(&format!("| `{:#04x}` | {} |", op as u8, op.name())), "{op}");
    }
    assert!(Op::Submit.is_request() && !Op::SubmitReply.is_request() && !Op::Error.is_request());
}

// ---- property tests ----

fn account_no_strategy() -> impl Strategy<Value = AccountNo> {
    prop_oneof![
        "[a-zA-Z0-9_-]{1,32}",
        // Multi-byte UTF-8 (at most 32 bytes: 10 chars of up to 3 bytes).
        "[a-zé€中]{1,10}",
    ]
    .prop_map(|text| no(&text))
}

fn currency_strategy() -> impl Strategy<Value = CurrencyCode> {
    "[A-Z0-9]{3,8}".prop_map(|text| CurrencyCode::new(&text).expect("valid code"))
}

fn amount_strategy() -> impl Strategy<Value = Amount> {
    (any::<i128>(), 0..=AMOUNT_SCALE_MAX).prop_map(|(mantissa, scale)| Amount { mantissa, scale })
}

fn limits_strategy() -> impl Strategy<Value = AccountLimits> {
    let limit = || proptest::option::of(amount_strategy());
    (limit(), limit(), limit()).prop_map(|(tx_amount_max, daily_debit_max, exposure_max)| {
        AccountLimits { tx_amount_max, daily_debit_max, exposure_max }
    })
}

fn tx_id_strategy() -> impl Strategy<Value = TxId> {
    any::<u128>().prop_map(TxId)
}

/// A SUBMIT entry's `tx_id`: never 0.
fn entry_tx_id_strategy() -> impl Strategy<Value = TxId> {
    (1..=u128::MAX).prop_map(TxId)
}

/// What a frame decodes to after encoding: the same, with a SUBMIT's amounts canonical.
fn canonical(frame: &Frame) -> Frame {
    let message = match &frame.message {
        Message::Submit(commands) => Message::Submit(
            commands.iter().map(|(tx_id, body)| (*tx_id, rules::canonical_body(body))).collect(),
        ),
        other => other.clone(),
    };
    Frame { request_id: frame.request_id, message }
}

fn kind_strategy() -> impl Strategy<Value = AccountKind> {
    prop_oneof![Just(AccountKind::User), Just(AccountKind::System), Just(AccountKind::Risk)]
}

fn status_strategy() -> impl Strategy<Value = AccountStatus> {
    prop_oneof![
        Just(AccountStatus::Active),
        Just(AccountStatus::DebitFrozen),
        Just(AccountStatus::Closed)
    ]
}

fn command_strategy() -> impl Strategy<Value = CommandBody> {
    let no = account_no_strategy;
    prop_oneof![
        (currency_strategy(), any::<u8>())
            .prop_map(|(code, scale)| CommandBody::DefineCurrency { code, scale }),
        (no(), any::<u64>(), currency_strategy(), kind_strategy(), limits_strategy()).prop_map(
            |(account_no, user_id, currency, kind, limits)| CommandBody::OpenAccount {
                account_no,
                user_id,
                currency,
                kind,
                limits
            }
        ),
        (no(), status_strategy())
            .prop_map(|(account_no, status)| CommandBody::SetAccountStatus { account_no, status }),
        (no(), limits_strategy())
            .prop_map(|(account_no, limits)| CommandBody::SetAccountLimits { account_no, limits }),
        (no(), no(), amount_strategy()).prop_map(|(account_no, channel_no, amount)| {
            CommandBody::Deposit { account_no, channel_no, amount }
        }),
        (no(), no(), amount_strategy()).prop_map(|(account_no, channel_no, amount)| {
            CommandBody::Withdraw { account_no, channel_no, amount }
        }),
        (no(), no(), amount_strategy()).prop_map(|(from, to, amount)| CommandBody::Transfer {
            from,
            to,
            amount
        }),
        (no(), amount_strategy(), proptest::option::of(any::<u64>())).prop_map(
            |(account_no, amount, expires_ns)| CommandBody::Freeze {
                account_no,
                amount,
                expires_ns
            }
        ),
        tx_id_strategy().prop_map(|hold| CommandBody::Unfreeze { hold }),
        (tx_id_strategy(), no(), amount_strategy())
            .prop_map(|(hold, to, amount)| CommandBody::Capture { hold, to, amount }),
        tx_id_strategy().prop_map(|target| CommandBody::SettleBegin { target }),
        tx_id_strategy().prop_map(|target| CommandBody::SettleConfirm { target }),
        tx_id_strategy().prop_map(|target| CommandBody::SettleFail { target }),
        (tx_id_strategy(), amount_strategy())
            .prop_map(|(original, amount)| CommandBody::Refund { original, amount }),
    ]
}

fn tx_state_strategy() -> impl Strategy<Value = TxState> {
    proptest::sample::select(TxState::ALL.to_vec())
}

fn result_strategy() -> impl Strategy<Value = ResultCode> {
    proptest::sample::select(ResultCode::ALL.to_vec())
}

fn outcome_strategy() -> impl Strategy<Value = WireOutcome> {
    let balance = (any::<u32>(), any::<i128>(), any::<i128>(), any::<i128>()).prop_map(
        |(account, available_minor, frozen_minor, ledger_minor)| BalanceView {
            account: AccountId(account),
            available_minor,
            frozen_minor,
            ledger_minor,
        },
    );
    (
        tx_id_strategy(),
        result_strategy(),
        any::<bool>(),
        proptest::option::of(tx_state_strategy()),
        proptest::collection::vec(balance, 0..=3),
    )
        .prop_map(|(tx_id, result, duplicate, tx_state, balances)| {
            WireOutcome::new(tx_id, result, duplicate, tx_state, &balances).expect("at most 3")
        })
}

fn account_view_strategy() -> impl Strategy<Value = AccountView> {
    (
        (any::<u32>(), account_no_strategy(), any::<u64>(), currency_strategy(), any::<u8>()),
        (kind_strategy(), status_strategy()),
        (any::<i128>(), any::<i128>(), any::<i128>()),
        (proptest::option::of(any::<i128>()), proptest::option::of(any::<i128>())),
    )
        .prop_map(
            |(
                (id, account_no, user_id, currency, scale),
                (kind, status),
                (available_minor, frozen_minor, ledger_minor),
                (tx_amount_max_minor, daily_debit_max_minor),
            )| AccountView {
                id: AccountId(id),
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
            },
        )
}

fn tx_view_strategy() -> impl Strategy<Value = TxView> {
    (
        (tx_id_strategy(), proptest::sample::select(TxKind::ALL.to_vec()), result_strategy()),
        (
            proptest::option::of(tx_state_strategy()),
            proptest::collection::vec(tx_state_strategy(), 0..=8),
        ),
        (any::<i128>(), any::<i128>(), any::<i128>(), any::<i128>()),
        (
            proptest::option::of(account_no_strategy()),
            proptest::option::of(account_no_strategy()),
            proptest::option::of(tx_id_strategy()),
        ),
    )
        .prop_map(
            |(
                (tx_id, kind, result),
                (state, history),
                (amount_minor, refunded_minor, held_minor, captured_minor),
                (debit, credit, linked),
            )| TxView {
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
            },
        )
}

fn exposure_strategy() -> impl Strategy<Value = ExposureReply> {
    (
        account_no_strategy(),
        currency_strategy(),
        0..=8u8,
        any::<i128>(),
        any::<i128>(),
        proptest::option::of(any::<i128>()),
    )
        .prop_map(|(account_no, currency, scale, unsettled_minor, exposure_minor, max)| {
            ExposureReply {
                account_no,
                currency,
                scale,
                unsettled_minor,
                exposure_minor,
                exposure_max_minor: max,
            }
        })
}

fn message_strategy() -> impl Strategy<Value = Message> {
    let client_id = "[A-Za-z0-9._-]{1,64}";
    let secret_text = "[!-~]{16,128}";
    prop_oneof![
        (client_id, secret_text).prop_map(|(client_id, text)| Message::Hello(Hello {
            client_id,
            secret: secret(&text),
        })),
        (proptest::sample::select(Role::ALL.to_vec()), 1..=BATCH_LEN_MAX, 1..=IN_FLIGHT_MAX)
            .prop_map(|(role, batch_len_max, in_flight_max)| Message::HelloOk(HelloOk {
                role,
                batch_len_max,
                in_flight_max
            })),
        any::<u64>().prop_map(|payload| Message::Ping { payload }),
        any::<u64>().prop_map(|payload| Message::Pong { payload }),
        proptest::collection::vec((entry_tx_id_strategy(), command_strategy()), 1..20)
            .prop_map(Message::Submit),
        proptest::collection::vec(outcome_strategy(), 1..20).prop_map(Message::SubmitReply),
        account_no_strategy().prop_map(Message::QueryAccount),
        proptest::option::of(account_view_strategy()).prop_map(Message::Account),
        tx_id_strategy().prop_map(Message::QueryTx),
        proptest::option::of(tx_view_strategy()).prop_map(Message::Tx),
        account_no_strategy().prop_map(Message::QueryExposure),
        proptest::option::of(exposure_strategy()).prop_map(Message::Exposure),
        (any::<u16>(), "\\PC{0,100}").prop_map(|(code, message)| Message::Error(ErrorReply {
            code: ErrorCode::from_u16(code),
            message
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_roundtrip(request_id in 1..u64::MAX, message in message_strategy()) {
        let sent = Frame { request_id: RequestId(request_id), message };
        let bytes = encode(&sent);
        let frame = canonical(&sent);
        prop_assert_eq!(decode_frame(&bytes), Ok(frame.clone()));
        // The same bytes split at any point come out of the stream buffer whole.
        let mut buffer = FrameBuffer::new();
        let split = (request_id as usize) % bytes.len();
        buffer.extend_from_slice(&bytes[..split]);
        prop_assert_eq!(buffer.next_frame(), Ok(None));
        buffer.extend_from_slice(&bytes[split..]);
        prop_assert_eq!(buffer.next_frame(), Ok(Some(frame)));
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzz::decode_frame_roundtrip(&data);
        let mut framed = b"LDGR\x01".to_vec();
        framed.extend_from_slice(&data);
        fuzz::decode_frame_roundtrip(&framed);
    }

    #[test]
    fn mutated_frames_never_panic(
        message in message_strategy(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&Frame { request_id: RequestId(5), message });
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        fuzz::decode_frame_roundtrip(&bytes);
    }
}

#[test]
fn account_numbers_of_every_length_roundtrip() {
    for len in 1..=ACCOUNT_NO_LEN_BYTES_MAX as usize {
        let account_no = no(&"n".repeat(len));
        let frame = Frame { request_id: RequestId(1), message: Message::QueryAccount(account_no) };
        assert_eq!(decode_frame(&encode(&frame)), Ok(frame));
    }
}

/// What a server's `next_request` says about `bytes` under `rules`: the error code, whether
/// the connection closes, the request id of the ERROR and its message.
fn request_refusal(bytes: &[u8], rules: RequestRules) -> (ErrorCode, bool, u64, String) {
    let mut buffer = FrameBuffer::new();
    buffer.extend_from_slice(bytes);
    let error = buffer.next_request(rules).expect_err("refused");
    let code = error.error.error_code();
    (code, error.error.closes_connection(), error.request_id.0, error.error.to_string())
}

const AUTHENTICATED: RequestRules = RequestRules { authenticated: true, batch_len_max: 1_024 };
const ANONYMOUS: RequestRules = RequestRules { authenticated: false, batch_len_max: 1_024 };

#[test]
fn a_server_checks_a_request_in_the_documented_order() {
    use ErrorCode::*;
    let ping = frame_with_body(Op::Ping as u8, 9, &[0; 8]);
    let mut bad_checksum = ping.clone();
    bad_checksum[23] ^= 1;
    let error_body = body_of("error");
    // A SUBMIT announcing 2 000 commands with one entry: the count is checked first.
    let mut short_submit = 2_000u32.to_le_bytes().to_vec();
    short_submit.extend_from_slice(&body_of("submit")[4..]);
    // (frame, rules, (code, closes, request id of the ERROR))
    type Case = (Vec<u8>, RequestRules, (ErrorCode, bool, u64));
    let cases: Vec<Case> = vec![
        (bad_checksum, AUTHENTICATED, (MalformedFrame, true, 0)),
        // From a client, request id 0 is malformed on every op, ERROR included.
        (
            frame_with_body(Op::Error as u8, 0, &error_body),
            AUTHENTICATED,
            (MalformedFrame, true, 0),
        ),
        (frame_with_body(Op::Error as u8, 0, &error_body), ANONYMOUS, (MalformedFrame, true, 0)),
        // Before HELLO: anything but HELLO and PING, known or not, whatever the body.
        (frame_with_body(0x09, 3, &[]), ANONYMOUS, (NotAuthenticated, true, 3)),
        (frame_with_body(Op::QueryTx as u8, 3, &[1]), ANONYMOUS, (NotAuthenticated, true, 3)),
        (frame_with_body(Op::Pong as u8, 3, &[]), ANONYMOUS, (NotAuthenticated, true, 3)),
        (frame_with_body(Op::Ping as u8, 3, &[0; 9]), ANONYMOUS, (MalformedBody, false, 3)),
        // Then the op: unknown, a reply op whatever its body, HELLO again.
        (frame_with_body(0x09, 4, &[]), AUTHENTICATED, (UnknownOperation, false, 4)),
        (
            frame_with_body(Op::Pong as u8, 4, &[1, 2]),
            AUTHENTICATED,
            (UnexpectedOperation, false, 4),
        ),
        (
            frame_with_body(Op::Error as u8, 4, &error_body),
            AUTHENTICATED,
            (UnexpectedOperation, false, 4),
        ),
        (golden("hello"), AUTHENTICATED, (UnexpectedOperation, false, 1)),
        // Then the body: a SUBMIT's count against the announced batch_len_max first.
        (
            frame_with_body(Op::Submit as u8, 5, &short_submit),
            AUTHENTICATED,
            (BatchTooLarge, false, 5),
        ),
        (
            frame_with_body(Op::Submit as u8, 5, &short_submit),
            RequestRules { authenticated: true, batch_len_max: 8_192 },
            (MalformedBody, false, 5),
        ),
    ];
    for (bytes, rules, expected) in cases {
        let (code, closes, request_id, message) = request_refusal(&bytes, rules);
        assert_eq!((code, closes, request_id), expected, "{message}");
    }
    // What passes every check decodes as usual.
    let mut buffer = FrameBuffer::new();
    buffer.extend_from_slice(&golden("submit"));
    buffer.extend_from_slice(&golden("hello"));
    assert!(matches!(buffer.next_request(AUTHENTICATED), Ok(Some(_))));
    assert!(matches!(buffer.next_request(ANONYMOUS), Ok(Some(_))));
}

/// A SUBMIT of `body` under `tx_id`, framed without the encoder's checks.
fn raw_submit(tx_id: u128, body: &CommandBody) -> Vec<u8> {
    let mut command = Vec::new();
    bincode::encode_into_std_write(body, &mut command, engine::COMMAND_CODEC).expect("encodes");
    let mut entries = 1u32.to_le_bytes().to_vec();
    entries.extend_from_slice(&tx_id.to_le_bytes());
    entries.extend_from_slice(&(command.len() as u16).to_le_bytes());
    entries.extend_from_slice(&command);
    frame_with_body(Op::Submit as u8, 2, &entries)
}

#[test]
fn submit_entries_keep_the_wire_rules() {
    use ErrorCode::*;
    let transfer = |from: &str, mantissa: i128, scale: u8| CommandBody::Transfer {
        from: no(from),
        to: no("bob"),
        amount: Amount { mantissa, scale },
    };
    let cases: Vec<(u128, CommandBody, ErrorCode, &str)> = vec![
        (0, transfer("alice", 125, 1), MalformedBody, "tx_id 0 is reserved"),
        (1, transfer("alice", 1250, 2), MalformedAmount, "its one encoding is 125 × 10^-1"),
        (1, transfer("alice", 0, 2), MalformedAmount, "its one encoding is 0 × 10^-0"),
        (1, transfer("alice", 1, 29), MalformedAmount, "scale 29 is above 28"),
        (1, transfer("al\u{a0}ice", 1, 0), BadAccountNo, "contains U+00A0"),
        (1, transfer(" alice", 1, 0), BadAccountNo, "contains U+0020"),
        (1, transfer("ali\u{200b}ce", 1, 0), BadAccountNo, "contains U+200B"),
    ];
    for (tx_id, body, code, words) in cases {
        let (got, closes, _, message) = request_refusal(&raw_submit(tx_id, &body), AUTHENTICATED);
        assert_eq!((got, closes), (code, false), "{message}");
        assert!(message.contains(words), "{message:?} should say {words:?}");
        // The encoder never writes such an entry.
        let refused = encode_submit(RequestId(2), &[(TxId(tx_id), body)], &mut Vec::new());
        assert_eq!(
            refused.is_err(),
            code != MalformedAmount || words.contains("scale"),
            "{body:?}"
        );
    }
    // It writes amounts in their canonical form instead: the same value.
    let mut out = Vec::new();
    encode_submit(RequestId(2), &[(EXAMPLE_TX, transfer("alice", 12_500, 3))], &mut out)
        .expect("encodes");
    assert_eq!(out, golden("submit"), "12.500 goes out as the worked example's 12.5");
    let query = frame_with_body(Op::QueryAccount as u8, 3, b"\x06alice ");
    assert_eq!(request_refusal(&query, AUTHENTICATED).0, BadAccountNo);
    let query = Message::QueryExposure(no("bob\u{2028}"));
    assert!(matches!(
        encode_frame(RequestId(3), &query, &mut Vec::new()),
        Err(EncodeError::BadAccountNo { index: None, .. })
    ));
}

#[test]
fn error_messages_are_words_not_rust_debug_text() {
    let entry = body_of("submit")[4..].to_vec();
    let mut variant = entry.clone();
    variant[18] = 99; // CommandBody variant
    let mut option_tag = raw_submit(
        1,
        &CommandBody::Freeze {
            account_no: no("alice"),
            amount: Amount::minor(1, 0),
            expires_ns: None,
        },
    );
    let last = option_tag.len() - 1;
    option_tag[last] = 7; // the Option tag of expires_ns
    let option_tag = frame_with_body(Op::Submit as u8, 2, &option_tag[HEADER_LEN_BYTES as usize..]);
    let mut long_no = entry.clone();
    long_no[22] = 33;
    let submit = |entries: &[u8]| {
        let mut body = 1u32.to_le_bytes().to_vec();
        body.extend_from_slice(entries);
        frame_with_body(Op::Submit as u8, 2, &body)
    };
    let frames = [
        submit(&variant),
        option_tag,
        submit(&long_no),
        submit(&entry[..entry.len() - 3]),
        frame_with_body(Op::QueryAccount as u8, 3, &[0]),
        frame_with_body(0x42, 3, &[]),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    for bytes in frames {
        let message = if bytes.starts_with(b"LDGR") {
            request_refusal(&bytes, AUTHENTICATED).3
        } else {
            let mut buffer = FrameBuffer::new();
            buffer.extend_from_slice(&bytes);
            buffer.next_request(AUTHENTICATED).expect_err("not a frame").error.to_string()
        };
        let debug_text = ["{", "}", "::", "[", "Some(", "None"];
        assert!(!debug_text.iter().any(|text| message.contains(text)), "{message:?}");
    }
}

/// The state transfer's four messages: each round-trips, every truncation is refused, and
/// what the decoder refuses the encoder refuses too.
#[test]
fn state_transfer_messages_round_trip_and_refuse_bad_fields() {
    let snapshot = StateFile { kind: StateFileKind::Snapshot, id: 0 };
    let segment = StateFile { kind: StateFileKind::Segment, id: 4_711 };
    let messages = [
        Message::StateOffer { through_seq: 9_000 },
        Message::StateRead(StateRead { file: segment, offset: 64, len_max: 1 << 20 }),
        Message::StateFiles(StateFiles {
            snapshot_seq: 4_710,
            snapshot_len_bytes: 1_234,
            segments: vec![(1, 268_435_456), (4_711, 96)],
        }),
        Message::StateChunk(StateChunk {
            file: snapshot,
            offset: 10,
            file_len_bytes: 13,
            data: vec![1, 2, 3],
        }),
    ];
    for message in messages {
        let frame = Frame { request_id: RequestId(5), message };
        let bytes = encode(&frame);
        assert_eq!(decode_frame(&bytes), Ok(frame.clone()), "{:?}", frame.message.op());
        for len in HEADER_LEN_BYTES as usize..bytes.len() {
            let short = frame_with_body(bytes[5], 5, &bytes[HEADER_LEN_BYTES as usize..len]);
            assert!(decode_frame(&short).is_err(), "{:?} body[..{len}]", frame.message.op());
        }
    }
    let refused = |message: Message| {
        let mut out = Vec::new();
        assert!(encode_frame(RequestId(5), &message, &mut out).is_err(), "{message:?}");
        assert!(out.is_empty(), "a refused encoding leaves nothing");
    };
    refused(Message::StateOffer { through_seq: 0 });
    refused(Message::StateRead(StateRead { file: segment, offset: 0, len_max: 0 }));
    refused(Message::StateRead(StateRead { file: segment, offset: 0, len_max: (1 << 20) + 1 }));
    let segment_zero = StateFile { kind: StateFileKind::Segment, id: 0 };
    refused(Message::StateRead(StateRead { file: segment_zero, offset: 0, len_max: 1 }));
    let files = |segments: Vec<(u64, u64)>| {
        Message::StateFiles(StateFiles { snapshot_seq: 0, snapshot_len_bytes: 0, segments })
    };
    refused(files(vec![]));
    refused(files(vec![(5, 1), (5, 1)]));
    refused(files(vec![(0, 1)]));
    let chunk = |offset: u64, file_len_bytes: u64| {
        Message::StateChunk(StateChunk { file: snapshot, offset, file_len_bytes, data: vec![0; 4] })
    };
    refused(chunk(10, 13));
    refused(chunk(u64::MAX, u64::MAX));
    // The decoder's side of the same rules, on hand-made bodies.
    let cases: Vec<(u8, Vec<u8>)> = vec![
        (Op::StateOffer as u8, 0u64.to_le_bytes().to_vec()),
        (Op::StateRead as u8, [vec![3], 1u64.to_le_bytes().to_vec(), vec![0; 12]].concat()),
        (
            Op::StateRead as u8,
            [vec![2], 0u64.to_le_bytes().to_vec(), vec![0; 8], 1u32.to_le_bytes().to_vec()]
                .concat(),
        ),
        (
            Op::StateFiles as u8,
            [
                vec![0; 16],
                2u32.to_le_bytes().to_vec(),
                [9u64, 1, 9, 1].map(u64::to_le_bytes).concat(),
            ]
            .concat(),
        ),
        (
            Op::StateChunk as u8,
            [
                vec![1],
                vec![0; 8],
                1u64.to_le_bytes().to_vec(),
                1u64.to_le_bytes().to_vec(),
                1u32.to_le_bytes().to_vec(),
                vec![7],
            ]
            .concat(),
        ),
    ];
    for (op, body) in cases {
        check_refused(&frame_with_body(op, 5, &body), ErrorCode::MalformedBody);
    }
}

/// A STATE_FILES announcing more segments than it carries is refused before allocating.
#[test]
fn state_files_counts_are_checked_against_the_body() {
    let body = [vec![0; 16], u32::MAX.to_le_bytes().to_vec()].concat();
    check_refused(&frame_with_body(Op::StateFiles as u8, 5, &body), ErrorCode::MalformedBody);
    let body = [vec![0; 16], 4_096u32.to_le_bytes().to_vec(), vec![1; 16]].concat();
    check_refused(&frame_with_body(Op::StateFiles as u8, 5, &body), ErrorCode::MalformedBody);
}
