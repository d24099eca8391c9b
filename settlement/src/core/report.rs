//! The cutover report: the day's settlement file and netting report, as text. The core makes
//! them; the driver writes them (`SETTLEMENT_HEADER`, `NETTING_HEADER`, `bank/BANK.md`).

use std::collections::BTreeMap;

use bank::protocol::Direction;
use engine::{format_minor, TxId};

use crate::{NETTING_HEADER, SETTLEMENT_HEADER};

/// One transaction of a batch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Member {
    pub tx_id: TxId,
    pub direction: Direction,
    /// The amount's digits and decimals, as the command carried them.
    pub mantissa: i128,
    pub scale: u8,
}

impl Member {
    pub fn amount(&self) -> String {
        format_minor(self.mantissa, self.scale)
    }
}

/// A transaction confirmed since the last cutover, with the journal position of its
/// `SettleConfirm`.
#[derive(Clone, Debug)]
pub(super) struct DayEntry {
    pub seq: u64,
    pub batch: u128,
    pub member: Member,
}

/// One cutover's files: write `netting_csv` to `netting_file`, then `settlement_csv` to
/// `settlement_file` (once the settlement file exists, the report does too).
#[derive(Debug)]
pub struct Report {
    /// The day closed (YYYYMMDD).
    pub business_date: u32,
    /// The netting report: gross vs net per batch, then the day's total.
    pub netting_csv: String,
    /// The settlement file: one line per confirmed transaction, in journal order.
    pub settlement_csv: String,
    entries: Vec<DayEntry>,
}

impl Report {
    /// The report of `entries` (in any order), every amount in `currency`.
    pub(super) fn new(business_date: u32, mut entries: Vec<DayEntry>, currency: &str) -> Report {
        entries.sort_unstable_by_key(|entry| entry.seq);
        let mut settlement_csv = format!("{SETTLEMENT_HEADER}\n");
        let mut by_batch: BTreeMap<u128, Vec<&Member>> = BTreeMap::new();
        let mut order: Vec<u128> = Vec::new();
        for entry in &entries {
            let member = &entry.member;
            let (id, direction) = (member.tx_id.0, member.direction.word());
            let amount = member.amount();
            settlement_csv.push_str(&format!("{id:032x},{direction},{amount},{currency}\n"));
            let members = by_batch.entry(entry.batch).or_default();
            if members.is_empty() {
                order.push(entry.batch);
            }
            members.push(member);
        }
        let mut netting_csv = format!("{NETTING_HEADER}\n");
        let scale = entries.iter().map(|entry| entry.member.scale).max().unwrap_or(0);
        let mut total = Totals::default();
        for batch in order {
            let members = by_batch.get(&batch).map(Vec::as_slice).unwrap_or_default();
            let totals = Totals::of(members.iter().copied(), scale);
            netting_csv.push_str(&totals.row(&format!("{batch:032x}"), scale));
            total.add(&totals);
        }
        netting_csv.push_str(&total.row("total", scale));
        Report { business_date, netting_csv, settlement_csv, entries }
    }

    pub(super) fn into_entries(self) -> Vec<DayEntry> {
        self.entries
    }
}

/// Σ deposits − Σ withdrawals of `members`, at the largest scale among them.
pub(super) fn net_of<'a>(members: impl Iterator<Item = &'a Member> + Clone) -> (i128, u8) {
    let scale = members.clone().map(|member| member.scale).max().unwrap_or(0);
    let totals = Totals::of(members, scale);
    (totals.deposits_minor.saturating_sub(totals.withdrawals_minor), scale)
}

/// Gross and net of a set of transactions, at one scale.
#[derive(Default)]
struct Totals {
    items: u64,
    deposits_minor: i128,
    withdrawals_minor: i128,
    /// Σ |net| of the batches added together.
    net_abs_minor: i128,
}

impl Totals {
    fn of<'a>(members: impl Iterator<Item = &'a Member>, scale: u8) -> Totals {
        let mut totals = Totals::default();
        for member in members {
            let factor = 10i128.saturating_pow(u32::from(scale.saturating_sub(member.scale)));
            let value = member.mantissa.saturating_mul(factor);
            totals.items += 1;
            match member.direction {
                Direction::Deposit => {
                    totals.deposits_minor = totals.deposits_minor.saturating_add(value)
                }
                Direction::Withdraw => {
                    totals.withdrawals_minor = totals.withdrawals_minor.saturating_add(value)
                }
            }
        }
        totals.net_abs_minor =
            totals.deposits_minor.saturating_sub(totals.withdrawals_minor).saturating_abs();
        totals
    }

    fn add(&mut self, other: &Totals) {
        self.items += other.items;
        self.deposits_minor = self.deposits_minor.saturating_add(other.deposits_minor);
        self.withdrawals_minor = self.withdrawals_minor.saturating_add(other.withdrawals_minor);
        self.net_abs_minor = self.net_abs_minor.saturating_add(other.net_abs_minor);
    }

    /// `label,items,deposits,withdrawals,gross,net,direction`; a batch's direction is that of
    /// its net payment, the total's is empty (its net is Σ |net| of the batches).
    fn row(&self, label: &str, scale: u8) -> String {
        let gross = self.deposits_minor.saturating_add(self.withdrawals_minor);
        let direction = match label {
            "total" => "",
            _ if self.deposits_minor >= self.withdrawals_minor => "DEPOSIT",
            _ => "WITHDRAW",
        };
        let amount = |minor: i128| format_minor(minor, scale);
        format!(
            "{label},{},{},{},{},{},{direction}\n",
            self.items,
            amount(self.deposits_minor),
            amount(self.withdrawals_minor),
            amount(gross),
            amount(self.net_abs_minor)
        )
    }
}
