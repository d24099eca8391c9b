//! Tests of the workloads: which accounts each picks, the zipf ranks, and the mix workload's holds.

use std::sync::Arc;

use engine::{CommandBody, ResultCode, TxState};

use super::{Generator, RunAccounts, Workload, Zipf, HOLD_MINOR};
use crate::Rng;

fn commands(workload: Workload, len: usize) -> Vec<CommandBody> {
    let accounts = RunAccounts::new(7, 10);
    let zipf = Zipf::new(10, 1.0).map(Arc::new);
    let mut generator = Generator::new(workload, accounts.keys().clone(), zipf, 1);
    let mut out = Vec::new();
    generator.fill(len, |_, body| out.push(body));
    out
}

fn transfer_ends(body: &CommandBody, keys: &RunAccounts) -> (usize, usize) {
    let CommandBody::Transfer { from, to, .. } = body else { panic!("not a transfer: {body:?}") };
    let index = |key| keys.keys().iter().position(|k| k == key).expect("a run account");
    (index(from), index(to))
}

#[test]
fn workloads_pick_their_accounts() {
    let keys = RunAccounts::new(7, 10);
    for body in commands(Workload::Hot, 100) {
        let (from, to) = transfer_ends(&body, &keys);
        assert_eq!(to, 0);
        assert_ne!(from, 0);
    }
    let pingpong: Vec<_> =
        commands(Workload::PingPong, 4).iter().map(|body| transfer_ends(body, &keys)).collect();
    assert_eq!(pingpong, [(0, 1), (1, 0), (0, 1), (1, 0)]);
    for workload in [Workload::Uniform, Workload::Zipf] {
        for body in commands(workload, 1000) {
            let (from, to) = transfer_ends(&body, &keys);
            assert_ne!(from, to);
        }
    }
}

#[test]
fn zipf_prefers_low_ranks() {
    let zipf = Zipf::new(1000, 1.0).expect("valid");
    let mut rng = Rng::new(3);
    let zeros = (0..10_000).filter(|_| zipf.sample(&mut rng) == 0).count();
    let expected = zipf.top_probability() * 10_000.0;
    assert!((zeros as f64 - expected).abs() < expected * 0.2, "{zeros} vs {expected}");
    assert!(Zipf::new(10, 0.0).is_none() && Zipf::new(0, 1.0).is_none());
}

#[test]
fn mix_captures_only_holds_it_saw_frozen() {
    let keys = RunAccounts::new(7, 10);
    let mut generator = Generator::new(Workload::Mix, keys.keys().clone(), None, 5);
    let mut first = Vec::new();
    generator.fill(200, |tx_id, body| first.push((tx_id, body)));
    assert!(!first.iter().any(|(_, body)| matches!(body, CommandBody::Capture { .. })));
    let freezes: Vec<_> =
        first.iter().filter(|(_, body)| matches!(body, CommandBody::Freeze { .. })).collect();
    assert!(!freezes.is_empty());
    for (tx_id, _) in &freezes {
        generator.observe(*tx_id, ResultCode::Ok, Some(TxState::Frozen));
    }
    let mut second = Vec::new();
    generator.fill(200, |_, body| second.push(body));
    let captured: Vec<_> = second
        .iter()
        .filter_map(|body| match body {
            CommandBody::Capture { hold, to, amount } => {
                assert_eq!((*to, amount.mantissa), (keys.keys()[0], HOLD_MINOR));
                Some(*hold)
            }
            _ => None,
        })
        .collect();
    assert!(!captured.is_empty());
    assert!(captured.iter().all(|hold| freezes.iter().any(|(tx_id, _)| tx_id == hold)));
}
