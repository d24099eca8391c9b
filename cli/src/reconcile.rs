//! `ledger reconcile`: compares a channel's statement with the ledger's settlement file of a
//! business day (written by `ledgerd` at the cutover), by tx id. Local files only: nothing is
//! sent to the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::{AccountNo, Amount, TxId};

use crate::report::{Exit, Rendered};
use crate::txid::parse_tx_id;
use settlement::{settlement_file, SETTLEMENT_DIR_NAME};

/// Most lines read from one CSV file.
pub const CSV_LINES_MAX: usize = 1 << 20;

/// One difference between the ledger and the statement (amounts in major units).
#[derive(Clone, PartialEq, Eq, Debug)]
#[allow(missing_docs)] // the variant documents its fields: the tx id and each side's amount
pub enum Mismatch {
    /// Settled in the ledger, absent from the statement.
    Missing { tx_id: TxId, ledger: Amount },
    /// On the statement, not settled in the ledger through this channel that day.
    Extra { tx_id: TxId, statement: Amount },
    /// On both, with different amounts.
    AmountDiffers { tx_id: TxId, ledger: Amount, statement: Amount },
}

/// The result of a comparison.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reconciliation {
    /// Every mismatch, in tx id order.
    pub mismatches: Vec<Mismatch>,
    /// Lines and total of the ledger's file.
    pub ledger: (usize, Amount),
    /// Lines and total of the statement.
    pub statement: (usize, Amount),
}

/// `a + b`, exactly, at the larger scale.
fn add(a: Amount, b: Amount) -> Option<Amount> {
    let scale = a.scale.max(b.scale);
    let widen = |x: Amount| x.mantissa.checked_mul(10i128.checked_pow((scale - x.scale) as u32)?);
    Some(Amount { mantissa: widen(a)?.checked_add(widen(b)?)?, scale })
}

/// The `tx_id → amount` lines of a CSV with a header naming at least `tx_id` and `amount`.
pub fn read_csv(text: &str, what: &str) -> Result<BTreeMap<TxId, Amount>, String> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> = lines.next().ok_or(format!("{what}: empty"))?.split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|field| field.trim() == name)
            .ok_or(format!("{what}: the header has no {name:?} column"))
    };
    let (id_at, amount_at) = (column("tx_id")?, column("amount")?);
    let mut rows = BTreeMap::new();
    for (index, line) in lines.enumerate() {
        if index >= CSV_LINES_MAX {
            return Err(format!("{what}: more than {CSV_LINES_MAX} lines"));
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let field = |at: usize| fields.get(at).copied().unwrap_or("");
        let line_no = index + 2;
        let id_text = field(id_at);
        // Settlement files and the bank write 32 hex digits without a prefix.
        let tx_id = if id_text.len() == 32 && id_text.bytes().all(|b| b.is_ascii_hexdigit()) {
            parse_tx_id(&format!("0x{id_text}"))
        } else {
            parse_tx_id(id_text)
        }
        .map_err(|error| format!("{what} line {line_no}: {error}"))?;
        let amount: Amount = field(amount_at)
            .parse()
            .map_err(|error| format!("{what} line {line_no}: amount: {error}"))?;
        if rows.insert(tx_id, amount.normalized()).is_some() {
            return Err(format!("{what} line {line_no}: tx_id listed twice"));
        }
    }
    Ok(rows)
}

/// Compares the ledger's lines with the statement's.
pub fn compare(
    ledger: &BTreeMap<TxId, Amount>,
    statement: &BTreeMap<TxId, Amount>,
) -> Result<Reconciliation, String> {
    let total = |rows: &BTreeMap<TxId, Amount>| {
        rows.values().try_fold(Amount::minor(0, 0), |sum, amount| add(sum, *amount))
    };
    let overflow = || "totals overflow".to_string();
    let mut mismatches = Vec::new();
    for (&tx_id, &amount) in ledger {
        match statement.get(&tx_id) {
            None => mismatches.push(Mismatch::Missing { tx_id, ledger: amount }),
            Some(&other) if other != amount => {
                mismatches.push(Mismatch::AmountDiffers { tx_id, ledger: amount, statement: other })
            }
            Some(_) => {}
        }
    }
    for (&tx_id, &amount) in statement {
        if !ledger.contains_key(&tx_id) {
            mismatches.push(Mismatch::Extra { tx_id, statement: amount });
        }
    }
    mismatches.sort_by_key(|mismatch| match mismatch {
        Mismatch::Missing { tx_id, .. }
        | Mismatch::Extra { tx_id, .. }
        | Mismatch::AmountDiffers { tx_id, .. } => *tx_id,
    });
    Ok(Reconciliation {
        mismatches,
        ledger: (ledger.len(), total(ledger).ok_or_else(overflow)?),
        statement: (statement.len(), total(statement).ok_or_else(overflow)?),
    })
}

fn text(amount: Amount) -> String {
    engine::format_minor(amount.mantissa, amount.scale)
}

/// The human report of a comparison, one line per mismatch, then the totals.
pub fn render(reconciliation: &Reconciliation) -> String {
    let mut out = String::new();
    for mismatch in &reconciliation.mismatches {
        out.push_str(&match mismatch {
            Mismatch::Missing { tx_id, ledger } => {
                format!(
                    "missing {:032x}: ledger {}, not on the statement\n",
                    tx_id.0,
                    text(*ledger)
                )
            }
            Mismatch::Extra { tx_id, statement } => {
                format!(
                    "extra {:032x}: statement {}, not in the ledger\n",
                    tx_id.0,
                    text(*statement)
                )
            }
            Mismatch::AmountDiffers { tx_id, ledger, statement } => format!(
                "amount_differs {:032x}: ledger {}, statement {}\n",
                tx_id.0,
                text(*ledger),
                text(*statement)
            ),
        });
    }
    let (ledger_lines, ledger_total) = reconciliation.ledger;
    let (statement_lines, statement_total) = reconciliation.statement;
    out.push_str(&format!(
        "ledger: {ledger_lines} lines, total {}\nstatement: {statement_lines} lines, total {}\n\
         mismatches: {}\n",
        text(ledger_total),
        text(statement_total),
        reconciliation.mismatches.len()
    ));
    out
}

/// The settlement file of `channel` for `business_date`, or the newest one when no date is
/// given.
fn ledger_file(
    data_dir: &Path,
    channel: &AccountNo,
    business_date: Option<u32>,
) -> Result<PathBuf, String> {
    if let Some(date) = business_date {
        return Ok(settlement_file(data_dir, channel, date));
    }
    let dir = data_dir.join(SETTLEMENT_DIR_NAME);
    let entries = std::fs::read_dir(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let prefix = format!("{channel}-");
    let newest = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".csv"))
                .is_some_and(|date| date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
        })
        .max()
        .ok_or(format!("no settlement file of channel {channel} in {}", dir.display()))?;
    Ok(dir.join(newest))
}

/// Runs `ledger reconcile`: exit 0 when everything matches, 1 with any mismatch, 2 when a
/// file cannot be read or parsed.
pub fn run(
    channel: &AccountNo,
    statement: &Path,
    business_date: Option<u32>,
    data_dir: &Path,
) -> Rendered {
    let failed = |message: String| Rendered {
        stdout: String::new(),
        stderr: format!("error: {message}\n"),
        exit: Exit::Usage,
    };
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))
    };
    let result = ledger_file(data_dir, channel, business_date).and_then(|ledger_path| {
        let ledger = read_csv(&read(&ledger_path)?, &ledger_path.display().to_string())?;
        let statement = read_csv(&read(statement)?, &statement.display().to_string())?;
        Ok((ledger_path, compare(&ledger, &statement)?))
    });
    match result {
        Ok((ledger_path, reconciliation)) => Rendered {
            stdout: format!("ledger file: {}\n{}", ledger_path.display(), render(&reconciliation)),
            stderr: String::new(),
            exit: if reconciliation.mismatches.is_empty() { Exit::Ok } else { Exit::Rejected },
        },
        Err(message) => failed(message),
    }
}
