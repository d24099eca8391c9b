//! `journal/FORMAT.md` against the engine's encoders, through the public API only: the golden
//! command of every `CommandBody` variant, the code tables of the command encoding, and the
//! snapshot payload (`encode_state`) walked field by field with the layout tables of FORMAT.md.
//!
//! The golden blocks are compared as text: the bytes and their comments are what the walk of
//! FORMAT.md's own tables prints, so a failure shows the block to paste (and every comment in
//! the document is right). `cargo test -p engine --test format -- --ignored --nocapture`
//! prints every block.

use std::collections::{BTreeMap, BTreeSet};

use engine::{
    decode_command, encode_command, AccountId, AccountKind, AccountLimits, AccountNo,
    AccountStatus, Amount, Command, CommandBody, CurrencyCode, Effects, Engine, EngineConfig,
    FeeKind, ResultCode, TxId, TxKind, TxState, STATE_ENCODING_VERSION,
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

/// A golden block as FORMAT.md shows it.
fn fenced(name: &str, text: &str) -> String {
    format!("```text\n# golden: {name}\n{text}\n```")
}

/// Checks FORMAT.md's golden block `name`: its bytes are `bytes`, and its text is `text`, what
/// the walk of FORMAT.md's tables prints for them.
fn check_golden(name: &str, bytes: &[u8], text: &str) {
    let blocks = golden_blocks();
    let expected = fenced(name, text);
    let block = blocks
        .get(name)
        .unwrap_or_else(|| panic!("FORMAT.md has no golden block {name}; add:\n{expected}"));
    assert_eq!(golden_bytes(name, block), bytes, "{name}: FORMAT.md's bytes differ");
    assert_eq!(block, text, "{name}: FORMAT.md should say\n{expected}");
}

#[test]
#[ignore = "prints the golden blocks of FORMAT.md"]
fn print_golden_blocks() {
    for kind in TxKind::ALL {
        let bytes = encoded(&example_command(kind));
        println!("{}\n", fenced(&golden_name(kind), &walk_command(&bytes).0.text()));
    }
    let genesis = state_bytes(&new_ledger());
    println!("{}", fenced("state-genesis", &walk_state(&genesis).cursor.text()));
    println!("state_hash {:#034x}", new_ledger().state_hash());
}

#[test]
fn golden_command_of_every_variant() {
    for kind in TxKind::ALL {
        let command = example_command(kind);
        assert_eq!(command.body.kind(), kind);
        let bytes = encoded(&command);
        check_golden(&golden_name(kind), &bytes, &walk_command(&bytes).0.text());
        assert_eq!(decode_command(&bytes), Ok(command), "{kind:?}");
    }
    let names: BTreeSet<String> = TxKind::ALL.into_iter().map(golden_name).collect();
    for name in golden_blocks().keys().filter(|name| name.starts_with("command-")) {
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

// ---- the snapshot payload ----

/// A section of FORMAT.md's "Sections" table of the state encoding.
struct Section {
    name: &'static str,
    /// Width of the count in bytes, 0 for a section of exactly one entry.
    count_len: usize,
    entry: &'static str,
    entry_len: usize,
    since_version: u32,
    /// Fields whose values strictly increase from entry to entry.
    ordered_by: Vec<&'static str>,
}

fn sections() -> Vec<Section> {
    table_after("Sections of the state encoding")
        .into_iter()
        .map(|row| Section {
            name: row[1],
            count_len: match row[2].split(',').next().unwrap_or_default() {
                "`u32`" => 4,
                "`u64`" => 8,
                "—" => 0,
                other => panic!("count {other}"),
            },
            entry: ticked(row[3])[0],
            entry_len: row[4].parse().expect("entry bytes"),
            since_version: row[5].parse().expect("version"),
            ordered_by: if row[6].contains("ascending") { ticked(row[6]) } else { Vec::new() },
        })
        .collect()
}

/// One field of an entry table: (offset, size, type, name).
type Field = (usize, usize, &'static str, &'static str);

/// The layout of an entry, from its table (`**`name`** (N bytes)`), with its offsets and
/// sizes checked against each other and against the types.
fn entry_layout(entry: &str, entry_len: usize) -> Vec<Field> {
    let mut offset = 0;
    let layout: Vec<Field> = table_after(&format!("**`{entry}`**"))
        .into_iter()
        .map(|row| {
            let field: Field = (
                row[0].parse().expect("offset"),
                row[1].parse().expect("size"),
                ticked(row[2])[0],
                ticked(row[3])[0],
            );
            let width = match field.2 {
                "u8" => 1,
                "u32" => 4,
                "u64" => 8,
                "u128" | "i128" => 16,
                array => array
                    .strip_prefix("[u8; ")
                    .and_then(|len| len.strip_suffix(']'))
                    .and_then(|len| len.parse().ok())
                    .unwrap_or_else(|| panic!("{entry}: type {array}")),
            };
            assert_eq!((field.0, field.1), (offset, width), "{entry}.{}: offset, size", field.3);
            offset += width;
            field
        })
        .collect();
    assert_eq!(offset, entry_len, "{entry}: the fields fill the entry");
    layout
}

/// An entry's fields by name: (offset in the encoding, bytes).
type Entry<'a> = BTreeMap<&'static str, (usize, &'a [u8])>;

struct StateWalk<'a> {
    cursor: Cursor<'a>,
    /// Per section of the encoding's version: its name, start offset and entries.
    sections: Vec<(&'static str, usize, Vec<Entry<'a>>)>,
}

impl StateWalk<'_> {
    fn section(&self, name: &str) -> &[Entry<'_>] {
        let found = self.sections.iter().find(|(section, _, _)| *section == name);
        &found.unwrap_or_else(|| panic!("no section {name}")).2
    }

    fn start(&self, name: &str) -> usize {
        self.sections.iter().find(|(section, _, _)| *section == name).expect(name).1
    }
}

/// A transaction entry's size in state encodings 1-3 (`tx_v3`; `tx` since version 4).
const TX_V3_LEN_BYTES: usize = 64;

/// Walks a state encoding with FORMAT.md's tables: every byte must be claimed.
fn walk_state(bytes: &[u8]) -> StateWalk<'_> {
    let mut walk = StateWalk { cursor: Cursor::new(bytes), sections: Vec::new() };
    let version = uint(bytes.get(8..12).expect("a header")) as u32;
    for section in sections().into_iter().filter(|section| section.since_version <= version) {
        let start = walk.cursor.offset;
        let count = match section.count_len {
            0 => 1,
            len => {
                let count = uint(walk.cursor.peek(len)) as usize;
                walk.cursor.field(len, &format!("{}: count {count}", section.name));
                count
            }
        };
        // Versions 1-3 have the same sections but a shorter transaction entry (FORMAT.md).
        let layout = match (section.entry, version) {
            ("tx", 1..=3) => entry_layout("tx_v3", TX_V3_LEN_BYTES),
            (entry, _) => entry_layout(entry, section.entry_len),
        };
        let mut entries: Vec<Entry> = Vec::new();
        for index in 0..count {
            let mut entry = Entry::new();
            for &(_, size, ty, name) in &layout {
                let (offset, raw) = (walk.cursor.offset, walk.cursor.peek(size));
                let value = match name {
                    "hash_seed" => format!("{:#x}", uint(raw)),
                    _ => show(ty, raw),
                };
                let label = match section.count_len {
                    0 => format!("{name} {value}"),
                    _ => format!("{}[{index}].{name} {value}", section.entry),
                };
                entry.insert(name, (offset, walk.cursor.field(size, &label)));
            }
            if let Some(last) = entries.last().filter(|_| !section.ordered_by.is_empty()) {
                let key = |entry: &Entry| -> Vec<Vec<u8>> {
                    let fields = section.ordered_by.iter();
                    fields.map(|field| entry[field].1.iter().rev().copied().collect()).collect()
                };
                assert!(
                    key(last) < key(&entry),
                    "{}: not ordered by {:?}",
                    section.name,
                    section.ordered_by
                );
            }
            entries.push(entry);
        }
        walk.sections.push((section.name, start, entries));
    }
    assert_eq!(walk.cursor.offset, bytes.len(), "FORMAT.md's sections do not fill the encoding");
    walk
}

fn state_bytes(engine: &Engine) -> Vec<u8> {
    let mut bytes = Vec::new();
    engine.encode_state(&mut bytes);
    bytes
}

/// The engine of the genesis example.
fn new_ledger() -> Engine {
    Engine::new(EngineConfig { tx_retained: 1_024, hash_seed: 0x5eed_1ed6_e000_0001 })
}

/// Applies `script` to `engine` with `tx_id`s 1, 2, ... one second apart; returns the results.
fn run(engine: &mut Engine, script: &[CommandBody]) -> Vec<ResultCode> {
    let mut fx = Effects::default();
    (1..)
        .zip(script)
        .map(|(tx_id, body)| {
            let timestamp_ns = EXAMPLE_TIMESTAMP_NS + tx_id * 1_000_000_000;
            let command = Command { tx_id: TxId(tx_id.into()), timestamp_ns, body: *body };
            engine.apply(&command, &mut fx).result
        })
        .collect()
}

fn open(account_no: &str, kind: AccountKind, limits: AccountLimits) -> CommandBody {
    let account_no = no(account_no);
    CommandBody::OpenAccount { account_no, user_id: 7, currency: code("USD"), kind, limits }
}

/// A small ledger with something in every section: a defined currency, user, channel, fee,
/// clearing and risk accounts, settled and pending deposits, a pending withdrawal that paid a
/// fee, two fee schedules, a T+1 account, a cutover, a partly captured hold, a refund and a
/// rejected command. `tx_id`s are the positions in the script, from 1.
fn scripted_ledger() -> Engine {
    use AccountKind::{Risk, System, User};
    let none = AccountLimits::default();
    let alice_limits = AccountLimits {
        tx_amount_max: Some(usd(100_000)),
        daily_debit_max: None,
        exposure_max: Some(usd(30_000)),
    };
    let deposit = |account: &str, minor| CommandBody::Deposit {
        account_no: no(account),
        channel_no: no("bank"),
        amount: usd(minor),
    };
    let transfer = |from: &str, to: &str, minor| CommandBody::Transfer {
        from: no(from),
        to: no(to),
        amount: usd(minor),
    };
    let set_fee = |kind, fixed_minor, rate_bps| CommandBody::SetFee {
        kind,
        currency: code("USD"),
        fee_account_no: no("fees"),
        fixed: usd(fixed_minor),
        rate_bps,
    };
    let script = [
        /* 1 */ CommandBody::DefineCurrency { code: code("EURC"), scale: 6 },
        /* 2 */ open("alice", User, alice_limits),
        /* 3 */ open("bob", User, none),
        /* 4 */ open("bank", System, none),
        /* 5 */ open("fees", System, none),
        /* 6 */ open("clearing", System, none),
        /* 7 */ open("risk", Risk, none),
        /* 8 */ deposit("alice", 50_000),
        /* 9 */ CommandBody::SettleBegin { target: TxId(8) },
        /* 10 */ CommandBody::SettleConfirm { target: TxId(8) },
        /* 11 */ set_fee(FeeKind::Withdraw, 100, 0),
        /* 12 */ set_fee(FeeKind::Transfer, 0, 10),
        /* 13 */
        CommandBody::SetSettlementCycle {
            account_no: no("bob"),
            t1_clearing_no: Some(no("clearing")),
        },
        /* 14 */ transfer("alice", "bob", 1_000),
        /* 15 */ CommandBody::Cutover { business_date: 20_231_114 },
        /* 16 */ transfer("alice", "bob", 500),
        /* 17 */ deposit("alice", 4_000),
        /* 18 */
        CommandBody::Withdraw {
            account_no: no("alice"),
            channel_no: no("bank"),
            amount: usd(10_000),
        },
        /* 19 */ deposit("bob", 3_000),
        /* 20 */ CommandBody::SettleBegin { target: TxId(19) },
        /* 21 */ CommandBody::SettleConfirm { target: TxId(19) },
        /* 22 */
        CommandBody::Freeze {
            account_no: no("alice"),
            amount: usd(2_000),
            expires_ns: Some(EXAMPLE_TIMESTAMP_NS + 86_400_000_000_000),
        },
        /* 23 */ CommandBody::Capture { hold: TxId(22), to: no("bob"), amount: usd(500) },
        /* 24 */ CommandBody::Refund { original: TxId(14), amount: usd(200) },
        /* 25 */ transfer("bob", "bob", 100),
    ];
    let mut engine =
        Engine::new(EngineConfig { tx_retained: 64, hash_seed: 0x0123_4567_89ab_cdef });
    let results = run(&mut engine, &script);
    let mut expected = vec![ResultCode::Ok; script.len()];
    expected[24] = ResultCode::SameAccount;
    assert_eq!(results, expected);
    engine.check_invariants().expect("a consistent ledger");
    engine
}

/// The value of an unsigned field of an entry.
fn u(entry: &Entry, field: &str) -> u128 {
    uint(entry.get(field).unwrap_or_else(|| panic!("no field {field}")).1)
}

/// The value of a signed field of an entry.
fn i(entry: &Entry, field: &str) -> i128 {
    int(entry.get(field).unwrap_or_else(|| panic!("no field {field}")).1)
}

/// `i128::MAX` stands for "no limit".
fn limit(minor: i128) -> Option<i128> {
    (minor != i128::MAX).then_some(minor)
}

/// 0xffffffff stands for "no account".
fn account(raw: u128) -> Option<AccountId> {
    (raw != u32::MAX as u128).then_some(AccountId(raw as u32))
}

#[test]
fn golden_state_of_a_new_ledger() {
    let engine = new_ledger();
    let bytes = state_bytes(&engine);
    check_golden("state-genesis", &bytes, &walk_state(&bytes).cursor.text());
    let hash = format!("`state_hash` of these bytes is `{:#034x}`", engine.state_hash());
    assert!(FORMAT_MD.contains(&hash), "FORMAT.md should say: {hash}");
    let decoded = Engine::decode_state(&bytes).expect("the genesis state decodes");
    assert_eq!(state_bytes(&decoded), bytes);
}

#[test]
fn state_layout_walk_of_a_scripted_ledger() {
    let engine = scripted_ledger();
    let bytes = state_bytes(&engine);
    let walk = walk_state(&bytes);

    let header = &walk.section("header")[0];
    assert_eq!(header["magic"].1, b"LEDGSTAT");
    assert_eq!(u(header, "version"), STATE_ENCODING_VERSION as u128);
    let config = engine.config();
    assert_eq!(u(header, "tx_retained"), config.tx_retained as u128);
    assert_eq!(u(header, "hash_seed"), config.hash_seed as u128);
    assert_eq!(u(header, "now_ns"), (EXAMPLE_TIMESTAMP_NS + 25_000_000_000) as u128);

    let risk = engine.account(&no("risk")).expect("risk").id;
    let currencies: Vec<CurrencyCode> = walk
        .section("currencies")
        .iter()
        .map(|entry| {
            let text = entry["code"].1.split(|&byte| byte == 0).next().unwrap_or_default();
            let currency = code(std::str::from_utf8(text).expect("ASCII"));
            assert_eq!(
                engine.currency(currency).map(|def| def.scale as u128),
                Some(u(entry, "scale"))
            );
            let expected_risk = (currency == code("USD")).then_some(risk);
            assert_eq!(account(u(entry, "risk_account")), expected_risk, "{currency}");
            currency
        })
        .collect();
    assert_eq!(currencies.len(), engine::BUILTIN_CURRENCIES.len() + 1);
    assert_eq!(currencies.last(), Some(&code("EURC")), "in definition order");

    let accounts = walk.section("accounts");
    assert_eq!(accounts.len() as u32, engine.account_count());
    for (index, entry) in accounts.iter().enumerate() {
        let view = engine.account_by_id(AccountId(index as u32));
        let len = u(entry, "account_no_len") as usize;
        let padded = entry["account_no"].1;
        assert_eq!(&padded[..len], view.account_no.as_bytes());
        assert!(padded[len..].iter().all(|&byte| byte == 0), "zero-padded");
        let balances =
            [i(entry, "available_minor"), i(entry, "frozen_minor"), i(entry, "ledger_minor")];
        assert_eq!(balances, [view.available_minor, view.frozen_minor, view.ledger_minor]);
        assert_eq!(limit(i(entry, "tx_amount_max_minor")), view.tx_amount_max_minor);
        assert_eq!(limit(i(entry, "daily_debit_max_minor")), view.daily_debit_max_minor);
        assert_eq!(u(entry, "user_id"), view.user_id as u128);
        assert_eq!(currencies[u(entry, "currency") as usize], view.currency);
        assert_eq!(u(entry, "status"), view.status as u128);
        assert_eq!(u(entry, "kind"), view.kind as u128);
    }
    let alice = &accounts[engine.account(&no("alice")).expect("alice").id.0 as usize];
    let day = (EXAMPLE_TIMESTAMP_NS + 22_000_000_000) / engine::limits::NS_PER_DAY;
    assert_eq!(u(alice, "debit_day"), day as u128);
    assert_eq!(i(alice, "debit_day_used_minor"), 1_001 + 500 + 10_100 + 2_000);

    let account_no = |raw: u128| account(raw).map(|id| engine.account_by_id(id).account_no);
    let txs = walk.section("transactions");
    assert_eq!(txs.len(), engine.tx_counts().0);
    for (position, entry) in txs.iter().enumerate() {
        let tx_id = TxId(u(entry, "tx_id"));
        assert_eq!(tx_id, TxId(position as u128 + 1), "oldest first");
        let view = engine.tx(tx_id).expect("remembered");
        assert_eq!(u(entry, "kind"), view.kind as u128);
        assert_eq!(u(entry, "result"), view.result as u128);
        assert_eq!(u(entry, "state"), view.state.map_or(0xff, |state| state as u128));
        assert_eq!(i(entry, "amount_minor"), view.amount_minor);
        assert_eq!(account_no(u(entry, "debit")), view.debit);
        assert_eq!(account_no(u(entry, "credit")), view.credit);
        assert_eq!(u(entry, "link"), view.linked.map_or(0, |link| link.0));
        let visited: u128 = view.history.iter().map(|state| 1 << *state as u8).sum();
        assert_eq!(u(entry, "visited"), visited);
    }
    assert_eq!(u(&txs[24], "result"), ResultCode::SameAccount as u128);

    let [hold] = walk.section("holds") else { panic!("one hold") };
    let view = engine.tx(TxId(u(hold, "hold_id"))).expect("the freeze");
    assert_eq!((view.kind, view.state), (TxKind::Freeze, Some(TxState::Frozen)));
    assert_eq!(account_no(u(hold, "account")), view.debit);
    assert_eq!([i(hold, "remaining_minor"), i(hold, "captured_minor")], [1_500, 500]);
    assert_eq!([view.held_minor, view.captured_minor], [1_500, 500]);
    assert_eq!(u(hold, "has_expiry"), 1);
    assert_eq!(u(hold, "expires_ns"), (EXAMPLE_TIMESTAMP_NS + 86_400_000_000_000) as u128);
    assert_eq!(u(hold, "day"), day as u128);

    let [refund] = walk.section("refunds") else { panic!("one refund") };
    assert_eq!(u(refund, "tx_id"), 14);
    assert_eq!(i(refund, "refunded_minor"), engine.tx(TxId(14)).expect("14").refunded_minor);

    let exposures = walk.section("exposures");
    for index in 0..engine.account_count() {
        let view = engine.account_by_id(AccountId(index));
        let exposure = engine.exposure(&view.account_no).expect("an account");
        let entry = exposures.iter().find(|entry| u(entry, "account") == index as u128);
        let tracked = exposure.unsettled_minor != 0 || exposure.exposure_max_minor.is_some();
        assert_eq!(entry.is_some(), tracked, "{}", view.account_no);
        if let Some(entry) = entry {
            assert_eq!(i(entry, "unsettled_minor"), exposure.unsettled_minor);
            assert_eq!(limit(i(entry, "limit_minor")), exposure.exposure_max_minor);
        }
    }
    assert_eq!(exposures.len(), 1, "alice: unsettled 40.00, limit 300.00");

    let fees = walk.section("fees");
    assert_eq!(fees.len(), 2);
    for entry in fees {
        let kind = FeeKind::ALL[u(entry, "kind") as usize];
        let currency = currencies[u(entry, "currency") as usize];
        let view = engine.fee(kind, currency).expect("a schedule");
        assert_eq!(account_no(u(entry, "account")), Some(view.fee_account_no));
        assert_eq!(i(entry, "fixed_minor"), view.fixed_minor);
        assert_eq!(u(entry, "rate_bps"), view.rate_bps as u128);
    }

    let [t1] = walk.section("t1 accounts") else { panic!("one T+1 account") };
    let view = engine.t1(&no("bob")).expect("bob is T+1");
    assert_eq!(account_no(u(t1, "account")), Some(no("bob")));
    assert_eq!(account_no(u(t1, "clearing")), Some(view.clearing_no));
    assert_eq!(i(t1, "pending_minor"), view.pending_minor);
    assert_eq!(view.pending_minor, 500 + 500 - 200);

    let report = engine.cutover_report().expect("a cutover");
    assert_eq!(u(&walk.section("last cutover")[0], "business_date"), report.business_date as u128);
    let check_day = |section: &str, report: &engine::CutoverReport| {
        let days = walk.section(section);
        assert_eq!(days.len(), report.channels.len(), "{section}");
        for (entry, view) in days.iter().zip(&report.channels) {
            assert_eq!(account_no(u(entry, "channel")), Some(view.channel_no));
            assert_eq!(i(entry, "deposits_minor"), view.deposits_minor);
            assert_eq!(u(entry, "deposits_count"), view.deposits_count as u128);
            assert_eq!(i(entry, "withdrawals_minor"), view.withdrawals_minor);
            assert_eq!(u(entry, "withdrawals_count"), view.withdrawals_count as u128);
        }
    };
    check_day("closed day", &report);
    assert_eq!(report.channels[0].deposits_minor, 50_000);
    // The open day shows in the report of the next cutover.
    let mut next = Engine::decode_state(&bytes).expect("decodes");
    let cutover = CommandBody::Cutover { business_date: 20_231_115 };
    let command = Command { tx_id: TxId(99), timestamp_ns: EXAMPLE_TIMESTAMP_NS, body: cutover };
    assert!(next.apply(&command, &mut Effects::default()).is_ok());
    let open_day = next.cutover_report().expect("the next cutover");
    check_day("open day", &open_day);
    assert_eq!(open_day.channels[0].deposits_minor, 3_000);

    let [fee] = walk.section("withdrawal fees") else { panic!("one pending withdrawal fee") };
    assert_eq!(u(fee, "tx_id"), 18);
    assert_eq!(account_no(u(fee, "account")), Some(no("fees")));
    assert_eq!(i(fee, "fee_minor"), 100);

    let decoded = Engine::decode_state(&bytes).expect("decodes");
    assert_eq!(state_bytes(&decoded), bytes);
    assert_eq!(decoded.state_hash(), engine.state_hash());
}

#[test]
fn open_transactions_outside_the_retention_window_come_first() {
    use AccountKind::{System, User};
    let none = AccountLimits::default();
    let script = [
        /* 1 */ open("alice", User, none),
        /* 2 */ open("bank", System, none),
        /* 3 */ open("bob", User, none),
        /* 4 */
        CommandBody::Deposit { account_no: no("alice"), channel_no: no("bank"), amount: usd(900) },
        /* 5 */
        CommandBody::Freeze { account_no: no("alice"), amount: usd(100), expires_ns: None },
        /* 6 */ CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: usd(1) },
        /* 7 */ CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: usd(2) },
        /* 8 */ CommandBody::Transfer { from: no("alice"), to: no("bob"), amount: usd(3) },
    ];
    let mut engine = Engine::new(EngineConfig { tx_retained: 3, hash_seed: 1 });
    assert!(run(&mut engine, &script).iter().all(|result| *result == ResultCode::Ok));
    assert_eq!(engine.tx_counts(), (5, 2), "the pending deposit and the hold are pinned");
    let bytes = state_bytes(&engine);
    let walk = walk_state(&bytes);
    let order: Vec<u128> = walk.section("transactions").iter().map(|tx| u(tx, "tx_id")).collect();
    assert_eq!(order, [4, 5, 6, 7, 8], "pinned by tx_id, then the window oldest first");
    let decoded = Engine::decode_state(&bytes).expect("decodes");
    assert_eq!(state_bytes(&decoded), bytes);
}

/// `bytes` as an older version: the sections that version has, and its number.
fn as_version(bytes: &[u8], version: u32) -> Vec<u8> {
    let walk = walk_state(bytes);
    let first_newer = sections().into_iter().find(|section| section.since_version > version);
    let end = first_newer.map_or(bytes.len(), |section| walk.start(section.name));
    let mut older = bytes[..end].to_vec();
    older[8..12].copy_from_slice(&version.to_le_bytes());
    older
}

#[test]
fn format_md_documents_every_state_encoding_version() {
    for version in 1..=STATE_ENCODING_VERSION {
        let heading = format!("#### State encoding version {version}");
        assert!(FORMAT_MD.lines().any(|line| line.starts_with(&heading)), "FORMAT.md: {heading}");
    }
    let newest = sections().iter().map(|section| section.since_version).max();
    assert!(newest <= Some(STATE_ENCODING_VERSION), "no section of a version not written yet");
    let written = format!(
        "#### State encoding version {STATE_ENCODING_VERSION}\n\nThe version this build writes"
    );
    assert!(FORMAT_MD.contains(&written), "FORMAT.md says which version is written");
    let number = format!("`engine::STATE_ENCODING_VERSION` = **{STATE_ENCODING_VERSION}**");
    assert!(FORMAT_MD.contains(&number), "FORMAT.md: {number}");
}

/// The checked-in version 3 state (`tests/data/state-v3.bin`, written by the version 3
/// encoder: 64-byte transaction entries with 32-bit fingerprints).
const STATE_V3: &[u8] = include_bytes!("data/state-v3.bin");

#[test]
fn older_state_encodings_still_decode() {
    let v3 = Engine::decode_state(STATE_V3).expect("version 3 decodes");
    let bytes = state_bytes(&v3);
    let transactions = |bytes: &[u8]| walk_state(bytes).section("transactions").len();
    assert_eq!(transactions(STATE_V3), transactions(&bytes), "64-byte entries read as 68");
    let carol = no("carol");

    // Version 2: no withdrawal fees, everything else as in version 3.
    let v2 = Engine::decode_state(&as_version(STATE_V3, 2)).expect("version 2 decodes");
    let reencoded = state_bytes(&v2);
    let walk = walk_state(&reencoded);
    assert!(walk.section("withdrawal fees").is_empty());
    assert!(!walk_state(&bytes).section("withdrawal fees").is_empty(), "the fixture has one");
    let end = walk.start("withdrawal fees");
    assert_eq!(reencoded[12..end], bytes[12..end], "every other section unchanged");

    // Version 1: exposures recomputed from the open deposits, without limits; no fee
    // schedules, T+1 accounts, channel totals or cutover.
    let v1 = Engine::decode_state(&as_version(STATE_V3, 1)).expect("version 1 decodes");
    let exposure = v1.exposure(&carol).expect("carol");
    assert_eq!(exposure.unsettled_minor, v3.exposure(&carol).expect("carol").unsettled_minor);
    assert!(v3.exposure(&carol).expect("carol").exposure_max_minor.is_some());
    assert_eq!(exposure.exposure_max_minor, None);
    assert!(v3.fee(FeeKind::Withdraw, code("USD")).is_some());
    assert_eq!(v1.fee(FeeKind::Withdraw, code("USD")), None);
    assert!(v3.t1(&no("bob")).is_some());
    assert_eq!(v1.t1(&no("bob")), None);
    assert_eq!(v1.cutover_report(), None);
    let reencoded = state_bytes(&v1);
    let walk = walk_state(&reencoded);
    let end = walk.start("exposures");
    assert_eq!(reencoded[12..end], bytes[12..end], "the version 1 sections unchanged");
}

/// `bytes` with `field` of entry `index` of `section` set to `value` (little endian).
fn patched(bytes: &[u8], section: &str, index: usize, field: &str, value: u128) -> Vec<u8> {
    let walk = walk_state(bytes);
    let (offset, old) = walk.section(section)[index][field];
    let mut patched = bytes.to_vec();
    patched[offset..offset + old.len()].copy_from_slice(&value.to_le_bytes()[..old.len()]);
    patched
}

#[test]
fn state_decoder_refuses_what_format_md_refuses() {
    let bytes = state_bytes(&scripted_ledger());
    let refused = |bytes: &[u8], what: &str| match Engine::decode_state(bytes) {
        Ok(_) => panic!("{what}: decoded"),
        Err(error) => error,
    };
    for version in [0, STATE_ENCODING_VERSION + 1] {
        let error = refused(&patched(&bytes, "header", 0, "version", version.into()), "version");
        assert_eq!(error.offset, 12, "version {version}: {error}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(refused(&trailing, "trailing byte").offset, bytes.len());
    for end in [0, 27, 100, bytes.len() / 2, bytes.len() - 1] {
        refused(&bytes[..end], "truncated");
    }
    let error = refused(&patched(&bytes, "transactions", 0, "tx_id", 2), "a duplicate tx_id");
    assert!(error.reason.contains("duplicate"), "{error}");
    // A count whose entries cannot fit is refused before anything is allocated.
    let walk = walk_state(&bytes);
    let start = walk.start("transactions");
    let mut counted = bytes.clone();
    counted[start..start + 8].copy_from_slice(&(bytes.len() as u64 / 64 + 1).to_le_bytes());
    assert!(refused(&counted, "count").reason.contains("larger than the rest"));
    let out_of_range = [
        ("header", "tx_retained", 0),
        ("currencies", "scale", 9),
        ("currencies", "risk_account", 99),
        ("accounts", "account_no_len", 0),
        ("accounts", "account_no_len", 33),
        ("accounts", "currency", 13),
        ("accounts", "status", 3),
        ("accounts", "kind", 3),
        ("transactions", "kind", TxKind::ALL.len() as u128),
        ("transactions", "state", TxState::ALL.len() as u128),
        ("transactions", "result", ResultCode::ALL.len() as u128),
        ("transactions", "debit", 99),
        ("holds", "account", 99),
        ("holds", "has_expiry", 2),
        ("exposures", "account", 99),
        ("exposures", "unsettled_minor", u128::MAX),
        ("fees", "kind", FeeKind::ALL.len() as u128),
        ("fees", "account", 0),
        ("fees", "rate_bps", 10_001),
        ("t1 accounts", "clearing", 0),
        ("open day", "channel", 99),
        ("last cutover", "business_date", 20_231_131),
        ("withdrawal fees", "fee_minor", 0),
    ];
    for (section, field, value) in out_of_range {
        let error = refused(&patched(&bytes, section, 0, field, value), field);
        let (offset, _) = walk.section(section)[0][field];
        assert!(error.offset > offset, "{section}.{field} = {value}: refused at {}", error.offset);
    }
}
