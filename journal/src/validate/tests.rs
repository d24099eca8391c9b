//! Tests for read-only validation: `last_seq_in` agrees with what `Journal::open` recovers, on
//! empty, torn and damaged journals, and changes no byte.

use std::fs;
use std::path::Path;

use super::*;
use crate::{Journal, JournalOptions, SyncMode};

fn options() -> JournalOptions {
    JournalOptions { segment_len_bytes: 4096, sync_mode: SyncMode::Fsync }
}

/// Appends `count` records of 100 bytes (120 with header and padding: 33 per 4 KiB segment).
fn journal_of(dir: &Path, count: u64) {
    let (mut journal, _) = Journal::open(dir, options()).expect("open");
    for seq in 1..=count {
        assert_eq!(journal.append(&[seq as u8 | 1; 100]).expect("append"), seq);
    }
    journal.flush().expect("flush");
}

/// Every file of the directory with its bytes.
fn snapshot_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            (name, fs::read(&path).expect("read"))
        })
        .collect();
    files.sort();
    files
}

/// `last_seq` of `dir`, checked against what recovery finds on a copy of it.
fn check(dir: &Path, expect: Option<u64>) {
    let before = snapshot_of(dir);
    assert_eq!(last_seq(dir).expect("last seq"), expect);
    assert_eq!(snapshot_of(dir), before, "validation changes nothing");
    let copy = tempfile::tempdir().expect("temp dir");
    for (name, bytes) in &before {
        fs::write(copy.path().join(name), bytes).expect("copy");
    }
    let (_, recovery) = Journal::open(copy.path(), options()).expect("open");
    assert_eq!(recovery.last_seq, expect);
}

#[test]
fn last_seq_is_what_recovery_finds() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("journal");
    assert_eq!(last_seq(&dir).expect("no directory"), None);
    fs::create_dir(&dir).expect("mkdir");
    check(&dir, None);
    journal_of(&dir, 0);
    check(&dir, None);
    journal_of(&dir, 100);
    assert!(crate::list_segments(&dir).expect("list").len() >= 3);
    check(&dir, Some(100));
}

#[test]
fn a_torn_last_record_does_not_count_and_stays() {
    let temp = tempfile::tempdir().expect("temp dir");
    journal_of(temp.path(), 10);
    let segments = crate::list_segments(temp.path()).expect("list");
    let last = &segments.last().expect("a segment").path;
    // Record 10 (of 100 + 16 bytes, padded to 120) ends at 64 + 10 * 120: flip its last byte.
    let mut bytes = fs::read(last).expect("read");
    bytes[64 + 10 * 120 - 5] ^= 0x40;
    fs::write(last, &bytes).expect("write");
    check(temp.path(), Some(9));
}

#[test]
fn damage_is_refused_as_recovery_refuses_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    journal_of(temp.path(), 100);
    let segments = crate::list_segments(temp.path()).expect("list");
    let middle = &segments[1].path;
    let mut bytes = fs::read(middle).expect("read");
    bytes[64 + 120 + 20] ^= 1;
    fs::write(middle, &bytes).expect("write");
    let refused = last_seq(temp.path());
    let Err(JournalError::Corrupt { path, offset, reason, .. }) = refused else {
        panic!("expected Corrupt, got {refused:?}");
    };
    let recovery = Journal::open(temp.path(), options());
    let Err(JournalError::Corrupt {
        path: path_open,
        offset: offset_open,
        reason: reason_open,
        ..
    }) = recovery
    else {
        panic!("expected Corrupt, got {recovery:?}");
    };
    assert_eq!((path, offset, reason), (path_open, offset_open, reason_open));
    assert_eq!(offset, 64 + 120);

    // A missing segment.
    fs::remove_file(middle).expect("remove");
    let refused = last_seq(temp.path());
    assert!(
        matches!(
            &refused,
            Err(JournalError::Corrupt { reason: crate::Corruption::SegmentGap { .. }, .. })
        ),
        "{refused:?}"
    );
}
