//! Fuzz target for the bank's line protocol (bank/BANK.md): every parser, and what parses prints back to the same value. The checks live in the crate (`bank::fuzz::parse_lines`) so that its
//! unit tests run them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bank::fuzz::parse_lines(data);
});
