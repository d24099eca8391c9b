//! Retry or conflict: whether a command re-sent under a remembered `tx_id` is the command
//! that was applied. Every field the transaction record stores is compared exactly — kind,
//! accounts (looked up again: an `account_no` always names the same account), amount in minor
//! units, linked transaction — and what it does not store (an expiry, limits, admin fields,
//! anything of a rejected command) through the 64-bit content digest keyed with the ledger's
//! own seed (`CommandBody::digest`). A record from a state encoding before version 4 carries
//! the old 32-bit fingerprint instead, and is compared with that plus the stored fields.

use crate::command::CommandBody;
use crate::currency::to_minor;
use crate::ledger::Ledger;
use crate::outcome::ResultCode;
use crate::txtable::TxRecord;
use crate::types::{AccountId, AccountNo, Amount, TxId};

impl Ledger {
    /// Whether `body` (with digest `digest`) is the command `record` remembers.
    pub fn is_retry(&self, record: &TxRecord, body: &CommandBody, digest: u64) -> bool {
        if record.kind != body.kind() {
            return false;
        }
        assert!(digest >> 32 != 0, "a new digest is never mistaken for an old fingerprint");
        let digest_same = if record.has_legacy_fingerprint() {
            record.digest == body.fingerprint() as u64
        } else {
            record.digest == digest
        };
        // A rejected command stored nothing but its kind and digest.
        digest_same && (record.result != ResultCode::Ok || self.stored_fields_match(record, body))
    }

    /// The fields a successful command's record stores, compared with the command's.
    fn stored_fields_match(&self, record: &TxRecord, body: &CommandBody) -> bool {
        let account = |stored: u32, account_no: &AccountNo| {
            self.accounts.find(account_no).is_some_and(|id| id.0 == stored)
        };
        let link = |target: &TxId| record.link() == Some(*target);
        // The amount in minor units of the currency of the record's debited account.
        let amount = |amount: &Amount| {
            self.accounts.contains(record.debit)
                && to_minor(*amount, self.scale(self.acct(AccountId(record.debit)).currency))
                    == Ok(record.amount_minor())
        };
        match body {
            CommandBody::Transfer { from, to, amount: sent } => {
                account(record.debit, from) && account(record.credit, to) && amount(sent)
            }
            CommandBody::Deposit { account_no, channel_no, amount: sent } => {
                account(record.debit, channel_no)
                    && account(record.credit, account_no)
                    && amount(sent)
            }
            CommandBody::Withdraw { account_no, channel_no, amount: sent } => {
                account(record.debit, account_no)
                    && account(record.credit, channel_no)
                    && amount(sent)
            }
            CommandBody::Freeze { account_no, amount: sent, expires_ns: _ } => {
                account(record.debit, account_no) && record.credit == record.debit && amount(sent)
            }
            CommandBody::Capture { hold, to, amount: sent } => {
                link(hold) && account(record.credit, to) && amount(sent)
            }
            CommandBody::Refund { original, amount: sent } => link(original) && amount(sent),
            CommandBody::Unfreeze { hold } => link(hold),
            CommandBody::SettleBegin { target }
            | CommandBody::SettleConfirm { target }
            | CommandBody::SettleFail { target } => link(target),
            CommandBody::OpenAccount { account_no, .. }
            | CommandBody::SetAccountStatus { account_no, .. }
            | CommandBody::SetAccountLimits { account_no, .. }
            | CommandBody::SetSettlementCycle { account_no, .. } => {
                account(record.debit, account_no)
            }
            CommandBody::SetFee { fee_account_no, .. } => account(record.debit, fee_account_no),
            CommandBody::DefineCurrency { .. } | CommandBody::Cutover { .. } => true,
        }
    }
}
