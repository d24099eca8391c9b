//! Retry or conflict, field by field: a `tx_id` re-sent with a command that differs from the
//! first in any one compared field is `TxIdConflict`, for every kind of command and whether
//! the first succeeded or was rejected; the first command again is a retry.

use super::{amt, cur, deposit, freeze, no, open, transfer, withdraw, Harness};
use crate::{
    AccountKind, AccountLimits, AccountStatus, Amount, CommandBody, FeeKind, ResultCode, TxId,
};

/// Runs `first` under a fresh `tx_id`, then each of `others` under the same id.
fn check(h: &mut Harness, first: CommandBody, others: &[CommandBody]) {
    let tx_id = h.fresh_tx();
    let outcome = h.run_as(tx_id, first);
    for other in others {
        assert_ne!(*other, first);
        let again = h.run_as(tx_id, *other);
        assert_eq!(again.result, ResultCode::TxIdConflict, "{other:?} after {first:?}");
    }
    let retry = h.run_as(tx_id, first);
    assert!(retry.duplicate, "{first:?}");
    assert_eq!(retry.result, outcome.result);
}

/// Alice (funded), bob, carol, channel `bank`, fee account `fees`, `risk`, EUR `euro`.
fn setup() -> Harness {
    let mut h = Harness::usd();
    h.ok(open("fees", "USD", AccountKind::System));
    h.ok(open("euro", "EUR", AccountKind::User));
    let funding = h.fresh_tx();
    h.run_as(funding, deposit("alice", "bank", "1000"));
    h.ok(CommandBody::SettleBegin { target: funding });
    h.ok(CommandBody::SettleConfirm { target: funding });
    h
}

#[test]
fn a_command_differing_in_any_one_field_is_a_conflict() {
    let mut h = setup();
    // Accepted first, then rejected first (bob has nothing): the same fields tell them apart.
    for (from, to, amount, more) in [("alice", "bob", "1", "1.01"), ("bob", "alice", "5", "6")] {
        let others = [
            transfer("carol", to, amount),
            transfer(from, "carol", amount),
            transfer(from, to, more),
        ];
        check(&mut h, transfer(from, to, amount), &others);
    }
    for first in [deposit("alice", "bank", "2"), withdraw("alice", "bank", "2")] {
        let (account_no, channel_no, amount) = match first {
            CommandBody::Deposit { account_no, channel_no, amount }
            | CommandBody::Withdraw { account_no, channel_no, amount } => {
                (account_no, channel_no, amount)
            }
            _ => unreachable!("a deposit or a withdrawal"),
        };
        let with = |account_no, channel_no, amount| match first {
            CommandBody::Deposit { .. } => CommandBody::Deposit { account_no, channel_no, amount },
            _ => CommandBody::Withdraw { account_no, channel_no, amount },
        };
        check(
            &mut h,
            first,
            &[
                with(no("bob"), channel_no, amount),
                with(account_no, no("risk"), amount),
                with(account_no, channel_no, amt("2.5")),
            ],
        );
    }
    let later = Some(h.now_ns + 1_000_000_000);
    let hold = h.fresh_tx();
    check_as(
        &mut h,
        hold,
        freeze("alice", "10", later),
        &[
            freeze("carol", "10", later),
            freeze("alice", "11", later),
            freeze("alice", "10", None),
            freeze("alice", "10", later.map(|ns| ns + 1)),
        ],
    );
    check(
        &mut h,
        CommandBody::Capture { hold, to: no("bob"), amount: amt("1") },
        &[
            CommandBody::Capture { hold: TxId(hold.0 + 1), to: no("bob"), amount: amt("1") },
            CommandBody::Capture { hold, to: no("carol"), amount: amt("1") },
            CommandBody::Capture { hold, to: no("bob"), amount: amt("2") },
        ],
    );
    let other_hold = h.fresh_tx();
    h.run_as(other_hold, freeze("alice", "1", None));
    check(&mut h, CommandBody::Unfreeze { hold }, &[CommandBody::Unfreeze { hold: other_hold }]);
    let pay = h.fresh_tx();
    h.run_as(pay, transfer("alice", "bob", "20"));
    let other_pay = h.fresh_tx();
    h.run_as(other_pay, transfer("alice", "bob", "20"));
    check(
        &mut h,
        CommandBody::Refund { original: pay, amount: amt("3") },
        &[
            CommandBody::Refund { original: other_pay, amount: amt("3") },
            CommandBody::Refund { original: pay, amount: amt("4") },
        ],
    );
    let (a, b) = (h.fresh_tx(), h.fresh_tx());
    h.run_as(a, deposit("alice", "bank", "1"));
    h.run_as(b, deposit("alice", "bank", "1"));
    check(
        &mut h,
        CommandBody::SettleBegin { target: a },
        &[
            CommandBody::SettleBegin { target: b },
            CommandBody::SettleConfirm { target: a },
            CommandBody::SettleFail { target: a },
        ],
    );
    check(
        &mut h,
        CommandBody::SettleConfirm { target: a },
        &[CommandBody::SettleConfirm { target: b }],
    );
    check(&mut h, CommandBody::SettleFail { target: b }, &[CommandBody::SettleFail { target: a }]);
}

/// `check` with a chosen `tx_id` (to name the transaction later).
fn check_as(h: &mut Harness, tx_id: TxId, first: CommandBody, others: &[CommandBody]) {
    let outcome = h.run_as(tx_id, first);
    for other in others {
        assert_eq!(h.run_as(tx_id, *other).result, ResultCode::TxIdConflict, "{other:?}");
    }
    assert!(h.run_as(tx_id, first).duplicate);
    assert_eq!(h.engine.tx(tx_id).map(|tx| tx.result), Some(outcome.result));
}

#[test]
fn an_admin_command_differing_in_any_one_field_is_a_conflict() {
    let mut h = setup();
    let opening =
        |account: &str, user_id: u64, currency: &str, kind, limits| CommandBody::OpenAccount {
            account_no: no(account),
            user_id,
            currency: cur(currency),
            kind,
            limits,
        };
    let none = AccountLimits::default();
    let some = |field: usize| {
        let mut limits = AccountLimits::default();
        let limit = Some(amt("5"));
        match field {
            0 => limits.tx_amount_max = limit,
            1 => limits.daily_debit_max = limit,
            _ => limits.exposure_max = limit,
        }
        limits
    };
    check(
        &mut h,
        opening("dave", 1, "USD", AccountKind::User, none),
        &[
            opening("erin", 1, "USD", AccountKind::User, none),
            opening("dave", 2, "USD", AccountKind::User, none),
            opening("dave", 1, "EUR", AccountKind::User, none),
            opening("dave", 1, "USD", AccountKind::System, none),
            opening("dave", 1, "USD", AccountKind::User, some(0)),
            opening("dave", 1, "USD", AccountKind::User, some(1)),
            opening("dave", 1, "USD", AccountKind::User, some(2)),
        ],
    );
    let status =
        |account: &str, status| CommandBody::SetAccountStatus { account_no: no(account), status };
    check(
        &mut h,
        status("carol", AccountStatus::DebitFrozen),
        &[status("bob", AccountStatus::DebitFrozen), status("carol", AccountStatus::Active)],
    );
    let limits =
        |account: &str, limits| CommandBody::SetAccountLimits { account_no: no(account), limits };
    check(
        &mut h,
        limits("carol", some(0)),
        &[
            limits("bob", some(0)),
            limits("carol", some(1)),
            limits("carol", some(2)),
            limits("carol", none),
        ],
    );
    let fee = |kind, currency: &str, account: &str, fixed: &str, rate_bps| CommandBody::SetFee {
        kind,
        currency: cur(currency),
        fee_account_no: no(account),
        fixed: amt(fixed),
        rate_bps,
    };
    check(
        &mut h,
        fee(FeeKind::Transfer, "USD", "fees", "0.10", 5),
        &[
            fee(FeeKind::Capture, "USD", "fees", "0.10", 5),
            fee(FeeKind::Transfer, "EUR", "fees", "0.10", 5),
            fee(FeeKind::Transfer, "USD", "bank", "0.10", 5),
            fee(FeeKind::Transfer, "USD", "fees", "0.20", 5),
            fee(FeeKind::Transfer, "USD", "fees", "0.10", 6),
        ],
    );
    let cycle = |account: &str, clearing: Option<&str>| CommandBody::SetSettlementCycle {
        account_no: no(account),
        t1_clearing_no: clearing.map(no),
    };
    check(
        &mut h,
        cycle("carol", Some("bank")),
        &[cycle("bob", Some("bank")), cycle("carol", Some("fees")), cycle("carol", None)],
    );
    let define = |code: &str, scale| CommandBody::DefineCurrency { code: cur(code), scale };
    check(&mut h, define("XAG", 3), &[define("XPT", 3), define("XAG", 4)]);
    let cutover = |business_date| CommandBody::Cutover { business_date };
    check(&mut h, cutover(20_260_102), &[cutover(20_260_103)]);
}

/// The stored fields are compared exactly, not only through the digest: a record whose
/// digest were that of another command (a collision) still tells the two apart.
#[test]
fn stored_fields_decide_even_when_digests_collide() {
    let mut h = setup();
    let tx_id = h.fresh_tx();
    h.run_as(tx_id, transfer("alice", "bob", "1"));
    let other = transfer("alice", "bob", "2");
    let loc = h.engine.ledger.txs.find(tx_id).expect("remembered");
    h.engine.ledger.txs.get_mut(loc).digest = other.digest(h.engine.config().hash_seed);
    assert_eq!(h.run_as(tx_id, other).result, ResultCode::TxIdConflict);
    // And the digest is keyed: another seed gives another digest.
    assert_ne!(other.digest(1), other.digest(2));
}

/// The digest is part of state encoding 4 (every record keeps it) and the fingerprint of the
/// older ones: neither may change, or a retry after a restart would be taken for a conflict.
/// Pinned for amounts whose normalization strips zeros, keeps them, or works past 64 bits.
#[test]
fn digest_and_fingerprint_are_pinned() {
    let seed = crate::EngineConfig::default().hash_seed;
    let wide = i128::from(i64::MAX) * 1_000;
    let minor = |from, to, mantissa, scale| CommandBody::Transfer {
        from: no(from),
        to: no(to),
        amount: Amount::minor(mantissa, scale),
    };
    let cases = [
        (transfer("alice", "bob", "12.50"), 0x5601_1624_bfd4_95de, 0xe712_64cd),
        (transfer("alice", "bob", "12.5"), 0x5601_1624_bfd4_95de, 0xe712_64cd),
        (transfer("alice", "bob", "1250"), 0x1a9e_8ac8_3e6d_690b, 0xb707_bf3d),
        (deposit("alice", "bank", "0.00000100"), 0x6fbe_88e9_607f_a5c5, 0xa894_4e78),
        (minor("alice", "bob", wide, 8), 0x01da_5919_0360_3531, 0xefde_b643),
        (minor("a", "b", -wide, 3), 0x14bf_080f_0d73_f640, 0x6667_978d),
    ];
    for (body, digest, fingerprint) in cases {
        assert_eq!((body.digest(seed), body.fingerprint()), (digest, fingerprint), "{body:?}");
    }
    assert_eq!(amt("12.50").normalized(), amt("12.5"));
    assert_eq!(Amount::minor(wide, 8).normalized(), Amount::minor(i128::from(i64::MAX), 5));
    assert_eq!(Amount::minor(i128::from(i64::MIN), 2).normalized().scale, 2);
}
