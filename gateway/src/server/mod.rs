//! `ledgerd`'s network side: the listener, one reader and one writer thread per connection
//! (see [`connection`]), the Prometheus endpoint, and an orderly shutdown that stops accepting,
//! lets every connection finish what it already sent, and then stops the runtime.
//!
//! **Invariant:** nothing reaches a client before the runtime released it, and the runtime
//! releases a reply only once its journal record is durable.
//! **Boundary:** everything a client can do goes through [`crate::wire`] and [`crate::auth`].

mod connection;
pub mod metrics;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use journal::runtime::Handle;

use crate::auth::Credentials;
use crate::limits::{BATCH_LEN_MAX, IN_FLIGHT_MAX};
use connection::Context;
pub use metrics::Metrics;

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
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    metrics_thread: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<Connection>>>,
    metrics: Arc<Metrics>,
}

struct Connection {
    stream: TcpStream,
    thread: JoinHandle<()>,
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
        let metrics = Arc::new(Metrics::default());
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
        let context = Arc::new(Context {
            credentials: Arc::new(credentials),
            metrics: metrics.clone(),
            batch_len_max: options.batch_len_max.clamp(1, BATCH_LEN_MAX),
            in_flight_max: options.in_flight_max.clamp(1, IN_FLIGHT_MAX),
            write_timeout_ms: options.write_timeout_ms,
        });
        let connections = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, connections) = (stop.clone(), connections.clone());
            std::thread::Builder::new()
                .name("ledgerd-accept".into())
                .spawn(move || accept_loop(listener, handle, context, stop, connections))?
        };
        Ok(Server {
            local_addr,
            metrics_addr,
            stop,
            acceptor: Some(acceptor),
            metrics_thread,
            connections,
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
    /// every reply it owes. The runtime is left running: stop it afterwards (it flushes).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let connections: Vec<Connection> =
            std::mem::take(&mut *self.connections.lock().unwrap_or_else(PoisonError::into_inner));
        for connection in &connections {
            // Only the read side: requests already read still get their replies.
            let _ = connection.stream.shutdown(std::net::Shutdown::Read);
        }
        for connection in connections {
            let _ = connection.thread.join();
        }
        if let Some(thread) = self.metrics_thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    handle: Handle,
    context: Arc<Context>,
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<Connection>>>,
) {
    const IDLE_SLEEP: Duration = Duration::from_millis(5);
    while !stop.load(Ordering::Acquire) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(IDLE_SLEEP);
                continue;
            }
            Err(_) => {
                std::thread::sleep(IDLE_SLEEP);
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let mut registry = connections.lock().unwrap_or_else(PoisonError::into_inner);
        registry.retain(|connection| !connection.thread.is_finished());
        let metrics = &context.metrics;
        if registry.len() >= CONNECTIONS_MAX as usize {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            let mut frame = Vec::new();
            crate::wire::encode_error(
                crate::wire::RequestId::CONNECTION,
                crate::wire::ErrorCode::Busy,
                "too many connections",
                &mut frame,
            );
            let _ = std::io::Write::write_all(&mut &stream, &frame);
            continue;
        }
        let Ok(registered) = stream.try_clone() else { continue };
        let (producer, replies) = handle.producer(context.in_flight_max);
        let connection_context = context.clone();
        metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new().name("ledgerd-conn-r".into()).spawn(move || {
            connection::serve(stream, producer, replies, connection_context.clone());
            connection_context.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
        });
        match spawned {
            Ok(thread) => registry.push(Connection { stream: registered, thread }),
            Err(_) => {
                metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}
