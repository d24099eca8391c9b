//! What applying a command produces: a result code, the balances it touched, and the
//! double-entry postings and lifecycle changes (effects) for audit and downstream consumers.

use std::fmt;

use crate::limits::TOUCHED_ACCOUNTS_MAX;
use crate::types::{AccountId, TxId, TxState};

/// The precise result of a command. `Ok` is the only success; everything else is a rejection
/// that changed nothing. Codes are stable: they travel on the wire and in journals.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum ResultCode {
    /// Applied.
    Ok = 0,
    /// The `tx_id` was already used for a command with different content.
    TxIdConflict = 1,
    /// An account named by the command does not exist.
    AccountNotFound = 2,
    /// An account with this `account_no` already exists.
    AccountExists = 3,
    /// The accounts (or the account and the hold) are in different currencies.
    CurrencyMismatch = 4,
    /// The currency is not defined.
    CurrencyUnknown = 5,
    /// The currency is already defined with another scale.
    CurrencyExists = 6,
    /// A currency scale above the maximum.
    InvalidScale = 7,
    /// The amount is zero or negative.
    AmountNotPositive = 8,
    /// The amount has more decimals than the currency (it would need rounding).
    AmountPrecision = 9,
    /// The amount is above the per-command maximum.
    AmountTooLarge = 10,
    /// A balance would leave its range.
    Overflow = 11,
    /// Not enough `available` funds.
    InsufficientFunds = 12,
    /// Above the account's per-transaction maximum.
    TxLimitExceeded = 13,
    /// Above the account's daily outflow limit.
    DailyLimitExceeded = 14,
    /// The account may not send money.
    AccountDebitFrozen = 15,
    /// The account is closed.
    AccountClosed = 16,
    /// Only an account with zero balances can be closed.
    AccountNotEmpty = 17,
    /// Debit and credit are the same account.
    SameAccount = 18,
    /// The channel of a deposit or withdrawal must be a system account.
    NotChannelAccount = 19,
    /// No hold has this `tx_id`.
    HoldNotFound = 20,
    /// The hold was already released, fully captured or expired.
    HoldReleased = 21,
    /// The capture is larger than what the hold still holds.
    HoldInsufficient = 22,
    /// The hold's expiry is not after the command's time.
    ExpiryInPast = 23,
    /// The target transaction is unknown (or older than the retention window).
    TxNotFound = 24,
    /// The lifecycle does not allow this transition from the target's current state.
    IllegalTransition = 25,
    /// Refunds would exceed the original amount.
    RefundExceedsOriginal = 26,
    /// That kind of transaction cannot be refunded.
    NotRefundable = 27,
    /// A failed deposit needs a receivable, and the currency has no risk account.
    RiskAccountMissing = 28,
    /// The currency already has a risk account.
    RiskAccountExists = 29,
    /// The status change is not allowed (a closed account stays closed).
    InvalidStatusChange = 30,
    /// The engine is at a capacity limit (accounts, currencies, or, for a command that opens
    /// a transaction, the transaction index: window plus open transactions).
    CapacityExceeded = 31,
    /// The outflow would spend more unsettled deposit money than the account's exposure limit.
    ExposureLimitExceeded = 32,
    /// A fee schedule with a rate above 10 000 basis points (100 %).
    FeeInvalid = 33,
    /// T+1 needs a user account and a system clearing account in its currency; back to T+0
    /// only when nothing is pending.
    SettlementCycleInvalid = 34,
    /// The business date is not a valid YYYYMMDD after the last closed one.
    BusinessDateClosed = 35,
    /// A freeze while `HOLDS_OPEN_MAX` holds are open.
    TooManyHolds = 36,
    /// A deposit or withdrawal while `SETTLEMENTS_PENDING_MAX` are pending settlement.
    TooManyPendingSettlements = 37,
}

impl ResultCode {
    /// Every code, in numeric order.
    pub const ALL: [ResultCode; 38] = [
        ResultCode::Ok,
        ResultCode::TxIdConflict,
        ResultCode::AccountNotFound,
        ResultCode::AccountExists,
        ResultCode::CurrencyMismatch,
        ResultCode::CurrencyUnknown,
        ResultCode::CurrencyExists,
        ResultCode::InvalidScale,
        ResultCode::AmountNotPositive,
        ResultCode::AmountPrecision,
        ResultCode::AmountTooLarge,
        ResultCode::Overflow,
        ResultCode::InsufficientFunds,
        ResultCode::TxLimitExceeded,
        ResultCode::DailyLimitExceeded,
        ResultCode::AccountDebitFrozen,
        ResultCode::AccountClosed,
        ResultCode::AccountNotEmpty,
        ResultCode::SameAccount,
        ResultCode::NotChannelAccount,
        ResultCode::HoldNotFound,
        ResultCode::HoldReleased,
        ResultCode::HoldInsufficient,
        ResultCode::ExpiryInPast,
        ResultCode::TxNotFound,
        ResultCode::IllegalTransition,
        ResultCode::RefundExceedsOriginal,
        ResultCode::NotRefundable,
        ResultCode::RiskAccountMissing,
        ResultCode::RiskAccountExists,
        ResultCode::InvalidStatusChange,
        ResultCode::CapacityExceeded,
        ResultCode::ExposureLimitExceeded,
        ResultCode::FeeInvalid,
        ResultCode::SettlementCycleInvalid,
        ResultCode::BusinessDateClosed,
        ResultCode::TooManyHolds,
        ResultCode::TooManyPendingSettlements,
    ];

    /// The code for a wire or journal byte.
    pub fn from_u8(raw: u8) -> Option<ResultCode> {
        ResultCode::ALL.get(raw as usize).copied()
    }

    /// A short snake_case name, stable, for logs, metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ResultCode::Ok => "ok",
            ResultCode::TxIdConflict => "tx_id_conflict",
            ResultCode::AccountNotFound => "account_not_found",
            ResultCode::AccountExists => "account_exists",
            ResultCode::CurrencyMismatch => "currency_mismatch",
            ResultCode::CurrencyUnknown => "currency_unknown",
            ResultCode::CurrencyExists => "currency_exists",
            ResultCode::InvalidScale => "invalid_scale",
            ResultCode::AmountNotPositive => "amount_not_positive",
            ResultCode::AmountPrecision => "amount_precision",
            ResultCode::AmountTooLarge => "amount_too_large",
            ResultCode::Overflow => "overflow",
            ResultCode::InsufficientFunds => "insufficient_funds",
            ResultCode::TxLimitExceeded => "tx_limit_exceeded",
            ResultCode::DailyLimitExceeded => "daily_limit_exceeded",
            ResultCode::AccountDebitFrozen => "account_debit_frozen",
            ResultCode::AccountClosed => "account_closed",
            ResultCode::AccountNotEmpty => "account_not_empty",
            ResultCode::SameAccount => "same_account",
            ResultCode::NotChannelAccount => "not_channel_account",
            ResultCode::HoldNotFound => "hold_not_found",
            ResultCode::HoldReleased => "hold_released",
            ResultCode::HoldInsufficient => "hold_insufficient",
            ResultCode::ExpiryInPast => "expiry_in_past",
            ResultCode::TxNotFound => "tx_not_found",
            ResultCode::IllegalTransition => "illegal_transition",
            ResultCode::RefundExceedsOriginal => "refund_exceeds_original",
            ResultCode::NotRefundable => "not_refundable",
            ResultCode::RiskAccountMissing => "risk_account_missing",
            ResultCode::RiskAccountExists => "risk_account_exists",
            ResultCode::InvalidStatusChange => "invalid_status_change",
            ResultCode::CapacityExceeded => "capacity_exceeded",
            ResultCode::ExposureLimitExceeded => "exposure_limit_exceeded",
            ResultCode::FeeInvalid => "fee_invalid",
            ResultCode::SettlementCycleInvalid => "settlement_cycle_invalid",
            ResultCode::BusinessDateClosed => "business_date_closed",
            ResultCode::TooManyHolds => "too_many_holds",
            ResultCode::TooManyPendingSettlements => "too_many_pending_settlements",
        }
    }

    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            ResultCode::Ok => "ok",
            ResultCode::TxIdConflict => "tx_id already used for a different command",
            ResultCode::AccountNotFound => "account not found",
            ResultCode::AccountExists => "account already exists",
            ResultCode::CurrencyMismatch => "currency mismatch",
            ResultCode::CurrencyUnknown => "unknown currency",
            ResultCode::CurrencyExists => "currency already defined with another scale",
            ResultCode::InvalidScale => "currency scale above 8 decimals",
            ResultCode::AmountNotPositive => "invalid amount: must be positive",
            ResultCode::AmountPrecision => "invalid amount: more decimals than the currency has",
            ResultCode::AmountTooLarge => "invalid amount: too large",
            ResultCode::Overflow => "balance overflow",
            ResultCode::InsufficientFunds => "insufficient available funds",
            ResultCode::TxLimitExceeded => "per-transaction limit exceeded",
            ResultCode::DailyLimitExceeded => "daily outflow limit exceeded",
            ResultCode::AccountDebitFrozen => "account is frozen for debits",
            ResultCode::AccountClosed => "account is closed",
            ResultCode::AccountNotEmpty => "account balances are not zero",
            ResultCode::SameAccount => "debit and credit account are the same",
            ResultCode::NotChannelAccount => "channel must be a system account",
            ResultCode::HoldNotFound => "hold not found",
            ResultCode::HoldReleased => "hold already released, captured or expired",
            ResultCode::HoldInsufficient => "capture exceeds what the hold still holds",
            ResultCode::ExpiryInPast => "hold expiry is not in the future",
            ResultCode::TxNotFound => "transaction not found",
            ResultCode::IllegalTransition => "illegal lifecycle transition",
            ResultCode::RefundExceedsOriginal => "refunds would exceed the original amount",
            ResultCode::NotRefundable => "transaction kind cannot be refunded",
            ResultCode::RiskAccountMissing => "currency has no risk account for the receivable",
            ResultCode::RiskAccountExists => "currency already has a risk account",
            ResultCode::InvalidStatusChange => "status change not allowed",
            ResultCode::CapacityExceeded => "engine capacity exceeded",
            ResultCode::ExposureLimitExceeded => "exposure limit exceeded",
            ResultCode::FeeInvalid => "fee rate above 10000 basis points",
            ResultCode::SettlementCycleInvalid => "settlement cycle change not allowed",
            ResultCode::BusinessDateClosed => "business date invalid or already closed",
            ResultCode::TooManyHolds => "too many open holds",
            ResultCode::TooManyPendingSettlements => "too many settlements pending",
        }
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// One account's balances right after a command, in minor units of its currency.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BalanceView {
    /// The account.
    pub account: AccountId,
    /// Usable now.
    pub available_minor: i128,
    /// Held.
    pub frozen_minor: i128,
    /// Settled with the outside world.
    pub ledger_minor: i128,
}

/// The balances of every account a command touched (at most `TOUCHED_ACCOUNTS_MAX`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Balances {
    len: u8,
    items: [BalanceView; TOUCHED_ACCOUNTS_MAX],
}

impl Balances {
    const EMPTY_VIEW: BalanceView =
        BalanceView { account: AccountId(0), available_minor: 0, frozen_minor: 0, ledger_minor: 0 };

    /// No balances.
    pub const fn new() -> Balances {
        Balances { len: 0, items: [Balances::EMPTY_VIEW; TOUCHED_ACCOUNTS_MAX] }
    }

    /// Adds or replaces the view of `view.account`.
    #[inline(always)]
    pub(crate) fn push(&mut self, view: BalanceView) {
        for existing in &mut self.items[..self.len as usize] {
            if existing.account == view.account {
                *existing = view;
                return;
            }
        }
        assert!((self.len as usize) < TOUCHED_ACCOUNTS_MAX, "a command touched too many accounts");
        self.items[self.len as usize] = view;
        self.len += 1;
    }

    /// The views, in the order the accounts were touched.
    pub fn as_slice(&self) -> &[BalanceView] {
        &self.items[..self.len as usize]
    }
}

impl Default for Balances {
    fn default() -> Self {
        Balances::new()
    }
}

/// The reply to one command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Outcome {
    /// The command's `tx_id`.
    pub tx_id: TxId,
    /// What happened (for a duplicate: what happened the first time).
    pub result: ResultCode,
    /// True when this `tx_id` had been applied before and nothing changed now.
    pub duplicate: bool,
    /// The lifecycle state of this transaction after the command (`None` for commands that
    /// have no lifecycle, such as opening an account).
    pub tx_state: Option<TxState>,
    /// Balances of the touched accounts right after the command. For a duplicate these are the
    /// accounts' current balances (the engine does not keep per-command balance history).
    pub balances: Balances,
}

impl Outcome {
    /// A rejection that changed nothing.
    pub fn rejected(tx_id: TxId, result: ResultCode) -> Outcome {
        Outcome { tx_id, result, duplicate: false, tx_state: None, balances: Balances::new() }
    }

    /// True when the command was applied (first time or as a duplicate of an applied one).
    pub fn is_ok(&self) -> bool {
        self.result == ResultCode::Ok
    }
}

/// Which balance of an account a posting moves.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum Bucket {
    /// `available`.
    Available = 0,
    /// `frozen`.
    Frozen = 1,
    /// `ledger`.
    Ledger = 2,
}

/// One double-entry posting. The postings of one command sum to zero per currency over
/// `Available + Frozen`, and separately over `Ledger`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry {
    /// The transaction that caused it (for an expired hold: the hold's `tx_id`).
    pub tx_id: TxId,
    /// The account.
    pub account: AccountId,
    /// The balance moved.
    pub bucket: Bucket,
    /// Signed change, in minor units (credit positive).
    pub delta_minor: i128,
}

/// Everything a command changed besides its outcome: postings and lifecycle changes, in order.
/// Owned by the caller and reused: the engine only appends.
#[derive(Default, Debug)]
pub struct Effects {
    /// Double-entry postings.
    pub entries: Vec<Entry>,
    /// Lifecycle changes: (transaction, its new state).
    pub transitions: Vec<(TxId, TxState)>,
}

impl Effects {
    /// Empty effects with room for `commands` typical commands.
    pub fn with_capacity(commands: usize) -> Effects {
        Effects {
            entries: Vec::with_capacity(commands * 4),
            transitions: Vec::with_capacity(commands),
        }
    }

    /// Appends one posting (the balance change itself is the caller's).
    #[inline]
    pub(crate) fn post(
        &mut self,
        tx_id: TxId,
        account: AccountId,
        bucket: Bucket,
        delta_minor: i128,
    ) {
        self.entries.push(Entry { tx_id, account, bucket, delta_minor });
    }

    /// Forgets everything (keeps the buffers).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.transitions.clear();
    }
}
