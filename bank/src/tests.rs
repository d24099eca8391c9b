//! Protocol, decisions and the real server on a loopback port.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::protocol::{
    parse_item, parse_reply, parse_request, parse_statement_line, Direction, Instruction,
    NetInstruction, NetItem, Reply, Request,
};
use crate::sim::{decide, parse_rate_ppm, BankConfig, PPM};

fn instruction(id: u128, amount: &str) -> Instruction {
    Instruction { id, direction: Direction::Deposit, amount: amount.into(), currency: "USD".into() }
}

#[test]
fn requests_and_replies_round_trip() {
    let settle = Request::Settle(instruction(0xabc, "12.50"));
    let line = settle.to_string();
    assert_eq!(line, "SETTLE 00000000000000000000000000000abc DEPOSIT 12.50 USD");
    assert_eq!(parse_request(&line), Ok((settle, 0)));
    assert_eq!(parse_request("STATEMENT"), Ok((Request::Statement, 0)));
    for bad in [
        "SETTLE abc DEPOSIT 1 USD",
        "SETTLE 00000000000000000000000000000ABC DEPOSIT 1 USD",
        "SETTLE 00000000000000000000000000000abc SEND 1 USD",
        "SETTLE 00000000000000000000000000000abc DEPOSIT -1 USD",
        "SETTLE 00000000000000000000000000000abc DEPOSIT 1. USD",
        "SETTLE 00000000000000000000000000000abc DEPOSIT 1 usd",
        "SETTLE 00000000000000000000000000000abc DEPOSIT 1 USD extra",
        "HELLO",
        "",
    ] {
        assert!(parse_request(bad).is_err(), "{bad:?}");
    }
    for reply in [
        Reply::Accepted(1),
        Reply::Confirmed(2),
        Reply::Failed(3, "refused_by_bank".into()),
        Reply::Busy(4),
    ] {
        let text = reply.to_string();
        assert_eq!(parse_reply(text.trim_end()), Ok((reply, 0)));
    }
    let statement = Reply::Statement(vec![instruction(5, "1.5"), instruction(6, "2")]);
    let text = statement.to_string();
    let mut lines = text.lines();
    assert_eq!(parse_reply(lines.next().expect("header")), Ok((Reply::Statement(vec![]), 2)));
    let parsed: Vec<Instruction> =
        lines.map(|line| parse_statement_line(line).expect("valid")).collect();
    assert_eq!(Reply::Statement(parsed), statement);
}

fn item(id: u128, direction: Direction, amount: &str) -> NetItem {
    NetItem { id, direction, amount: amount.into() }
}

fn net(id: u128, direction: Direction, amount: &str, items: Vec<NetItem>) -> NetInstruction {
    NetInstruction { id, direction, amount: amount.into(), currency: "USD".into(), items }
}

#[test]
fn net_instructions_round_trip_and_are_checked_exactly() {
    let items = vec![
        item(1, Direction::Deposit, "10.5"),
        item(2, Direction::Withdraw, "2.25"),
        item(3, Direction::Deposit, "1"),
    ];
    let request = Request::Net(net(9, Direction::Deposit, "9.25", items.clone()));
    let text = request.to_string();
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert_eq!(header, "NET 00000000000000000000000000000009 DEPOSIT 9.25 USD 3");
    let (parsed, count) = parse_request(header).expect("valid header");
    assert_eq!(count, 3);
    let Request::Net(mut parsed) = parsed else { panic!("not a net instruction") };
    parsed.items = lines.map(|line| parse_item(line).expect("valid item")).collect();
    assert_eq!(Request::Net(parsed.clone()), request);
    assert_eq!(parsed.check(), Ok(()));
    // Trailing zeros do not matter; the amount, the direction and duplicates do.
    assert_eq!(net(9, Direction::Deposit, "9.2500", items.clone()).check(), Ok(()));
    assert!(net(9, Direction::Deposit, "9.26", items.clone()).check().is_err());
    assert!(net(9, Direction::Withdraw, "9.25", items.clone()).check().is_err());
    let twice = vec![item(1, Direction::Deposit, "1"), item(1, Direction::Deposit, "1")];
    assert!(net(9, Direction::Deposit, "2", twice).check().is_err());
    let out = vec![item(1, Direction::Deposit, "1"), item(2, Direction::Withdraw, "3")];
    assert_eq!(net(9, Direction::Withdraw, "2", out.clone()).check(), Ok(()));
    let even = vec![item(1, Direction::Deposit, "3"), item(2, Direction::Withdraw, "3.0")];
    assert_eq!(net(9, Direction::Deposit, "0", even).check(), Ok(()));
    for bad in [
        "NET 00000000000000000000000000000009 DEPOSIT 1 USD 0",
        "NET 00000000000000000000000000000009 DEPOSIT 1 USD 4097",
        "NET 00000000000000000000000000000009 DEPOSIT 1 USD x",
        "NET 00000000000000000000000000000009 DEPOSIT 1 USD",
    ] {
        assert!(parse_request(bad).is_err(), "{bad:?}");
    }
    for bad in ["ITEM 1 DEPOSIT 1", "ITEM 00000000000000000000000000000001 DEPOSIT -1", "SETTLE"] {
        assert!(parse_item(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn rates_parse_exactly_without_floats() {
    assert_eq!(parse_rate_ppm("0"), Ok(0));
    assert_eq!(parse_rate_ppm("1"), Ok(PPM));
    assert_eq!(parse_rate_ppm("0.05"), Ok(50_000));
    assert_eq!(parse_rate_ppm("0.000001"), Ok(1));
    for bad in ["", "1.5", "2", "0.0000001", "-0.1", ".5", "0.", "abc"] {
        assert!(parse_rate_ppm(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn decisions_follow_the_seed_and_the_rates() {
    let config = BankConfig {
        latency_ms: 100,
        fail_ppm: 200_000,
        timeout_ppm: 100_000,
        duplicate_ppm: 300_000,
        seed: 42,
    };
    let decisions: Vec<_> = (0..10_000u128).map(|id| decide(&config, id, 0)).collect();
    assert_eq!(decisions, (0..10_000u128).map(|id| decide(&config, id, 0)).collect::<Vec<_>>());
    let other = BankConfig { seed: 43, ..config };
    assert_ne!(decisions, (0..10_000u128).map(|id| decide(&other, id, 0)).collect::<Vec<_>>());
    let count =
        |f: &dyn Fn(&crate::sim::Decision) -> bool| decisions.iter().filter(|d| f(d)).count();
    let timeouts = count(&|d| d.outcome.is_none());
    let failures = count(&|d| d.outcome == Some(false));
    let duplicates = count(&|d| d.duplicate_after_ms.is_some());
    assert!((800..1_200).contains(&timeouts), "{timeouts}");
    assert!((1_400..2_200).contains(&failures), "{failures}");
    assert!((2_600..3_400).contains(&duplicates), "{duplicates}");
    assert!(decisions.iter().all(|d| (50..=150).contains(&d.delay_ms)));
    // A re-send may get through a timeout, but a refusal is the same every time.
    for id in 0..1_000u128 {
        let first = decide(&config, id, 0).outcome;
        let later = decide(&config, id, 7).outcome;
        if let (Some(a), Some(b)) = (first, later) {
            assert_eq!(a, b);
        }
    }
}

/// A client connection to a freshly started bank.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn start(config: BankConfig) -> Client {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        crate::server::spawn(listener, config).expect("spawn");
        let writer = TcpStream::connect(address).expect("connect");
        writer.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let reader = BufReader::new(writer.try_clone().expect("clone"));
        Client { writer, reader }
    }

    fn send(&mut self, request: &Request) {
        self.writer.write_all(format!("{request}\n").as_bytes()).expect("write");
    }

    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end().to_string()),
        }
    }

    fn reply(&mut self) -> Reply {
        let line = self.line().expect("a reply");
        let (reply, count) = parse_reply(&line).expect("valid reply");
        if count == 0 {
            return reply;
        }
        let lines = (0..count)
            .map(|_| parse_statement_line(&self.line().expect("line")).expect("valid"))
            .collect();
        Reply::Statement(lines)
    }
}

#[test]
fn instructions_are_accepted_then_confirmed_and_listed_once() {
    let mut client = Client::start(BankConfig { latency_ms: 1, ..BankConfig::default() });
    client.send(&Request::Settle(instruction(1, "10.00")));
    assert_eq!(client.reply(), Reply::Accepted(1));
    assert_eq!(client.reply(), Reply::Confirmed(1));
    // A re-send is answered again, and still listed once.
    client.send(&Request::Settle(instruction(1, "10.00")));
    assert_eq!(client.reply(), Reply::Accepted(1));
    assert_eq!(client.reply(), Reply::Confirmed(1));
    client.send(&Request::Statement);
    assert_eq!(client.reply(), Reply::Statement(vec![instruction(1, "10.00")]));
    client.writer.write_all(b"NONSENSE\n").expect("write");
    assert!(matches!(client.reply(), Reply::Error(_)));
}

#[test]
fn failures_duplicates_and_timeouts_happen_as_configured() {
    let refuse = BankConfig { latency_ms: 1, fail_ppm: PPM, ..BankConfig::default() };
    let mut client = Client::start(refuse);
    client.send(&Request::Settle(instruction(2, "1")));
    assert_eq!(client.reply(), Reply::Accepted(2));
    assert_eq!(client.reply(), Reply::Failed(2, "refused_by_bank".into()));

    let twice = BankConfig { latency_ms: 1, duplicate_ppm: PPM, ..BankConfig::default() };
    let mut client = Client::start(twice);
    client.send(&Request::Settle(instruction(3, "1")));
    assert_eq!(client.reply(), Reply::Accepted(3));
    assert_eq!(client.reply(), Reply::Confirmed(3));
    assert_eq!(client.reply(), Reply::Confirmed(3));

    let silent = BankConfig { latency_ms: 1, timeout_ppm: PPM, ..BankConfig::default() };
    let mut client = Client::start(silent);
    client.send(&Request::Settle(instruction(4, "1")));
    // Nothing comes back for the instruction; the next request is answered first.
    client.send(&Request::Statement);
    assert_eq!(client.reply(), Reply::Statement(Vec::new()));
}

#[test]
fn jitter_answers_out_of_order() {
    let mut client = Client::start(BankConfig { latency_ms: 40, ..BankConfig::default() });
    for id in 0..20u128 {
        client.send(&Request::Settle(instruction(id, "1")));
    }
    let mut confirmed = Vec::new();
    while confirmed.len() < 20 {
        match client.reply() {
            Reply::Confirmed(id) => confirmed.push(id),
            Reply::Accepted(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut sorted = confirmed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    assert_ne!(confirmed, sorted, "answers overtake each other");
}

#[test]
fn a_net_instruction_settles_every_item_or_none() {
    let mut client = Client::start(BankConfig { latency_ms: 1, ..BankConfig::default() });
    let items = vec![item(1, Direction::Deposit, "10"), item(2, Direction::Withdraw, "4")];
    client.send(&Request::Net(net(7, Direction::Deposit, "6", items)));
    assert_eq!(client.reply(), Reply::Accepted(7));
    assert_eq!(client.reply(), Reply::Confirmed(7));
    client.send(&Request::Statement);
    let listed = Reply::Statement(vec![
        instruction(1, "10"),
        Instruction { direction: Direction::Withdraw, ..instruction(2, "4") },
    ]);
    assert_eq!(client.reply(), listed);
    // A net that does not match its items is refused at once and settles nothing.
    let items = vec![item(3, Direction::Deposit, "1")];
    client.send(&Request::Net(net(8, Direction::Deposit, "2", items)));
    assert!(
        matches!(client.reply(), Reply::Failed(8, reason) if reason.starts_with("net_mismatch"))
    );
    client.send(&Request::Statement);
    assert_eq!(client.reply(), listed);
    // A broken item line closes the connection after an error.
    client
        .writer
        .write_all(b"NET 00000000000000000000000000000009 DEPOSIT 1 USD 1\nITEM x\n")
        .expect("write");
    assert!(matches!(client.reply(), Reply::Error(_)));
    assert_eq!(client.line(), None);

    let refuse = BankConfig { latency_ms: 1, fail_ppm: PPM, ..BankConfig::default() };
    let mut client = Client::start(refuse);
    let items = vec![item(4, Direction::Deposit, "1"), item(5, Direction::Deposit, "2")];
    client.send(&Request::Net(net(10, Direction::Deposit, "3", items)));
    assert_eq!(client.reply(), Reply::Accepted(10));
    assert_eq!(client.reply(), Reply::Failed(10, "refused_by_bank".into()));
    client.send(&Request::Statement);
    assert_eq!(client.reply(), Reply::Statement(Vec::new()));
}
