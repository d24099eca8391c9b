//! The plan's own release checks, through `Plan` directly (no handler builds a wrong plan):
//! a commit whose postings would break an invariant stops the engine (the panics print).

use super::{deposit, no, Harness};
use crate::plan::Plan;
use crate::{AccountId, Bucket, Effects, TxId};

/// Alice holds 100.00 USD, bob nothing: a plan of `postings` on them, with `frozen` declared,
/// committed to the harness's ledger (`frozen.0` empty: nothing declared). Returns the
/// postings written.
fn commit(postings: &[(&str, Bucket, i128)], frozen: (&str, i128)) -> Effects {
    let mut h = Harness::usd();
    h.ok(deposit("alice", "bank", "100"));
    let id =
        |name: &str| -> AccountId { h.engine.account(&no(name)).expect("a harness account").id };
    let mut plan = Plan::new();
    plan.start(TxId(7));
    for &(name, bucket, delta_minor) in postings {
        plan.add(&h.engine.ledger.accounts, id(name), bucket, delta_minor).expect("in range");
    }
    if !frozen.0.is_empty() {
        plan.frozen_moves(id(frozen.0), frozen.1);
    }
    let mut fx = Effects::default();
    let ledger = &mut h.engine.ledger;
    plan.commit(&mut ledger.accounts, &mut ledger.cycles, &mut fx);
    fx
}

#[test]
fn a_balanced_plan_commits_its_postings_in_order() {
    let moves = [("alice", Bucket::Available, -5), ("bob", Bucket::Available, 5)];
    let fx = commit(&moves, ("alice", 0));
    let written: Vec<_> =
        fx.entries.iter().map(|entry| (entry.bucket, entry.delta_minor)).collect();
    assert_eq!(written, [(Bucket::Available, -5), (Bucket::Available, 5)]);
    assert!(fx.entries.iter().all(|entry| entry.tx_id == TxId(7)));
}

/// Each broken invariant stops the commit, with its own message.
#[test]
fn a_plan_that_breaks_an_invariant_stops_the_commit() {
    use Bucket::{Available, Frozen};
    let pay = |from, to, delta_minor| [(from, Available, -5), (to, Available, delta_minor)];
    let hold = [("alice", Available, -5), ("alice", Frozen, 5)];
    let cases = [
        (pay("alice", "bob", 4), ("alice", 0), "a plan's postings balance"),
        (pay("bob", "alice", 5), ("alice", 0), "user balance below zero"),
        (hold, ("alice", 4), "frozen moves with its holds only"),
        (hold, ("bob", 0), "frozen moves with its holds only"),
        (pay("alice", "bob", 5), ("", 0), "a plan declares what frozen moves"),
    ];
    for (postings, frozen, expected) in cases {
        let panic = std::panic::catch_unwind(|| commit(&postings, frozen)).expect_err(expected);
        let message = match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
            (Some(message), _) => message.to_string(),
            (None, Some(message)) => message.clone(),
            (None, None) => String::new(),
        };
        assert!(message.contains(expected), "{message:?}, expected {expected:?}");
    }
}

#[test]
#[should_panic(expected = "a plan declares what frozen moves")]
fn a_plan_commits_once() {
    let mut h = Harness::usd();
    let mut plan = Plan::new();
    plan.start(TxId(7));
    plan.frozen_moves(AccountId(0), 0);
    let ledger = &mut h.engine.ledger;
    plan.commit(&mut ledger.accounts, &mut ledger.cycles, &mut Effects::default());
    plan.commit(&mut ledger.accounts, &mut ledger.cycles, &mut Effects::default());
}
