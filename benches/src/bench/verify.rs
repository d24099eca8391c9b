//! The untimed side of a run, whatever the target: open and fund the accounts before, read
//! every balance after and check that money was conserved and every transfer succeeded.

use anyhow::{bail, Context, Result};
use engine::{AccountNo, CommandBody, ResultCode, TxId};

use super::tally::Tally;
use crate::workload::{RunAccounts, FUNDS_MINOR};
use crate::Rng;

/// Frames in flight on the setup and verification connection.
pub(super) const SETUP_IN_FLIGHT: u32 = 64;
/// Account queries in flight during verification.
pub(super) const QUERY_IN_FLIGHT: u32 = 256;

const _: () = assert!(SETUP_IN_FLIGHT >= 1 && QUERY_IN_FLIGHT >= 1);

/// The untimed side of a target: run setup phases, read balances.
pub(super) trait Admin {
    /// Executes every command (pipelined, in frames of at most the target's batch length);
    /// returns their results in order.
    fn execute(&mut self, commands: &[(TxId, CommandBody)]) -> Result<Vec<ResultCode>>;
    /// `available + frozen` of each account, `None` if it does not exist.
    fn totals(&mut self, keys: &[AccountNo]) -> Result<Vec<Option<i128>>>;
}

/// Opens the run's accounts and funds them with settled deposits.
pub(super) fn setup(admin: &mut dyn Admin, accounts: &RunAccounts, rng: &mut Rng) -> Result<()> {
    for (phase, commands) in accounts.setup_phases(rng).iter().enumerate() {
        let results = admin.execute(commands).with_context(|| format!("setup phase {phase}"))?;
        if let Some((index, result)) =
            results.iter().enumerate().find(|(_, result)| **result != ResultCode::Ok)
        {
            let command = &commands[index].1;
            bail!("setup phase {phase}: {command:?} failed: {}", result.name());
        }
    }
    Ok(())
}

/// What verification found.
pub(super) struct Verified {
    pub(super) accounts_missing: u64,
    pub(super) sum_minor: i128,
    pub(super) funding_minor: Option<i128>,
    pub(super) funding_expected_minor: i128,
    pub(super) ok_expected: u64,
    pub(super) ok: u64,
}

impl Verified {
    pub(super) fn conserved(&self) -> bool {
        self.accounts_missing == 0
            && self.sum_minor == 0
            && self.funding_minor == Some(self.funding_expected_minor)
    }

    pub(super) fn passed(&self) -> bool {
        self.conserved() && self.ok == self.ok_expected
    }
}

pub(super) fn verify(
    admin: &mut dyn Admin,
    accounts: &RunAccounts,
    tally: &Tally,
    sent: u64,
) -> Result<Verified> {
    let mut keys: Vec<AccountNo> = accounts.keys().to_vec();
    keys.push(accounts.funding());
    let totals = admin.totals(&keys)?;
    let funding_minor = totals.last().copied().flatten();
    Ok(Verified {
        accounts_missing: totals.iter().filter(|total| total.is_none()).count() as u64,
        sum_minor: totals.iter().flatten().sum(),
        funding_minor,
        funding_expected_minor: -(accounts.keys().len() as i128) * FUNDS_MINOR,
        ok_expected: sent,
        ok: tally.ok,
    })
}
