//! The checks of the journal's fuzz target (`fuzz/fuzz_targets/journal_segment.rs`), here so
//! that the unit tests run them on stable. Arbitrary bytes become the journal's only segment:
//! after a valid header (first byte odd, so that mutations reach the records) or as the whole
//! file (first byte even, for the header checks). Nothing may panic, and the read-only
//! functions must agree with recovery: `Journal::open` accepts exactly what `last_seq`
//! accepts, ends at the seq it says, and the reader yields exactly those records; damage that
//! `intact_tail` reports is cut by `truncate_damaged_after`, after which the journal opens
//! with the intact records.

use std::path::Path;

use crate::storage::{MemoryStorage, Storage};
use crate::{
    intact_tail_in, last_seq_in, list_segments_in, truncate_damaged_after_in, Journal,
    JournalOptions, JournalReader, SyncMode,
};

/// The segment length of the fuzzed journal: two pages.
const SEGMENT_LEN_BYTES: u64 = 2 * 4096;

/// Runs the checks on `data` (see the module docs).
pub fn segment_bytes(data: &[u8]) {
    let Some((&mode, data)) = data.split_first() else { return };
    let disk = MemoryStorage::new();
    let dir = Path::new("/fuzz/journal");
    let options =
        || JournalOptions { segment_len_bytes: SEGMENT_LEN_BYTES, sync_mode: SyncMode::Fsync };
    let (journal, _) = Journal::open_in(disk.clone(), dir, options()).expect("a new journal");
    drop(journal);
    let segments = list_segments_in(&disk, dir).expect("list");
    let path = &segments.first().expect("a new journal has its first segment").path;
    let header_len = crate::format::SEGMENT_HEADER_LEN_BYTES as usize;
    let start = if mode % 2 == 1 { header_len } else { 0 };
    let len = data.len().min(SEGMENT_LEN_BYTES as usize - start);
    let file = disk.open_write(path).expect("open the segment");
    disk.write_at(&file, start as u64, &data[..len]).expect("write");
    disk.sync_file(&file).expect("sync");
    drop(file);

    let last = last_seq_in(&disk, dir);
    let tail = intact_tail_in(&disk, dir);
    if let Ok(last) = &last {
        let tail = tail.as_ref().expect("what last_seq accepts, intact_tail accepts");
        assert_eq!((&tail.last_seq, &tail.damage), (last, &None));
    }
    let opened = Journal::open_in(disk.clone(), dir, options());
    assert_eq!(opened.is_ok(), last.is_ok(), "recovery accepts what last_seq accepts");
    if let (Ok((journal, recovery)), Ok(last)) = (opened, last) {
        let first_seq = recovery.first_seq.unwrap_or(recovery.next_seq);
        assert_eq!(recovery.next_seq - 1, last.unwrap_or(first_seq - 1));
        drop(journal);
        let reader = JournalReader::open_in(disk.clone(), dir, first_seq).expect("a reader");
        let mut records = 0u64;
        for record in reader.take(4096) {
            record.expect("a journal that opens reads back");
            records += 1;
        }
        assert_eq!(records, recovery.next_seq - first_seq, "the reader yields them all");
        return;
    }
    if let Ok(tail) = tail {
        if tail.damage.is_some() {
            let keep = tail.last_seq.unwrap_or(0);
            let cut = truncate_damaged_after_in(&disk, dir, keep);
            let report = cut.expect("damage intact_tail reports is cut");
            assert_eq!(report.last_seq_after.max(keep), keep);
            let (_, recovery) = Journal::open_in(disk, dir, options()).expect("opens once cut");
            assert!(recovery.next_seq <= keep + 1, "nothing past the intact records");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// A valid journal's segment bytes after its header: records, flushed.
    fn valid_records() -> Vec<u8> {
        let disk = MemoryStorage::new();
        let dir = Path::new("/valid/journal");
        let options =
            JournalOptions { segment_len_bytes: SEGMENT_LEN_BYTES, sync_mode: SyncMode::Fsync };
        let (mut journal, _) = Journal::open_in(disk.clone(), dir, options).expect("open");
        for seq in 0..40u8 {
            journal.append(&vec![seq | 1; 1 + usize::from(seq) % 50]).expect("append");
        }
        journal.flush().expect("flush");
        drop(journal);
        let segments = list_segments_in(&disk, dir).expect("list");
        let bytes = disk.read(&segments[0].path).expect("the segment");
        let header_len = crate::format::SEGMENT_HEADER_LEN_BYTES as usize;
        let end = bytes.iter().rposition(|&b| b != 0).map_or(header_len, |at| at + 1);
        bytes[header_len..end].to_vec()
    }

    /// A smoke of the fuzz target on stable: valid records with bytes changed, cut, and zeroed
    /// in runs (a lost page), and random headers.
    #[test]
    fn changed_segments_never_panic_and_agree_with_recovery() {
        let records = valid_records();
        let mut input = vec![1u8];
        input.extend_from_slice(&records);
        segment_bytes(&input);
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for round in 0..600 {
            let mut changed = input.clone();
            match round % 3 {
                0 => {
                    let at = 1 + (next(&mut state) as usize % records.len());
                    changed[at] = next(&mut state) as u8;
                }
                1 => changed.truncate(1 + next(&mut state) as usize % records.len()),
                _ => {
                    let at = 1 + (next(&mut state) as usize % records.len());
                    let end = (at + 1 + next(&mut state) as usize % 64).min(changed.len());
                    changed[at..end].fill(0);
                }
            }
            segment_bytes(&changed);
        }
        for _ in 0..300 {
            let len = next(&mut state) as usize % 200;
            let mut header: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
            header.insert(0, 0);
            segment_bytes(&header);
        }
    }
}
