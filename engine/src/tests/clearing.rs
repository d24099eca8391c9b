//! Clearing: exposure of unsettled deposits and its limit (`engine/CLEARING.md`).

use super::{amt, deposit, freeze, no, transfer, withdraw, Harness};
use crate::{AccountLimits, CommandBody, Engine, ExposureView, FeeKind, ResultCode, TxState};

fn exposure_limit(account: &str, limit: Option<&str>) -> CommandBody {
    let limits = AccountLimits { exposure_max: limit.map(amt), ..AccountLimits::default() };
    CommandBody::SetAccountLimits { account_no: no(account), limits }
}

/// (unsettled, exposure, limit) of one account, in minor units.
fn exposure(h: &Harness, account: &str) -> (i128, i128, Option<i128>) {
    let ExposureView { unsettled_minor, exposure_minor, exposure_max_minor } =
        h.engine.exposure(&no(account)).expect("account exists");
    (unsettled_minor, exposure_minor, exposure_max_minor)
}

/// Settles every deposit or withdrawal in `targets`.
fn settle(h: &mut Harness, targets: &[crate::TxId]) {
    for &target in targets {
        h.ok(CommandBody::SettleBegin { target });
        h.ok(CommandBody::SettleConfirm { target });
    }
}

/// Once nothing is pending, every account's `ledger` equals `available + frozen`.
fn assert_ledgers_caught_up(h: &Harness) {
    for index in 0..h.engine.account_count() {
        let view = h.engine.account_by_id(crate::AccountId(index));
        assert_eq!(
            view.ledger_minor,
            view.available_minor + view.frozen_minor,
            "{}: ledger behind",
            view.account_no
        );
    }
}

#[test]
fn unsettled_deposits_are_spent_last() {
    let mut h = Harness::usd();
    let settled = h.fresh_tx();
    h.run_as(settled, deposit("alice", "bank", "50"));
    assert_eq!(exposure(&h, "alice"), (5_000, 0, None));
    settle(&mut h, &[settled]);
    assert_eq!(exposure(&h, "alice"), (0, 0, None));

    let pending = h.fresh_tx();
    h.run_as(pending, deposit("alice", "bank", "100"));
    assert_eq!(exposure(&h, "alice"), (10_000, 0, None));
    // Settled money goes first: 50 of 150 spent leaves all 100 unsettled still covered.
    h.ok(transfer("alice", "bob", "50"));
    assert_eq!(exposure(&h, "alice"), (10_000, 0, None));
    h.ok(transfer("alice", "bob", "30"));
    assert_eq!(exposure(&h, "alice"), (10_000, 3_000, None));
    // Money received is the receiver's: bob has no exposure.
    assert_eq!(exposure(&h, "bob"), (0, 0, None));
    settle(&mut h, &[pending]);
    assert_eq!(exposure(&h, "alice"), (0, 0, None));
    assert!(h.engine.ledger.clearing.exposures_len() == 0, "entries without content are dropped");
    assert_ledgers_caught_up(&h);
}

#[test]
fn exposure_limit_stops_every_outflow_of_unsettled_money() {
    let mut h = Harness::usd();
    h.ok(exposure_limit("alice", Some("20")));
    assert_eq!(exposure(&h, "alice"), (0, 0, Some(2_000)));
    let pending = h.fresh_tx();
    h.run_as(pending, deposit("alice", "bank", "100"));
    h.ok(transfer("alice", "bob", "15"));
    h.ok(freeze("alice", "5", None));
    assert_eq!(exposure(&h, "alice"), (10_000, 2_000, Some(2_000)));
    let over = ResultCode::ExposureLimitExceeded;
    h.rejects(transfer("alice", "bob", "0.01"), over);
    h.rejects(withdraw("alice", "bank", "0.01"), over);
    h.rejects(freeze("alice", "0.01", None), over);
    // Money arriving from elsewhere is settled money and may be spent.
    h.ok(transfer("bob", "alice", "10"));
    h.ok(withdraw("alice", "bank", "10"));
    h.rejects(transfer("alice", "carol", "1"), over);
    // Settlement ends the exposure; the limit stays.
    settle(&mut h, &[pending]);
    assert_eq!(exposure(&h, "alice"), (0, 0, Some(2_000)));
    h.ok(transfer("alice", "carol", "1"));
    // Zero forbids spending unsettled money at all; removing the limit drops the entry.
    h.ok(exposure_limit("alice", Some("0")));
    let second = h.fresh_tx();
    h.run_as(second, deposit("alice", "bank", "5"));
    assert_eq!(h.bal("alice").0, 8_400);
    h.ok(transfer("alice", "carol", "79"));
    h.rejects(transfer("alice", "carol", "0.01"), over);
    h.ok(exposure_limit("alice", None));
    h.ok(transfer("alice", "carol", "0.01"));
    assert_eq!(exposure(&h, "alice"), (500, 1, None));
    settle(&mut h, &[second]);
    assert!(h.engine.ledger.clearing.exposures_len() == 0);
}

#[test]
fn exposure_limit_can_be_set_when_opening() {
    let mut h = Harness::usd();
    let limits = AccountLimits { exposure_max: Some(amt("1.5")), ..AccountLimits::default() };
    h.ok(CommandBody::OpenAccount {
        account_no: no("dave"),
        user_id: 9,
        currency: super::cur("USD"),
        kind: crate::AccountKind::User,
        limits,
    });
    assert_eq!(exposure(&h, "dave"), (0, 0, Some(150)));
    let bad = AccountLimits { exposure_max: Some(amt("0.001")), ..AccountLimits::default() };
    h.rejects(
        CommandBody::SetAccountLimits { account_no: no("dave"), limits: bad },
        ResultCode::AmountPrecision,
    );
    let negative = AccountLimits { exposure_max: Some(amt("-1")), ..AccountLimits::default() };
    h.rejects(
        CommandBody::SetAccountLimits { account_no: no("dave"), limits: negative },
        ResultCode::AmountNotPositive,
    );
}

#[test]
fn failed_deposit_after_a_to_b_to_c_reverses_what_it_can_and_books_the_rest() {
    let mut h = Harness::usd();
    h.ok(exposure_limit("alice", Some("60")));
    let pending = h.fresh_tx();
    h.run_as(pending, deposit("alice", "bank", "100"));
    h.ok(transfer("alice", "bob", "60"));
    h.rejects(transfer("alice", "bob", "0.01"), ResultCode::ExposureLimitExceeded);
    h.ok(transfer("bob", "carol", "60"));
    assert_eq!(exposure(&h, "alice"), (10_000, 6_000, Some(6_000)));
    h.ok(CommandBody::SettleBegin { target: pending });
    let failed = h.ok(CommandBody::SettleFail { target: pending });
    assert_eq!(failed.balances.as_slice().len(), 3, "user, channel and risk");
    assert_eq!(h.state(pending), Some(TxState::Failed));
    // Alice's 40 is taken back, the 60 already passed on becomes a receivable; carol keeps it.
    assert_eq!(h.bal("alice"), (0, 0, 0));
    assert_eq!(h.bal("bob"), (0, 0, 0));
    assert_eq!(h.bal("carol"), (6_000, 0, 6_000));
    assert_eq!(h.bal("bank"), (0, 0, 0));
    assert_eq!(h.bal("risk"), (-6_000, 0, -6_000));
    assert_eq!(exposure(&h, "alice"), (0, 0, Some(6_000)));
    assert_ledgers_caught_up(&h);
    // Retrying the failure changes nothing.
    let again = h.run_as(failed.tx_id, CommandBody::SettleFail { target: pending });
    assert!(again.duplicate);
}

#[test]
fn exposure_survives_state_encoding_and_version_1_is_read() {
    let mut h = Harness::usd();
    h.ok(exposure_limit("bob", Some("7")));
    let pending = h.fresh_tx();
    h.run_as(pending, deposit("alice", "bank", "100"));
    h.ok(transfer("alice", "bob", "30"));
    let mut bytes = Vec::new();
    h.engine.encode_state(&mut bytes);
    let restored = Engine::decode_state(&bytes).expect("decodes");
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    assert_eq!(restored.exposure(&no("alice")), h.engine.exposure(&no("alice")));
    assert_eq!(restored.exposure(&no("bob")), h.engine.exposure(&no("bob")));
    restored.check_invariants().expect("sound");

    // A version 1 encoding has no exposure section: unsettled amounts come from the records.
    let mut plain = Harness::usd();
    plain.run(deposit("alice", "bank", "100"));
    plain.ok(transfer("alice", "bob", "30"));
    // Before version 4 a record's digest is 32 bits, so the same state read from version 3.
    let mut v3 = Vec::new();
    plain.engine.encode_state_as(3, &mut v3);
    let same = Engine::decode_state(&v3).expect("version 3 decodes");
    let mut v1 = Vec::new();
    plain.engine.encode_state_as(1, &mut v1);
    let upgraded = Engine::decode_state(&v1).expect("version 1 decodes");
    upgraded.check_invariants().expect("sound");
    assert_eq!(upgraded.state_hash(), same.state_hash());
    assert_eq!(upgraded.exposure(&no("alice")).map(|e| e.exposure_minor), Some(3_000));

    // An exposure entry for an account that does not exist is refused.
    let mut bad = bytes.clone();
    let entry_at = bad.len() - 44 - 2 * 36; // two entries, then empty sections
    bad[entry_at..entry_at + 4].copy_from_slice(&999u32.to_le_bytes());
    assert!(Engine::decode_state(&bad).is_err());
}

#[test]
fn exposure_limit_is_part_of_the_fingerprint() {
    let without = exposure_limit("alice", None).fingerprint();
    let plain =
        CommandBody::SetAccountLimits { account_no: no("alice"), limits: AccountLimits::default() };
    assert_eq!(without, plain.fingerprint());
    assert_ne!(without, exposure_limit("alice", Some("0")).fingerprint());
    assert_ne!(
        exposure_limit("alice", Some("1")).fingerprint(),
        exposure_limit("alice", Some("0")).fingerprint()
    );
}

fn set_fee(kind: FeeKind, account: &str, fixed: &str, rate_bps: u32) -> CommandBody {
    CommandBody::SetFee {
        kind,
        currency: super::cur("USD"),
        fee_account_no: no(account),
        fixed: amt(fixed),
        rate_bps,
    }
}

/// `Harness::usd` plus the system account `fees`, alice funded with 100 settled.
fn with_fees() -> Harness {
    let mut h = Harness::usd();
    h.ok(super::open("fees", "USD", crate::AccountKind::System));
    let funding = h.fresh_tx();
    h.run_as(funding, deposit("alice", "bank", "100"));
    settle(&mut h, &[funding]);
    h
}

#[test]
fn transfer_fee_is_paid_by_the_payer_rounded_down_in_the_same_command() {
    let mut h = with_fees();
    h.ok(set_fee(FeeKind::Transfer, "fees", "0.10", 25));
    // 10.01 × 0.25 % = 0.025025: 2 of its 2.5025 cents are charged, plus the fixed 10.
    let paid = h.ok(transfer("alice", "bob", "10.01"));
    assert_eq!(paid.balances.as_slice().len(), 3, "payer, payee and fee account");
    assert_eq!(h.bal("alice"), (10_000 - 1_001 - 12, 0, 10_000 - 1_001 - 12));
    assert_eq!(h.bal("bob"), (1_001, 0, 1_001));
    assert_eq!(h.bal("fees"), (12, 0, 12));
    assert_eq!(h.engine.tx(paid.tx_id).map(|tx| tx.amount_minor), Some(1_001));
    // A refund gives back the amount, not the fee.
    h.ok(CommandBody::Refund { original: paid.tx_id, amount: amt("10.01") });
    assert_eq!((h.bal("alice").0, h.bal("bob").0), (10_000 - 12, 0));
    h.ok(transfer("alice", "bob", "10.01"));
    assert_eq!(h.bal("fees"), (24, 0, 24));
    // Every debit check sees amount + fee: bob cannot send all he has.
    h.rejects(transfer("bob", "carol", "10.01"), ResultCode::InsufficientFunds);
    h.ok(transfer("bob", "carol", "9.89")); // 989 + 10 + 2 = 1001
    assert_eq!(h.bal("bob").0, 0);
    // The fee account pays no fee to itself, and receives none on top when paid.
    h.ok(transfer("fees", "carol", "0.01"));
    h.ok(transfer("carol", "fees", "1"));
    assert_eq!(h.bal("fees").0, 36 - 1 + 100);
    assert_eq!(h.bal("carol").0, 989 + 1 - 100);
    // Zero and zero removes the fee.
    h.ok(set_fee(FeeKind::Transfer, "fees", "0", 0));
    assert_eq!(h.engine.fee(FeeKind::Transfer, super::cur("USD")), None);
    h.ok(transfer("alice", "bob", "1"));
    assert_eq!(h.bal("alice").0, 10_000 - 12 - 1_013 - 100);
}

#[test]
fn capture_fee_comes_out_of_the_hold() {
    let mut h = with_fees();
    h.ok(set_fee(FeeKind::Capture, "fees", "0.50", 0));
    let hold = h.fresh_tx();
    h.run_as(hold, freeze("alice", "10", None));
    let captured = h.ok(CommandBody::Capture { hold, to: no("bob"), amount: amt("9") });
    assert_eq!(captured.balances.as_slice().len(), 3);
    assert_eq!(h.bal("alice"), (9_000, 50, 9_050));
    assert_eq!(h.bal("bob"), (900, 0, 900));
    assert_eq!(h.bal("fees"), (50, 0, 50));
    h.rejects(
        CommandBody::Capture { hold, to: no("bob"), amount: amt("0.01") },
        ResultCode::HoldInsufficient,
    );
    h.ok(CommandBody::Unfreeze { hold });
    assert_eq!(h.bal("alice"), (9_050, 0, 9_050));
    // Transfers are not charged by a capture schedule.
    h.ok(transfer("alice", "bob", "1"));
    assert_eq!(h.bal("fees").0, 50);
}

#[test]
fn withdrawal_fee_is_paid_at_once_and_given_back_if_the_channel_refuses() {
    let mut h = with_fees();
    h.ok(set_fee(FeeKind::Withdraw, "fees", "0.25", 100));
    // 1 % of 20.00 plus 0.25: 0.45, on top of the amount.
    let kept = h.fresh_tx();
    let made = h.run_as(kept, withdraw("alice", "bank", "20"));
    assert_eq!(made.result, ResultCode::Ok);
    assert_eq!(made.balances.as_slice().len(), 3, "customer, channel and fee account");
    assert_eq!(h.bal("alice"), (10_000 - 2_045, 2_000, 10_000 - 45));
    assert_eq!(h.bal("fees"), (45, 0, 45));
    settle(&mut h, &[kept]);
    assert_eq!(h.bal("alice"), (7_955, 0, 7_955));
    assert_eq!(h.bal("bank").0, -10_000 + 2_000, "the channel gets the amount only");
    assert_eq!(h.bal("fees"), (45, 0, 45), "a settled withdrawal keeps its fee");
    // Refused by the channel: the hold is released and the fee comes back.
    let refused = h.fresh_tx();
    h.run_as(refused, withdraw("alice", "bank", "10"));
    assert_eq!(h.bal("alice"), (7_955 - 1_035, 1_000, 7_955 - 35));
    assert_eq!(h.bal("fees"), (80, 0, 80));
    // A snapshot taken meanwhile remembers the fee.
    let mut bytes = Vec::new();
    h.engine.encode_state(&mut bytes);
    let restored = Engine::decode_state(&bytes).expect("decodes");
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    h.ok(CommandBody::SettleBegin { target: refused });
    let failed = h.ok(CommandBody::SettleFail { target: refused });
    assert_eq!(failed.balances.as_slice().len(), 3);
    assert_eq!(h.bal("alice"), (7_955, 0, 7_955));
    assert_eq!(h.bal("fees"), (45, 0, 45));
    h.check();
    assert_ledgers_caught_up(&h);
    // The fee counts in the funds check.
    h.rejects(withdraw("alice", "bank", "79.55"), ResultCode::InsufficientFunds);
    h.ok(withdraw("alice", "bank", "78.50"));
    // Version 2 snapshots (no withdrawal fees) are still read.
    let mut v2 = Harness::usd();
    v2.ok(set_fee(FeeKind::Transfer, "bank", "1", 0));
    let mut bytes = Vec::new();
    v2.engine.encode_state_as(2, &mut bytes);
    let restored = Engine::decode_state(&bytes).expect("version 2 decodes");
    assert_eq!(
        restored.fee(FeeKind::Transfer, super::cur("USD")),
        v2.engine.fee(FeeKind::Transfer, super::cur("USD"))
    );
}

#[test]
fn fee_schedules_are_checked() {
    let mut h = with_fees();
    h.rejects(set_fee(FeeKind::Transfer, "fees", "0", 10_001), ResultCode::FeeInvalid);
    h.rejects(set_fee(FeeKind::Transfer, "alice", "1", 0), ResultCode::NotChannelAccount);
    h.rejects(set_fee(FeeKind::Transfer, "risk", "1", 0), ResultCode::NotChannelAccount);
    h.rejects(set_fee(FeeKind::Transfer, "nobody", "1", 0), ResultCode::AccountNotFound);
    h.rejects(set_fee(FeeKind::Transfer, "fees", "0.001", 0), ResultCode::AmountPrecision);
    h.rejects(set_fee(FeeKind::Transfer, "fees", "-1", 0), ResultCode::AmountNotPositive);
    let mut eur = set_fee(FeeKind::Transfer, "fees", "1", 0);
    if let CommandBody::SetFee { currency, .. } = &mut eur {
        *currency = super::cur("EUR");
    }
    h.rejects(eur, ResultCode::CurrencyMismatch);
    if let CommandBody::SetFee { currency, .. } = &mut eur {
        *currency = super::cur("ZZZ");
    }
    h.rejects(eur, ResultCode::CurrencyUnknown);
    // 100 % is the most: everything sent is paid again as fee.
    h.ok(set_fee(FeeKind::Transfer, "fees", "0", 10_000));
    h.ok(transfer("alice", "bob", "50"));
    assert_eq!(h.bal("alice").0, 0);
    assert_eq!(h.bal("fees").0, 5_000);
}

#[test]
fn fees_survive_state_encoding() {
    let mut h = with_fees();
    h.ok(set_fee(FeeKind::Transfer, "fees", "0.10", 25));
    h.ok(set_fee(FeeKind::Capture, "fees", "0", 7));
    let mut bytes = Vec::new();
    h.engine.encode_state(&mut bytes);
    let restored = Engine::decode_state(&bytes).expect("decodes");
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    for kind in FeeKind::ALL {
        assert_eq!(restored.fee(kind, super::cur("USD")), h.engine.fee(kind, super::cur("USD")));
    }
    // The last rule's rate raised past 100 % is refused.
    let mut bad = bytes.clone();
    // After it: no T+1 entry, one channel day (the funding deposit), no cutover, no
    // withdrawal fee.
    let rate_at = bad.len() - 4 - (8 + 8 + 52 + 4 + 8 + 8);
    bad[rate_at..rate_at + 4].copy_from_slice(&10_001u32.to_le_bytes());
    assert!(Engine::decode_state(&bad).is_err());
    for len in 0..bytes.len() {
        assert!(Engine::decode_state(&bytes[..len]).is_err(), "prefix {len} accepted");
    }
}

fn cycle(account: &str, clearing: Option<&str>) -> CommandBody {
    CommandBody::SetSettlementCycle { account_no: no(account), t1_clearing_no: clearing.map(no) }
}

fn cutover(business_date: u32) -> CommandBody {
    CommandBody::Cutover { business_date }
}

/// `with_fees` plus the clearing system account `t1clr`; bob is T+1.
fn with_t1() -> Harness {
    let mut h = with_fees();
    h.ok(super::open("t1clr", "USD", crate::AccountKind::System));
    h.ok(cycle("bob", Some("t1clr")));
    h
}

#[test]
fn t1_transfers_move_available_at_once_and_ledger_at_cutover() {
    let mut h = with_t1();
    h.ok(transfer("alice", "bob", "30"));
    assert_eq!(h.bal("alice"), (7_000, 0, 7_000));
    assert_eq!(h.bal("bob"), (3_000, 0, 0));
    assert_eq!(h.bal("t1clr"), (0, 0, 3_000));
    h.ok(transfer("bob", "carol", "10"));
    h.ok(transfer("bob", "alice", "5"));
    assert_eq!(h.bal("bob"), (1_500, 0, 0));
    let pending = h.engine.t1(&no("bob")).expect("bob is T+1");
    assert_eq!((pending.clearing_no, pending.pending_minor), (no("t1clr"), 1_500));
    // The cutover moves the day's net; nothing is left pending and every ledger caught up.
    h.ok(cutover(20_261_126));
    assert_eq!(h.bal("bob"), (1_500, 0, 1_500));
    assert_eq!(h.bal("t1clr"), (0, 0, 0));
    assert_eq!(h.engine.t1(&no("bob")).map(|t1| t1.pending_minor), Some(0));
    assert_ledgers_caught_up(&h);
    // Each date closes once, in order; a retry of the same command is a duplicate.
    h.rejects(cutover(20_261_126), ResultCode::BusinessDateClosed);
    h.rejects(cutover(20_261_125), ResultCode::BusinessDateClosed);
    h.rejects(cutover(20_261_131), ResultCode::BusinessDateClosed);
    h.rejects(cutover(20_260_229), ResultCode::BusinessDateClosed);
    h.ok(cutover(20_280_229));
}

#[test]
fn t1_works_with_fees_and_between_two_t1_accounts() {
    let mut h = with_t1();
    h.ok(cycle("carol", Some("t1clr")));
    h.ok(set_fee(FeeKind::Transfer, "fees", "0.10", 0));
    h.ok(transfer("alice", "bob", "20"));
    let moved = h.ok(transfer("bob", "carol", "5"));
    assert_eq!(moved.balances.as_slice().len(), 3, "payer, payee and fee account");
    assert_eq!(h.bal("bob"), (2_000 - 510, 0, 0));
    assert_eq!(h.bal("carol"), (500, 0, 0));
    assert_eq!(h.bal("fees"), (20, 0, 20));
    // Both sides wait on one clearing account: it carries their net.
    assert_eq!(h.bal("t1clr"), (0, 0, 1_490 + 500));
    h.ok(cutover(20_261_126));
    assert_ledgers_caught_up(&h);
}

#[test]
fn t1_captures_and_refunds_move_ledger_at_the_cutover_too() {
    let mut h = with_t1();
    h.ok(transfer("alice", "bob", "40"));
    let hold = h.ok(freeze("bob", "25", None)).tx_id;
    h.ok(CommandBody::Capture { hold, to: no("carol"), amount: amt("10") });
    assert_eq!(h.bal("bob"), (1_500, 1_500, 0), "bob's ledger waits for the cutover");
    assert_eq!(h.bal("carol"), (1_000, 0, 1_000), "carol is T+0");
    let paid = h.ok(transfer("carol", "bob", "5")).tx_id;
    h.ok(CommandBody::Refund { original: paid, amount: amt("2") });
    assert_eq!(h.bal("bob"), (1_800, 1_500, 0));
    assert_eq!(h.bal("carol"), (700, 0, 700));
    assert_eq!(h.engine.t1(&no("bob")).map(|t1| t1.pending_minor), Some(3_300));
    assert_eq!(h.bal("t1clr"), (0, 0, 3_300));
    h.check();
    h.ok(cutover(20_261_126));
    assert_eq!(h.bal("bob"), (1_800, 1_500, 3_300));
    assert_eq!(h.bal("t1clr"), (0, 0, 0));
    assert_ledgers_caught_up(&h);
}

#[test]
fn settlement_cycle_changes_are_checked() {
    let mut h = with_t1();
    let invalid = ResultCode::SettlementCycleInvalid;
    h.rejects(cycle("alice", Some("carol")), invalid);
    h.rejects(cycle("bank", Some("t1clr")), invalid);
    h.rejects(cycle("alice", Some("nobody")), ResultCode::AccountNotFound);
    h.ok(CommandBody::OpenAccount {
        account_no: no("eurclr"),
        user_id: 0,
        currency: super::cur("EUR"),
        kind: crate::AccountKind::System,
        limits: AccountLimits::default(),
    });
    h.rejects(cycle("alice", Some("eurclr")), ResultCode::CurrencyMismatch);
    // Back to T+0, or to another clearing account, only with nothing pending.
    h.ok(transfer("alice", "bob", "1"));
    h.rejects(cycle("bob", None), invalid);
    h.rejects(cycle("bob", Some("fees")), invalid);
    h.ok(cycle("bob", Some("t1clr")));
    h.ok(cutover(20_261_126));
    h.ok(cycle("bob", None));
    assert_eq!(h.engine.t1(&no("bob")), None);
    h.ok(transfer("alice", "bob", "1"));
    assert_ledgers_caught_up(&h);
}

#[test]
fn cutover_reports_each_channels_settled_day() {
    let mut h = with_t1();
    h.ok(super::open("card", "USD", crate::AccountKind::System));
    let (d1, d2, w1) = (h.fresh_tx(), h.fresh_tx(), h.fresh_tx());
    h.run_as(d1, deposit("carol", "bank", "7"));
    h.run_as(d2, deposit("carol", "card", "3"));
    h.run_as(w1, withdraw("alice", "bank", "2"));
    settle(&mut h, &[d1, d2, w1]);
    let unsettled = h.fresh_tx();
    h.run_as(unsettled, deposit("carol", "bank", "1"));
    assert_eq!(h.engine.cutover_report(), None);
    h.ok(cutover(20_261_126));
    let report = h.engine.cutover_report().expect("closed");
    assert_eq!(report.business_date, 20_261_126);
    let totals: Vec<_> = report
        .channels
        .iter()
        .map(|c| {
            let counts = (c.deposits_count, c.withdrawals_count);
            (c.channel_no, c.deposits_minor, c.withdrawals_minor, counts)
        })
        .collect();
    // bank also confirmed the 100 funding deposit of `with_fees`.
    assert_eq!(totals, vec![(no("bank"), 10_000 + 700, 200, (2, 1)), (no("card"), 300, 0, (1, 0))]);
    // The next day starts empty.
    settle(&mut h, &[unsettled]);
    h.ok(cutover(20_261_127));
    let next = h.engine.cutover_report().expect("closed");
    assert_eq!(next.channels.len(), 1);
    assert_eq!(next.channels[0].deposits_minor, 100);

    let mut bytes = Vec::new();
    h.engine.encode_state(&mut bytes);
    let restored = Engine::decode_state(&bytes).expect("decodes");
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    assert_eq!(restored.cutover_report(), h.engine.cutover_report());
    assert_eq!(restored.t1(&no("bob")), h.engine.t1(&no("bob")));
    for len in 0..bytes.len() {
        assert!(Engine::decode_state(&bytes[..len]).is_err(), "prefix {len} accepted");
    }
}

/// A fee account that is also a T+1 clearing account receives both `ledger` deltas of one
/// command (before plans accumulated, the fee's overwrote the clearing one), and a refused
/// withdrawal's reply shows the balances after the fee came back.
#[test]
fn fee_account_that_clears_t1_keeps_both_ledger_deltas() {
    let mut h = with_t1();
    h.ok(set_fee(FeeKind::Withdraw, "t1clr", "1", 0));
    h.ok(set_fee(FeeKind::Capture, "t1clr", "0.50", 0));
    h.ok(transfer("alice", "bob", "50"));
    let refused = h.fresh_tx();
    h.run_as(refused, withdraw("bob", "bank", "10"));
    h.check();
    let hold = h.fresh_tx();
    h.run_as(hold, freeze("bob", "20", None));
    h.ok(CommandBody::Capture { hold, to: no("carol"), amount: amt("5") });
    h.check();
    h.ok(CommandBody::SettleBegin { target: refused });
    let failed = h.ok(CommandBody::SettleFail { target: refused });
    let bob = failed.balances.as_slice()[0];
    assert_eq!((bob.available_minor, bob.frozen_minor, bob.ledger_minor), h.bal("bob"));
}
