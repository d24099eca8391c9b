//! The checks of the engine's fuzz targets (`fuzz/fuzz_targets/decode_command.rs`,
//! `decode_state.rs`), here so that the unit tests run them on stable over random and mutated
//! inputs and the nightly fuzzer over whatever it finds. Each takes arbitrary bytes: nothing
//! may panic, and what decodes must behave.

use crate::{decode_command, encode_command, Engine};

/// The largest `tx_retained` the state target decodes: a window of at most a few MiB.
pub const FUZZ_TX_RETAINED_MAX: u32 = 1 << 16;

/// A command that decodes re-encodes to exactly its bytes: the encoding is canonical.
pub fn decode_command_roundtrip(data: &[u8]) {
    if let Ok(command) = decode_command(data) {
        let mut again = Vec::new();
        encode_command(&command, &mut again);
        assert_eq!(again, data, "a decoded command re-encodes to its bytes: {command:?}");
    }
}

/// A state that decodes passes every invariant; re-encoded (at the current version) it
/// decodes to the same state, whose encoding is then stable. What the audit decoding reads
/// breaks at most the per-currency sums.
///
/// A state's header names its `tx_retained`, and the engine allocates its idempotency window
/// for that many transactions up front, by design (no allocation on the write path): tens of
/// bytes can ask for gigabytes, exactly as a configuration can. Inputs above
/// `FUZZ_TX_RETAINED_MAX` are therefore skipped here (the range check itself is unit-tested).
pub fn decode_state_checked(data: &[u8]) {
    let tx_retained = data.get(12..16).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if tx_retained.is_some_and(|window| window > FUZZ_TX_RETAINED_MAX) {
        return;
    }
    if let Ok(engine) = Engine::decode_state(data) {
        assert_eq!(engine.check_invariants(), Ok(()), "a decoded state passes every invariant");
        let mut once = Vec::new();
        engine.encode_state(&mut once);
        let again = Engine::decode_state(&once).expect("a re-encoded state decodes");
        let mut twice = Vec::new();
        again.encode_state(&mut twice);
        assert_eq!(once, twice, "re-encoding a decoded state is stable");
        assert_eq!(engine.state_hash(), again.state_hash());
    }
    if let Ok(engine) = Engine::decode_state_for_audit(data) {
        if let Err(problem) = engine.check_invariants() {
            assert!(problem.contains("not conserved"), "{problem}");
        }
    }
}
