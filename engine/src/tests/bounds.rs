//! Bounded work per command: expiries are released at most `EXPIRIES_PER_COMMAND_MAX` at a
//! time, open holds and pending settlements have limits with their own result codes, and a
//! transaction index with no room for another open transaction refuses to open one instead
//! of rehashing.

use super::{amt, deposit, freeze, no, open, Harness};
use crate::limits::{EXPIRIES_PER_COMMAND_MAX, HOLDS_OPEN_MAX, SETTLEMENTS_PENDING_MAX};
use crate::{AccountKind, Command, CommandBody, Effects, Engine, EngineConfig, ResultCode, TxId};

#[test]
fn expiries_are_released_a_bounded_number_per_command() {
    let mut h = Harness::usd();
    let funding = h.fresh_tx();
    h.run_as(funding, deposit("alice", "bank", "1000"));
    let expires_ns = h.now_ns + 1_000_000;
    let holds: Vec<TxId> = (0..EXPIRIES_PER_COMMAND_MAX + 5)
        .map(|_| {
            let hold = h.fresh_tx();
            h.run_as(hold, freeze("alice", "1", Some(expires_ns)));
            hold
        })
        .collect();
    h.now_ns = expires_ns;
    h.ok(open("dave", "USD", AccountKind::User));
    let held = |h: &Harness, hold: TxId| h.engine.tx(hold).expect("remembered").held_minor;
    let released = holds.iter().filter(|hold| held(&h, **hold) == 0);
    assert_eq!(released.count(), EXPIRIES_PER_COMMAND_MAX as usize, "earliest first, no more");
    // One still held has expired all the same: it cannot be captured or unfrozen.
    let late = *holds.last().expect("holds");
    assert!(held(&h, late) > 0);
    let capture = CommandBody::Capture { hold: late, to: no("bob"), amount: amt("1") };
    assert_eq!(h.run(capture).result, ResultCode::HoldReleased);
    assert_eq!(h.run(CommandBody::Unfreeze { hold: late }).result, ResultCode::HoldReleased);
    assert!(holds.iter().all(|hold| held(&h, *hold) == 0));
    assert_eq!(h.bal("alice"), (100_000, 0, 0));
}

/// A bare engine with `alice` funded, for limits too large to reach through the harness.
fn bare(tx_retained: u32) -> (Engine, Effects, u64) {
    let mut engine = Engine::new(EngineConfig { tx_retained, ..EngineConfig::default() });
    let mut fx = Effects::default();
    let bodies =
        [open("alice", "USD", AccountKind::User), open("bank", "USD", AccountKind::System)];
    for (index, body) in bodies.into_iter().chain([deposit("alice", "bank", "1000000")]).enumerate()
    {
        let command = Command { tx_id: TxId(1 << 100 | index as u128), timestamp_ns: 1, body };
        assert_eq!(engine.apply(&command, &mut fx).result, ResultCode::Ok);
    }
    (engine, fx, 2)
}

#[test]
fn open_holds_and_pending_settlements_have_limits() {
    let (mut engine, mut fx, now_ns) = bare(1 << 20);
    let mut apply = |engine: &mut Engine, tx_id: u128, body| {
        engine.apply(&Command { tx_id: TxId(tx_id), timestamp_ns: now_ns, body }, &mut fx).result
    };
    engine.ledger.pending_settlements = SETTLEMENTS_PENDING_MAX;
    let code = apply(&mut engine, 10, deposit("alice", "bank", "1"));
    assert_eq!(code, ResultCode::TooManyPendingSettlements);
    let code = apply(&mut engine, 11, super::withdraw("alice", "bank", "1"));
    assert_eq!(code, ResultCode::TooManyPendingSettlements);
    engine.ledger.pending_settlements = 1;
    engine.check_invariants().expect("the count is back");
    let hold = crate::holds::Hold {
        account: crate::AccountId(0),
        remaining_minor: 1,
        captured_minor: 0,
        expires_ns: None,
        day: 0,
    };
    for index in 0..HOLDS_OPEN_MAX {
        engine.ledger.holds.insert(TxId(index as u128), hold);
    }
    assert_eq!(apply(&mut engine, 12, freeze("alice", "1", None)), ResultCode::TooManyHolds);
}

#[test]
fn a_full_transaction_index_refuses_instead_of_rehashing() {
    // A window of 1: every hold outlives it and stays in the index until released.
    let (mut engine, mut fx, now_ns) = bare(1);
    let slots = crate::limits::INDEX_SLOTS_MIN;
    let mut next = 100u128;
    let mut apply = |engine: &mut Engine, body| {
        next += 1;
        (next, engine.apply(&Command { tx_id: TxId(next), timestamp_ns: now_ns, body }, &mut fx))
    };
    let mut first_hold = None;
    loop {
        let (tx_id, outcome) = apply(&mut engine, freeze("alice", "0.01", None));
        if outcome.result == ResultCode::CapacityExceeded {
            // Refused and remembered like any rejection; the index stays at most 3/4 full.
            assert_eq!(engine.tx(TxId(tx_id)).map(|tx| tx.result), Some(outcome.result));
            assert!(engine.tx_counts().0 * 4 <= slots * 3);
            break;
        }
        assert_eq!(outcome.result, ResultCode::Ok);
        first_hold.get_or_insert(tx_id);
    }
    // Commands that open nothing still run, and the state stays sound.
    for _ in 0..100 {
        assert_eq!(apply(&mut engine, transfer_body()).1.result, ResultCode::Ok);
    }
    engine.check_invariants().expect("sound at capacity");
    assert!(engine.tx_counts().0 * 4 <= slots * 3);
    // Releasing one open transaction makes room again.
    let hold = TxId(first_hold.expect("holds were made"));
    assert_eq!(apply(&mut engine, CommandBody::Unfreeze { hold }).1.result, ResultCode::Ok);
    assert_eq!(apply(&mut engine, freeze("alice", "0.01", None)).1.result, ResultCode::Ok);
}

fn transfer_body() -> CommandBody {
    super::transfer("alice", "bank", "1")
}
