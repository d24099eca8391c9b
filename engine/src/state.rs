//! The canonical encoding of the complete engine state, and its digest `state_hash`.
//!
//! Every field that influences a future outcome is written, in a fixed order, little endian;
//! the hash indexes are left out because they are rebuilt from what is written, and so is the
//! statistic `commands_applied` (a retry must leave the state, and its hash, unchanged). Two engines
//! with equal encodings answer every future command identically.

use crate::engine::Engine;
use crate::hash::{DigestSink, IdMap, Sink, SinkExt};
use crate::types::TxId;

/// A side map's entries in `TxId` order: hash-map order must never reach an encoding.
fn sorted<V>(map: &IdMap<V>) -> Vec<(&TxId, &V)> {
    let mut entries: Vec<(&TxId, &V)> = map.iter().collect();
    entries.sort_unstable_by_key(|(tx_id, _)| **tx_id);
    entries
}

/// Version of the canonical state encoding.
pub const STATE_ENCODING_VERSION: u32 = 1;

impl Engine {
    /// Writes the canonical encoding of the whole state into `sink`.
    pub fn encode_state(&self, sink: &mut impl Sink) {
        sink.bytes(b"LEDGSTAT");
        sink.u32(STATE_ENCODING_VERSION);
        sink.u32(self.config.tx_retained);
        sink.u64(self.config.hash_seed);
        sink.u64(self.now_ns);

        sink.u32(self.currencies.len() as u32);
        for (currency, risk) in self.currencies.iter().zip(&self.risk_accounts) {
            sink.bytes(&currency.code.to_bytes());
            sink.u8(currency.scale);
            sink.u32(risk.map_or(u32::MAX, |id| id.0));
        }

        sink.u32(self.accounts.len() as u32);
        for account in &self.accounts {
            sink.i128(account.available_minor);
            sink.i128(account.frozen_minor);
            sink.i128(account.ledger_minor);
            sink.i128(account.debit_day_used_minor);
            sink.i128(account.tx_amount_max_minor);
            sink.i128(account.daily_debit_max_minor);
            sink.u64(account.user_id);
            sink.u8(account.account_no.as_bytes().len() as u8);
            sink.bytes(account.account_no.padded());
            sink.u32(account.debit_day);
            sink.u32(account.currency.0 as u32);
            sink.u8(account.status as u8);
            sink.u8(account.kind as u8);
        }

        sink.u64(self.txs.len() as u64);
        for record in self.txs.iter_canonical() {
            sink.u128(record.tx_id().0);
            sink.i128(record.amount_minor());
            sink.u32(record.debit);
            sink.u32(record.credit);
            sink.u128(record.link().map_or(0, |link| link.0));
            sink.u32(record.fingerprint);
            sink.u8(record.kind as u8);
            sink.u8(record.state.map_or(u8::MAX, |state| state as u8));
            sink.u8(record.result as u8);
            sink.u8(record.visited);
        }

        sink.u64(self.holds.len() as u64);
        for (hold_id, hold) in sorted(&self.holds) {
            sink.u128(hold_id.0);
            sink.u32(hold.account.0);
            sink.i128(hold.remaining_minor);
            sink.i128(hold.captured_minor);
            sink.u8(hold.expires_ns.is_some() as u8);
            sink.u64(hold.expires_ns.unwrap_or(0));
            sink.u32(hold.day);
        }

        sink.u64(self.refunded.len() as u64);
        for (tx_id, refunded_minor) in sorted(&self.refunded) {
            sink.u128(tx_id.0);
            sink.i128(*refunded_minor);
        }
    }

    /// A 128-bit digest of the complete state: equal hashes mean equal ledgers. Replay and
    /// recovery compare it with the hash the engine had before.
    pub fn state_hash(&self) -> u128 {
        let mut digest = DigestSink::new();
        self.encode_state(&mut digest);
        digest.finish()
    }
}
