//! The settlement processor: drives the deposits and withdrawals of one channel through an
//! external bank (`ledger-bank`, `bank/BANK.md`), applying every answer as a journaled engine
//! command through the runtime `Handle`. Nothing bypasses the journal.
//!
//! It is two parts, in quinn-proto's style:
//!
//! - **`core::Settlement`**, I/O-free: fed the journal's records (with the outcomes it asks
//!   for), the runtime's answers to its commands, the bank's replies and the time; asked for
//!   queries, commands to journal, instructions to send, cutover reports, notices and when it
//!   next needs the clock (`poll_timeout`/`handle_timeout(now_ns)`). Netting windows, batch
//!   ids, retries, give-up and the cutover files' contents are decided there, so its tests
//!   drive it with a fake clock and no threads.
//! - **`driver`**, thin: one thread that owns the journal tail (read-only `JournalReader`,
//!   never past the durable sequence number), the runtime `Producer`, the bank's TCP
//!   connection (with a reader thread), the clock and the files, and loops: feed events, drain
//!   polls, sleep until `poll_timeout`, an answer or `poll_ms`.
//!
//! What it does:
//!
//! - **Discovery.** `Deposit` and `Withdraw` commands whose channel is this channel's system
//!   account (the channel name *is* that account's `account_no`) and that the engine applied.
//! - **Netting.** The transactions are cut into micro-batches in journal order: a batch starts
//!   with a transaction and takes every later one of the channel whose sequencer timestamp is
//!   less than `net_window_ms` after the first's, up to `net_items_max`. The cut depends only
//!   on the journal (timestamps never go backwards in it), so a restarted processor forms the
//!   same batches with the same ids (`batch_id`) and re-sends the same instructions. A batch is
//!   closed when a journal record at or past its window's end is read; when nothing else is
//!   journaled, the processor's own `SettleBegin`s, stamped after the window, close it.
//! - **Instruction.** Every member still open gets `SettleBegin`; then one
//!   `NET <batch> <direction> <net> <currency> <count>` with the gross items is sent to the bank:
//!   one payment of Σ deposits − Σ withdrawals settles them all.
//! - **Answers.** `CONFIRMED <batch>` submits `SettleConfirm` for every member, `FAILED <batch>`
//!   submits `SettleFail`. The `tx_id` of each of these commands is derived from the target's
//!   `tx_id` and the step (`settlement_tx_id`), so a duplicate or replayed answer is an
//!   idempotent retry; a member already finished otherwise (an operator's `ledger settle`) is
//!   refused by the engine (`IllegalTransition`) and reported on stderr for reconciliation.
//! - **Retries and timeouts.** A batch without an answer is sent again after a backoff that
//!   doubles from `retry_initial_ms` up to `retry_max_ms`; after `attempts_max` sends it is
//!   given up: its members stay `Settling` (money stays available, `ledger` unmoved), are listed
//!   by `Processor::stuck`, and are resolved by a late answer, reconciliation or an operator.
//! - **Files.** At each applied `Cutover` it writes the day's netting report (gross vs net per
//!   batch), then its settlement file (one line per confirmed transaction), each to `NAME.tmp`,
//!   fsynced, renamed and the directory fsynced: they are records operators hand to auditors.
//! - **Errors.** A journal record that does not decode as a command stops the processor with
//!   an error naming its seq (on stderr, and from `Processor::join`): nothing is ever skipped.

#![warn(missing_docs)]

pub mod core;
mod driver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use engine::{AccountNo, TxId};

pub use crate::core::{CoreError, WATCHED_MAX};
pub use driver::{spawn, Processor};

/// Where settlement files are written, under the data directory.
pub const SETTLEMENT_DIR_NAME: &str = "settlement";
/// Where netting reports are written, under the settlement directory.
pub const NETTING_DIR_NAME: &str = "netting";
/// The header of a settlement file.
pub const SETTLEMENT_HEADER: &str = "tx_id,direction,amount,currency";
/// The header of a netting report.
pub const NETTING_HEADER: &str = "batch_id,items,deposits,withdrawals,gross,net,direction";

/// The settlement file of channel `name` for `business_date` (YYYYMMDD).
pub fn settlement_file(data_dir: &Path, name: &AccountNo, business_date: u32) -> PathBuf {
    data_dir.join(SETTLEMENT_DIR_NAME).join(format!("{name}-{business_date}.csv"))
}

/// The netting report (gross vs net per batch) of channel `name` for `business_date`.
pub fn netting_file(data_dir: &Path, name: &AccountNo, business_date: u32) -> PathBuf {
    data_dir
        .join(SETTLEMENT_DIR_NAME)
        .join(NETTING_DIR_NAME)
        .join(format!("{name}-{business_date}.csv"))
}

/// Why the processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    /// The core stopped (an undecodable journal record, a full day).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The runtime refused a query: the outcome of a journal record cannot be known.
    #[error("the runtime refused a query: {0}")]
    Runtime(#[from] runtime::RequestError),
    /// The processor's thread could not be started.
    #[error("start the processor thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// How one channel's processor behaves.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// The channel name: its system account's `account_no`.
    pub name: AccountNo,
    /// The bank's address.
    pub addr: SocketAddr,
    /// First retry delay.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// Sends of one instruction before it is given up (left `Settling`).
    pub attempts_max: u32,
    /// How often the journal is polled for new transactions.
    pub poll_ms: u64,
    /// Length of a netting micro-batch's window, from its first transaction's timestamp.
    pub net_window_ms: u64,
    /// Most transactions in one net instruction (1..=`bank::protocol::NET_ITEMS_MAX`).
    pub net_items_max: usize,
}

impl ChannelOptions {
    /// Defaults for a channel: retries from 200 ms to 5 s, 8 sends, 20 ms polling, netting
    /// windows of 50 ms and at most 1 024 transactions.
    pub fn new(name: AccountNo, addr: SocketAddr) -> ChannelOptions {
        ChannelOptions {
            name,
            addr,
            retry_initial_ms: 200,
            retry_max_ms: 5_000,
            attempts_max: 8,
            poll_ms: 20,
            net_window_ms: 50,
            net_items_max: 1_024,
        }
    }

    /// What the core needs of these options.
    pub fn core_config(&self) -> core::Config {
        core::Config {
            name: self.name,
            retry_initial_ms: self.retry_initial_ms,
            retry_max_ms: self.retry_max_ms,
            attempts_max: self.attempts_max,
            net_window_ms: self.net_window_ms,
            net_items_max: self.net_items_max,
        }
    }
}

/// The step of a settlement a derived command performs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Step {
    /// `SettleBegin`.
    Begin = 1,
    /// `SettleConfirm`.
    Confirm = 2,
    /// `SettleFail`.
    Fail = 3,
}

/// SplitMix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 128-bit id that is a fixed function of `target` and `salt`.
fn derive(target: u128, salt: u64) -> u128 {
    let (high, low) = ((target >> 64) as u64, target as u64);
    let a = mix(high ^ mix(low ^ salt));
    let b = mix(low ^ mix(high ^ salt.rotate_left(32)));
    (a as u128) << 64 | b as u128
}

/// The `tx_id` of the settlement command `step` for `target`: a fixed function of both, so a
/// repeated answer submits the same `tx_id` and is answered as a duplicate.
pub fn settlement_tx_id(target: TxId, step: Step) -> TxId {
    TxId(derive(target.0, 0x5e77_1e00 + step as u64))
}

/// The id of the net instruction whose first transaction is `first` (one batch per first
/// transaction, so the id is the same after a restart).
pub fn batch_id(first: TxId) -> u128 {
    derive(first.0, 0xba7c_4000)
}
