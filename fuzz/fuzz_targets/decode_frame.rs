//! Fuzz target for the wire protocol's frame decoder (protocol/PROTOCOL.md): arbitrary bytes as
//! one frame, with the checksum fixed up, and as a stream. Nothing may panic or allocate past a
//! limit, and every frame that decodes must re-encode to exactly the bytes it came from. The
//! checks live in `protocol::wire::fuzz` so that the unit tests run them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    protocol::wire::fuzz::decode_frame_roundtrip(data);
});
