//! Fuzz target for the replicated log's entry decoder (replication/REPLICATION.md, *Entry*):
//! nothing panics, decompression stays within `ENTRY_BODY_LEN_BYTES_MAX`, and what decodes
//! encodes back. The checks live in the crate (`replication::fuzz::entry_bytes`) so that its
//! unit tests run them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    replication::fuzz::entry_bytes(data);
});
