//! Transactions: a [`Txn`] is a list of [`Compare`]s that must all hold, the [`Op`]s to run
//! when they do, and those to run when they do not; etcd applies it atomically at one new
//! revision. [`TxnResult`] says which branch ran, with one typed [`OpResponse`] per operation.
//!
//! ```no_run
//! # fn main() -> Result<(), etcd::Error> {
//! # let client = etcd::Client::connect(&["127.0.0.1:2379".to_string()], 1_000, 2_000)?;
//! # let (epoch_revision, lease_id) = (7, 0);
//! use etcd::{Cmp, Compare, Op, Txn};
//! // Append entry 42 only while the epoch key is the one we wrote, and only once.
//! let txn = Txn::new()
//!     .when(Compare::mod_revision("ledger/epoch", Cmp::Equal, epoch_revision))
//!     .when(Compare::create_revision("ledger/log/42", Cmp::Equal, 0))
//!     .then(Op::put("ledger/log/42", b"entry bytes".to_vec(), lease_id));
//! let result = client.txn(txn)?;
//! assert!(result.succeeded);
//! # Ok(()) }
//! ```

use prost::Message;

use crate::error::Error;
use crate::limits::{REQUEST_ENCODED_BYTES_MAX, TXN_OPS_MAX};
use crate::pb::etcdserverpb::{self as rpc, compare, request_op, response_op};
use crate::range::Range;
use crate::types::{Header, KeyValue};

/// How a compare relates the key's field to the given value: `field <cmp> value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
}

impl Cmp {
    fn to_pb(self) -> compare::CompareResult {
        match self {
            Cmp::Equal => compare::CompareResult::Equal,
            Cmp::NotEqual => compare::CompareResult::NotEqual,
            Cmp::Less => compare::CompareResult::Less,
            Cmp::Greater => compare::CompareResult::Greater,
        }
    }
}

/// One condition of a transaction, on one key (or every key of a range). A key that does not
/// exist has version, create and mod revision 0 and lease 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Compare(rpc::Compare);

impl Compare {
    fn new(
        key: Vec<u8>,
        cmp: Cmp,
        target: compare::CompareTarget,
        union: compare::TargetUnion,
    ) -> Compare {
        Compare(rpc::Compare {
            result: cmp.to_pb() as i32,
            target: target as i32,
            key,
            range_end: Vec::new(),
            target_union: Some(union),
        })
    }

    /// The key's version (changes since its creation; 0: absent).
    pub fn version(key: impl Into<Vec<u8>>, cmp: Cmp, version: i64) -> Compare {
        let union = compare::TargetUnion::Version(version);
        Compare::new(key.into(), cmp, compare::CompareTarget::Version, union)
    }

    /// The revision that created the key (0: absent).
    pub fn create_revision(key: impl Into<Vec<u8>>, cmp: Cmp, revision: i64) -> Compare {
        let union = compare::TargetUnion::CreateRevision(revision);
        Compare::new(key.into(), cmp, compare::CompareTarget::Create, union)
    }

    /// The revision of the key's last change (0: absent): the fence of a compare-and-swap.
    pub fn mod_revision(key: impl Into<Vec<u8>>, cmp: Cmp, revision: i64) -> Compare {
        let union = compare::TargetUnion::ModRevision(revision);
        Compare::new(key.into(), cmp, compare::CompareTarget::Mod, union)
    }

    /// The key's value, compared bytewise.
    pub fn value(key: impl Into<Vec<u8>>, cmp: Cmp, value: impl Into<Vec<u8>>) -> Compare {
        let union = compare::TargetUnion::Value(value.into());
        Compare::new(key.into(), cmp, compare::CompareTarget::Value, union)
    }

    /// The lease the key is attached to (0: none).
    pub fn lease(key: impl Into<Vec<u8>>, cmp: Cmp, lease_id: i64) -> Compare {
        let union = compare::TargetUnion::Lease(lease_id);
        Compare::new(key.into(), cmp, compare::CompareTarget::Lease, union)
    }

    /// Apply the condition to every key in `[key, range_end)` instead of `key` alone.
    pub fn with_range_end(mut self, range_end: impl Into<Vec<u8>>) -> Compare {
        self.0.range_end = range_end.into();
        self
    }
}

/// One operation of a transaction branch.
#[derive(Clone, Debug, PartialEq)]
pub struct Op(rpc::RequestOp);

impl Op {
    /// Put `value` at `key`, attached to `lease_id` (0: no lease).
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, lease_id: i64) -> Op {
        let put = rpc::PutRequest {
            key: key.into(),
            value: value.into(),
            lease: lease_id,
            ..Default::default()
        };
        Op(rpc::RequestOp { request: Some(request_op::Request::RequestPut(put)) })
    }

    /// Delete `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Op {
        Op::delete_range(key, Vec::new())
    }

    /// Delete every key in `[key, range_end)`.
    pub fn delete_range(key: impl Into<Vec<u8>>, range_end: impl Into<Vec<u8>>) -> Op {
        let delete = rpc::DeleteRangeRequest {
            key: key.into(),
            range_end: range_end.into(),
            prev_kv: false,
        };
        Op(rpc::RequestOp { request: Some(request_op::Request::RequestDeleteRange(delete)) })
    }

    /// Read `key`.
    pub fn get(key: impl Into<Vec<u8>>) -> Op {
        Op::range(Range::key(key))
    }

    /// Read a range (at the transaction's revision: `Range::revision` is ignored by etcd here).
    pub fn range(range: Range) -> Op {
        Op(rpc::RequestOp { request: Some(request_op::Request::RequestRange(range.0)) })
    }
}

/// A transaction under construction: `when` every compare holds, `then` run these operations,
/// `otherwise` those. Each list holds at most `TXN_OPS_MAX`; a key may be written at most once
/// per branch (etcd refuses duplicates).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Txn {
    request: rpc::TxnRequest,
}

impl Txn {
    /// An empty transaction (no compare: the `then` branch runs).
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Adds a condition; all must hold for the `then` branch.
    pub fn when(mut self, compare: Compare) -> Txn {
        self.request.compare.push(compare.0);
        self
    }

    /// Adds an operation to run when every condition holds.
    pub fn then(mut self, op: Op) -> Txn {
        self.request.success.push(op.0);
        self
    }

    /// Adds an operation to run when some condition does not hold.
    pub fn otherwise(mut self, op: Op) -> Txn {
        self.request.failure.push(op.0);
        self
    }

    /// The size of the transaction's encoding, in bytes (what etcd's request limit applies to,
    /// plus at most `REQUEST_FRAMING_BYTES_MAX`).
    pub fn encoded_len(&self) -> usize {
        self.request.encoded_len()
    }

    /// The request, once checked against etcd's limits; also its encoded size.
    pub(crate) fn into_request(self) -> Result<(rpc::TxnRequest, usize), Error> {
        let request = self.request;
        let ops = request.compare.len().max(request.success.len()).max(request.failure.len());
        if ops > TXN_OPS_MAX {
            return Err(Error::TooManyOps { ops, ops_max: TXN_OPS_MAX });
        }
        let request_bytes = request.encoded_len();
        check_size(request_bytes)?;
        Ok((request, request_bytes))
    }
}

/// Refuses a request that etcd would refuse for its size.
pub(crate) fn check_size(request_bytes: usize) -> Result<(), Error> {
    if request_bytes > REQUEST_ENCODED_BYTES_MAX {
        return Err(Error::RequestTooLarge {
            request_bytes,
            limit_bytes: REQUEST_ENCODED_BYTES_MAX,
        });
    }
    Ok(())
}

/// What one operation of the branch that ran answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// A read: the keys, whether more were in the range, and how many.
    Range {
        /// The keys read.
        kvs: Vec<KeyValue>,
        /// More keys are in the range than the limit let through.
        more: bool,
        /// Keys in the range.
        count: i64,
    },
    /// A put.
    Put,
    /// A delete, with the number of keys deleted.
    DeleteRange {
        /// Keys deleted.
        deleted: i64,
    },
}

/// The answer to a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResult {
    /// Every compare held: the `then` branch ran (else the `otherwise` branch did).
    pub succeeded: bool,
    /// One answer per operation of the branch that ran, in order.
    pub responses: Vec<OpResponse>,
    /// The header; when the branch wrote, `header.revision` is the transaction's revision.
    pub header: Header,
}

impl TxnResult {
    pub(crate) fn from_pb(response: rpc::TxnResponse) -> Result<TxnResult, Error> {
        let header = Header::from_pb(response.header)?;
        let responses = response
            .responses
            .into_iter()
            .map(|op| match op.response {
                Some(response_op::Response::ResponseRange(range)) => Ok(OpResponse::Range {
                    kvs: range.kvs.into_iter().map(KeyValue::from_pb).collect(),
                    more: range.more,
                    count: range.count,
                }),
                Some(response_op::Response::ResponsePut(_)) => Ok(OpResponse::Put),
                Some(response_op::Response::ResponseDeleteRange(delete)) => {
                    Ok(OpResponse::DeleteRange { deleted: delete.deleted })
                }
                None => Err(Error::MalformedResponse {
                    what: "a transaction response without its operation",
                }),
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(TxnResult { succeeded: response.succeeded, responses, header })
    }
}
