//! Tests for the writer: round trips across segments and reopenings, torn tails at every offset,
//! corruption, header damage, failed syncs, a full disk, archival, and a property test.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::error::Corruption;
use crate::format::{read_boundary, Boundary};
use crate::segment::{list_segments, SPARE_FILE_NAME};
use crate::storage::{FaultOp, FaultyStorage};
use crate::{segments_before, JournalReader, Record};

const SEGMENT_LEN_BYTES: u64 = 4096;

fn options() -> JournalOptions {
    JournalOptions { segment_len_bytes: SEGMENT_LEN_BYTES, sync_mode: SyncMode::Fsync }
}

/// A payload of 1..=200 bytes whose content and length depend on `i`.
fn payload(i: u64) -> Vec<u8> {
    let len = 1 + (i * 37 % 200) as usize;
    (0..len).map(|at| (i as usize * 31 + at * 7) as u8 | 1).collect()
}

fn open(dir: &Path) -> (Journal, Recovery) {
    Journal::open(dir, options()).expect("open")
}

/// Opens the journal on real files behind a [`FaultyStorage`], whose script the test writes.
fn open_faulty(dir: &Path) -> (Journal<FaultyStorage>, FaultyStorage) {
    let storage = FaultyStorage::default();
    let (journal, _) = Journal::open_in(storage.clone(), dir, options()).expect("open");
    (journal, storage)
}

fn append_all<S: Storage>(journal: &mut Journal<S>, payloads: &[Vec<u8>]) {
    for payload in payloads {
        let seq = journal.append(payload).expect("append");
        assert_eq!(seq + 1, journal.next_seq());
    }
}

/// Reads the whole journal with a reader and checks it holds exactly `expected`, from seq 1.
fn check_contents(dir: &Path, expected: &[Vec<u8>]) {
    let records: Vec<Record> =
        JournalReader::open(dir, 1).expect("reader").collect::<Result<_, _>>().expect("read");
    assert_eq!(records.len(), expected.len());
    for ((seq, record), payload) in (1..).zip(&records).zip(expected) {
        assert_eq!(record.seq, seq);
        assert_eq!(&record.payload, payload, "seq {seq}");
    }
}

/// `(seq, offset, record_len_bytes)` of every record in a segment file.
fn record_offsets(path: &Path, first_seq: u64) -> Vec<(u64, u64, u64)> {
    let file = fs::read(path).expect("read segment");
    let mut offsets = Vec::new();
    let (mut offset, mut seq) = (SEGMENT_HEADER_LEN_BYTES, first_seq);
    while let Boundary::Record { next_offset, .. } =
        read_boundary(&file, file.len() as u64, offset, seq)
    {
        offsets.push((seq, offset, next_offset - offset));
        (offset, seq) = (next_offset, seq + 1);
    }
    offsets
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
    }
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    list_segments(dir).expect("list").into_iter().map(|segment| segment.path).collect()
}

fn expect_corrupt(
    result: Result<(Journal, Recovery), JournalError>,
) -> (PathBuf, u64, u64, Corruption) {
    match result {
        Err(JournalError::Corrupt { path, offset, seq, reason }) => (path, offset, seq, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn round_trip_across_segments_and_reopen() {
    let temp = tempfile::tempdir().expect("temp dir");
    let payloads: Vec<Vec<u8>> = (1..=400).map(payload).collect();
    let (mut journal, recovery) = open(temp.path());
    assert_eq!(recovery.next_seq, 1);
    assert_eq!(recovery.record_count, 0);
    assert_eq!(journal.durable_seq(), 0);
    for (index, chunk) in payloads[..300].chunks(7).enumerate() {
        append_all(&mut journal, chunk);
        let durable = journal.flush().expect("flush");
        assert_eq!(durable, (index * 7 + chunk.len()) as u64);
        assert_eq!(journal.durable_seq(), durable);
    }
    drop(journal);
    let segment_count = segment_paths(temp.path()).len();
    assert!(segment_count > 5, "{segment_count} segments: rollover was not exercised");

    let (mut journal, recovery) = open(temp.path());
    let expected = Recovery {
        segment_count: segment_count as u64,
        record_count: 300,
        first_seq: Some(1),
        last_seq: Some(300),
        next_seq: 301,
        torn_tail: None,
        removed_temp_files: Vec::new(),
    };
    assert_eq!(recovery, expected);
    assert_eq!(journal.durable_seq(), 300);
    append_all(&mut journal, &payloads[300..]);
    assert_eq!(journal.flush().expect("flush"), 400);
    check_contents(temp.path(), &payloads);

    let from_middle: Vec<u64> = JournalReader::open(temp.path(), 123)
        .expect("reader")
        .map(|record| record.expect("record").seq)
        .collect();
    assert_eq!(from_middle, (123..=400).collect::<Vec<u64>>());
}

#[derive(Debug, Clone, Copy)]
enum Tear {
    /// The record's bytes from the offset on were never written (still zero).
    Zero,
    /// The file ends at the offset (a crash before the length was restored, or an operator cut).
    Cut,
}

/// Tears the last record of a journal at every byte offset, both ways, and checks that recovery
/// keeps exactly the records before it (or all of them, when only zero padding was lost) and
/// that appending continues with consecutive sequence numbers.
fn tear_last_record_everywhere(records_in_last_segment: usize) {
    let template = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = open(template.path());
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut push = |journal: &mut Journal, payload: Vec<u8>| {
        journal.append(&payload).expect("append");
        payloads.push(payload);
    };
    let last_len = 37; // 16 + 37 = 53 bytes, padded to 56: offsets cover header, payload, padding.
    let room = |journal: &Journal| journal.active.segment_len_bytes - journal.active.write_offset;
    // Fill the first segment until not even the last record fits (every filler fits).
    while room(&journal) >= 56 {
        let filler = if room(&journal) > 300 { payload(journal.next_seq()) } else { vec![9] };
        push(&mut journal, filler);
    }
    // 64-byte fillers: the first one starts the second segment.
    for _ in 1..records_in_last_segment {
        push(&mut journal, vec![8; 48]);
    }
    push(&mut journal, vec![0xA5; last_len]);
    journal.flush().expect("flush");
    drop(journal);

    let segments = list_segments(template.path()).expect("list");
    let last = segments.last().expect("two segments");
    let offsets = record_offsets(&last.path, last.first_seq);
    assert_eq!(offsets.len(), records_in_last_segment);
    let &(last_seq, record_offset, record_len) = offsets.last().expect("a record");
    assert_eq!(last_seq as usize, payloads.len());

    for tear_at in record_offset..record_offset + record_len {
        for tear in [Tear::Zero, Tear::Cut] {
            let case = tempfile::tempdir().expect("temp dir");
            copy_dir(template.path(), case.path());
            let path = case.path().join(last.path.file_name().expect("name"));
            let mut bytes = fs::read(&path).expect("read");
            match tear {
                Tear::Zero => {
                    bytes[tear_at as usize..(record_offset + record_len) as usize].fill(0)
                }
                Tear::Cut => bytes.truncate(tear_at as usize),
            }
            fs::write(&path, &bytes).expect("write");

            let payload_end = record_offset + RECORD_HEADER_LEN_BYTES + last_len as u64;
            let survives = tear_at >= payload_end;
            let kept = if survives { payloads.len() } else { payloads.len() - 1 };
            let context = format!("tear {tear:?} at {tear_at} (record at {record_offset})");
            let (mut journal, recovery) = open(case.path());
            assert_eq!(recovery.record_count, kept as u64, "{context}");
            assert_eq!(recovery.next_seq, kept as u64 + 1, "{context}");
            let torn = recovery.torn_tail.as_ref().map(|torn| (torn.offset, torn.seq));
            let expected_torn =
                (!survives && tear_at > record_offset).then_some((record_offset, last_seq));
            assert_eq!(torn, expected_torn, "{context}");
            assert_eq!(fs::metadata(&path).expect("stat").len(), SEGMENT_LEN_BYTES, "{context}");

            let mut expected = payloads[..kept].to_vec();
            expected.push(b"after the tear".to_vec());
            assert_eq!(journal.append(b"after the tear").expect("append"), kept as u64 + 1);
            journal.flush().expect("flush");
            drop(journal);
            let (_, recovery) = open(case.path());
            assert_eq!(recovery.torn_tail, None, "{context}");
            assert_eq!(recovery.record_count, kept as u64 + 1, "{context}");
            check_contents(case.path(), &expected);
        }
    }
}

#[test]
fn torn_tail_at_every_offset_of_a_middle_position() {
    tear_last_record_everywhere(3);
}

#[test]
fn torn_tail_at_every_offset_of_a_segment_first_record() {
    tear_last_record_everywhere(1);
}

/// A journal of three segments; returns its payloads.
fn three_segments(dir: &Path) -> Vec<Vec<u8>> {
    let (mut journal, _) = open(dir);
    let mut payloads = Vec::new();
    while segment_paths(dir).len() < 3 || payloads.len() % 10 != 0 {
        payloads.push(payload(payloads.len() as u64 + 1));
        journal.append(payloads.last().expect("pushed")).expect("append");
    }
    journal.flush().expect("flush");
    payloads
}

#[test]
fn flipped_byte_in_a_middle_record_is_corrupt() {
    let temp = tempfile::tempdir().expect("temp dir");
    three_segments(temp.path());
    let segments = list_segments(temp.path()).expect("list");
    // A middle record of the last segment, and the last record of a sealed segment.
    let last = &segments[2];
    let last_offsets = record_offsets(&last.path, last.first_seq);
    assert!(last_offsets.len() >= 3);
    let sealed = &segments[1];
    let sealed_offsets = record_offsets(&sealed.path, sealed.first_seq);
    let targets = [(last, last_offsets[1]), (sealed, *sealed_offsets.last().expect("records"))];
    for (segment, (seq, record_offset, record_len)) in targets {
        let original = fs::read(&segment.path).expect("read");
        for at in record_offset..record_offset + record_len {
            for flip in [0x01u8, 0x80] {
                let mut bytes = original.clone();
                bytes[at as usize] ^= flip;
                fs::write(&segment.path, &bytes).expect("write");
                let context = format!("{} byte {at} ^ {flip:#x}", segment.path.display());
                let (path, offset, bad_seq, reason) =
                    expect_corrupt(Journal::open(temp.path(), options()));
                assert_eq!(
                    (path, offset, bad_seq),
                    (segment.path.clone(), record_offset, seq),
                    "{context}: {reason}"
                );
                // The reader refuses the same spot.
                let read: Result<Vec<Record>, JournalError> =
                    JournalReader::open(temp.path(), 1).expect("reader").collect();
                assert!(
                    matches!(read, Err(JournalError::Corrupt { offset, .. }) if offset == record_offset),
                    "{context}: {read:?}"
                );
            }
        }
        fs::write(&segment.path, &original).expect("restore");
    }
    let (_, recovery) = open(temp.path());
    assert_eq!(recovery.torn_tail, None);
}

#[test]
fn damaged_segment_headers_are_refused() {
    let temp = tempfile::tempdir().expect("temp dir");
    three_segments(temp.path());
    let segments = list_segments(temp.path()).expect("list");
    let middle = &segments[1];
    let original = fs::read(&middle.path).expect("read");
    let open_with = |damage: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = original.clone();
        damage(&mut bytes);
        fs::write(&middle.path, &bytes).expect("write");
        Journal::open(temp.path(), options())
    };

    let (path, offset, _, reason) = expect_corrupt(open_with(&|bytes| bytes[20] ^= 1));
    assert_eq!((path, offset, reason), (middle.path.clone(), 0, Corruption::HeaderChecksum));
    let (_, _, _, reason) = expect_corrupt(open_with(&|bytes| bytes[1] = b'?'));
    assert_eq!(reason, Corruption::HeaderMagic);
    let (_, _, _, reason) = expect_corrupt(open_with(&|bytes| bytes.truncate(10)));
    assert_eq!(reason, Corruption::HeaderTruncated { len_bytes: 10 });
    let unsupported = open_with(&|bytes| bytes[8] = 9);
    assert!(
        matches!(unsupported, Err(JournalError::UnsupportedVersion { version: 9, .. })),
        "{unsupported:?}"
    );
    fs::write(&middle.path, &original).expect("restore");

    // A segment named for another seq than its header says.
    let renamed = temp.path().join(crate::segment::segment_file_name(middle.first_seq + 1));
    fs::rename(&middle.path, &renamed).expect("rename");
    let (path, _, _, reason) = expect_corrupt(Journal::open(temp.path(), options()));
    let expected =
        Corruption::HeaderFirstSeq { found: middle.first_seq, expected: middle.first_seq + 1 };
    assert_eq!((path, reason), (renamed.clone(), expected));

    // A missing segment.
    fs::remove_file(&renamed).expect("remove");
    let (path, _, _, reason) = expect_corrupt(Journal::open(temp.path(), options()));
    let expected =
        Corruption::SegmentGap { found: segments[2].first_seq, expected: middle.first_seq };
    assert_eq!((path, reason), (segments[2].path.clone(), expected));

    // A `.seg` file with a name that is not a segment name.
    fs::write(temp.path().join("12.seg"), b"").expect("write");
    let (_, _, _, reason) = expect_corrupt(Journal::open(temp.path(), options()));
    assert_eq!(reason, Corruption::FileName);
}

#[test]
fn failed_sync_poisons_the_journal() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, storage) = open_faulty(temp.path());
    journal.append(b"one").expect("append");
    assert_eq!(journal.flush().expect("flush"), 1);
    journal.append(b"two").expect("append");
    storage.fail_next(FaultOp::SyncData, libc::EIO);
    assert!(matches!(journal.flush(), Err(JournalError::SyncFailed { .. })));
    assert!(journal.is_poisoned());
    assert_eq!(journal.durable_seq(), 1);
    // Never retried: the fault is gone, but the journal stays poisoned.
    assert!(matches!(journal.flush(), Err(JournalError::Poisoned)));
    assert!(matches!(journal.append(b"three"), Err(JournalError::Poisoned)));
    assert_eq!(journal.durable_seq(), 1);
}

#[test]
fn failed_sync_at_rollover_poisons_the_journal() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, storage) = open_faulty(temp.path());
    let big = vec![1u8; 1000];
    journal.append(&big).expect("append");
    journal.append(&big).expect("append");
    journal.append(&big).expect("append");
    storage.fail_next(FaultOp::SyncData, libc::EIO);
    assert!(matches!(journal.append(&big), Err(JournalError::SyncFailed { .. })));
    assert!(matches!(journal.append(b"x"), Err(JournalError::Poisoned)));
    assert_eq!(segment_paths(temp.path()).len(), 1);
}

/// Names of the files in `dir` other than the spare segment, sorted.
fn names_besides_the_spare(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name != SPARE_FILE_NAME)
        .collect();
    names.sort();
    names
}

#[test]
fn no_space_for_a_new_segment_is_retryable() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, storage) = open_faulty(temp.path());
    let big = vec![2u8; 1000];
    let mut payloads = vec![big.clone(), big.clone(), big.clone()];
    // The disk is full: the spare asked for at the first append cannot be prepared, and the
    // rollover's own attempt (on `00000000000000000004.seg.tmp`) fails as well.
    storage.fail_next_on(FaultOp::Allocate, SPARE_FILE_NAME, libc::ENOSPC);
    append_all(&mut journal, &payloads);
    journal.flush().expect("flush");
    storage.fail_next_on(FaultOp::Allocate, "00000000000000000004", libc::ENOSPC);
    let full = journal.append(&big);
    assert!(matches!(full, Err(JournalError::NoSpace { .. })), "{full:?}");
    assert!(!journal.is_poisoned());
    assert_eq!(journal.next_seq(), 4);
    let stats = RolloverStats { rollovers: 0, from_spare: 0, spare_failures: 1 };
    assert_eq!(journal.rollover_stats(), stats);
    let names = names_besides_the_spare(temp.path());
    assert_eq!(names, vec!["00000000000000000001.seg".to_string()], "no temporary file is left");
    // Space is back: the same append succeeds with the same seq, in the spare the failed
    // rollover asked for.
    assert_eq!(journal.append(&big).expect("append"), 4);
    payloads.push(big);
    assert_eq!(journal.flush().expect("flush"), 4);
    let stats = RolloverStats { rollovers: 1, from_spare: 1, spare_failures: 1 };
    assert_eq!(journal.rollover_stats(), stats);
    drop(journal);
    let (_, recovery) = open(temp.path());
    assert_eq!((recovery.segment_count, recovery.record_count), (2, 4));
    check_contents(temp.path(), &payloads);
}

#[test]
fn a_failed_spare_is_replaced_by_a_segment_created_inline() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, storage) = open_faulty(temp.path());
    let big = vec![5u8; 1000];
    storage.fail_next_on(FaultOp::Allocate, SPARE_FILE_NAME, libc::EIO);
    let payloads = vec![big.clone(); 5];
    append_all(&mut journal, &payloads);
    assert_eq!(journal.flush().expect("flush"), 5);
    let stats = RolloverStats { rollovers: 1, from_spare: 0, spare_failures: 1 };
    assert_eq!(journal.rollover_stats(), stats);
    drop(journal);
    check_contents(temp.path(), &payloads);
}

#[test]
fn rollover_across_many_segments_installs_prepared_spares() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = open(temp.path());
    let payloads: Vec<Vec<u8>> = (1..=2_000).map(payload).collect();
    for (index, chunk) in payloads.chunks(13).enumerate() {
        append_all(&mut journal, chunk);
        // Some rounds are flushed by a split flush (the runtime's way), some inline.
        if index % 2 == 0 {
            journal.flush().expect("flush");
        } else {
            let job = journal.begin_flush().expect("begin");
            let result = job.sync();
            journal.end_flush(job, result).expect("end");
        }
    }
    assert_eq!(journal.durable_seq(), payloads.len() as u64);
    let stats = journal.rollover_stats();
    assert!(stats.rollovers > 50, "{stats:?}: rollover was not exercised");
    // The preparer is waited for, so every rollover got its spare.
    let every = RolloverStats {
        rollovers: stats.rollovers,
        from_spare: stats.rollovers,
        spare_failures: 0,
    };
    assert_eq!(stats, every);
    let segments = list_segments(temp.path()).expect("list");
    assert_eq!(segments.len() as u64, stats.rollovers + 1);
    for segment in &segments {
        let bytes = fs::read(&segment.path).expect("read");
        assert_eq!(bytes.len() as u64, SEGMENT_LEN_BYTES, "{}", segment.path.display());
        let header = format::SegmentHeader::decode(&bytes).expect("header");
        assert_eq!(header.first_seq, segment.first_seq);
    }
    // Besides the segments, at most the next spare, which readers do not see.
    let segment_names: Vec<String> = segments
        .iter()
        .map(|segment| segment.path.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names_besides_the_spare(temp.path()), segment_names);
    check_contents(temp.path(), &payloads);
    drop(journal);
    assert!(!temp.path().join(SPARE_FILE_NAME).exists(), "an unused spare is removed on drop");
    let (_, recovery) = open(temp.path());
    assert_eq!(recovery.record_count, payloads.len() as u64);
    assert_eq!(recovery.removed_temp_files, Vec::<PathBuf>::new());
}

#[test]
fn after_a_rollover_the_next_flush_makes_the_new_name_durable() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = open(temp.path());
    let big = vec![6u8; 1000];
    append_all(&mut journal, &[big.clone(), big.clone(), big.clone()]);
    let before = journal.begin_flush().expect("begin");
    assert!(before.dir.is_none(), "the first segment's name was synced when it was created");
    journal.append(&big).expect("append");
    assert_eq!(journal.rollover_stats().from_spare, 1);
    assert!(!journal.active.name_durable);
    // The job taken before the rollover concerns the sealed segment, which the rollover synced.
    let result = before.sync();
    assert_eq!(journal.end_flush(before, result).expect("end"), 3);
    assert!(!journal.active.name_durable);
    let job = journal.begin_flush().expect("begin");
    assert!(job.dir.is_some() && job.file.is_some());
    let result = job.sync();
    assert_eq!(journal.end_flush(job, result).expect("end"), 4);
    assert!(journal.active.name_durable);
    let job = journal.begin_flush().expect("begin");
    assert!(!job.needs_sync(), "nothing new: neither data nor name");

    // Segment 2 (seqs 4..=6) fills up; segment 3 (7..=9) too, before any flush, so sealing it
    // syncs its name as well as its data.
    for _ in 0..6 {
        journal.append(&big).expect("append");
    }
    assert_eq!(journal.rollover_stats().rollovers, 3);
    assert!(!journal.active.name_durable);
    assert_eq!(journal.durable_seq(), 9, "the last rollover sealed seqs 7..=9");
    assert_eq!(journal.flush().expect("flush"), 10);
    assert!(journal.active.name_durable);

    // In `SyncMode::None` a flush still syncs the new name.
    drop(journal);
    let options = JournalOptions { sync_mode: SyncMode::None, ..options() };
    let (mut journal, _) = Journal::open(temp.path(), options).expect("open");
    for _ in 0..4 {
        journal.append(&big).expect("append");
    }
    let job = journal.begin_flush().expect("begin");
    assert!(job.file.is_none() && job.dir.is_some());
    let result = job.sync();
    journal.end_flush(job, result).expect("end");
    assert!(journal.active.name_durable);
}

/// What a kill can leave behind of a spare segment.
#[derive(Debug, Clone, Copy)]
enum Leftover {
    /// Cut short while it was being prepared.
    Torn,
    /// Ready, never installed.
    Ready,
    /// Its header stamped and synced for `first_seq`, but never renamed.
    Stamped,
}

fn leave_spare(dir: &Path, kind: Leftover, first_seq: u64) {
    match kind {
        Leftover::Torn => fs::write(dir.join(SPARE_FILE_NAME), [1u8; 100]).expect("write"),
        Leftover::Ready => {
            drop(segment::prepare_spare(&FileStorage, dir, SEGMENT_LEN_BYTES).expect("spare"))
        }
        Leftover::Stamped => {
            let mut spare =
                segment::prepare_spare(&FileStorage, dir, SEGMENT_LEN_BYTES).expect("spare");
            let header = format::SegmentHeader { first_seq, segment_len_bytes: SEGMENT_LEN_BYTES };
            spare.map[..64].copy_from_slice(&header.encode());
            spare.map.flush().expect("msync");
        }
    }
}

#[test]
fn leftover_spares_are_removed_at_open_and_never_read() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = open(temp.path());
    let payloads: Vec<Vec<u8>> = (1..=30).map(payload).collect();
    append_all(&mut journal, &payloads);
    journal.flush().expect("flush");
    drop(journal);
    let spare_path = temp.path().join(SPARE_FILE_NAME);
    let mut expected = payloads.clone();
    for kind in [Leftover::Torn, Leftover::Ready, Leftover::Stamped] {
        let segment_count = list_segments(temp.path()).expect("list").len();
        leave_spare(temp.path(), kind, expected.len() as u64 + 1);
        assert!(spare_path.exists(), "{kind:?}");
        let listed = list_segments(temp.path()).expect("list").len();
        assert_eq!(listed, segment_count, "{kind:?}: not a segment");
        check_contents(temp.path(), &expected);
        let (mut journal, recovery) = open(temp.path());
        assert_eq!(recovery.removed_temp_files, vec![spare_path.clone()], "{kind:?}");
        assert_eq!(recovery.record_count, expected.len() as u64, "{kind:?}");
        assert!(!spare_path.exists(), "{kind:?}");
        // Enough to roll over: the next segment comes from a new spare.
        let more: Vec<Vec<u8>> = (1..=40).map(|i| payload(expected.len() as u64 + i)).collect();
        append_all(&mut journal, &more);
        journal.flush().expect("flush");
        assert!(journal.rollover_stats().from_spare >= 1, "{kind:?}");
        expected.extend(more);
        drop(journal);
        check_contents(temp.path(), &expected);
    }
}

#[test]
fn a_spare_installed_just_before_a_crash_is_an_empty_last_segment() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = open(temp.path());
    let big = vec![7u8; 1000];
    append_all(&mut journal, &[big.clone(), big.clone(), big.clone()]);
    journal.flush().expect("flush");
    drop(journal);
    // The crash came after the rename (and maybe before the directory sync): the name is there,
    // with a durable header and no record.
    let spare =
        segment::prepare_spare(&FileStorage, temp.path(), SEGMENT_LEN_BYTES).expect("spare");
    let installed = segment::install_spare(&FileStorage, temp.path(), spare, 4).expect("install");
    drop(installed);
    let (mut journal, recovery) = open(temp.path());
    assert_eq!((recovery.segment_count, recovery.record_count, recovery.next_seq), (2, 3, 4));
    assert_eq!(recovery.torn_tail, None);
    assert_eq!(journal.append(&big).expect("append"), 4);
    journal.flush().expect("flush");
    drop(journal);
    check_contents(temp.path(), &[big.clone(), big.clone(), big.clone(), big]);
}

#[test]
fn fallocate_unsupported_falls_back_to_writing_zeros() {
    let temp = tempfile::tempdir().expect("temp dir");
    let storage = FaultyStorage::default();
    storage.fail_next(FaultOp::Allocate, libc::EOPNOTSUPP);
    let (mut journal, _) = Journal::open_in(storage.clone(), temp.path(), options()).expect("open");
    assert_eq!(storage.pending_faults(), 0, "the fault was consumed");
    journal.append(b"zero-filled").expect("append");
    journal.flush().expect("flush");
    let path = &segment_paths(temp.path())[0];
    assert_eq!(fs::metadata(path).expect("stat").len(), SEGMENT_LEN_BYTES);
    check_contents(temp.path(), &[b"zero-filled".to_vec()]);
}

#[test]
fn a_second_writer_is_locked_out() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (journal, _) = open(temp.path());
    assert!(matches!(Journal::open(temp.path(), options()), Err(JournalError::Locked { .. })));
    drop(journal);
    open(temp.path());
}

#[test]
fn payload_limits() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = open(temp.path());
    let max = journal.payload_len_bytes_max();
    assert_eq!(
        u64::from(max),
        SEGMENT_LEN_BYTES - SEGMENT_HEADER_LEN_BYTES - RECORD_HEADER_LEN_BYTES
    );
    let refused = journal.append(b"");
    assert!(matches!(refused, Err(JournalError::PayloadLen { len_bytes: 0, .. })), "{refused:?}");
    let too_long = vec![3u8; max as usize + 1];
    assert!(matches!(journal.append(&too_long), Err(JournalError::PayloadLen { .. })));
    assert!(matches!(journal.append_with(max + 1, |_| {}), Err(JournalError::PayloadLen { .. })));
    // The largest payload fills a segment exactly, including after a partly used one.
    let largest = vec![4u8; max as usize];
    assert_eq!(journal.append(b"small").expect("append"), 1);
    assert_eq!(journal.append(&largest).expect("append"), 2);
    assert_eq!(journal.append(&largest).expect("append"), 3);
    journal.flush().expect("flush");
    check_contents(temp.path(), &[b"small".to_vec(), largest.clone(), largest]);
    let default_max = format::payload_len_bytes_max(JournalOptions::default().segment_len_bytes);
    assert_eq!(default_max, crate::PAYLOAD_LEN_BYTES_MAX);
}

#[test]
fn append_with_encodes_in_place_and_survives_a_panicking_encoder() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = open(temp.path());
    let seq = journal.append_with(4, |buf| buf.copy_from_slice(b"abcd")).expect("append");
    assert_eq!(seq, 1);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        journal.append_with(100, |buf| {
            buf[..50].fill(0xEE);
            panic!("encoder failed");
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(journal.next_seq(), 2);
    // A shorter record over the abandoned space leaves no stray bytes behind it.
    assert_eq!(journal.append(b"ef").expect("append"), 2);
    journal.flush().expect("flush");
    drop(journal);
    let (_, recovery) = open(temp.path());
    assert_eq!((recovery.record_count, recovery.torn_tail), (2, None));
    check_contents(temp.path(), &[b"abcd".to_vec(), b"ef".to_vec()]);
}

#[test]
fn leftover_temporary_segment_is_removed() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = open(temp.path());
    journal.append(b"kept").expect("append");
    journal.flush().expect("flush");
    drop(journal);
    let leftover = temp.path().join("00000000000000000002.seg.tmp");
    fs::write(&leftover, b"half a segment").expect("write");
    let (_, recovery) = open(temp.path());
    assert_eq!(recovery.removed_temp_files, vec![leftover.clone()]);
    assert!(!leftover.exists());
    assert_eq!(recovery.record_count, 1);
}

#[test]
fn invalid_options_are_refused() {
    let temp = tempfile::tempdir().expect("temp dir");
    for segment_len_bytes in [0, 4095, 4097, 2 * 4096 + 8, crate::SEGMENT_LEN_BYTES_MAX + 4096] {
        let options = JournalOptions { segment_len_bytes, sync_mode: SyncMode::Fsync };
        let result = Journal::open(temp.path(), options);
        assert!(matches!(result, Err(JournalError::InvalidOptions(_))), "{segment_len_bytes}");
    }
}

#[test]
fn sync_mode_none_reports_appended_records_as_flushed() {
    let temp = tempfile::tempdir().expect("temp dir");
    let options = JournalOptions { sync_mode: SyncMode::None, ..options() };
    let storage = FaultyStorage::default();
    let (mut journal, _) = Journal::open_in(storage.clone(), temp.path(), options).expect("open");
    journal.append(b"fast").expect("append");
    storage.fail_next(FaultOp::SyncData, libc::EIO);
    assert_eq!(journal.flush().expect("no sync happens"), 1);
    assert_eq!(storage.pending_faults(), 1, "no data sync was attempted");
}

#[test]
fn segments_are_removed_only_when_covered_and_on_request() {
    let temp = tempfile::tempdir().expect("temp dir");
    let payloads = three_segments(temp.path());
    let segments = list_segments(temp.path()).expect("list");
    let (mut journal, _) = open(temp.path());
    let boundary = segments[2].first_seq;
    assert_eq!(segments_before(temp.path(), boundary - 1).expect("list"), segments[..1].to_vec());
    assert_eq!(segments_before(temp.path(), boundary).expect("list"), segments[..2].to_vec());
    assert_eq!(segments_before(temp.path(), u64::MAX).expect("list"), segments[..2].to_vec());

    let too_far = journal.remove_segments_before(journal.durable_seq() + 2);
    assert!(matches!(too_far, Err(JournalError::NotDurable { .. })), "{too_far:?}");
    let removed = journal.remove_segments_before(boundary).expect("remove");
    assert_eq!(removed, vec![segments[0].path.clone(), segments[1].path.clone()]);
    assert_eq!(segment_paths(temp.path()), vec![segments[2].path.clone()]);
    drop(journal);

    let (_, recovery) = open(temp.path());
    assert_eq!(recovery.first_seq, Some(boundary));
    assert_eq!(recovery.last_seq, Some(payloads.len() as u64));
    let gone = JournalReader::open(temp.path(), 1);
    assert!(
        matches!(gone, Err(JournalError::SeqUnavailable { seq: 1, first_seq }) if first_seq == boundary)
    );
    let tail: Vec<Record> = JournalReader::open(temp.path(), boundary)
        .expect("reader")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(tail.len(), payloads.len() + 1 - boundary as usize);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any payload sequence, flushed at any points and reopened once in the middle, reads back
    /// exactly, with consecutive sequence numbers.
    #[test]
    fn random_payloads_round_trip(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..600), 1..120),
        flush_every in 1usize..20,
        reopen_at in 0usize..120,
    ) {
        let temp = tempfile::tempdir().expect("temp dir");
        let (mut journal, _) = open(temp.path());
        for (index, payload) in payloads.iter().enumerate() {
            if index == reopen_at {
                journal.flush().expect("flush");
                drop(journal);
                let (reopened, recovery) = open(temp.path());
                prop_assert_eq!(recovery.next_seq, index as u64 + 1);
                journal = reopened;
            }
            prop_assert_eq!(journal.append(payload).expect("append"), index as u64 + 1);
            if index % flush_every == 0 {
                prop_assert_eq!(journal.flush().expect("flush"), index as u64 + 1);
            }
        }
        journal.flush().expect("flush");
        drop(journal);
        check_contents(temp.path(), &payloads);
        let (_, recovery) = open(temp.path());
        prop_assert_eq!(recovery.record_count, payloads.len() as u64);
    }
}

#[test]
fn split_flush_syncs_on_another_thread_what_was_appended_before_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, _) = open(temp.path());
    journal.append(b"one").expect("append");
    journal.append(b"two").expect("append");
    let job = journal.begin_flush().expect("begin");
    assert_eq!((job.seq(), job.needs_sync()), (2, true));
    let syncing = std::thread::spawn(move || {
        let result = job.sync();
        (job, result)
    });
    // The writer goes on appending while the job syncs; the job does not cover this record.
    journal.append(b"three").expect("append");
    let (job, result) = syncing.join().expect("sync thread");
    assert_eq!(journal.end_flush(job, result).expect("end"), 2);
    assert_eq!(journal.durable_seq(), 2);
    let job = journal.begin_flush().expect("begin");
    assert_eq!(job.seq(), 3);
    let result = job.sync();
    assert_eq!(journal.end_flush(job, result).expect("end"), 3);
    // Nothing new: the next job has nothing to sync.
    let job = journal.begin_flush().expect("begin");
    assert!(!job.needs_sync());
    let result = job.sync();
    assert_eq!(journal.end_flush(job, result).expect("end"), 3);
    drop(journal);
    check_contents(temp.path(), &[b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
}

#[test]
fn split_flush_across_a_rollover_and_its_failure_poisons() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, storage) = open_faulty(temp.path());
    let big = vec![1u8; 1000];
    journal.append(&big).expect("append");
    let job = journal.begin_flush().expect("begin");
    // A 4 KiB segment holds three: the fourth rolls over, syncing the sealed segment in full.
    for _ in 0..4 {
        journal.append(&big).expect("append");
    }
    assert_eq!(segment_paths(temp.path()).len(), 2);
    let result = job.sync();
    assert_eq!(journal.end_flush(job, result).expect("end"), 3, "the rollover synced seqs 1..=3");
    let job = journal.begin_flush().expect("begin");
    let result = job.sync();
    assert_eq!(journal.end_flush(job, result).expect("end"), 5);

    journal.append(b"lost").expect("append");
    let job = journal.begin_flush().expect("begin");
    // Met on the thread that syncs the job.
    storage.fail_next(FaultOp::SyncData, libc::EIO);
    let result = std::thread::spawn(move || {
        let result = job.sync();
        (job, result)
    })
    .join()
    .expect("sync thread");
    assert!(matches!(journal.end_flush(result.0, result.1), Err(JournalError::SyncFailed { .. })));
    assert!(journal.is_poisoned());
    assert_eq!(journal.durable_seq(), 5);
    assert!(matches!(journal.begin_flush(), Err(JournalError::Poisoned)));
    assert!(matches!(journal.append(b"x"), Err(JournalError::Poisoned)));
}

#[test]
fn a_crash_loses_the_unsynced_records_and_may_tear_the_first_of_them() {
    for torn_bytes in [0u64, 20, 100] {
        let temp = tempfile::tempdir().expect("temp dir");
        let (mut journal, storage) = open_faulty(temp.path());
        let payloads: Vec<Vec<u8>> = (1..=5).map(payload).collect();
        append_all(&mut journal, &payloads[..3]);
        assert_eq!(journal.flush().expect("flush"), 3);
        append_all(&mut journal, &payloads[3..]);
        // Killed before the flush, then the power goes.
        drop(journal);
        storage.crash(torn_bytes).expect("crash");
        let (_, recovery) = open(temp.path());
        let context = format!("{torn_bytes} torn bytes");
        assert_eq!(recovery.record_count, 3, "{context}");
        let first_lost_len = format::record_len_bytes(payloads[3].len() as u32);
        let torn = recovery.torn_tail.map(|torn| torn.seq);
        let expected = (torn_bytes > 0 && torn_bytes < first_lost_len).then_some(4);
        assert_eq!(torn, expected, "{context}");
        check_contents(temp.path(), &payloads[..3]);
    }
}

#[test]
fn a_failed_write_while_creating_a_segment_is_retryable() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut journal, storage) = open_faulty(temp.path());
    let big = vec![3u8; 1000];
    // No spare, and the header write of the inline segment fails.
    storage.fail_next_on(FaultOp::Allocate, SPARE_FILE_NAME, libc::EIO);
    append_all(&mut journal, &[big.clone(), big.clone(), big.clone()]);
    storage.fail_next_on(FaultOp::Write, "00000000000000000004", libc::EIO);
    let failed = journal.append(&big);
    assert!(matches!(failed, Err(JournalError::Io { .. })), "{failed:?}");
    assert!(!journal.is_poisoned());
    assert_eq!(journal.append(&big).expect("retry"), 4);
    assert_eq!(journal.flush().expect("flush"), 4);
    drop(journal);
    check_contents(temp.path(), &[big.clone(), big.clone(), big.clone(), big]);
}

#[test]
fn on_the_in_memory_disk_a_power_failure_keeps_exactly_the_durable_records() {
    let storage = crate::storage::MemoryStorage::new();
    let dir = Path::new("/sim/journal");
    let (mut journal, _) = Journal::open_in(storage.clone(), dir, options()).expect("open");
    let payloads: Vec<Vec<u8>> = (1..=300).map(payload).collect();
    for chunk in payloads.chunks(7) {
        append_all(&mut journal, chunk);
        journal.flush().expect("flush");
    }
    // Unflushed records across a rollover: the sealed segment is synced whole, the new one's
    // name is not durable yet, so its records are lost with it.
    let rollovers = journal.rollover_stats().rollovers;
    let mut next = payloads.len() as u64;
    while journal.rollover_stats().rollovers == rollovers || journal.durable_seq() == next {
        next += 1;
        journal.append(&payload(next)).expect("append");
    }
    let durable_seq = journal.durable_seq();
    assert!(durable_seq > payloads.len() as u64 && durable_seq < next, "{durable_seq} {next}");
    drop(journal);
    // Killed: the page cache still holds everything, and a reader sees it all.
    let seen = JournalReader::open_in(storage.clone(), dir, 1).expect("reader").count() as u64;
    assert_eq!(seen, next);
    storage.crash();
    let (mut journal, recovery) = Journal::open_in(storage.clone(), dir, options()).expect("open");
    assert_eq!((recovery.record_count, recovery.torn_tail), (durable_seq, None));
    assert_eq!(journal.append(b"after the crash").expect("append"), durable_seq + 1);
    journal.flush().expect("flush");
    drop(journal);
    storage.crash();
    let records: Vec<Record> = JournalReader::open_in(storage.clone(), dir, 1)
        .expect("reader")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(records.len() as u64, durable_seq + 1);
    assert_eq!(
        records[..payloads.len()].iter().map(|r| &r.payload).collect::<Vec<_>>(),
        payloads.iter().collect::<Vec<_>>()
    );
    assert_eq!(records.last().map(|r| r.payload.as_slice()), Some(&b"after the crash"[..]));
    // A second writer is locked out, as on real files.
    let (_journal, _) = Journal::open_in(storage.clone(), dir, options()).expect("open");
    let second = Journal::open_in(storage, dir, options());
    assert!(matches!(second, Err(JournalError::Locked { .. })), "{second:?}");
}
