//! Sending one request: to the preferred endpoint, within the request timeout, with the status
//! turned into an [`Error`]; on a timeout or an unavailable member the preference moves on, and
//! a request that is safe to repeat is sent again to the next endpoint while time is left.
//!
//! **Invariant:** every call returns within `request_timeout_ms` (all attempts together), so a
//! caller that holds a lease of a second or two can count on an answer in time.

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;

use crate::endpoints::Endpoints;
use crate::error::{from_status, Error, Sent};
use crate::options::ClientOptions;

/// What a client's tasks share: the endpoints, the options, the count of submissions.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) endpoints: Endpoints,
    pub(crate) options: ClientOptions,
    /// `txn_submit`s not yet answered.
    pub(crate) submits_in_flight: AtomicUsize,
}

/// Asks etcd to refuse the request at once when the member knows no leader (instead of
/// waiting for one), and to end a stream when it loses its leader: then the client moves on
/// to a member that can serve. etcd's `hasleader` metadata, the same its Go client sends.
pub(crate) fn leader_required<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("hasleader", tonic::metadata::MetadataValue::from_static("true"));
    request
}

impl Shared {
    /// The request timeout.
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.options.request_timeout_ms)
    }

    /// A request that must not be repeated after an unknown outcome (a write): one attempt.
    pub(crate) async fn call_once<T, F, Fut>(&self, sent: Sent, send: F) -> Result<T, Error>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + self.request_timeout();
        let (index, endpoint) = self.endpoints.preferred();
        let result =
            self.attempt(send(endpoint.channel.clone()), deadline, &endpoint.address, sent).await;
        if result.as_ref().is_err_and(Error::moves_on) {
            self.endpoints.failed(index);
        }
        result
    }

    /// A request that is safe to repeat (a read, a keepalive): tried on each endpoint at most
    /// once, in preference order, until one answers or the time is up. Also says which
    /// endpoint answered.
    pub(crate) async fn call_idempotent<T, F, Fut>(
        &self,
        sent: Sent,
        mut send: F,
    ) -> Result<(T, usize), Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + self.request_timeout();
        let mut attempts = 0;
        loop {
            let (index, endpoint) = self.endpoints.preferred();
            attempts += 1;
            let result = self
                .attempt(send(endpoint.channel.clone()), deadline, &endpoint.address, sent)
                .await;
            match result {
                Ok(answer) => return Ok((answer, index)),
                Err(error) if error.moves_on() => {
                    self.endpoints.failed(index);
                    if attempts >= self.endpoints.len() || Instant::now() >= deadline {
                        return Err(error);
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One attempt, bounded by `deadline`.
    pub(crate) async fn attempt<T, Fut>(
        &self,
        future: Fut,
        deadline: Instant,
        address: &str,
        sent: Sent,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let sent = Sent { timeout_ms: self.options.request_timeout_ms, ..sent };
        match tokio::time::timeout_at(deadline, future).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(status)) => Err(from_status(&status, address, sent)),
            Err(_elapsed) => {
                Err(Error::Timeout { endpoint: address.to_string(), timeout_ms: sent.timeout_ms })
            }
        }
    }
}
