//! The crate's error type: every way etcd, the network or the local machine can fail a request,
//! and how a gRPC status from tonic becomes one of them.
//!
//! The variant says what the caller may do next: [`Error::Timeout`] and [`Error::Unavailable`]
//! are retryable and leave a write's outcome unknown (it may or may not have been applied: a
//! fenced sequence must find out by reading, never assume); the others are definite answers.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong talking to etcd or running a local cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer within the request timeout. Retryable; a write's outcome is unknown.
    #[error(
        "etcd at {endpoint} did not answer within {timeout_ms} ms (a write may or may not have been applied)"
    )]
    Timeout {
        /// The endpoint the request was last sent to.
        endpoint: String,
        /// The request timeout that ran out.
        timeout_ms: u64,
    },
    /// The endpoint could not be reached, the connection broke, or the member could not serve
    /// (no leader, leader changed, stopping, etcd's own timeout). Retryable: the client has
    /// already moved on to the next endpoint; a write's outcome is unknown.
    #[error(
        "etcd at {endpoint} is unavailable: {message} (a write may or may not have been applied)"
    )]
    Unavailable {
        /// The endpoint that failed.
        endpoint: String,
        /// What failed, as tonic or etcd said it.
        message: String,
    },
    /// A range or watch asked for a revision that compaction has removed.
    #[error("revision compacted (the oldest revision left is {compact_revision:?})")]
    Compacted {
        /// The compaction revision, when etcd says it (a watch); `None` for a range.
        compact_revision: Option<i64>,
    },
    /// The lease does not exist: it expired or was revoked.
    #[error("lease {lease_id:#x} not found (expired or revoked)")]
    LeaseNotFound {
        /// The lease asked about.
        lease_id: i64,
    },
    /// The request is larger than etcd accepts (refused before sending, or by etcd).
    #[error("request of {request_bytes} bytes exceeds etcd's limit of {limit_bytes} bytes")]
    RequestTooLarge {
        /// The encoded size of the request.
        request_bytes: usize,
        /// The limit it was checked against (`REQUEST_BYTES_MAX` minus etcd's framing).
        limit_bytes: usize,
    },
    /// A transaction branch (or its compares) has more operations than etcd accepts.
    #[error("transaction has {ops} operations in one list; etcd accepts {ops_max}")]
    TooManyOps {
        /// The longest list of the transaction.
        ops: usize,
        /// etcd's `--max-txn-ops` default.
        ops_max: usize,
    },
    /// A response is larger than this client decodes (`ClientOptions::response_bytes_max`);
    /// ask for fewer keys at a time.
    #[error("response too large: {message}")]
    ResponseTooLarge {
        /// tonic's message, with the sizes.
        message: String,
    },
    /// etcd's database reached its quota (`--quota-backend-bytes`): writes are refused until
    /// space is freed (delete, compact, defragment) and the alarm disarmed.
    #[error("etcd's database space is exhausted (quota reached)")]
    NoSpace,
    /// etcd canceled a watch for a reason other than compaction.
    #[error("watch canceled by etcd: {reason}")]
    WatchCanceled {
        /// etcd's cancel reason.
        reason: String,
    },
    /// The watch has already ended (its error was returned before).
    #[error("the watch has ended")]
    WatchEnded,
    /// Too many `txn_submit` calls are in flight.
    #[error("{in_flight_max} submitted transactions are already in flight")]
    InFlightLimit {
        /// `SUBMITS_IN_FLIGHT_MAX`.
        in_flight_max: usize,
    },
    /// Any other gRPC status etcd answered with.
    #[error("etcd answered {code}: {message}")]
    Status {
        /// The gRPC status code.
        code: StatusCode,
        /// etcd's message (`etcdserver: ...`).
        message: String,
    },
    /// A response lacks something etcd always sends (a header, an operation's body).
    #[error("malformed response from etcd: {what}")]
    MalformedResponse {
        /// What was missing or unknown.
        what: &'static str,
    },
    /// An endpoint string that is not `host:port` or `http://host:port`.
    #[error("invalid etcd endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// A blocking method was called on a thread that runs inside a tokio runtime (for example
    /// from a `txn_submit` callback, which runs on the client's runtime thread): it would
    /// deadlock or panic, so it is refused. Send the work to another thread instead.
    #[error(
        "a blocking etcd call from inside a tokio runtime (a txn_submit callback?) is refused"
    )]
    InsideRuntime,
    /// The `etcd` binary was not found on PATH or at /usr/bin/etcd.
    #[error("etcd not found on PATH or at /usr/bin/etcd: install with `apt-get install etcd-server etcd-client`")]
    EtcdNotFound,
    /// A local etcd member did not start or did not become ready in time.
    #[error("local etcd member {member} did not start: {reason} (log: {})", log.display())]
    MemberStart {
        /// The member's index in the local cluster.
        member: usize,
        /// What went wrong, with the end of its log when there is one.
        reason: String,
        /// The member's log file.
        log: PathBuf,
    },
    /// A local file, directory or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when retrying may succeed: a timeout, an unavailable member, or etcd being
    /// overloaded (`too many requests`). For a write, the outcome of the failed attempt is
    /// unknown after [`Error::Timeout`] and [`Error::Unavailable`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Unavailable { .. } => true,
            Error::Status { code, .. } => *code == StatusCode::ResourceExhausted,
            _ => false,
        }
    }

    /// True when a write that failed this way may nevertheless have been applied.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::Unavailable { .. })
    }

    /// The endpoint should be given up for the next one.
    pub(crate) fn moves_on(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::Unavailable { .. })
    }
}

/// What the request was, for turning a status into the precise variant.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sent {
    /// The lease the request named (0: none).
    pub(crate) lease_id: i64,
    /// The encoded size of the request.
    pub(crate) request_bytes: usize,
    /// The request timeout in force.
    pub(crate) timeout_ms: u64,
}

/// Turns a gRPC status into an [`Error`]. A status that tonic made locally from a failed
/// connection carries its cause as `source`; one etcd sent has none.
pub(crate) fn from_status(status: &tonic::Status, endpoint: &str, sent: Sent) -> Error {
    let message = status.message();
    let local = std::error::Error::source(status).is_some();
    if local {
        return Error::Unavailable { endpoint: endpoint.to_string(), message: message.to_string() };
    }
    // etcd's messages (etcdserver/api/v3rpc/rpctypes) are stable across 3.x.
    if message.contains("required revision has been compacted") {
        return Error::Compacted { compact_revision: None };
    }
    if message.contains("requested lease not found") {
        return Error::LeaseNotFound { lease_id: sent.lease_id };
    }
    if message.contains("request is too large") {
        return Error::RequestTooLarge {
            request_bytes: sent.request_bytes,
            limit_bytes: crate::limits::REQUEST_BYTES_MAX,
        };
    }
    if message.contains("database space exceeded") {
        return Error::NoSpace;
    }
    if message.contains("decoded message length too large") {
        return Error::ResponseTooLarge { message: message.to_string() };
    }
    let code = StatusCode::from(status.code());
    match code {
        StatusCode::Unavailable => {
            Error::Unavailable { endpoint: endpoint.to_string(), message: message.to_string() }
        }
        StatusCode::DeadlineExceeded => {
            Error::Timeout { endpoint: endpoint.to_string(), timeout_ms: sent.timeout_ms }
        }
        _ => Error::Status { code, message: message.to_string() },
    }
}

/// A gRPC status code (the 17 the gRPC specification defines), without tonic in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the names are the specification's
pub enum StatusCode {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl From<tonic::Code> for StatusCode {
    fn from(code: tonic::Code) -> StatusCode {
        match code {
            tonic::Code::Ok => StatusCode::Ok,
            tonic::Code::Cancelled => StatusCode::Cancelled,
            tonic::Code::Unknown => StatusCode::Unknown,
            tonic::Code::InvalidArgument => StatusCode::InvalidArgument,
            tonic::Code::DeadlineExceeded => StatusCode::DeadlineExceeded,
            tonic::Code::NotFound => StatusCode::NotFound,
            tonic::Code::AlreadyExists => StatusCode::AlreadyExists,
            tonic::Code::PermissionDenied => StatusCode::PermissionDenied,
            tonic::Code::ResourceExhausted => StatusCode::ResourceExhausted,
            tonic::Code::FailedPrecondition => StatusCode::FailedPrecondition,
            tonic::Code::Aborted => StatusCode::Aborted,
            tonic::Code::OutOfRange => StatusCode::OutOfRange,
            tonic::Code::Unimplemented => StatusCode::Unimplemented,
            tonic::Code::Internal => StatusCode::Internal,
            tonic::Code::Unavailable => StatusCode::Unavailable,
            tonic::Code::DataLoss => StatusCode::DataLoss,
            tonic::Code::Unauthenticated => StatusCode::Unauthenticated,
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
