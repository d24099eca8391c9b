//! A movement's plan: every balance a command will change, with its checked new value, and
//! the posting that records it. Handlers fill a plan while they check (`add` refuses a
//! balance out of range); `commit` then writes the balances and the postings together and
//! cannot fail, so a balance changes exactly when a posting says so.
//!
//! The engine owns exactly one `Plan` and hands it to each handler, which `start`s it, fills
//! it in place and commits it (a plan is never built on the stack and moved: at 512 bytes the
//! copies cost more than the checks). One plan means plans never interleave: `start` drops
//! whatever a rejected command left, and `commit` empties it.

use crate::account::{in_range, Accounts};
use crate::cycle::{Cycles, LedgerPlan};
use crate::limits::{POSTINGS_PER_COMMAND_MAX, TOUCHED_ACCOUNTS_MAX};
use crate::outcome::{Bucket, Effects, ResultCode};
use crate::types::{AccountId, AccountKind, TxId};

/// One planned posting and the balance it leaves.
#[derive(Clone, Copy)]
struct Planned {
    account: AccountId,
    bucket: Bucket,
    delta_minor: i128,
    after_minor: i128,
}

/// The postings of one command, checked, not yet applied.
pub(crate) struct Plan {
    tx_id: TxId,
    postings: [Planned; POSTINGS_PER_COMMAND_MAX],
    postings_len: usize,
    /// New pending amounts of T+1 accounts.
    pending: [(AccountId, i128); TOUCHED_ACCOUNTS_MAX],
    pending_len: usize,
    /// What the handler declared `frozen` moves by (`frozen_moves`): (account, delta).
    frozen: Option<(AccountId, i128)>,
}

impl Plan {
    /// The engine's one plan, empty.
    pub fn new() -> Plan {
        let none = Planned {
            account: AccountId(0),
            bucket: Bucket::Available,
            delta_minor: 0,
            after_minor: 0,
        };
        Plan {
            tx_id: TxId(0),
            postings: [none; POSTINGS_PER_COMMAND_MAX],
            postings_len: 0,
            pending: [(AccountId(0), 0); TOUCHED_ACCOUNTS_MAX],
            pending_len: 0,
            frozen: None,
        }
    }

    /// Starts a new plan whose postings will carry `tx_id`, dropping whatever was planned
    /// before (by a command that was then rejected).
    #[inline(always)]
    pub fn start(&mut self, tx_id: TxId) {
        self.tx_id = tx_id;
        self.postings_len = 0;
        self.pending_len = 0;
        self.frozen = None;
    }

    /// Plans `delta_minor` on `bucket` of `account` and returns the balance it leaves (the
    /// account's balance plus everything planned on it so far), refused when out of range.
    #[inline(always)]
    pub fn add(
        &mut self,
        accounts: &Accounts,
        account: AccountId,
        bucket: Bucket,
        delta_minor: i128,
    ) -> Result<i128, ResultCode> {
        let len = self.postings_len;
        assert!(len < POSTINGS_PER_COMMAND_MAX, "postings of one command");
        let before_minor = match self.postings[..len]
            .iter()
            .rev()
            .find(|planned| planned.account == account && planned.bucket == bucket)
        {
            Some(planned) => planned.after_minor,
            None => {
                let balances = accounts.get(account);
                match bucket {
                    Bucket::Available => balances.available_minor,
                    Bucket::Frozen => balances.frozen_minor,
                    Bucket::Ledger => balances.ledger_minor,
                }
            }
        };
        assert!(delta_minor != 0, "a posting moves something");
        let after_minor = in_range(before_minor + delta_minor)?;
        self.postings[len] = Planned { account, bucket, delta_minor, after_minor };
        self.postings_len = len + 1;
        Ok(after_minor)
    }

    /// Plans the release of `remaining_minor` held on `account` back to `available`. Not
    /// range-checked, so a release never fails: it gives back what its freeze took, and a
    /// balance stays within `2 × BALANCE_MINOR_MAX` (see `Accounts::check`).
    pub fn add_release(&mut self, accounts: &Accounts, account: AccountId, remaining_minor: i128) {
        assert!(remaining_minor > 0, "a release gives something back");
        let balances = accounts.get(account);
        let frozen_minor = balances.frozen_minor - remaining_minor;
        assert!(frozen_minor >= 0, "a release gives back at most what is frozen");
        let available_minor = balances.available_minor + remaining_minor;
        assert!(self.postings_len == 0, "a release is a plan of its own");
        self.postings[0] = Planned {
            account,
            bucket: Bucket::Frozen,
            delta_minor: -remaining_minor,
            after_minor: frozen_minor,
        };
        self.postings[1] = Planned {
            account,
            bucket: Bucket::Available,
            delta_minor: remaining_minor,
            after_minor: available_minor,
        };
        self.postings_len = 2;
    }

    /// Adds the `ledger` side planned by `Cycles::plan_ledger` (T+1 deltas redirected to
    /// clearing accounts; a merged delta of zero posts nothing).
    #[inline]
    pub fn add_ledger(
        &mut self,
        accounts: &Accounts,
        ledger: &LedgerPlan,
    ) -> Result<(), ResultCode> {
        for &(account, delta_minor) in ledger.moves() {
            if delta_minor != 0 {
                self.add(accounts, account, Bucket::Ledger, delta_minor)?;
            }
        }
        assert!(self.pending_len + ledger.pending().len() <= TOUCHED_ACCOUNTS_MAX);
        for &pending in ledger.pending() {
            self.pending[self.pending_len] = pending;
            self.pending_len += 1;
        }
        Ok(())
    }

    /// Declares that the only `frozen` postings are `delta_minor` on `account`: `frozen` moves
    /// exactly with the holds and pending withdrawals (`frozen == holds + withdrawals`), so the
    /// handler says by how much its holds and withdrawals moved. `commit` asserts it (in
    /// release) while it writes the postings, instead of one more pass over them.
    #[inline(always)]
    pub fn frozen_moves(&mut self, account: AccountId, delta_minor: i128) {
        self.frozen = Some((account, delta_minor));
    }

    /// Writes every planned balance and its posting, and empties the plan (committing it again
    /// writes nothing). Cannot fail: every value was checked.
    #[inline(always)]
    pub fn commit(&mut self, accounts: &mut Accounts, cycles: &mut Cycles, fx: &mut Effects) {
        let postings_len = std::mem::take(&mut self.postings_len);
        let pending_len = std::mem::take(&mut self.pending_len);
        let frozen = self.frozen.take();
        let (frozen_account, frozen_minor) = frozen.expect("a plan declares what frozen moves");
        let (mut assets, mut ledger, mut frozen_sum, mut frozen_elsewhere) = (0, 0, 0, false);
        for planned in &self.postings[..postings_len] {
            let account = accounts.get_mut(planned.account);
            let balance = match planned.bucket {
                Bucket::Available => {
                    assets += planned.delta_minor;
                    &mut account.available_minor
                }
                Bucket::Frozen => {
                    assets += planned.delta_minor;
                    if planned.account == frozen_account {
                        frozen_sum += planned.delta_minor;
                    } else {
                        frozen_elsewhere = true;
                    }
                    &mut account.frozen_minor
                }
                Bucket::Ledger => {
                    ledger += planned.delta_minor;
                    &mut account.ledger_minor
                }
            };
            // The balance is the one `add` read: balances are written only here and by the
            // cutover (which plans nothing), the engine has one plan, and its handlers start,
            // fill and commit it with no other commit in between; a balance planned twice
            // chains (`add` reads the earlier posting's `after`) and is written in that order.
            // So this cannot fail in release, where it would cost a sixth of the commit.
            debug_assert_eq!(*balance + planned.delta_minor, planned.after_minor, "plan is stale");
            *balance = planned.after_minor;
            // On in release: customers never go negative, whatever was planned.
            let negative = planned.after_minor < 0 && planned.bucket != Bucket::Ledger;
            assert!(!(negative && account.kind == AccountKind::User), "user balance below zero");
            fx.post(self.tx_id, planned.account, planned.bucket, planned.delta_minor);
        }
        // On in release, summed as they are posted: a plan's postings balance (`Engine::apply`
        // checks the same over all of a command's postings in debug builds only).
        assert!(assets == 0 && ledger == 0, "a plan's postings balance");
        let frozen_exact = frozen_sum == frozen_minor && !frozen_elsewhere;
        assert!(frozen_exact, "frozen moves with its holds only");
        for &(account, pending_minor) in &self.pending[..pending_len] {
            cycles.set_pending(account, pending_minor);
        }
    }
}
