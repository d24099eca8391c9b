//! Human and machine renderings shared by the subcommands: commands, amounts, JSON strings.

use engine::{format_minor, Amount, Command, CommandBody, Engine, TxId};

/// A decimal amount exactly as given (`mantissa` with `scale` decimals).
pub fn amount(amount: &Amount) -> String {
    format_minor(amount.mantissa, amount.scale)
}

/// A transaction id in UUID form (`8-4-4-4-12` hex digits), as the `ledger` CLI prints it.
pub fn tx_id(tx_id: TxId) -> String {
    let hex = format!("{:032x}", tx_id.0);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// A JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A CSV field (quoted when it holds a comma, quote or newline).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// One line describing a command, for `tail` and error messages.
pub fn command(command: &Command) -> String {
    let body = match &command.body {
        CommandBody::DefineCurrency { code, scale } => {
            format!("define_currency {code} scale={scale}")
        }
        CommandBody::OpenAccount { account_no, user_id, currency, kind, .. } => {
            format!("open_account {account_no} user={user_id} {currency} {kind:?}")
        }
        CommandBody::SetAccountStatus { account_no, status } => {
            format!("set_account_status {account_no} {status:?}")
        }
        CommandBody::SetAccountLimits { account_no, limits } => format!(
            "set_account_limits {account_no} tx_max={} daily_max={}",
            limits.tx_amount_max.as_ref().map_or("-".into(), amount),
            limits.daily_debit_max.as_ref().map_or("-".into(), amount)
        ),
        CommandBody::Deposit { account_no, channel_no, amount: value } => {
            format!("deposit {account_no} {} via {channel_no}", amount(value))
        }
        CommandBody::Withdraw { account_no, channel_no, amount: value } => {
            format!("withdraw {account_no} {} via {channel_no}", amount(value))
        }
        CommandBody::Transfer { from, to, amount: value } => {
            format!("transfer {from} -> {to} {}", amount(value))
        }
        CommandBody::Freeze { account_no, amount: value, expires_ns } => format!(
            "freeze {account_no} {}{}",
            amount(value),
            expires_ns.map_or(String::new(), |ns| format!(" expires_ns={ns}"))
        ),
        CommandBody::Unfreeze { hold } => format!("unfreeze {}", tx_id(*hold)),
        CommandBody::Capture { hold, to, amount: value } => {
            format!("capture {} -> {to} {}", tx_id(*hold), amount(value))
        }
        CommandBody::SettleBegin { target } => format!("settle_begin {}", tx_id(*target)),
        CommandBody::SettleConfirm { target } => format!("settle_confirm {}", tx_id(*target)),
        CommandBody::SettleFail { target } => format!("settle_fail {}", tx_id(*target)),
        CommandBody::Refund { original, amount: value } => {
            format!("refund {} {}", tx_id(*original), amount(value))
        }
        CommandBody::SetFee { kind, currency, fee_account_no, fixed, rate_bps } => format!(
            "set_fee {} {currency} -> {fee_account_no} fixed={} rate_bps={rate_bps}",
            kind.name(),
            amount(fixed)
        ),
        CommandBody::SetSettlementCycle { account_no, t1_clearing_no } => format!(
            "set_settlement_cycle {account_no} {}",
            t1_clearing_no.map_or("t0".into(), |clearing_no| format!("t1 via {clearing_no}"))
        ),
        CommandBody::Cutover { business_date } => format!("cutover {business_date}"),
    };
    format!("ts={} tx={} {body}", command.timestamp_ns, tx_id(command.tx_id))
}

/// An account's amount in its currency's decimals.
pub fn account_minor(engine: &Engine, account: engine::AccountId, minor: i128) -> String {
    format_minor(minor, engine.account_by_id(account).scale)
}
