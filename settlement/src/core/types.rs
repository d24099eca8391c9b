//! The core's vocabulary: its configuration, what it asks the driver for and what it is told
//! back, and why it stops.

use engine::{AccountNo, CommandBody, ResultCode, TxId};

use crate::{settlement_tx_id, Step};

/// What the core needs of a channel's options (the driver's `ChannelOptions` hold more).
#[derive(Clone, Debug)]
pub struct Config {
    /// The channel name: its system account's `account_no`.
    pub name: AccountNo,
    /// First retry delay.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// Sends of one instruction before it is given up (left `Settling`).
    pub attempts_max: u32,
    /// Length of a netting window, from its first transaction's timestamp (at least 1).
    pub net_window_ms: u64,
    /// Most transactions in one net instruction (1..=`bank::protocol::NET_ITEMS_MAX`).
    pub net_items_max: usize,
}

/// Why the core stopped. Once stopped it takes no more input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A journal record is not a command: nothing is ever skipped, so the processor stops.
    #[error("journal record {seq} does not decode as a command: {reason}")]
    Undecodable {
        /// The record's sequence number.
        seq: u64,
        /// The decoder's message.
        reason: String,
    },
    /// The day holds `DAY_LEN_MAX` confirmations; its settlement file would be incomplete.
    #[error("more than {len_max} confirmations since the last cutover")]
    DayFull {
        /// `DAY_LEN_MAX`.
        len_max: usize,
    },
}

/// A question about a journal record: did the engine apply the command `tx_id` names?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutcomeQuery {
    /// The record's sequence number (give it back to `on_outcome`).
    pub seq: u64,
    /// The record's command.
    pub tx_id: TxId,
}

/// A settlement command to journal: submit `body()` with `tx_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleCommand {
    /// Derived from `target` and `step` (`settlement_tx_id`).
    pub tx_id: TxId,
    /// The deposit or withdrawal it settles.
    pub target: TxId,
    /// Begin, confirm or fail.
    pub step: Step,
    /// The batch it belongs to.
    pub batch: u128,
}

impl SettleCommand {
    pub(super) fn new(target: TxId, step: Step, batch: u128) -> SettleCommand {
        SettleCommand { tx_id: settlement_tx_id(target, step), target, step, batch }
    }

    /// The engine command.
    pub fn body(&self) -> CommandBody {
        let target = self.target;
        match self.step {
            Step::Begin => CommandBody::SettleBegin { target },
            Step::Confirm => CommandBody::SettleConfirm { target },
            Step::Fail => CommandBody::SettleFail { target },
        }
    }
}

/// What became of a submitted `SettleCommand`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Journaled at `seq` and executed with `result` (`duplicate`: an earlier one with the
    /// same `tx_id` was, and this is its result).
    Executed {
        /// Its journal position.
        seq: u64,
        /// The engine's result.
        result: ResultCode,
        /// Whether it repeated an earlier command.
        duplicate: bool,
    },
    /// Refused by the runtime or never answered.
    NotAnswered,
}

/// One net instruction to send to the bank: `lines`, each ending in `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// The batch id.
    pub batch: u128,
    /// Which send this is, from 1.
    pub attempt: u32,
    /// The `NET` line and its `ITEM` lines.
    pub lines: String,
}

/// Something for the operator's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A batch got no answer after `attempts` sends: its members stay `Settling`.
    GivenUp {
        /// The batch id.
        batch: u128,
        /// Its transactions.
        members: usize,
        /// Sends made.
        attempts: u32,
    },
    /// The bank says the instruction itself was wrong: given up, never failed.
    NetMismatch {
        /// The batch id.
        batch: u128,
        /// The bank's reason.
        reason: String,
    },
    /// The bank refused the payment: every member fails.
    Refused {
        /// The batch id.
        batch: u128,
        /// The bank's reason.
        reason: String,
    },
    /// A confirmation or failure for a transaction finished otherwise.
    Reconcile {
        /// The transaction.
        target: TxId,
        /// The refused step.
        step: Step,
    },
    /// A settlement command refused for another reason.
    CommandRefused {
        /// The transaction.
        target: TxId,
        /// The refused step.
        step: Step,
        /// The engine's result.
        result: ResultCode,
    },
    /// A batch closed before the channel account's currency was known: it is not sent.
    ChannelUnknown {
        /// The batch id.
        batch: u128,
    },
    /// Notices lost because the queue was full.
    Dropped {
        /// How many.
        count: u64,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::GivenUp { batch, members, attempts } => write!(
                f,
                "batch {batch:032x} ({members} transactions): no answer after {attempts} sends"
            ),
            Notice::NetMismatch { batch, reason } => {
                write!(f, "batch {batch:032x}: the bank says {reason}; giving it up")
            }
            Notice::Refused { batch, reason } => {
                write!(f, "batch {batch:032x} refused by the bank: {reason}")
            }
            Notice::Reconcile { target, step } => write!(
                f,
                "{:032x}: {step:?} for a transaction already finished otherwise: reconcile",
                target.0
            ),
            Notice::CommandRefused { target, step, result } => {
                write!(f, "{:032x}: {step:?} refused: {}", target.0, result.name())
            }
            Notice::ChannelUnknown { batch } => {
                write!(f, "channel account not found: batch {batch:032x} dropped")
            }
            Notice::Dropped { count } => write!(f, "{count} notices dropped"),
        }
    }
}
