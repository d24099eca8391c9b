//! Every limit of the engine, in one place, with their relationships checked at compile time.

/// Longest external account key, in bytes.
pub const ACCOUNT_NO_LEN_MAX: usize = 32;
/// Longest currency code, in bytes (ISO 4217 codes are 3; crypto tickers run longer).
pub const CURRENCY_CODE_LEN_MAX: usize = 8;
/// Most decimal places a currency may have (DECIMAL(20,8) and finer is not needed).
pub const CURRENCY_SCALE_MAX: u8 = 8;
/// Most currencies one engine knows.
pub const CURRENCIES_MAX: u32 = 1_024;
/// Most accounts one engine holds (`AccountId` is a `u32`; sums must not overflow, see below).
pub const ACCOUNTS_MAX: u32 = 1 << 27;
/// Largest amount of one command, in minor units of its currency.
///
/// DECIMAL(20,8) needs 10^20 minor units; we allow 10^28.
pub const AMOUNT_MINOR_MAX: i128 = 10i128.pow(28);
/// Largest absolute value of any balance, in minor units. A command that would pass it is
/// rejected with `Overflow`, so balances never wrap.
pub const BALANCE_MINOR_MAX: i128 = 10i128.pow(30);
/// Accounts a single command may touch (a failed deposit touches user, channel and risk).
pub const TOUCHED_ACCOUNTS_MAX: usize = 3;
/// Postings one movement writes (a transfer with a fee: three `available` and three
/// `ledger` postings). A cutover is not a movement: it writes two per T+1 account.
pub const POSTINGS_PER_COMMAND_MAX: usize = 8;
/// Default number of finished transactions remembered for idempotency and queries.
pub const TX_RETAINED_DEFAULT: u32 = 1 << 24;
/// Largest retention window the transaction table supports (slot encoding uses `pos + 1: u32`).
pub const TX_RETAINED_MAX: u32 = 1 << 30;
/// Nanoseconds in one (UTC) day: daily limits use `timestamp_ns / NS_PER_DAY`.
pub const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

// A per-currency sum over every account can never overflow i128.
const _: () = assert!(BALANCE_MINOR_MAX.checked_mul(ACCOUNTS_MAX as i128).is_some());
// Any single amount fits inside a balance.
const _: () = assert!(AMOUNT_MINOR_MAX < BALANCE_MINOR_MAX);
// The largest amount at the largest scale still fits when rescaled from scale 0.
const _: () =
    assert!(AMOUNT_MINOR_MAX.checked_mul(10i128.pow(CURRENCY_SCALE_MAX as u32)).is_some());
const _: () = assert!(TX_RETAINED_DEFAULT <= TX_RETAINED_MAX);
const _: () = assert!(ACCOUNT_NO_LEN_MAX <= u8::MAX as usize);
