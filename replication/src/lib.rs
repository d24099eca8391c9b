//! The replica group on etcd: one ledger = one primary + hot standbys, its writer rounds kept in
//! a log in etcd (REPLICATION.md, next to this crate, specifies every byte and every step).
//!
//! - [`entry`]: the log entry format (a writer round, or the start of an epoch), its hash
//!   chain, and the `head` record the fenced appends compare against. Pure: bytes in, bytes out.
//! - [`keys`]: where a ledger's log, head, epoch, leader and replica records live in etcd.
//! - [`chain`]: the verifier a standby runs over the entries it reads (gaps, a broken hash
//!   chain, an epoch going backwards: each stops it loudly).
//! - `store`: the only module that talks to etcd (the `etcd` crate).
//! - `stage`: the runtime's durable stage on a primary: each round appended with a fenced
//!   transaction before its replies are released.
//! - `replica`: the thread that catches up, follows, claims and promotes; and the lease thread.
//! - [`role`]: what this node is right now, for the server (`not_primary`) and the metrics.
//! - [`fuzz`]: the checks of the entry decoder's fuzz target.
//!
//! Wiring, in a binary: [`prepare`] (connects to etcd) → `Runtime::start_in(.., vec![stage])`
//! → [`Starter::start`] with the runtime's handle.
//!
//! **Invariant:** the format modules (`entry`, `keys`, `chain`) read no clock, socket or file.

// Without the driver, the store's write side and the role's setters have no caller here.
#![cfg_attr(not(feature = "driver"), allow(dead_code))]

pub mod chain;
#[cfg(feature = "driver")]
mod driver;
pub mod entry;
pub mod fuzz;
pub mod keys;
pub mod metrics;
pub mod position;
#[cfg(feature = "driver")]
mod replica;
pub mod role;
#[cfg(feature = "driver")]
mod stage;
pub mod status;
pub mod store;
#[cfg(feature = "driver")]
mod transfer;

pub use chain::{Chain, ChainError};
#[cfg(feature = "driver")]
pub use driver::{prepare, EngineSettings, ReplicationError, Starter};
pub use entry::{
    Entry, EntryError, EntryKind, Head, HeadError, ENTRY_HEADER_LEN_BYTES, HEAD_LEN_BYTES,
};
pub use metrics::ReplicationMetrics;
#[cfg(feature = "driver")]
pub use replica::{ClusterOptions, Replica, LOG_ENTRIES_MAX_DEFAULT};
pub use role::{Role, RoleState};
pub use store::Genesis;
#[cfg(feature = "driver")]
pub use transfer::TransferClient;
