//! Value types shared by commands, outcomes and state: identifiers, keys, amounts, statuses.

use std::fmt;

use crate::limits::{ACCOUNT_NO_LEN_MAX, CURRENCY_CODE_LEN_MAX};

/// A client-chosen, globally unique 128-bit transaction id. Every command carries one.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    bincode::Encode,
    bincode::Decode,
)]
pub struct TxId(pub u128);

/// The engine's internal index of an account, assigned in opening order (0, 1, 2, ...).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct AccountId(pub u32);

/// The engine's internal index of a currency, assigned in definition order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CurrencyId(pub u16);

/// Why a byte string is not a valid key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyError {
    /// Zero bytes long.
    Empty,
    /// Longer than the maximum.
    TooLong,
    /// Not valid UTF-8, or contains a control character.
    NotText,
    /// A currency code must be upper-case ASCII letters and digits.
    NotUpperAlnum,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::Empty => "empty",
            KeyError::TooLong => "too long",
            KeyError::NotText => "not printable UTF-8",
            KeyError::NotUpperAlnum => "not upper-case ASCII letters and digits",
        })
    }
}

impl std::error::Error for KeyError {}

/// The external key of an account: 1 to 32 bytes of printable UTF-8, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountNo {
    len: u8,
    bytes: [u8; ACCOUNT_NO_LEN_MAX],
}

impl AccountNo {
    /// Validates and copies `bytes`.
    pub fn new(bytes: &[u8]) -> Result<AccountNo, KeyError> {
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        if bytes.len() > ACCOUNT_NO_LEN_MAX {
            return Err(KeyError::TooLong);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| KeyError::NotText)?;
        if text.chars().any(char::is_control) {
            return Err(KeyError::NotText);
        }
        let mut inline = [0u8; ACCOUNT_NO_LEN_MAX];
        inline[..bytes.len()].copy_from_slice(bytes);
        Ok(AccountNo { len: bytes.len() as u8, bytes: inline })
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The key as text (always valid: checked on construction).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("AccountNo is validated UTF-8 on construction")
    }

    /// The zero-padded inline bytes (used for hashing without a length-dependent loop).
    pub(crate) fn padded(&self) -> &[u8; ACCOUNT_NO_LEN_MAX] {
        &self.bytes
    }
}

impl fmt::Debug for AccountNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for AccountNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A currency code such as `USD`, `JPY` or `BTC`: 3 to 8 upper-case ASCII letters or digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CurrencyCode {
    bytes: [u8; CURRENCY_CODE_LEN_MAX],
}

impl CurrencyCode {
    /// Validates `code`.
    pub fn new(code: &str) -> Result<CurrencyCode, KeyError> {
        let raw = code.as_bytes();
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > CURRENCY_CODE_LEN_MAX {
            return Err(KeyError::TooLong);
        }
        if raw.len() < 3 || !raw.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return Err(KeyError::NotUpperAlnum);
        }
        let mut bytes = [0u8; CURRENCY_CODE_LEN_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(CurrencyCode { bytes })
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        let len = self.bytes.iter().position(|&b| b == 0).unwrap_or(CURRENCY_CODE_LEN_MAX);
        std::str::from_utf8(&self.bytes[..len]).expect("CurrencyCode is validated ASCII")
    }

    /// The zero-padded bytes, as stored and hashed.
    pub fn to_bytes(self) -> [u8; CURRENCY_CODE_LEN_MAX] {
        self.bytes
    }
}

impl fmt::Debug for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exact decimal amount as it arrives in a command: `mantissa * 10^-scale`.
///
/// The engine converts it to minor units of the account's currency, and rejects it when that
/// would need rounding (more significant decimals than the currency has), when it is not
/// positive, or when it is too large. `rust_decimal::Decimal` maps onto it one to one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, bincode::Encode, bincode::Decode)]
pub struct Amount {
    /// The digits, as an integer.
    pub mantissa: i128,
    /// How many of the digits are decimals.
    pub scale: u8,
}

impl Amount {
    /// An amount already in minor units of a currency with `scale` decimals.
    pub const fn minor(mantissa: i128, scale: u8) -> Amount {
        Amount { mantissa, scale }
    }

    /// The same value without trailing zero decimals (`12.50` → `12.5`): the form a command's
    /// content fingerprint uses, so a retry that writes the amount differently is a retry.
    pub fn normalized(self) -> Amount {
        let (mut mantissa, mut scale) = (self.mantissa, self.scale);
        // The same loop in 64 bits when the mantissa fits (almost always): an `i128` remainder
        // is a call into the runtime library, about a fifth of a transfer's digest.
        if let Ok(mut narrow) = i64::try_from(mantissa) {
            while scale > 0 && narrow % 10 == 0 {
                narrow /= 10;
                scale -= 1;
            }
            return Amount { mantissa: narrow as i128, scale };
        }
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        Amount { mantissa, scale }
    }
}

/// What an account may do.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, bincode::Encode, bincode::Decode)]
#[repr(u8)]
pub enum AccountStatus {
    /// Normal operation.
    Active = 0,
    /// May receive money but not send it (compliance hold, dispute, ...).
    DebitFrozen = 1,
    /// Final: no movement either way. Only an empty account can be closed.
    Closed = 2,
}

/// What an account is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, bincode::Encode, bincode::Decode)]
#[repr(u8)]
pub enum AccountKind {
    /// A customer's account: its `available` and `frozen` never go below zero.
    User = 0,
    /// A system account (bank channel, fee, suspense): may go negative, it mirrors the outside
    /// world. Deposits and withdrawals must name a system account as their channel.
    System = 1,
    /// The per-currency risk account: a system account that books receivables when a failed
    /// deposit can no longer be taken back from the customer. At most one per currency.
    Risk = 2,
}

/// The lifecycle state of a transaction (DESIGN.md §2).
///
/// `Created → RiskChecked → Frozen → PendingSettlement → Settling → Settled`, with `Failed`
/// reachable from every state before `Settled`, and `Reversed` from `Settled`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
#[repr(u8)]
pub enum TxState {
    /// Accepted for processing.
    Created = 0,
    /// Passed the risk checks.
    RiskChecked = 1,
    /// Funds are held.
    Frozen = 2,
    /// Waiting to be sent to a settlement channel.
    PendingSettlement = 3,
    /// Sent to the channel, waiting for its answer.
    Settling = 4,
    /// Final: settled.
    Settled = 5,
    /// Final: failed (rejected, released or refused by the channel).
    Failed = 6,
    /// Settled, then compensated (fully or partly) by a refund.
    Reversed = 7,
}

impl TxState {
    /// Every state, in lifecycle order.
    pub const ALL: [TxState; 8] = [
        TxState::Created,
        TxState::RiskChecked,
        TxState::Frozen,
        TxState::PendingSettlement,
        TxState::Settling,
        TxState::Settled,
        TxState::Failed,
        TxState::Reversed,
    ];

    /// Whether the lifecycle allows moving from `self` to `to`.
    pub fn can_become(self, to: TxState) -> bool {
        match self {
            TxState::Created => matches!(to, TxState::RiskChecked | TxState::Failed),
            TxState::RiskChecked => matches!(to, TxState::Frozen | TxState::Failed),
            TxState::Frozen => matches!(to, TxState::PendingSettlement | TxState::Failed),
            TxState::PendingSettlement => matches!(to, TxState::Settling | TxState::Failed),
            TxState::Settling => matches!(to, TxState::Settled | TxState::Failed),
            TxState::Settled => matches!(to, TxState::Reversed),
            TxState::Failed | TxState::Reversed => false,
        }
    }

    /// True for states nothing can leave (`Settled` can still be reversed, so it is not final).
    pub fn is_final(self) -> bool {
        matches!(self, TxState::Failed | TxState::Reversed)
    }

    /// True while the transaction still waits for something (a channel, a capture, a release).
    pub fn is_open(self) -> bool {
        !matches!(self, TxState::Settled | TxState::Failed | TxState::Reversed)
    }

    /// Lower-case name, as printed by tools (`pending_settlement`).
    pub fn name(self) -> &'static str {
        match self {
            TxState::Created => "created",
            TxState::RiskChecked => "risk_checked",
            TxState::Frozen => "frozen",
            TxState::PendingSettlement => "pending_settlement",
            TxState::Settling => "settling",
            TxState::Settled => "settled",
            TxState::Failed => "failed",
            TxState::Reversed => "reversed",
        }
    }

    /// The state for a wire or journal byte.
    pub fn from_u8(raw: u8) -> Option<TxState> {
        TxState::ALL.get(raw as usize).copied()
    }
}

/// The movements a fee schedule can charge (`SetFee`). Appended variants keep their numbers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, bincode::Encode, bincode::Decode)]
#[repr(u8)]
pub enum FeeKind {
    /// An internal `Transfer`: the payer pays the fee on top of the amount.
    Transfer = 0,
    /// A `Capture`: the fee comes out of the hold on top of the captured amount.
    Capture = 1,
    /// A `Withdraw`: the customer pays the fee on top of the amount when the withdrawal is
    /// made; a withdrawal the channel refuses (`SettleFail`) gives it back.
    Withdraw = 2,
}

impl FeeKind {
    /// Every kind, in code order.
    pub const ALL: [FeeKind; 3] = [FeeKind::Transfer, FeeKind::Capture, FeeKind::Withdraw];

    /// Lower-case name, as printed by tools.
    pub fn name(self) -> &'static str {
        match self {
            FeeKind::Transfer => "transfer",
            FeeKind::Capture => "capture",
            FeeKind::Withdraw => "withdraw",
        }
    }
}

/// Optional per-account risk limits, as decimal amounts in the account's currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, bincode::Encode, bincode::Decode)]
pub struct AccountLimits {
    /// Largest single outgoing amount (transfer, withdrawal, hold).
    pub tx_amount_max: Option<Amount>,
    /// Largest total outflow per UTC day of the command timestamps.
    pub daily_debit_max: Option<Amount>,
    /// Largest exposure: how much of the account's unsettled deposits it may have spent
    /// (`max(0, unsettled - available)`, see `engine/CLEARING.md`). Added last, so the
    /// encodings of the first two fields keep their offsets.
    pub exposure_max: Option<Amount>,
}

/// Why a decimal string is not an amount.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AmountParseError;

impl fmt::Display for AmountParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a decimal amount (digits, at most one '.', optional leading '-')")
    }
}

impl std::error::Error for AmountParseError {}

impl std::str::FromStr for Amount {
    type Err = AmountParseError;

    /// Parses `123`, `-4.50`, `0.00000001` exactly (at most 38 digits, scale at most 28).
    fn from_str(text: &str) -> Result<Amount, AmountParseError> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let valid = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !valid(whole)
            || !valid(fraction)
            || (digits.contains('.') && fraction.is_empty())
        {
            return Err(AmountParseError);
        }
        if fraction.len() > 28 {
            return Err(AmountParseError);
        }
        let mut mantissa: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add((b - b'0') as i128))
                .ok_or(AmountParseError)?;
        }
        Ok(Amount {
            mantissa: if negative { -mantissa } else { mantissa },
            scale: fraction.len() as u8,
        })
    }
}
