//! [`Client`]: the blocking face of the crate. Each method builds its request, runs it on the
//! client's runtime (see `runtime.rs` for why that runtime has one worker) through `call.rs`
//! (preferred endpoint, timeout, failover), and converts the answer into the plain types of
//! `types.rs`, `txn.rs` and `watch.rs`.
//!
//! Which requests are sent again on the next endpoint after a timeout or an unavailable
//! member: reads (`get`, `range*`, `member_list`, `lease_time_to_live`), keepalives, revokes
//! and watch creation, all safe to repeat. Writes (`put`, `delete_range`, `txn`,
//! `txn_submit`, `compact`, `lease_grant`) are sent once: their error says the outcome is
//! unknown, and the caller decides (a fenced append reads the log head to find out).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_stream::StreamExt;

use crate::call::{leader_required, Shared};
use crate::endpoints::{self, ChannelOptions, Endpoints};
use crate::error::{Error, Sent};
use crate::limits::SUBMITS_IN_FLIGHT_MAX;
use crate::options::ClientOptions;
use crate::pb::etcdserverpb::{
    self as rpc, cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient,
};
use crate::range::{prefix_end, Range};
use crate::runtime::Runtime;
use crate::txn::{check_size, Txn, TxnResult};
use crate::types::{Header, KeyValue, Lease, Member, MemberStatus, RangeResult};
use crate::watch::{self, Watch, WatchOptions};

/// What `txn_submit` calls with the answer, on the client's runtime thread.
pub type TxnDone = Box<dyn FnOnce(Result<TxnResult, Error>) + Send>;

/// A handle to an etcd cluster. Cheap to clone (the clones share the connections and the
/// runtime thread), `Send + Sync`; the runtime stops when the last clone (and the last
/// [`Watch`]) is dropped, without calling the callbacks of unanswered submissions.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("shared", &self.shared).finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the cluster at `endpoints` (`host:port` or `http://host:port`): the first
    /// endpoint that answers a status request within `request_timeout_ms` becomes the
    /// preferred one; the others are connected when needed. Fails when none answers.
    pub fn connect(
        endpoints: &[String],
        connect_timeout_ms: u64,
        request_timeout_ms: u64,
    ) -> Result<Client, Error> {
        Client::connect_with(endpoints, ClientOptions::new(connect_timeout_ms, request_timeout_ms))
    }

    /// [`Client::connect`] with every option.
    pub fn connect_with(endpoints: &[String], options: ClientOptions) -> Result<Client, Error> {
        let client = Client::lazy(endpoints, options)?;
        client.find_reachable()?;
        Ok(client)
    }

    /// A client that has not talked to anyone yet (for probing members that are starting).
    pub(crate) fn lazy(endpoints: &[String], options: ClientOptions) -> Result<Client, Error> {
        let runtime = Runtime::start()?;
        let channel_options = ChannelOptions { connect_timeout_ms: options.connect_timeout_ms };
        let endpoints = {
            let _context = runtime.handle().enter();
            Endpoints::new(endpoints, channel_options)?
        };
        let shared = Shared { endpoints, options, submits_in_flight: Default::default() };
        Ok(Client { shared: Arc::new(shared), runtime: Arc::new(runtime) })
    }

    fn find_reachable(&self) -> Result<(), Error> {
        let mut failures = Vec::new();
        for index in 0..self.shared.endpoints.len() {
            let Some(endpoint) = self.shared.endpoints.get(index) else { break };
            match self.status(&endpoint.address) {
                Ok(_) => {
                    self.shared.endpoints.prefer(index);
                    return Ok(());
                }
                Err(error) => failures.push(error.to_string()),
            }
        }
        let addresses: Vec<&str> = (0..self.shared.endpoints.len())
            .filter_map(|index| {
                self.shared.endpoints.get(index).map(|endpoint| endpoint.address.as_str())
            })
            .collect();
        Err(Error::Unavailable { endpoint: addresses.join(","), message: failures.join("; ") })
    }

    /// The endpoint requests go to now.
    pub fn preferred_endpoint(&self) -> String {
        self.shared.endpoints.preferred().1.address.clone()
    }

    /// The options in force.
    pub fn options(&self) -> ClientOptions {
        self.shared.options
    }

    fn kv(&self, channel: tonic::transport::Channel) -> KvClient<tonic::transport::Channel> {
        KvClient::new(channel).max_decoding_message_size(self.shared.options.response_bytes_max)
    }

    /// The value of `key`, if it exists.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, Error> {
        let result = self.range_with(Range::key(key))?;
        Ok(result.kvs.into_iter().next())
    }

    /// The keys in `[key, range_end)`, at most `limit` (0: all); `range_end` empty means just
    /// `key`, `b"\0"` every key from `key` on.
    pub fn range(&self, key: &[u8], range_end: &[u8], limit: i64) -> Result<RangeResult, Error> {
        self.range_with(Range::between(key, range_end).limit(limit))
    }

    /// The keys starting with `prefix`, at most `limit` (0: all).
    pub fn range_prefix(&self, prefix: &[u8], limit: i64) -> Result<RangeResult, Error> {
        self.range(prefix, &prefix_end(prefix), limit)
    }

    /// A read with every option of [`Range`] (a revision, keys or count only, serializable).
    pub fn range_with(&self, range: Range) -> Result<RangeResult, Error> {
        let request = range.0;
        let future = self.shared.call_idempotent(Sent::default(), |channel| {
            let mut kv = self.kv(channel);
            let request = leader_required(request.clone());
            async move { kv.range(request).await.map(tonic::Response::into_inner) }
        });
        let (response, _) = self.runtime.block_on(future)??;
        RangeResult::from_pb(response)
    }

    /// Puts `value` at `key`, attached to `lease_id` (0: no lease). Sent once.
    pub fn put(&self, key: &[u8], value: &[u8], lease_id: i64) -> Result<Header, Error> {
        let request = rpc::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease: lease_id,
            ..Default::default()
        };
        let request_bytes = prost::Message::encoded_len(&request);
        check_size(request_bytes)?;
        let sent = Sent { lease_id, request_bytes, ..Sent::default() };
        let future = self.shared.call_once(sent, |channel| {
            let mut kv = self.kv(channel);
            async move { kv.put(leader_required(request)).await.map(tonic::Response::into_inner) }
        });
        let response = self.runtime.block_on(future)??;
        Header::from_pb(response.header)
    }

    /// Deletes the keys in `[key, range_end)` (`range_end` empty: just `key`); returns how
    /// many were deleted. Sent once.
    pub fn delete_range(&self, key: &[u8], range_end: &[u8]) -> Result<(i64, Header), Error> {
        let request = rpc::DeleteRangeRequest {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            prev_kv: false,
        };
        let future = self.shared.call_once(Sent::default(), |channel| {
            let mut kv = self.kv(channel);
            async move {
                kv.delete_range(leader_required(request)).await.map(tonic::Response::into_inner)
            }
        });
        let response = self.runtime.block_on(future)??;
        Ok((response.deleted, Header::from_pb(response.header)?))
    }

    /// Runs a transaction and waits for its answer. Sent once.
    pub fn txn(&self, txn: Txn) -> Result<TxnResult, Error> {
        let (request, request_bytes) = txn.into_request()?;
        let response = self.runtime.block_on(txn_call(&self.shared, request, request_bytes))??;
        Ok(response)
    }

    /// Sends a transaction without waiting: several can be in flight at once on the one HTTP/2
    /// connection to the preferred member, and leave it in the order they were submitted.
    /// `done` is called exactly once, from the client's runtime thread, as answers arrive (in
    /// completion order); it must not block, nor call the client's blocking methods (they
    /// return [`Error::InsideRuntime`]) — hand the result to another thread.
    ///
    /// etcd applies each transaction when its raft proposal commits; it does not promise to
    /// apply concurrent requests in the order they were sent (they are handled concurrently
    /// inside the member). A sequence whose order matters must fence each transaction on what
    /// the previous ones write (a compare on a key they create), so that one applied out of
    /// order fails its compare instead of applying. Refused at once (through `done`) with
    /// [`Error::InFlightLimit`] beyond `SUBMITS_IN_FLIGHT_MAX` unanswered submissions.
    pub fn txn_submit(&self, txn: Txn, done: TxnDone) {
        let shared = Arc::clone(&self.shared);
        let in_flight = shared.submits_in_flight.fetch_add(1, Ordering::AcqRel);
        let prepared = if in_flight >= SUBMITS_IN_FLIGHT_MAX {
            Err(Error::InFlightLimit { in_flight_max: SUBMITS_IN_FLIGHT_MAX })
        } else {
            txn.into_request()
        };
        self.runtime.handle().spawn(async move {
            let result = match prepared {
                Ok((request, request_bytes)) => txn_call(&shared, request, request_bytes).await,
                Err(error) => Err(error),
            };
            // The slot is free before `done` runs, so `done` may submit the next one.
            shared.submits_in_flight.fetch_sub(1, Ordering::AcqRel);
            done(result);
        });
    }

    /// Compacts the store's history up to `revision` (revisions below it can no longer be
    /// read or watched); `physical`: wait until the space is freed in the backend too. Sent
    /// once; a revision already compacted is [`Error::Compacted`].
    pub fn compact(&self, revision: i64, physical: bool) -> Result<(), Error> {
        let request = rpc::CompactionRequest { revision, physical };
        let future =
            self.shared.call_once(Sent::default(), |channel| {
                let mut kv = self.kv(channel);
                async move {
                    kv.compact(leader_required(request)).await.map(tonic::Response::into_inner)
                }
            });
        let response = self.runtime.block_on(future)??;
        Header::from_pb(response.header).map(|_| ())
    }

    /// Grants a lease of `ttl_s` seconds. etcd raises a shorter TTL to its minimum,
    /// ceil(1.5 × election timeout) in seconds: 2 s with the default 1 000 ms election timeout,
    /// 1 s with the 500 ms of `local::LocalCluster`. The lease expires `ttl_s` after the last
    /// keepalive (and may last up to an election timeout longer across a leader change).
    /// Sent once.
    pub fn lease_grant(&self, ttl_s: i64) -> Result<Lease, Error> {
        let request = rpc::LeaseGrantRequest { ttl: ttl_s, id: 0 };
        let future = self.shared.call_once(Sent::default(), |channel| {
            let mut lease = LeaseClient::new(channel);
            async move {
                lease.lease_grant(leader_required(request)).await.map(tonic::Response::into_inner)
            }
        });
        let response = self.runtime.block_on(future)??;
        Header::from_pb(response.header)?;
        if !response.error.is_empty() {
            return Err(Error::Status {
                code: crate::error::StatusCode::Unknown,
                message: response.error,
            });
        }
        Ok(Lease { id: response.id, ttl_s: response.ttl })
    }

    /// One keepalive round trip: renews the lease and returns its new TTL in seconds, or
    /// [`Error::LeaseNotFound`] when it has expired or was revoked. Each call opens a
    /// short-lived stream on the existing connection (no stream outlives a call).
    pub fn lease_keep_alive(&self, lease_id: i64) -> Result<i64, Error> {
        let sent = Sent { lease_id, ..Sent::default() };
        let future = self.shared.call_idempotent(sent, |channel| async move {
            let mut lease = LeaseClient::new(channel);
            let request =
                leader_required(tokio_stream::once(rpc::LeaseKeepAliveRequest { id: lease_id }));
            let mut answers = lease.lease_keep_alive(request).await?.into_inner();
            match answers.next().await {
                Some(answer) => answer,
                None => {
                    Err(tonic::Status::unavailable("the keepalive stream ended without an answer"))
                }
            }
        });
        let (response, _) = self.runtime.block_on(future)??;
        Header::from_pb(response.header)?;
        if response.ttl <= 0 {
            return Err(Error::LeaseNotFound { lease_id });
        }
        Ok(response.ttl)
    }

    /// Revokes the lease: every key attached to it is deleted. Repeated on the next endpoint
    /// after an unknown outcome; a lease that a repeat finds gone counts as revoked.
    pub fn lease_revoke(&self, lease_id: i64) -> Result<(), Error> {
        let sent = Sent { lease_id, ..Sent::default() };
        let mut attempts = 0_u32;
        let future = self.shared.call_idempotent(sent, |channel| {
            attempts += 1;
            let mut lease = LeaseClient::new(channel);
            let request = leader_required(rpc::LeaseRevokeRequest { id: lease_id });
            async move { lease.lease_revoke(request).await.map(tonic::Response::into_inner) }
        });
        let result = self.runtime.block_on(future)?;
        match result {
            Ok((response, _)) => Header::from_pb(response.header).map(|_| ()),
            Err(Error::LeaseNotFound { .. }) if attempts > 1 => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The lease's remaining TTL in seconds, or [`Error::LeaseNotFound`].
    pub fn lease_time_to_live(&self, lease_id: i64) -> Result<i64, Error> {
        let sent = Sent { lease_id, ..Sent::default() };
        let future = self.shared.call_idempotent(sent, |channel| {
            let mut lease = LeaseClient::new(channel);
            let request =
                leader_required(rpc::LeaseTimeToLiveRequest { id: lease_id, keys: false });
            async move { lease.lease_time_to_live(request).await.map(tonic::Response::into_inner) }
        });
        let (response, _) = self.runtime.block_on(future)??;
        Header::from_pb(response.header)?;
        if response.ttl < 0 {
            return Err(Error::LeaseNotFound { lease_id });
        }
        Ok(response.ttl)
    }

    /// Watches `[key, range_end)` (`range_end` empty: just `key`) from `start_revision`
    /// (inclusive; 0: from now). Returns once etcd has created the watch.
    pub fn watch(&self, key: &[u8], range_end: &[u8], start_revision: i64) -> Result<Watch, Error> {
        self.watch_with(
            WatchOptions::new(Range::between(key, range_end)).start_revision(start_revision),
        )
    }

    /// A watch with every option of [`WatchOptions`].
    pub fn watch_with(&self, options: WatchOptions) -> Result<Watch, Error> {
        let future = watch::open(Arc::clone(&self.shared), Arc::clone(&self.runtime), options);
        self.runtime.block_on(future)?
    }

    /// The status of the member at `endpoint` (one of the client's, or any other), asked of
    /// that member alone: it answers even without a leader.
    pub fn status(&self, endpoint: &str) -> Result<MemberStatus, Error> {
        let address = endpoints::normalize(endpoint)?;
        let channel = match self.shared.endpoints.find(&address) {
            Some(known) => known.channel.clone(),
            None => {
                let _context = self.runtime.handle().enter();
                let options =
                    ChannelOptions { connect_timeout_ms: self.shared.options.connect_timeout_ms };
                endpoints::channel(&address, options)?
            }
        };
        let deadline = tokio::time::Instant::now() + self.shared.request_timeout();
        let mut maintenance = MaintenanceClient::new(channel);
        let future = async move {
            let answer = maintenance.status(rpc::StatusRequest {}).await;
            answer.map(tonic::Response::into_inner)
        };
        let response = self.runtime.block_on(self.shared.attempt(
            future,
            deadline,
            &address,
            Sent::default(),
        ))??;
        MemberStatus::from_pb(response)
    }

    /// The cluster's members, as the preferred member knows them.
    pub fn member_list(&self) -> Result<Vec<Member>, Error> {
        let future = self.shared.call_idempotent(Sent::default(), |channel| {
            let mut cluster = ClusterClient::new(channel);
            async move {
                cluster
                    .member_list(rpc::MemberListRequest {})
                    .await
                    .map(tonic::Response::into_inner)
            }
        });
        let (response, _) = self.runtime.block_on(future)??;
        Header::from_pb(response.header)?;
        Ok(response.members.into_iter().map(Member::from_pb).collect())
    }
}

/// A transaction, once: what `txn` and `txn_submit` share.
async fn txn_call(
    shared: &Shared,
    request: rpc::TxnRequest,
    request_bytes: usize,
) -> Result<TxnResult, Error> {
    let sent = Sent { request_bytes, ..Sent::default() };
    let response_bytes_max = shared.options.response_bytes_max;
    let response = shared
        .call_once(sent, |channel| {
            let mut kv = KvClient::new(channel).max_decoding_message_size(response_bytes_max);
            async move { kv.txn(leader_required(request)).await.map(tonic::Response::into_inner) }
        })
        .await?;
    TxnResult::from_pb(response)
}
