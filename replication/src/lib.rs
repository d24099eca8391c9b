//! The replica group on etcd: one ledger = one primary + hot standbys, its writer rounds kept in
//! a log in etcd (REPLICATION.md, next to this crate, specifies every byte and every step).
//!
//! - [`entry`]: the log entry format (a writer round, or the start of an epoch), its hash
//!   chain, and the `head` record the fenced appends compare against. Pure: bytes in, bytes out.
//! - [`keys`]: where a ledger's log, head, epoch, leader and replica records live in etcd.
//! - [`chain`]: the verifier a standby runs over the entries it reads (gaps, a broken hash
//!   chain, an epoch going backwards, a divergent `state_hash`: each stops it loudly).
//!
//! **Invariant:** nothing here reads a clock, a socket or a file; the etcd driver feeds it.

pub mod chain;
pub mod entry;
pub mod keys;

pub use chain::{Chain, ChainError};
pub use entry::{
    Entry, EntryError, EntryKind, Head, HeadError, ENTRY_HEADER_LEN_BYTES, HEAD_LEN_BYTES,
};
