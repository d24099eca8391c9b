//! What a run found out ([`Report`]) and how it is printed: text for people or one JSON
//! object ([`render`]), with the exit code. Pure functions of their input, so every output
//! shape is tested from constructed values.

use engine::{
    format_minor, AccountId, AccountKind, AccountNo, AccountStatus, AccountView, Amount,
    BalanceView, CommandBody, CurrencyCode, ResultCode, TxId, TxState, TxView,
};

use crate::args::Submission;
use crate::json::JsonObject;
use crate::txid::format_tx_id;
use protocol::wire::{ErrorCode, WireOutcome};

pub use crate::exit::{ErrorKind, Exit};

/// One touched account's balances after a command, with what is needed to print them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// The engine's id of the account.
    pub account_id: AccountId,
    /// Its number; `None` when the command did not name it (the risk account of a failed
    /// deposit), so it could not be looked up.
    pub account_no: Option<AccountNo>,
    /// Its currency.
    pub currency: CurrencyCode,
    /// The currency's decimals.
    pub scale: u8,
    /// Usable now, in minor units.
    pub available_minor: i128,
    /// Held.
    pub frozen_minor: i128,
    /// Settled with the outside world.
    pub ledger_minor: i128,
}

/// A submitted command and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// What was sent.
    pub submission: Submission,
    /// The ledger's answer.
    pub outcome: WireOutcome,
    /// The outcome's balances, resolved to account numbers and currencies.
    pub balances: Vec<Balance>,
    /// For a command that names another transaction (hold, settlement target, refunded
    /// original), that transaction's state after the command, if it could be read.
    pub target_state: Option<TxState>,
    /// What could not be looked up after the command (balances left out, target state).
    pub warning: Option<String>,
    /// For a cutover: the settlement files `ledgerd` wrote for that business date.
    pub settlement_files: Vec<String>,
}

/// A transaction and the currency its amounts are in (if it could be found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxReport {
    /// The transaction.
    pub view: TxView,
    /// The currency and scale of its debit (else credit) account.
    pub money: Option<(CurrencyCode, u8)>,
    /// Why the currency could not be found, if it could not.
    pub warning: Option<String>,
}

/// What a run found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A command was executed, or rejected (exit 0 or 1).
    Submitted(Box<Submitted>),
    /// Nobody knows whether the command was executed (exit 4).
    OutcomeUnknown {
        /// What was sent.
        submission: Submission,
        /// What happened.
        reason: String,
    },
    /// `ledger balance` (exit 0).
    Account(AccountView),
    /// `ledger tx` (exit 0).
    Tx(TxReport),
    /// `ledger exposure` (exit 0).
    Exposure(protocol::wire::ExposureReply),
    /// `ledger balance` or `ledger tx` of something the ledger does not know (exit 1).
    NotFound {
        /// `account_not_found` or `tx_not_found`.
        result: ResultCode,
        /// For people.
        message: String,
    },
    /// No answer from the ledger (exit 2 or 3).
    Error {
        /// Why.
        kind: ErrorKind,
        /// For people.
        message: String,
        /// The server's ERROR code, if it sent one.
        code: Option<ErrorCode>,
        /// The command that was not executed, if any.
        submission: Option<Submission>,
    },
}

impl Report {
    /// An [`Report::Error`] without code or command.
    pub fn error(kind: ErrorKind, message: &str) -> Report {
        Report::Error { kind, message: message.into(), code: None, submission: None }
    }

    /// The exit code.
    pub fn exit(&self) -> Exit {
        match self {
            Report::Submitted(submitted) if submitted.outcome.is_ok() => Exit::Ok,
            Report::Submitted(_) | Report::NotFound { .. } => Exit::Rejected,
            Report::OutcomeUnknown { .. } => Exit::OutcomeUnknown,
            Report::Account(_) | Report::Tx(_) | Report::Exposure(_) => Exit::Ok,
            Report::Error { kind, .. } => kind.exit(),
        }
    }
}

/// What to print, and the exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The exit code.
    pub exit: Exit,
}

/// Renders `report` as text for people, or as one JSON object on one line (on stdout, also
/// for errors).
pub fn render(report: &Report, json: bool) -> Rendered {
    let exit = report.exit();
    if json {
        let mut stdout = render_json(report);
        stdout.push('\n');
        return Rendered { stdout, stderr: String::new(), exit };
    }
    let (stdout, stderr) = render_text(report);
    Rendered { stdout, stderr, exit }
}

/// The JSON object of `report` (without a line end).
pub fn render_json(report: &Report) -> String {
    match report {
        Report::Submitted(submitted) => submitted_json(submitted).finish(),
        Report::OutcomeUnknown { submission, reason } => JsonObject::new()
            .bool("ok", false)
            .str("error", "outcome_unknown")
            .str("command", submission.body.kind().name())
            .str("tx_id", &format_tx_id(submission.tx_id))
            .str("message", &outcome_unknown_message(submission, reason))
            .finish(),
        Report::Account(account) => account_json(account).finish(),
        Report::Exposure(exposure) => exposure_json(exposure).finish(),
        Report::Tx(tx) => tx_json(tx).finish(),
        Report::NotFound { result, message } => JsonObject::new()
            .bool("ok", false)
            .str("error", "not_found")
            .str("result", result.name())
            .str("message", message)
            .finish(),
        Report::Error { kind, message, code, submission } => {
            let mut object = JsonObject::new().bool("ok", false).str("error", kind.name());
            if let Some(code) = code {
                object = object.str("code", code.name());
            }
            if let Some(submission) = submission {
                object = object
                    .str("command", submission.body.kind().name())
                    .str("tx_id", &format_tx_id(submission.tx_id));
            }
            object.str("message", &error_message(*kind, message, submission.as_ref())).finish()
        }
    }
}

fn submitted_json(submitted: &Submitted) -> JsonObject {
    let Submitted { submission, outcome, balances, target_state, warning, .. } = submitted;
    let mut object = JsonObject::new()
        .bool("ok", outcome.is_ok())
        .str("command", submission.body.kind().name())
        .str("tx_id", &format_tx_id(submission.tx_id))
        .str("result", outcome.result.name());
    if !outcome.is_ok() {
        object = object.str("error", "rejected").str("message", &rejection_message(submitted));
    }
    object = object
        .bool("duplicate", outcome.duplicate)
        .opt_str("state", outcome.tx_state.map(|state| state.name()));
    if let CommandBody::Freeze { expires_ns: Some(expires_ns), .. } = submission.body {
        object = object.num("expires_at_ns", expires_ns);
    }
    if let Some(target) = target_tx(&submission.body) {
        object = object
            .str("target_tx_id", &format_tx_id(target))
            .opt_str("target_state", target_state.map(|state| state.name()));
    }
    object = object.objects("balances", balances.iter().map(balance_json));
    if let CommandBody::Cutover { .. } = submission.body {
        let files = submitted.settlement_files.iter().map(String::as_str);
        object = object.strs("settlement_files", files);
    }
    if let Some(warning) = warning {
        object = object.str("warning", warning);
    }
    object
}

fn balance_json(balance: &Balance) -> JsonObject {
    let money = |minor| format_minor(minor, balance.scale);
    JsonObject::new()
        .opt_str("account_no", balance.account_no.as_ref().map(AccountNo::as_str))
        .num("account_id", balance.account_id.0 as u64)
        .str("available", &money(balance.available_minor))
        .str("frozen", &money(balance.frozen_minor))
        .str("ledger", &money(balance.ledger_minor))
        .str("currency", balance.currency.as_str())
}

fn account_json(account: &AccountView) -> JsonObject {
    let money = |minor| format_minor(minor, account.scale);
    JsonObject::new()
        .bool("ok", true)
        .str("account_no", account.account_no.as_str())
        .num("account_id", account.id.0 as u64)
        .num("user_id", account.user_id)
        .str("currency", account.currency.as_str())
        .num("scale", account.scale as u64)
        .str("kind", kind_name(account.kind))
        .str("status", status_name(account.status))
        .str("available", &money(account.available_minor))
        .str("frozen", &money(account.frozen_minor))
        .str("ledger", &money(account.ledger_minor))
        .opt_str("tx_amount_max", account.tx_amount_max_minor.map(money).as_deref())
        .opt_str("daily_debit_max", account.daily_debit_max_minor.map(money).as_deref())
}

fn exposure_json(exposure: &protocol::wire::ExposureReply) -> JsonObject {
    let money = |minor| format_minor(minor, exposure.scale);
    JsonObject::new()
        .bool("ok", true)
        .str("account_no", exposure.account_no.as_str())
        .str("currency", exposure.currency.as_str())
        .str("unsettled", &money(exposure.unsettled_minor))
        .str("exposure", &money(exposure.exposure_minor))
        .opt_str("limit", exposure.exposure_max_minor.map(money).as_deref())
}

fn exposure_text(exposure: &protocol::wire::ExposureReply, out: &mut String) {
    let money = |minor| format!("{} {}", format_minor(minor, exposure.scale), exposure.currency);
    out.push_str(&format!("account_no: {}\n", exposure.account_no));
    out.push_str(&format!("unsettled: {}\n", money(exposure.unsettled_minor)));
    out.push_str(&format!("exposure: {}\n", money(exposure.exposure_minor)));
    let limit = exposure.exposure_max_minor.map_or("none".to_string(), money);
    out.push_str(&format!("limit: {limit}\n"));
}

fn tx_json(tx: &TxReport) -> JsonObject {
    let view = &tx.view;
    let money = |minor| tx.money.map(|(_, scale)| format_minor(minor, scale));
    let mut object = JsonObject::new()
        .bool("ok", true)
        .str("tx_id", &format_tx_id(view.tx_id))
        .str("kind", view.kind.name())
        .str("result", view.result.name())
        .opt_str("state", view.state.map(|state| state.name()))
        .strs("history", view.history.iter().map(|state| state.name()))
        .opt_str("currency", tx.money.as_ref().map(|(currency, _)| currency.as_str()))
        .opt_str("amount", money(view.amount_minor).as_deref())
        .opt_str("refunded", money(view.refunded_minor).as_deref())
        .opt_str("held", money(view.held_minor).as_deref())
        .opt_str("captured", money(view.captured_minor).as_deref())
        .str("amount_minor", &view.amount_minor.to_string())
        .str("refunded_minor", &view.refunded_minor.to_string())
        .str("held_minor", &view.held_minor.to_string())
        .str("captured_minor", &view.captured_minor.to_string())
        .opt_str("debit", view.debit.as_ref().map(AccountNo::as_str))
        .opt_str("credit", view.credit.as_ref().map(AccountNo::as_str))
        .opt_str("linked", view.linked.map(format_tx_id).as_deref());
    if let Some(warning) = &tx.warning {
        object = object.str("warning", warning);
    }
    object
}

/// Text for people: (stdout, stderr).
pub fn render_text(report: &Report) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    match report {
        Report::Submitted(submitted) => submitted_text(submitted, &mut out, &mut err),
        Report::OutcomeUnknown { submission, reason } => {
            out.push_str(&format!("tx_id: {}\n", format_tx_id(submission.tx_id)));
            err.push_str(&format!("{}\n", outcome_unknown_message(submission, reason)));
        }
        Report::Account(account) => account_text(account, &mut out),
        Report::Exposure(exposure) => exposure_text(exposure, &mut out),
        Report::Tx(tx) => tx_text(tx, &mut out, &mut err),
        Report::NotFound { message, .. } => err.push_str(&format!("{message}\n")),
        Report::Error { kind, message, submission, .. } => {
            let message = error_message(*kind, message, submission.as_ref());
            err.push_str(&format!("error: {message}\n"));
        }
    }
    (out, err)
}

fn submitted_text(submitted: &Submitted, out: &mut String, err: &mut String) {
    let Submitted { submission, outcome, balances, target_state, warning, .. } = submitted;
    for file in &submitted.settlement_files {
        out.push_str(&format!("settlement file: {file}\n"));
    }
    out.push_str(&format!("tx_id: {}\n", format_tx_id(submission.tx_id)));
    if !outcome.is_ok() {
        err.push_str(&format!("rejected: {}\n", rejection_message(submitted)));
        return;
    }
    let duplicate =
        if outcome.duplicate { " (duplicate: executed before; nothing changed now)" } else { "" };
    out.push_str(&format!("result: ok{duplicate}\n"));
    let state = outcome.tx_state.map_or("none", |state| state.name());
    out.push_str(&format!("state: {state}\n"));
    if let CommandBody::Freeze { expires_ns: Some(expires_ns), .. } = submission.body {
        out.push_str(&format!("expires_at_ns: {expires_ns}\n"));
    }
    if let Some(target) = target_tx(&submission.body) {
        let state = target_state.map_or("unknown", |state| state.name());
        out.push_str(&format!("target: {} {state}\n", format_tx_id(target)));
    }
    for balance in balances {
        let money = |minor| format_minor(minor, balance.scale);
        let name = match &balance.account_no {
            Some(account_no) => account_no.to_string(),
            None => format!("#{}", balance.account_id.0),
        };
        out.push_str(&format!(
            "balance: {name} available {} frozen {} ledger {} {}\n",
            money(balance.available_minor),
            money(balance.frozen_minor),
            money(balance.ledger_minor),
            balance.currency
        ));
    }
    if let Some(warning) = warning {
        err.push_str(&format!("warning: {warning}\n"));
    }
}

fn account_text(account: &AccountView, out: &mut String) {
    let money = |minor| format_minor(minor, account.scale);
    let limit = |minor: Option<i128>| minor.map_or("none".to_string(), money);
    out.push_str(&format!("account_no: {}\n", account.account_no));
    out.push_str(&format!("user_id: {}\n", account.user_id));
    out.push_str(&format!("currency: {}\n", account.currency));
    out.push_str(&format!("kind: {}\n", kind_name(account.kind)));
    out.push_str(&format!("status: {}\n", status_name(account.status)));
    out.push_str(&format!("available: {}\n", money(account.available_minor)));
    out.push_str(&format!("frozen: {}\n", money(account.frozen_minor)));
    out.push_str(&format!("ledger: {}\n", money(account.ledger_minor)));
    out.push_str(&format!("tx_amount_max: {}\n", limit(account.tx_amount_max_minor)));
    out.push_str(&format!("daily_debit_max: {}\n", limit(account.daily_debit_max_minor)));
}

fn tx_text(tx: &TxReport, out: &mut String, err: &mut String) {
    let view = &tx.view;
    let money = |minor: i128| match tx.money {
        Some((currency, scale)) => format!("{} {currency}", format_minor(minor, scale)),
        None => format!("{minor} (minor units)"),
    };
    let account =
        |account_no: Option<AccountNo>| account_no.map_or("none".into(), |no| no.to_string());
    out.push_str(&format!("tx_id: {}\n", format_tx_id(view.tx_id)));
    out.push_str(&format!("kind: {}\n", view.kind.name()));
    match view.result {
        ResultCode::Ok => out.push_str("result: ok\n"),
        rejected => {
            out.push_str(&format!("result: {} ({})\n", rejected.name(), rejected.describe()))
        }
    }
    out.push_str(&format!("state: {}\n", view.state.map_or("none", |state| state.name())));
    let history: Vec<&str> = view.history.iter().map(|state| state.name()).collect();
    out.push_str(&format!("history: {}\n", history.join(" ")));
    out.push_str(&format!("amount: {}\n", money(view.amount_minor)));
    out.push_str(&format!("debit: {}\n", account(view.debit)));
    out.push_str(&format!("credit: {}\n", account(view.credit)));
    out.push_str(&format!("refunded: {}\n", money(view.refunded_minor)));
    out.push_str(&format!("held: {}\n", money(view.held_minor)));
    out.push_str(&format!("captured: {}\n", money(view.captured_minor)));
    out.push_str(&format!("linked: {}\n", view.linked.map_or("none".into(), format_tx_id)));
    if let Some(warning) = &tx.warning {
        err.push_str(&format!("warning: {warning}\n"));
    }
}

/// `insufficient available funds: transfer of 12.50 from alice to bob`, and a note for a
/// duplicate.
pub fn rejection_message(submitted: &Submitted) -> String {
    let Submitted { submission, outcome, .. } = submitted;
    let duplicate = if outcome.duplicate {
        " (duplicate: this tx id was rejected before; nothing changed now)"
    } else {
        ""
    };
    format!(
        "{}: {} [{}]{duplicate}",
        outcome.result.describe(),
        describe_command(&submission.body),
        outcome.result.name()
    )
}

fn outcome_unknown_message(submission: &Submission, reason: &str) -> String {
    let tx_id = format_tx_id(submission.tx_id);
    format!(
        "outcome unknown: {} (tx_id {tx_id}) may or may not have been executed: {reason}. \
         Look it up with `ledger tx {tx_id}`, or re-send the same command with {} (safe: the \
         ledger executes a tx id at most once).",
        describe_command(&submission.body),
        retry_flags(submission)
    )
}

fn error_message(kind: ErrorKind, message: &str, submission: Option<&Submission>) -> String {
    match (kind, submission) {
        (ErrorKind::Usage, _) | (_, None) => message.into(),
        (ErrorKind::Connection | ErrorKind::Auth | ErrorKind::Refused, Some(submission)) => {
            format!(
                "{message} (nothing was executed: {} with tx_id {}; it may be re-sent with {})",
                describe_command(&submission.body),
                format_tx_id(submission.tx_id),
                retry_flags(submission)
            )
        }
    }
}

/// The flags that make a re-sent command identical to `submission`.
fn retry_flags(submission: &Submission) -> String {
    let mut flags = format!("`--tx-id {}`", format_tx_id(submission.tx_id));
    if let (true, CommandBody::Freeze { expires_ns: Some(expires_ns), .. }) =
        (submission.relative_expiry, submission.body)
    {
        flags.push_str(&format!(" and `--expires-at-ns {expires_ns}` instead of --expires-in-ms"));
    }
    flags
}

/// The command in words, naming its accounts and transactions (`transfer of 12.50 from alice
/// to bob`).
pub fn describe_command(body: &CommandBody) -> String {
    let amount = |amount: &Amount| format_minor(amount.mantissa, amount.scale);
    let tx = |tx_id: &engine::TxId| format_tx_id(*tx_id);
    match body {
        CommandBody::DefineCurrency { code, scale } => {
            format!("define currency {code} with {scale} decimals")
        }
        CommandBody::OpenAccount { account_no, user_id, currency, kind, .. } => format!(
            "open {} account {account_no} in {currency} for user {user_id}",
            kind_name(*kind)
        ),
        CommandBody::SetAccountStatus { account_no, status } => {
            format!("set the status of account {account_no} to {}", status_name(*status))
        }
        CommandBody::SetAccountLimits { account_no, .. } => {
            format!("set the limits of account {account_no}")
        }
        CommandBody::Deposit { account_no, channel_no, amount: value } => {
            format!("deposit of {} to {account_no} via channel {channel_no}", amount(value))
        }
        CommandBody::Withdraw { account_no, channel_no, amount: value } => {
            format!("withdrawal of {} from {account_no} via channel {channel_no}", amount(value))
        }
        CommandBody::Transfer { from, to, amount: value } => {
            format!("transfer of {} from {from} to {to}", amount(value))
        }
        CommandBody::Freeze { account_no, amount: value, .. } => {
            format!("hold of {} on {account_no}", amount(value))
        }
        CommandBody::Unfreeze { hold } => format!("release of hold {}", tx(hold)),
        CommandBody::Capture { hold, to, amount: value } => {
            format!("capture of {} from hold {} to {to}", amount(value), tx(hold))
        }
        CommandBody::SettleBegin { target } => format!("settle begin of {}", tx(target)),
        CommandBody::SettleConfirm { target } => format!("settle confirm of {}", tx(target)),
        CommandBody::SettleFail { target } => format!("settle fail of {}", tx(target)),
        CommandBody::Refund { original, amount: value } => {
            format!("refund of {} of {}", amount(value), tx(original))
        }
        CommandBody::SetFee { kind, currency, fee_account_no, fixed, rate_bps } => format!(
            "set the {} fee in {currency} to {} + {rate_bps} bps, paid to {fee_account_no}",
            kind.name(),
            amount(fixed)
        ),
        CommandBody::SetSettlementCycle { account_no, t1_clearing_no } => match t1_clearing_no {
            Some(clearing_no) => format!("put account {account_no} on T+1 via {clearing_no}"),
            None => format!("put account {account_no} on T+0"),
        },
        CommandBody::Cutover { business_date } => format!(
            "cutover of business date {:04}-{:02}-{:02}",
            business_date / 10_000,
            business_date / 100 % 100,
            business_date % 100
        ),
    }
}

/// The transaction a command names: the hold of an unfreeze or capture, the target of a
/// settlement command, the original of a refund.
pub fn target_tx(body: &CommandBody) -> Option<TxId> {
    match *body {
        CommandBody::Unfreeze { hold } | CommandBody::Capture { hold, .. } => Some(hold),
        CommandBody::SettleBegin { target }
        | CommandBody::SettleConfirm { target }
        | CommandBody::SettleFail { target } => Some(target),
        CommandBody::Refund { original, .. } => Some(original),
        CommandBody::DefineCurrency { .. }
        | CommandBody::OpenAccount { .. }
        | CommandBody::SetAccountStatus { .. }
        | CommandBody::SetAccountLimits { .. }
        | CommandBody::Deposit { .. }
        | CommandBody::Withdraw { .. }
        | CommandBody::Transfer { .. }
        | CommandBody::Freeze { .. }
        | CommandBody::SetFee { .. }
        | CommandBody::SetSettlementCycle { .. }
        | CommandBody::Cutover { .. } => None,
    }
}

/// The accounts a command names (looked up after it, to print its balances), and whether
/// its own transaction record names more (commands that name a hold or a target by tx id).
pub fn named_accounts(body: &CommandBody) -> (Vec<AccountNo>, bool) {
    match *body {
        CommandBody::DefineCurrency { .. } => (Vec::new(), false),
        CommandBody::OpenAccount { account_no, .. }
        | CommandBody::SetAccountStatus { account_no, .. }
        | CommandBody::SetAccountLimits { account_no, .. }
        | CommandBody::Freeze { account_no, .. } => (vec![account_no], false),
        CommandBody::SetFee { fee_account_no, .. } => (vec![fee_account_no], false),
        CommandBody::SetSettlementCycle { account_no, .. } => (vec![account_no], false),
        CommandBody::Cutover { .. } => (Vec::new(), false),
        CommandBody::Deposit { account_no, channel_no, .. }
        | CommandBody::Withdraw { account_no, channel_no, .. } => {
            (vec![account_no, channel_no], false)
        }
        CommandBody::Transfer { from, to, .. } => (vec![from, to], false),
        CommandBody::Capture { to, .. } => (vec![to], true),
        CommandBody::Unfreeze { .. }
        | CommandBody::SettleBegin { .. }
        | CommandBody::SettleConfirm { .. }
        | CommandBody::SettleFail { .. }
        | CommandBody::Refund { .. } => (Vec::new(), true),
    }
}

/// Resolves an outcome's balances with the accounts that could be looked up. Every account a
/// command touches is in one currency, so an account the command did not name (the risk
/// account of a failed deposit) still gets the currency, with no number. `Err` lists the
/// balances left out because no account of the outcome could be looked up.
pub fn resolve_balances(
    balances: &[BalanceView],
    accounts: &[AccountView],
) -> (Vec<Balance>, Option<String>) {
    let first = accounts.first().map(|account| (account.currency, account.scale));
    let one_currency = first.filter(|&(currency, scale)| {
        accounts.iter().all(|account| account.currency == currency && account.scale == scale)
    });
    let mut resolved = Vec::with_capacity(balances.len());
    let mut missing = Vec::new();
    for balance in balances {
        let found = accounts.iter().find(|account| account.id == balance.account);
        let (account_no, money) = match found {
            Some(account) => (Some(account.account_no), Some((account.currency, account.scale))),
            None => (None, one_currency),
        };
        let Some((currency, scale)) = money else {
            missing.push(format!("#{}", balance.account.0));
            continue;
        };
        resolved.push(Balance {
            account_id: balance.account,
            account_no,
            currency,
            scale,
            available_minor: balance.available_minor,
            frozen_minor: balance.frozen_minor,
            ledger_minor: balance.ledger_minor,
        });
    }
    let error = (!missing.is_empty())
        .then(|| format!("balances of accounts {} left out: unknown currency", missing.join(" ")));
    (resolved, error)
}

/// `user`, `system`, `risk`.
pub fn kind_name(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::User => "user",
        AccountKind::System => "system",
        AccountKind::Risk => "risk",
    }
}

/// `active`, `debit_frozen`, `closed`.
pub fn status_name(status: AccountStatus) -> &'static str {
    match status {
        AccountStatus::Active => "active",
        AccountStatus::DebitFrozen => "debit_frozen",
        AccountStatus::Closed => "closed",
    }
}
