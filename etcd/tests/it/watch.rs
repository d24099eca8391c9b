//! Watches: history from a revision then live events, in order; a compacted start revision;
//! progress reports.

use std::time::{Duration, Instant};

use etcd::{Error, EventKind, Range, Watch, WatchEvent, WatchOptions};

use crate::{put_all, Fixture};

/// Events until `count` have arrived (within 10 s).
pub fn events(watch: &mut Watch, count: usize) -> Vec<WatchEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while events.len() < count {
        assert!(Instant::now() < deadline, "only {} of {count} events", events.len());
        if let Some(batch) = watch.recv_timeout(500).expect("a batch") {
            events.extend(batch.events);
        }
    }
    events
}

#[test]
fn a_watch_from_a_revision_sees_earlier_then_later_changes_in_order() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    let first = put_all(&client, &[("w/1", "a"), ("w/2", "b"), ("other", "outside the prefix")])[0];
    let mut watch = client
        .watch_with(WatchOptions::new(Range::prefix("w/")).start_revision(first))
        .expect("watch");
    client.put(b"w/3", b"c", 0).expect("put");
    let (_, deleted) = client.delete_range(b"w/1", b"").expect("delete");

    let seen = events(&mut watch, 4);
    let summary: Vec<(EventKind, &[u8], &[u8])> = seen
        .iter()
        .map(|event| (event.kind, event.kv.key.as_slice(), event.kv.value.as_slice()))
        .collect();
    assert_eq!(
        summary,
        [
            (EventKind::Put, &b"w/1"[..], &b"a"[..]),
            (EventKind::Put, b"w/2", b"b"),
            (EventKind::Put, b"w/3", b"c"),
            (EventKind::Delete, b"w/1", b""),
        ]
    );
    assert!(seen.windows(2).all(|pair| pair[0].kv.mod_revision < pair[1].kv.mod_revision));
    assert_eq!(seen[0].kv.mod_revision, first);
    assert_eq!(seen[3].kv.mod_revision, deleted.revision);
    assert_eq!(watch.next_revision(), deleted.revision + 1);
    assert_eq!(watch.recv_timeout(200).expect("nothing more"), None);
}

#[test]
fn a_watch_at_a_compacted_revision_is_refused_with_the_compaction_point() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    let revisions = put_all(&client, &[("k", "1"), ("k", "2"), ("k", "3")]);
    let (first, last) = (revisions[0], revisions[2]);
    client.compact(last, true).expect("compact");

    let mut watch = client.watch(b"k", b"", first).expect("watch");
    let received = watch.recv_timeout(5_000);
    assert!(
        matches!(received, Err(Error::Compacted { compact_revision: Some(revision) }) if revision == last),
        "{received:?}"
    );
    assert!(matches!(watch.recv_timeout(10), Err(Error::WatchEnded)));

    let old = client.range_with(Range::key("k").revision(first));
    assert!(matches!(old, Err(Error::Compacted { compact_revision: None })), "{old:?}");
    let again = client.compact(first, false);
    assert!(matches!(again, Err(Error::Compacted { .. })), "{again:?}");
    // From the compaction point on, the history is there.
    let mut watch = client.watch(b"k", b"", last).expect("watch");
    assert_eq!(events(&mut watch, 1)[0].kv.value, b"3");
}

#[test]
fn a_quiet_watch_gets_progress_reports() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    let written = client.put(b"q/1", b"v", 0).expect("put");
    let mut watch =
        client.watch_with(WatchOptions::new(Range::prefix("q/")).progress_notify()).expect("watch");
    // The local cluster reports progress every second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no progress report");
        let Some(batch) = watch.recv_timeout(500).expect("a batch") else { continue };
        assert!(batch.is_progress(), "{batch:?}");
        assert!(batch.revision >= written.revision);
        assert_eq!(watch.next_revision(), batch.revision + 1);
        break;
    }
}
