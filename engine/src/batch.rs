//! Applying a batch of commands with software prefetching.
//!
//! With a million accounts and millions of remembered transactions, every command touches a
//! handful of cache lines that are almost never cached: the transaction-index slot, two
//! account-index slots, two accounts, and the index slot of the record the ring evicts. Applied
//! one at a time those misses are serialized. Over a batch, the lines of command `i + 2D` are
//! requested (stage 1: index slots), then those of `i + D` (stage 2: the accounts the slots point
//! to), while command `i` is applied, so the misses overlap. Prefetching is only a hint: the
//! result is exactly that of calling `apply` on each command in order.

use crate::command::{Command, CommandBody};
use crate::engine::Engine;
use crate::outcome::{Effects, Outcome};
use crate::types::AccountNo;

/// Commands between stages; `2 * DISTANCE` commands are in flight.
const DISTANCE: usize = 8;

/// The accounts a command will look up by key (at most two).
fn keys(body: &CommandBody) -> [Option<&AccountNo>; 2] {
    match body {
        CommandBody::Transfer { from, to, .. } => [Some(from), Some(to)],
        CommandBody::Deposit { account_no, channel_no, .. }
        | CommandBody::Withdraw { account_no, channel_no, .. } => {
            [Some(account_no), Some(channel_no)]
        }
        CommandBody::Freeze { account_no, .. } => [Some(account_no), None],
        CommandBody::Capture { to, .. } => [Some(to), None],
        CommandBody::DefineCurrency { .. }
        | CommandBody::OpenAccount { .. }
        | CommandBody::SetAccountStatus { .. }
        | CommandBody::SetAccountLimits { .. }
        | CommandBody::Unfreeze { .. }
        | CommandBody::SettleBegin { .. }
        | CommandBody::SettleConfirm { .. }
        | CommandBody::SettleFail { .. }
        | CommandBody::Refund { .. }
        | CommandBody::SetFee { .. }
        | CommandBody::SetSettlementCycle { .. }
        | CommandBody::Cutover { .. } => [None, None],
    }
}

impl Engine {
    /// Applies `commands` in order, exactly as repeated `apply` would, handing each outcome to
    /// `on_outcome` with the command's index. Faster than `apply` one by one on large states.
    pub fn apply_batch(
        &mut self,
        commands: &[Command],
        fx: &mut Effects,
        mut on_outcome: impl FnMut(usize, Outcome),
    ) {
        // Account-key hashes computed in stage 1, used again in stage 2.
        let mut hashes = [[0u64; 2]; 2 * DISTANCE];
        let stage1 = |engine: &Engine, hashes: &mut [[u64; 2]; 2 * DISTANCE], index: usize| {
            let command = &commands[index];
            engine.ledger.txs.prefetch_slot(command.tx_id);
            let slot = &mut hashes[index % (2 * DISTANCE)];
            for (hash, key) in slot.iter_mut().zip(keys(&command.body)) {
                *hash = key.map_or(0, |key| engine.ledger.accounts.hash_of(key));
                if key.is_some() {
                    engine.ledger.accounts.prefetch_slot(*hash);
                }
            }
        };
        for index in 0..commands.len().min(2 * DISTANCE) {
            stage1(self, &mut hashes, index);
        }
        for index in 0..commands.len() {
            let ahead = index + DISTANCE;
            if ahead < commands.len() {
                for (hash, key) in
                    hashes[ahead % (2 * DISTANCE)].iter().zip(keys(&commands[ahead].body))
                {
                    if key.is_some() {
                        self.ledger.accounts.prefetch_account(*hash);
                    }
                }
                self.ledger.txs.prefetch_eviction(DISTANCE as u32);
            }
            let outcome = self.apply(&commands[index], fx);
            assert!(outcome.tx_id == commands[index].tx_id, "outcomes in command order");
            if index + 2 * DISTANCE < commands.len() {
                stage1(self, &mut hashes, index + 2 * DISTANCE);
            }
            on_outcome(index, outcome);
        }
    }
}
