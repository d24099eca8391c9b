//! [`FrameBuffer`]: turns a byte stream into frames. Bytes go in (from a socket or a slice),
//! whole frames come out.
//!
//! The buffer's bytes stay initialised between reads (no zero-fill per read). It grows with
//! the bytes that arrive (amortised doubling), so it holds at most one frame (whose length the
//! header check bounds) plus one read chunk, and a peer that announces a large frame costs
//! memory only for what it really sends. Consumed bytes are moved out only once they are half
//! of the buffer, so a large frame is not moved per read; and the buffer shrinks back after a
//! large frame, so an idle connection holds one chunk.

use std::io::Read;

use super::{
    decode_body, decode_request_body, DecodeError, Frame, FrameHeader, Message, RequestId,
    RequestRules,
};
use crate::limits::{FRAME_LEN_BYTES_MAX, HEADER_LEN_BYTES, READ_CHUNK_LEN_BYTES};

/// A frame that could not be decoded, with the request id to answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("request {request_id}: {error}")]
pub struct FrameError {
    /// The request id of the header, or 0 after a header error or a checksum mismatch (the
    /// header may be corrupt).
    pub request_id: RequestId,
    /// What is wrong. When `error.closes_connection()`, the stream cannot be read further.
    pub error: DecodeError,
}

/// Buffered bytes of a stream, split into frames by [`FrameBuffer::next_frame`]. Its `Debug`
/// output shows lengths only: the bytes may hold a HELLO's secret.
#[derive(Default)]
pub struct FrameBuffer {
    /// Initialised storage; `start..end` is buffered and not yet returned.
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

/// A buffer larger than this is shrunk back to one read chunk once it is empty.
const KEEP_LEN_BYTES_MAX: usize = 4 * READ_CHUNK_LEN_BYTES as usize;

impl FrameBuffer {
    /// An empty buffer.
    pub fn new() -> FrameBuffer {
        FrameBuffer { bytes: vec![0; READ_CHUNK_LEN_BYTES as usize], start: 0, end: 0 }
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered_len_bytes(&self) -> usize {
        self.end - self.start
    }

    /// Whether the buffered bytes start with `prefix` (to recognise what a peer speaks when its
    /// bytes are not a frame; the bytes themselves are never shown).
    pub fn buffered_starts_with(&self, prefix: &[u8]) -> bool {
        self.bytes[self.start..self.end].starts_with(prefix)
    }

    /// Appends bytes received by other means (a non-blocking socket, a test, the fuzzer).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.make_room(bytes.len());
        self.bytes[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// One `read` call of up to `READ_CHUNK_LEN_BYTES` into the buffer. `Ok(0)` is the end of
    /// the stream. Errors (including timeouts) are the reader's. Call it only once
    /// `next_frame` returned `Ok(None)`: then the buffer never holds more than one incomplete
    /// frame plus one chunk (a reader that stops taking frames must stop reading, too).
    pub fn read_from(&mut self, reader: &mut impl Read) -> std::io::Result<usize> {
        self.make_room(READ_CHUNK_LEN_BYTES as usize);
        let chunk_end = self.end + READ_CHUNK_LEN_BYTES as usize;
        let read = reader.read(&mut self.bytes[self.end..chunk_end])?;
        self.end += read;
        Ok(read)
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed (either direction: what a
    /// client reads; a server reads with [`FrameBuffer::next_request`]).
    ///
    /// A header error (bad magic, unsupported version, reserved bytes, body too large) is
    /// returned without consuming anything: framing is lost, close the connection. A body error
    /// consumes the frame and carries its request id: answer it with an ERROR and go on,
    /// unless `error.closes_connection()` (after a checksum mismatch the request id is 0: the
    /// header may be corrupt).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        self.next_with(decode_body)
    }

    /// The next whole request a client sent, checked against what the connection admits now
    /// (`rules`, in PROTOCOL.md's order; see [`decode_request_body`]). Errors as for
    /// [`FrameBuffer::next_frame`].
    pub fn next_request(&mut self, rules: RequestRules) -> Result<Option<Frame>, FrameError> {
        self.next_with(|header, body| decode_request_body(header, body, rules))
    }

    fn next_with(
        &mut self,
        decode: impl FnOnce(&FrameHeader, &[u8]) -> Result<Message, DecodeError>,
    ) -> Result<Option<Frame>, FrameError> {
        let available = &self.bytes[self.start..self.end];
        if available.len() < HEADER_LEN_BYTES as usize {
            return Ok(None);
        }
        let header = FrameHeader::decode(available)
            .map_err(|error| FrameError { request_id: RequestId::CONNECTION, error })?;
        let frame_len = header.frame_len_bytes() as usize;
        debug_assert!(frame_len <= FRAME_LEN_BYTES_MAX as usize);
        if available.len() < frame_len {
            // Room grows with the bytes that arrive, never ahead of them: a header announcing
            // 4 MiB costs nothing until the peer sends them.
            return Ok(None);
        }
        let body = &available[HEADER_LEN_BYTES as usize..frame_len];
        let decoded = decode(&header, body);
        self.start += frame_len;
        match decoded {
            Ok(message) => Ok(Some(Frame { request_id: header.request_id, message })),
            // A checksum mismatch may mean a corrupt header: its request id is not trusted.
            Err(error @ DecodeError::ChecksumMismatch { .. }) => {
                Err(FrameError { request_id: RequestId::CONNECTION, error })
            }
            Err(error) => Err(FrameError { request_id: header.request_id, error }),
        }
    }

    /// Ensures `len` bytes of room after `end`: drops consumed bytes when they are the larger
    /// part of the buffer (or when that is enough room), grows otherwise.
    fn make_room(&mut self, len: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.bytes.len() > KEEP_LEN_BYTES_MAX && len <= READ_CHUNK_LEN_BYTES as usize {
                self.bytes = vec![0; READ_CHUNK_LEN_BYTES as usize];
            }
        } else if self.start > 0
            && (self.start >= self.end / 2 || self.bytes.len() - self.end < len)
        {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.bytes.len() - self.end < len {
            self.bytes.resize(self.end + len, 0);
        }
    }
}

impl std::fmt::Debug for FrameBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBuffer")
            .field("buffered_len_bytes", &self.buffered_len_bytes())
            .finish_non_exhaustive()
    }
}
