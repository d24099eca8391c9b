//! The crate's tests against real etcd members started by `etcd::local`, no mocks: one test
//! binary, one module per concern. Every test starts its own cluster on ports of its own, so
//! the tests run in parallel.

mod failover;
mod kv;
mod lease;
mod local;
mod txn;
mod watch;

use std::time::{Duration, Instant};

use etcd::local::LocalCluster;
use etcd::{Client, Error};

/// A running cluster and the directory it lives in (the cluster is dropped, its members
/// killed, before the directory is removed).
pub struct Fixture {
    /// The members.
    pub cluster: LocalCluster,
    /// Where their data and logs are.
    pub dir: tempfile::TempDir,
}

/// The client's connect timeout in the tests.
pub const CONNECT_TIMEOUT_MS: u64 = 500;
/// The client's request timeout in the tests.
pub const REQUEST_TIMEOUT_MS: u64 = 2_000;

impl Fixture {
    /// Starts `members` members in a new temporary directory.
    pub fn start(members: usize) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cluster = LocalCluster::start(members, dir.path()).expect("a local etcd cluster");
        Fixture { cluster, dir }
    }

    /// A client of every member, preferring the first.
    pub fn client(&self) -> Client {
        connect(&self.cluster.endpoints())
    }
}

/// A client of `endpoints`, preferring the first that answers.
pub fn connect(endpoints: &[String]) -> Client {
    Client::connect(endpoints, CONNECT_TIMEOUT_MS, REQUEST_TIMEOUT_MS).expect("connect")
}

/// Puts each `(key, value)` in turn; the revision of each put.
pub fn put_all(client: &Client, pairs: &[(&str, &str)]) -> Vec<i64> {
    let put = |&(key, value): &(&str, &str)| client.put(key.as_bytes(), value.as_bytes(), 0);
    pairs.iter().map(|pair| put(pair).expect("put").revision).collect()
}

/// Repeats `attempt` until it succeeds or `timeout_ms` passes; the time it took.
pub fn retry_until<T>(
    timeout_ms: u64,
    mut attempt: impl FnMut() -> Result<T, Error>,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        match attempt() {
            Ok(value) => return (value, start.elapsed()),
            Err(error) if start.elapsed() < Duration::from_millis(timeout_ms) => {
                assert!(error.is_retryable(), "not retryable: {error}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("still failing after {timeout_ms} ms: {error}"),
        }
    }
}
