//! `ledgerd`'s network side: one network thread running an `epoll` event loop (through `mio`,
//! see [`event_loop`]) over the listener and every client connection (see [`connection`]), the
//! Prometheus endpoint on its own thread, and an orderly shutdown that stops accepting, lets
//! every connection finish what it already sent, and then stops the runtime.
//!
//! The network thread never blocks but in `epoll_wait`: it reads requests from every ready
//! socket, submits them through each connection's runtime `Producer` without blocking, and
//! writes replies back when the runtime's writer thread rings its doorbell after releasing a
//! round. So 32 connections cost one thread, not 64, and one wake-up serves a whole round.
//!
//! **Invariant:** nothing reaches a client before the runtime released it, and the runtime
//! releases a reply only once its journal record is durable.
//! **Invariant:** memory per connection is bounded (its window of `in_flight_max` requests, one
//! read buffer, `OUT_LEN_BYTES_HIGH` of queued replies plus one frame); a connection that is at
//! a bound is not read, so backpressure reaches its client through TCP.
//! **Boundary:** everything a client can do goes through [`protocol::wire`] and [`protocol::auth`].

mod connection;
mod doorbell;
mod event_loop;
pub mod metrics;
#[cfg(test)]
mod tests;
pub mod tls;
mod transfer;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Interest, Poll, Waker};
use runtime::Handle;

use connection::Context;
use doorbell::Doorbell;
use event_loop::{EventLoop, DOORBELL, LISTENER};
pub use metrics::Metrics;
use protocol::auth::Credentials;
use protocol::limits::{BATCH_LEN_MAX, IN_FLIGHT_MAX};
pub use tls::ServerTls;

/// Most connections served at once; more are refused with `busy`.
pub const CONNECTIONS_MAX: u32 = 4_096;
/// Requests one connection may have awaiting a reply before the server stops reading it.
pub const CONNECTION_IN_FLIGHT_DEFAULT: u32 = 1_024;
const _: () = assert!(CONNECTION_IN_FLIGHT_DEFAULT <= IN_FLIGHT_MAX);

/// How the network side runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where Prometheus scrapes (`None`: no endpoint).
    pub metrics_listen: Option<SocketAddr>,
    /// Most commands per SUBMIT (announced in HELLO_OK; at most the runtime's submission max).
    pub batch_len_max: u32,
    /// Requests read ahead per connection.
    pub in_flight_max: u32,
    /// A client that does not read its replies for this long is disconnected.
    pub write_timeout_ms: u64,
    /// The node's role in its replica group: requests for the ledger are refused with
    /// `not_primary` unless it is the primary (`None`: a single node).
    pub replica_role: Option<Arc<replication::Role>>,
    /// Replication's counters, for the metrics endpoint (with `replica_role`).
    pub replication_metrics: Option<Arc<replication::ReplicationMetrics>>,
    /// TLS on the client listener (`None`: plain TCP). The metrics endpoint stays plain HTTP.
    pub tls: Option<ServerTls>,
    /// The data directory, whose snapshot and journal files a peer may copy by a state
    /// transfer (STATE_OFFER, STATE_READ; admin only, and only with `replica_role`).
    pub data_dir: Option<std::path::PathBuf>,
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    /// Wakes the network thread (to see `stop`).
    doorbell: Arc<Doorbell>,
    network: Option<JoinHandle<()>>,
    metrics_thread: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Server {
    /// Binds the listeners and starts accepting.
    pub fn start(
        options: ServerOptions,
        credentials: Credentials,
        handle: Handle,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(options.listen)?;
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let mut listener = mio::net::TcpListener::from_std(listener);
        let metrics = Arc::new(Metrics::default());
        if let (Some(role), Some(counters)) = (&options.replica_role, &options.replication_metrics)
        {
            metrics.set_replication(counters.clone(), role.clone());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (metrics_addr, metrics_thread) = match options.metrics_listen {
            Some(addr) => {
                let metrics_listener = TcpListener::bind(addr)?;
                let bound = metrics_listener.local_addr()?;
                let (metrics, handle, stop) = (metrics.clone(), handle.clone(), stop.clone());
                let thread = std::thread::Builder::new()
                    .name("ledgerd-metrics".into())
                    .spawn(move || metrics::serve(metrics_listener, metrics, handle, stop))?;
                (Some(bound), Some(thread))
            }
            None => (None, None),
        };
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let doorbell = Arc::new(Doorbell::new(Waker::new(poll.registry(), DOORBELL)?));
        let context = Context {
            credentials: Arc::new(credentials),
            metrics: metrics.clone(),
            batch_len_max: options.batch_len_max.clamp(1, BATCH_LEN_MAX),
            in_flight_max: options.in_flight_max.clamp(1, IN_FLIGHT_MAX),
            write_timeout: Duration::from_millis(options.write_timeout_ms),
            replica_role: options.replica_role.clone(),
            tls: options.tls.clone(),
            state_source: match (&options.replica_role, &options.data_dir) {
                (Some(role), Some(data_dir)) => {
                    Some(transfer::StateSource { data_dir: data_dir.clone(), role: role.clone() })
                }
                _ => None,
            },
        };
        let event_loop =
            EventLoop::new(poll, listener, handle, context, doorbell.clone(), stop.clone());
        let network = std::thread::Builder::new()
            .name("ledgerd-net".into())
            .spawn(move || event_loop.run())?;
        Ok(Server {
            local_addr,
            metrics_addr,
            stop,
            doorbell,
            network: Some(network),
            metrics_thread,
            metrics,
        })
    }

    /// The address clients connect to (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The Prometheus endpoint's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The gateway's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops accepting, stops reading every connection, and waits until each has written
    /// every reply it owes (or, for a client that does not read, until the write timeout).
    /// The runtime is left running: stop it afterwards (it flushes).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        self.doorbell.ring();
        if let Some(network) = self.network.take() {
            let _ = network.join();
        }
        if let Some(thread) = self.metrics_thread.take() {
            let _ = thread.join();
        }
    }
}
