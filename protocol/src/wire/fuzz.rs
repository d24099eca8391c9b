//! The body of the `decode_frame` fuzz target (`fuzz/fuzz_targets/decode_frame.rs`), here so
//! that unit tests run the same checks on random and mutated frames with a stable toolchain.

use super::{decode_frame, encode_frame, FrameBuffer};
use crate::limits::HEADER_LEN_BYTES;

/// Decodes `data` three ways and checks: nothing panics, and every frame that decodes
/// re-encodes to exactly the bytes it came from.
///
/// 1. `data` as one frame ([`decode_frame`]);
/// 2. `data` with its checksum fixed up first, so that mutations reach the body decoders
///    instead of stopping at the CRC;
/// 3. `data` as a stream through [`FrameBuffer`], until it needs more bytes or framing is lost.
pub fn decode_frame_roundtrip(data: &[u8]) {
    check_one(data);
    if data.len() >= HEADER_LEN_BYTES as usize {
        let mut fixed = data.to_vec();
        let checksum = crc32c::crc32c_append(
            crc32c::crc32c(&fixed[..20]),
            &fixed[HEADER_LEN_BYTES as usize..],
        );
        fixed[20..24].copy_from_slice(&checksum.to_le_bytes());
        check_one(&fixed);
    }
    let mut buffer = FrameBuffer::new();
    buffer.extend_from_slice(data);
    let mut consumed = 0usize;
    // Each iteration consumes at least one header, so this ends.
    loop {
        let before = buffer.buffered_len_bytes();
        match buffer.next_frame() {
            Ok(Some(frame)) => {
                let used = before - buffer.buffered_len_bytes();
                let mut encoded = Vec::new();
                encode_frame(frame.request_id, &frame.message, &mut encoded)
                    .expect("a decoded frame encodes");
                assert_eq!(encoded, data[consumed..consumed + used], "re-encoding differs");
                consumed += used;
            }
            Ok(None) => break,
            Err(error) if error.error.closes_connection() => break,
            Err(_) => consumed += before - buffer.buffered_len_bytes(),
        }
    }
}

fn check_one(data: &[u8]) {
    if let Ok(frame) = decode_frame(data) {
        let mut encoded = Vec::with_capacity(data.len());
        encode_frame(frame.request_id, &frame.message, &mut encoded)
            .expect("a decoded frame encodes");
        assert_eq!(encoded, data, "re-encoding differs from the decoded bytes");
    }
}
