//! The plain types the client returns (headers, keys, ranges, leases, members), converted from
//! the generated protobuf messages so that neither prost nor tonic shows in the API. A missing
//! header, which etcd always sends, is a [`Error::MalformedResponse`], never a panic.

use crate::error::Error;
use crate::pb::{etcdserverpb as rpc, mvccpb};

/// What every response carries about the cluster and the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The cluster's id.
    pub cluster_id: u64,
    /// The member that answered.
    pub member_id: u64,
    /// The store's revision when the request was served (for a write: the revision it made).
    pub revision: i64,
    /// The raft term at the time.
    pub raft_term: u64,
}

impl Header {
    pub(crate) fn from_pb(header: Option<rpc::ResponseHeader>) -> Result<Header, Error> {
        let header =
            header.ok_or(Error::MalformedResponse { what: "a response without a header" })?;
        Ok(Header {
            cluster_id: header.cluster_id,
            member_id: header.member_id,
            revision: header.revision,
            raft_term: header.raft_term,
        })
    }
}

/// One key with its value and revisions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for a `keys_only` range).
    pub value: Vec<u8>,
    /// The revision that created the key (since its last delete).
    pub create_revision: i64,
    /// The revision of its last change (for a delete event: the delete's revision).
    pub mod_revision: i64,
    /// Changes since it was created; 0 after a delete.
    pub version: i64,
    /// The lease it is attached to; 0 for none.
    pub lease_id: i64,
}

impl KeyValue {
    pub(crate) fn from_pb(kv: mvccpb::KeyValue) -> KeyValue {
        KeyValue {
            key: kv.key,
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease_id: kv.lease,
        }
    }
}

/// The answer to a range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResult {
    /// The keys, in key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// More keys are in the range than `limit` let through.
    pub more: bool,
    /// How many keys are in the range (all of them, not only those returned).
    pub count: i64,
    /// The header; `header.revision` is the revision the range was read at.
    pub header: Header,
}

impl RangeResult {
    pub(crate) fn from_pb(response: rpc::RangeResponse) -> Result<RangeResult, Error> {
        Ok(RangeResult {
            header: Header::from_pb(response.header)?,
            kvs: response.kvs.into_iter().map(KeyValue::from_pb).collect(),
            more: response.more,
            count: response.count,
        })
    }
}

/// A granted lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lease's id, to attach keys with and to keep alive.
    pub id: i64,
    /// The time to live etcd granted, in seconds (at least the cluster's minimum, see
    /// `Client::lease_grant`).
    pub ttl_s: i64,
}

/// One member of the cluster, as `member_list` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's id.
    pub id: u64,
    /// Its name (empty while it has not started).
    pub name: String,
    /// Where its peers reach it.
    pub peer_urls: Vec<String>,
    /// Where clients reach it (empty while it has not started).
    pub client_urls: Vec<String>,
    /// A raft learner (not voting).
    pub is_learner: bool,
}

impl Member {
    pub(crate) fn from_pb(member: rpc::Member) -> Member {
        Member {
            id: member.id,
            name: member.name,
            peer_urls: member.peer_urls,
            client_urls: member.client_urls,
            is_learner: member.is_learner,
        }
    }
}

/// One member's view of itself and the cluster, as `status` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member that answered.
    pub member_id: u64,
    /// The leader it knows of; 0 when it knows none.
    pub leader_id: u64,
    /// Its raft log's committed index.
    pub raft_index: u64,
    /// Its raft term.
    pub raft_term: u64,
    /// Its applied index.
    pub raft_applied_index: u64,
    /// The database file's size, in bytes (what the quota is checked against).
    pub db_size_bytes: i64,
    /// The part of the file in use, in bytes (the rest is freed by a defragmentation).
    pub db_size_in_use_bytes: i64,
    /// The store revision it has applied.
    pub revision: i64,
    /// The etcd version it runs.
    pub version: String,
    /// Alarms and health problems it reports.
    pub errors: Vec<String>,
    /// A raft learner (not voting).
    pub is_learner: bool,
}

impl MemberStatus {
    pub(crate) fn from_pb(response: rpc::StatusResponse) -> Result<MemberStatus, Error> {
        let header = Header::from_pb(response.header)?;
        Ok(MemberStatus {
            member_id: header.member_id,
            leader_id: response.leader,
            raft_index: response.raft_index,
            raft_term: response.raft_term,
            raft_applied_index: response.raft_applied_index,
            db_size_bytes: response.db_size,
            db_size_in_use_bytes: response.db_size_in_use,
            revision: header.revision,
            version: response.version,
            errors: response.errors,
            is_learner: response.is_learner,
        })
    }
}
