//! Currencies and their scales, and the exact conversion of decimal amounts to minor units.

use crate::limits::{AMOUNT_MINOR_MAX, CURRENCY_SCALE_MAX};
use crate::outcome::ResultCode;
use crate::types::{Amount, CurrencyCode};

/// A currency the engine knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CurrencyDef {
    /// Its code.
    pub code: CurrencyCode,
    /// Decimal places of its minor unit.
    pub scale: u8,
}

/// The currencies every new engine starts with (more can be defined by command).
pub const BUILTIN_CURRENCIES: [(&str, u8); 12] = [
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("HKD", 2),
    ("SGD", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("USDT", 6),
    ("BTC", 8),
    ("ETH", 8),
];

const POW10: [i128; CURRENCY_SCALE_MAX as usize + 1] =
    [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// Converts `amount` to minor units of a currency with `scale` decimals: exactly, or not at all.
///
/// Extra decimals are accepted only when they are zeros (`1.500` USD is 150 minor units);
/// any non-zero digit past the currency's scale is rejected, never rounded.
#[inline]
pub fn to_minor(amount: Amount, scale: u8) -> Result<i128, ResultCode> {
    debug_assert!(scale <= CURRENCY_SCALE_MAX);
    if amount.mantissa <= 0 {
        return Err(ResultCode::AmountNotPositive);
    }
    let minor = if amount.scale == scale {
        amount.mantissa
    } else if amount.scale < scale {
        let factor = POW10[(scale - amount.scale) as usize];
        amount.mantissa.checked_mul(factor).ok_or(ResultCode::AmountTooLarge)?
    } else {
        let extra = amount.scale - scale;
        // 10^39 > i128::MAX: a mantissa cannot carry more than 38 extra zero decimals.
        let Some(factor) = 10i128.checked_pow(extra as u32) else {
            return Err(ResultCode::AmountPrecision);
        };
        if amount.mantissa % factor != 0 {
            return Err(ResultCode::AmountPrecision);
        }
        amount.mantissa / factor
    };
    if minor > AMOUNT_MINOR_MAX {
        return Err(ResultCode::AmountTooLarge);
    }
    Ok(minor)
}

/// Formats minor units as a decimal with exactly `scale` decimals (`12345`, 2 → `123.45`).
pub fn format_minor(minor: i128, scale: u8) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{magnitude}");
    }
    let factor = 10u128.pow(scale as u32);
    format!("{sign}{}.{:0width$}", magnitude / factor, magnitude % factor, width = scale as usize)
}
