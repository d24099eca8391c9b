//! The ledger: the parts composed (accounts, transaction table, holds, clearing, cycles) plus
//! the reference data and the engine's notion of now, with the few helpers that span parts.
//! The command handlers (`ops.rs`, `admin.rs`) are written against it; `Engine` wraps it.
//!
//! Each part owns its fields and checks its own invariants; `Ledger::check` adds the ones
//! that span parts (conservation, and `frozen` = holds + pending withdrawals per account).

use crate::account::{Account, Accounts};
use crate::clearing::Clearing;
use crate::command::TxKind;
use crate::currency::{CurrencyDef, BUILTIN_CURRENCIES};
use crate::cycle::Cycles;
use crate::holds::Holds;
use crate::limits::{NS_PER_DAY, TX_RETAINED_DEFAULT};
use crate::outcome::{BalanceView, Effects, ResultCode};
use crate::plan::Plan;
use crate::txtable::{Loc, TxTable, NO_ACCOUNT};
use crate::types::{AccountId, AccountNo, CurrencyCode, CurrencyId, TxId, TxState};

/// Settings fixed when a ledger is created; they are part of the state (and of snapshots).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EngineConfig {
    /// How many transactions are remembered (idempotency, queries, refunds). Open
    /// transactions are remembered until they finish, however old.
    pub tx_retained: u32,
    /// Seed of the index hashes and of the retry digest, chosen once per ledger (it keeps
    /// clients from steering their `tx_id`s into one probe chain, or from computing two
    /// commands with one digest). Replay needs the same seed, so it is part of the state.
    pub hash_seed: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { tx_retained: TX_RETAINED_DEFAULT, hash_seed: 0x5eed_1ed6_e000_0001 }
    }
}

/// What a successful handler reports, to be remembered with the `tx_id`.
pub(crate) struct Applied {
    pub state: Option<TxState>,
    pub amount_minor: i128,
    pub debit: u32,
    pub credit: u32,
    pub link: TxId,
}

impl Applied {
    pub fn admin() -> Applied {
        Applied {
            state: None,
            amount_minor: 0,
            debit: NO_ACCOUNT,
            credit: NO_ACCOUNT,
            link: TxId(0),
        }
    }

    /// An admin command on one account.
    pub fn on_account(id: AccountId) -> Applied {
        Applied { debit: id.0, ..Applied::admin() }
    }

    pub fn movement(
        state: TxState,
        amount_minor: i128,
        debit: AccountId,
        credit: AccountId,
    ) -> Applied {
        Applied {
            state: Some(state),
            amount_minor,
            debit: debit.0,
            credit: credit.0,
            link: TxId(0),
        }
    }

    /// The same, acting on transaction `link`.
    pub fn linked(self, link: TxId) -> Applied {
        Applied { link, ..self }
    }
}

/// All ledger state: the parts and the reference data.
pub(crate) struct Ledger {
    pub config: EngineConfig,
    pub currencies: Vec<CurrencyDef>,
    /// Per currency: its risk account, if one was opened.
    pub risk_accounts: Vec<Option<AccountId>>,
    pub accounts: Accounts,
    pub txs: TxTable,
    pub holds: Holds,
    pub clearing: Clearing,
    pub cycles: Cycles,
    /// The latest command timestamp seen: time never goes backwards inside the engine.
    pub now_ns: u64,
    /// Deposits and withdrawals `PendingSettlement` or `Settling` (not encoded: recounted
    /// from the records on decode).
    pub pending_settlements: u32,
}

impl Ledger {
    /// An empty ledger with the built-in currencies.
    pub fn new(config: EngineConfig) -> Ledger {
        let currencies: Vec<CurrencyDef> = BUILTIN_CURRENCIES
            .iter()
            .map(|&(code, scale)| CurrencyDef {
                code: CurrencyCode::new(code).expect("built-in currency codes are valid"),
                scale,
            })
            .collect();
        Ledger {
            config,
            risk_accounts: vec![None; currencies.len()],
            clearing: Clearing::new(currencies.len(), config.hash_seed),
            currencies,
            accounts: Accounts::new(config.hash_seed),
            txs: TxTable::new(config.tx_retained, config.hash_seed),
            holds: Holds::new(config.hash_seed),
            cycles: Cycles::new(),
            now_ns: 0,
            pending_settlements: 0,
        }
    }

    // ----- helpers shared by the command handlers -----

    #[inline]
    pub fn find_account(&self, account_no: &AccountNo) -> Result<AccountId, ResultCode> {
        self.accounts.find_or_reject(account_no)
    }

    #[inline(always)]
    pub fn acct(&self, id: AccountId) -> &Account {
        self.accounts.get(id)
    }

    #[inline(always)]
    pub fn acct_mut(&mut self, id: AccountId) -> &mut Account {
        self.accounts.get_mut(id)
    }

    pub fn scale(&self, currency: CurrencyId) -> u8 {
        self.currencies[currency.0 as usize].scale
    }

    /// A currency's definition.
    pub fn currency(&self, code: CurrencyCode) -> Option<CurrencyDef> {
        self.currencies.iter().copied().find(|c| c.code == code)
    }

    /// The index of a currency.
    pub fn currency_index(&self, code: CurrencyCode) -> Result<usize, ResultCode> {
        self.currencies.iter().position(|c| c.code == code).ok_or(ResultCode::CurrencyUnknown)
    }

    #[inline(always)]
    pub fn view(&self, id: AccountId) -> BalanceView {
        self.accounts.view(id)
    }

    pub fn day(&self) -> u32 {
        (self.now_ns / NS_PER_DAY) as u32
    }

    /// Status, per-transaction and daily checks for money leaving `id`.
    #[inline]
    pub fn check_debit(&self, id: AccountId, amount_minor: i128) -> Result<(), ResultCode> {
        self.accounts.check_debit(id, amount_minor, self.day())
    }

    /// Counts an outflow against the daily limit (after every check passed).
    #[inline]
    pub fn count_debit(&mut self, id: AccountId, amount_minor: i128) {
        assert!(amount_minor > 0, "an outflow is positive");
        let day = self.day();
        self.accounts.count_debit(id, amount_minor, day);
    }

    /// Releases what is left of a hold to `available`. The hold ends `Settled` when something
    /// was captured from it, `Failed` otherwise. Cannot fail.
    pub fn release_hold(&mut self, plan: &mut Plan, hold_id: TxId, fx: &mut Effects) -> AccountId {
        let hold = self.holds.remove(hold_id);
        let remaining = hold.remaining_minor;
        assert!(remaining >= 0 && self.accounts.contains(hold.account.0));
        let day = self.day();
        if hold.day == day {
            self.accounts.uncount_debit(hold.account, remaining, day);
        }
        if remaining > 0 {
            plan.start(hold_id);
            plan.add_release(&self.accounts, hold.account, remaining);
            plan.frozen_moves(hold.account, -remaining);
            plan.commit(&mut self.accounts, &mut self.cycles, fx);
        }
        self.finish_hold(hold_id, hold.captured_minor > 0, fx);
        assert!(self.holds.get(hold_id).is_none(), "a released hold is gone");
        hold.account
    }

    /// Moves a hold's record to its end state.
    fn finish_hold(&mut self, hold_id: TxId, captured: bool, fx: &mut Effects) {
        let loc = self.txs.find(hold_id).expect("an active hold's record is remembered (pinned)");
        let record = self.txs.get_mut(loc);
        assert!(record.kind == TxKind::Freeze && record.state == Some(TxState::Frozen));
        let end = if captured { TxState::Settled } else { TxState::Failed };
        if captured {
            record.enter(TxState::PendingSettlement);
            record.enter(TxState::Settling);
        }
        record.enter(end);
        fx.transitions.push((hold_id, end));
        self.txs.forget_if_finished(loc);
    }

    /// Moves the record at `loc` to `state` (a checked, legal transition) and forgets it if it
    /// is pinned and now finished.
    pub fn enter_target(&mut self, target: TxId, loc: Loc, state: TxState, fx: &mut Effects) {
        let record = self.txs.get_mut(loc);
        assert!(record.tx_id() == target, "the target's own record");
        record.enter(state);
        fx.transitions.push((target, state));
        self.txs.forget_if_finished(loc);
    }

    /// Releases the holds due at `now_ns`, earliest first, at most `expiries_max` of them.
    pub fn expire_holds(&mut self, plan: &mut Plan, expiries_max: u32, fx: &mut Effects) {
        for _ in 0..expiries_max {
            let Some(hold_id) = self.holds.next_due(self.now_ns) else { break };
            let holds_before = self.holds.len();
            self.release_hold(plan, hold_id, fx);
            assert_eq!(self.holds.len() + 1, holds_before, "each expiry releases one hold");
        }
    }

    /// Checks every invariant over the whole state (O(accounts + transactions)); each part
    /// checks its own, this adds the ones across parts. Never panics, whatever the state.
    pub fn check(&self) -> Result<(), String> {
        self.check_structure()?;
        self.check_conservation()
    }

    /// Money conserved per currency: `Σ(available + frozen) = 0` and `Σ ledger = 0` (after
    /// `check_structure`, which bounds every balance).
    pub(crate) fn check_conservation(&self) -> Result<(), String> {
        // Checked sums: a decoded state may hold balances no command could make.
        let mut totals = vec![Some((0i128, 0i128)); self.currencies.len()];
        for account in self.accounts.as_slice() {
            let total = &mut totals[account.currency.0 as usize];
            *total = total.and_then(|(assets, ledger)| {
                let assets = assets.checked_add(account.available_minor + account.frozen_minor)?;
                Some((assets, ledger.checked_add(account.ledger_minor)?))
            });
        }
        if let Some(index) = totals.iter().position(|&total| total != Some((0, 0))) {
            let code = self.currencies[index].code;
            return Err(format!("{code} not conserved: {:?}", totals[index]));
        }
        Ok(())
    }

    /// Every invariant but conservation: each part's own, and `frozen` = holds + pending
    /// withdrawals per account. A state that passes it cannot make the engine misbehave;
    /// `decode_state_for_audit` requires it (and `decode_state` conservation too), so that
    /// `ledger-replay reconcile` can read a snapshot whose sums are off and report it.
    pub fn check_structure(&self) -> Result<(), String> {
        self.check_reference_data()?;
        self.accounts.check()?;
        self.txs.check(self.accounts.len())?;
        let mut frozen_expected = vec![0i128; self.accounts.len()];
        self.holds.check(&mut frozen_expected)?;
        let mut pending_settlements = 0;
        for record in self.txs.iter_canonical() {
            let pending =
                matches!(record.state, Some(TxState::PendingSettlement | TxState::Settling));
            let external = matches!(record.kind, TxKind::Deposit | TxKind::Withdraw);
            pending_settlements += u32::from(pending && external);
            if record.kind == TxKind::Withdraw && pending {
                let Some(frozen) = frozen_expected.get_mut(record.debit as usize) else {
                    return Err(format!("withdrawal {:#x}: unknown account", record.tx_id().0));
                };
                *frozen += record.amount_minor();
            }
        }
        if pending_settlements != self.pending_settlements {
            let counted = self.pending_settlements;
            return Err(format!("{pending_settlements} settlements pending, {counted} counted"));
        }
        for (account, expected) in self.accounts.as_slice().iter().zip(&frozen_expected) {
            if account.frozen_minor != *expected {
                return Err(format!(
                    "account {} frozen {} but holds and withdrawals total {expected}",
                    account.account_no, account.frozen_minor
                ));
            }
        }
        for (hold_id, _) in self.holds.sorted() {
            let is_freeze =
                self.txs.find(hold_id).map(|loc| self.txs.get(loc)).is_some_and(|record| {
                    record.kind == TxKind::Freeze && record.state == Some(TxState::Frozen)
                });
            if !is_freeze {
                return Err(format!("hold {:#x} without an open freeze", hold_id.0));
            }
        }
        self.clearing.check(&self.accounts, &self.txs)?;
        self.cycles.check(&self.accounts)
    }

    /// Counts the deposits and withdrawals pending settlement (a decoded state).
    pub fn recount_pending_settlements(&mut self) {
        let pending = self.txs.iter_canonical().filter(|record| {
            matches!(record.kind, TxKind::Deposit | TxKind::Withdraw)
                && matches!(record.state, Some(TxState::PendingSettlement | TxState::Settling))
        });
        self.pending_settlements = pending.count() as u32;
    }

    /// Currencies and risk accounts: every account's currency is defined, every risk account
    /// is a risk account of its currency.
    fn check_reference_data(&self) -> Result<(), String> {
        if self.risk_accounts.len() != self.currencies.len() {
            return Err("one risk slot per currency".to_string());
        }
        for account in self.accounts.as_slice() {
            if account.currency.0 as usize >= self.currencies.len() {
                return Err(format!("account {}: unknown currency", account.account_no));
            }
        }
        for (index, risk) in self.risk_accounts.iter().enumerate() {
            let Some(risk) = risk else { continue };
            let valid = self.accounts.contains(risk.0) && {
                let account = self.accounts.get(*risk);
                account.kind == crate::types::AccountKind::Risk
                    && account.currency.0 as usize == index
            };
            if !valid {
                return Err(format!("risk account of currency {index} invalid"));
            }
        }
        Ok(())
    }
}
