//! The simulator's decisions: a pure function of the seed, the instruction id and how many
//! times that id was sent, so a run is reproducible whatever the arrival order.

/// Probabilities are kept in parts per million (no floating point anywhere).
pub const PPM: u32 = 1_000_000;

/// How the simulated bank behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BankConfig {
    /// Base delay before an answer, in milliseconds; each answer waits 50..150 % of it, so
    /// answers overtake each other.
    pub latency_ms: u64,
    /// Share of instructions refused (final, the same for every re-send), in ppm.
    pub fail_ppm: u32,
    /// Share of sends never answered at all, in ppm (decided per send: a re-send may pass).
    pub timeout_ppm: u32,
    /// Share of answers sent twice, in ppm.
    pub duplicate_ppm: u32,
    /// The seed of every decision.
    pub seed: u64,
}

impl Default for BankConfig {
    fn default() -> BankConfig {
        BankConfig { latency_ms: 10, fail_ppm: 0, timeout_ppm: 0, duplicate_ppm: 0, seed: 1 }
    }
}

/// What the bank does with one send of an instruction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Decision {
    /// `None`: never answered (a timeout). `Some(true)`: confirmed, `Some(false)`: failed.
    pub outcome: Option<bool>,
    /// Delay before the answer, in milliseconds.
    pub delay_ms: u64,
    /// The answer is sent a second time, this many milliseconds after the first.
    pub duplicate_after_ms: Option<u64>,
}

/// SplitMix64: a tiny, well-mixed hash of a 64-bit state (public domain algorithm).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in `0..PPM` for (seed, id, purpose, attempt).
fn draw_ppm(config: &BankConfig, id: u128, purpose: u64, attempt: u64) -> u32 {
    let id_hash = mix(id as u64) ^ mix((id >> 64) as u64 ^ 0x5555);
    let state = mix(config.seed ^ mix(id_hash ^ mix(purpose ^ mix(attempt))));
    (state % PPM as u64) as u32
}

/// The decision for the `attempt`th send (0-based) of instruction `id`. Whether it is
/// refused depends on the id only, so every answer to one instruction agrees.
pub fn decide(config: &BankConfig, id: u128, attempt: u64) -> Decision {
    let timed_out = draw_ppm(config, id, 1, attempt) < config.timeout_ppm;
    let refused = draw_ppm(config, id, 2, 0) < config.fail_ppm;
    let jitter_percent = 50 + draw_ppm(config, id, 3, attempt) as u64 % 101;
    let delay_ms = config.latency_ms * jitter_percent / 100;
    let duplicate = draw_ppm(config, id, 4, attempt) < config.duplicate_ppm;
    Decision {
        outcome: (!timed_out).then_some(!refused),
        delay_ms,
        duplicate_after_ms: duplicate.then_some(config.latency_ms.max(1)),
    }
}

/// Parses a probability written as a decimal between 0 and 1 (`0.05`, `1`, `0`) into ppm,
/// exactly: more than six decimals are refused rather than rounded.
pub fn parse_rate_ppm(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a probability between 0 and 1 with at most 6 decimals");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 6 {
        return Err(bad());
    }
    if text.ends_with('.') {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let mut fraction_ppm: u32 = 0;
    for (index, b) in fraction.bytes().enumerate() {
        fraction_ppm += (b - b'0') as u32 * 10u32.pow(5 - index as u32);
    }
    let ppm = whole.checked_mul(PPM).and_then(|w| w.checked_add(fraction_ppm)).ok_or_else(bad)?;
    if ppm > PPM {
        return Err(bad());
    }
    Ok(ppm)
}
