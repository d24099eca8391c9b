//! REPLICATION.md's entry and head tables are parsed and checked against the encoder, so the
//! spec cannot drift from the code: every field's offset and size, contiguous, covering the
//! header exactly; and a field changed at its documented offset is what the decoder sees.

use replication::entry::{
    encode_records, encode_records_compressed, push_record, Compressor, Entry, EntryMeta, Head,
};
use replication::{ENTRY_HEADER_LEN_BYTES, HEAD_LEN_BYTES};

/// `(offset, size, field)` rows of the table under `heading`.
fn table(heading: &str) -> Vec<(usize, usize, String)> {
    let doc = include_str!("../REPLICATION.md");
    let start = doc.find(heading).unwrap_or_else(|| panic!("{heading} in REPLICATION.md"));
    let mut rows = Vec::new();
    for line in doc[start..].lines().skip_while(|l| !l.starts_with("| offset")).skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Ok(offset), Ok(size)) = (cells[1].parse(), cells[2].parse()) else {
            continue; // the body's row: its size is a field
        };
        rows.push((offset, size, cells[4].to_owned()));
    }
    rows
}

fn contiguous(rows: &[(usize, usize, String)], len: usize) {
    let mut at = 0;
    for (offset, size, field) in rows {
        assert_eq!(*offset, at, "{field} starts where the previous field ends");
        at += size;
    }
    assert_eq!(at, len, "the fields cover the header exactly");
}

#[test]
fn the_entry_table_is_the_encoder_s_layout() {
    let rows = table("## Entry");
    contiguous(&rows, ENTRY_HEADER_LEN_BYTES);
    let mut body = Vec::new();
    push_record(&mut body, b"abc");
    push_record(&mut body, b"de");
    let meta = EntryMeta {
        index: 0x0102,
        epoch: 0x0304,
        first_seq: 0x0506,
        prev_hash: 7,
        state_hash: Some(8),
    };
    let mut bytes = Vec::new();
    encode_records(&mut bytes, meta, 2, &body);
    let field = |name: &str| {
        let (offset, size, _) = rows.iter().find(|(_, _, f)| f == name).expect("documented field");
        let mut value = [0u8; 16];
        value[..*size].copy_from_slice(&bytes[*offset..offset + size]);
        u128::from_le_bytes(value)
    };
    let entry = Entry::decode(&bytes).expect("decodes");
    assert_eq!(&bytes[..4], b"LREN");
    assert_eq!(field("version"), 1);
    assert_eq!(field("kind"), 1);
    assert_eq!(field("flags"), 1);
    assert_eq!(field("index"), 0x0102);
    assert_eq!(field("epoch"), 0x0304);
    assert_eq!(field("first_seq"), 0x0506);
    assert_eq!(field("count"), 2);
    assert_eq!(field("body_len"), body.len() as u128);
    assert_eq!(field("prev_hash"), 7);
    assert_eq!(field("state_hash"), 8);
    assert_eq!(field("entry_hash"), entry.entry_hash);
    assert_eq!(&bytes[ENTRY_HEADER_LEN_BYTES..], &body[..]);
}

#[test]
fn the_compressed_body_table_is_the_encoder_s_layout() {
    let rows = table("**Compressed body**");
    assert_eq!(rows, vec![(0, 4, "raw_len".to_owned())], "raw_len, then the block");
    let header = table("## Entry");
    let at = |name: &str| {
        header.iter().find(|(_, _, f)| f == name).map(|(o, _, _)| *o).expect("documented field")
    };
    let mut body = Vec::new();
    for i in 0u32..200 {
        push_record(&mut body, format!("transfer {} from acct-1 to acct-2", i % 7).as_bytes());
    }
    let meta = EntryMeta { index: 3, epoch: 1, first_seq: 10, prev_hash: 7, state_hash: None };
    let mut bytes = Vec::new();
    encode_records_compressed(&mut bytes, meta, 200, &body, &mut Compressor::default());
    let u16_at = |offset: usize| u16::from_le_bytes([bytes[offset], bytes[offset + 1]]);
    let u32_at = |offset: usize| {
        u32::from_le_bytes([bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]])
    };
    assert_eq!(u16_at(at("version")), 2);
    assert_eq!(bytes[at("flags")], 0b10, "bit 1: compressed; no checkpoint");
    assert_eq!(u32_at(at("body_len")) as usize, bytes.len() - ENTRY_HEADER_LEN_BYTES);
    assert_eq!(u32_at(ENTRY_HEADER_LEN_BYTES + rows[0].0) as usize, body.len());
    let block = &bytes[ENTRY_HEADER_LEN_BYTES + 4..];
    assert!(block.len() < body.len() / 2, "compressed");
    let entry = Entry::decode(&bytes).expect("decodes");
    assert_eq!(entry.body(), &body[..]);
}

#[test]
fn the_head_table_is_the_encoder_s_layout() {
    let rows = table("## Head");
    contiguous(&rows, HEAD_LEN_BYTES);
    let head = Head { index: 11, epoch: 12, last_seq: 13, entry_hash: 14 };
    let bytes = head.encode();
    let at = |name: &str| {
        rows.iter().find(|(_, _, f)| f == name).map(|(o, _, _)| *o).expect("documented field")
    };
    assert_eq!(&bytes[at("magic")..at("magic") + 4], b"LRHD");
    assert_eq!(bytes[at("index")], 11);
    assert_eq!(bytes[at("epoch")], 12);
    assert_eq!(bytes[at("last_seq")], 13);
    assert_eq!(bytes[at("entry_hash")], 14);
}

/// The Metrics table lists exactly the metrics the node renders.
#[test]
fn the_metrics_table_is_what_is_rendered() {
    let doc = include_str!("../REPLICATION.md");
    let start = doc.find("## Metrics").expect("a Metrics section");
    let documented: std::collections::BTreeSet<String> = doc[start..]
        .lines()
        .skip_while(|line| !line.starts_with("| metric"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.split('`').nth(1))
        .map(|name| name.split('{').next().unwrap_or(name).to_owned())
        .collect();
    let mut out = String::new();
    replication::ReplicationMetrics::default().render(&replication::Role::default(), &mut out);
    let rendered: std::collections::BTreeSet<String> = out
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert_eq!(documented, rendered);
}
