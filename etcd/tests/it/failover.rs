//! Failover across a 3-member cluster: the client's member dies, the raft leader dies, a
//! quorum is lost and comes back; writes succeed again within seconds and a watch resumed from
//! `next_revision` misses nothing.

use std::time::{Duration, Instant};

use etcd::{Client, ClientOptions, Error, Range, WatchOptions};

use crate::{connect, retry_until, Fixture, REQUEST_TIMEOUT_MS};

#[test]
fn writes_resume_after_the_clients_member_then_the_leader_is_killed() {
    let mut fixture = Fixture::start(3);
    let leader = fixture.cluster.wait_for_leader(5_000).expect("a leader");
    let follower = (leader + 1) % 3;
    // The client talks to a follower first.
    let endpoints: Vec<String> =
        (0..3).map(|offset| fixture.cluster.endpoint((follower + offset) % 3)).collect();
    let client = connect(&endpoints);
    assert_eq!(client.preferred_endpoint(), fixture.cluster.endpoint(follower));
    let first = client.put(b"f/0", b"before", 0).expect("put");
    let mut watch = client
        .watch_with(WatchOptions::new(Range::prefix("f/")).start_revision(first.revision))
        .expect("watch");

    fixture.cluster.kill(follower).expect("kill the client's member");
    let (_, took) = retry_until(5_000, || client.put(b"f/1", b"without the follower", 0));
    eprintln!("writes resumed {took:?} after the client's member was killed");
    assert_ne!(client.preferred_endpoint(), fixture.cluster.endpoint(follower));

    fixture.cluster.restart(follower).expect("restart");
    let leader = fixture.cluster.wait_for_leader(5_000).expect("a leader");
    fixture.cluster.kill(leader).expect("kill the leader");
    let (_, took) = retry_until(8_000, || client.put(b"f/2", b"without the leader", 0));
    eprintln!("writes resumed {took:?} after the leader was killed");
    assert!(took < Duration::from_secs(8));

    // The watch ended with its member; resumed from where it stopped, it sees every write in
    // order (a write retried after an unknown outcome may show twice).
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while keys.len() < 3 {
        assert!(Instant::now() < deadline, "saw only {keys:?}");
        match watch.recv_timeout(500) {
            Ok(Some(batch)) => {
                for event in batch.events {
                    if keys.last() != Some(&event.kv.key) {
                        keys.push(event.kv.key);
                    }
                }
            }
            Ok(None) => {}
            Err(error) => {
                assert!(error.is_retryable(), "{error}");
                let from = watch.next_revision();
                watch = retry_until(5_000, || {
                    client.watch_with(WatchOptions::new(Range::prefix("f/")).start_revision(from))
                })
                .0;
            }
        }
    }
    assert_eq!(keys, [b"f/0".to_vec(), b"f/1".to_vec(), b"f/2".to_vec()]);
}

#[test]
fn without_a_quorum_writes_fail_in_time_and_resume_when_it_returns() {
    let mut fixture = Fixture::start(3);
    let client = fixture.client();
    client.put(b"q", b"with a quorum", 0).expect("put");
    fixture.cluster.stop(1).expect("stop");
    fixture.cluster.stop(2).expect("stop");

    for _ in 0..2 {
        let start = Instant::now();
        let put = client.put(b"q", b"without a quorum", 0);
        let took = start.elapsed();
        assert!(matches!(put, Err(ref error) if error.is_outcome_unknown()), "{put:?}");
        assert!(
            took < Duration::from_millis(REQUEST_TIMEOUT_MS + 500),
            "failed only after {took:?}"
        );
        eprintln!(
            "without a quorum a put failed after {took:?}: {}",
            put.err().map(|e: Error| e.to_string()).unwrap_or_default()
        );
    }

    fixture.cluster.cont(1).expect("cont");
    fixture.cluster.cont(2).expect("cont");
    let (resumed, took) = retry_until(10_000, || client.put(b"q", b"with the quorum back", 0));
    eprintln!("writes resumed {took:?} after the quorum returned");
    // The puts that timed out had an unknown outcome, and indeed: their proposals waited in
    // the raft log and may commit once the quorum is back, even after the put that succeeded.
    let last = client.get(b"q").expect("get").expect("exists");
    assert!(last.mod_revision >= resumed.revision);
    assert!(
        last.value == b"with the quorum back" || last.value == b"without a quorum",
        "{:?}",
        String::from_utf8_lossy(&last.value)
    );
    eprintln!("the last write applied: {:?}", String::from_utf8_lossy(&last.value));
}

#[test]
fn connect_fails_when_no_endpoint_answers() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a port")
        .port();
    let start = Instant::now();
    let refused = Client::connect(&[format!("127.0.0.1:{port}")], 200, 1_000);
    assert!(matches!(refused, Err(Error::Unavailable { .. })), "{refused:?}");
    assert!(start.elapsed() < Duration::from_millis(1_500));
    let invalid = Client::connect(&["https://127.0.0.1:2379".to_string()], 200, 1_000);
    assert!(matches!(invalid, Err(Error::InvalidEndpoint { .. })), "{invalid:?}");
    assert!(matches!(Client::connect(&[], 200, 1_000), Err(Error::InvalidEndpoint { .. })));
}

/// A stopped member sends nothing and closes nothing: the watch's progress probe finds it out
/// within twice `watch_idle_ms`, and a watch opened again goes to another member.
#[test]
fn a_watch_on_a_stopped_member_fails_and_resumes_elsewhere() {
    let mut fixture = Fixture::start(3);
    let options = ClientOptions { watch_idle_ms: 300, ..ClientOptions::new(500, 2_000) };
    let client = Client::connect_with(&fixture.cluster.endpoints(), options).expect("connect");
    let first = client.put(b"s/1", b"a", 0).expect("put");
    let mut watch = client
        .watch_with(WatchOptions::new(Range::prefix("s/")).start_revision(first.revision))
        .expect("watch");
    assert_eq!(crate::watch::events(&mut watch, 1)[0].kv.key, b"s/1");

    fixture.cluster.stop(0).expect("stop the watch's member");
    let stopped = Instant::now();
    let ended = loop {
        match watch.recv_timeout(100) {
            Ok(None) => {
                assert!(stopped.elapsed() < Duration::from_secs(5), "the watch did not notice")
            }
            Ok(Some(batch)) => panic!("a batch from a stopped member: {batch:?}"),
            Err(error) => break error,
        }
    };
    eprintln!("the watch noticed its stopped member after {:?}: {ended}", stopped.elapsed());
    assert!(matches!(ended, Error::Timeout { .. }), "{ended}");
    assert_ne!(client.preferred_endpoint(), fixture.cluster.endpoint(0));

    let (second, _) = retry_until(8_000, || client.put(b"s/2", b"b", 0));
    let from = watch.next_revision();
    let mut watch = client
        .watch_with(WatchOptions::new(Range::prefix("s/")).start_revision(from))
        .expect("watch again");
    let seen = crate::watch::events(&mut watch, 1);
    assert_eq!(
        (seen[0].kv.key.as_slice(), seen[0].kv.mod_revision),
        (&b"s/2"[..], second.revision)
    );
    fixture.cluster.cont(0).expect("cont");
}
