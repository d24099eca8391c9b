//! Money-moving commands. Each handler is two steps: `plan_*` checks everything and fills
//! the engine's one `Plan` (the balances and postings) in place, returning what else the
//! command changes; `commit_*` applies it and cannot fail — it returns `Applied`, not a
//! `Result`. Both sides of a movement change, or neither does.

use crate::command::TxKind;
use crate::currency::to_minor;
use crate::cycle::Cycles;
use crate::holds::Hold;
use crate::ledger::{Applied, Ledger};
use crate::limits::{HOLDS_OPEN_MAX, SETTLEMENTS_PENDING_MAX};
use crate::outcome::{Balances, Bucket, Effects, ResultCode};
use crate::plan::Plan;
use crate::txtable::Loc;
use crate::types::{
    AccountId, AccountKind, AccountNo, AccountStatus, Amount, FeeKind, TxId, TxState,
};

/// A checked movement from `debit` to `credit` (its postings are in the plan), and the fee
/// account credited.
pub(crate) struct Movement {
    debit: AccountId,
    credit: AccountId,
    amount_minor: i128,
    /// What counts against the payer's daily limit (0: nothing, as for a refund or capture).
    daily_minor: i128,
    fee: Option<(AccountId, i128)>,
}

// A handler takes the command's fields, the engine's one plan and the two outputs (balances
// and effects): eight arguments for the movements with two accounts.
#[allow(clippy::too_many_arguments)]
impl Ledger {
    /// Looks up both accounts of a movement and checks they differ and share a currency.
    fn pair(
        &self,
        debit_no: &AccountNo,
        credit_no: &AccountNo,
    ) -> Result<(AccountId, AccountId), ResultCode> {
        let debit = self.find_account(debit_no)?;
        let credit = self.find_account(credit_no)?;
        if debit == credit {
            return Err(ResultCode::SameAccount);
        }
        if self.acct(debit).currency != self.acct(credit).currency {
            return Err(ResultCode::CurrencyMismatch);
        }
        Ok((debit, credit))
    }

    fn amount_minor(&self, id: AccountId, amount: Amount) -> Result<i128, ResultCode> {
        to_minor(amount, self.scale(self.acct(id).currency))
    }

    /// Whether one more deposit or withdrawal may be pending settlement.
    fn check_settlement_room(&self) -> Result<(), ResultCode> {
        if self.pending_settlements >= SETTLEMENTS_PENDING_MAX {
            return Err(ResultCode::TooManyPendingSettlements);
        }
        self.check_open_room()
    }

    /// Whether the transaction index has room for one more open transaction (it always has
    /// with the default window, see `limits.rs`).
    fn check_open_room(&self) -> Result<(), ResultCode> {
        let open = self.holds.len() + self.pending_settlements as usize;
        if !self.txs.has_room_for_open(open + 1) {
            return Err(ResultCode::CapacityExceeded);
        }
        Ok(())
    }

    fn channel(&self, id: AccountId) -> Result<(), ResultCode> {
        match self.acct(id).kind {
            AccountKind::System | AccountKind::Risk => Ok(()),
            AccountKind::User => Err(ResultCode::NotChannelAccount),
        }
    }

    /// Plans the credit of a fee to its account (`available` and `ledger`), when there is one.
    #[inline(always)]
    fn plan_fee(&self, plan: &mut Plan, fee: Option<(AccountId, i128)>) -> Result<(), ResultCode> {
        let Some((account, fee_minor)) = fee else { return Ok(()) };
        self.accounts.check_credit(account)?;
        plan.add(&self.accounts, account, Bucket::Available, fee_minor)?;
        plan.add(&self.accounts, account, Bucket::Ledger, fee_minor)?;
        Ok(())
    }

    /// Applies a checked movement's postings and reports its balances (debit, credit, fee).
    #[inline(always)]
    fn commit_movement(
        &mut self,
        plan: &mut Plan,
        m: &Movement,
        out: &mut Balances,
        fx: &mut Effects,
    ) {
        assert!(m.debit != m.credit, "a movement has two sides");
        assert!(m.amount_minor > 0 && m.daily_minor >= 0, "a movement moves something");
        if m.daily_minor > 0 {
            self.count_debit(m.debit, m.daily_minor);
        }
        plan.commit(&mut self.accounts, &mut self.cycles, fx);
        out.push(self.view(m.debit));
        out.push(self.view(m.credit));
        if let Some((account, _)) = m.fee {
            out.push(self.view(account));
        }
    }

    #[inline]
    pub(crate) fn transfer(
        &mut self,
        tx_id: TxId,
        from: &AccountNo,
        to: &AccountNo,
        amount: Amount,
        plan: &mut Plan,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let movement = self.plan_transfer(plan, tx_id, from, to, amount)?;
        plan.frozen_moves(movement.debit, 0);
        // Nothing below can fail.
        self.commit_movement(plan, &movement, out, fx);
        fx.transitions.push((tx_id, TxState::Settled));
        let Movement { debit, credit, amount_minor, .. } = movement;
        Ok(Applied::movement(TxState::Settled, amount_minor, debit, credit))
    }

    /// A transfer: `available` moves at once on both sides, and so does `ledger` (internal:
    /// final at once), except that a T+1 side's `ledger` delta goes to its clearing account
    /// until the cutover (`cycle.rs`). The payer pays the fee on top of the amount.
    #[inline]
    fn plan_transfer(
        &self,
        plan: &mut Plan,
        tx_id: TxId,
        from: &AccountNo,
        to: &AccountNo,
        amount: Amount,
    ) -> Result<Movement, ResultCode> {
        let (dr, cr) = self.pair(from, to)?;
        let amount_minor = self.amount_minor(dr, amount)?;
        // Every debit check sees the amount and the fee.
        let fee = self.clearing.fee_for(&self.accounts, FeeKind::Transfer, dr, cr, amount_minor);
        let debit_minor = amount_minor + fee.map_or(0, |(_, fee_minor)| fee_minor);
        assert!(dr != cr && debit_minor >= amount_minor, "a payer pays at least the amount");
        self.check_debit(dr, debit_minor)?;
        self.accounts.check_credit(cr)?;
        let dr_available = self.accounts.available_after_debit(dr, debit_minor)?;
        self.clearing.check_exposure(&self.accounts, dr, dr_available)?;
        plan.start(tx_id);
        plan.add(&self.accounts, dr, Bucket::Available, -debit_minor)?;
        plan.add(&self.accounts, cr, Bucket::Available, amount_minor)?;
        if Cycles::any_t1(&self.accounts, dr, cr) {
            let mut deltas = [(dr, -debit_minor), (cr, amount_minor), (dr, 0)];
            let deltas_len = match fee {
                Some(fee) => {
                    deltas[2] = fee;
                    3
                }
                None => 2,
            };
            let ledger = self.cycles.plan_ledger(&self.accounts, &deltas[..deltas_len])?;
            if let Some((account, fee_minor)) = fee {
                self.accounts.check_credit(account)?;
                plan.add(&self.accounts, account, Bucket::Available, fee_minor)?;
            }
            plan.add_ledger(&self.accounts, &ledger)?;
        } else {
            plan.add(&self.accounts, dr, Bucket::Ledger, -debit_minor)?;
            plan.add(&self.accounts, cr, Bucket::Ledger, amount_minor)?;
            self.plan_fee(plan, fee)?;
        }
        Ok(Movement { debit: dr, credit: cr, amount_minor, daily_minor: debit_minor, fee })
    }

    pub(crate) fn deposit(
        &mut self,
        tx_id: TxId,
        account_no: &AccountNo,
        channel_no: &AccountNo,
        amount: Amount,
        plan: &mut Plan,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let (channel, user) = self.pair(channel_no, account_no)?;
        self.channel(channel)?;
        assert!(self.acct(channel).kind != AccountKind::User, "a channel mirrors the outside");
        let amount_minor = self.amount_minor(user, amount)?;
        self.accounts.check_credit(user)?;
        self.accounts.check_credit(channel)?; // a debit-frozen channel still mirrors arriving money
        plan.start(tx_id);
        self.accounts.available_after_debit(channel, amount_minor)?;
        plan.add(&self.accounts, channel, Bucket::Available, -amount_minor)?;
        plan.add(&self.accounts, user, Bucket::Available, amount_minor)?;
        let unsettled =
            self.clearing.unsettled_after_deposit(&self.accounts, user, amount_minor)?;
        self.check_settlement_room()?;
        plan.frozen_moves(user, 0);
        // Nothing below can fail. T+0: usable at once; `ledger` waits for settlement, and until
        // then the amount counts as unsettled (exposure, `clearing.rs`).
        if let Some(unsettled_minor) = unsettled {
            self.clearing.set_unsettled(&mut self.accounts, user, unsettled_minor);
        }
        plan.commit(&mut self.accounts, &mut self.cycles, fx);
        self.pending_settlements += 1;
        fx.transitions.push((tx_id, TxState::PendingSettlement));
        // Balances in the record's order, as for every command: debit (the channel), credit.
        out.push(self.view(channel));
        out.push(self.view(user));
        Ok(Applied::movement(TxState::PendingSettlement, amount_minor, channel, user))
    }

    pub(crate) fn withdraw(
        &mut self,
        tx_id: TxId,
        account_no: &AccountNo,
        channel_no: &AccountNo,
        amount: Amount,
        plan: &mut Plan,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let movement = self.plan_withdraw(plan, tx_id, account_no, channel_no, amount)?;
        plan.frozen_moves(movement.debit, movement.amount_minor);
        assert!(self.pending_settlements < SETTLEMENTS_PENDING_MAX);
        // Nothing below can fail. The money is held until the channel confirms.
        self.commit_movement(plan, &movement, out, fx);
        if let Some(charged) = movement.fee {
            self.clearing.keep_withdrawal_fee(tx_id, charged);
        }
        self.pending_settlements += 1;
        fx.transitions.push((tx_id, TxState::PendingSettlement));
        let Movement { debit, credit, amount_minor, .. } = movement;
        Ok(Applied::movement(TxState::PendingSettlement, amount_minor, debit, credit))
    }

    /// A withdrawal holds the amount on the user's `frozen`; the fee is paid at once, on top.
    fn plan_withdraw(
        &self,
        plan: &mut Plan,
        tx_id: TxId,
        account_no: &AccountNo,
        channel_no: &AccountNo,
        amount: Amount,
    ) -> Result<Movement, ResultCode> {
        let (user, channel) = self.pair(account_no, channel_no)?;
        self.channel(channel)?;
        let amount_minor = self.amount_minor(user, amount)?;
        let fee =
            self.clearing.fee_for(&self.accounts, FeeKind::Withdraw, user, channel, amount_minor);
        let fee_minor = fee.map_or(0, |(_, fee_minor)| fee_minor);
        let debit_minor = amount_minor + fee_minor;
        assert!(user != channel && fee_minor >= 0, "a withdrawal pays at least the amount");
        self.check_debit(user, debit_minor)?;
        self.accounts.check_credit(channel)?;
        let user_available = self.accounts.available_after_debit(user, debit_minor)?;
        self.clearing.check_exposure(&self.accounts, user, user_available)?;
        plan.start(tx_id);
        plan.add(&self.accounts, user, Bucket::Available, -debit_minor)?;
        plan.add(&self.accounts, user, Bucket::Frozen, amount_minor)?;
        if fee.is_some() {
            let ledger = self.cycles.plan_ledger(&self.accounts, &[(user, -fee_minor)])?;
            plan.add_ledger(&self.accounts, &ledger)?;
        }
        self.plan_fee(plan, fee)?;
        self.check_settlement_room()?;
        let daily_minor = debit_minor;
        Ok(Movement { debit: user, credit: channel, amount_minor, daily_minor, fee })
    }

    pub(crate) fn freeze(
        &mut self,
        tx_id: TxId,
        account_no: &AccountNo,
        amount: Amount,
        expires_ns: Option<u64>,
        plan: &mut Plan,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let id = self.find_account(account_no)?;
        let amount_minor = self.amount_minor(id, amount)?;
        self.check_debit(id, amount_minor)?;
        if expires_ns.is_some_and(|expires_ns| expires_ns <= self.now_ns) {
            return Err(ResultCode::ExpiryInPast);
        }
        let available = self.accounts.available_after_debit(id, amount_minor)?;
        self.clearing.check_exposure(&self.accounts, id, available)?;
        if self.holds.len() >= HOLDS_OPEN_MAX as usize {
            return Err(ResultCode::TooManyHolds);
        }
        self.check_open_room()?;
        plan.start(tx_id);
        plan.add(&self.accounts, id, Bucket::Available, -amount_minor)?;
        plan.add(&self.accounts, id, Bucket::Frozen, amount_minor)?;
        plan.frozen_moves(id, amount_minor);
        assert!(self.holds.get(tx_id).is_none() && self.holds.len() < HOLDS_OPEN_MAX as usize);
        // Nothing below can fail.
        self.count_debit(id, amount_minor);
        plan.commit(&mut self.accounts, &mut self.cycles, fx);
        let hold = Hold {
            account: id,
            remaining_minor: amount_minor,
            captured_minor: 0,
            expires_ns,
            day: self.day(),
        };
        self.holds.insert(tx_id, hold);
        fx.transitions.push((tx_id, TxState::Frozen));
        out.push(self.view(id));
        Ok(Applied::movement(TxState::Frozen, amount_minor, id, id))
    }

    /// The active hold `hold_id`, or why there is none.
    fn active_hold(&self, hold_id: TxId) -> Result<Hold, ResultCode> {
        let Some(loc) = self.txs.find(hold_id) else {
            return Err(ResultCode::HoldNotFound);
        };
        let record = self.txs.get(loc);
        if record.kind != TxKind::Freeze || record.result != ResultCode::Ok {
            return Err(ResultCode::HoldNotFound);
        }
        let hold = self.holds.get(hold_id).copied().ok_or(ResultCode::HoldReleased)?;
        // Expired but not yet released (at most `EXPIRIES_PER_COMMAND_MAX` go per command):
        // as good as released.
        if hold.expires_ns.is_some_and(|expires_ns| expires_ns <= self.now_ns) {
            return Err(ResultCode::HoldReleased);
        }
        Ok(hold)
    }

    pub(crate) fn unfreeze(
        &mut self,
        hold_id: TxId,
        plan: &mut Plan,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let hold = self.active_hold(hold_id)?;
        assert!(hold.remaining_minor > 0, "an active hold holds something");
        // Nothing below can fail.
        let account = self.release_hold(plan, hold_id, fx);
        assert!(account == hold.account && self.holds.get(hold_id).is_none());
        out.push(self.view(account));
        Ok(Applied { amount_minor: hold.remaining_minor, debit: account.0, ..Applied::admin() }
            .linked(hold_id))
    }

    pub(crate) fn capture(
        &mut self,
        tx_id: TxId,
        hold_id: TxId,
        to: &AccountNo,
        amount: Amount,
        plan: &mut Plan,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let movement = self.plan_capture(plan, tx_id, hold_id, to, amount)?;
        let debit_minor =
            movement.amount_minor + movement.fee.map_or(0, |(_, fee_minor)| fee_minor);
        plan.frozen_moves(movement.debit, -debit_minor);
        // Nothing below can fail.
        self.commit_movement(plan, &movement, out, fx);
        if self.holds.capture(hold_id, debit_minor) == 0 {
            self.release_hold(plan, hold_id, fx);
        }
        fx.transitions.push((tx_id, TxState::Settled));
        let Movement { debit, credit, amount_minor, .. } = movement;
        Ok(Applied::movement(TxState::Settled, amount_minor, debit, credit).linked(hold_id))
    }

    /// A capture moves held money (`frozen`) to the payee; the fee comes out of the hold too.
    fn plan_capture(
        &self,
        plan: &mut Plan,
        tx_id: TxId,
        hold_id: TxId,
        to: &AccountNo,
        amount: Amount,
    ) -> Result<Movement, ResultCode> {
        let hold = self.active_hold(hold_id)?;
        assert!(hold.remaining_minor > 0, "an active hold holds something");
        let (payer, payee) = (hold.account, self.find_account(to)?);
        if payer == payee {
            return Err(ResultCode::SameAccount);
        }
        if self.acct(payer).currency != self.acct(payee).currency {
            return Err(ResultCode::CurrencyMismatch);
        }
        let amount_minor = self.amount_minor(payer, amount)?;
        let fee =
            self.clearing.fee_for(&self.accounts, FeeKind::Capture, payer, payee, amount_minor);
        let debit_minor = amount_minor + fee.map_or(0, |(_, fee_minor)| fee_minor);
        if debit_minor > hold.remaining_minor {
            return Err(ResultCode::HoldInsufficient);
        }
        // The hold already passed the risk checks; a debit freeze since then still stops it.
        if self.acct(payer).status != AccountStatus::Active {
            return Err(ResultCode::AccountDebitFrozen);
        }
        self.accounts.check_credit(payee)?;
        plan.start(tx_id);
        plan.add(&self.accounts, payer, Bucket::Frozen, -debit_minor)?;
        plan.add(&self.accounts, payee, Bucket::Available, amount_minor)?;
        // A T+1 side's `ledger` moves through its clearing account at the cutover.
        let ledger = self
            .cycles
            .plan_ledger(&self.accounts, &[(payer, -debit_minor), (payee, amount_minor)])?;
        plan.add_ledger(&self.accounts, &ledger)?;
        self.plan_fee(plan, fee)?;
        Ok(Movement { debit: payer, credit: payee, amount_minor, daily_minor: 0, fee })
    }

    /// The target of a settlement command, checked to be a deposit or withdrawal that may move
    /// from its current state to `to`.
    fn settlement_target(&self, target: TxId, to: TxState) -> Result<Loc, ResultCode> {
        let loc = self.txs.find(target).ok_or(ResultCode::TxNotFound)?;
        let record = self.txs.get(loc);
        let external = matches!(record.kind, TxKind::Deposit | TxKind::Withdraw);
        let legal = record.state.is_some_and(|state| state.can_become(to));
        if !external || !legal {
            return Err(ResultCode::IllegalTransition);
        }
        assert!(record.result == ResultCode::Ok, "only an accepted movement has a lifecycle left");
        Ok(loc)
    }

    fn target_accounts(&self, loc: Loc) -> (AccountId, AccountId, i128, TxKind) {
        let record = self.txs.get(loc);
        (AccountId(record.debit), AccountId(record.credit), record.amount_minor(), record.kind)
    }

    pub(crate) fn settle_begin(
        &mut self,
        target: TxId,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let loc = self.settlement_target(target, TxState::Settling)?;
        let (debit, credit, _, _) = self.target_accounts(loc);
        // Nothing below can fail.
        self.enter_target(target, loc, TxState::Settling, fx);
        out.push(self.view(debit));
        out.push(self.view(credit));
        Ok(Applied { debit: debit.0, credit: credit.0, ..Applied::admin() }.linked(target))
    }

    pub(crate) fn settle_confirm(
        &mut self,
        target: TxId,
        plan: &mut Plan,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let loc = self.settlement_target(target, TxState::Settled)?;
        let (debit, credit, amount_minor, kind) = self.target_accounts(loc);
        plan.start(target);
        if kind == TxKind::Withdraw {
            // The held money leaves the customer for the channel.
            plan.add(&self.accounts, debit, Bucket::Frozen, -amount_minor)?;
            plan.add(&self.accounts, credit, Bucket::Available, amount_minor)?;
        }
        // `ledger` catches up with what was made available.
        plan.add(&self.accounts, debit, Bucket::Ledger, -amount_minor)?;
        plan.add(&self.accounts, credit, Bucket::Ledger, amount_minor)?;
        let withdrawn_minor = if kind == TxKind::Withdraw { -amount_minor } else { 0 };
        plan.frozen_moves(debit, withdrawn_minor);
        assert!(self.pending_settlements > 0, "the target is pending");
        // Nothing below can fail.
        plan.commit(&mut self.accounts, &mut self.cycles, fx);
        // The channel is the debit of a deposit and the credit of a withdrawal; a settled
        // withdrawal keeps its fee.
        match kind {
            TxKind::Deposit => {
                self.clearing.deposit_finished(&mut self.accounts, credit, amount_minor);
                self.cycles.count_settlement(debit, amount_minor, true);
            }
            _ => {
                self.clearing.forget_withdrawal_fee(target);
                self.cycles.count_settlement(credit, amount_minor, false);
            }
        }
        self.enter_target(target, loc, TxState::Settled, fx);
        self.pending_settlements -= 1;
        out.push(self.view(debit));
        out.push(self.view(credit));
        Ok(Applied { debit: debit.0, credit: credit.0, ..Applied::admin() }.linked(target))
    }

    pub(crate) fn settle_fail(
        &mut self,
        target: TxId,
        plan: &mut Plan,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let loc = self.settlement_target(target, TxState::Failed)?;
        let (debit, credit, amount_minor, kind) = self.target_accounts(loc);
        plan.start(target);
        let third = match kind {
            TxKind::Withdraw => self.plan_withdrawal_failed(plan, target, debit, amount_minor)?,
            TxKind::Deposit => self.plan_deposit_failed(plan, debit, credit, amount_minor)?,
            _ => unreachable!("settlement_target admits deposits and withdrawals only"),
        };
        let released_minor = if kind == TxKind::Withdraw { -amount_minor } else { 0 };
        plan.frozen_moves(debit, released_minor);
        assert!(self.pending_settlements > 0, "the target is pending");
        // Nothing below can fail.
        plan.commit(&mut self.accounts, &mut self.cycles, fx);
        match kind {
            TxKind::Withdraw => self.clearing.forget_withdrawal_fee(target),
            _ => self.clearing.deposit_finished(&mut self.accounts, credit, amount_minor),
        }
        // The target's debit and credit (as for every command), then the fee or risk account.
        out.push(self.view(debit));
        out.push(self.view(credit));
        if let Some(account) = third {
            out.push(self.view(account));
        }
        self.enter_target(target, loc, TxState::Failed, fx);
        self.pending_settlements -= 1;
        Ok(Applied { debit: debit.0, credit: credit.0, ..Applied::admin() }.linked(target))
    }

    /// A withdrawal the channel refused: the hold goes back to the customer with the fee (the
    /// fee account gives it back). Returns the fee account, if a fee was paid.
    fn plan_withdrawal_failed(
        &self,
        plan: &mut Plan,
        target: TxId,
        user: AccountId,
        amount_minor: i128,
    ) -> Result<Option<AccountId>, ResultCode> {
        let fee = self.clearing.withdrawal_fee(target);
        let fee_minor = fee.map_or(0, |(_, fee_minor)| fee_minor);
        assert!(fee_minor >= 0 && fee.is_none_or(|(account, _)| account != user));
        plan.add(&self.accounts, user, Bucket::Frozen, -amount_minor)?;
        plan.add(&self.accounts, user, Bucket::Available, amount_minor + fee_minor)?;
        let Some((account, fee_minor)) = fee else { return Ok(None) };
        plan.add(&self.accounts, account, Bucket::Available, -fee_minor)?;
        let ledger =
            self.cycles.plan_ledger(&self.accounts, &[(user, fee_minor), (account, -fee_minor)])?;
        plan.add_ledger(&self.accounts, &ledger)?;
        Ok(Some(account))
    }

    /// A deposit the channel never paid: take back what the customer still has; the rest,
    /// already spent downstream, becomes a receivable booked on the currency's risk account
    /// (its `available` and `ledger` both go down by the shortfall, and the customer's `ledger`
    /// is relieved of it), so once everything settles `ledger == available + frozen` holds for
    /// every account, the customer's included. Returns the risk account, if it is booked.
    fn plan_deposit_failed(
        &self,
        plan: &mut Plan,
        channel: AccountId,
        user: AccountId,
        amount_minor: i128,
    ) -> Result<Option<AccountId>, ResultCode> {
        let customer = self.acct(user);
        let clawback_minor = match customer.kind {
            AccountKind::User => amount_minor.min(customer.available_minor.max(0)),
            AccountKind::System | AccountKind::Risk => amount_minor,
        };
        let shortfall_minor = amount_minor - clawback_minor;
        assert!((0..=amount_minor).contains(&clawback_minor), "a clawback within the deposit");
        let risk = if shortfall_minor > 0 {
            let risk = self.risk_accounts[customer.currency.0 as usize];
            Some(risk.ok_or(ResultCode::RiskAccountMissing)?)
        } else {
            None
        };
        self.accounts.available_after_debit(user, clawback_minor)?;
        plan.add(&self.accounts, channel, Bucket::Available, amount_minor)?;
        if clawback_minor > 0 {
            plan.add(&self.accounts, user, Bucket::Available, -clawback_minor)?;
        }
        if let Some(risk) = risk {
            plan.add(&self.accounts, risk, Bucket::Available, -shortfall_minor)?;
            plan.add(&self.accounts, user, Bucket::Ledger, shortfall_minor)?;
            plan.add(&self.accounts, risk, Bucket::Ledger, -shortfall_minor)?;
        }
        Ok(risk)
    }

    pub(crate) fn refund(
        &mut self,
        tx_id: TxId,
        original: TxId,
        amount: Amount,
        plan: &mut Plan,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let (movement, loc) = self.plan_refund(plan, tx_id, original, amount)?;
        plan.frozen_moves(movement.debit, 0);
        // Nothing below can fail.
        self.commit_movement(plan, &movement, out, fx);
        let refunded_minor = self.txs.refunded(original) + movement.amount_minor;
        assert!(refunded_minor <= self.txs.get(loc).amount_minor(), "refunds within the original");
        self.txs.set_refunded(original, refunded_minor);
        if self.txs.get(loc).state == Some(TxState::Settled) {
            self.txs.get_mut(loc).enter(TxState::Reversed);
            fx.transitions.push((original, TxState::Reversed));
        }
        fx.transitions.push((tx_id, TxState::Settled));
        let Movement { debit, credit, amount_minor, .. } = movement;
        Ok(Applied::movement(TxState::Settled, amount_minor, debit, credit).linked(original))
    }

    /// A refund runs (part of) a settled movement backwards.
    fn plan_refund(
        &self,
        plan: &mut Plan,
        tx_id: TxId,
        original: TxId,
        amount: Amount,
    ) -> Result<(Movement, Loc), ResultCode> {
        let loc = self.txs.find(original).ok_or(ResultCode::TxNotFound)?;
        let record = *self.txs.get(loc);
        match record.kind {
            TxKind::Transfer | TxKind::Capture | TxKind::Deposit | TxKind::Withdraw => {}
            TxKind::DefineCurrency
            | TxKind::OpenAccount
            | TxKind::SetAccountStatus
            | TxKind::SetAccountLimits
            | TxKind::Freeze
            | TxKind::Unfreeze
            | TxKind::SettleBegin
            | TxKind::SettleConfirm
            | TxKind::SettleFail
            | TxKind::Refund
            | TxKind::SetFee
            | TxKind::SetSettlementCycle
            | TxKind::Cutover => return Err(ResultCode::NotRefundable),
        }
        if !matches!(record.state, Some(TxState::Settled | TxState::Reversed)) {
            return Err(ResultCode::IllegalTransition);
        }
        let (dr, cr) = (AccountId(record.credit), AccountId(record.debit));
        let amount_minor = self.amount_minor(dr, amount)?;
        assert!(amount_minor > 0 && self.accounts.contains(cr.0), "a refund of a movement");
        if self.txs.refunded(original) + amount_minor > record.amount_minor() {
            return Err(ResultCode::RefundExceedsOriginal);
        }
        match self.acct(dr).status {
            AccountStatus::Active => {}
            AccountStatus::DebitFrozen => return Err(ResultCode::AccountDebitFrozen),
            AccountStatus::Closed => return Err(ResultCode::AccountClosed),
        }
        self.accounts.check_credit(cr)?;
        let dr_available = self.accounts.available_after_debit(dr, amount_minor)?;
        self.clearing.check_exposure(&self.accounts, dr, dr_available)?;
        plan.start(tx_id);
        plan.add(&self.accounts, dr, Bucket::Available, -amount_minor)?;
        plan.add(&self.accounts, cr, Bucket::Available, amount_minor)?;
        // A T+1 side's `ledger` moves through its clearing account at the cutover.
        let ledger =
            self.cycles.plan_ledger(&self.accounts, &[(dr, -amount_minor), (cr, amount_minor)])?;
        plan.add_ledger(&self.accounts, &ledger)?;
        let movement = Movement { debit: dr, credit: cr, amount_minor, daily_minor: 0, fee: None };
        Ok((movement, loc))
    }

    pub(crate) fn cutover(
        &mut self,
        tx_id: TxId,
        business_date: u32,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let plan = self.cycles.plan_cutover(&self.accounts, business_date)?;
        // Nothing below can fail.
        self.cycles.commit_cutover(&mut self.accounts, tx_id, plan, fx);
        Ok(Applied::admin())
    }
}
