//! The code tables of `protocol/PROTOCOL.md`, and the command tables it shares with
//! `journal/FORMAT.md`, against the code, both ways: every value of every enum is documented
//! with its number and name, and every documented row exists in the code. Values are found
//! by trying every `u8` (every `u16` for error codes) through the public decoders, so a code
//! added to the engine or to the protocol fails here until the documents list it.

use std::collections::{BTreeMap, BTreeSet};

use engine::{
    AccountKind, AccountLimits, AccountNo, AccountStatus, Amount, Command, CommandBody,
    CurrencyCode, Effects, Engine, EngineConfig, FeeKind, ResultCode, TxId, TxKind, TxState,
    BUILTIN_CURRENCIES,
};
use protocol::wire::ACCOUNT_NO_REFUSED;
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
        Op::StateOffer => Some(Message::StateOffer { through_seq: 1 }),
        Op::StateRead => Some(Message::StateRead(protocol::wire::StateRead {
            file: protocol::wire::StateFile {
                kind: protocol::wire::StateFileKind::Snapshot,
                id: 0,
            },
            offset: 0,
            len_max: 1,
        })),
        Op::Hello
        | Op::Submit
        | Op::HelloOk
        | Op::Pong
        | Op::SubmitReply
        | Op::Account
        | Op::Tx
        | Op::Exposure
        | Op::StateFiles
        | Op::StateChunk
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

/// One command of the walk below: what it is, and which account and transaction each role
/// word of PROTOCOL.md's table names in it.
struct Step {
    body: CommandBody,
    /// Role word (`account`, `channel`, `fee account`, ...) -> account number.
    accounts: &'static [(&'static str, &'static str)],
    /// Role word (`hold`, `target`, `original`) -> tx_id.
    linked: Option<(&'static str, u128)>,
}

fn amt(mantissa: i128) -> Amount {
    Amount { mantissa, scale: 0 }
}

fn usd() -> CurrencyCode {
    CurrencyCode::new("USD").expect("code")
}

fn no(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid")
}

/// One command per kind, in kind order (tx_id = 100 + kind), on a ledger with alice (funded),
/// bob, the channel `bank`, the fee account `fees` (every fee 1 USD), the T+1 clearing account
/// `t1clr`, and a hold to capture (tx 50) and a withdrawal to fail (tx 51, settling).
fn walk() -> Vec<Step> {
    let fee = |kind| CommandBody::SetFee {
        kind,
        currency: usd(),
        fee_account_no: no("fees"),
        fixed: amt(1),
        rate_bps: 0,
    };
    vec![
        Step {
            body: CommandBody::DefineCurrency {
                code: CurrencyCode::new("XTS").expect("code"),
                scale: 2,
            },
            accounts: &[],
            linked: None,
        },
        Step {
            body: CommandBody::OpenAccount {
                account_no: no("carol"),
                user_id: 3,
                currency: usd(),
                kind: AccountKind::User,
                limits: AccountLimits::default(),
            },
            accounts: &[("account", "carol")],
            linked: None,
        },
        Step {
            body: CommandBody::SetAccountStatus {
                account_no: no("carol"),
                status: AccountStatus::DebitFrozen,
            },
            accounts: &[("account", "carol")],
            linked: None,
        },
        Step {
            body: CommandBody::SetAccountLimits {
                account_no: no("carol"),
                limits: AccountLimits::default(),
            },
            accounts: &[("account", "carol")],
            linked: None,
        },
        Step {
            body: CommandBody::Deposit {
                account_no: no("alice"),
                channel_no: no("bank"),
                amount: amt(100),
            },
            accounts: &[("account", "alice"), ("channel", "bank")],
            linked: None,
        },
        Step {
            body: CommandBody::Withdraw {
                account_no: no("alice"),
                channel_no: no("bank"),
                amount: amt(10),
            },
            accounts: &[("account", "alice"), ("channel", "bank"), ("fee account", "fees")],
            linked: None,
        },
        Step {
            body: CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: amt(10) },
            accounts: &[("from", "alice"), ("to", "bob"), ("fee account", "fees")],
            linked: None,
        },
        Step {
            body: CommandBody::Freeze {
                account_no: no("alice"),
                amount: amt(20),
                expires_ns: None,
            },
            accounts: &[("hold's account", "alice")],
            linked: None,
        },
        Step {
            body: CommandBody::Unfreeze { hold: TxId(107) },
            accounts: &[("hold's account", "alice")],
            linked: Some(("hold", 107)),
        },
        Step {
            body: CommandBody::Capture { hold: TxId(50), to: no("bob"), amount: amt(5) },
            accounts: &[("hold's account", "alice"), ("to", "bob"), ("fee account", "fees")],
            linked: Some(("hold", 50)),
        },
        Step {
            body: CommandBody::SettleBegin { target: TxId(104) },
            accounts: &[("target's debit", "bank"), ("target's credit", "alice")],
            linked: Some(("target", 104)),
        },
        Step {
            body: CommandBody::SettleConfirm { target: TxId(104) },
            accounts: &[("target's debit", "bank"), ("target's credit", "alice")],
            linked: Some(("target", 104)),
        },
        Step {
            body: CommandBody::SettleFail { target: TxId(51) },
            accounts: &[
                ("target's debit", "alice"),
                ("target's credit", "bank"),
                ("fee or risk account", "fees"),
            ],
            linked: Some(("target", 51)),
        },
        Step {
            body: CommandBody::Refund { original: TxId(106), amount: amt(3) },
            accounts: &[("original's credit", "bob"), ("original's debit", "alice")],
            linked: Some(("original", 106)),
        },
        Step { body: fee(FeeKind::Transfer), accounts: &[("fee account", "fees")], linked: None },
        Step {
            body: CommandBody::SetSettlementCycle {
                account_no: no("bob"),
                t1_clearing_no: Some(no("t1clr")),
            },
            accounts: &[("account", "bob")],
            linked: None,
        },
        Step {
            body: CommandBody::Cutover { business_date: 20_260_102 },
            accounts: &[],
            linked: None,
        },
    ]
}

/// The ledger the walk starts from.
fn walk_engine() -> (Engine, Effects, u64) {
    let mut engine = Engine::new(EngineConfig::default());
    let mut effects = Effects::default();
    let mut now_ns = 1_700_000_000_000_000_000;
    let mut run = |engine: &mut Engine, tx_id: u128, body: CommandBody| {
        now_ns += 1;
        let outcome =
            engine.apply(&Command { tx_id: TxId(tx_id), timestamp_ns: now_ns, body }, &mut effects);
        assert_eq!(outcome.result, ResultCode::Ok, "setup {tx_id}: {body:?}");
    };
    for (index, (account, kind)) in [
        ("alice", AccountKind::User),
        ("bob", AccountKind::User),
        ("bank", AccountKind::System),
        ("fees", AccountKind::System),
        ("t1clr", AccountKind::System),
    ]
    .into_iter()
    .enumerate()
    {
        let body = CommandBody::OpenAccount {
            account_no: no(account),
            user_id: index as u64,
            currency: usd(),
            kind,
            limits: AccountLimits::default(),
        };
        run(&mut engine, 1 + index as u128, body);
    }
    for (index, kind) in FeeKind::ALL.into_iter().enumerate() {
        let body = CommandBody::SetFee {
            kind,
            currency: usd(),
            fee_account_no: no("fees"),
            fixed: amt(1),
            rate_bps: 0,
        };
        run(&mut engine, 10 + index as u128, body);
    }
    run(
        &mut engine,
        20,
        CommandBody::Deposit {
            account_no: no("alice"),
            channel_no: no("bank"),
            amount: amt(1_000),
        },
    );
    run(
        &mut engine,
        50,
        CommandBody::Freeze { account_no: no("alice"), amount: amt(50), expires_ns: None },
    );
    run(
        &mut engine,
        51,
        CommandBody::Withdraw { account_no: no("alice"), channel_no: no("bank"), amount: amt(7) },
    );
    run(&mut engine, 52, CommandBody::SettleBegin { target: TxId(51) });
    (engine, effects, now_ns)
}

/// A cell naming roles (`a, b`) or none (`—`).
fn roles(cell: &str) -> Vec<&str> {
    match cell {
        "—" => Vec::new(),
        roles => roles.split(", ").collect(),
    }
}

#[test]
fn what_each_command_answers_and_records_is_what_protocol_md_says() {
    let rows = table(PROTOCOL_MD, "| kind | `tx_state` after | balances, in order |");
    assert_eq!(rows.len(), TxKind::ALL.len(), "one row per kind");
    let (mut engine, mut effects, mut now_ns) = walk_engine();
    for ((row, kind), step) in rows.iter().zip(TxKind::ALL).zip(walk()) {
        assert_eq!(row[0].trim_matches('`'), kind.name(), "rows in kind order");
        assert_eq!(step.body.kind(), kind, "the walk in kind order");
        let tx_id = TxId(100 + kind as u128);
        now_ns += 1;
        let command = Command { tx_id, timestamp_ns: now_ns, body: step.body };
        let outcome = engine.apply(&command, &mut effects);
        assert_eq!(outcome.result, ResultCode::Ok, "{kind:?}");
        let role_account = |role: &str| {
            let found = step.accounts.iter().find(|(word, _)| *word == role);
            found.unwrap_or_else(|| panic!("{kind:?}: no account for role {role:?}")).1
        };
        let name =
            |state: Option<TxState>| state.map_or("none".into(), |s| format!("`{}`", s.name()));
        assert_eq!(row[1], name(outcome.tx_state), "{kind:?}: tx_state");
        let names = |engine: &Engine, balances: &engine::Balances| -> Vec<String> {
            let views = balances.as_slice().iter();
            views
                .map(|view| engine.account_by_id(view.account).account_no.as_str().into())
                .collect()
        };
        let balances = names(&engine, &outcome.balances);
        let documented: Vec<&str> = roles(row[2]).into_iter().map(role_account).collect();
        assert_eq!(balances, documented, "{kind:?}: balances");
        // A duplicate: the same first result, the record's accounts (debit, credit) now.
        let again = engine.apply(&command, &mut effects);
        assert!(again.duplicate && again.result == ResultCode::Ok, "{kind:?}");
        let tx = engine.tx(tx_id).expect("remembered");
        let account = |account_no: Option<AccountNo>| account_no.map(|no| no.as_str().to_string());
        let expected = |cell: &str| (cell != "—").then(|| role_account(cell).to_string());
        assert_eq!(account(tx.debit), expected(row[3]), "{kind:?}: TX debit");
        assert_eq!(account(tx.credit), expected(row[4]), "{kind:?}: TX credit");
        let mut again_accounts: Vec<String> =
            [tx.debit, tx.credit].into_iter().flatten().map(|n| n.as_str().to_string()).collect();
        again_accounts.dedup();
        assert_eq!(
            names(&engine, &again.balances),
            again_accounts,
            "{kind:?}: a duplicate's balances"
        );
        assert_eq!(again.tx_state, tx.state, "{kind:?}: a duplicate's state is the current one");
        let amount_minor = match row[5] {
            "0" => 0,
            "the amount" => match step.body {
                CommandBody::Deposit { amount, .. }
                | CommandBody::Withdraw { amount, .. }
                | CommandBody::Transfer { amount, .. }
                | CommandBody::Freeze { amount, .. }
                | CommandBody::Capture { amount, .. }
                | CommandBody::Refund { amount, .. } => amount.mantissa * 100,
                other => panic!("{other:?} has no amount"),
            },
            "what the hold still held" => 2_000,
            other => panic!("{kind:?}: amount cell {other:?}"),
        };
        assert_eq!(tx.amount_minor, amount_minor, "{kind:?}: TX amount_minor");
        let linked = match row[6] {
            "—" => None,
            role => {
                let (word, linked) = step.linked.unwrap_or_else(|| panic!("{kind:?}: linked"));
                assert_eq!(role, word, "{kind:?}: linked role");
                Some(TxId(linked))
            }
        };
        assert_eq!(tx.linked, linked, "{kind:?}: TX linked");
    }
}

#[test]
fn builtin_currencies_in_protocol_md_match_the_engine() {
    let rows = table(PROTOCOL_MD, "| currency | scale |");
    let documented: Vec<(String, u8)> = rows
        .iter()
        .map(|row| (row[0].trim_matches('`').to_string(), row[1].parse().expect("a scale")))
        .collect();
    let engine: Vec<(String, u8)> =
        BUILTIN_CURRENCIES.iter().map(|(code, scale)| (code.to_string(), *scale)).collect();
    assert_eq!(documented, engine);
}

#[test]
fn refused_account_number_characters_in_protocol_md_match_the_code() {
    let rows = table(PROTOCOL_MD, "| from | to | what |");
    let documented: Vec<(u32, u32)> = rows
        .iter()
        .map(|row| {
            let code = |cell: &str| {
                let hex = cell.trim_matches('`').strip_prefix("U+").expect("U+XXXX");
                u32::from_str_radix(hex, 16).expect("hex")
            };
            (code(row[0]), code(row[1]))
        })
        .collect();
    assert_eq!(documented, ACCOUNT_NO_REFUSED.to_vec());
}
