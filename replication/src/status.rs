//! A replica group as etcd sees it, for `ledger cluster status`: the epoch, the primary, the
//! log head and its oldest entry, every live replica with how far behind the head it is, each
//! node's trimming floor, and each etcd member.
//! Read-only: nothing is written.

use crate::entry::Head;
use crate::keys::Keys;
use crate::store::{Leader, ReplicaRecord, Store};

/// One live replica and its lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// What it reported.
    pub record: ReplicaRecord,
    /// Records between its position and the log head (0 for an up-to-date replica).
    pub lag_records: u64,
}

/// One etcd member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// The client endpoint asked.
    pub endpoint: String,
    /// Whether it answered, and if so whether it is the etcd leader and its database size.
    pub answer: Result<(bool, i64), String>,
}

/// The group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The ledger's name.
    pub ledger: String,
    /// The highest epoch claimed.
    pub epoch: u64,
    /// The primary, if there is one now.
    pub leader: Option<Leader>,
    /// The newest log entry.
    pub head: Option<Head>,
    /// The oldest entry the log still holds (entries before it were trimmed).
    pub oldest_index: Option<u64>,
    /// Every node's trimming floor (REPLICATION.md, *Trimming*), by node id; nodes that are
    /// down keep theirs.
    pub floors: Vec<(String, u64)>,
    /// Live replicas, by node id.
    pub replicas: Vec<ReplicaStatus>,
    /// Replica records this build cannot read (their keys).
    pub unreadable: Vec<String>,
    /// Each etcd member.
    pub members: Vec<MemberStatus>,
}

/// Reads the status of ledger `ledger` from the etcd cluster at `endpoints`.
pub fn read(endpoints: &[String], ledger: &str, timeout_ms: u64) -> Result<GroupStatus, String> {
    let keys = Keys::new(ledger).map_err(|error| error.to_string())?;
    let store = Store::connect(endpoints, keys, timeout_ms).map_err(|e| e.message().to_owned())?;
    let failed = |error: crate::store::StoreError| error.message().to_owned();
    let epoch = store.epoch().map_err(failed)?;
    let leader = store.leader().map_err(failed)?;
    let head = store.head().map_err(failed)?;
    let oldest_index = store.oldest_index().map_err(failed)?;
    let (floors, _) = store.floors().map_err(failed)?;
    let (mut records, unreadable) = store.replicas().map_err(failed)?;
    records.sort_by(|a, b| a.node.cmp(&b.node));
    let head_seq = head.map_or(0, |head| head.last_seq);
    let replicas = records
        .into_iter()
        .map(|record| ReplicaStatus { lag_records: head_seq.saturating_sub(record.seq), record })
        .collect();
    let members = endpoints
        .iter()
        .map(|endpoint| {
            let answer = store
                .client()
                .status(endpoint)
                .map(|status| (status.leader_id == status.member_id, status.db_size_bytes))
                .map_err(|error| error.to_string());
            MemberStatus { endpoint: endpoint.clone(), answer }
        })
        .collect();
    Ok(GroupStatus {
        ledger: ledger.to_owned(),
        epoch,
        leader,
        head,
        oldest_index,
        floors,
        replicas,
        unreadable,
        members,
    })
}
