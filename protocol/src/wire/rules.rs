//! The rules a request must keep beyond its byte layout (PROTOCOL.md, "What a reader does with
//! bad input"), shared by the decoder (which refuses) and the encoder (which refuses or, for
//! amounts, writes the canonical form):
//!
//! - a SUBMIT entry's `tx_id` is never 0 (0 names no transaction);
//! - an `Amount` is canonical: `scale` ≤ 28 and no trailing zero decimal (`12.50` is
//!   `125 × 10^-1`; zero is `0 × 10^0`), so one value has one encoding;
//! - an account number in a request is visible text: besides the engine's own rule (1..=32
//!   bytes of UTF-8 without control characters) it holds no space and no invisible character
//!   ([`ACCOUNT_NO_REFUSED`]), so two accounts never look alike;
//! - what a server admits on a connection before reading a body ([`RequestRules`]).

use engine::{AccountLimits, AccountNo, Amount, CommandBody, TxId};

use crate::limits::AMOUNT_SCALE_MAX;

/// Code points an account number in a request may not contain, as inclusive ranges: the
/// control characters (Unicode category Cc), every Unicode `White_Space` character, and the
/// invisible format characters (soft hyphen, zero-width and direction marks, word joiners, the
/// byte order mark, interlinear annotation). PROTOCOL.md lists the same ranges.
pub const ACCOUNT_NO_REFUSED: [(u32, u32); 18] = [
    (0x0000, 0x0020),   // C0 controls and SPACE
    (0x007F, 0x00A0),   // DEL, C1 controls, NO-BREAK SPACE
    (0x00AD, 0x00AD),   // SOFT HYPHEN
    (0x061C, 0x061C),   // ARABIC LETTER MARK
    (0x1680, 0x1680),   // OGHAM SPACE MARK
    (0x180E, 0x180E),   // MONGOLIAN VOWEL SEPARATOR
    (0x2000, 0x200F),   // EN QUAD .. HAIR SPACE, ZERO WIDTH SPACE/NON-JOINER/JOINER, LRM, RLM
    (0x2028, 0x202F),   // LINE/PARAGRAPH SEPARATOR, bidi embeddings, NARROW NO-BREAK SPACE
    (0x205F, 0x2064),   // MEDIUM MATHEMATICAL SPACE, WORD JOINER, invisible operators
    (0x2066, 0x206F),   // bidi isolates, deprecated format characters
    (0x3000, 0x3000),   // IDEOGRAPHIC SPACE
    (0xFEFF, 0xFEFF),   // ZERO WIDTH NO-BREAK SPACE (byte order mark)
    (0xFFF9, 0xFFFB),   // interlinear annotation
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol format controls
    (0xE0001, 0xE0001), // LANGUAGE TAG
    (0xE0020, 0xE007F), // tag characters
];

/// Whether `c` may appear in an account number of a request.
pub fn account_no_char_allowed(c: char) -> bool {
    let code = c as u32;
    !ACCOUNT_NO_REFUSED.iter().any(|&(first, last)| (first..=last).contains(&code))
}

/// Checks an account number of a request against the wire rule (the engine's rule, which
/// `AccountNo` already enforces, plus no space or invisible character). The error says why,
/// in words.
pub fn check_account_no(account_no: &AccountNo) -> Result<(), String> {
    match account_no.as_str().chars().find(|c| !account_no_char_allowed(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "contains U+{:04X}, a space or an invisible character (account numbers are visible \
             text)",
            c as u32
        )),
    }
}

/// Whether `amount` is in its one valid wire form: scale at most 28, no trailing zero decimal.
pub fn amount_is_canonical(amount: Amount) -> bool {
    amount.scale <= AMOUNT_SCALE_MAX && (amount.scale == 0 || amount.mantissa % 10 != 0)
}

/// The amounts of a command (mutable, at most three: an account's limits) and its account
/// numbers (at most two), in field order.
struct Fields<'a> {
    amounts: [Option<&'a mut Amount>; 3],
    account_nos: [Option<&'a AccountNo>; 2],
}

fn fields(body: &mut CommandBody) -> Fields<'_> {
    use CommandBody as C;
    let one = |amount| [Some(amount), None, None];
    let (amounts, account_nos) = match body {
        C::DefineCurrency { .. } | C::Unfreeze { .. } | C::Cutover { .. } => (NO_AMOUNT, [None; 2]),
        C::SettleBegin { .. } | C::SettleConfirm { .. } | C::SettleFail { .. } => {
            (NO_AMOUNT, [None; 2])
        }
        C::OpenAccount { account_no, limits, .. } | C::SetAccountLimits { account_no, limits } => {
            let AccountLimits { tx_amount_max, daily_debit_max, exposure_max } = limits;
            let limits = [tx_amount_max.as_mut(), daily_debit_max.as_mut(), exposure_max.as_mut()];
            (limits, [Some(&*account_no), None])
        }
        C::SetAccountStatus { account_no, .. } => (NO_AMOUNT, [Some(&*account_no), None]),
        C::Deposit { account_no, channel_no, amount }
        | C::Withdraw { account_no, channel_no, amount } => {
            (one(amount), [Some(&*account_no), Some(&*channel_no)])
        }
        C::Transfer { from, to, amount } => (one(amount), [Some(&*from), Some(&*to)]),
        C::Freeze { account_no, amount, .. } => (one(amount), [Some(&*account_no), None]),
        C::Capture { to, amount, .. } => (one(amount), [Some(&*to), None]),
        C::Refund { amount, .. } => (one(amount), [None; 2]),
        C::SetFee { fee_account_no, fixed, .. } => (one(fixed), [Some(&*fee_account_no), None]),
        C::SetSettlementCycle { account_no, t1_clearing_no } => {
            (NO_AMOUNT, [Some(&*account_no), t1_clearing_no.as_ref()])
        }
    };
    Fields { amounts, account_nos }
}

const NO_AMOUNT: [Option<&mut Amount>; 3] = [None, None, None];

/// `body` with every amount in its canonical form (the same values).
pub(crate) fn canonical_body(body: &CommandBody) -> CommandBody {
    let mut body = *body;
    for amount in fields(&mut body).amounts.into_iter().flatten() {
        *amount = amount.normalized();
    }
    body
}

/// Why one SUBMIT entry breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EntryRefusal {
    /// The entry's `tx_id` is 0.
    TxIdZero,
    /// An amount with a scale above 28.
    AmountScale { scale: u8 },
    /// An amount with a trailing zero decimal.
    AmountNotCanonical { amount: Amount },
    /// An account number with a space or an invisible character.
    AccountNo { reason: String },
}

/// Checks one SUBMIT entry against the rules above (the layout was checked by the decoder).
pub(crate) fn check_entry(tx_id: TxId, body: &CommandBody) -> Result<(), EntryRefusal> {
    if tx_id == TxId(0) {
        return Err(EntryRefusal::TxIdZero);
    }
    let mut body = *body;
    let Fields { amounts, account_nos } = fields(&mut body);
    for amount in amounts.into_iter().flatten().map(|amount| *amount) {
        if amount.scale > AMOUNT_SCALE_MAX {
            return Err(EntryRefusal::AmountScale { scale: amount.scale });
        }
        if !amount_is_canonical(amount) {
            return Err(EntryRefusal::AmountNotCanonical { amount });
        }
    }
    for account_no in account_nos.into_iter().flatten() {
        check_account_no(account_no).map_err(|reason| EntryRefusal::AccountNo { reason })?;
    }
    Ok(())
}

/// What a server admits from a client at this point of its connection. They are checked after
/// the header and the checksum and before the body, in PROTOCOL.md's order: request id 0 (any
/// op: closes), an op other than HELLO or PING before authentication (closes), an unknown op,
/// a reply op, HELLO again, then the body, where a SUBMIT's count is checked against
/// `batch_len_max` before its first entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRules {
    /// Whether HELLO succeeded on this connection.
    pub authenticated: bool,
    /// The `batch_len_max` this server announces in HELLO_OK (`1..=BATCH_LEN_MAX`).
    pub batch_len_max: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_ranges_are_sorted_apart_and_cover_the_characters_they_name() {
        let mut sorted = ACCOUNT_NO_REFUSED;
        sorted.sort_unstable();
        for pair in sorted.windows(2) {
            assert!(pair[0].1 < pair[1].0, "ranges overlap: {pair:?}");
        }
        for range in ACCOUNT_NO_REFUSED {
            assert!(range.0 <= range.1, "{range:x?}");
        }
        // Every control and every White_Space character of Rust's Unicode tables is refused.
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            if c.is_control() || c.is_whitespace() {
                assert!(!account_no_char_allowed(c), "U+{:04X}", c as u32);
            }
        }
        for c in ['a', 'Z', '0', '-', '_', '.', 'é', '€', '中', '😀'] {
            assert!(account_no_char_allowed(c), "{c}");
        }
        for c in ['\u{200B}', '\u{FEFF}', '\u{202E}', '\u{00AD}', '\u{E0041}'] {
            assert!(!account_no_char_allowed(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn canonical_amounts_have_no_trailing_zero_decimal() {
        let amount = |mantissa, scale| Amount { mantissa, scale };
        for (mantissa, scale) in [(125, 1), (1250, 0), (0, 0), (-3, 2), (1, 28)] {
            assert!(amount_is_canonical(amount(mantissa, scale)), "{mantissa} {scale}");
        }
        for (mantissa, scale) in [(1250, 2), (0, 1), (10, 1), (1, 29), (-30, 2)] {
            assert!(!amount_is_canonical(amount(mantissa, scale)), "{mantissa} {scale}");
        }
        assert_eq!(amount(12_500, 3).normalized(), amount(125, 1));
        assert_eq!(amount(0, 5).normalized(), amount(0, 0));
    }
}
