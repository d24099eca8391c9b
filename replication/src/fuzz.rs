//! The checks of the entry fuzz target (`fuzz/fuzz_targets/decode_entry.rs`), here so that the
//! unit tests run them on stable. Arbitrary bytes are decoded as an entry as they are, and
//! again with `body_len` and `entry_hash` fixed up (so that mutations get past the hash to the
//! body parser and the decompressor). Nothing may panic, no decompression may exceed
//! `ENTRY_BODY_LEN_BYTES_MAX`, and whatever decodes must encode back: a version-1 entry to
//! exactly its bytes, a version-2 entry to an entry that decodes to the same header fields
//! and records (LZ4 has many encodings of one body; the hash pins the stored one).

use crate::entry::{
    encode_epoch_start, encode_records, encode_records_compressed, Compressor, Entry, EntryKind,
    EntryMeta, ENTRY_BODY_LEN_BYTES_MAX, ENTRY_HEADER_LEN_BYTES, ENTRY_VERSION_UNCOMPRESSED,
};

/// Runs the checks on `data` (see the module docs).
pub fn entry_bytes(data: &[u8]) {
    check_decoded(data);
    if data.len() >= ENTRY_HEADER_LEN_BYTES {
        let mut fixed = data.to_vec();
        let body_len = (data.len() - ENTRY_HEADER_LEN_BYTES) as u32;
        fixed[36..40].copy_from_slice(&body_len.to_le_bytes());
        let (header, body) = fixed.split_at(ENTRY_HEADER_LEN_BYTES);
        let hash = crate::entry::hash_entry(&header[..72], body);
        fixed[72..88].copy_from_slice(&hash.to_le_bytes());
        check_decoded(&fixed);
    }
}

fn check_decoded(bytes: &[u8]) {
    let Ok(entry) = Entry::decode(bytes) else { return };
    assert!(entry.body().len() <= ENTRY_BODY_LEN_BYTES_MAX, "decompression stays in bounds");
    assert_eq!(entry.stored_body_len as usize, bytes.len() - ENTRY_HEADER_LEN_BYTES);
    let meta = EntryMeta {
        index: entry.index,
        epoch: entry.epoch,
        first_seq: entry.first_seq,
        prev_hash: entry.prev_hash,
        state_hash: entry.state_hash,
    };
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let mut out = Vec::new();
    let head = match (entry.kind, version) {
        (EntryKind::EpochStart, _) => {
            let node = entry.node_id().expect("a decoded epoch start names its node");
            encode_epoch_start(&mut out, meta, node)
        }
        (EntryKind::Records, ENTRY_VERSION_UNCOMPRESSED) => {
            encode_records(&mut out, meta, entry.record_count, entry.body())
        }
        (EntryKind::Records, _) => {
            let mut compressor = Compressor::default();
            encode_records_compressed(
                &mut out,
                meta,
                entry.record_count,
                entry.body(),
                &mut compressor,
            )
        }
    };
    let again = Entry::decode(&out).expect("an encoded entry decodes");
    if version == ENTRY_VERSION_UNCOMPRESSED {
        assert_eq!(out, bytes, "a version-1 entry re-encodes to exactly its bytes");
        assert_eq!(head, entry.head());
    }
    assert_eq!(
        (again.kind, again.index, again.epoch, again.first_seq, again.record_count),
        (entry.kind, entry.index, entry.epoch, entry.first_seq, entry.record_count)
    );
    assert_eq!((again.prev_hash, again.state_hash), (entry.prev_hash, entry.state_hash));
    assert_eq!(again.body(), entry.body(), "the same records");
    assert_eq!(head.last_seq, entry.last_seq());
}
