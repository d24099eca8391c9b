//! Fuzz target for the engine's command codec (journal/FORMAT.md): a command that decodes re-encodes to exactly its bytes. The checks live in the crate (`engine::fuzz::decode_command_roundtrip`) so that its
//! unit tests run them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::fuzz::decode_command_roundtrip(data);
});
