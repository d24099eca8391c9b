//! Tests for the snapshot container: round trip, and falling back past every kind of damage.

use std::fs;

use super::*;

fn name(seq: u64) -> String {
    format!("snap-{seq:020}.snap")
}

/// Writes snapshots 10 and 20, damages 20, and checks that loading falls back to 10.
fn check(damage: impl FnOnce(&Path), expect: SnapshotDamage) {
    let temp = tempfile::tempdir().expect("temp dir");
    write(temp.path(), 10, b"ten").expect("write");
    let newest = write(temp.path(), 20, b"twenty").expect("write");
    damage(&newest);
    let loaded = load_newest(temp.path()).expect("load");
    let snapshot = loaded.snapshot.expect("the older snapshot loads");
    assert_eq!((snapshot.seq, snapshot.payload), (10, b"ten".to_vec()));
    assert_eq!(loaded.damaged, vec![DamagedSnapshot { path: newest, damage: expect }]);
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).expect("read");
    change(&mut bytes);
    fs::write(path, bytes).expect("write");
}

#[test]
fn write_list_and_load() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("snapshots");
    assert_eq!(list(&dir).expect("list"), Vec::new());
    assert_eq!(load_newest(&dir).expect("load"), NewestSnapshot::default());
    let first = write(&dir, 7, b"seven").expect("write");
    assert_eq!(first, dir.join(name(7)));
    write(&dir, 1_000, &vec![5u8; 100_000]).expect("write");
    write(&dir, 300, b"").expect("write");
    fs::write(dir.join(format!("{}.tmp", name(5_000))), b"unfinished").expect("write");
    fs::write(dir.join("notes.txt"), b"ignored").expect("write");
    let seqs: Vec<u64> = list(&dir).expect("list").iter().map(|info| info.seq).collect();
    assert_eq!(seqs, vec![7, 300, 1_000]);
    let loaded = load_newest(&dir).expect("load");
    assert_eq!(loaded.damaged, Vec::new());
    let snapshot = loaded.snapshot.expect("snapshot");
    assert_eq!((snapshot.seq, snapshot.payload), (1_000, vec![5u8; 100_000]));
    // Rewriting a seq replaces the file atomically.
    write(&dir, 1_000, b"again").expect("write");
    let snapshot = load_newest(&dir).expect("load").snapshot.expect("snapshot");
    assert_eq!(snapshot.payload, b"again".to_vec());
}

#[test]
fn damaged_newest_falls_back_to_the_previous() {
    check(|path| edit(path, |bytes| bytes[66] ^= 1), SnapshotDamage::PayloadChecksum);
    check(|path| edit(path, |bytes| bytes[17] ^= 1), SnapshotDamage::HeaderChecksum);
    check(|path| edit(path, |bytes| bytes[3] = b'?'), SnapshotDamage::Magic);
    check(|path| edit(path, |bytes| bytes[8] = 2), SnapshotDamage::Version { version: 2 });
    check(
        |path| edit(path, |bytes| bytes.truncate(40)),
        SnapshotDamage::Truncated { len_bytes: 40 },
    );
    check(
        |path| edit(path, |bytes| bytes.truncate(67)),
        SnapshotDamage::Len { header_len_bytes: 6, file_len_bytes: 3 },
    );
    check(
        |path| edit(path, |bytes| bytes.push(0)),
        SnapshotDamage::Len { header_len_bytes: 6, file_len_bytes: 7 },
    );
    check(
        // Snapshot 10's bytes under snapshot 20's name.
        |path| {
            fs::write(path, fs::read(path.with_file_name(name(10))).expect("read")).expect("write")
        },
        SnapshotDamage::Seq { found: 10, expected: 20 },
    );
}

#[test]
fn all_damaged_loads_nothing_and_reports_each() {
    let temp = tempfile::tempdir().expect("temp dir");
    let older = write(temp.path(), 1, b"one").expect("write");
    let newer = write(temp.path(), 2, b"two").expect("write");
    edit(&older, |bytes| bytes[64] ^= 1);
    edit(&newer, |bytes| bytes[64] ^= 1);
    let loaded = load_newest(temp.path()).expect("load");
    assert_eq!(loaded.snapshot, None);
    let damaged: Vec<&Path> = loaded.damaged.iter().map(|damaged| damaged.path.as_path()).collect();
    assert_eq!(damaged, vec![newer.as_path(), older.as_path()]);
}

/// A snapshot whose write fails at its fsync or at its rename is an error and leaves no
/// snapshot behind (not even the temporary file); the one before it still loads. On the
/// in-memory disk, a snapshot written in full survives a power failure.
#[test]
fn a_failed_write_leaves_no_snapshot_and_a_finished_one_survives_power_loss() {
    let disk = crate::MemoryStorage::new();
    let storage = crate::FaultyStorage::new(disk.clone());
    let dir = Path::new("/ledger/snapshots");
    write_in(&storage, dir, 10, b"ten").expect("write");
    for op in [crate::FaultOp::SyncFile, crate::FaultOp::Rename] {
        storage.fail_next_on(op, "snap-", libc::EIO);
        let error = write_in(&storage, dir, 20, b"twenty").expect_err("the fault fails it");
        assert!(matches!(error, JournalError::Io { .. }), "{op:?}: {error}");
        let seqs: Vec<u64> = list_in(&storage, dir).expect("list").iter().map(|i| i.seq).collect();
        assert_eq!(seqs, [10], "{op:?}");
        let names = crate::Storage::list_dir(&storage, dir).expect("names");
        assert!(names.iter().all(|name| !name.ends_with(TEMP_SUFFIX)), "{op:?}: {names:?}");
    }
    write_in(&storage, dir, 30, b"thirty").expect("write");
    disk.crash();
    let newest = load_newest_in(&disk, dir).expect("load");
    let snapshot = newest.snapshot.expect("a synced snapshot survives");
    assert_eq!((snapshot.seq, snapshot.payload), (30, b"thirty".to_vec()));
}

#[test]
fn remove_after_removes_exactly_the_newer_snapshots() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("snapshots");
    assert_eq!(remove_after(&dir, 0).expect("no directory"), Vec::<PathBuf>::new());
    for seq in [0, 10, 20, 30] {
        write(&dir, seq, b"state").expect("write");
    }
    fs::write(dir.join(format!("{}.tmp", name(40))), b"unfinished").expect("write");
    let seqs =
        |dir: &Path| list(dir).expect("list").iter().map(|info| info.seq).collect::<Vec<_>>();
    assert_eq!(remove_after(&dir, 30).expect("remove"), Vec::<PathBuf>::new());
    assert_eq!(remove_after(&dir, 15).expect("remove"), [dir.join(name(30)), dir.join(name(20))]);
    assert_eq!(seqs(&dir), [0, 10]);
    assert_eq!(remove_after(&dir, 10).expect("remove"), Vec::<PathBuf>::new());
    assert_eq!(remove_after(&dir, 0).expect("remove"), [dir.join(name(10))]);
    assert_eq!(seqs(&dir), [0]);
    assert!(dir.join(format!("{}.tmp", name(40))).exists(), "temporary files are left");
}

/// Killed at every step, then the power goes: `remove_after` leaves the snapshots up to some
/// seq, never an older one gone while a newer one stays; `write_in` leaves the old snapshots
/// until its last step, and the new one complete after it.
#[test]
fn remove_after_and_write_killed_at_every_step() {
    let dir = Path::new("/ledger/snapshots");
    for changes in 0.. {
        let disk = crate::MemoryStorage::new();
        for seq in [5, 10, 20, 30] {
            write_in(&disk, dir, seq, b"state").expect("write");
        }
        let storage = crate::FaultyStorage::new(disk.clone());
        storage.stop_after(changes);
        let result = remove_after_in(&storage, dir, 7);
        disk.crash();
        let seqs: Vec<u64> = list_in(&disk, dir).expect("list").iter().map(|i| i.seq).collect();
        let expected = [5, 10, 20, 30];
        assert!((1..=4).any(|kept| seqs == expected[..kept]), "{changes} changes: {seqs:?}");
        if result.is_ok() {
            assert_eq!(seqs, [5], "{changes} changes");
            assert_eq!(changes, 6, "three removals and three directory syncs");
            break;
        }
    }
    for changes in 0.. {
        let disk = crate::MemoryStorage::new();
        write_in(&disk, dir, 5, b"five").expect("write");
        let storage = crate::FaultyStorage::new(disk.clone());
        storage.stop_after(changes);
        let result = write_in(&storage, dir, 9, b"nine");
        disk.crash();
        let newest = load_newest_in(&disk, dir).expect("load");
        assert_eq!(newest.damaged, Vec::new(), "{changes} changes");
        let snapshot = newest.snapshot.expect("a snapshot");
        if result.is_ok() {
            assert_eq!((snapshot.seq, snapshot.payload), (9, b"nine".to_vec()));
            break;
        }
        // The directory sync that makes the new name durable is the write's last step.
        assert_eq!(snapshot.seq, 5, "{changes} changes");
    }
}
