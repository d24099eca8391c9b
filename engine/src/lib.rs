//! The ledger engine: a deterministic, in-memory state machine for T+0 clearing and settlement.
//!
//! One writer thread owns an [`Engine`] and feeds it [`Command`]s in sequence order;
//! [`Engine::apply`] returns an [`Outcome`] and appends double-entry postings and lifecycle
//! changes to caller-owned [`Effects`]. The engine reads no clock, randomness, files or
//! sockets: time arrives inside each command, so replaying the same commands rebuilds the
//! same state, down to [`Engine::state_hash`].
//!
//! Balances are `i128` minor units of the account's currency; amounts arrive as exact
//! decimals ([`Amount`]) and are converted without rounding or rejected.

#![warn(missing_docs)]

mod account;
mod admin;
mod batch;
mod clearing;
mod codec;
mod command;
mod currency;
mod cycle;
mod engine;
pub mod fuzz;
mod hash;
mod holds;
mod ledger;
pub mod limits;
mod mem;
mod ops;
mod outcome;
mod plan;
mod retry;
mod state;
mod txtable;
mod types;
mod wire;

pub use clearing::{ExposureView, FeeView, FEE_RATE_BPS_MAX};
pub use codec::{
    decode_command, encode_command, CommandDecodeError, COMMAND_CODEC, COMMAND_LEN_BYTES_MAX,
};
pub use command::{Command, CommandBody, TxKind};
pub use currency::{format_minor, to_minor, CurrencyDef, BUILTIN_CURRENCIES};
pub use cycle::{ChannelDayView, CutoverReport, T1View};
pub use engine::{postings_balance, AccountView, CurrencyTotals, Engine, EngineConfig, TxView};
pub use hash::{DigestSink, Sink, SinkExt};
pub use outcome::{BalanceView, Balances, Bucket, Effects, Entry, Outcome, ResultCode};
pub use state::{StateDecodeError, STATE_ENCODING_VERSION};
pub use types::{
    AccountId, AccountKind, AccountLimits, AccountNo, AccountStatus, Amount, CurrencyCode,
    CurrencyId, FeeKind, KeyError, TxId, TxState,
};

#[cfg(test)]
mod tests;
