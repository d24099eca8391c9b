//! `journal/FORMAT.md` against the engine's encoders, through the public API only: the golden
//! command of every `CommandBody` variant and the code tables of the command encoding.
//!
//! The golden blocks are compared as text: the bytes and their comments are what the walk of
//! FORMAT.md's own tables prints, so a failure shows the block to paste (and every comment in
//! the document is right). `cargo test -p engine --test format -- --ignored --nocapture`
//! prints every block.

use std::collections::{BTreeMap, BTreeSet};

use engine::{
    decode_command, encode_command, AccountKind, AccountLimits, AccountNo, AccountStatus, Amount,
    Command, CommandBody, CurrencyCode, FeeKind, TxId, TxKind,
};

const FORMAT_MD: &str = include_str!("../../journal/FORMAT.md");

// ---- reading FORMAT.md ----

/// Every `# golden: NAME` block of FORMAT.md, by name, as its text (the lines up to the fence).
fn golden_blocks() -> BTreeMap<&'static str, String> {
    let mut blocks = BTreeMap::new();
    let mut lines = FORMAT_MD.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("# golden: ") else { continue };
        let text: Vec<&str> = lines.by_ref().take_while(|row| !row.starts_with("```")).collect();
        assert!(blocks.insert(name, text.join("\n")).is_none(), "two golden blocks {name}");
    }
    blocks
}

/// The bytes of a golden block: lines `OFFSET: hex bytes | comment`, offsets checked.
fn golden_bytes(name: &str, text: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for row in text.lines() {
        let (offset, rest) = row.split_once(':').expect("golden lines start with `OFFSET:`");
        assert_eq!(usize::from_str_radix(offset, 16), Ok(bytes.len()), "{name}: {row}");
        for token in rest.split('|').next().unwrap_or_default().split_whitespace() {
            bytes.push(u8::from_str_radix(token, 16).expect("golden bytes are hex"));
        }
    }
    bytes
}

/// The rows of the first table after the line that starts with `anchor`, header row and
/// separator left out, as trimmed cells.
fn table_after(anchor: &str) -> Vec<Vec<&'static str>> {
    let mut lines = FORMAT_MD.lines().skip_while(|line| !line.starts_with(anchor));
    assert!(lines.next().is_some(), "FORMAT.md has no line starting with {anchor}");
    let rows = lines.skip_while(|line| !line.starts_with('|')).take_while(|l| l.starts_with('|'));
    let rows: Vec<Vec<&str>> = rows
        .skip(2)
        .map(|row| row.trim().trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert!(!rows.is_empty(), "the table after {anchor} is empty");
    rows
}

/// The `code` spans of a table cell, in order.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

// ---- walking bytes with FORMAT.md's tables ----

/// A cursor over encoded bytes that prints each field as a golden line `OFFSET: hex | label`.
struct Cursor<'a> {
    bytes: &'a [u8],
    offset: usize,
    lines: Vec<String>,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, offset: 0, lines: Vec::new() }
    }

    /// The next `len` bytes, printed 16 to a line under `label`.
    fn field(&mut self, len: usize, label: &str) -> &'a [u8] {
        let end = self.offset + len;
        let bytes = self.bytes.get(self.offset..end).unwrap_or_else(|| {
            panic!("{label}: {len} bytes at {} pass the end ({})", self.offset, self.bytes.len())
        });
        for (index, chunk) in bytes.chunks(16).enumerate() {
            let hex: Vec<String> = chunk.iter().map(|byte| format!("{byte:02x}")).collect();
            let label = if index == 0 { label.to_string() } else { "...".to_string() };
            let offset = self.offset + 16 * index;
            self.lines.push(format!("{offset:04x}: {:<47} | {label}", hex.join(" ")));
        }
        self.offset = end;
        bytes
    }

    /// The next `len` bytes (fewer at the end), without moving.
    fn peek(&self, len: usize) -> &'a [u8] {
        let end = (self.offset + len).min(self.bytes.len());
        self.bytes.get(self.offset..end).unwrap_or_default()
    }

    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A little-endian unsigned integer of up to 16 bytes.
fn uint(bytes: &[u8]) -> u128 {
    bytes.iter().rev().fold(0, |value, &byte| value << 8 | byte as u128)
}

/// A little-endian two's complement integer of 16 bytes.
fn int(bytes: &[u8]) -> i128 {
    i128::from_le_bytes(bytes.try_into().expect("an i128 field is 16 bytes"))
}

/// How a field's value reads in a golden comment.
fn show(ty: &str, bytes: &[u8]) -> String {
    let text = bytes.split(|&byte| byte == 0).next().unwrap_or_default();
    match ty {
        "i128" if int(bytes) == i128::MAX => "i128::MAX".to_string(),
        "i128" => int(bytes).to_string(),
        "u32" if uint(bytes) == u32::MAX as u128 => "0xffffffff".to_string(),
        "u128" if uint(bytes) > u32::MAX as u128 => format!("{:#034x}", uint(bytes)),
        _ if ty.starts_with('[') => format!("{:?}", String::from_utf8_lossy(text)),
        _ => uint(bytes).to_string(),
    }
}

/// FORMAT.md's "Field types" of the command encoding: type name -> encoding cell.
fn command_types() -> BTreeMap<&'static str, &'static str> {
    table_after("Field types:")
        .into_iter()
        .filter_map(|row| match ticked(row[0])[..] {
            [name] => Some((name, row[1])),
            _ => None,
        })
        .collect()
}

/// Walks one value of command field type `ty` (FORMAT.md's "Field types").
fn walk_type(cursor: &mut Cursor, types: &BTreeMap<&str, &str>, ty: &str, label: &str) {
    let fixed = match ty {
        "u8" => 1,
        "u32" => 4,
        "u64" => 8,
        "u128" | "i128" | "TxId" => 16,
        "CurrencyCode" => 8,
        _ => 0,
    };
    if fixed > 0 {
        let shown_as = match ty {
            "TxId" => "u128",
            "CurrencyCode" => "[u8; 8]",
            primitive => primitive,
        };
        let value = show(shown_as, cursor.peek(fixed));
        cursor.field(fixed, &format!("{label} {value}"));
    } else if ty == "AccountNo" {
        let len = uint(cursor.peek(1)) as usize;
        cursor.field(1, &format!("{label}.len {len}"));
        let text = String::from_utf8_lossy(cursor.peek(len)).into_owned();
        cursor.field(len, &format!("{label} {text:?}"));
    } else if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        let tag = uint(cursor.peek(1));
        let variant =
            ["None", "Some"].get(tag as usize).unwrap_or_else(|| panic!("{label}: tag {tag}"));
        cursor.field(1, &format!("{label}: Option tag {tag} {variant}"));
        if tag == 1 {
            walk_type(cursor, types, inner, label);
        }
    } else {
        let encoding = types.get(ty).unwrap_or_else(|| panic!("FORMAT.md has no type {ty}"));
        if encoding.starts_with("`u32` variant index") {
            let value = uint(cursor.peek(4)) as u32;
            let name = documented_codes(ty).remove(&value).unwrap_or_default();
            cursor.field(4, &format!("{label} {value} = {ty}::{name}"));
        } else {
            for (name, inner) in ticked(encoding).into_iter().filter_map(|s| s.split_once(": ")) {
                walk_type(cursor, types, inner, &format!("{label}.{name}"));
            }
        }
    }
}

/// A row of FORMAT.md's `CommandBody` table: index, variant, fields as (name, type).
type Variant = (u32, &'static str, Vec<(&'static str, &'static str)>);

fn variant_table() -> Vec<Variant> {
    table_after("`CommandBody` variants")
        .into_iter()
        .map(|row| {
            let index = row[0].parse().expect("variant index is a number");
            let fields = ticked(row[2]).into_iter().filter_map(|s| s.split_once(": ")).collect();
            (index, ticked(row[1])[0], fields)
        })
        .collect()
}

/// Walks an encoded `Command` with FORMAT.md's tables; returns the cursor (the golden text)
/// and the variant's name and fields as FORMAT.md lists them.
fn walk_command(bytes: &[u8]) -> (Cursor<'_>, &'static str, Vec<&'static str>) {
    let types = command_types();
    let mut cursor = Cursor::new(bytes);
    walk_type(&mut cursor, &types, "TxId", "tx_id");
    walk_type(&mut cursor, &types, "u64", "timestamp_ns");
    let index = uint(cursor.peek(4)) as u32;
    let table = variant_table();
    let (_, variant, fields) = table
        .iter()
        .find(|(row_index, _, _)| *row_index == index)
        .unwrap_or_else(|| panic!("FORMAT.md's variant table has no index {index}"));
    cursor.field(4, &format!("body: variant {index} {variant}"));
    for (name, ty) in fields {
        walk_type(&mut cursor, &types, ty, name);
    }
    assert_eq!(cursor.offset, bytes.len(), "{variant}: FORMAT.md's fields do not fill the bytes");
    (cursor, variant, fields.iter().map(|(name, _)| *name).collect())
}

/// The variant name and top-level field names (with their values) of a `Debug` rendering
/// such as `Transfer { from: "alice", amount: Amount { mantissa: 1, scale: 2 } }`.
fn debug_fields(debug: &str) -> (String, Vec<(String, String)>) {
    let (variant, rest) = debug.split_once(" { ").unwrap_or((debug, "}"));
    let inner = rest.strip_suffix(" }").or_else(|| rest.strip_suffix('}')).unwrap_or(rest);
    let (mut fields, mut depth, mut quoted, mut start) = (Vec::new(), 0, false, 0);
    let mut push = |piece: &str| {
        if let Some((name, value)) = piece.trim().split_once(": ") {
            fields.push((name.to_string(), value.to_string()));
        }
    };
    for (index, ch) in inner.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '{' | '(' | '[' if !quoted => depth += 1,
            '}' | ')' | ']' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                push(&inner[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    push(&inner[start..]);
    (variant.to_string(), fields)
}

// ---- the worked examples of the command encoding ----

const EXAMPLE_TX: TxId = TxId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
const EXAMPLE_TIMESTAMP_NS: u64 = 1_700_000_000_000_000_000;

fn no(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid account number")
}

fn code(text: &str) -> CurrencyCode {
    CurrencyCode::new(text).expect("valid currency code")
}

fn usd(minor: i128) -> Amount {
    Amount::minor(minor, 2)
}

/// The worked example of every variant (the match is exhaustive: a new variant needs one).
fn example(kind: TxKind) -> CommandBody {
    let hold = TxId(7);
    match kind {
        TxKind::DefineCurrency => CommandBody::DefineCurrency { code: code("EURC"), scale: 6 },
        TxKind::OpenAccount => CommandBody::OpenAccount {
            account_no: no("alice"),
            user_id: 42,
            currency: code("USD"),
            kind: AccountKind::User,
            limits: AccountLimits {
                tx_amount_max: Some(usd(100_000)),
                daily_debit_max: None,
                exposure_max: Some(usd(5_000)),
            },
        },
        TxKind::SetAccountStatus => CommandBody::SetAccountStatus {
            account_no: no("alice"),
            status: AccountStatus::DebitFrozen,
        },
        TxKind::SetAccountLimits => CommandBody::SetAccountLimits {
            account_no: no("alice"),
            limits: AccountLimits {
                daily_debit_max: Some(usd(50_000)),
                ..AccountLimits::default()
            },
        },
        TxKind::Deposit => CommandBody::Deposit {
            account_no: no("alice"),
            channel_no: no("bank"),
            amount: usd(10_000),
        },
        TxKind::Withdraw => CommandBody::Withdraw {
            account_no: no("alice"),
            channel_no: no("bank"),
            amount: usd(2_500),
        },
        TxKind::Transfer => {
            CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: usd(1_250) }
        }
        TxKind::Freeze => CommandBody::Freeze {
            account_no: no("alice"),
            amount: usd(2_000),
            expires_ns: Some(EXAMPLE_TIMESTAMP_NS + 3_600_000_000_000),
        },
        TxKind::Unfreeze => CommandBody::Unfreeze { hold },
        TxKind::Capture => CommandBody::Capture { hold, to: no("bob"), amount: usd(500) },
        TxKind::SettleBegin => CommandBody::SettleBegin { target: TxId(4) },
        TxKind::SettleConfirm => CommandBody::SettleConfirm { target: TxId(4) },
        TxKind::SettleFail => CommandBody::SettleFail { target: TxId(5) },
        TxKind::Refund => CommandBody::Refund { original: TxId(6), amount: usd(250) },
        TxKind::SetFee => CommandBody::SetFee {
            kind: FeeKind::Withdraw,
            currency: code("USD"),
            fee_account_no: no("fees"),
            fixed: usd(100),
            rate_bps: 25,
        },
        TxKind::SetSettlementCycle => CommandBody::SetSettlementCycle {
            account_no: no("bob"),
            t1_clearing_no: Some(no("clearing")),
        },
        TxKind::Cutover => CommandBody::Cutover { business_date: 20_231_114 },
    }
}

fn example_command(kind: TxKind) -> Command {
    Command { tx_id: EXAMPLE_TX, timestamp_ns: EXAMPLE_TIMESTAMP_NS, body: example(kind) }
}

fn encoded(command: &Command) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_command(command, &mut bytes);
    bytes
}

fn golden_name(kind: TxKind) -> String {
    format!("command-{}", kind.name().replace('_', "-"))
}

#[test]
#[ignore = "prints the golden blocks of FORMAT.md"]
fn print_golden_blocks() {
    for kind in TxKind::ALL {
        let bytes = encoded(&example_command(kind));
        println!(
            "```text\n# golden: {}\n{}\n```\n",
            golden_name(kind),
            walk_command(&bytes).0.text()
        );
    }
}

#[test]
fn golden_command_of_every_variant() {
    let blocks = golden_blocks();
    for kind in TxKind::ALL {
        let command = example_command(kind);
        assert_eq!(command.body.kind(), kind);
        let bytes = encoded(&command);
        let name = golden_name(kind);
        let expected = format!("```text\n# golden: {name}\n{}\n```", walk_command(&bytes).0.text());
        let block = blocks
            .get(name.as_str())
            .unwrap_or_else(|| panic!("FORMAT.md has no golden block {name}; add:\n{expected}"));
        assert_eq!(golden_bytes(&name, block), bytes, "{name}: FORMAT.md's bytes differ");
        assert_eq!(
            *block,
            walk_command(&bytes).0.text(),
            "{name}: FORMAT.md should say\n{expected}"
        );
        assert_eq!(decode_command(&bytes), Ok(command), "{name}");
    }
    let names: BTreeSet<String> = TxKind::ALL.into_iter().map(golden_name).collect();
    for name in blocks.keys().filter(|name| name.starts_with("command-")) {
        assert!(names.contains(*name), "FORMAT.md's {name} is no command kind");
    }
}

#[test]
fn command_fields_in_format_md_match_the_code() {
    let table = variant_table();
    assert_eq!(table.len(), TxKind::ALL.len(), "FORMAT.md's variant table has a row per variant");
    for kind in TxKind::ALL {
        let command = example_command(kind);
        let bytes = encoded(&command);
        assert_eq!(uint(&bytes[24..28]), kind as u128, "{kind:?}: variant index = TxKind code");
        let (_, variant, fields) = walk_command(&bytes);
        let (debug_variant, debug_fields) = debug_fields(&format!("{:?}", command.body));
        assert_eq!(variant, debug_variant, "FORMAT.md's variant {}", kind as u8);
        let names: Vec<&str> = debug_fields.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(fields, names, "{variant}: FORMAT.md's fields, in declaration order");
    }
}

/// The codes of an enum field, by trying every small value in its place in `body`'s encoding:
/// code -> the variant's name (its `Debug`).
fn decodable_codes(body: CommandBody, field: &str) -> BTreeMap<u32, String> {
    let command = Command { body, ..example_command(TxKind::Cutover) };
    let bytes = encoded(&command);
    let (cursor, _, _) = walk_command(&bytes);
    let line = cursor.lines.iter().find(|line| line.contains(&format!("| {field} "))).expect(field);
    let offset = usize::from_str_radix(&line[..4], 16).expect("hex offset");
    let mut codes = BTreeMap::new();
    for raw in 0..=255u32 {
        let mut patched = bytes.clone();
        patched[offset..offset + 4].copy_from_slice(&raw.to_le_bytes());
        if let Ok(decoded) = decode_command(&patched) {
            let (_, fields) = debug_fields(&format!("{:?}", decoded.body));
            let value = fields.into_iter().find(|(name, _)| name == field).expect(field).1;
            codes.insert(raw, value);
        }
    }
    codes
}

/// FORMAT.md's codes of an enum type: `` `u32` variant index: 0 `A`, 1 `B` ``.
fn documented_codes(ty: &str) -> BTreeMap<u32, String> {
    let encoding = command_types()[ty];
    let (_, list) = encoding.split_once(':').expect("`u32` variant index: ...");
    list.split(',')
        .map(|item| {
            let (raw, name) = item.trim().split_once(' ').expect("`N `Name``");
            (raw.parse().expect("a code"), name.trim_matches('`').to_string())
        })
        .collect()
}

#[test]
fn enum_codes_in_format_md_match_the_code() {
    let fee = example(TxKind::SetFee);
    let status = example(TxKind::SetAccountStatus);
    let open = example(TxKind::OpenAccount);
    for (ty, body, field) in [
        ("FeeKind", fee, "kind"),
        ("AccountStatus", status, "status"),
        ("AccountKind", open, "kind"),
    ] {
        assert_eq!(documented_codes(ty), decodable_codes(body, field), "FORMAT.md's {ty}");
    }
    let fee_kinds: BTreeMap<u32, String> =
        FeeKind::ALL.into_iter().map(|kind| (kind as u32, format!("{kind:?}"))).collect();
    assert_eq!(documented_codes("FeeKind"), fee_kinds, "FeeKind::ALL");
}
