//! The shadow ledger: balances rebuilt from the postings alone, by code that shares nothing with
//! the engine's balance arithmetic. Reconciliation compares it with a snapshot, with the
//! replayed engine and with a running server; a difference means a balance and its postings
//! disagree somewhere, and is reported by account.

use engine::{AccountId, AccountNo, Bucket, CommandBody, Engine, ResultCode};

use crate::Step;

/// One account as the postings say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShadowAccount {
    /// Its key.
    pub account_no: AccountNo,
    /// Sum of `Available` postings.
    pub available_minor: i128,
    /// Sum of `Frozen` postings.
    pub frozen_minor: i128,
    /// Sum of `Ledger` postings.
    pub ledger_minor: i128,
}

/// Balances per account, from postings.
#[derive(Default, Debug)]
pub struct Shadow {
    /// Indexed by `AccountId` (ids are dense, assigned in opening order).
    accounts: Vec<Option<ShadowAccount>>,
}

/// One difference between the shadow ledger and another view of the same ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The account.
    pub account_no: String,
    /// Which balance (`available`, `frozen`, `ledger`, or `account` when one side lacks it).
    pub field: &'static str,
    /// What the postings say.
    pub shadow_minor: i128,
    /// What the other side says.
    pub other_minor: i128,
}

impl Shadow {
    /// Opening balances taken from an engine (when the journal no longer starts at genesis).
    pub fn from_engine(engine: &Engine) -> Shadow {
        let mut shadow = Shadow::default();
        for index in 0..engine.account_count() {
            let view = engine.account_by_id(AccountId(index));
            shadow.put(
                view.id,
                ShadowAccount {
                    account_no: view.account_no,
                    available_minor: view.available_minor,
                    frozen_minor: view.frozen_minor,
                    ledger_minor: view.ledger_minor,
                },
            );
        }
        shadow
    }

    /// Adds one step: a newly opened account, and every posting.
    pub fn apply(&mut self, step: &Step<'_>) {
        if let CommandBody::OpenAccount { account_no, .. } = step.command.body {
            if step.outcome.result == ResultCode::Ok && !step.outcome.duplicate {
                if let Some(view) = step.outcome.balances.as_slice().first() {
                    self.put(
                        view.account,
                        ShadowAccount {
                            account_no,
                            available_minor: 0,
                            frozen_minor: 0,
                            ledger_minor: 0,
                        },
                    );
                }
            }
        }
        for entry in &step.effects.entries {
            let Some(Some(account)) = self.accounts.get_mut(entry.account.0 as usize) else {
                continue; // reported by `compare` as a missing account
            };
            let field = match entry.bucket {
                Bucket::Available => &mut account.available_minor,
                Bucket::Frozen => &mut account.frozen_minor,
                Bucket::Ledger => &mut account.ledger_minor,
            };
            *field += entry.delta_minor;
        }
    }

    fn put(&mut self, id: AccountId, account: ShadowAccount) {
        let index = id.0 as usize;
        if self.accounts.len() <= index {
            self.accounts.resize(index + 1, None);
        }
        self.accounts[index] = Some(account);
    }

    /// The shadow's view of one account.
    pub fn account(&self, id: AccountId) -> Option<&ShadowAccount> {
        self.accounts.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// Every difference from balances reported by someone else (a running server), for the
    /// accounts the shadow knows; `lookup` answers `None` for an account it does not have.
    pub fn compare_with(
        &self,
        mut lookup: impl FnMut(&AccountNo) -> Option<(i128, i128, i128)>,
    ) -> Vec<Mismatch> {
        let mut mismatches = Vec::new();
        for shadow in self.accounts.iter().flatten() {
            let account_no = shadow.account_no.to_string();
            let Some((available, frozen, ledger)) = lookup(&shadow.account_no) else {
                mismatches.push(Mismatch {
                    account_no,
                    field: "account",
                    shadow_minor: 1,
                    other_minor: 0,
                });
                continue;
            };
            for (field, mine, theirs) in [
                ("available", shadow.available_minor, available),
                ("frozen", shadow.frozen_minor, frozen),
                ("ledger", shadow.ledger_minor, ledger),
            ] {
                if mine != theirs {
                    mismatches.push(Mismatch {
                        account_no: account_no.clone(),
                        field,
                        shadow_minor: mine,
                        other_minor: theirs,
                    });
                }
            }
        }
        mismatches
    }

    /// Every difference from `engine`'s balances, account by account.
    pub fn compare(&self, engine: &Engine) -> Vec<Mismatch> {
        let mut mismatches = Vec::new();
        let count = engine.account_count();
        for index in 0..count {
            let view = engine.account_by_id(AccountId(index));
            let Some(shadow) = self.account(view.id) else {
                mismatches.push(Mismatch {
                    account_no: view.account_no.to_string(),
                    field: "account",
                    shadow_minor: 0,
                    other_minor: 1,
                });
                continue;
            };
            for (field, mine, theirs) in [
                ("available", shadow.available_minor, view.available_minor),
                ("frozen", shadow.frozen_minor, view.frozen_minor),
                ("ledger", shadow.ledger_minor, view.ledger_minor),
            ] {
                if mine != theirs {
                    mismatches.push(Mismatch {
                        account_no: view.account_no.to_string(),
                        field,
                        shadow_minor: mine,
                        other_minor: theirs,
                    });
                }
            }
        }
        for shadow in self.accounts.iter().skip(count as usize).flatten() {
            mismatches.push(Mismatch {
                account_no: shadow.account_no.to_string(),
                field: "account",
                shadow_minor: 1,
                other_minor: 0,
            });
        }
        mismatches
    }
}
