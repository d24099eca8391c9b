//! Commands: the only input of the engine. Each carries its `tx_id` and the timestamp the
//! sequencer stamped on it, so applying it needs nothing from the outside world.

use crate::hash::{FixedSink, SinkExt};
use crate::types::{
    AccountKind, AccountLimits, AccountNo, AccountStatus, Amount, CurrencyCode, FeeKind, TxId,
};

/// One command, as sequenced and journaled.
#[derive(Clone, Copy, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct Command {
    /// Unique id of this command; re-sending it is idempotent.
    pub tx_id: TxId,
    /// Time assigned by the sequencer (ns since the Unix epoch). The engine never reads a clock.
    pub timestamp_ns: u64,
    /// What to do.
    pub body: CommandBody,
}

/// What a command asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub enum CommandBody {
    /// Add a currency with its number of decimals (0 to 8).
    DefineCurrency {
        /// The code, e.g. `USD`.
        code: CurrencyCode,
        /// Decimal places of its minor unit.
        scale: u8,
    },
    /// Open an account with zero balances.
    OpenAccount {
        /// External key.
        account_no: AccountNo,
        /// Owner.
        user_id: u64,
        /// Currency of every balance of the account.
        currency: CurrencyCode,
        /// User, system (channel, fee) or risk account.
        kind: AccountKind,
        /// Optional risk limits.
        limits: AccountLimits,
    },
    /// Change an account's status.
    SetAccountStatus {
        /// The account.
        account_no: AccountNo,
        /// New status.
        status: AccountStatus,
    },
    /// Replace an account's limits.
    SetAccountLimits {
        /// The account.
        account_no: AccountNo,
        /// New limits (`None` fields remove a limit).
        limits: AccountLimits,
    },
    /// Money arriving from an external channel: credits `account_no` at once (T+0), debits the
    /// channel's system account; `ledger` moves when the deposit settles.
    Deposit {
        /// Credited account.
        account_no: AccountNo,
        /// The channel's system account.
        channel_no: AccountNo,
        /// Amount.
        amount: Amount,
    },
    /// Money leaving through a channel: held on `account_no` until the withdrawal settles.
    Withdraw {
        /// Debited account.
        account_no: AccountNo,
        /// The channel's system account.
        channel_no: AccountNo,
        /// Amount.
        amount: Amount,
    },
    /// An internal T+0 transfer: `available` (and `ledger`) move at once on both sides.
    Transfer {
        /// Debited account.
        from: AccountNo,
        /// Credited account.
        to: AccountNo,
        /// Amount.
        amount: Amount,
    },
    /// Hold an amount on an account (moves it from `available` to `frozen`).
    Freeze {
        /// The account.
        account_no: AccountNo,
        /// Amount.
        amount: Amount,
        /// When the hold lapses by itself (ns); `None` holds until released or captured.
        expires_ns: Option<u64>,
    },
    /// Release what is left of a hold back to `available`.
    Unfreeze {
        /// The `tx_id` of the `Freeze`.
        hold: TxId,
    },
    /// Pay (part of) a hold to another account.
    Capture {
        /// The `tx_id` of the `Freeze`.
        hold: TxId,
        /// Credited account.
        to: AccountNo,
        /// Amount, at most what the hold still holds.
        amount: Amount,
    },
    /// The channel took a pending deposit or withdrawal: `PendingSettlement → Settling`.
    SettleBegin {
        /// The deposit or withdrawal.
        target: TxId,
    },
    /// The channel confirmed: `Settling → Settled`; `ledger` balances move.
    SettleConfirm {
        /// The deposit or withdrawal.
        target: TxId,
    },
    /// The channel refused, or the transaction is abandoned: `→ Failed`, effects compensated.
    SettleFail {
        /// The deposit, withdrawal or hold.
        target: TxId,
    },
    /// A compensating transaction for a settled one, full or partial.
    Refund {
        /// The settled transaction.
        original: TxId,
        /// Amount to give back; all refunds together never exceed the original amount.
        amount: Amount,
    },
    /// Replaces the fee schedule of one kind of movement in one currency (`engine/CLEARING.md`):
    /// from now on each such movement also pays `fixed + floor(amount × rate_bps / 10 000)`
    /// to `fee_account_no`. A zero `fixed` and zero `rate_bps` remove the fee.
    SetFee {
        /// Which movements pay it.
        kind: FeeKind,
        /// Their currency.
        currency: CurrencyCode,
        /// The system account credited with the fees.
        fee_account_no: AccountNo,
        /// Fixed part per movement (zero allowed).
        fixed: Amount,
        /// Proportional part, in basis points of the amount (0..=10 000), rounded down.
        rate_bps: u32,
    },
    /// Puts a user account on T+1 (`Some(clearing)`) or back on T+0 (`None`, only when nothing
    /// is pending): a T+1 account's transfers move `available` at once, while their `ledger`
    /// side waits on the clearing system account until the next `Cutover`.
    SetSettlementCycle {
        /// The account.
        account_no: AccountNo,
        /// For T+1: the system account that carries the pending `ledger` amounts.
        t1_clearing_no: Option<AccountNo>,
    },
    /// Closes a business day: moves every T+1 account's pending `ledger` (net) from its
    /// clearing account, and closes the day's per-channel settlement totals into the cutover
    /// report. Each date closes once, in increasing order.
    Cutover {
        /// The business date closed, as the number YYYYMMDD.
        business_date: u32,
    },
}

/// The kind of a command, as remembered for its `tx_id`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum TxKind {
    DefineCurrency = 0,
    OpenAccount = 1,
    SetAccountStatus = 2,
    SetAccountLimits = 3,
    Deposit = 4,
    Withdraw = 5,
    Transfer = 6,
    Freeze = 7,
    Unfreeze = 8,
    Capture = 9,
    SettleBegin = 10,
    SettleConfirm = 11,
    SettleFail = 12,
    Refund = 13,
    SetFee = 14,
    SetSettlementCycle = 15,
    Cutover = 16,
}

impl TxKind {
    /// Every kind, in code order.
    pub const ALL: [TxKind; 17] = [
        TxKind::DefineCurrency,
        TxKind::OpenAccount,
        TxKind::SetAccountStatus,
        TxKind::SetAccountLimits,
        TxKind::Deposit,
        TxKind::Withdraw,
        TxKind::Transfer,
        TxKind::Freeze,
        TxKind::Unfreeze,
        TxKind::Capture,
        TxKind::SettleBegin,
        TxKind::SettleConfirm,
        TxKind::SettleFail,
        TxKind::Refund,
        TxKind::SetFee,
        TxKind::SetSettlementCycle,
        TxKind::Cutover,
    ];

    /// Whether a transaction of this kind has a lifecycle (moves or holds money).
    pub fn has_lifecycle(self) -> bool {
        match self {
            TxKind::Deposit
            | TxKind::Withdraw
            | TxKind::Transfer
            | TxKind::Freeze
            | TxKind::Capture
            | TxKind::Refund => true,
            TxKind::DefineCurrency
            | TxKind::OpenAccount
            | TxKind::SetAccountStatus
            | TxKind::SetAccountLimits
            | TxKind::Unfreeze
            | TxKind::SettleBegin
            | TxKind::SettleConfirm
            | TxKind::SettleFail
            | TxKind::SetFee
            | TxKind::SetSettlementCycle
            | TxKind::Cutover => false,
        }
    }

    /// Lower-case name, as printed by tools.
    pub fn name(self) -> &'static str {
        match self {
            TxKind::DefineCurrency => "define_currency",
            TxKind::OpenAccount => "open_account",
            TxKind::SetAccountStatus => "set_account_status",
            TxKind::SetAccountLimits => "set_account_limits",
            TxKind::Deposit => "deposit",
            TxKind::Withdraw => "withdraw",
            TxKind::Transfer => "transfer",
            TxKind::Freeze => "freeze",
            TxKind::Unfreeze => "unfreeze",
            TxKind::Capture => "capture",
            TxKind::SettleBegin => "settle_begin",
            TxKind::SettleConfirm => "settle_confirm",
            TxKind::SettleFail => "settle_fail",
            TxKind::Refund => "refund",
            TxKind::SetFee => "set_fee",
            TxKind::SetSettlementCycle => "set_settlement_cycle",
            TxKind::Cutover => "cutover",
        }
    }

    /// The kind for a wire or journal byte.
    pub fn from_u8(raw: u8) -> Option<TxKind> {
        TxKind::ALL.get(raw as usize).copied()
    }
}

impl CommandBody {
    /// The kind of this command.
    pub fn kind(&self) -> TxKind {
        match self {
            CommandBody::DefineCurrency { .. } => TxKind::DefineCurrency,
            CommandBody::OpenAccount { .. } => TxKind::OpenAccount,
            CommandBody::SetAccountStatus { .. } => TxKind::SetAccountStatus,
            CommandBody::SetAccountLimits { .. } => TxKind::SetAccountLimits,
            CommandBody::Deposit { .. } => TxKind::Deposit,
            CommandBody::Withdraw { .. } => TxKind::Withdraw,
            CommandBody::Transfer { .. } => TxKind::Transfer,
            CommandBody::Freeze { .. } => TxKind::Freeze,
            CommandBody::Unfreeze { .. } => TxKind::Unfreeze,
            CommandBody::Capture { .. } => TxKind::Capture,
            CommandBody::SettleBegin { .. } => TxKind::SettleBegin,
            CommandBody::SettleConfirm { .. } => TxKind::SettleConfirm,
            CommandBody::SettleFail { .. } => TxKind::SettleFail,
            CommandBody::Refund { .. } => TxKind::Refund,
            CommandBody::SetFee { .. } => TxKind::SetFee,
            CommandBody::SetSettlementCycle { .. } => TxKind::SetSettlementCycle,
            CommandBody::Cutover { .. } => TxKind::Cutover,
        }
    }

    /// A 32-bit digest of the content (everything but `tx_id` and timestamp) with a public
    /// fixed seed: what state encodings 1 to 3 remembered with each `tx_id`. Retries against
    /// records from those snapshots are still compared with it; new records keep `digest`.
    pub fn fingerprint(&self) -> u32 {
        let mut sink = FixedSink::new();
        self.write_content(&mut sink);
        sink.digest32()
    }

    /// A 64-bit digest of the content keyed with the ledger's own seed (`hash_seed`), never 0
    /// in its upper half (that marks a record carrying an old 32-bit `fingerprint`). It covers
    /// what a transaction record does not store (expiry, limits, admin fields, and everything
    /// of a rejected command); the stored fields are compared exactly (`Engine::apply`).
    pub(crate) fn digest(&self, seed: u64) -> u64 {
        let mut sink = FixedSink::new();
        self.write_content(&mut sink);
        sink.digest64(seed)
    }

    /// The content as hashed: the kind, then every field. Inlined into `digest` (once per
    /// command), where the sink's offsets are known and its bounds checks fold away.
    #[inline(always)]
    fn write_content(&self, sink: &mut FixedSink) {
        sink.u8(self.kind() as u8);
        match self {
            CommandBody::DefineCurrency { code, scale } => {
                sink.bytes(&code.to_bytes());
                sink.u8(*scale);
            }
            CommandBody::OpenAccount { account_no, user_id, currency, kind, limits } => {
                sink.bytes(account_no.padded());
                sink.u64(*user_id);
                sink.bytes(&currency.to_bytes());
                sink.u8(*kind as u8);
                sink.limits(limits);
            }
            CommandBody::SetAccountStatus { account_no, status } => {
                sink.bytes(account_no.padded());
                sink.u8(*status as u8);
            }
            CommandBody::SetAccountLimits { account_no, limits } => {
                sink.bytes(account_no.padded());
                sink.limits(limits);
            }
            CommandBody::Deposit { account_no, channel_no, amount }
            | CommandBody::Withdraw { account_no, channel_no, amount } => {
                sink.bytes(account_no.padded());
                sink.bytes(channel_no.padded());
                sink.amount(amount);
            }
            CommandBody::Transfer { from, to, amount } => {
                sink.bytes(from.padded());
                sink.bytes(to.padded());
                sink.amount(amount);
            }
            CommandBody::Freeze { account_no, amount, expires_ns } => {
                sink.bytes(account_no.padded());
                sink.amount(amount);
                sink.u8(expires_ns.is_some() as u8);
                sink.u64(expires_ns.unwrap_or(0));
            }
            CommandBody::Unfreeze { hold } => sink.u128(hold.0),
            CommandBody::Capture { hold, to, amount } => {
                sink.u128(hold.0);
                sink.bytes(to.padded());
                sink.amount(amount);
            }
            CommandBody::SettleBegin { target }
            | CommandBody::SettleConfirm { target }
            | CommandBody::SettleFail { target } => sink.u128(target.0),
            CommandBody::Refund { original, amount } => {
                sink.u128(original.0);
                sink.amount(amount);
            }
            CommandBody::SetFee { kind, currency, fee_account_no, fixed, rate_bps } => {
                sink.u8(*kind as u8);
                sink.bytes(&currency.to_bytes());
                sink.bytes(fee_account_no.padded());
                sink.amount(fixed);
                sink.u32(*rate_bps);
            }
            CommandBody::SetSettlementCycle { account_no, t1_clearing_no } => {
                sink.bytes(account_no.padded());
                sink.u8(t1_clearing_no.is_some() as u8);
                if let Some(clearing_no) = t1_clearing_no {
                    sink.bytes(clearing_no.padded());
                }
            }
            CommandBody::Cutover { business_date } => sink.u32(*business_date),
        }
    }
}
