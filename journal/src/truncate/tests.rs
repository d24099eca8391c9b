//! Tests for truncation after a seq: cuts inside a segment, at segment boundaries, in an
//! earlier segment, before the first record, no-ops, refusals, and a crash at every step (a
//! `FaultyStorage` that stops after each disk change, over a `MemoryStorage` that loses power).
//! One door: `check` truncates and verifies everything a truncation promises.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::format::RECORD_HEADER_LEN_BYTES;
use crate::storage::{FaultyStorage, MemoryStorage};
use crate::{
    last_seq_in, list_segments_in, snapshot, Journal, JournalOptions, JournalReader, SyncMode,
};

/// Four pages: cuts take several steps.
const SEGMENT_LEN_BYTES: u64 = 4 * 4096;
const RECORDS: u64 = 400;

fn options() -> JournalOptions {
    JournalOptions { segment_len_bytes: SEGMENT_LEN_BYTES, sync_mode: SyncMode::Fsync }
}

fn dir() -> &'static Path {
    Path::new("/ledger/journal")
}

/// A payload of 1..=200 non-zero bytes whose content and length depend on `seq`.
fn payload(seq: u64) -> Vec<u8> {
    let len = 1 + (seq * 37 % 200) as usize;
    (0..len).map(|at| (seq as usize * 31 + at * 7) as u8 | 1).collect()
}

/// A journal on its own in-memory disk, and its bytes as built.
struct Built {
    disk: MemoryStorage,
    payloads: Vec<Vec<u8>>,
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Seq of the first record of each segment, oldest first.
    first_seqs: Vec<u64>,
}

/// `RECORDS` records over at least three segments, flushed; the power fails once afterwards,
/// so what the test sees is what is durable.
fn build() -> Built {
    let disk = MemoryStorage::new();
    let (mut journal, _) = Journal::open_in(disk.clone(), dir(), options()).expect("open");
    let payloads: Vec<Vec<u8>> = (1..=RECORDS).map(payload).collect();
    for chunk in payloads.chunks(9) {
        for payload in chunk {
            journal.append(payload).expect("append");
        }
        journal.flush().expect("flush");
    }
    drop(journal);
    disk.crash();
    let segments = list_segments_in(&disk, dir()).expect("list");
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let files = segments
        .iter()
        .map(|segment| (segment.path.clone(), disk.read(&segment.path).expect("a segment")))
        .collect();
    let first_seqs = segments.iter().map(|segment| segment.first_seq).collect();
    Built { disk, payloads, files, first_seqs }
}

/// The offset of record `seq` in a segment's bytes (the record is there).
fn offset_of(bytes: &[u8], first_seq: u64, seq: u64) -> u64 {
    let header = SegmentHeader { first_seq, segment_len_bytes: SEGMENT_LEN_BYTES };
    record_offset(bytes, header, seq).expect("the record is in the segment")
}

/// What truncating `built` after `seq` must report, computed from the built files.
fn expected_report(built: &Built, seq: u64) -> TruncateReport {
    let last = built.payloads.len() as u64;
    if seq >= last {
        return TruncateReport::unchanged(last);
    }
    let cut_seq = seq + 1;
    let holding = built.first_seqs.iter().rposition(|&first| first <= cut_seq).expect("held");
    let starts_at_cut = built.first_seqs[holding] == cut_seq && holding > 0;
    let keep = if starts_at_cut { holding } else { holding + 1 };
    let removed_segments = built.files[keep..].iter().rev().map(|(path, _)| path.clone()).collect();
    let zeroed_from = (!starts_at_cut).then(|| {
        let (path, bytes) = &built.files[holding];
        (path.clone(), offset_of(bytes, built.first_seqs[holding], cut_seq))
    });
    TruncateReport { last_seq_before: last, last_seq_after: seq, removed_segments, zeroed_from }
}

/// Truncates a fresh journal after `seq` and checks the report; the segments kept are
/// unchanged before the cut and zero after it; `last_seq_in` and recovery end at `seq`; appends
/// continue at `seq + 1` and read back after a reopen and a power failure.
fn check(seq: u64) {
    let built = build();
    let report = truncate_after_in(&built.disk, dir(), seq).expect("truncate");
    let expected = expected_report(&built, seq);
    assert_eq!(report, expected, "seq {seq}");
    let last = expected.last_seq_after;

    for (path, original) in &built.files {
        let now = built.disk.read(path);
        if expected.removed_segments.contains(path) {
            assert_eq!(now, None, "seq {seq}: {} is gone", path.display());
            continue;
        }
        let now = now.expect("a kept segment");
        let cut = match &expected.zeroed_from {
            Some((cut_path, offset)) if cut_path == path => *offset as usize,
            _ => original.len(),
        };
        assert_eq!(now.len(), original.len(), "seq {seq}: the length is kept");
        assert_eq!(now[..cut], original[..cut], "seq {seq}: {} before the cut", path.display());
        assert!(now[cut..].iter().all(|&b| b == 0), "seq {seq}: zero after the cut");
    }
    let first_seq = built.first_seqs[0];
    let last_seq = last_seq_in(&built.disk, dir()).expect("last seq");
    assert_eq!(last_seq, (last >= first_seq).then_some(last), "seq {seq}");

    let (mut journal, recovery) =
        Journal::open_in(built.disk.clone(), dir(), options()).expect("open");
    assert_eq!((recovery.next_seq, recovery.torn_tail), (last + 1, None), "seq {seq}");
    let more: Vec<Vec<u8>> = (0..3).map(|i| payload(1_000 + i)).collect();
    for (seq_after, payload) in (last + 1..).zip(&more) {
        assert_eq!(journal.append(payload).expect("append"), seq_after);
    }
    journal.flush().expect("flush");
    drop(journal);
    built.disk.crash();
    let (journal, _) = Journal::open_in(built.disk.clone(), dir(), options()).expect("reopen");
    assert_eq!(journal.next_seq(), last + 4, "seq {seq}");
    drop(journal);
    let records: Vec<Vec<u8>> = JournalReader::open_in(built.disk.clone(), dir(), first_seq)
        .expect("reader")
        .map(|record| record.expect("record").payload)
        .collect();
    let kept = &built.payloads[(first_seq - 1) as usize..last as usize];
    assert_eq!(records, [kept, &more[..]].concat(), "seq {seq}");
}

#[test]
fn cut_in_the_middle_of_the_last_segment() {
    let built = build();
    let last_first = *built.first_seqs.last().expect("segments");
    check(last_first + (RECORDS - last_first) / 2);
    check(RECORDS - 1);
}

#[test]
fn cut_in_an_earlier_segment_removes_the_later_ones() {
    let built = build();
    check(built.first_seqs[1] / 2);
    check(built.first_seqs[1] + 3);
    check(built.first_seqs[1]);
}

#[test]
fn cut_at_segment_boundaries_removes_whole_segments() {
    let built = build();
    for &first in &built.first_seqs[1..] {
        check(first - 1);
    }
}

#[test]
fn cut_before_the_first_record_keeps_the_first_segment_empty() {
    check(0);
    check(1);
}

#[test]
fn nothing_to_do_at_or_after_the_last_seq() {
    for seq in [RECORDS, RECORDS + 1, u64::MAX] {
        check(seq);
        let built = build();
        let report = truncate_after_in(&built.disk, dir(), seq).expect("truncate");
        assert!(!report.changed());
    }
    let disk = MemoryStorage::new();
    let missing = truncate_after_in(&disk, dir(), 5).expect("no journal directory");
    assert_eq!(missing, TruncateReport::unchanged(0));
}

#[test]
fn after_archival_the_journal_can_end_just_before_its_first_segment() {
    let built = build();
    let (mut journal, _) = Journal::open_in(built.disk.clone(), dir(), options()).expect("open");
    let first_seq = built.first_seqs[1];
    journal.remove_segments_before(first_seq).expect("archive");
    drop(journal);

    let refused = truncate_after_in(&built.disk, dir(), first_seq - 2);
    assert!(
        matches!(refused, Err(JournalError::TruncateArchived { seq, first_seq: found })
            if seq == first_seq - 2 && found == first_seq),
        "{refused:?}"
    );
    let report = truncate_after_in(&built.disk, dir(), first_seq - 1).expect("truncate");
    let (first_path, _) = &built.files[1];
    assert_eq!(report.zeroed_from, Some((first_path.clone(), SEGMENT_HEADER_LEN_BYTES)));
    assert_eq!(report.removed_segments.len(), built.files.len() - 2);
    assert_eq!(last_seq_in(&built.disk, dir()).expect("last seq"), None);
    let (mut journal, recovery) =
        Journal::open_in(built.disk.clone(), dir(), options()).expect("open");
    assert_eq!((recovery.first_seq, recovery.next_seq), (None, first_seq));
    assert_eq!(journal.append(b"next").expect("append"), first_seq);
}

/// A cut whose range holds a torn last record zeroes it too; a no-op leaves it for recovery.
#[test]
fn a_torn_last_record_is_treated_as_recovery_treats_it() {
    let built = build();
    let (last_path, last_bytes) = built.files.last().expect("segments");
    let last_first = *built.first_seqs.last().expect("segments");
    let at = offset_of(last_bytes, last_first, RECORDS) + RECORD_HEADER_LEN_BYTES;
    let file = built.disk.open_write(last_path).expect("open");
    built.disk.write_at(&file, at, &[last_bytes[at as usize] ^ 0x10]).expect("tear");
    built.disk.sync_file(&file).expect("sync");
    assert_eq!(last_seq_in(&built.disk, dir()).expect("last seq"), Some(RECORDS - 1));

    let report = truncate_after_in(&built.disk, dir(), RECORDS - 1).expect("truncate");
    assert_eq!(report, TruncateReport::unchanged(RECORDS - 1));
    assert_eq!(
        built.disk.read(last_path).expect("kept")[at as usize],
        last_bytes[at as usize] ^ 0x10
    );

    let report = truncate_after_in(&built.disk, dir(), RECORDS - 3).expect("truncate");
    assert_eq!(report.last_seq_before, RECORDS - 1);
    let (_, recovery) = Journal::open_in(built.disk.clone(), dir(), options()).expect("open");
    assert_eq!((recovery.next_seq, recovery.torn_tail), (RECORDS - 2, None));
}

/// Flips a bit inside a record of the second (sealed) segment; returns that segment's path.
fn damage_a_sealed_segment(built: &Built) -> PathBuf {
    let (middle_path, middle_bytes) = &built.files[1];
    let at = offset_of(middle_bytes, built.first_seqs[1], built.first_seqs[1] + 2)
        + RECORD_HEADER_LEN_BYTES;
    let file = built.disk.open_write(middle_path).expect("open");
    built.disk.write_at(&file, at, &[middle_bytes[at as usize] ^ 1]).expect("damage");
    built.disk.sync_file(&file).expect("sync");
    middle_path.clone()
}

#[test]
fn a_corrupt_middle_record_is_refused_and_nothing_changes() {
    let built = build();
    let middle_path = &damage_a_sealed_segment(&built);
    let damaged = disk_files(&built);

    let refused = truncate_after_in(&built.disk, dir(), 5);
    assert!(matches!(refused, Err(JournalError::Corrupt { ref path, .. }) if path == middle_path));
    assert_eq!(disk_files(&built), damaged, "a refusal changes nothing");
    assert_eq!(list_segments_in(&built.disk, dir()).expect("list").len(), built.files.len());
}

#[test]
fn a_running_writer_locks_truncation_out() {
    let built = build();
    let (_journal, _) = Journal::open_in(built.disk.clone(), dir(), options()).expect("open");
    let locked = truncate_after_in(&built.disk, dir(), 5);
    assert!(matches!(locked, Err(JournalError::Locked { .. })), "{locked:?}");
}

/// Killed after every number of disk changes, then the power goes: the journal opens with its
/// old records up to some seq between `seq` and the old last one, byte for byte; truncating
/// again finishes the job. Returns how many of those journals recovered a torn last record (a
/// record cut by the page boundary the zeroing had reached).
fn crash_at_every_step(seq: u64) -> usize {
    let mut torn = 0;
    for changes in 0.. {
        let built = build();
        let storage = FaultyStorage::new(built.disk.clone());
        storage.stop_after(changes);
        let result = truncate_after_in(&storage, dir(), seq);
        built.disk.crash();
        let context = format!("seq {seq}, killed after {changes} changes");

        let (journal, recovery) =
            Journal::open_in(built.disk.clone(), dir(), options()).expect(&context);
        let last = recovery.next_seq - 1;
        assert!((seq..=RECORDS).contains(&last), "{context}: last seq {last}");
        torn += usize::from(recovery.torn_tail.is_some());
        drop(journal);
        assert_eq!(all_records(&built), built.payloads[..last as usize], "{context}");

        let again = truncate_after_in(&built.disk, dir(), seq).expect(&context);
        assert_eq!(again.last_seq_after, seq, "{context}");
        let (_, recovery) = Journal::open_in(built.disk.clone(), dir(), options()).expect("open");
        assert_eq!(recovery.next_seq, seq + 1, "{context}");
        if let Ok(report) = result {
            assert_eq!(report, expected_report(&built, seq), "{context}");
            assert!(changes >= 4, "{context}: several steps were interrupted");
            return torn;
        }
    }
    unreachable!("the truncation finishes once no step is refused")
}

#[test]
fn a_crash_at_every_step_leaves_a_prefix() {
    let built = build();
    assert!(crash_at_every_step(built.first_seqs[1] / 2) > 0, "a page boundary cut a record");
    assert_eq!(crash_at_every_step(built.first_seqs[1] - 1), 0, "whole segments only");
    assert!(crash_at_every_step(0) > 0, "a page boundary cut a record");
}

/// The real-file shorthands, and the order a replica uses: snapshots after the seq first.
#[test]
fn on_real_files_with_the_snapshots() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (journal_dir, snapshot_dir) =
        (crate::journal_dir(temp.path()), crate::snapshot_dir(temp.path()));
    let (mut journal, _) = Journal::open(&journal_dir, options()).expect("open");
    for seq in 1..=RECORDS {
        journal.append(&payload(seq)).expect("append");
        if seq % 100 == 0 {
            snapshot::write(&snapshot_dir, journal.flush().expect("flush"), b"state")
                .expect("snap");
        }
    }
    drop(journal);
    let before = fs::read_dir(&journal_dir).expect("list").count();
    let removed = snapshot::remove_after(&snapshot_dir, 150).expect("remove snapshots");
    assert_eq!(removed.len(), 3);
    let report = truncate_after(&journal_dir, 150).expect("truncate");
    assert_eq!((report.last_seq_before, report.last_seq_after), (RECORDS, 150));
    assert!(fs::read_dir(&journal_dir).expect("list").count() < before);
    assert_eq!(crate::last_seq(&journal_dir).expect("last seq"), Some(150));
    let (journal, recovery) = Journal::open(&journal_dir, options()).expect("open");
    assert_eq!((recovery.next_seq, journal.next_seq()), (151, 151));
}

/// `built` with the last segment damaged as a power loss mid-flush leaves it: 64 zero bytes
/// over the record `RECORDS - 20` and what follows, later records intact. Returns that seq.
fn lose_bytes_in_the_last_segment(built: &Built) -> u64 {
    let (last_path, last_bytes) = built.files.last().expect("segments");
    let last_first = *built.first_seqs.last().expect("segments");
    let damaged_seq = RECORDS - 20;
    assert!(damaged_seq > last_first, "the damage is inside the last segment");
    let at = offset_of(last_bytes, last_first, damaged_seq);
    let file = built.disk.open_write(last_path).expect("open");
    built.disk.write_at(&file, at, &[0u8; 64]).expect("lose bytes");
    built.disk.sync_file(&file).expect("sync");
    damaged_seq
}

/// Every record of the journal, read from seq 1.
fn all_records(built: &Built) -> Vec<Vec<u8>> {
    JournalReader::open_in(built.disk.clone(), dir(), 1)
        .expect("reader")
        .map(|record| record.expect("record").payload)
        .collect()
}

fn disk_files(built: &Built) -> Vec<Option<Vec<u8>>> {
    built.files.iter().map(|(path, _)| built.disk.read(path)).collect()
}

#[test]
fn a_damaged_last_segment_is_reported_and_cut_only_by_the_damage_tolerant_truncation() {
    let built = build();
    let damaged_seq = lose_bytes_in_the_last_segment(&built);
    let (last_path, _) = built.files.last().expect("segments");
    // Recovery and the strict functions refuse it.
    assert!(matches!(last_seq_in(&built.disk, dir()), Err(JournalError::Corrupt { .. })));
    assert!(Journal::open_in(built.disk.clone(), dir(), options()).is_err());
    let before = disk_files(&built);
    assert!(matches!(truncate_after_in(&built.disk, dir(), 5), Err(JournalError::Corrupt { .. })));
    // The tolerant inspection says where the intact records end.
    let tail = crate::intact_tail_in(&built.disk, dir()).expect("inspect");
    assert_eq!(tail.last_seq, Some(damaged_seq - 1));
    let damage = tail.damage.expect("damage reported");
    assert_eq!((&damage.path, damage.seq), (last_path, damaged_seq));
    assert!(damage.data_end > damage.offset + 64, "later records are still there");
    // A cut that would keep damaged records is refused and changes nothing.
    let refused = truncate_damaged_after_in(&built.disk, dir(), damaged_seq);
    assert!(
        matches!(refused, Err(JournalError::TruncateDamaged { seq, intact_last_seq })
            if seq == damaged_seq && intact_last_seq == damaged_seq - 1),
        "{refused:?}"
    );
    assert_eq!(disk_files(&built), before, "a refusal changes nothing");
    // Cut right before the damage: the journal opens with every intact record.
    let report = truncate_damaged_after_in(&built.disk, dir(), damaged_seq - 1).expect("cut");
    assert_eq!((report.last_seq_before, report.last_seq_after), (damaged_seq - 1, damaged_seq - 1));
    assert_eq!(report.zeroed_from.as_ref().map(|(path, _)| path), Some(last_path));
    let now = built.disk.read(last_path).expect("kept");
    assert!(now[damage.offset as usize..].iter().all(|&b| b == 0), "zero from the damage on");
    let (journal, recovery) = Journal::open_in(built.disk.clone(), dir(), options()).expect("open");
    assert_eq!((recovery.next_seq, recovery.torn_tail), (damaged_seq, None));
    drop(journal);
    assert_eq!(all_records(&built), built.payloads[..(damaged_seq - 1) as usize]);
    // Without damage it is `truncate_after`.
    let again = truncate_damaged_after_in(&built.disk, dir(), damaged_seq - 1).expect("no-op");
    assert!(!again.changed());
}

#[test]
fn a_damage_tolerant_cut_in_an_earlier_segment_removes_the_damaged_one() {
    let built = build();
    lose_bytes_in_the_last_segment(&built);
    let seq = built.first_seqs[1] + 3;
    let report = truncate_damaged_after_in(&built.disk, dir(), seq).expect("cut");
    let (last_path, _) = built.files.last().expect("segments");
    assert_eq!(report.removed_segments.first(), Some(last_path), "the damaged segment goes first");
    let (_, recovery) = Journal::open_in(built.disk.clone(), dir(), options()).expect("open");
    assert_eq!(recovery.next_seq, seq + 1);
}

#[test]
fn damage_in_a_sealed_segment_is_refused_by_the_tolerant_functions_too() {
    let built = build();
    let middle_path = &damage_a_sealed_segment(&built);
    let before = disk_files(&built);
    let inspected = crate::intact_tail_in(&built.disk, dir());
    assert!(
        matches!(inspected, Err(JournalError::Corrupt { ref path, .. }) if path == middle_path)
    );
    let refused = truncate_damaged_after_in(&built.disk, dir(), 5);
    assert!(matches!(refused, Err(JournalError::Corrupt { ref path, .. }) if path == middle_path));
    assert_eq!(disk_files(&built), before, "a refusal changes nothing");
}

/// The damage-tolerant cut killed after every number of disk changes, then the power goes:
/// the journal either still holds its damage (recovery refuses; the next run repairs it) or
/// opens with its intact records up to some seq at or after the cut; a second run finishes.
#[test]
fn a_crash_at_every_step_of_a_damage_tolerant_cut_leaves_a_prefix_or_the_damage() {
    let mut still_damaged = 0;
    for changes in 0.. {
        let built = build();
        let damaged_seq = lose_bytes_in_the_last_segment(&built);
        let seq = damaged_seq - 30;
        let storage = FaultyStorage::new(built.disk.clone());
        storage.stop_after(changes);
        let result = truncate_damaged_after_in(&storage, dir(), seq);
        built.disk.crash();
        let context = format!("killed after {changes} changes");
        match Journal::open_in(built.disk.clone(), dir(), options()) {
            Ok((journal, recovery)) => {
                let last = recovery.next_seq - 1;
                assert!((seq..damaged_seq).contains(&last), "{context}: last seq {last}");
                drop(journal);
                assert_eq!(all_records(&built), built.payloads[..last as usize], "{context}");
            }
            Err(JournalError::Corrupt { .. }) => {
                // The records up to the cut are intact whatever step the crash hit.
                still_damaged += 1;
                let tail = crate::intact_tail_in(&built.disk, dir()).expect(&context);
                let intact = tail.last_seq.expect("records");
                assert!(intact >= seq && tail.damage.is_some(), "{context}: intact to {intact}");
            }
            Err(error) => panic!("{context}: {error}"),
        }
        let again = truncate_damaged_after_in(&built.disk, dir(), seq).expect(&context);
        assert_eq!(again.last_seq_after, seq, "{context}");
        let (_, recovery) = Journal::open_in(built.disk.clone(), dir(), options()).expect("open");
        assert_eq!(recovery.next_seq, seq + 1, "{context}");
        if result.is_ok() {
            assert!(changes >= 2 && still_damaged >= 1, "{context}: the damage went first");
            return;
        }
    }
}
