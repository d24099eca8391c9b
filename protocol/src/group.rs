//! A client of a replica group: several server addresses, one of which is the primary
//! (PROTOCOL.md, *Replica groups*). [`GroupClient`] keeps one connection, to the node that
//! served last; a `not_primary` answer sends it to the primary that answer names (or to the
//! next address), and a request whose outcome is unknown (the connection broke, the node
//! stopped) is sent again, with the same `tx_id`s, to whichever node serves — the retry
//! contract makes that safe: a command that did execute answers as a duplicate with its first
//! result.
//!
//! **Invariant:** a submission is only ever re-sent with exactly the same commands and
//! `tx_id`s; new `tx_id`s are never made up here. **Invariant:** it gives up after
//! `failover_timeout_ms` and returns the last error (an outcome-unknown error stays one).

use std::time::{Duration, Instant};

use engine::{AccountNo, AccountView, CommandBody, TxId, TxView};

use crate::auth::ClientCredentials;
use crate::client::{Client, ClientError, ClientOptions};
use crate::wire::{ErrorCode, ExposureReply, WireOutcome};

/// How long to wait between two attempts when no node serves.
const RETRY_PAUSE_MS: u64 = 50;

/// A failover-aware client over the addresses of a replica group.
pub struct GroupClient {
    /// Where to try, the one to try first in front.
    addrs: Vec<String>,
    credentials: ClientCredentials,
    options: ClientOptions,
    failover_timeout_ms: u64,
    connection: Option<Client>,
    /// Requests sent again after a failover, for reports and tests.
    resent: u64,
}

/// What went wrong with one attempt, and whether another node may do better.
enum Attempt<T> {
    Done(Result<T, ClientError>),
    Retry(ClientError),
}

impl GroupClient {
    /// Connects to the first of `addrs` that answers the handshake. With a single address a
    /// failed connection is returned at once (as [`Client::connect`] would); with several,
    /// they are tried in turn until one answers or `failover_timeout_ms` has passed. `failover_timeout_ms` bounds how long one
    /// call keeps looking for the primary.
    pub fn connect(
        addrs: &[String],
        credentials: &ClientCredentials,
        options: ClientOptions,
        failover_timeout_ms: u64,
    ) -> Result<GroupClient, ClientError> {
        if addrs.is_empty() {
            return Err(ClientError::InvalidOptions("no server address"));
        }
        let mut group = GroupClient {
            addrs: addrs.to_vec(),
            credentials: credentials.clone(),
            options,
            failover_timeout_ms,
            connection: None,
            resent: 0,
        };
        group.reconnect(Instant::now() + Duration::from_millis(failover_timeout_ms))?;
        Ok(group)
    }

    /// The address of the node the client talks to now.
    pub fn current_addr(&self) -> Option<&str> {
        self.connection.as_ref().map(|_| self.addrs[0].as_str())
    }

    /// Requests sent again to another node (or after a reconnection) so far.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// Submits `commands`; see the module's invariants for what happens on a failover.
    pub fn submit(
        &mut self,
        commands: Vec<(TxId, CommandBody)>,
    ) -> Result<Vec<WireOutcome>, ClientError> {
        self.call(|client| client.submit(commands.clone()))
    }

    /// The account `account_no`, from the primary.
    pub fn account(&mut self, account_no: &AccountNo) -> Result<Option<AccountView>, ClientError> {
        self.call(|client| client.account(account_no))
    }

    /// The transaction `tx_id`, from the primary.
    pub fn tx(&mut self, tx_id: TxId) -> Result<Option<TxView>, ClientError> {
        self.call(|client| client.tx(tx_id))
    }

    /// The exposure of `account_no`, from the primary.
    pub fn exposure(
        &mut self,
        account_no: &AccountNo,
    ) -> Result<Option<ExposureReply>, ClientError> {
        self.call(|client| client.exposure(account_no))
    }

    /// Closes the connection.
    pub fn close(mut self) {
        if let Some(client) = self.connection.take() {
            client.close();
        }
    }

    fn call<T>(
        &mut self,
        mut request: impl FnMut(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let deadline = Instant::now() + Duration::from_millis(self.failover_timeout_ms);
        let mut attempts = 0u64;
        // The last retryable failure: what the caller learns if no node serves in time (an
        // outcome-unknown error must stay one, never turn into "cannot connect").
        let mut last: Option<ClientError> = None;
        // Bounded by the deadline: every pass either returns or waits before trying again.
        loop {
            if self.connection.is_none() {
                if let Err(error) = self.reconnect(deadline) {
                    return Err(last.unwrap_or(error));
                }
            }
            let Some(client) = self.connection.as_mut() else {
                continue;
            };
            let attempt = classify(request(client));
            match attempt {
                Attempt::Done(result) => return result,
                Attempt::Retry(error) => {
                    if let Some(primary) = named_primary(&error) {
                        self.prefer(&primary);
                    } else {
                        self.addrs.rotate_left(1);
                    }
                    if let Some(client) = self.connection.take() {
                        client.close();
                    }
                    if Instant::now() >= deadline {
                        return Err(error);
                    }
                    // A refusal says nothing ran; an unknown outcome stays the one to report.
                    let unknown = |e: &ClientError| !matches!(e, ClientError::Refused { .. });
                    if last.as_ref().is_none_or(|previous| !unknown(previous) || unknown(&error)) {
                        last = Some(error);
                    }
                    attempts += 1;
                    self.resent += 1;
                    if attempts >= self.addrs.len() as u64 {
                        std::thread::sleep(Duration::from_millis(RETRY_PAUSE_MS));
                    }
                }
            }
        }
    }

    /// Connects to the first address that completes the handshake, trying them in turn until
    /// `deadline`.
    fn reconnect(&mut self, deadline: Instant) -> Result<(), ClientError> {
        // Bounded by the deadline.
        loop {
            let mut last_error = None;
            for _ in 0..self.addrs.len() {
                let remaining_ms = deadline.saturating_duration_since(Instant::now()).as_millis();
                let connect_timeout_ms =
                    (self.options.connect_timeout_ms as u128).min(remaining_ms.max(1)) as u32;
                let options = ClientOptions { connect_timeout_ms, ..self.options.clone() };
                match Client::connect(self.addrs[0].as_str(), &self.credentials, options) {
                    Ok(client) => {
                        self.connection = Some(client);
                        return Ok(());
                    }
                    Err(
                        error @ (ClientError::AuthFailed { .. } | ClientError::InvalidOptions(_)),
                    ) => {
                        return Err(error);
                    }
                    Err(error) => last_error = Some(error),
                }
                self.addrs.rotate_left(1);
            }
            // One server: fail as a plain client would; a group: wait for a node to serve.
            if self.addrs.len() == 1 || Instant::now() >= deadline {
                return Err(last_error.unwrap_or(ClientError::InvalidOptions("no server address")));
            }
            std::thread::sleep(Duration::from_millis(RETRY_PAUSE_MS));
        }
    }

    /// Moves `addr` to the front (adding it if it was not known).
    fn prefer(&mut self, addr: &str) {
        match self.addrs.iter().position(|known| known == addr) {
            Some(at) => self.addrs[..=at].rotate_right(1),
            None => self.addrs.insert(0, addr.to_owned()),
        }
    }
}

/// Whether another node may succeed where this attempt failed.
fn classify<T>(result: Result<T, ClientError>) -> Attempt<T> {
    match result {
        Err(error) if retryable(&error) => Attempt::Retry(error),
        other => Attempt::Done(other),
    }
}

/// A standby's or a stopping node's refusal (nothing executed), or a request whose outcome is
/// unknown because the node went away: another node may serve it.
fn retryable(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Refused { code: ErrorCode::NotPrimary | ErrorCode::ShuttingDown, .. }
            | ClientError::OutcomeUnknown { .. }
            | ClientError::NoAnswer { .. }
            | ClientError::Closed { .. }
    )
}

/// The primary a `not_primary` answer names (`primary=HOST:PORT`), if it names one.
fn named_primary(error: &ClientError) -> Option<String> {
    match error {
        ClientError::Refused { code: ErrorCode::NotPrimary, message, .. } => {
            let addr = message.strip_prefix("primary=")?;
            (addr != "unknown" && !addr.is_empty()).then(|| addr.to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::RequestId;

    #[test]
    fn a_not_primary_answer_names_the_primary_or_nobody() {
        let refused = |message: &str| ClientError::Refused {
            request_id: RequestId(2),
            code: ErrorCode::NotPrimary,
            message: message.to_owned(),
        };
        assert_eq!(
            named_primary(&refused("primary=127.0.0.1:7070")).as_deref(),
            Some("127.0.0.1:7070")
        );
        assert_eq!(named_primary(&refused("primary=unknown")), None);
        assert_eq!(named_primary(&refused("something else")), None);
    }
}
