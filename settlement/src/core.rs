//! The I/O-free settlement core of one channel, in quinn-proto's style: a plain struct fed
//! events (journal records, the outcomes it asked for, the runtime's answers to the commands
//! it asked for, bank replies, the time) and asked for actions (queries, commands to journal,
//! instructions to send, cutover reports, notices to log). No sockets, files, threads, locks
//! or clock here: time is `now_ns` (ns since the Unix epoch, the unit of the journal's command
//! timestamps), passed in by the driver or by a test.
//!
//! **Transactions it did not see from the start.** A restarted processor re-reads the journal
//! from the oldest segment on disk. A record is a command, not its result, so for every record
//! that matters (a deposit or withdrawal of the channel, a `SettleConfirm`/`SettleFail` of a
//! transaction it follows, a `Cutover`, the channel's `OpenAccount`) the core asks whether the
//! engine applied it (`poll_query`, answered by `on_outcome`), and processes records strictly
//! in journal order, holding later ones until the answer is in. Everything else it knows about
//! a transaction is derived from those records and outcomes: a transaction is open from its
//! applied deposit until an applied `SettleConfirm`/`SettleFail` of it is read (or answered to
//! its own submission). This replaces the old per-batch "is any member unfinished?" query: the
//! answer is the journal read so far, which only lags the engine by commands not yet durable.
//! The outcome is an explicit event rather than an engine replica inside the core because the
//! engine's lifecycle rules must not be written twice.
//!
//! **Bounds.** `WATCHED_MAX` open transactions, `RECORDS_QUEUED_MAX` records waiting for an
//! outcome, `REPORTS_QUEUED_MAX` reports not yet taken, `COMMANDS_QUEUED_MAX` commands not yet
//! taken: at any of these `wants_records` turns false and the driver stops reading the journal
//! (push back; nothing is dropped). `GIVEN_UP_MAX` given-up batches are remembered for late
//! answers, the oldest forgotten first. `NOTICES_QUEUED_MAX` notices wait for the log; past it
//! new ones are counted and reported as one `Notice::Dropped`. A day holds at most
//! `DAY_LEN_MAX` confirmations: past it the core stops with `CoreError::DayFull` (the journal
//! keeps everything; the file is never written short).

mod report;
mod sending;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use bank::protocol::{Direction, NetInstruction, NetItem, Reply, Request};
use engine::{format_minor, Command, CommandBody, CurrencyCode, ResultCode, TxId};

pub use report::Report;
use report::{net_of, DayEntry, Member};
pub use types::{Config, CoreError, Instruction, Notice, OutcomeQuery, SettleCommand, Submitted};

use crate::{batch_id, Step};

/// Most transactions one processor follows at a time; more wait in the journal.
pub const WATCHED_MAX: usize = 65_536;
/// Given-up batches remembered so that a late answer still settles them.
pub const GIVEN_UP_MAX: usize = 1_024;
/// Journal records held in order while an outcome before them is asked for.
pub const RECORDS_QUEUED_MAX: usize = 16_384;
/// Cutover reports produced and not yet taken by the driver.
pub const REPORTS_QUEUED_MAX: usize = 4;
/// Settlement commands produced and not yet taken by the driver.
pub const COMMANDS_QUEUED_MAX: usize = 2 * WATCHED_MAX;
/// Notices waiting for the log.
pub const NOTICES_QUEUED_MAX: usize = 1_024;
/// Confirmations one day (cutover to cutover) holds.
pub const DAY_LEN_MAX: usize = 16_777_216;
/// When nothing closes a batch's window from the journal, it is closed this long after it.
pub const CLOSE_GRACE_NS: u64 = 1_000_000_000;
const NS_PER_MS: u64 = 1_000_000;

/// `SettleBegin`s asked for the first `count` members of a batch; `outstanding` of them are
/// not answered yet, and `live` says whether any began (or had begun) through them.
#[derive(Clone, Copy, Default, Debug)]
struct Begun {
    count: usize,
    outstanding: usize,
    live: bool,
}

/// The batch being collected from the journal.
struct Collecting {
    id: u128,
    window_end_ns: u64,
    members: Vec<Member>,
    begun: Begun,
}

/// A closed batch: one net instruction, sent until answered or given up.
struct Batch {
    members: Vec<TxId>,
    lines: String,
    attempts: u32,
    next_send_ns: u64,
    begun: Begun,
    /// Waiting in `ready` for the driver to take its instruction.
    ready: bool,
}

/// A transaction of this channel seen in the journal and not finished yet.
struct OpenTx {
    batch: u128,
    member: Member,
}

/// What a journal record means to this channel, if the engine applied it.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// A deposit or withdrawal through the channel.
    Transaction(Member),
    Confirmed(TxId),
    Failed(TxId),
    Cutover(u32),
    /// The channel account's `OpenAccount`: its currency.
    Opened(CurrencyCode),
}

/// Whether a queued record's outcome is known yet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Asked,
    Known(bool),
}

/// A record held in journal order (`event`: `None` when it matters only for its timestamp).
struct Queued {
    seq: u64,
    timestamp_ns: u64,
    event: Option<(Event, Outcome)>,
}

/// The settlement core of one channel.
pub struct Settlement {
    config: Config,
    currency: Option<CurrencyCode>,
    error: Option<CoreError>,
    /// Records in journal order, processed from the front once their outcome is known.
    records: VecDeque<Queued>,
    /// Deposits and withdrawals of the channel in `records`.
    queued_new: HashSet<TxId>,
    queries: VecDeque<OutcomeQuery>,
    /// The driver has fed every durable record (cleared by the next record).
    caught_up: bool,
    collecting: Option<Collecting>,
    batches: BTreeMap<u128, Batch>,
    /// Batches waiting for their next send, by (time, id).
    timers: BTreeSet<(u64, u128)>,
    ready: VecDeque<u128>,
    given_up: VecDeque<(u128, Vec<TxId>)>,
    open: HashMap<TxId, OpenTx>,
    day: Vec<DayEntry>,
    commands: VecDeque<SettleCommand>,
    reports: VecDeque<Report>,
    notices: VecDeque<Notice>,
    notices_dropped: u64,
}

impl Settlement {
    /// A core that has seen nothing yet (`currency`: the channel account's, if it exists).
    pub fn new(mut config: Config, currency: Option<CurrencyCode>) -> Settlement {
        config.net_items_max = config.net_items_max.clamp(1, bank::protocol::NET_ITEMS_MAX);
        config.net_window_ms = config.net_window_ms.max(1);
        Settlement {
            config,
            currency,
            error: None,
            records: VecDeque::new(),
            queued_new: HashSet::new(),
            queries: VecDeque::new(),
            caught_up: false,
            collecting: None,
            batches: BTreeMap::new(),
            timers: BTreeSet::new(),
            ready: VecDeque::new(),
            given_up: VecDeque::new(),
            open: HashMap::new(),
            day: Vec::new(),
            commands: VecDeque::new(),
            reports: VecDeque::new(),
            notices: VecDeque::new(),
            notices_dropped: 0,
        }
    }

    /// Why the core stopped, if it did.
    pub fn error(&self) -> Option<&CoreError> {
        self.error.as_ref()
    }

    /// Whether the driver may feed another record (false at a bound, or once stopped).
    pub fn wants_records(&self) -> bool {
        self.error.is_none()
            && self.records.len() < RECORDS_QUEUED_MAX
            && self.open.len() + self.queued_new.len() < WATCHED_MAX
            && self.reports.len() < REPORTS_QUEUED_MAX
            && self.commands.len() < WATCHED_MAX
    }

    /// The next durable journal record, in order. A payload that is not a command stops the
    /// core: the error names the record, and every later call returns it again.
    pub fn on_record(&mut self, seq: u64, payload: &[u8]) -> Result<(), CoreError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        debug_assert!(self.wants_records(), "records fed past the bound");
        let command = match engine::decode_command(payload) {
            Ok(command) => command,
            Err(error) => {
                let error = CoreError::Undecodable { seq, reason: error.to_string() };
                self.error = Some(error.clone());
                return Err(error);
            }
        };
        self.caught_up = false;
        let event = self.event(&command);
        if event.is_some() {
            self.queries.push_back(OutcomeQuery { seq, tx_id: command.tx_id });
        }
        if let Some(Event::Transaction(member)) = event {
            self.queued_new.insert(member.tx_id);
        }
        let event = event.map(|event| (event, Outcome::Asked));
        // The driver feeds the journal in order, each record once.
        assert!(self.records.back().is_none_or(|last| last.seq < seq), "records in journal order");
        self.records.push_back(Queued { seq, timestamp_ns: command.timestamp_ns, event });
        assert!(self.records.len() <= RECORDS_QUEUED_MAX, "records fed past the bound");
        self.process_records();
        Ok(())
    }

    /// What `command` means here, if anything.
    fn event(&self, command: &Command) -> Option<Event> {
        let transaction = |channel_no: engine::AccountNo, direction, amount: engine::Amount| {
            let member = Member {
                tx_id: command.tx_id,
                direction,
                mantissa: amount.mantissa,
                scale: amount.scale,
            };
            (channel_no == self.config.name).then_some(Event::Transaction(member))
        };
        let followed =
            |target: &TxId| self.open.contains_key(target) || self.queued_new.contains(target);
        match command.body {
            CommandBody::Deposit { channel_no, amount, .. } => {
                transaction(channel_no, Direction::Deposit, amount)
            }
            CommandBody::Withdraw { channel_no, amount, .. } => {
                transaction(channel_no, Direction::Withdraw, amount)
            }
            CommandBody::SettleConfirm { target } => {
                followed(&target).then_some(Event::Confirmed(target))
            }
            CommandBody::SettleFail { target } => {
                followed(&target).then_some(Event::Failed(target))
            }
            CommandBody::Cutover { business_date } => Some(Event::Cutover(business_date)),
            CommandBody::OpenAccount { account_no, currency, .. } => {
                let wanted = account_no == self.config.name && self.currency.is_none();
                wanted.then_some(Event::Opened(currency))
            }
            CommandBody::DefineCurrency { .. }
            | CommandBody::SetAccountStatus { .. }
            | CommandBody::SetAccountLimits { .. }
            | CommandBody::Transfer { .. }
            | CommandBody::Freeze { .. }
            | CommandBody::Unfreeze { .. }
            | CommandBody::Capture { .. }
            | CommandBody::SettleBegin { .. }
            | CommandBody::Refund { .. }
            | CommandBody::SetFee { .. }
            | CommandBody::SetSettlementCycle { .. } => None,
        }
    }

    /// The driver has fed every record up to the runtime's durable point.
    pub fn on_caught_up(&mut self) {
        self.caught_up = true;
    }

    /// The next record outcome to find out (`Query::Tx(tx_id)`: applied iff its result is Ok).
    pub fn poll_query(&mut self) -> Option<OutcomeQuery> {
        self.queries.pop_front()
    }

    /// Whether the engine applied the record at `seq` (as asked by `poll_query`).
    pub fn on_outcome(&mut self, seq: u64, applied: bool) {
        if self.error.is_some() {
            return;
        }
        let index = self.records.binary_search_by_key(&seq, |queued| queued.seq);
        let queued = index.ok().and_then(|index| self.records.get_mut(index));
        if let Some(Queued { event: Some((_, outcome @ Outcome::Asked)), .. }) = queued {
            *outcome = Outcome::Known(applied);
        }
        self.process_records();
    }

    /// Follows the queued records from the front, in journal order, up to one whose outcome is
    /// not known yet.
    fn process_records(&mut self) {
        while let Some(front) = self.records.front() {
            if let Some((_, Outcome::Asked)) = front.event {
                return;
            }
            let Some(Queued { seq, timestamp_ns, event }) = self.records.pop_front() else {
                return;
            };
            if let Some((Event::Transaction(member), _)) = event {
                self.queued_new.remove(&member.tx_id);
            }
            let event = match event {
                Some((event, Outcome::Known(true))) => Some(event),
                Some((_, Outcome::Known(false) | Outcome::Asked)) | None => None,
            };
            // Journal timestamps never go backwards: any record at or past the window's end
            // closes it, whatever it is.
            if self.collecting.as_ref().is_some_and(|c| timestamp_ns >= c.window_end_ns) {
                self.close_batch();
            }
            match event {
                Some(Event::Transaction(member)) => self.follow(member, timestamp_ns),
                Some(Event::Confirmed(target)) => self.finished(target, Some(seq)),
                Some(Event::Failed(target)) => self.finished(target, None),
                Some(Event::Cutover(business_date)) => {
                    // The end of the day also ends the open netting window.
                    self.close_batch();
                    self.cut_day(business_date, seq);
                }
                Some(Event::Opened(currency)) => self.currency = Some(currency),
                None => {}
            }
            if self.error.is_some() {
                return;
            }
        }
    }

    /// A new transaction of the channel the engine applied, stamped `timestamp_ns`.
    fn follow(&mut self, member: Member, timestamp_ns: u64) {
        if self.open.contains_key(&member.tx_id) {
            return; // The same transaction journaled again: followed once.
        }
        let items_max = self.config.net_items_max;
        if self.collecting.as_ref().is_some_and(|c| c.members.len() >= items_max) {
            self.close_batch();
        }
        let window_ns = self.config.net_window_ms.saturating_mul(NS_PER_MS);
        let collecting = self.collecting.get_or_insert_with(|| Collecting {
            id: batch_id(member.tx_id),
            window_end_ns: timestamp_ns.saturating_add(window_ns),
            members: Vec::new(),
            begun: Begun::default(),
        });
        collecting.members.push(member);
        assert!(collecting.members.len() <= items_max.max(1), "a batch holds net_items_max");
        let batch = collecting.id;
        self.open.insert(member.tx_id, OpenTx { batch, member });
        assert!(self.open.len() <= WATCHED_MAX, "open transactions past the bound");
    }

    /// `target` was settled (`confirmed_seq`: its `SettleConfirm`'s journal position) or
    /// failed: it leaves the open set, and a confirmation joins the day.
    fn finished(&mut self, target: TxId, confirmed_seq: Option<u64>) {
        let Some(open) = self.open.remove(&target) else { return };
        let Some(seq) = confirmed_seq else { return };
        if self.day.len() >= DAY_LEN_MAX {
            self.error = Some(CoreError::DayFull { len_max: DAY_LEN_MAX });
            return;
        }
        self.day.push(DayEntry { seq, batch: open.batch, member: open.member });
    }

    /// The day's report: the confirmations journaled before the cutover at `cutover_seq`;
    /// later ones (our own, answered before the cutover was read) stay for the next day.
    fn cut_day(&mut self, business_date: u32, cutover_seq: u64) {
        let (today, later): (Vec<DayEntry>, Vec<DayEntry>) =
            std::mem::take(&mut self.day).into_iter().partition(|entry| entry.seq < cutover_seq);
        self.day = later;
        let currency = self.currency.map(|code| code.to_string()).unwrap_or_default();
        self.reports.push_back(Report::new(business_date, today, &currency));
    }

    /// The next cutover report for the driver to write.
    pub fn poll_report(&mut self) -> Option<Report> {
        self.reports.pop_front()
    }

    /// Writing `report` failed: its confirmations go back to the day, so a later cutover
    /// writes them.
    pub fn on_report_failed(&mut self, report: Report) {
        let mut entries = report.into_entries();
        entries.append(&mut self.day);
        self.day = entries;
    }

    /// Ends the batch being collected: it becomes one net instruction, due at once.
    fn close_batch(&mut self) {
        let Some(collecting) = self.collecting.take() else { return };
        let id = collecting.id;
        let Some(currency) = self.currency else {
            return self.notice(Notice::ChannelUnknown { batch: id });
        };
        let (net, scale) = net_of(collecting.members.iter());
        let items = collecting
            .members
            .iter()
            .map(|member| NetItem {
                id: member.tx_id.0,
                direction: member.direction,
                amount: member.amount(),
            })
            .collect();
        let instruction = NetInstruction {
            id,
            direction: if net >= 0 { Direction::Deposit } else { Direction::Withdraw },
            amount: format_minor(net.saturating_abs(), scale),
            currency: currency.to_string(),
            items,
        };
        let lines = format!("{}\n", Request::Net(instruction));
        let members = collecting.members.iter().map(|member| member.tx_id).collect();
        let batch = Batch {
            members,
            lines,
            attempts: 0,
            next_send_ns: 0,
            begun: collecting.begun,
            ready: false,
        };
        self.batches.insert(id, batch);
        self.arm(id);
    }

    /// A line from the bank, parsed by `bank::protocol::parse_reply`.
    pub fn on_answer(&mut self, reply: &Reply) {
        if self.error.is_some() {
            return;
        }
        let (id, step) = match reply {
            Reply::Confirmed(id) => (*id, Step::Confirm),
            Reply::Failed(id, reason) if reason.starts_with("net_mismatch") => {
                // Our instruction was wrong, not the transactions: never fail them for it.
                self.notice(Notice::NetMismatch { batch: *id, reason: reason.clone() });
                return self.give_up(*id);
            }
            Reply::Failed(id, reason) => {
                self.notice(Notice::Refused { batch: *id, reason: reason.clone() });
                (*id, Step::Fail)
            }
            // BUSY is retried on the backoff; the rest needs nothing.
            Reply::Accepted(_) | Reply::Busy(_) | Reply::Statement(_) | Reply::Error(_) => return,
        };
        self.disarm(id);
        let members = match self.batches.remove(&id) {
            Some(batch) => batch.members,
            None => match self.given_up.iter().position(|(given_up, _)| *given_up == id) {
                Some(index) => {
                    self.given_up.remove(index).map(|(_, members)| members).unwrap_or_default()
                }
                // A duplicate of an answer already applied, or an unknown id.
                None => return,
            },
        };
        self.commands.extend(members.iter().map(|&target| SettleCommand::new(target, step, id)));
    }

    /// The next command to submit through the runtime.
    pub fn poll_command(&mut self) -> Option<SettleCommand> {
        self.commands.pop_front()
    }

    /// What became of `command`. Applied confirmations and failures finish their target at
    /// once, without waiting to read them back from the journal.
    pub fn on_submitted(&mut self, command: &SettleCommand, submitted: Submitted) {
        if self.error.is_some() {
            return;
        }
        let (target, step) = (command.target, command.step);
        match (submitted, step) {
            (Submitted::NotAnswered, Step::Begin) => self.begun(command.batch, false),
            (Submitted::NotAnswered, Step::Confirm | Step::Fail) => {}
            (Submitted::Executed { result, .. }, Step::Begin) => {
                self.begun(command.batch, result == ResultCode::Ok)
            }
            // A duplicate was applied before: the journal shows it.
            (Submitted::Executed { result: ResultCode::Ok, duplicate: true, .. }, _) => {}
            (Submitted::Executed { result: ResultCode::Ok, seq, .. }, Step::Confirm) => {
                self.finished(target, Some(seq))
            }
            (Submitted::Executed { result: ResultCode::Ok, .. }, Step::Fail) => {
                self.finished(target, None)
            }
            (Submitted::Executed { result: ResultCode::IllegalTransition, .. }, _) => {
                self.notice(Notice::Reconcile { target, step })
            }
            (Submitted::Executed { result, .. }, _) => {
                self.notice(Notice::CommandRefused { target, step, result })
            }
        }
    }

    /// One `SettleBegin` of batch `id` answered (`live`: the member is settling through it).
    fn begun(&mut self, id: u128, live: bool) {
        let begun = match &mut self.collecting {
            Some(collecting) if collecting.id == id => &mut collecting.begun,
            _ => match self.batches.get_mut(&id) {
                Some(batch) => &mut batch.begun,
                None => return,
            },
        };
        begun.outstanding = begun.outstanding.saturating_sub(1);
        begun.live |= live;
        if begun.outstanding == 0 {
            self.arm(id);
        }
    }

    /// The next line for the operator's log.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        if self.notices.is_empty() && self.notices_dropped > 0 {
            let count = std::mem::take(&mut self.notices_dropped);
            return Some(Notice::Dropped { count });
        }
        self.notices.pop_front()
    }

    fn notice(&mut self, notice: Notice) {
        if self.notices.len() >= NOTICES_QUEUED_MAX {
            self.notices_dropped += 1;
        } else {
            self.notices.push_back(notice);
        }
    }

    /// Members of the remembered given-up batches that are still open: sent `attempts_max`
    /// times without an answer, left `Settling` for a late answer, reconciliation or an
    /// operator.
    pub fn stuck(&self) -> Vec<TxId> {
        let members = self.given_up.iter().flat_map(|(_, members)| members.iter().copied());
        members.filter(|tx_id| self.open.contains_key(tx_id)).collect()
    }

    /// Transactions followed and not finished.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }
}
