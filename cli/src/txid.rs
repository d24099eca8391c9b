//! Transaction ids as people type and read them: a UUID (`8-4-4-4-12` hex digits), a decimal
//! number or `0x` hex on input; always the UUID form on output.

use engine::TxId;

/// What `--tx-id` and the tx id arguments accept, for error messages and `--help`.
pub const TX_ID_FORMS: &str =
    "a UUID (8-4-4-4-12 hex digits), a decimal number below 2^128, or 0x and 1..=32 hex digits";

/// Where the dashes of the UUID form are.
const UUID_DASHES: [usize; 4] = [8, 13, 18, 23];
const UUID_LEN: usize = 36;

/// Formats `tx_id` as a UUID: its 128 bits as 32 lower-case hex digits, most significant
/// first, grouped 8-4-4-4-12 (`0x0102..10` is `01020304-0506-0708-090a-0b0c0d0e0f10`).
pub fn format_tx_id(tx_id: TxId) -> String {
    let v = tx_id.0;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        v >> 96,
        (v >> 80) & 0xffff,
        (v >> 64) & 0xffff,
        (v >> 48) & 0xffff,
        v & 0xffff_ffff_ffff
    )
}

/// Parses a tx id in any of the [`TX_ID_FORMS`]. Zero is refused: the ledger's records use it
/// for "no transaction".
pub fn parse_tx_id(text: &str) -> Result<TxId, String> {
    let value = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        parse_hex(hex)
    } else if text.len() == UUID_LEN && UUID_DASHES.iter().all(|&at| text.as_bytes()[at] == b'-') {
        let digits: String = text.chars().filter(|&c| c != '-').collect();
        // 32 digits exactly: a dash anywhere else leaves fewer.
        if digits.len() == 32 {
            parse_hex(&digits)
        } else {
            None
        }
    } else if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u128>().ok()
    } else {
        None
    };
    match value {
        Some(0) => Err("tx id 0 is reserved (it means \"no transaction\")".into()),
        Some(value) => Ok(TxId(value)),
        None => Err(format!("not a tx id: expected {TX_ID_FORMS}")),
    }
}

/// 1..=32 hex digits (no sign, no separators).
fn parse_hex(digits: &str) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(digits, 16).ok()
}

/// A fresh tx id: 128 bits from the operating system's random source (never zero).
pub fn generate_tx_id() -> Result<TxId, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| format!("random source: {error}"))?;
    // Zero (a chance of 2^-128) becomes 1, still unpredictable enough to be unique.
    Ok(TxId(u128::from_le_bytes(bytes).max(1)))
}
