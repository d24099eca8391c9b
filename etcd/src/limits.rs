//! Every limit of the client, in one place, with the relationships between them checked at
//! compile time. The etcd-side figures are etcd 3.4's defaults; a cluster started with other
//! `--max-request-bytes` or `--max-txn-ops` needs these changed to match.

/// etcd's default `--max-request-bytes` (1.5 MiB): a member refuses a request whose internal
/// raft encoding is larger.
pub const REQUEST_BYTES_MAX: usize = 1_572_864;

/// What etcd adds to a request's own encoding before comparing it with [`REQUEST_BYTES_MAX`]:
/// the raft wrapper's request header (field 100, holding a 64-bit request id: at most 14 bytes)
/// and the wrapper's tag and length around the request (at most 5 bytes), rounded up.
pub const REQUEST_FRAMING_BYTES_MAX: usize = 32;

/// The largest encoded request this client sends; larger ones are refused before sending with
/// `Error::RequestTooLarge`.
pub const REQUEST_ENCODED_BYTES_MAX: usize = REQUEST_BYTES_MAX - REQUEST_FRAMING_BYTES_MAX;

/// etcd's default `--max-txn-ops`: compares, success operations and failure operations of one
/// transaction, each list at most this long.
pub const TXN_OPS_MAX: usize = 128;

/// The default largest response decoded (a range result, a watch response): room for 64 values
/// of the largest size etcd accepts, with their keys.
pub const RESPONSE_BYTES_MAX_DEFAULT: usize = 128 << 20;

/// Submitted transactions in flight at once, per client; one more is answered with
/// `Error::InFlightLimit`.
pub const SUBMITS_IN_FLIGHT_MAX: usize = 1_024;

/// Watch batches waiting for `Watch::recv_timeout`, per watch; when they are all taken the
/// watch stops reading its stream (etcd then holds the events back) instead of growing.
pub const WATCH_BATCHES_QUEUED_MAX: usize = 16;

const _: () = assert!(REQUEST_FRAMING_BYTES_MAX < REQUEST_BYTES_MAX);
const _: () = assert!(RESPONSE_BYTES_MAX_DEFAULT >= 64 * REQUEST_BYTES_MAX);
