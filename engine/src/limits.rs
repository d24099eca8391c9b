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
/// Fewest slots of the transaction index (it has `2 × tx_retained` slots, rounded up to a
/// power of two, and at least this many): with a small window, open transactions beyond it
/// still have room for tens of thousands. The index is sized at start and never rehashed.
pub const INDEX_SLOTS_MIN: usize = 1 << 16;
/// Holds open at once; a `Freeze` beyond it is `TooManyHolds`.
pub const HOLDS_OPEN_MAX: u32 = 1 << 22;
/// Deposits and withdrawals pending settlement at once; one more is
/// `TooManyPendingSettlements`.
pub const SETTLEMENTS_PENDING_MAX: u32 = 1 << 22;
/// Expired holds one command releases before it is applied, earliest first. The rest stay
/// frozen until later commands release them (a later issue adds a time tick for that); an
/// expired hold is already refused to `Capture` and `Unfreeze` (`HoldReleased`).
pub const EXPIRIES_PER_COMMAND_MAX: u32 = 32;
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
// With the default window, the transaction index (2 × window slots, at most 3/4 full) has room
// for every open hold and pending settlement beyond the window: it never refuses.
const _: () = assert!(
    (TX_RETAINED_DEFAULT as u64 + HOLDS_OPEN_MAX as u64 + SETTLEMENTS_PENDING_MAX as u64) * 4
        <= (TX_RETAINED_DEFAULT as u64 * 2) * 3
);
// A record keeps an amount in 96 bits.
const _: () = assert!(AMOUNT_MINOR_MAX < 1 << 95);
// A movement's postings plus a full round of expiries fit one command's effects.
const _: () = assert!(POSTINGS_PER_COMMAND_MAX + 2 * EXPIRIES_PER_COMMAND_MAX as usize <= 128);

// Worst-case work of one command on the writer thread (n = accounts, w = `tx_retained`):
//
// - Every command: one content digest (≤ 128 bytes hashed), one transaction-index probe
//   (load ≤ 3/4, so expected O(1); never rehashed: the index is sized at start, it holds at
//   most the window plus the open transactions, and a command that would open one more than
//   fits is refused with `CapacityExceeded`), one ring insert that may move one evicted open record to the pinned
//   slab (amortized O(1): the slab's `Vec` doubles), and at most `EXPIRIES_PER_COMMAND_MAX`
//   hold releases, each O(log holds) (`BTreeSet` of expiries) plus two postings.
// - A movement (transfer, deposit, withdraw, freeze, capture, refund, settle): at most two
//   account-index probes, three accounts, `POSTINGS_PER_COMMAND_MAX` postings, O(log n) for
//   a T+1 or exposure entry (`BTreeMap`), O(1) expected for a hold or fee map entry.
// - A retry or conflict: the above lookups plus at most two account-index probes to compare
//   the stored accounts; nothing is written.
// - `OpenAccount`: amortized O(1), but the command that fills the account table or index
//   past its size doubles it: O(n) copy or rehash, in `OpenAccount` only, never in a
//   movement (left for a later issue: size at start or grow incrementally).
// - `Cutover`: O(T+1 accounts with a pending amount + channels that settled that day), one
//   `Vec` of them; two postings per T+1 account. It is an admin command, once per day.
// - `SetFee`, `DefineCurrency`: O(currencies ≤ CURRENCIES_MAX) to find the currency.
