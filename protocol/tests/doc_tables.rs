//! The code tables of `protocol/PROTOCOL.md`, and the command tables it shares with
//! `journal/FORMAT.md`, against the code, both ways: every value of every enum is documented
//! with its number and name, and every documented row exists in the code. Values are found
//! by trying every `u8` (every `u16` for error codes) through the public decoders, so a code
//! added to the engine or to the protocol fails here until the documents list it.

use std::collections::{BTreeMap, BTreeSet};

use engine::{AccountNo, FeeKind, ResultCode, TxId, TxKind, TxState};
use protocol::{ErrorCode, Message, Op, Role};

const PROTOCOL_MD: &str = include_str!("../PROTOCOL.md");
const FORMAT_MD: &str = include_str!("../../journal/FORMAT.md");

/// The rows of the first table at or after `anchor` in `doc`, without its header and separator
/// rows, as trimmed cells.
fn table(doc: &'static str, anchor: &str) -> Vec<Vec<&'static str>> {
    let start = doc.find(anchor).unwrap_or_else(|| panic!("no `{anchor}` in the document"));
    let lines = doc[start..].lines().skip_while(|line| !line.starts_with('|'));
    let rows = lines.take_while(|line| line.starts_with('|')).skip(2);
    rows.map(|row| row.trim().trim_matches('|').split('|').map(str::trim).collect()).collect()
}

/// A code cell: decimal, or `0x..` hexadecimal, with or without backticks.
fn code_of(cell: &str) -> u32 {
    let raw = cell.trim_matches('`');
    let code = match raw.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => raw.parse(),
    };
    code.unwrap_or_else(|_| panic!("`{raw}` is not a code"))
}

/// The first two columns of `rows` as code -> name (backticks dropped).
fn codes(rows: &[Vec<&str>]) -> BTreeMap<u32, String> {
    let mut codes = BTreeMap::new();
    for row in rows {
        let (code, name) = (code_of(row[0]), row[1].trim_matches('`').to_string());
        assert!(codes.insert(code, name).is_none(), "code {code} documented twice");
    }
    codes
}

/// Every value `decode` accepts among `0..=max`, as code -> name.
fn decodable<T>(
    max: u32,
    decode: impl Fn(u32) -> Option<T>,
    name: impl Fn(T) -> String,
) -> BTreeMap<u32, String> {
    (0..=max).filter_map(|raw| decode(raw).map(|value| (raw, name(value)))).collect()
}

fn byte<T>(from_u8: fn(u8) -> Option<T>) -> impl Fn(u32) -> Option<T> {
    move |raw| from_u8(raw as u8)
}

#[test]
fn result_codes_in_protocol_md_match_the_code() {
    let rows = table(PROTOCOL_MD, "Result codes (`u8`");
    let code = decodable(255, byte(ResultCode::from_u8), |code| code.name().to_string());
    assert_eq!(codes(&rows), code, "PROTOCOL.md's result codes");
    for row in &rows {
        let code = ResultCode::from_u8(code_of(row[0]) as u8).expect("checked above");
        assert!(
            row[2].starts_with(code.describe()),
            "{}: the meaning starts with `{}`",
            row[1],
            code.describe()
        );
    }
    assert_eq!(ResultCode::ALL.len(), rows.len(), "ResultCode::ALL lists every code");
}

#[test]
fn transaction_states_and_kinds_in_protocol_md_match_the_code() {
    let states = decodable(255, byte(TxState::from_u8), |state| state.name().to_string());
    assert_eq!(codes(&table(PROTOCOL_MD, "Transaction states (`u8`")), states);
    let kinds = decodable(255, byte(TxKind::from_u8), |kind| kind.name().to_string());
    assert_eq!(codes(&table(PROTOCOL_MD, "Transaction kinds (`u8`")), kinds);
}

#[test]
fn ops_in_protocol_md_match_the_code() {
    let rows = table(PROTOCOL_MD, "## Operations");
    let ops = decodable(255, byte(Op::from_u8), |op| op.name().to_string());
    assert_eq!(codes(&rows), ops, "PROTOCOL.md's operations");
    for row in &rows {
        let op = Op::from_u8(code_of(row[0]) as u8).expect("checked above");
        let direction = if op.is_request() { "client → server" } else { "server → client" };
        assert_eq!(row[2], direction, "{op}");
    }
}

#[test]
fn error_codes_in_protocol_md_match_the_code() {
    let rows = table(PROTOCOL_MD, "## Error codes");
    let known = |raw: u32| match ErrorCode::from_u16(raw as u16) {
        ErrorCode::Other(_) => None,
        code => Some(code),
    };
    let code = decodable(u16::MAX as u32, known, |code| code.name().to_string());
    assert_eq!(codes(&rows), code, "PROTOCOL.md's error codes");
    for row in &rows {
        let code = ErrorCode::from_u16(code_of(row[0]) as u16);
        let closes = if code.closes_connection() { "closes" } else { "stays open" };
        let executed = if code.outcome_unknown() { "unknown" } else { "nothing" };
        assert_eq!([row[3], row[4]], [closes, executed], "{}", row[1]);
    }
}

/// A request of `op` (`None` for HELLO, SUBMIT, whose rules are per command, and replies).
fn request(op: Op) -> Option<Message> {
    let account_no = AccountNo::new(b"alice").expect("valid");
    match op {
        Op::Ping => Some(Message::Ping { payload: 1 }),
        Op::QueryAccount => Some(Message::QueryAccount(account_no)),
        Op::QueryTx => Some(Message::QueryTx(TxId(1))),
        Op::QueryExposure => Some(Message::QueryExposure(account_no)),
        Op::Hello
        | Op::Submit
        | Op::HelloOk
        | Op::Pong
        | Op::SubmitReply
        | Op::Account
        | Op::Tx
        | Op::Exposure
        | Op::Error => None,
    }
}

#[test]
fn roles_in_protocol_md_match_the_code() {
    let rows = table(PROTOCOL_MD, "## Roles");
    let roles = decodable(255, byte(Role::from_u8), |role| role.name().to_string());
    assert_eq!(codes(&rows), roles, "PROTOCOL.md's roles");
    let listed: BTreeSet<&str> = rows[Role::Read as usize][2].split(", ").collect();
    let allowed: BTreeSet<&str> = Op::ALL
        .into_iter()
        .filter(|op| request(*op).is_some_and(|message| Role::Read.authorize(&message).is_ok()))
        .map(Op::name)
        .collect();
    assert_eq!(listed, allowed, "what role `read` may send");
}

/// `define_currency` -> `DefineCurrency`.
fn variant_name(kind: TxKind) -> String {
    let words = kind.name().split('_');
    words.map(|word| word[..1].to_uppercase() + &word[1..]).collect()
}

#[test]
fn command_variants_in_protocol_md_match_format_md_and_the_code() {
    let rows = table(PROTOCOL_MD, "| index | variant | fields, in order | role needed |");
    let journal = table(FORMAT_MD, "`CommandBody` variants");
    assert_eq!((rows.len(), journal.len()), (TxKind::ALL.len(), TxKind::ALL.len()));
    for ((row, journal_row), kind) in rows.iter().zip(&journal).zip(TxKind::ALL) {
        assert_eq!(row[0].parse(), Ok(kind as u8), "{kind:?}");
        assert_eq!(row[1].trim_matches('`'), variant_name(kind));
        assert_eq!(row[..2], journal_row[..2], "the same variant in both documents");
        let fields = |cell: &str| cell.split(" (").next().unwrap_or_default().to_string();
        assert_eq!(fields(row[2]), fields(journal_row[2]), "{kind:?}: fields in both documents");
        let needed = Role::ALL.into_iter().find(|role| role.allows_command(kind)).expect("admin");
        assert_eq!(row[3], needed.name(), "{kind:?}: role needed");
    }
}

#[test]
fn enum_types_in_protocol_md_match_format_md_and_the_code() {
    let encodings = |doc: &'static str| -> BTreeMap<&str, &str> {
        table(doc, "| type | encoding |").into_iter().map(|row| (row[0], row[1])).collect()
    };
    let (wire, journal) = (encodings(PROTOCOL_MD), encodings(FORMAT_MD));
    for ty in ["`AccountKind`", "`AccountStatus`", "`FeeKind`", "`AccountLimits`", "`TxId`"] {
        assert_eq!(wire.get(ty), journal.get(ty), "{ty} in PROTOCOL.md and FORMAT.md");
    }
    let fee_kinds: Vec<String> =
        FeeKind::ALL.into_iter().map(|kind| format!("{} `{kind:?}`", kind as u8)).collect();
    let documented = wire["`FeeKind`"].split_once(": ").expect("`u32` variant index: ...").1;
    assert_eq!(documented, fee_kinds.join(", "), "FeeKind::ALL in PROTOCOL.md");
}
