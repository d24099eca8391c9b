//! The command line: clap definitions (their doc comments are the `--help` texts), the value
//! parsers that check every argument before anything is sent, and [`Cli::plan`], which turns
//! the arguments into the one request to make.

use std::path::PathBuf;

use clap::{Args, ColorChoice, Parser, Subcommand, ValueEnum};
use engine::{
    AccountKind, AccountLimits, AccountNo, AccountStatus, Amount, CommandBody, CurrencyCode,
    FeeKind, TxId,
};

use crate::exit::ErrorKind;
use crate::txid::parse_tx_id;
use protocol::limits::{REQUEST_TIMEOUT_MS_DEFAULT, TIMEOUT_MS_MAX};

/// Where `ledgerd` listens unless `--addr` says otherwise.
pub const ADDR_DEFAULT: &str = "127.0.0.1:7070";

/// The channel system account of deposits and withdrawals unless `--channel` says otherwise.
pub const CHANNEL_DEFAULT: &str = "bank";

const GLOBAL: &str = "Global options (anywhere on the line)";

const ABOUT: &str = "Command-line client of the ledger server (ledgerd).";

const LONG_ABOUT: &str = "\
Command-line client of the ledger server (ledgerd): opens accounts, moves money, and reads
balances and transactions. Output is plain text for people, or one JSON object per run with
--json (accepted anywhere on the line). Amounts are exact decimals (never floats) and are
printed with exactly the currency's decimals (USD 10.00, JPY 1000, BTC 0.00000001).

Every command that changes the ledger carries a tx id (--tx-id). When it is omitted, a random
one is generated and printed (tx_id: ...). If the outcome of a command is unknown (exit code 4:
the server did not answer in time), re-sending exactly the same command with the same --tx-id
is safe: the ledger executes a tx id at most once and answers a retry with the first outcome
(reported as a duplicate).

Credentials: --credentials FILE, else $LEDGER_CREDENTIALS, else ./data/admin.credentials (the
admin's file ledgerd writes on its first start); the first admin entry is used, else the first.";

const AFTER_LONG_HELP: &str = "\
Exit codes:
  0  ok (also a duplicate: the tx id had been executed before, nothing changed now)
  1  rejected by the ledger (the reason is printed), or the account or transaction is not found
  2  usage error: a malformed argument; nothing was sent
  3  connection, credentials, authentication or protocol error; nothing was executed
  4  outcome unknown: the command may or may not have been executed; look it up with
     `ledger tx TX_ID`, or re-send the same command with the same --tx-id";

/// `ledger`: the command line of the ledger client.
#[derive(Parser, Debug)]
#[command(
    name = "ledger",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    color = ColorChoice::Never
)]
pub struct Cli {
    /// Address of ledgerd; for a replica group, its nodes' addresses separated by commas (the
    /// request goes to the primary, and moves with it on a failover).
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "HOST:PORT[,...]", default_value = ADDR_DEFAULT)]
    pub addr: String,

    /// Credentials file [default: $LEDGER_CREDENTIALS, else ./data/admin.credentials].
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub credentials: Option<PathBuf>,

    /// Speak TLS to ledgerd, trusting only the CA certificate(s) in FILE (PEM).
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// With --tls-ca: present this client certificate (PEM chain) for mutual TLS.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE", requires_all = ["tls_ca", "tls_client_key"])]
    pub tls_client_cert: Option<PathBuf>,

    /// With --tls-client-cert: its private key (PEM).
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,

    /// With --tls-ca: the name the server's certificate must carry [default: the IP address
    /// connected to].
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "NAME", requires = "tls_ca")]
    pub tls_server_name: Option<String>,

    /// Print one JSON object instead of text (see cli/CLI.md for the fields).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// Deadline of each request, and of connecting, in milliseconds (1..=3600000).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        value_name = "MS",
        default_value_t = REQUEST_TIMEOUT_MS_DEFAULT,
        value_parser = clap::value_parser!(u32).range(1..=TIMEOUT_MS_MAX as i64)
    )]
    pub timeout_ms: u32,

    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Open accounts, change their status or limits (admin role).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Define currencies (admin role).
    #[command(subcommand)]
    Currency(CurrencyCmd),
    /// Money arriving through a channel: credited at once, settled later.
    ///
    /// Credits ACCOUNT_NO's available balance at once; the deposit is then pending settlement
    /// with the channel (`ledger settle begin|confirm|fail DEPOSIT_TX_ID`). The channel is a
    /// system account mirroring the bank or payment provider: it must exist, in the account's
    /// currency (`ledger account open bank --user 0 --currency USD --kind system`). The channel
    /// name is that account's number: a `ledgerd --channel bank=ADDR` settles it with the bank
    /// at ADDR by itself (bank/BANK.md).
    Deposit(ChannelArgs),
    /// Money leaving through a channel: held until the withdrawal settles.
    ///
    /// Moves AMOUNT from ACCOUNT_NO's available to frozen balance until the channel settles it
    /// (`ledger settle begin|confirm|fail WITHDRAWAL_TX_ID`). The channel is a system account
    /// mirroring the bank or payment provider: it must exist, in the account's currency
    /// (`ledger account open bank --user 0 --currency USD --kind system`).
    Withdraw(ChannelArgs),
    /// Move AMOUNT from one account to another, final at once.
    Transfer(TransferArgs),
    /// Hold AMOUNT on an account (available -> frozen); its tx id names the hold.
    Freeze(FreezeArgs),
    /// Release what a hold still holds back to available.
    Unfreeze(UnfreezeArgs),
    /// Pay (part of) a hold to another account.
    Capture(CaptureArgs),
    /// Drive the settlement of a pending deposit or withdrawal with its channel.
    #[command(subcommand)]
    Settle(SettleCmd),
    /// Give back (part of) a settled transaction.
    Refund(RefundArgs),
    /// Fee schedules (admin role).
    #[command(subcommand)]
    Fees(FeesCmd),
    /// Close a business day (admin role): T+1 accounts' pending ledger amounts move, and the
    /// day's per-channel settlement totals are closed. Each date closes once, in order.
    Cutover(CutoverArgs),
    /// Compare a channel's statement (CSV with a header and at least `tx_id,amount`, amounts
    /// in major units) with the ledger's settlement file of a business day, written by
    /// `ledgerd --channel` at the cutover into DATA_DIR/settlement/. Lists every missing,
    /// extra and differing line by tx id, and the totals; exits 1 when anything differs.
    /// Reads local files only.
    Reconcile(ReconcileArgs),
    /// A replica group, as its etcd cluster sees it.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// The server's credential store (local files only; restart ledgerd to load a change).
    #[command(subcommand)]
    Credentials(CredentialsCmd),
    /// Show an account: balances, currency, kind, status and limits.
    Balance(BalanceArgs),
    /// Show an account's exposure: deposits made available but not yet settled by their
    /// channel (`unsettled`), how much of them is already spent (`exposure`), and the limit.
    Exposure(BalanceArgs),
    /// Show a transaction: kind, result, lifecycle state and history, amount, accounts.
    Tx(TxArgs),
}

/// `ledger account ...`.
#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Open an account with zero balances.
    ///
    /// Deposits and withdrawals need a channel: a system account (`--kind system`) per currency,
    /// e.g. `ledger account open bank --user 0 --currency USD --kind system`.
    Open(OpenArgs),
    /// Set an account's status: active, debit-frozen (may receive, not send) or closed (final;
    /// only an empty account can be closed).
    Status(StatusArgs),
    /// Replace an account's limits: a limit whose flag is omitted is removed.
    Limits(LimitsArgs),
    /// Put a user account on T+1 (`--t1 CLEARING_NO`, a system account carrying its pending
    /// ledger until the cutover) or back on T+0 (no flag; only when nothing is pending).
    Cycle(CycleArgs),
}

/// `ledger account cycle`.
#[derive(Args, Debug)]
pub struct CycleArgs {
    /// The account.
    #[arg(value_name = "ACCOUNT_NO", value_parser = parse_account_no)]
    pub account_no: AccountNo,
    /// T+1 through this clearing system account; omitted: T+0.
    #[arg(long = "t1", value_name = "CLEARING_NO", value_parser = parse_account_no)]
    pub t1: Option<AccountNo>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger cluster`.
#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// The group's epoch, primary and log head, every live replica with its lag in records,
    /// and each etcd member (reads etcd only; no ledgerd needs to be up). Exits 1 when the
    /// group has no primary.
    Status(ClusterStatusArgs),
}

/// `ledger credentials`.
#[derive(Subcommand, Debug)]
pub enum CredentialsCmd {
    /// Adds a client: a new random secret in its own file (mode 0600), its hash in the store.
    Add(CredentialsAddArgs),
}

/// A client's role, as the store names it.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleArg {
    /// Queries only.
    Read,
    /// Money movements and queries.
    Transact,
    /// Everything.
    Admin,
}

/// `ledger credentials add`.
#[derive(Args, Debug)]
pub struct CredentialsAddArgs {
    /// The new client's id (1..=64 of A-Z a-z 0-9 . _ -).
    #[arg(value_name = "CLIENT_ID")]
    pub client_id: String,
    /// What it may do.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The server's store (ledgerd's DATA_DIR/credentials).
    #[arg(long, value_name = "FILE", default_value = "data/credentials")]
    pub store: PathBuf,
    /// The client's new file, with its secret (default: CLIENT_ID.credentials here).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `ledger cluster status`.
#[derive(Args, Debug)]
pub struct ClusterStatusArgs {
    /// The etcd cluster's client endpoints, comma-separated (what ledgerd's --cluster got).
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub etcd: String,
    /// The replica group's ledger name (ledgerd's --ledger).
    #[arg(long, value_name = "NAME", default_value = "main")]
    pub ledger: String,
}

/// `ledger reconcile`.
#[derive(Args, Debug)]
pub struct ReconcileArgs {
    /// The channel (its system account's account_no).
    #[arg(long, value_name = "NAME", value_parser = parse_account_no)]
    pub channel: AccountNo,
    /// The channel's statement.
    #[arg(value_name = "STATEMENT.csv")]
    pub statement: PathBuf,
    /// The business day; default: the newest settlement file of the channel.
    #[arg(long = "business-date", value_name = "YYYY-MM-DD", value_parser = parse_business_date)]
    pub business_date: Option<u32>,
    /// The ledger's data directory (where `settlement/` is).
    #[arg(long = "data-dir", value_name = "DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// `ledger cutover`.
#[derive(Args, Debug)]
pub struct CutoverArgs {
    /// The business date to close, YYYY-MM-DD.
    #[arg(long = "business-date", value_name = "YYYY-MM-DD", value_parser = parse_business_date)]
    pub business_date: u32,
    /// The server's data directory, where `ledgerd` writes one settlement file per channel
    /// (DATA_DIR/settlement/CHANNEL-YYYYMMDD.csv); the files found there are printed.
    #[arg(long = "data-dir", value_name = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `YYYY-MM-DD` as the number YYYYMMDD (the engine checks it is a real date).
fn parse_business_date(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a date YYYY-MM-DD");
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else { return Err(bad()) };
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return Err(bad());
    }
    let number = |part: &str| part.parse::<u32>().map_err(|_| bad());
    Ok(number(year)? * 10_000 + number(month)? * 100 + number(day)?)
}

/// `ledger currency ...`.
#[derive(Subcommand, Debug)]
pub enum CurrencyCmd {
    /// Define a currency and its number of decimals (0..=8). The ledger starts with USD, EUR,
    /// GBP, CHF, CNY, HKD, SGD (2), JPY, KRW (0), USDT (6), BTC and ETH (8).
    Define(DefineArgs),
}

/// `ledger fees ...`.
#[derive(Subcommand, Debug)]
pub enum FeesCmd {
    /// Replace the fee one kind of movement pays in one currency.
    ///
    /// Each such movement then also pays FIXED + floor(amount × RATE_BPS / 10000) in minor
    /// units (rounded down) to FEE_ACCOUNT_NO, a system account in that currency. The payer
    /// pays the fee on top of the amount (for a capture: out of the hold). `--fixed 0
    /// --rate-bps 0` removes the fee.
    Set(FeeSetArgs),
}

/// `ledger fees set`.
#[derive(Args, Debug)]
pub struct FeeSetArgs {
    /// The movements that pay the fee.
    #[arg(value_enum, value_name = "KIND")]
    pub kind: FeeKindArg,
    /// Their currency.
    #[arg(value_name = "CUR", value_parser = parse_currency)]
    pub currency: CurrencyCode,
    /// The system account credited with the fees.
    #[arg(value_name = "FEE_ACCOUNT_NO", value_parser = parse_account_no)]
    pub fee_account_no: AccountNo,
    /// Fixed part per movement.
    #[arg(long, value_name = "AMOUNT", value_parser = parse_amount, default_value = "0")]
    pub fixed: Amount,
    /// Proportional part in basis points of the amount (0..=10000).
    #[arg(long = "rate-bps", value_name = "N", default_value_t = 0)]
    pub rate_bps: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `KIND` of `ledger fees set`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeKindArg {
    /// Internal transfers.
    Transfer,
    /// Captures from holds.
    Capture,
    /// Withdrawals (given back if the channel refuses the withdrawal).
    Withdraw,
}

/// `ledger settle ...`: one step of a deposit's or withdrawal's settlement.
#[derive(Subcommand, Debug)]
pub enum SettleCmd {
    /// The channel took the transaction: pending_settlement -> settling.
    Begin(SettleArgs),
    /// The channel confirmed: settling -> settled; ledger balances move.
    Confirm(SettleArgs),
    /// The channel refused (or the transaction is abandoned): -> failed, effects compensated.
    Fail(SettleArgs),
}

/// The `--tx-id` of every command that changes the ledger.
#[derive(Args, Debug, Clone, Copy)]
pub struct TxIdArg {
    /// This command's id: a UUID (8-4-4-4-12 hex), a decimal number or 0x hex. Generated and
    /// printed when omitted. Re-sending a command with the same id is safe (executed at most
    /// once).
    #[arg(long = "tx-id", value_name = "ID", value_parser = parse_tx_id)]
    pub tx_id: Option<TxId>,
}

/// `ledger account open`.
#[derive(Args, Debug)]
pub struct OpenArgs {
    /// The account's number: 1..=32 bytes of printable UTF-8.
    #[arg(value_name = "ACCOUNT_NO", value_parser = parse_account_no)]
    pub account_no: AccountNo,
    /// Owner's user id.
    #[arg(long = "user", value_name = "ID")]
    pub user_id: u64,
    /// Currency of the account, e.g. USD.
    #[arg(long, value_name = "CUR", value_parser = parse_currency)]
    pub currency: CurrencyCode,
    /// user (a customer: never negative), system (a channel, fees) or risk (the currency's
    /// receivables for failed deposits, at most one per currency).
    #[arg(long, value_enum, default_value_t = KindArg::User)]
    pub kind: KindArg,
    /// Largest single outgoing amount (transfer, withdrawal, hold).
    #[arg(long = "tx-max", value_name = "AMOUNT", value_parser = parse_amount)]
    pub tx_max: Option<Amount>,
    /// Largest total outflow per UTC day.
    #[arg(long = "daily-max", value_name = "AMOUNT", value_parser = parse_amount)]
    pub daily_max: Option<Amount>,
    /// Largest exposure: unsettled deposit money the account may have spent (0: none).
    #[arg(long = "exposure-max", value_name = "AMOUNT", value_parser = parse_amount)]
    pub exposure_max: Option<Amount>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger account status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The account.
    #[arg(value_name = "ACCOUNT_NO", value_parser = parse_account_no)]
    pub account_no: AccountNo,
    /// The new status.
    #[arg(value_enum, value_name = "STATUS")]
    pub status: StatusArg,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger account limits`.
#[derive(Args, Debug)]
pub struct LimitsArgs {
    /// The account.
    #[arg(value_name = "ACCOUNT_NO", value_parser = parse_account_no)]
    pub account_no: AccountNo,
    /// Largest single outgoing amount; omitted: no such limit.
    #[arg(long = "tx-max", value_name = "AMOUNT", value_parser = parse_amount)]
    pub tx_max: Option<Amount>,
    /// Largest total outflow per UTC day; omitted: no such limit.
    #[arg(long = "daily-max", value_name = "AMOUNT", value_parser = parse_amount)]
    pub daily_max: Option<Amount>,
    /// Largest exposure (unsettled deposit money the account may have spent, 0: none);
    /// omitted: no such limit.
    #[arg(long = "exposure-max", value_name = "AMOUNT", value_parser = parse_amount)]
    pub exposure_max: Option<Amount>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger currency define`.
#[derive(Args, Debug)]
pub struct DefineArgs {
    /// The code: 3..=8 upper-case ASCII letters or digits.
    #[arg(value_name = "CODE", value_parser = parse_currency)]
    pub code: CurrencyCode,
    /// Number of decimals of the minor unit (0..=8).
    #[arg(long, value_name = "N")]
    pub scale: u8,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger deposit` and `ledger withdraw`.
#[derive(Args, Debug)]
pub struct ChannelArgs {
    /// The customer's account.
    #[arg(value_name = "ACCOUNT_NO", value_parser = parse_account_no)]
    pub account_no: AccountNo,
    /// The amount, e.g. 10.00.
    #[arg(value_name = "AMOUNT", value_parser = parse_amount)]
    pub amount: Amount,
    /// The channel's system account (`account_no`); it must exist (opened with --kind system).
    #[arg(long, value_name = "NAME", default_value = CHANNEL_DEFAULT, value_parser = parse_account_no)]
    pub channel: AccountNo,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger transfer`.
#[derive(Args, Debug)]
pub struct TransferArgs {
    /// The debited account.
    #[arg(value_name = "FROM", value_parser = parse_account_no)]
    pub from: AccountNo,
    /// The credited account.
    #[arg(value_name = "TO", value_parser = parse_account_no)]
    pub to: AccountNo,
    /// The amount, e.g. 12.50.
    #[arg(value_name = "AMOUNT", value_parser = parse_amount)]
    pub amount: Amount,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger freeze`.
#[derive(Args, Debug)]
pub struct FreezeArgs {
    /// The account.
    #[arg(value_name = "ACCOUNT_NO", value_parser = parse_account_no)]
    pub account_no: AccountNo,
    /// The amount to hold.
    #[arg(value_name = "AMOUNT", value_parser = parse_amount)]
    pub amount: Amount,
    /// The hold lapses by itself this many milliseconds from now (this machine's clock).
    /// To re-send the command, use the --expires-at-ns it printed instead.
    #[arg(long = "expires-in-ms", value_name = "N", conflicts_with = "expires_at_ns")]
    pub expires_in_ms: Option<u64>,
    /// The hold lapses by itself at this time (nanoseconds since the Unix epoch).
    #[arg(long = "expires-at-ns", value_name = "NS")]
    pub expires_at_ns: Option<u64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger unfreeze`.
#[derive(Args, Debug)]
pub struct UnfreezeArgs {
    /// The tx id of the freeze.
    #[arg(value_name = "HOLD_TX_ID", value_parser = parse_tx_id)]
    pub hold: TxId,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger capture`.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// The tx id of the freeze.
    #[arg(value_name = "HOLD_TX_ID", value_parser = parse_tx_id)]
    pub hold: TxId,
    /// The credited account.
    #[arg(value_name = "TO", value_parser = parse_account_no)]
    pub to: AccountNo,
    /// The amount, at most what the hold still holds.
    #[arg(value_name = "AMOUNT", value_parser = parse_amount)]
    pub amount: Amount,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger settle begin|confirm|fail`.
#[derive(Args, Debug)]
pub struct SettleArgs {
    /// The tx id of the deposit or withdrawal (or, for fail, of a hold).
    #[arg(value_name = "TARGET_TX_ID", value_parser = parse_tx_id)]
    pub target: TxId,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger refund`.
#[derive(Args, Debug)]
pub struct RefundArgs {
    /// The tx id of the settled transaction.
    #[arg(value_name = "ORIGINAL_TX_ID", value_parser = parse_tx_id)]
    pub original: TxId,
    /// The amount to give back; all refunds together never exceed the original.
    #[arg(value_name = "AMOUNT", value_parser = parse_amount)]
    pub amount: Amount,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tx: TxIdArg,
}

/// `ledger balance`.
#[derive(Args, Debug)]
pub struct BalanceArgs {
    /// The account.
    #[arg(value_name = "ACCOUNT_NO", value_parser = parse_account_no)]
    pub account_no: AccountNo,
}

/// `ledger tx`.
#[derive(Args, Debug)]
pub struct TxArgs {
    /// The transaction's id: a UUID, a decimal number or 0x hex.
    #[arg(value_name = "TX_ID", value_parser = parse_tx_id)]
    pub tx_id: TxId,
}

/// `--kind`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindArg {
    /// A customer's account.
    User,
    /// A channel or fee account.
    System,
    /// The currency's risk account.
    Risk,
}

/// The status of `ledger account status`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusArg {
    /// Normal operation.
    Active,
    /// May receive money but not send it.
    #[value(alias = "debit_frozen")]
    DebitFrozen,
    /// Final: no movement either way.
    Closed,
}

/// Parses an account number (1..=32 bytes of printable UTF-8).
pub fn parse_account_no(text: &str) -> Result<AccountNo, String> {
    AccountNo::new(text.as_bytes()).map_err(|error| {
        format!("not an account number ({error}): 1..=32 bytes of printable UTF-8")
    })
}

/// Parses a currency code (3..=8 upper-case ASCII letters or digits).
pub fn parse_currency(text: &str) -> Result<CurrencyCode, String> {
    CurrencyCode::new(text).map_err(|error| {
        format!("not a currency code ({error}): 3..=8 upper-case ASCII letters or digits")
    })
}

/// Parses an amount exactly (`10`, `12.50`, `0.00000001`): digits with at most one `.`.
///
/// Trailing zero decimals are dropped (`12.50` is sent as `12.5`): the ledger tells a retry
/// from a conflict by the command's content, so one value must always make the same command,
/// however it was typed.
pub fn parse_amount(text: &str) -> Result<Amount, String> {
    let amount = text.parse::<Amount>().map_err(|_| {
        "not a decimal amount: digits with at most one '.', e.g. 10, 12.50, 0.00000001 \
         (at most 28 decimals)"
            .to_string()
    })?;
    Ok(shortest(amount))
}

/// The same value with no trailing zero decimals.
pub fn shortest(amount: Amount) -> Amount {
    let Amount { mut mantissa, mut scale } = amount;
    while scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    Amount { mantissa, scale }
}

/// The one request a run makes.
// One value per run: the size difference between a command and a key costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Submit one command.
    Submit(Submission),
    /// Read an account.
    Balance(AccountNo),
    /// Read an account's exposure.
    Exposure(AccountNo),
    /// Read a transaction.
    Tx(TxId),
}

/// A command to submit, with what the messages about it need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submission {
    /// Its tx id (given with `--tx-id`, or generated).
    pub tx_id: TxId,
    /// Whether the tx id was generated.
    pub generated: bool,
    /// The command.
    pub body: CommandBody,
    /// A freeze whose expiry came from `--expires-in-ms` (a retry must give it absolutely).
    pub relative_expiry: bool,
}

/// What a run may draw from the outside world, given by the binary (tests give fixed values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEnv {
    /// Now, in nanoseconds since the Unix epoch (for `--expires-in-ms`).
    pub now_ns: u64,
    /// The tx id to use when `--tx-id` is omitted, or why none could be made.
    pub fresh_tx_id: Result<TxId, String>,
}

const NS_PER_MS: u64 = 1_000_000;

/// A query, or a command to submit under a tx id.
enum Planned {
    Query(Plan),
    Command(TxIdArg, CommandBody),
}

impl Cli {
    /// The request this command line asks for. `Err` is what to report instead: a usage
    /// error the parsers cannot see (an expiry past the year 2554), or a missing random source.
    pub fn plan(&self, env: &RunEnv) -> Result<Plan, (ErrorKind, String)> {
        let (tx, body) = match planned(&self.command, env.now_ns)? {
            Planned::Query(plan) => return Ok(plan),
            Planned::Command(tx, body) => (tx, body),
        };
        let relative_expiry =
            matches!(&self.command, Cmd::Freeze(args) if args.expires_in_ms.is_some());
        let (tx_id, generated) = match (tx.tx_id, &env.fresh_tx_id) {
            (Some(tx_id), _) => (tx_id, false),
            (None, Ok(fresh)) => (*fresh, true),
            (None, Err(reason)) => {
                let message = format!("cannot generate a tx id ({reason}): give one with --tx-id");
                return Err((ErrorKind::Connection, message));
            }
        };
        Ok(Plan::Submit(Submission { tx_id, generated, body, relative_expiry }))
    }
}

fn planned(command: &Cmd, now_ns: u64) -> Result<Planned, (ErrorKind, String)> {
    let (tx, body) = match command {
        Cmd::Balance(args) => return Ok(Planned::Query(Plan::Balance(args.account_no))),
        Cmd::Exposure(args) => return Ok(Planned::Query(Plan::Exposure(args.account_no))),
        Cmd::Tx(args) => return Ok(Planned::Query(Plan::Tx(args.tx_id))),
        Cmd::Account(command) => account_command(command),
        Cmd::Currency(CurrencyCmd::Define(args)) => {
            (args.tx, CommandBody::DefineCurrency { code: args.code, scale: args.scale })
        }
        Cmd::Deposit(args) => {
            let (account_no, channel_no, amount) = (args.account_no, args.channel, args.amount);
            (args.tx, CommandBody::Deposit { account_no, channel_no, amount })
        }
        Cmd::Withdraw(args) => {
            let (account_no, channel_no, amount) = (args.account_no, args.channel, args.amount);
            (args.tx, CommandBody::Withdraw { account_no, channel_no, amount })
        }
        Cmd::Transfer(args) => {
            (args.tx, CommandBody::Transfer { from: args.from, to: args.to, amount: args.amount })
        }
        Cmd::Freeze(args) => (args.tx, freeze_command(args, now_ns)?),
        Cmd::Unfreeze(args) => (args.tx, CommandBody::Unfreeze { hold: args.hold }),
        Cmd::Capture(args) => {
            (args.tx, CommandBody::Capture { hold: args.hold, to: args.to, amount: args.amount })
        }
        Cmd::Settle(command) => settle_command(command),
        Cmd::Refund(args) => {
            (args.tx, CommandBody::Refund { original: args.original, amount: args.amount })
        }
        Cmd::Cutover(args) => (args.tx, CommandBody::Cutover { business_date: args.business_date }),
        Cmd::Reconcile(_) => {
            let message = "reconcile reads local files and is run before planning";
            return Err((ErrorKind::Usage, message.into()));
        }
        Cmd::Cluster(_) => {
            let message = "cluster status reads etcd and is run before planning";
            return Err((ErrorKind::Usage, message.into()));
        }
        Cmd::Credentials(_) => {
            let message = "credentials commands change local files and are run before planning";
            return Err((ErrorKind::Usage, message.into()));
        }
        Cmd::Fees(FeesCmd::Set(args)) => {
            let kind = match args.kind {
                FeeKindArg::Transfer => FeeKind::Transfer,
                FeeKindArg::Capture => FeeKind::Capture,
                FeeKindArg::Withdraw => FeeKind::Withdraw,
            };
            let body = CommandBody::SetFee {
                kind,
                currency: args.currency,
                fee_account_no: args.fee_account_no,
                fixed: args.fixed,
                rate_bps: args.rate_bps,
            };
            (args.tx, body)
        }
    };
    Ok(Planned::Command(tx, body))
}

/// A freeze; `--expires-in-ms` counts from `now_ns` (this machine's clock).
fn freeze_command(args: &FreezeArgs, now_ns: u64) -> Result<CommandBody, (ErrorKind, String)> {
    let expires_ns = match (args.expires_in_ms, args.expires_at_ns) {
        (Some(in_ms), _) => Some(
            in_ms
                .checked_mul(NS_PER_MS)
                .and_then(|in_ns| now_ns.checked_add(in_ns))
                .ok_or((ErrorKind::Usage, "--expires-in-ms is too large".into()))?,
        ),
        (None, at_ns) => at_ns,
    };
    Ok(CommandBody::Freeze { account_no: args.account_no, amount: args.amount, expires_ns })
}

fn settle_command(command: &SettleCmd) -> (TxIdArg, CommandBody) {
    match command {
        SettleCmd::Begin(args) => (args.tx, CommandBody::SettleBegin { target: args.target }),
        SettleCmd::Confirm(args) => (args.tx, CommandBody::SettleConfirm { target: args.target }),
        SettleCmd::Fail(args) => (args.tx, CommandBody::SettleFail { target: args.target }),
    }
}

fn account_command(command: &AccountCmd) -> (TxIdArg, CommandBody) {
    match command {
        AccountCmd::Open(args) => {
            let kind = match args.kind {
                KindArg::User => AccountKind::User,
                KindArg::System => AccountKind::System,
                KindArg::Risk => AccountKind::Risk,
            };
            let body = CommandBody::OpenAccount {
                account_no: args.account_no,
                user_id: args.user_id,
                currency: args.currency,
                kind,
                limits: AccountLimits {
                    tx_amount_max: args.tx_max,
                    daily_debit_max: args.daily_max,
                    exposure_max: args.exposure_max,
                },
            };
            (args.tx, body)
        }
        AccountCmd::Status(args) => {
            let status = match args.status {
                StatusArg::Active => AccountStatus::Active,
                StatusArg::DebitFrozen => AccountStatus::DebitFrozen,
                StatusArg::Closed => AccountStatus::Closed,
            };
            (args.tx, CommandBody::SetAccountStatus { account_no: args.account_no, status })
        }
        AccountCmd::Limits(args) => {
            let limits = AccountLimits {
                tx_amount_max: args.tx_max,
                daily_debit_max: args.daily_max,
                exposure_max: args.exposure_max,
            };
            (args.tx, CommandBody::SetAccountLimits { account_no: args.account_no, limits })
        }
        AccountCmd::Cycle(args) => {
            let body = CommandBody::SetSettlementCycle {
                account_no: args.account_no,
                t1_clearing_no: args.t1,
            };
            (args.tx, body)
        }
    }
}
