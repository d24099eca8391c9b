//! Leases: grant, keepalive, expiry (a 1 s lease lapses and its key vanishes), revoke.

use std::time::{Duration, Instant};

use etcd::local::{LocalCluster, LocalOptions};
use etcd::Error;

use crate::{connect, Fixture};

#[test]
fn a_kept_lease_lives_and_a_lapsed_one_takes_its_key() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    // The cluster's election timeout is 500 ms: its shortest lease is ceil(1.5 × 0.5 s) = 1 s.
    let lease = client.lease_grant(1).expect("grant");
    assert_eq!(lease.ttl_s, 1);
    client.put(b"owned", b"v", lease.id).expect("put");

    let kept_until = Instant::now() + Duration::from_millis(2_500);
    while Instant::now() < kept_until {
        assert_eq!(client.lease_keep_alive(lease.id).expect("keepalive"), 1);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        client.get(b"owned").expect("get").is_some(),
        "kept alive for 2.5 s, more than its TTL"
    );
    let left = client.lease_time_to_live(lease.id).expect("time to live");
    assert!((0..=1).contains(&left), "{left}");

    let lapse = Instant::now();
    while client.get(b"owned").expect("get").is_some() {
        assert!(lapse.elapsed() < Duration::from_secs(6), "the key outlived its lease");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lapse.elapsed() >= Duration::from_millis(500), "gone after {:?}", lapse.elapsed());
    let keep = client.lease_keep_alive(lease.id);
    assert!(
        matches!(keep, Err(Error::LeaseNotFound { lease_id }) if lease_id == lease.id),
        "{keep:?}"
    );
    let ttl = client.lease_time_to_live(lease.id);
    assert!(matches!(ttl, Err(Error::LeaseNotFound { .. })), "{ttl:?}");
}

#[test]
fn a_revoked_lease_is_gone_with_its_keys() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    let lease = client.lease_grant(60).expect("grant");
    assert_eq!(lease.ttl_s, 60);
    assert!(client.lease_time_to_live(lease.id).expect("ttl") > 50);
    client.put(b"a", b"1", lease.id).expect("put");
    client.put(b"b", b"2", lease.id).expect("put");
    client.lease_revoke(lease.id).expect("revoke");
    assert_eq!(client.range(b"a", b"c", 0).expect("range").count, 0);
    let again = client.lease_revoke(lease.id);
    assert!(matches!(again, Err(Error::LeaseNotFound { .. })), "{again:?}");
    let put = client.put(b"c", b"3", lease.id);
    assert!(matches!(put, Err(Error::LeaseNotFound { .. })), "{put:?}");
}

/// etcd's shortest lease is ceil(1.5 × election timeout) in seconds: with its default timings
/// (100 ms heartbeats, 1 000 ms elections) a 1 s lease is granted as 2 s.
#[test]
fn the_shortest_lease_follows_the_election_timeout() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = LocalOptions { heartbeat_ms: 100, election_ms: 1_000, ..LocalOptions::new(1) };
    let cluster = LocalCluster::start_with(&options, dir.path()).expect("a cluster");
    let client = connect(&cluster.endpoints());
    assert_eq!(client.lease_grant(1).expect("grant").ttl_s, 2);
    assert_eq!(client.lease_grant(3).expect("grant").ttl_s, 3);
}
