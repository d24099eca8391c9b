//! Tests for the reader: following a live writer across segments, an in-flight record, staying
//! read-only, and where it may start.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::*;
use crate::format::{encode_record, scan_segment, SegmentHeader};
use crate::segment::list_segments;
use crate::{Journal, JournalOptions, SyncMode};

fn options() -> JournalOptions {
    JournalOptions { segment_len_bytes: 4096, sync_mode: SyncMode::Fsync }
}

fn payload(i: u64) -> Vec<u8> {
    vec![i as u8 | 1; 1 + (i * 53 % 180) as usize]
}

/// Drains the reader up to the current end of the log; returns the sequence numbers read.
fn drain(reader: &mut JournalReader) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(record) = reader.next_ref().expect("read") {
        assert_eq!(record.payload, &payload(record.seq)[..], "seq {}", record.seq);
        seqs.push(record.seq);
    }
    seqs
}

fn append(journal: &mut Journal, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        assert_eq!(journal.append(&payload(seq)).expect("append"), seq);
    }
}

#[test]
fn follows_a_live_writer_across_segments() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = Journal::open(temp.path(), options()).expect("open");
    append(&mut journal, 1..=3);
    journal.flush().expect("flush");
    let mut reader = JournalReader::open(temp.path(), 1).expect("reader");
    assert_eq!(drain(&mut reader), vec![1, 2, 3]);
    assert_eq!(reader.next_seq(), 4);
    // Unflushed records are visible too (same page cache); rollover is followed.
    append(&mut journal, 4..=80);
    assert!(list_segments(temp.path()).expect("list").len() >= 3);
    assert_eq!(drain(&mut reader), (4..=80).collect::<Vec<u64>>());
    assert_eq!(reader.torn_tail(), None);
    append(&mut journal, 81..=81);
    assert_eq!(drain(&mut reader), vec![81]);
}

/// The last segment and the offset where its records end.
fn end_of_log(dir: &Path) -> (PathBuf, u64) {
    let last = list_segments(dir).expect("list").pop().expect("a segment");
    let bytes = fs::read(&last.path).expect("read");
    let header = SegmentHeader::decode(&bytes).expect("header");
    let scan = scan_segment(&bytes, header, true).expect("scan");
    (last.path, scan.end_offset)
}

#[test]
fn stops_at_an_in_flight_record_and_resumes_when_it_is_complete() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = Journal::open(temp.path(), options()).expect("open");
    append(&mut journal, 1..=2);
    journal.flush().expect("flush");
    drop(journal);
    let (path, offset) = end_of_log(temp.path());
    // Record 3 as another process writes it: only its length word has landed so far.
    let record = encode_record(3, &payload(3));
    let file = OpenOptions::new().write(true).open(&path).expect("open segment");
    file.write_all_at(&record[..4], offset).expect("write");

    let mut reader = JournalReader::open(temp.path(), 1).expect("reader");
    assert_eq!(drain(&mut reader), vec![1, 2]);
    let torn = reader.torn_tail().expect("the in-flight record is reported");
    assert_eq!((torn.offset, torn.seq, torn.defect), (offset, 3, Defect::Checksum));
    file.write_all_at(&record, offset).expect("write");
    assert_eq!(drain(&mut reader), vec![3]);
    assert_eq!(reader.torn_tail(), None);
}

fn snapshot_of_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let bytes = fs::read(&path).expect("read");
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn never_modifies_the_journal() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = Journal::open(temp.path(), options()).expect("open");
    append(&mut journal, 1..=40);
    journal.flush().expect("flush");
    drop(journal);
    let (path, end) = end_of_log(temp.path());
    // Tear the last record: a reader reports it, only the writer repairs it.
    let file = OpenOptions::new().write(true).open(&path).expect("open segment");
    file.write_all_at(&[0; 8], end - 8).expect("write");
    let before = snapshot_of_files(temp.path());
    let mut reader = JournalReader::open(temp.path(), 1).expect("reader");
    assert_eq!(drain(&mut reader), (1..=39).collect::<Vec<u64>>());
    assert_eq!(reader.torn_tail().map(|torn| torn.seq), Some(40));
    assert_eq!(snapshot_of_files(temp.path()), before);
}

#[test]
fn starts_at_from_seq_or_refuses() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = Journal::open(temp.path(), options()).expect("open");
    append(&mut journal, 1..=60);
    journal.flush().expect("flush");
    let zero = JournalReader::open(temp.path(), 0);
    assert!(matches!(zero, Err(JournalError::SeqUnavailable { seq: 0, first_seq: 1 })), "{zero:?}");
    for from_seq in [1, 2, 30, 59, 60] {
        let mut reader = JournalReader::open(temp.path(), from_seq).expect("reader");
        assert_eq!(drain(&mut reader), (from_seq..=60).collect::<Vec<u64>>());
    }
    // Past the end: nothing yet, then the record once it is appended.
    let mut reader = JournalReader::open(temp.path(), 62).expect("reader");
    assert_eq!(drain(&mut reader), Vec::<u64>::new());
    append(&mut journal, 61..=62);
    assert_eq!(drain(&mut reader), vec![62]);
    let missing = JournalReader::open(&temp.path().join("absent"), 1);
    assert!(matches!(missing, Err(JournalError::Io { .. })), "{missing:?}");
}
