//! Watches: one gRPC stream per [`Watch`], read by a task on the client's runtime into a
//! bounded queue that [`Watch::recv_timeout`] takes batches from.
//!
//! What a caller sees, in order: [`WatchBatch`]es of events (or, with
//! [`WatchOptions::progress_notify`], empty batches that report progress), then at most one
//! error that ends the watch: [`Error::Compacted`] (the start revision is gone),
//! [`Error::WatchCanceled`], or [`Error::Unavailable`] / [`Error::Timeout`] when the member
//! died, lost its leader or went silent. After such an error, open a new watch from
//! [`Watch::next_revision`]: the client has already moved on to the next endpoint, and
//! nothing is missed or repeated (except within a revision split across fragments, see
//! [`WatchBatch::fragment`]).
//!
//! Silence is checked, not trusted: after `ClientOptions::watch_idle_ms` without a message the
//! task asks the member for a progress report, and ends the watch when none comes for as long
//! again. Those answers only prove the stream alive: etcd 3.4.23 may send one ahead of events
//! still queued for the watch (fixed in 3.4.24), so their revision is not reported as progress.
//! Progress reports from `progress_notify` are sent by etcd only for a watch that is up to
//! date, and are reported.
//!
//! Dropping a [`Watch`] cancels it: its task stops and its stream is reset, which removes the
//! watcher on the member.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::call::{leader_required, Shared};
use crate::error::{from_status, Error, Sent};
use crate::limits::WATCH_BATCHES_QUEUED_MAX;
use crate::pb::etcdserverpb::{self as rpc, watch_client::WatchClient, watch_request};
use crate::pb::mvccpb;
use crate::range::Range;
use crate::runtime::Runtime;
use crate::types::KeyValue;

/// What to watch and from which revision.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchOptions(rpc::WatchCreateRequest);

impl WatchOptions {
    /// Changes of the keys `keys` names: one key, a prefix, `[key, range_end)` (a range's
    /// limit, revision and other options do not apply to a watch).
    pub fn new(keys: Range) -> WatchOptions {
        let Range(range) = keys;
        WatchOptions(rpc::WatchCreateRequest {
            key: range.key,
            range_end: range.range_end,
            // Large batches come in fragments of about etcd's request limit, never as one
            // message of unbounded size.
            fragment: true,
            ..Default::default()
        })
    }

    /// From `revision` on, inclusive (0: changes after the watch is created).
    pub fn start_revision(mut self, revision: i64) -> WatchOptions {
        self.0.start_revision = revision;
        self
    }

    /// Have etcd send empty batches reporting progress while nothing changes (every
    /// `--experimental-watch-progress-notify-interval`, 10 minutes by default).
    pub fn progress_notify(mut self) -> WatchOptions {
        self.0.progress_notify = true;
        self
    }

    /// Include each key's previous value in its events.
    pub fn prev_kv(mut self) -> WatchOptions {
        self.0.prev_kv = true;
        self
    }
}

/// A put or a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was written.
    Put,
    /// The key was deleted (or its lease expired).
    Delete,
}

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for a delete, the key with `mod_revision` the delete's
    /// revision and no value.
    pub kv: KeyValue,
    /// The key before the change, with `WatchOptions::prev_kv` (and when not compacted).
    pub prev_kv: Option<KeyValue>,
}

/// Events in revision order, or a progress report when there are none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchBatch {
    /// The store's revision when etcd sent the batch. For a progress report (no events):
    /// every change up to it has been delivered. For events it may run ahead of them (etcd
    /// sends a long backlog in several batches): resume from `Watch::next_revision`.
    pub revision: i64,
    /// The changes, in revision order.
    pub events: Vec<WatchEvent>,
    /// More of the same etcd batch follows: etcd split it, and its last revision's events may
    /// continue in the next batch.
    pub fragment: bool,
}

impl WatchBatch {
    /// A progress report: no events.
    pub fn is_progress(&self) -> bool {
        self.events.is_empty()
    }
}

/// An open watch. Not `Clone`: one reader.
pub struct Watch {
    runtime: Arc<Runtime>,
    batches: mpsc::Receiver<Result<WatchBatch, Error>>,
    task: tokio::task::JoinHandle<()>,
    watch_id: i64,
    next_revision: i64,
    ended: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Watch { watch_id, next_revision, ended, .. } = self;
        f.debug_struct("Watch")
            .field("watch_id", watch_id)
            .field("next_revision", next_revision)
            .field("ended", ended)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// Waits up to `timeout_ms` for the next batch: `Ok(None)` when none came in time. An
    /// error ends the watch; after it every call returns [`Error::WatchEnded`].
    pub fn recv_timeout(&mut self, timeout_ms: u64) -> Result<Option<WatchBatch>, Error> {
        if self.ended {
            return Err(Error::WatchEnded);
        }
        let batches = &mut self.batches;
        let wait =
            async { tokio::time::timeout(Duration::from_millis(timeout_ms), batches.recv()).await };
        let received = self.runtime.block_on(wait)?;
        match received {
            Err(_elapsed) => Ok(None),
            Ok(Some(Ok(batch))) => {
                self.advance(&batch);
                Ok(Some(batch))
            }
            Ok(Some(Err(error))) => {
                self.ended = true;
                Err(error)
            }
            Ok(None) => {
                self.ended = true;
                Err(Error::WatchEnded)
            }
        }
    }

    /// The revision a new watch must start from to miss nothing delivered by this one: after
    /// the last event's revision (at it, if that revision may continue in a fragment), or
    /// after a progress report's revision.
    pub fn next_revision(&self) -> i64 {
        self.next_revision
    }

    /// etcd's id of this watch.
    pub fn watch_id(&self) -> i64 {
        self.watch_id
    }

    fn advance(&mut self, batch: &WatchBatch) {
        let next = match batch.events.last() {
            Some(last) if batch.fragment => last.kv.mod_revision,
            Some(last) => last.kv.mod_revision + 1,
            None => batch.revision + 1,
        };
        self.next_revision = self.next_revision.max(next);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Aborting the task drops the stream, which resets it: etcd removes the watcher.
        self.task.abort();
    }
}

/// A stream whose watch etcd has confirmed.
struct Opened {
    requests: mpsc::Sender<rpc::WatchRequest>,
    stream: Streaming<rpc::WatchResponse>,
    created: rpc::WatchResponse,
}

/// Creates the watch (on the preferred endpoint, moving on while time is left) and starts the
/// task that reads it.
pub(crate) async fn open(
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
    options: WatchOptions,
) -> Result<Watch, Error> {
    let create = options.0;
    let start_revision = create.start_revision;
    let response_bytes_max = shared.options.response_bytes_max;
    let (opened, index) = shared
        .call_idempotent(Sent::default(), |channel| {
            let create = create.clone();
            async move {
                let (requests, outgoing) = mpsc::channel(4);
                let request = rpc::WatchRequest {
                    request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
                };
                // Capacity 4 and nothing queued: this cannot fail.
                let _ = requests.try_send(request);
                let mut client =
                    WatchClient::new(channel).max_decoding_message_size(response_bytes_max);
                let mut stream = client
                    .watch(leader_required(ReceiverStream::new(outgoing)))
                    .await?
                    .into_inner();
                let created = stream.message().await?.ok_or_else(|| {
                    tonic::Status::unavailable("the watch stream ended before it was created")
                })?;
                Ok(Opened { requests, stream, created })
            }
        })
        .await?;
    let address =
        shared.endpoints.get(index).map(|endpoint| endpoint.address.clone()).unwrap_or_default();
    let created = opened.created;
    if created.compact_revision != 0 {
        return Err(Error::Compacted { compact_revision: Some(created.compact_revision) });
    }
    if created.canceled || !created.created {
        return Err(Error::WatchCanceled { reason: created.cancel_reason });
    }
    let revision = created.header.map(|header| header.revision).unwrap_or(0);
    let next_revision = if start_revision > 0 { start_revision } else { revision + 1 };
    let (batches_in, batches) = mpsc::channel(WATCH_BATCHES_QUEUED_MAX);
    let reader = Reader {
        stream: opened.stream,
        requests: opened.requests,
        batches: batches_in,
        idle: Duration::from_millis(shared.options.watch_idle_ms.max(1)),
        shared: Arc::clone(&shared),
        index,
        address,
    };
    let task = runtime.handle().spawn(reader.run());
    Ok(Watch { runtime, batches, task, watch_id: created.watch_id, next_revision, ended: false })
}

/// The task's state: the stream, where batches go, and whom to blame when it fails.
struct Reader {
    stream: Streaming<rpc::WatchResponse>,
    requests: mpsc::Sender<rpc::WatchRequest>,
    batches: mpsc::Sender<Result<WatchBatch, Error>>,
    idle: Duration,
    shared: Arc<Shared>,
    index: usize,
    address: String,
}

/// What one response from etcd means for the reader.
enum Received {
    Batch(WatchBatch),
    /// An answer to our progress probe, or a repeated creation: proof of life only.
    Alive,
    End(Error),
}

impl Reader {
    async fn run(mut self) {
        let mut probing = false;
        let error = loop {
            let message = match tokio::time::timeout(self.idle, self.stream.message()).await {
                Err(_elapsed) if probing => {
                    let timeout_ms = 2 * self.idle.as_millis() as u64;
                    break Error::Timeout { endpoint: self.address.clone(), timeout_ms };
                }
                Err(_elapsed) => {
                    probing = true;
                    let probe =
                        watch_request::RequestUnion::ProgressRequest(rpc::WatchProgressRequest {});
                    // A full queue already holds a probe: nothing is lost.
                    let _ =
                        self.requests.try_send(rpc::WatchRequest { request_union: Some(probe) });
                    continue;
                }
                Ok(Err(status)) => break from_status(&status, &self.address, Sent::default()),
                Ok(Ok(None)) => {
                    let message = "the watch stream ended".to_string();
                    break Error::Unavailable { endpoint: self.address.clone(), message };
                }
                Ok(Ok(Some(message))) => message,
            };
            probing = false;
            match received(message) {
                Received::Alive => continue,
                Received::Batch(batch) => {
                    if self.batches.send(Ok(batch)).await.is_err() {
                        return; // the Watch is gone
                    }
                }
                Received::End(error) => break error,
            }
        };
        if error.moves_on() {
            self.shared.endpoints.failed(self.index);
        }
        let _ = self.batches.send(Err(error)).await;
    }
}

/// Classifies one response of an established watch.
fn received(message: rpc::WatchResponse) -> Received {
    // etcd answers a progress request with watch id -1, for every watch of the stream.
    if message.watch_id == -1 || message.created {
        return Received::Alive;
    }
    if message.compact_revision != 0 {
        return Received::End(Error::Compacted {
            compact_revision: Some(message.compact_revision),
        });
    }
    if message.canceled {
        return Received::End(Error::WatchCanceled { reason: message.cancel_reason });
    }
    let Some(header) = message.header else {
        return Received::End(Error::MalformedResponse {
            what: "a watch response without a header",
        });
    };
    let events = message.events.into_iter().map(event).collect::<Result<Vec<_>, Error>>();
    match events {
        Ok(events) => Received::Batch(WatchBatch {
            revision: header.revision,
            events,
            fragment: message.fragment,
        }),
        Err(error) => Received::End(error),
    }
}

fn event(event: mvccpb::Event) -> Result<WatchEvent, Error> {
    let kind = match mvccpb::event::EventType::try_from(event.r#type) {
        Ok(mvccpb::event::EventType::Put) => EventKind::Put,
        Ok(mvccpb::event::EventType::Delete) => EventKind::Delete,
        Err(_) => {
            return Err(Error::MalformedResponse { what: "a watch event of an unknown type" })
        }
    };
    let kv = event.kv.ok_or(Error::MalformedResponse { what: "a watch event without its key" })?;
    Ok(WatchEvent {
        kind,
        kv: KeyValue::from_pb(kv),
        prev_kv: event.prev_kv.map(KeyValue::from_pb),
    })
}
