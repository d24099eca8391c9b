//! A small, typed, blocking client for etcd 3.4's v3 gRPC API, and real local etcd clusters
//! for tests ([`local`]).
//!
//! [`Client`] covers what the ledger's replication needs: keys and ranges, transactions
//! ([`Txn`]: compares on version, create/mod revision, value or lease; puts, deletes and reads),
//! pipelined transactions ([`Client::txn_submit`]), compaction, leases, watches ([`Watch`]),
//! member status and the member list. Keys and values are bytes. Every call blocks the calling
//! thread for at most the request timeout; the client drives its connections on its own
//! one-thread tokio runtime, and tokio never shows in the API.
//!
//! Failover: requests go to one preferred endpoint; a timeout or an unavailable member
//! (dead, stopped, without a leader) moves the preference to the next endpoint, and requests
//! that are safe to repeat are sent there at once. A write that failed that way has an unknown
//! outcome ([`Error::is_outcome_unknown`]): the caller finds out by reading.
//!
//! The protocol is generated at build time from our own subset of etcd's API
//! (`proto/etcd.proto`, `proto/mvcc.proto`) with the `protoc` of `protoc-bin-vendored`.
//!
//! **Invariant:** nothing a server sends can panic the client: missing fields are
//! [`Error::MalformedResponse`], sizes are bounded by `ClientOptions::response_bytes_max`.
//! **Boundary:** the API is blocking and typed; [`Error`] tells retryable from definite.

#![warn(missing_docs)]

mod call;
mod client;
mod endpoints;
mod error;
pub mod limits;
pub mod local;
mod options;
mod range;
mod runtime;
mod txn;
mod types;
mod watch;

/// The code generated from `proto/`; private, converted at the boundary.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
mod pb {
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}

pub use client::{Client, TxnDone};
pub use error::{Error, StatusCode};
pub use options::ClientOptions;
pub use range::{prefix_end, Range};
pub use txn::{Cmp, Compare, Op, OpResponse, Txn, TxnResult};
pub use types::{Header, KeyValue, Lease, Member, MemberStatus, RangeResult};
pub use watch::{EventKind, Watch, WatchBatch, WatchEvent, WatchOptions};
