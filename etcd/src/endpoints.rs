//! The members a client talks to: one lazily connected HTTP/2 channel per endpoint and the
//! index of the preferred one.
//!
//! Every request goes to the preferred endpoint, so that pipelined requests share one HTTP/2
//! connection and leave in the order they were submitted. When a request to it times out or
//! finds it unavailable, the client moves the preference on to the next endpoint (round
//! robin) and stays there until that one fails in turn. This is failover, not load spreading:
//! with etcd every write goes through the leader anyway, and one connection keeps order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::Error;

/// How channels are built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChannelOptions {
    /// TCP connect timeout of each (re)connection.
    pub(crate) connect_timeout_ms: u64,
}

/// One endpoint: its address as `http://host:port` and its channel.
#[derive(Debug)]
pub(crate) struct EndpointChannel {
    pub(crate) address: String,
    pub(crate) channel: Channel,
}

/// The endpoints of a client and which one is preferred.
#[derive(Debug)]
pub(crate) struct Endpoints {
    list: Vec<EndpointChannel>,
    preferred: AtomicUsize,
}

impl Endpoints {
    /// Channels to every endpoint, none connected yet. Must run inside the runtime's context
    /// (a lazy channel spawns its worker task).
    pub(crate) fn new(addresses: &[String], options: ChannelOptions) -> Result<Endpoints, Error> {
        if addresses.is_empty() {
            let reason = "no endpoint given".to_string();
            return Err(Error::InvalidEndpoint { endpoint: String::new(), reason });
        }
        let list = addresses
            .iter()
            .map(|address| {
                let address = normalize(address)?;
                let channel = channel(&address, options)?;
                Ok(EndpointChannel { address, channel })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Endpoints { list, preferred: AtomicUsize::new(0) })
    }

    /// How many endpoints there are (at least one).
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The preferred endpoint and its index.
    pub(crate) fn preferred(&self) -> (usize, &EndpointChannel) {
        let index = self.preferred.load(Ordering::Relaxed) % self.list.len();
        (index, &self.list[index])
    }

    /// Prefers endpoint `index`.
    pub(crate) fn prefer(&self, index: usize) {
        self.preferred.store(index % self.list.len(), Ordering::Relaxed);
    }

    /// Endpoint `index` failed: prefer the next one, unless another request already moved on.
    pub(crate) fn failed(&self, index: usize) {
        let next = (index + 1) % self.list.len();
        let _ = self.preferred.compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The endpoint at `index`.
    pub(crate) fn get(&self, index: usize) -> Option<&EndpointChannel> {
        self.list.get(index)
    }

    /// The endpoint with this address, if it is one of ours.
    pub(crate) fn find(&self, address: &str) -> Option<&EndpointChannel> {
        let address = normalize(address).ok()?;
        self.list.iter().find(|endpoint| endpoint.address == address)
    }
}

/// `host:port` or `http://host:port` as `http://host:port`; TLS is not supported.
pub(crate) fn normalize(address: &str) -> Result<String, Error> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: address.to_string(),
        reason: reason.into(),
    };
    let rest = match address.split_once("://") {
        Some(("http", rest)) => rest,
        Some((_, _)) => return Err(invalid("only http:// is supported (no TLS)")),
        None => address,
    };
    let rest = rest.trim_end_matches('/');
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(invalid("expected host:port"));
    };
    if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
        return Err(invalid("expected host:port"));
    }
    Ok(format!("http://{rest}"))
}

/// Message sizes and windows: a request may be up to 1.5 MiB and a response many times that;
/// large windows let such messages flow without waiting for window updates on loopback.
const STREAM_WINDOW_BYTES: u32 = 8 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 32 << 20;

/// A lazily connected channel to `address` (already normalized).
pub(crate) fn channel(address: &str, options: ChannelOptions) -> Result<Channel, Error> {
    let endpoint = Endpoint::from_shared(address.to_string()).map_err(|error| {
        Error::InvalidEndpoint { endpoint: address.to_string(), reason: error.to_string() }
    })?;
    // No HTTP/2 keepalive pings: etcd's default enforcement (--grpc-keepalive-min-time 5s,
    // no pings without streams) closes connections that ping more often, and a dead or
    // stopped member is found by the request timeout and the watch's progress probe instead.
    let endpoint = endpoint
        .connect_timeout(Duration::from_millis(options.connect_timeout_ms))
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
    Ok(endpoint.connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn endpoints_are_normalized_to_http_urls() {
        assert_eq!(normalize("127.0.0.1:2379").ok().as_deref(), Some("http://127.0.0.1:2379"));
        assert_eq!(
            normalize("http://localhost:2379/").ok().as_deref(),
            Some("http://localhost:2379")
        );
        for bad in ["https://127.0.0.1:2379", "127.0.0.1", "127.0.0.1:99999", ":2379", "a/b:1", ""]
        {
            assert!(normalize(bad).is_err(), "{bad} accepted");
        }
    }
}
