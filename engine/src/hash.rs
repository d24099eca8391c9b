//! Deterministic hashing: command digests (keyed) and fingerprints (old), the keyed hash of the indexes, and the
//! streaming digest of the whole state. No `RandomState` anywhere: every hash here is a pure
//! function of its input (and of the engine's configured seed).

use xxhash_rust::xxh3::{xxh3_64_with_seed, Xxh3};

use crate::types::{AccountLimits, Amount};

/// Something canonical bytes can be written into: a buffer (snapshots) or a hasher (digests).
pub trait Sink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A streaming 128-bit XXH3 digest.
pub struct DigestSink(Xxh3);

impl DigestSink {
    /// A fresh digest.
    pub fn new() -> DigestSink {
        DigestSink(Xxh3::new())
    }

    /// The digest of everything written so far.
    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

impl Default for DigestSink {
    fn default() -> Self {
        DigestSink::new()
    }
}

impl Sink for DigestSink {
    fn put(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Little-endian field writers over any sink.
pub trait SinkExt: Sink {
    /// One byte.
    fn u8(&mut self, value: u8) {
        self.put(&[value]);
    }
    /// u32, little endian.
    fn u32(&mut self, value: u32) {
        self.put(&value.to_le_bytes());
    }
    /// u64, little endian.
    fn u64(&mut self, value: u64) {
        self.put(&value.to_le_bytes());
    }
    /// u128, little endian.
    fn u128(&mut self, value: u128) {
        self.put(&value.to_le_bytes());
    }
    /// i128, little endian.
    fn i128(&mut self, value: i128) {
        self.put(&value.to_le_bytes());
    }
    /// Raw bytes (fixed-size fields only; variable data must be length-prefixed by the caller).
    fn bytes(&mut self, value: &[u8]) {
        self.put(value);
    }
    /// Mantissa and scale, normalized (`12.50` and `12.5` write the same bytes).
    #[inline]
    fn amount(&mut self, amount: &Amount) {
        let amount = amount.normalized();
        self.i128(amount.mantissa);
        self.u8(amount.scale);
    }
    /// Optional amount: presence byte, then the amount or zeros.
    fn amount_opt(&mut self, amount: &Option<Amount>) {
        match amount {
            Some(amount) => {
                self.u8(1);
                self.amount(amount);
            }
            None => {
                self.u8(0);
                self.amount(&Amount { mantissa: 0, scale: 0 });
            }
        }
    }
    /// Every limit. `exposure_max` is hashed only when present, so the fingerprints of
    /// commands written before it existed stay the same (a retry across an upgrade is a retry).
    fn limits(&mut self, limits: &AccountLimits) {
        self.amount_opt(&limits.tx_amount_max);
        self.amount_opt(&limits.daily_debit_max);
        if let Some(exposure_max) = &limits.exposure_max {
            self.u8(2);
            self.amount(exposure_max);
        }
    }
}

impl<S: Sink + ?Sized> SinkExt for S {}

/// A small stack buffer for hashing one command's fields without allocating.
pub(crate) struct FixedSink {
    buf: [u8; FixedSink::LEN_MAX],
    len: usize,
}

impl FixedSink {
    const LEN_MAX: usize = 128;

    pub(crate) fn new() -> FixedSink {
        FixedSink { buf: [0; FixedSink::LEN_MAX], len: 0 }
    }

    /// The keyed 64-bit digest of what was written (see `CommandBody::digest`).
    pub(crate) fn digest64(&self, seed: u64) -> u64 {
        const DOMAIN: u64 = 0x7265_7472_795f_6467; // "retry_dg"
        let digest = xxh3_64_with_seed(&self.buf[..self.len], seed ^ DOMAIN);
        if digest >> 32 == 0 {
            digest | 1 << 63
        } else {
            digest
        }
    }

    pub(crate) fn digest32(&self) -> u32 {
        let digest = xxh3_64_with_seed(&self.buf[..self.len], 0x6c65_6467_6572); // "ledger"
        (digest ^ (digest >> 32)) as u32
    }
}

impl Sink for FixedSink {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        assert!(end <= FixedSink::LEN_MAX, "command fingerprint buffer too small");
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }
}

/// Mixes a 128-bit id with the engine's seed into a 64-bit table hash.
///
/// Transaction ids are chosen by clients; the seed (fixed per data directory, stored in every
/// snapshot) keeps a client from predicting where ids land in the table.
#[inline]
pub(crate) fn hash_u128(value: u128, seed: u64) -> u64 {
    let lo = value as u64 ^ seed;
    let hi = (value >> 64) as u64 ^ seed.rotate_left(32);
    let folded = (lo as u128).wrapping_mul((hi ^ 0x9e37_79b9_7f4a_7c15) as u128);
    let mixed = (folded as u64) ^ ((folded >> 64) as u64);
    mixed.wrapping_mul(0xff51_afd7_ed55_8ccd) ^ (mixed >> 29)
}

/// Hashes an account key (zero-padded to its maximum length) with the engine's seed.
#[inline]
pub(crate) fn hash_key(bytes: &[u8], seed: u64) -> u64 {
    xxh3_64_with_seed(bytes, seed)
}

/// Hashes transaction ids for the side maps (`HashMap<TxId, _, IdBuildHasher>`), seeded per
/// ledger. Iteration order of those maps never reaches an output: encoders sort first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdBuildHasher {
    pub seed: u64,
}

/// The hasher of [`IdBuildHasher`]: takes one `u128` (a `TxId`).
pub(crate) struct IdHasher {
    seed: u64,
    value: u64,
}

impl std::hash::BuildHasher for IdBuildHasher {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { seed: self.seed, value: 0 }
    }
}

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.value
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if a key type other than `TxId` is used: still correct, just slower.
        self.value = xxh3_64_with_seed(bytes, self.seed ^ self.value);
    }

    fn write_u128(&mut self, value: u128) {
        self.value = hash_u128(value, self.seed ^ self.value);
    }
}

/// A map keyed by transaction id.
pub(crate) type IdMap<V> = std::collections::HashMap<crate::types::TxId, V, IdBuildHasher>;
