//! Money-moving commands. Each handler checks everything first and only then mutates, with
//! nothing left that can fail: both sides of a movement change, or neither does.

use crate::account::in_range;
use crate::command::TxKind;
use crate::currency::to_minor;
use crate::cycle::Cycles;
use crate::holds::Hold;
use crate::ledger::{Applied, Ledger};
use crate::outcome::{Balances, Bucket, Effects, ResultCode};
use crate::txtable::Loc;
use crate::types::{AccountId, AccountKind, AccountNo, Amount, FeeKind, TxId, TxState};

/// The checked amounts of a transfer with a T+1 side.
struct T1Transfer {
    dr: AccountId,
    cr: AccountId,
    amount_minor: i128,
    debit_minor: i128,
    dr_available: i128,
    cr_available: i128,
    fee: Option<(AccountId, i128)>,
}

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

    fn channel(&self, id: AccountId) -> Result<(), ResultCode> {
        match self.acct(id).kind {
            AccountKind::System | AccountKind::Risk => Ok(()),
            AccountKind::User => Err(ResultCode::NotChannelAccount),
        }
    }

    #[inline]
    pub(crate) fn transfer(
        &mut self,
        tx_id: TxId,
        from: &AccountNo,
        to: &AccountNo,
        amount: Amount,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let (dr, cr) = self.pair(from, to)?;
        let amount_minor = self.amount_minor(dr, amount)?;
        // The payer pays the fee on top of the amount; every debit check sees the total.
        let fee = self.clearing.fee_for(&self.accounts, FeeKind::Transfer, dr, cr, amount_minor);
        let debit_minor = amount_minor + fee.map_or(0, |(_, fee_minor)| fee_minor);
        self.check_debit(dr, debit_minor)?;
        self.accounts.check_credit(cr)?;
        let dr_available = self.accounts.available_after_debit(dr, debit_minor)?;
        self.clearing.check_exposure(&self.accounts, dr, dr_available)?;
        let cr_available = in_range(self.acct(cr).available_minor + amount_minor)?;
        if Cycles::any_t1(&self.accounts, dr, cr) {
            let movement =
                T1Transfer { dr, cr, amount_minor, debit_minor, dr_available, cr_available, fee };
            return self.transfer_t1(tx_id, movement, out, fx);
        }
        let dr_ledger = in_range(self.acct(dr).ledger_minor - debit_minor)?;
        let cr_ledger = in_range(self.acct(cr).ledger_minor + amount_minor)?;
        let fee_after = self.fee_after(fee)?;
        // Nothing below can fail. An internal transfer is final at once: `ledger` moves too.
        self.count_debit(dr, debit_minor);
        let debit = self.acct_mut(dr);
        debit.available_minor = dr_available;
        debit.ledger_minor = dr_ledger;
        let credit = self.acct_mut(cr);
        credit.available_minor = cr_available;
        credit.ledger_minor = cr_ledger;
        fx.post(tx_id, dr, Bucket::Available, -debit_minor);
        fx.post(tx_id, cr, Bucket::Available, amount_minor);
        fx.post(tx_id, dr, Bucket::Ledger, -debit_minor);
        fx.post(tx_id, cr, Bucket::Ledger, amount_minor);
        fx.transitions.push((tx_id, TxState::Settled));
        out.push(self.view(dr));
        out.push(self.view(cr));
        self.pay_fee(tx_id, fee, fee_after, out, fx);
        Ok(Applied::movement(TxState::Settled, amount_minor, dr, cr))
    }

    /// A transfer with a T+1 side: `available` moves at once, the T+1 side's `ledger` delta
    /// goes to its clearing account until the cutover (`cycle.rs`).
    fn transfer_t1(
        &mut self,
        tx_id: TxId,
        t: T1Transfer,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let mut deltas = [(t.dr, -t.debit_minor), (t.cr, t.amount_minor), (t.dr, 0)];
        let deltas_len = match t.fee {
            Some(fee) => {
                deltas[2] = fee;
                3
            }
            None => 2,
        };
        let plan = self.cycles.plan_ledger(&self.accounts, &deltas[..deltas_len])?;
        let fee_available = match t.fee {
            Some((account, fee_minor)) => {
                self.accounts.check_credit(account)?;
                Some((account, in_range(self.acct(account).available_minor + fee_minor)?))
            }
            None => None,
        };
        // Nothing below can fail.
        self.count_debit(t.dr, t.debit_minor);
        self.acct_mut(t.dr).available_minor = t.dr_available;
        self.acct_mut(t.cr).available_minor = t.cr_available;
        fx.post(tx_id, t.dr, Bucket::Available, -t.debit_minor);
        fx.post(tx_id, t.cr, Bucket::Available, t.amount_minor);
        if let Some((account, available_minor)) = fee_available {
            self.acct_mut(account).available_minor = available_minor;
            fx.post(tx_id, account, Bucket::Available, deltas[2].1);
        }
        self.cycles.apply_ledger(&mut self.accounts, tx_id, &plan, fx);
        fx.transitions.push((tx_id, TxState::Settled));
        out.push(self.view(t.dr));
        out.push(self.view(t.cr));
        if let Some((account, _)) = fee_available {
            out.push(self.view(account));
        }
        Ok(Applied::movement(TxState::Settled, t.amount_minor, t.dr, t.cr))
    }

    /// The fee account's `(available, ledger)` after receiving `fee`, checked.
    #[inline]
    fn fee_after(&self, fee: Option<(AccountId, i128)>) -> Result<(i128, i128), ResultCode> {
        let Some((account, fee_minor)) = fee else { return Ok((0, 0)) };
        self.accounts.check_credit(account)?;
        let fee_account = self.acct(account);
        Ok((
            in_range(fee_account.available_minor + fee_minor)?,
            in_range(fee_account.ledger_minor + fee_minor)?,
        ))
    }

    /// Credits a fee checked by `fee_after` (cannot fail).
    #[inline]
    fn pay_fee(
        &mut self,
        tx_id: TxId,
        fee: Option<(AccountId, i128)>,
        (available_minor, ledger_minor): (i128, i128),
        out: &mut Balances,
        fx: &mut Effects,
    ) {
        let Some((account, fee_minor)) = fee else { return };
        let fee_account = self.acct_mut(account);
        fee_account.available_minor = available_minor;
        fee_account.ledger_minor = ledger_minor;
        fx.post(tx_id, account, Bucket::Available, fee_minor);
        fx.post(tx_id, account, Bucket::Ledger, fee_minor);
        out.push(self.view(account));
    }

    pub(crate) fn deposit(
        &mut self,
        tx_id: TxId,
        account_no: &AccountNo,
        channel_no: &AccountNo,
        amount: Amount,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let (channel, user) = self.pair(channel_no, account_no)?;
        self.channel(channel)?;
        let amount_minor = self.amount_minor(user, amount)?;
        self.accounts.check_credit(user)?;
        self.accounts.check_credit(channel)?; // a debit-frozen channel still mirrors arriving money
        let user_available = in_range(self.acct(user).available_minor + amount_minor)?;
        let channel_available = self.accounts.available_after_debit(channel, amount_minor)?;
        let user_unsettled =
            self.clearing.unsettled_after_deposit(&self.accounts, user, amount_minor)?;
        // Nothing below can fail. T+0: usable at once; `ledger` waits for settlement, and until
        // then the amount counts as unsettled (exposure, `clearing.rs`).
        if let Some(unsettled_minor) = user_unsettled {
            self.clearing.set_unsettled(&mut self.accounts, user, unsettled_minor);
        }
        self.acct_mut(user).available_minor = user_available;
        self.acct_mut(channel).available_minor = channel_available;
        fx.post(tx_id, channel, Bucket::Available, -amount_minor);
        fx.post(tx_id, user, Bucket::Available, amount_minor);
        fx.transitions.push((tx_id, TxState::PendingSettlement));
        out.push(self.view(user));
        out.push(self.view(channel));
        Ok(Applied::movement(TxState::PendingSettlement, amount_minor, channel, user))
    }

    pub(crate) fn withdraw(
        &mut self,
        tx_id: TxId,
        account_no: &AccountNo,
        channel_no: &AccountNo,
        amount: Amount,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let (user, channel) = self.pair(account_no, channel_no)?;
        self.channel(channel)?;
        let amount_minor = self.amount_minor(user, amount)?;
        // The fee is paid at once, on top of the amount; the amount is held.
        let fee =
            self.clearing.fee_for(&self.accounts, FeeKind::Withdraw, user, channel, amount_minor);
        let fee_minor = fee.map_or(0, |(_, fee_minor)| fee_minor);
        let debit_minor = amount_minor + fee_minor;
        self.check_debit(user, debit_minor)?;
        self.accounts.check_credit(channel)?;
        let user_available = self.accounts.available_after_debit(user, debit_minor)?;
        self.clearing.check_exposure(&self.accounts, user, user_available)?;
        let user_frozen = in_range(self.acct(user).frozen_minor + amount_minor)?;
        let fee_ledger = match fee {
            Some(_) => Some(self.cycles.plan_ledger(&self.accounts, &[(user, -fee_minor)])?),
            None => None,
        };
        let fee_after = self.fee_after(fee)?;
        // Nothing below can fail. The money is held until the channel confirms.
        self.count_debit(user, debit_minor);
        let account = self.acct_mut(user);
        account.available_minor = user_available;
        account.frozen_minor = user_frozen;
        fx.post(tx_id, user, Bucket::Available, -debit_minor);
        fx.post(tx_id, user, Bucket::Frozen, amount_minor);
        if let Some(plan) = &fee_ledger {
            self.cycles.apply_ledger(&mut self.accounts, tx_id, plan, fx);
        }
        fx.transitions.push((tx_id, TxState::PendingSettlement));
        out.push(self.view(user));
        out.push(self.view(channel));
        self.pay_fee(tx_id, fee, fee_after, out, fx);
        if let Some(charged) = fee {
            self.clearing.keep_withdrawal_fee(tx_id, charged);
        }
        Ok(Applied::movement(TxState::PendingSettlement, amount_minor, user, channel))
    }

    pub(crate) fn freeze(
        &mut self,
        tx_id: TxId,
        account_no: &AccountNo,
        amount: Amount,
        expires_ns: Option<u64>,
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
        let frozen = in_range(self.acct(id).frozen_minor + amount_minor)?;
        // Nothing below can fail.
        self.count_debit(id, amount_minor);
        let account = self.acct_mut(id);
        account.available_minor = available;
        account.frozen_minor = frozen;
        let hold = Hold {
            account: id,
            remaining_minor: amount_minor,
            captured_minor: 0,
            expires_ns,
            day: self.day(),
        };
        self.holds.insert(tx_id, hold);
        fx.post(tx_id, id, Bucket::Available, -amount_minor);
        fx.post(tx_id, id, Bucket::Frozen, amount_minor);
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
        self.holds.get(hold_id).copied().ok_or(ResultCode::HoldReleased)
    }

    pub(crate) fn unfreeze(
        &mut self,
        hold_id: TxId,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let hold = self.active_hold(hold_id)?;
        // Nothing below can fail.
        let account = self.release_hold(hold_id, fx);
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
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let hold = self.active_hold(hold_id)?;
        let (payer, payee) = (hold.account, self.find_account(to)?);
        if payer == payee {
            return Err(ResultCode::SameAccount);
        }
        if self.acct(payer).currency != self.acct(payee).currency {
            return Err(ResultCode::CurrencyMismatch);
        }
        let amount_minor = self.amount_minor(payer, amount)?;
        // The fee comes out of the hold too, on top of the captured amount.
        let fee =
            self.clearing.fee_for(&self.accounts, FeeKind::Capture, payer, payee, amount_minor);
        let debit_minor = amount_minor + fee.map_or(0, |(_, fee_minor)| fee_minor);
        if debit_minor > hold.remaining_minor {
            return Err(ResultCode::HoldInsufficient);
        }
        // The hold already passed the risk checks; a debit freeze since then still stops it.
        if self.acct(payer).status != crate::types::AccountStatus::Active {
            return Err(ResultCode::AccountDebitFrozen);
        }
        self.accounts.check_credit(payee)?;
        let payee_available = in_range(self.acct(payee).available_minor + amount_minor)?;
        // A T+1 side's `ledger` moves through its clearing account at the cutover.
        let ledger = self
            .cycles
            .plan_ledger(&self.accounts, &[(payer, -debit_minor), (payee, amount_minor)])?;
        let fee_after = self.fee_after(fee)?;
        // Nothing below can fail.
        self.acct_mut(payer).frozen_minor -= debit_minor;
        self.acct_mut(payee).available_minor = payee_available;
        fx.post(tx_id, payer, Bucket::Frozen, -debit_minor);
        fx.post(tx_id, payee, Bucket::Available, amount_minor);
        self.cycles.apply_ledger(&mut self.accounts, tx_id, &ledger, fx);
        if self.holds.capture(hold_id, debit_minor) == 0 {
            self.release_hold(hold_id, fx);
        }
        fx.transitions.push((tx_id, TxState::Settled));
        out.push(self.view(payer));
        out.push(self.view(payee));
        self.pay_fee(tx_id, fee, fee_after, out, fx);
        Ok(Applied::movement(TxState::Settled, amount_minor, payer, payee).linked(hold_id))
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
        self.enter_target(target, loc, TxState::Settling, fx);
        out.push(self.view(debit));
        out.push(self.view(credit));
        Ok(Applied { debit: debit.0, credit: credit.0, ..Applied::admin() }.linked(target))
    }

    pub(crate) fn settle_confirm(
        &mut self,
        target: TxId,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let loc = self.settlement_target(target, TxState::Settled)?;
        let (debit, credit, amount_minor, kind) = self.target_accounts(loc);
        let debit_ledger = in_range(self.acct(debit).ledger_minor - amount_minor)?;
        let credit_ledger = in_range(self.acct(credit).ledger_minor + amount_minor)?;
        if kind == TxKind::Withdraw {
            // The held money leaves the customer for the channel.
            let channel_available = in_range(self.acct(credit).available_minor + amount_minor)?;
            let user = self.acct_mut(debit);
            user.frozen_minor -= amount_minor;
            assert!(user.frozen_minor >= 0, "withdrawal settled more than was frozen");
            self.acct_mut(credit).available_minor = channel_available;
            fx.post(target, debit, Bucket::Frozen, -amount_minor);
            fx.post(target, credit, Bucket::Available, amount_minor);
        }
        if kind == TxKind::Deposit {
            self.clearing.deposit_finished(&mut self.accounts, credit, amount_minor);
        }
        // A settled withdrawal keeps its fee.
        self.clearing.forget_withdrawal_fee(target);
        // The channel is the debit of a deposit and the credit of a withdrawal.
        if kind == TxKind::Deposit {
            self.cycles.count_settlement(debit, amount_minor, true);
        } else {
            self.cycles.count_settlement(credit, amount_minor, false);
        }
        // Nothing below can fail: `ledger` catches up with what was made available.
        self.acct_mut(debit).ledger_minor = debit_ledger;
        self.acct_mut(credit).ledger_minor = credit_ledger;
        fx.post(target, debit, Bucket::Ledger, -amount_minor);
        fx.post(target, credit, Bucket::Ledger, amount_minor);
        self.enter_target(target, loc, TxState::Settled, fx);
        out.push(self.view(debit));
        out.push(self.view(credit));
        Ok(Applied { debit: debit.0, credit: credit.0, ..Applied::admin() }.linked(target))
    }

    pub(crate) fn settle_fail(
        &mut self,
        target: TxId,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
        let loc = self.settlement_target(target, TxState::Failed)?;
        let (debit, credit, amount_minor, kind) = self.target_accounts(loc);
        match kind {
            TxKind::Withdraw => {
                // Release the hold back to the customer, and give the fee back.
                let fee = self.clearing.withdrawal_fee(target);
                let fee_minor = fee.map_or(0, |(_, fee_minor)| fee_minor);
                let available =
                    in_range(self.acct(debit).available_minor + amount_minor + fee_minor)?;
                let fee_back = match fee {
                    Some((account, fee_minor)) => Some((
                        account,
                        in_range(self.acct(account).available_minor - fee_minor)?,
                        self.cycles.plan_ledger(
                            &self.accounts,
                            &[(debit, fee_minor), (account, -fee_minor)],
                        )?,
                    )),
                    None => None,
                };
                // Nothing below can fail.
                let user = self.acct_mut(debit);
                user.frozen_minor -= amount_minor;
                user.available_minor = available;
                assert!(user.frozen_minor >= 0, "withdrawal released more than was frozen");
                fx.post(target, debit, Bucket::Frozen, -amount_minor);
                fx.post(target, debit, Bucket::Available, amount_minor + fee_minor);
                out.push(self.view(debit));
                out.push(self.view(credit));
                if let Some((account, fee_available, plan)) = fee_back {
                    self.clearing.forget_withdrawal_fee(target);
                    self.acct_mut(account).available_minor = fee_available;
                    fx.post(target, account, Bucket::Available, -fee_minor);
                    self.cycles.apply_ledger(&mut self.accounts, target, &plan, fx);
                    out.push(self.view(account));
                }
            }
            TxKind::Deposit => self.fail_deposit(target, debit, credit, amount_minor, out, fx)?,
            _ => unreachable!("settlement_target admits deposits and withdrawals only"),
        }
        self.enter_target(target, loc, TxState::Failed, fx);
        Ok(Applied { debit: debit.0, credit: credit.0, ..Applied::admin() }.linked(target))
    }

    /// A deposit the channel never paid: take back what the customer still has; the rest,
    /// already spent downstream, becomes a receivable booked on the currency's risk account
    /// (its `available` and `ledger` both go down by the shortfall, and the customer's `ledger`
    /// is relieved of it), so once everything settles `ledger == available + frozen` holds for
    /// every account, the customer's included.
    fn fail_deposit(
        &mut self,
        target: TxId,
        channel: AccountId,
        user: AccountId,
        amount_minor: i128,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<(), ResultCode> {
        let customer = self.acct(user);
        let clawback_minor = match customer.kind {
            AccountKind::User => amount_minor.min(customer.available_minor.max(0)),
            AccountKind::System | AccountKind::Risk => amount_minor,
        };
        let shortfall_minor = amount_minor - clawback_minor;
        let risk = if shortfall_minor > 0 {
            let risk = self.risk_accounts[customer.currency.0 as usize];
            Some(risk.ok_or(ResultCode::RiskAccountMissing)?)
        } else {
            None
        };
        let user_available = self.accounts.available_after_debit(user, clawback_minor)?;
        let user_ledger = in_range(self.acct(user).ledger_minor + shortfall_minor)?;
        let channel_available = in_range(self.acct(channel).available_minor + amount_minor)?;
        let risk_after = match risk {
            Some(risk) => {
                let account = self.acct(risk);
                let available = in_range(account.available_minor - shortfall_minor)?;
                Some((risk, available, in_range(account.ledger_minor - shortfall_minor)?))
            }
            None => None,
        };
        // Nothing below can fail.
        self.clearing.deposit_finished(&mut self.accounts, user, amount_minor);
        self.acct_mut(user).available_minor = user_available;
        self.acct_mut(channel).available_minor = channel_available;
        fx.post(target, channel, Bucket::Available, amount_minor);
        if clawback_minor > 0 {
            fx.post(target, user, Bucket::Available, -clawback_minor);
        }
        if let Some((risk, risk_available, risk_ledger)) = risk_after {
            self.acct_mut(user).ledger_minor = user_ledger;
            let account = self.acct_mut(risk);
            account.available_minor = risk_available;
            account.ledger_minor = risk_ledger;
            fx.post(target, risk, Bucket::Available, -shortfall_minor);
            fx.post(target, user, Bucket::Ledger, shortfall_minor);
            fx.post(target, risk, Bucket::Ledger, -shortfall_minor);
        }
        out.push(self.view(user));
        out.push(self.view(channel));
        if let Some((risk, _, _)) = risk_after {
            out.push(self.view(risk));
        }
        Ok(())
    }

    pub(crate) fn refund(
        &mut self,
        tx_id: TxId,
        original: TxId,
        amount: Amount,
        out: &mut Balances,
        fx: &mut Effects,
    ) -> Result<Applied, ResultCode> {
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
        // The compensation runs the original movement backwards.
        let (dr, cr) = (AccountId(record.credit), AccountId(record.debit));
        let amount_minor = self.amount_minor(dr, amount)?;
        let refunded_before = self.txs.refunded(original);
        if refunded_before + amount_minor > record.amount_minor() {
            return Err(ResultCode::RefundExceedsOriginal);
        }
        match self.acct(dr).status {
            crate::types::AccountStatus::Active => {}
            crate::types::AccountStatus::DebitFrozen => return Err(ResultCode::AccountDebitFrozen),
            crate::types::AccountStatus::Closed => return Err(ResultCode::AccountClosed),
        }
        self.accounts.check_credit(cr)?;
        let dr_available = self.accounts.available_after_debit(dr, amount_minor)?;
        self.clearing.check_exposure(&self.accounts, dr, dr_available)?;
        let cr_available = in_range(self.acct(cr).available_minor + amount_minor)?;
        // A T+1 side's `ledger` moves through its clearing account at the cutover.
        let ledger =
            self.cycles.plan_ledger(&self.accounts, &[(dr, -amount_minor), (cr, amount_minor)])?;
        // Nothing below can fail.
        self.acct_mut(dr).available_minor = dr_available;
        self.acct_mut(cr).available_minor = cr_available;
        fx.post(tx_id, dr, Bucket::Available, -amount_minor);
        fx.post(tx_id, cr, Bucket::Available, amount_minor);
        self.cycles.apply_ledger(&mut self.accounts, tx_id, &ledger, fx);
        self.txs.set_refunded(original, refunded_before + amount_minor);
        if record.state == Some(TxState::Settled) {
            self.txs.get_mut(loc).enter(TxState::Reversed);
            fx.transitions.push((original, TxState::Reversed));
        }
        fx.transitions.push((tx_id, TxState::Settled));
        out.push(self.view(dr));
        out.push(self.view(cr));
        Ok(Applied::movement(TxState::Settled, amount_minor, dr, cr).linked(original))
    }
}

impl Ledger {
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
