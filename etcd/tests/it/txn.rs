//! Transactions: fenced writes, every kind of compare, leases inside a transaction, pipelined
//! submissions, and the limits refused before anything is sent.

use std::sync::mpsc;
use std::time::Duration;

use etcd::limits::{REQUEST_ENCODED_BYTES_MAX, TXN_OPS_MAX};
use etcd::{Cmp, Compare, Error, Op, OpResponse, Txn, TxnResult};

use crate::Fixture;

#[test]
fn a_fenced_txn_succeeds_then_fails_once_the_key_moved() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    let head = client.put(b"log/head", b"0", 0).expect("put head");
    let append = || {
        Txn::new()
            .when(Compare::mod_revision("log/head", Cmp::Equal, head.revision))
            .then(Op::put("log/head", "1", 0))
            .then(Op::put("log/1", "entry", 0))
            .otherwise(Op::get("log/head"))
    };

    let applied = client.txn(append()).expect("txn");
    assert!(applied.succeeded);
    assert_eq!(applied.responses, [OpResponse::Put, OpResponse::Put]);
    let entry = client.get(b"log/1").expect("get").expect("the entry exists");
    assert_eq!(entry.mod_revision, applied.header.revision);

    let refused = client.txn(append()).expect("txn");
    assert!(!refused.succeeded);
    let [OpResponse::Range { kvs, more: false, count: 1 }] = refused.responses.as_slice() else {
        panic!("expected the head: {:?}", refused.responses);
    };
    assert_eq!(
        (kvs[0].value.as_slice(), kvs[0].mod_revision),
        (&b"1"[..], applied.header.revision)
    );
    assert_eq!(refused.header.revision, applied.header.revision, "a refused txn writes nothing");
}

#[test]
fn every_compare_target_and_relation() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    let lease = client.lease_grant(30).expect("lease");
    let created = client.put(b"c/k", b"m", lease.id).expect("put");
    let modified = client.put(b"c/k", b"n", lease.id).expect("put again");
    let holds = |compare: Compare| client.txn(Txn::new().when(compare)).expect("txn").succeeded;
    let cases = [
        (Compare::version("c/k", Cmp::Equal, 2), true),
        (Compare::version("c/k", Cmp::Greater, 2), false),
        (Compare::version("c/k", Cmp::Less, 3), true),
        (Compare::version("c/missing", Cmp::Equal, 0), true),
        (Compare::create_revision("c/k", Cmp::Equal, created.revision), true),
        (Compare::create_revision("c/k", Cmp::NotEqual, created.revision), false),
        (Compare::mod_revision("c/k", Cmp::Equal, modified.revision), true),
        (Compare::mod_revision("c/k", Cmp::Less, modified.revision), false),
        (Compare::mod_revision("c/k", Cmp::Greater, created.revision), true),
        (Compare::value("c/k", Cmp::Equal, "n"), true),
        (Compare::value("c/k", Cmp::Less, "o"), true),
        (Compare::value("c/k", Cmp::Greater, "n"), false),
        (Compare::value("c/k", Cmp::NotEqual, "m"), true),
        (Compare::lease("c/k", Cmp::Equal, lease.id), true),
        (Compare::lease("c/k", Cmp::NotEqual, lease.id), false),
        (Compare::version("c/", Cmp::Greater, 0).with_range_end("c0"), true),
    ];
    for (index, (compare, expect)) in cases.into_iter().enumerate() {
        assert_eq!(holds(compare), expect, "case {index}");
    }
}

#[test]
fn a_txn_puts_with_a_lease_and_the_revoke_deletes() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    let lease = client.lease_grant(30).expect("lease");
    let txn = Txn::new()
        .when(Compare::create_revision("leader", Cmp::Equal, 0))
        .then(Op::put("leader", "me", lease.id))
        .then(Op::delete_range("x/", "x0"))
        .then(Op::range(etcd::Range::prefix("x/")));
    let result = client.txn(txn).expect("txn");
    assert!(result.succeeded);
    assert_eq!(
        result.responses,
        [
            OpResponse::Put,
            OpResponse::DeleteRange { deleted: 0 },
            OpResponse::Range { kvs: vec![], more: false, count: 0 }
        ]
    );
    assert_eq!(client.get(b"leader").expect("get").expect("exists").lease_id, lease.id);
    client.lease_revoke(lease.id).expect("revoke");
    assert_eq!(client.get(b"leader").expect("get"), None);
}

/// 16 submissions in flight at once all complete, each applied once. etcd does not promise to
/// apply concurrent requests in the order they were sent (it handles each stream concurrently),
/// and it does not: out-of-order pairs are printed, not refused. A sequence whose order
/// matters fences each transaction on its predecessor, as the second half shows.
#[test]
fn sixteen_submitted_txns_in_flight_all_complete() {
    let fixture = Fixture::start(3);
    let client = fixture.client();
    let before = client.put(b"start", b"", 0).expect("put").revision;
    let revisions = submit_all(
        &client,
        (0..16).map(|index| {
            let key = format!("seq/{index:02}");
            Txn::new().when(Compare::create_revision(key.clone(), Cmp::Equal, 0)).then(Op::put(
                key,
                vec![index as u8; 4_096],
                0,
            ))
        }),
    );
    let mut sorted: Vec<i64> = revisions.iter().map(|&(_, revision)| revision).collect();
    let out_of_order = sorted.windows(2).filter(|pair| pair[0] > pair[1]).count();
    eprintln!(
        "16 in flight: {out_of_order} neighbours applied out of submission order: {sorted:?}"
    );
    assert!(revisions.iter().all(|&(succeeded, _)| succeeded));
    sorted.sort_unstable();
    assert_eq!(sorted, (before + 1..=before + 16).collect::<Vec<_>>(), "each applied once");

    // Chained: each creates its key only if its predecessor's exists. Whatever etcd's order,
    // the keys that exist are a prefix of the chain; resubmitting the rest completes it.
    let chained = |index: usize| {
        let key = format!("chain/{index:02}");
        let previous = format!("chain/{:02}", index.wrapping_sub(1));
        let mut txn = Txn::new().when(Compare::create_revision(key.clone(), Cmp::Equal, 0));
        if index > 0 {
            txn = txn.when(Compare::create_revision(previous, Cmp::Greater, 0));
        }
        txn.then(Op::put(key, "entry", 0))
    };
    let mut next = 0;
    while next < 16 {
        let outcomes = submit_all(&client, (next..16).map(chained));
        let applied = outcomes.iter().take_while(|&&(succeeded, _)| succeeded).count();
        assert!(applied > 0, "the first of the chain always applies");
        assert!(outcomes[applied..].iter().all(|&(succeeded, _)| !succeeded), "{outcomes:?}");
        next += applied;
    }
    let keys = client.range_prefix(b"chain/", 0).expect("range");
    assert!(keys.kvs.windows(2).all(|pair| pair[0].mod_revision < pair[1].mod_revision));
}

/// Submits every transaction at once; (succeeded, revision) of each, in submission order.
fn submit_all(client: &etcd::Client, txns: impl Iterator<Item = Txn>) -> Vec<(bool, i64)> {
    let (answers, answered) = mpsc::channel::<(usize, Result<TxnResult, Error>)>();
    let mut count = 0;
    for (index, txn) in txns.enumerate() {
        let answers = answers.clone();
        client.txn_submit(
            txn,
            Box::new(move |result| answers.send((index, result)).expect("the test waits")),
        );
        count += 1;
    }
    let mut outcomes = vec![(false, 0); count];
    for _ in 0..count {
        let (index, result) = answered.recv_timeout(Duration::from_secs(10)).expect("an answer");
        let result = result.expect("the txn");
        outcomes[index] = (result.succeeded, result.header.revision);
    }
    outcomes
}

#[test]
fn requests_over_etcds_limits_are_refused_before_sending() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    // The largest transaction the client sends is one etcd accepts...
    let big = |value_bytes: usize| Txn::new().then(Op::put("big", vec![7_u8; value_bytes], 0));
    let mut value_bytes = REQUEST_ENCODED_BYTES_MAX - 64;
    value_bytes += REQUEST_ENCODED_BYTES_MAX - big(value_bytes).encoded_len();
    assert_eq!(big(value_bytes).encoded_len(), REQUEST_ENCODED_BYTES_MAX);
    assert!(client.txn(big(value_bytes)).expect("the largest txn").succeeded);
    assert_eq!(client.get(b"big").expect("get").expect("exists").value.len(), value_bytes);

    // ...and one byte more is refused, by txn, txn_submit and put alike.
    let refused = client.txn(big(value_bytes + 1));
    assert!(
        matches!(refused, Err(Error::RequestTooLarge { request_bytes, limit_bytes: REQUEST_ENCODED_BYTES_MAX })
            if request_bytes == REQUEST_ENCODED_BYTES_MAX + 1),
        "{refused:?}"
    );
    let (answer, answered) = mpsc::channel();
    client.txn_submit(
        big(value_bytes + 1),
        Box::new(move |result| answer.send(result).expect("the test waits")),
    );
    let submitted = answered.recv_timeout(Duration::from_secs(5)).expect("an answer");
    assert!(matches!(submitted, Err(Error::RequestTooLarge { .. })), "{submitted:?}");
    let put = client.put(b"big", &vec![7_u8; REQUEST_ENCODED_BYTES_MAX], 0);
    assert!(matches!(put, Err(Error::RequestTooLarge { .. })), "{put:?}");

    let many = (0..=TXN_OPS_MAX)
        .fold(Txn::new(), |txn, index| txn.then(Op::put(format!("k{index}"), "v", 0)));
    let refused = client.txn(many);
    assert!(matches!(refused, Err(Error::TooManyOps { ops: 129, ops_max: 128 })), "{refused:?}");
}

#[test]
fn blocking_calls_from_a_submit_callback_are_refused() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    let (answer, answered) = mpsc::channel();
    let inner = client.clone();
    client.txn_submit(
        Txn::new().then(Op::put("k", "v", 0)),
        Box::new(move |result| {
            let nested = inner.get(b"k");
            answer.send((result.is_ok(), nested)).expect("the test waits");
        }),
    );
    let (submitted, nested) = answered.recv_timeout(Duration::from_secs(5)).expect("an answer");
    assert!(submitted);
    assert!(matches!(nested, Err(Error::InsideRuntime)), "{nested:?}");
}
