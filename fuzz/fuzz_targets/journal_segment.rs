//! Fuzz target for a journal segment's bytes under recovery, the read-only validators, the reader and the damage-tolerant cut: they agree. The checks live in the crate (`journal::fuzz::segment_bytes`) so that its
//! unit tests run them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    journal::fuzz::segment_bytes(data);
});
