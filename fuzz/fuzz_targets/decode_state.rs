//! Fuzz target for snapshot state decoding (`Engine::decode_state`): what decodes passes every invariant and re-encodes stably. The checks live in the crate (`engine::fuzz::decode_state_checked`) so that its
//! unit tests run them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::fuzz::decode_state_checked(data);
});
