//! The fuzz targets' checks (`crate::fuzz`) on stable: over every command of a workload that
//! uses each kind, each with every byte changed a few ways, over random bytes, and over a
//! state with bytes changed. A short smoke: the nightly fuzzer runs them for hours.

use super::compat::v3_workload;
use crate::{encode_command, fuzz, Command};

/// A tiny xorshift: reproducible inputs without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn commands_round_trip_and_changed_bytes_never_panic() {
    let (_, sent) = v3_workload();
    assert!(sent.len() >= 10, "a workload of many kinds");
    for (tx_id, body) in sent {
        let mut bytes = Vec::new();
        encode_command(
            &Command { tx_id, timestamp_ns: 1_700_000_000_000_000_000, body },
            &mut bytes,
        );
        fuzz::decode_command_roundtrip(&bytes);
        for at in 0..bytes.len() {
            for value in [0u8, 1, 0x7f, 0xff, bytes[at] ^ 0x04] {
                let mut changed = bytes.clone();
                changed[at] = value;
                fuzz::decode_command_roundtrip(&changed);
            }
        }
        for cut in 0..bytes.len() {
            fuzz::decode_command_roundtrip(&bytes[..cut]);
        }
    }
    let mut state = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let len = (next(&mut state) % 96) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
        fuzz::decode_command_roundtrip(&bytes);
    }
}

#[test]
fn states_with_changed_bytes_decode_soundly_or_not_at_all() {
    let (h, _) = v3_workload();
    let mut bytes = Vec::new();
    h.engine.encode_state(&mut bytes);
    fuzz::decode_state_checked(&bytes);
    let mut state = 0x2545_f491_4f6c_dd1d;
    for _ in 0..2_000 {
        let mut changed = bytes.clone();
        for _ in 0..1 + next(&mut state) % 3 {
            let at = (next(&mut state) % changed.len() as u64) as usize;
            changed[at] = next(&mut state) as u8;
        }
        fuzz::decode_state_checked(&changed);
    }
    for cut in (0..bytes.len()).step_by(7) {
        fuzz::decode_state_checked(&bytes[..cut]);
    }
}
