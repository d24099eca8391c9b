//! The on-disk byte layout of segments and records, every limit, and the pure decisions the
//! recovery table in `FORMAT.md` makes. No I/O here: functions take the bytes of one segment.
//!
//! Bytes past the physical end of a file read as zero ("absent"), so a segment cut short by a
//! crash or an operator looks like one whose tail was never written.

use std::sync::atomic::{fence, Ordering};

use crate::error::{Corruption, Defect};

/// Magic at the start of every segment header.
pub const SEGMENT_MAGIC: [u8; 8] = *b"LDGRJRNL";
/// The segment and record format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header at offset 0 of every segment.
pub const SEGMENT_HEADER_LEN_BYTES: u64 = 64;
/// Size of a record header (length, CRC32C, sequence number).
pub const RECORD_HEADER_LEN_BYTES: u64 = 16;
/// Records start at offsets that are multiples of this; payloads are zero-padded up to it.
pub const RECORD_ALIGN_BYTES: u64 = 8;
/// The largest payload a record may carry, checked on append and on read.
pub const PAYLOAD_LEN_BYTES_MAX: u32 = 1 << 20;
/// Segment lengths are multiples of this (one page), so msync ranges and mappings line up.
pub const SEGMENT_LEN_ALIGN_BYTES: u64 = 4096;
/// The smallest segment; tests use a few KiB, production the default.
pub const SEGMENT_LEN_BYTES_MIN: u64 = SEGMENT_LEN_ALIGN_BYTES;
/// The largest segment.
pub const SEGMENT_LEN_BYTES_MAX: u64 = 1 << 32;
/// The segment length used when [`crate::JournalOptions`] does not say otherwise.
pub const SEGMENT_LEN_BYTES_DEFAULT: u64 = 256 << 20;

const _: () = assert!(usize::BITS >= 64, "offsets inside a mapping are converted with `as usize`");
const _: () = assert!(SEGMENT_HEADER_LEN_BYTES % RECORD_ALIGN_BYTES == 0);
const _: () = assert!(RECORD_HEADER_LEN_BYTES % RECORD_ALIGN_BYTES == 0);
const _: () = assert!(SEGMENT_LEN_ALIGN_BYTES % RECORD_ALIGN_BYTES == 0);
const _: () = assert!(
    SEGMENT_LEN_BYTES_MIN
        >= SEGMENT_HEADER_LEN_BYTES + RECORD_HEADER_LEN_BYTES + RECORD_ALIGN_BYTES,
    "the smallest segment holds one record"
);
const _: () = assert!(SEGMENT_LEN_BYTES_MIN % SEGMENT_LEN_ALIGN_BYTES == 0);
const _: () = assert!(SEGMENT_LEN_BYTES_MAX % SEGMENT_LEN_ALIGN_BYTES == 0);
const _: () = assert!(SEGMENT_LEN_BYTES_DEFAULT % SEGMENT_LEN_ALIGN_BYTES == 0);
const _: () = assert!(
    SEGMENT_LEN_BYTES_MIN <= SEGMENT_LEN_BYTES_DEFAULT
        && SEGMENT_LEN_BYTES_DEFAULT <= SEGMENT_LEN_BYTES_MAX
);
const _: () = assert!(
    SEGMENT_HEADER_LEN_BYTES + RECORD_HEADER_LEN_BYTES + PAYLOAD_LEN_BYTES_MAX as u64
        <= SEGMENT_LEN_BYTES_DEFAULT,
    "a default segment holds the largest record"
);

/// The decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub first_seq: u64,
    pub segment_len_bytes: u64,
}

/// Why a segment header was refused.
#[derive(Debug)]
pub(crate) enum HeaderError {
    Corrupt(Corruption),
    UnsupportedVersion(u32),
}

impl SegmentHeader {
    /// The 64 header bytes: magic, version, reserved, first seq, segment length, reserved, CRC.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN_BYTES as usize] {
        let mut out = [0u8; SEGMENT_HEADER_LEN_BYTES as usize];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.segment_len_bytes.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks magic, version, CRC and the length against the file it was read from.
    pub fn decode(file: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let file_len_bytes = file.len() as u64;
        let Some(bytes) = file.get(..SEGMENT_HEADER_LEN_BYTES as usize) else {
            return Err(HeaderError::Corrupt(Corruption::HeaderTruncated {
                len_bytes: file_len_bytes,
            }));
        };
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Corrupt(Corruption::HeaderMagic));
        }
        let version = le_u32(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        if crc32c::crc32c(&bytes[0..60]) != le_u32(bytes, 60) {
            return Err(HeaderError::Corrupt(Corruption::HeaderChecksum));
        }
        let header =
            SegmentHeader { first_seq: le_u64(bytes, 16), segment_len_bytes: le_u64(bytes, 24) };
        let len_ok = (SEGMENT_LEN_BYTES_MIN..=SEGMENT_LEN_BYTES_MAX)
            .contains(&header.segment_len_bytes)
            && header.segment_len_bytes % SEGMENT_LEN_ALIGN_BYTES == 0
            && file_len_bytes <= header.segment_len_bytes;
        if !len_ok {
            return Err(HeaderError::Corrupt(Corruption::HeaderSegmentLen {
                segment_len_bytes: header.segment_len_bytes,
                file_len_bytes,
            }));
        }
        if header.first_seq == 0 {
            return Err(HeaderError::Corrupt(Corruption::HeaderFirstSeq { found: 0, expected: 1 }));
        }
        Ok(header)
    }
}

/// The bytes a record with this payload length occupies: header, payload, zero padding.
pub(crate) const fn record_len_bytes(payload_len_bytes: u32) -> u64 {
    let unpadded = RECORD_HEADER_LEN_BYTES + payload_len_bytes as u64;
    unpadded.div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES
}

/// The largest payload that fits an empty segment of this length (and the global maximum).
pub(crate) fn payload_len_bytes_max(segment_len_bytes: u64) -> u32 {
    let room = segment_len_bytes - SEGMENT_HEADER_LEN_BYTES - RECORD_HEADER_LEN_BYTES;
    let room = room - room % RECORD_ALIGN_BYTES;
    u32::try_from(room).unwrap_or(u32::MAX).min(PAYLOAD_LEN_BYTES_MAX)
}

/// The record CRC32C: covers the length word, the sequence number and the payload, in that order.
pub(crate) fn record_crc(len_word: [u8; 4], seq_word: [u8; 8], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len_word);
    let crc = crc32c::crc32c_append(crc, &seq_word);
    crc32c::crc32c_append(crc, payload)
}

/// What sits at a record boundary.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Boundary {
    /// A valid record with the expected sequence number.
    Record { payload_offset: u64, payload_len_bytes: u32, next_offset: u64 },
    /// No valid record: a torn write or corruption (decided by [`classify_stop`]), or the end of
    /// the log. `record_end` is where the bytes this record claims end.
    Stop { defect: Defect, record_end: u64 },
    /// A record that a torn write cannot produce (its checksum verifies, yet it is wrong).
    Corrupt(Corruption),
}

/// Decodes the record boundary at `offset` of a segment whose bytes are `file` (possibly shorter
/// than `segment_len_bytes`; absent bytes read as zero).
pub(crate) fn read_boundary(
    file: &[u8],
    segment_len_bytes: u64,
    offset: u64,
    expected_seq: u64,
) -> Boundary {
    debug_assert!(offset % RECORD_ALIGN_BYTES == 0 && offset <= segment_len_bytes);
    if offset + RECORD_HEADER_LEN_BYTES > segment_len_bytes {
        return Boundary::Stop { defect: Defect::EndMarker, record_end: offset };
    }
    let mut header = [0u8; RECORD_HEADER_LEN_BYTES as usize];
    let present = file.get(offset as usize..).unwrap_or(&[]);
    let present = &present[..present.len().min(header.len())];
    header[..present.len()].copy_from_slice(present);
    // Pairs with the writer's release fences (length word before the payload, checksum after
    // it): a reader racing a writer sees a complete record or one whose checksum fails.
    fence(Ordering::Acquire);
    let header_end = offset + RECORD_HEADER_LEN_BYTES;
    if header == [0u8; RECORD_HEADER_LEN_BYTES as usize] {
        return Boundary::Stop { defect: Defect::EndMarker, record_end: offset };
    }
    let len_bytes = le_u32(&header, 0);
    if len_bytes == 0 {
        return Boundary::Stop { defect: Defect::LenZero, record_end: header_end };
    }
    if len_bytes > PAYLOAD_LEN_BYTES_MAX {
        return Boundary::Stop { defect: Defect::LenTooLong { len_bytes }, record_end: header_end };
    }
    let record_end = offset + record_len_bytes(len_bytes);
    if record_end > segment_len_bytes {
        return Boundary::Stop {
            defect: Defect::PastSegmentEnd { len_bytes },
            record_end: header_end,
        };
    }
    let payload_end = header_end + u64::from(len_bytes);
    // A payload cut short by the end of the file cannot be verified: treat it like a torn write.
    let Some(payload) = file.get(header_end as usize..payload_end as usize) else {
        return Boundary::Stop { defect: Defect::Checksum, record_end };
    };
    let len_word = [header[0], header[1], header[2], header[3]];
    let seq_word = [
        header[8], header[9], header[10], header[11], header[12], header[13], header[14],
        header[15],
    ];
    if record_crc(len_word, seq_word, payload) != le_u32(&header, 4) {
        return Boundary::Stop { defect: Defect::Checksum, record_end };
    }
    let seq = u64::from_le_bytes(seq_word);
    if seq != expected_seq {
        return Boundary::Corrupt(Corruption::SeqMismatch { found: seq });
    }
    // Padding cut off by the end of the file reads as zero; what is present must be zero.
    let padding_end = (record_end as usize).min(file.len());
    let padding = file.get(payload_end as usize..padding_end).unwrap_or(&[]);
    if first_non_zero(padding).is_some() {
        return Boundary::Corrupt(Corruption::Padding);
    }
    Boundary::Record {
        payload_offset: header_end,
        payload_len_bytes: len_bytes,
        next_offset: record_end,
    }
}

/// How a segment's run of records ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Clean end: the end-of-log marker and zeros up to the end of the segment.
    End,
    /// A torn last record: bytes `[offset, record_end)` are to be zeroed by the writer.
    Torn { defect: Defect, record_end: u64 },
}

/// Decides between end of log, torn tail and corruption for a stop at the boundary `offset`
/// (where `expected_seq` was due): a torn tail only in the last segment, only when every byte
/// after the record is zero, and only when no valid next record hides inside the bytes the bad
/// record claims (a corrupted length word must not swallow acknowledged records).
pub(crate) fn classify_stop(
    file: &[u8],
    segment_len_bytes: u64,
    offset: u64,
    expected_seq: u64,
    (defect, record_end): (Defect, u64),
    is_last_segment: bool,
) -> Result<Stop, Corruption> {
    if defect != Defect::EndMarker && !is_last_segment {
        return Err(Corruption::BadRecordInSealedSegment { defect });
    }
    let after = file.get(record_end as usize..).unwrap_or(&[]);
    if let Some(at) = first_non_zero(after) {
        let data_offset = record_end + at as u64;
        return Err(Corruption::DataAfterBadRecord { defect, data_offset });
    }
    let inside_start = offset + RECORD_HEADER_LEN_BYTES;
    let inside = (inside_start..record_end).step_by(RECORD_ALIGN_BYTES as usize);
    for candidate in inside {
        let seq_at = candidate + 8;
        let seq_bytes = file.get(seq_at as usize..seq_at as usize + 8);
        // Cheap filter first: only a matching sequence number is worth a checksum.
        if seq_bytes != Some(&(expected_seq + 1).to_le_bytes()[..]) {
            continue;
        }
        if let Boundary::Record { .. } =
            read_boundary(file, segment_len_bytes, candidate, expected_seq + 1)
        {
            return Err(Corruption::RecordInsideBadRecord { defect, record_offset: candidate });
        }
    }
    match defect {
        Defect::EndMarker => Ok(Stop::End),
        Defect::LenZero
        | Defect::LenTooLong { .. }
        | Defect::PastSegmentEnd { .. }
        | Defect::Checksum => Ok(Stop::Torn { defect, record_end }),
    }
}

/// Where and why a segment was refused: the offset and expected seq of the bad spot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadSpot {
    pub offset: u64,
    pub seq: u64,
    pub reason: Corruption,
}

/// The run of valid records at the start of a segment and how it ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    /// Records `header.first_seq..next_seq` are valid.
    pub next_seq: u64,
    /// The boundary after the last valid record: where the next record goes.
    pub end_offset: u64,
    pub stop: Stop,
}

/// Walks every record of a segment and classifies how the run ends.
pub(crate) fn scan_segment(
    file: &[u8],
    header: SegmentHeader,
    is_last_segment: bool,
) -> Result<SegmentScan, BadSpot> {
    let mut offset = SEGMENT_HEADER_LEN_BYTES;
    let mut seq = header.first_seq;
    // Bounded: every iteration moves `offset` forward by at least one record, and
    // `read_boundary` stops before `segment_len_bytes`.
    loop {
        match read_boundary(file, header.segment_len_bytes, offset, seq) {
            Boundary::Record { next_offset, .. } => {
                offset = next_offset;
                seq += 1;
            }
            Boundary::Corrupt(reason) => return Err(BadSpot { offset, seq, reason }),
            Boundary::Stop { defect, record_end } => {
                let stop = classify_stop(
                    file,
                    header.segment_len_bytes,
                    offset,
                    seq,
                    (defect, record_end),
                    is_last_segment,
                )
                .map_err(|reason| BadSpot { offset, seq, reason })?;
                return Ok(SegmentScan { next_seq: seq, end_offset: offset, stop });
            }
        }
    }
}

/// Index of the first non-zero byte. Works a cache line at a time: tails can be hundreds of MiB.
pub(crate) fn first_non_zero(bytes: &[u8]) -> Option<usize> {
    const CHUNK_BYTES: usize = 64;
    let chunks = bytes.chunks_exact(CHUNK_BYTES);
    let rest_start = bytes.len() - chunks.remainder().len();
    for (index, chunk) in chunks.enumerate() {
        if chunk.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            let within = chunk.iter().position(|&b| b != 0).unwrap_or(0);
            return Some(index * CHUNK_BYTES + within);
        }
    }
    bytes[rest_start..].iter().position(|&b| b != 0).map(|at| rest_start + at)
}

/// Little-endian `u32` at `at`; callers pass slices long enough by construction.
fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Little-endian `u64` at `at`; callers pass slices long enough by construction.
fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// A record's bytes, encoded independently of the writer (tests build damaged segments with it).
#[cfg(test)]
pub(crate) fn encode_record(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len_word = (payload.len() as u32).to_le_bytes();
    let seq_word = seq.to_le_bytes();
    let mut out = len_word.to_vec();
    out.extend(record_crc(len_word, seq_word, payload).to_le_bytes());
    out.extend(seq_word);
    out.extend(payload);
    out.resize(record_len_bytes(payload.len() as u32) as usize, 0);
    out
}

#[cfg(test)]
mod tests;
