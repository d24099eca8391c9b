//! The canonical encoding of the complete engine state, and its digest `state_hash`.
//!
//! Every field that influences a future outcome is written, in a fixed order, little endian;
//! the hash indexes are left out because they are rebuilt from what is written, and so is the
//! statistic `commands_applied` (a retry must leave the state, and its hash, unchanged). Two engines
//! with equal encodings answer every future command identically.

use crate::account::Accounts;
use crate::currency::CurrencyDef;
use crate::cycle::Cycles;
use crate::engine::Engine;
use crate::hash::{DigestSink, Sink, SinkExt};
use crate::holds::Holds;
use crate::ledger::{EngineConfig, Ledger};
use crate::limits::{CURRENCIES_MAX, CURRENCY_SCALE_MAX, TX_RETAINED_MAX};
use crate::plan::Plan;
use crate::types::{AccountId, CurrencyCode};
use crate::wire::Reader;

pub use crate::wire::StateDecodeError;

/// Version of the canonical state encoding. Version 2 appended the exposure section (per
/// account: unsettled deposits and exposure limit) and the fee section; version 1 is still
/// read: its unsettled amounts are recomputed from the pending deposit records, and it has no
/// exposure limits and no fees.
/// Version 3 appended the fees of pending withdrawals; version 2 has none.
/// Version 4 widens each transaction record's content digest from the 32-bit fingerprint
/// (public fixed seed) to a 64-bit digest keyed with `hash_seed`; a record decoded from
/// versions 1 to 3 keeps its fingerprint (upper half 0) and retries against it are compared
/// with the fingerprint, plus the stored fields exactly.
pub const STATE_ENCODING_VERSION: u32 = 4;

impl Engine {
    /// Writes the canonical encoding of the whole state into `sink`: the header and the
    /// reference data, then each part's sections (the order is the format's, see
    /// `journal/FORMAT.md`).
    pub fn encode_state(&self, sink: &mut impl Sink) {
        self.encode_state_as(STATE_ENCODING_VERSION, sink);
    }

    /// The encoding of an earlier `version` (tests write old snapshots with it): the sections
    /// that version has, and before version 4 each record's digest cut to 32 bits (so it reads
    /// back as an old fingerprint).
    pub(crate) fn encode_state_as(&self, version: u32, sink: &mut impl Sink) {
        assert!((1..=STATE_ENCODING_VERSION).contains(&version), "a known version");
        let ledger = &self.ledger;
        sink.bytes(b"LEDGSTAT");
        sink.u32(version);
        sink.u32(ledger.config.tx_retained);
        sink.u64(ledger.config.hash_seed);
        sink.u64(ledger.now_ns);
        sink.u32(ledger.currencies.len() as u32);
        for (currency, risk) in ledger.currencies.iter().zip(&ledger.risk_accounts) {
            sink.bytes(&currency.code.to_bytes());
            sink.u8(currency.scale);
            sink.u32(risk.map_or(u32::MAX, |id| id.0));
        }
        ledger.accounts.encode(sink);
        ledger.txs.encode_records(sink, version);
        ledger.holds.encode(sink);
        ledger.txs.encode_refunded(sink);
        if version >= 2 {
            ledger.clearing.encode_exposures(sink);
            ledger.clearing.encode_fees(sink);
            ledger.cycles.encode(sink);
        }
        if version >= 3 {
            ledger.clearing.encode_withdrawal_fees(sink);
        }
    }

    /// A 128-bit digest of the complete state: equal hashes mean equal ledgers. Replay and
    /// recovery compare it with the hash the engine had before.
    pub fn state_hash(&self) -> u128 {
        let mut digest = DigestSink::new();
        self.encode_state(&mut digest);
        digest.finish()
    }

    /// Rebuilds an engine from `encode_state` output (a snapshot payload, versions 1 to
    /// `STATE_ENCODING_VERSION`). Each part decodes and checks its sections; then every
    /// invariant `check_invariants` checks is checked, money conservation per currency
    /// included: whatever decodes is safe to apply commands to. Damaged input is an error,
    /// never a panic.
    pub fn decode_state(bytes: &[u8]) -> Result<Engine, StateDecodeError> {
        // Every other invariant was checked by the audit decoding.
        let engine = Engine::decode_state_for_audit(bytes)?;
        if let Err(problem) = engine.ledger.check_conservation() {
            let reason = format!("state breaks an invariant: {problem}");
            return Err(StateDecodeError { offset: bytes.len(), reason });
        }
        Ok(engine)
    }

    /// [`Engine::decode_state`] without the per-currency sums: for audit tools that read a
    /// damaged snapshot to report what is wrong in it, account by account (`ledger-replay
    /// reconcile`). Every other invariant is checked, so queries answer and nothing panics;
    /// but such a state must never become a ledger: recovery uses `decode_state`.
    pub fn decode_state_for_audit(bytes: &[u8]) -> Result<Engine, StateDecodeError> {
        let mut r = Reader::new(bytes);
        if r.take(8)? != b"LEDGSTAT" {
            return r.fail("not a ledger state (bad magic)");
        }
        let version = r.u32()?;
        if !(1..=STATE_ENCODING_VERSION).contains(&version) {
            return r.fail(format!("state encoding version {version} is not supported"));
        }
        let tx_retained = r.u32()?;
        if !(1..=TX_RETAINED_MAX).contains(&tx_retained) {
            return r.fail(format!("tx_retained {tx_retained} out of range"));
        }
        let config = EngineConfig { tx_retained, hash_seed: r.u64()? };
        let mut ledger = Ledger::new(config);
        ledger.now_ns = r.u64()?;
        let risk_ids = decode_currencies(&mut r, &mut ledger)?;
        ledger.accounts = Accounts::decode(&mut r, ledger.currencies.len(), config.hash_seed)?;
        for risk in risk_ids {
            let risk = (risk != u32::MAX).then_some(AccountId(risk));
            if risk.is_some_and(|id| !ledger.accounts.contains(id.0)) {
                return r.fail("risk account out of range");
            }
            ledger.risk_accounts.push(risk);
        }
        ledger.txs.decode_records(&mut r, version)?;
        ledger.holds = Holds::decode(&mut r, ledger.accounts.len(), config.hash_seed)?;
        ledger.txs.decode_refunded(&mut r)?;
        ledger.clearing.decode_exposures(&mut r, version, &mut ledger.accounts, &ledger.txs)?;
        ledger.clearing.decode_fees(&mut r, version, &ledger.accounts)?;
        ledger.cycles = Cycles::decode(&mut r, version, &mut ledger.accounts)?;
        ledger.clearing.decode_withdrawal_fees(&mut r, version, &ledger.accounts)?;
        if !r.at_end() {
            return r.fail("trailing bytes");
        }
        ledger.recount_pending_settlements();
        if let Err(problem) = ledger.check_structure() {
            return r.fail(format!("state breaks an invariant: {problem}"));
        }
        Ok(Engine { ledger, plan: Plan::new(), commands_applied: 0 })
    }
}

/// The currencies section: `u32` count, then per currency `[u8; 8]` code, `u8` scale and
/// `u32` risk account (`u32::MAX`: none). Returns the risk ids, checked once the accounts
/// are known.
fn decode_currencies(
    r: &mut Reader<'_>,
    ledger: &mut Ledger,
) -> Result<Vec<u32>, StateDecodeError> {
    let currency_count = r.count32(13)?;
    if currency_count > CURRENCIES_MAX as usize {
        return r.fail("too many currencies");
    }
    ledger.currencies.clear();
    ledger.risk_accounts.clear();
    ledger.clearing = crate::clearing::Clearing::new(0, ledger.config.hash_seed);
    let mut risk_ids = Vec::with_capacity(currency_count);
    for _ in 0..currency_count {
        let raw = r.array::<8>()?;
        let len = raw.iter().position(|&b| b == 0).unwrap_or(8);
        let Some(code) =
            std::str::from_utf8(&raw[..len]).ok().and_then(|t| CurrencyCode::new(t).ok())
        else {
            return r.fail("invalid currency code");
        };
        let scale = r.u8()?;
        if scale > CURRENCY_SCALE_MAX || ledger.currency(code).is_some() {
            return r.fail("invalid currency");
        }
        ledger.currencies.push(CurrencyDef { code, scale });
        ledger.clearing.add_currency();
        risk_ids.push(r.u32()?);
    }
    Ok(risk_ids)
}
