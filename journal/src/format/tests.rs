//! Tests for the byte layout: the golden bytes printed in FORMAT.md, and the recovery decision
//! table, row by row, on an in-memory segment.

use super::*;
use crate::{snapshot, Journal, JournalOptions};

const FORMAT_MD: &str = include_str!("../../FORMAT.md");

/// The bytes of the `# golden: <name>` block in FORMAT.md: lines `OFFSET: hex bytes | comment`.
fn golden(name: &str) -> Vec<u8> {
    let marker = format!("# golden: {name}");
    let start = FORMAT_MD.find(&marker).unwrap_or_else(|| panic!("FORMAT.md has no {marker}"));
    let mut bytes = Vec::new();
    for line in FORMAT_MD[start..].lines().skip(1).take_while(|line| !line.starts_with("```")) {
        let (offset, rest) = line.split_once(':').expect("golden lines start with `OFFSET:`");
        assert_eq!(usize::from_str_radix(offset.trim(), 16), Ok(bytes.len()), "{name}: {line}");
        let hex = rest.split('|').next().unwrap_or_default();
        for token in hex.split_whitespace() {
            bytes.push(u8::from_str_radix(token, 16).expect("golden bytes are hex"));
        }
    }
    bytes
}

#[test]
fn golden_bytes_of_the_worked_example() {
    let temp = tempfile::tempdir().expect("temp dir");
    let options = JournalOptions { segment_len_bytes: 65_536, ..JournalOptions::default() };
    let (mut journal, _) = Journal::open(temp.path(), options).expect("open");
    assert_eq!(journal.append(b"hello").expect("append"), 1);
    assert_eq!(journal.flush().expect("flush"), 1);
    drop(journal);
    let file = std::fs::read(temp.path().join("00000000000000000001.seg")).expect("read segment");
    assert_eq!(file.len(), 65_536);
    assert_eq!(file[..64], golden("segment-header")[..]);
    assert_eq!(file[64..88], golden("record")[..]);
    assert_eq!(first_non_zero(&file[88..]), None);

    let snapshot_path = snapshot::write(temp.path(), 42, b"state").expect("snapshot");
    let snapshot_file = std::fs::read(snapshot_path).expect("read snapshot");
    assert_eq!(snapshot_file, golden("snapshot"));
}

#[test]
fn golden_bytes_decode() {
    let mut file = golden("segment-header");
    file.extend(golden("record"));
    let header = SegmentHeader::decode(&file).expect("header");
    assert_eq!(header, SegmentHeader { first_seq: 1, segment_len_bytes: 65_536 });
    let boundary = read_boundary(&file, header.segment_len_bytes, 64, 1);
    let expected = Boundary::Record { payload_offset: 80, payload_len_bytes: 5, next_offset: 88 };
    assert_eq!(boundary, expected);
    assert_eq!(&file[80..85], b"hello");
}

const SEGMENT_LEN_BYTES: u64 = 4096;
/// Three records: at offsets 64 (24 bytes), 88 (32 bytes) and 120 (24 bytes, 1 padding byte).
const PAYLOADS: [&[u8]; 3] = [b"alpha", b"bravo-bravo", b"charlie"];

/// The three-record segment, physically full length.
fn segment() -> Vec<u8> {
    let header = SegmentHeader { first_seq: 1, segment_len_bytes: SEGMENT_LEN_BYTES };
    let mut file = header.encode().to_vec();
    for (seq, payload) in (1..).zip(PAYLOADS) {
        file.extend(encode_record(seq, payload));
    }
    file.resize(SEGMENT_LEN_BYTES as usize, 0);
    file
}

/// Scans the three-record segment after `damage`, and compares the outcome with `expect`.
fn check(is_last: bool, damage: impl FnOnce(&mut Vec<u8>), expect: &str) {
    let mut file = segment();
    damage(&mut file);
    let scanned = SegmentHeader::decode(&file).map(|header| scan_segment(&file, header, is_last));
    assert_eq!(format!("{scanned:?}"), expect);
}

#[test]
fn decision_table_end_of_log() {
    check(true, |_| {}, "Ok(Ok(SegmentScan { next_seq: 4, end_offset: 144, stop: End }))");
    check(false, |_| {}, "Ok(Ok(SegmentScan { next_seq: 4, end_offset: 144, stop: End }))");
    // Physically cut right after the last record, or inside its (zero) padding: absent = zero.
    check(
        true,
        |f| f.truncate(144),
        "Ok(Ok(SegmentScan { next_seq: 4, end_offset: 144, stop: End }))",
    );
    check(
        true,
        |f| f.truncate(143),
        "Ok(Ok(SegmentScan { next_seq: 4, end_offset: 144, stop: End }))",
    );
    // The last record never reached the disk at all.
    check(
        true,
        |f| f[120..144].fill(0),
        "Ok(Ok(SegmentScan { next_seq: 3, end_offset: 120, stop: End }))",
    );
    check(
        true,
        |f| f.truncate(120),
        "Ok(Ok(SegmentScan { next_seq: 3, end_offset: 120, stop: End }))",
    );
}

#[test]
fn decision_table_torn_tail() {
    let torn = |defect: &str, record_end: u64| {
        format!(
            "Ok(Ok(SegmentScan {{ next_seq: 3, end_offset: 120, stop: Torn {{ defect: {defect}, record_end: {record_end} }} }}))"
        )
    };
    // Payload partly written (the rest still zero, or the file cut short).
    check(true, |f| f[140..144].fill(0), &torn("Checksum", 144));
    check(true, |f| f.truncate(140), &torn("Checksum", 144));
    // Only the length word written.
    check(true, |f| f[124..144].fill(0), &torn("Checksum", 144));
    // Everything but the length word: the header alone is not zero.
    check(true, |f| f[120..124].fill(0), "Ok(Err(BadSpot { offset: 120, seq: 3, reason: DataAfterBadRecord { defect: LenZero, data_offset: 136 } }))");
    check(
        true,
        |f| {
            f[120..124].fill(0);
            f[136..144].fill(0);
        },
        &torn("LenZero", 136),
    );
    // A payload byte flipped in the last record: indistinguishable from a torn write.
    check(true, |f| f[137] ^= 1, &torn("Checksum", 144));
    // A length that cannot be right, with nothing after the header.
    check(
        true,
        |f| {
            f[120..124].copy_from_slice(&(2u32 << 20).to_le_bytes());
            f[136..144].fill(0);
        },
        &torn("LenTooLong { len_bytes: 2097152 }", 136),
    );
    check(
        true,
        |f| {
            f[120..124].copy_from_slice(&4000u32.to_le_bytes());
            f[136..144].fill(0);
        },
        &torn("PastSegmentEnd { len_bytes: 4000 }", 136),
    );
}

#[test]
fn decision_table_corruption() {
    let bad = |offset: u64, seq: u64, reason: &str| {
        format!("Ok(Err(BadSpot {{ offset: {offset}, seq: {seq}, reason: {reason} }}))")
    };
    // A middle record damaged: valid data follows.
    check(
        true,
        |f| f[100] ^= 0x40,
        &bad(88, 2, "DataAfterBadRecord { defect: Checksum, data_offset: 120 }"),
    );
    check(
        true,
        |f| f[106] ^= 0x01,
        &bad(88, 2, "DataAfterBadRecord { defect: Checksum, data_offset: 120 }"),
    );
    // A length that cannot be right, followed by the record's payload.
    check(
        true,
        |f| f[120..124].copy_from_slice(&(2u32 << 20).to_le_bytes()),
        &bad(
            120,
            3,
            "DataAfterBadRecord { defect: LenTooLong { len_bytes: 2097152 }, data_offset: 136 }",
        ),
    );
    // A corrupted length word that would swallow the last record.
    check(
        true,
        |f| f[88] = 43,
        &bad(88, 2, "RecordInsideBadRecord { defect: Checksum, record_offset: 120 }"),
    );
    // Any bad record in a segment that is followed by another.
    check(false, |f| f[137] ^= 1, &bad(120, 3, "BadRecordInSealedSegment { defect: Checksum }"));
    // The end-of-log marker, then data.
    check(
        true,
        |f| f[1000] = 7,
        &bad(144, 4, "DataAfterBadRecord { defect: EndMarker, data_offset: 1000 }"),
    );
    check(
        true,
        |f| f[4095] = 7,
        &bad(144, 4, "DataAfterBadRecord { defect: EndMarker, data_offset: 4095 }"),
    );
    // A record whose checksum verifies but whose seq is wrong is never torn.
    check(
        true,
        |f| f[120..144].copy_from_slice(&encode_record(9, b"charlie")),
        &bad(120, 3, "SeqMismatch { found: 9 }"),
    );
    // Padding is not covered by the checksum but must be zero.
    check(true, |f| f[85] = 1, &bad(64, 1, "Padding"));
    check(
        true,
        |f| {
            f[143] = 1;
            f.truncate(144);
        },
        &bad(120, 3, "Padding"),
    );
}

#[test]
fn decision_table_segment_header() {
    check(true, |f| f[0] = b'X', "Err(Corrupt(HeaderMagic))");
    check(true, |f| f[8] = 2, "Err(UnsupportedVersion(2))");
    check(true, |f| f[20] ^= 1, "Err(Corrupt(HeaderChecksum))");
    check(true, |f| f[60] ^= 1, "Err(Corrupt(HeaderChecksum))");
    check(true, |f| f.truncate(63), "Err(Corrupt(HeaderTruncated { len_bytes: 63 }))");
    check(
        true,
        |f| f.push(0),
        "Err(Corrupt(HeaderSegmentLen { segment_len_bytes: 4096, file_len_bytes: 4097 }))",
    );
    let restamp =
        |f: &mut Vec<u8>, header: SegmentHeader| f[..64].copy_from_slice(&header.encode());
    check(
        true,
        |f| restamp(f, SegmentHeader { first_seq: 1, segment_len_bytes: 4100 }),
        "Err(Corrupt(HeaderSegmentLen { segment_len_bytes: 4100, file_len_bytes: 4096 }))",
    );
    check(
        true,
        |f| restamp(f, SegmentHeader { first_seq: 0, segment_len_bytes: 4096 }),
        "Err(Corrupt(HeaderFirstSeq { found: 0, expected: 1 }))",
    );
}

#[test]
fn limits() {
    assert_eq!(record_len_bytes(1), 24);
    assert_eq!(record_len_bytes(8), 24);
    assert_eq!(record_len_bytes(9), 32);
    assert_eq!(payload_len_bytes_max(4096), 4096 - 64 - 16);
    assert_eq!(payload_len_bytes_max(SEGMENT_LEN_BYTES_DEFAULT), PAYLOAD_LEN_BYTES_MAX);
    // The largest payload fits an empty segment exactly.
    let max = payload_len_bytes_max(4096);
    assert!(SEGMENT_HEADER_LEN_BYTES + record_len_bytes(max) <= 4096);
}

#[test]
fn first_non_zero_finds_every_position() {
    for len in [0usize, 1, 63, 64, 65, 200] {
        assert_eq!(first_non_zero(&vec![0u8; len]), None);
        for at in 0..len {
            let mut bytes = vec![0u8; len];
            bytes[at] = 0x80;
            assert_eq!(first_non_zero(&bytes), Some(at));
        }
    }
}

/// A journal written by an independent encoder for format version 1, checked in: every later
/// build must keep reading it (and continue it).
#[test]
fn reads_the_checked_in_v1_journal() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1-journal");
    let records: Vec<crate::Record> = crate::JournalReader::open(&dir, 1)
        .expect("reader")
        .collect::<Result<_, _>>()
        .expect("read");
    let payloads: Vec<&[u8]> =
        vec![b"format v1, record one", b"\x00\x01\x02 binary \xff", &[b'x'; 100]];
    let expected: Vec<crate::Record> = (1..)
        .zip(payloads)
        .map(|(seq, payload)| crate::Record { seq, payload: payload.to_vec() })
        .collect();
    assert_eq!(records, expected);

    let temp = tempfile::tempdir().expect("temp dir");
    let name = "00000000000000000001.seg";
    std::fs::copy(dir.join(name), temp.path().join(name)).expect("copy");
    let options = JournalOptions { segment_len_bytes: 4096, ..JournalOptions::default() };
    let (mut journal, recovery) = Journal::open(temp.path(), options).expect("open");
    assert_eq!((recovery.record_count, recovery.next_seq, recovery.torn_tail), (3, 4, None));
    assert_eq!(journal.append(b"v1 continued").expect("append"), 4);
}

/// The journal files `FORMAT.md`'s *Files* block lists under `journal/`: `(name, comment)`.
fn documented_journal_files() -> Vec<(String, String)> {
    let block_start = FORMAT_MD.find("DATA_DIR/\n").expect("FORMAT.md has the Files block");
    let block = &FORMAT_MD[block_start..];
    let block = &block[..block.find("```").expect("the block ends")];
    let mut files: Vec<(String, String)> = Vec::new();
    for line in block.lines().skip_while(|line| !line.trim_start().starts_with("journal/")).skip(1)
    {
        let line = line.trim();
        if line.starts_with("snapshots/") {
            break;
        }
        match line.split_once(char::is_whitespace) {
            // A comment continued on the next line.
            Some((name, comment)) if name.contains('.') => {
                files.push((name.to_string(), comment.trim().to_string()));
            }
            _ => files.last_mut().expect("a file first").1.push_str(line),
        }
    }
    files
}

/// The directory rules in FORMAT.md's *Files* block: every temporary name it lists (the spare
/// among them) is invisible to readers and removed by the writer's next open, whatever it holds.
#[test]
fn documented_temporary_files_are_ignored_and_removed() {
    let files = documented_journal_files();
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.contains(&crate::segment::SPARE_FILE_NAME), "{names:?}");
    let temporary: Vec<&(String, String)> =
        files.iter().filter(|(name, _)| name.ends_with(".seg.tmp")).collect();
    assert_eq!(temporary.len(), 2, "{files:?}");
    for (name, comment) in temporary {
        assert!(comment.contains("never read; removed by the next open"), "{name}: {comment}");
        let temp = tempfile::tempdir().expect("temp dir");
        let options = JournalOptions { segment_len_bytes: 4096, ..JournalOptions::default() };
        let (mut journal, _) = Journal::open(temp.path(), options.clone()).expect("open");
        journal.append(b"kept").expect("append");
        journal.flush().expect("flush");
        drop(journal);
        // Even a complete segment under a temporary name is not a segment.
        let path = temp.path().join(name);
        let lookalike = std::fs::read(temp.path().join("00000000000000000001.seg")).expect("read");
        std::fs::write(&path, lookalike).expect("write");
        assert_eq!(crate::list_segments(temp.path()).expect("list").len(), 1, "{name}");
        let records: Vec<crate::Record> = crate::JournalReader::open(temp.path(), 1)
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(records.len(), 1, "{name}");
        let (_, recovery) = Journal::open(temp.path(), options).expect("open");
        assert_eq!(recovery.removed_temp_files, vec![path.clone()], "{name}");
        assert_eq!(recovery.record_count, 1, "{name}");
        assert!(!path.exists(), "{name}");
    }
}
