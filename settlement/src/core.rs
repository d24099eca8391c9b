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
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use bank::protocol::{Direction, NetInstruction, NetItem, Reply, Request};
use engine::{format_minor, AccountNo, Command, CommandBody, CurrencyCode, ResultCode, TxId};

pub use report::Report;
use report::{net_of, DayEntry, Member};

use crate::{batch_id, settlement_tx_id, Step};

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

/// What the core needs of a channel's options (the driver's `ChannelOptions` hold more).
#[derive(Clone, Debug)]
pub struct Config {
    /// The channel name: its system account's `account_no`.
    pub name: AccountNo,
    /// First retry delay.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// Sends of one instruction before it is given up (left `Settling`).
    pub attempts_max: u32,
    /// Length of a netting window, from its first transaction's timestamp (at least 1).
    pub net_window_ms: u64,
    /// Most transactions in one net instruction (1..=`bank::protocol::NET_ITEMS_MAX`).
    pub net_items_max: usize,
}

/// Why the core stopped. Once stopped it takes no more input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A journal record is not a command: nothing is ever skipped, so the processor stops.
    #[error("journal record {seq} does not decode as a command: {reason}")]
    Undecodable {
        /// The record's sequence number.
        seq: u64,
        /// The decoder's message.
        reason: String,
    },
    /// The day holds `DAY_LEN_MAX` confirmations; its settlement file would be incomplete.
    #[error("more than {len_max} confirmations since the last cutover")]
    DayFull {
        /// `DAY_LEN_MAX`.
        len_max: usize,
    },
}

/// A question about a journal record: did the engine apply the command `tx_id` names?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutcomeQuery {
    /// The record's sequence number (give it back to `on_outcome`).
    pub seq: u64,
    /// The record's command.
    pub tx_id: TxId,
}

/// A settlement command to journal: submit `body()` with `tx_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleCommand {
    /// Derived from `target` and `step` (`settlement_tx_id`).
    pub tx_id: TxId,
    /// The deposit or withdrawal it settles.
    pub target: TxId,
    /// Begin, confirm or fail.
    pub step: Step,
    /// The batch it belongs to.
    pub batch: u128,
}

impl SettleCommand {
    fn new(target: TxId, step: Step, batch: u128) -> SettleCommand {
        SettleCommand { tx_id: settlement_tx_id(target, step), target, step, batch }
    }

    /// The engine command.
    pub fn body(&self) -> CommandBody {
        let target = self.target;
        match self.step {
            Step::Begin => CommandBody::SettleBegin { target },
            Step::Confirm => CommandBody::SettleConfirm { target },
            Step::Fail => CommandBody::SettleFail { target },
        }
    }
}

/// What became of a submitted `SettleCommand`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Journaled at `seq` and executed with `result` (`duplicate`: an earlier one with the
    /// same `tx_id` was, and this is its result).
    Executed {
        /// Its journal position.
        seq: u64,
        /// The engine's result.
        result: ResultCode,
        /// Whether it repeated an earlier command.
        duplicate: bool,
    },
    /// Refused by the runtime or never answered.
    NotAnswered,
}

/// One net instruction to send to the bank: `lines`, each ending in `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// The batch id.
    pub batch: u128,
    /// Which send this is, from 1.
    pub attempt: u32,
    /// The `NET` line and its `ITEM` lines.
    pub lines: String,
}

/// Something for the operator's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A batch got no answer after `attempts` sends: its members stay `Settling`.
    GivenUp {
        /// The batch id.
        batch: u128,
        /// Its transactions.
        members: usize,
        /// Sends made.
        attempts: u32,
    },
    /// The bank says the instruction itself was wrong: given up, never failed.
    NetMismatch {
        /// The batch id.
        batch: u128,
        /// The bank's reason.
        reason: String,
    },
    /// The bank refused the payment: every member fails.
    Refused {
        /// The batch id.
        batch: u128,
        /// The bank's reason.
        reason: String,
    },
    /// A confirmation or failure for a transaction finished otherwise.
    Reconcile {
        /// The transaction.
        target: TxId,
        /// The refused step.
        step: Step,
    },
    /// A settlement command refused for another reason.
    CommandRefused {
        /// The transaction.
        target: TxId,
        /// The refused step.
        step: Step,
        /// The engine's result.
        result: ResultCode,
    },
    /// A batch closed before the channel account's currency was known: it is not sent.
    ChannelUnknown {
        /// The batch id.
        batch: u128,
    },
    /// Notices lost because the queue was full.
    Dropped {
        /// How many.
        count: u64,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::GivenUp { batch, members, attempts } => write!(
                f,
                "batch {batch:032x} ({members} transactions): no answer after {attempts} sends"
            ),
            Notice::NetMismatch { batch, reason } => {
                write!(f, "batch {batch:032x}: the bank says {reason}; giving it up")
            }
            Notice::Refused { batch, reason } => {
                write!(f, "batch {batch:032x} refused by the bank: {reason}")
            }
            Notice::Reconcile { target, step } => write!(
                f,
                "{:032x}: {step:?} for a transaction already finished otherwise: reconcile",
                target.0
            ),
            Notice::CommandRefused { target, step, result } => {
                write!(f, "{:032x}: {step:?} refused: {}", target.0, result.name())
            }
            Notice::ChannelUnknown { batch } => {
                write!(f, "channel account not found: batch {batch:032x} dropped")
            }
            Notice::Dropped { count } => write!(f, "{count} notices dropped"),
        }
    }
}

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

/// Whether a queued record's outcome matters, and what it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Ignored,
    Asked,
    Known(bool),
}

struct Queued {
    seq: u64,
    command: Command,
    outcome: Outcome,
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
        let outcome = if self.matters(&command) { Outcome::Asked } else { Outcome::Ignored };
        if outcome == Outcome::Asked {
            self.queries.push_back(OutcomeQuery { seq, tx_id: command.tx_id });
        }
        if let CommandBody::Deposit { channel_no, .. } | CommandBody::Withdraw { channel_no, .. } =
            command.body
        {
            if channel_no == self.config.name {
                self.queued_new.insert(command.tx_id);
            }
        }
        self.records.push_back(Queued { seq, command, outcome });
        self.process_records();
        Ok(())
    }

    /// Whether the outcome of `command` changes anything here.
    fn matters(&self, command: &Command) -> bool {
        match command.body {
            CommandBody::Deposit { channel_no, .. } | CommandBody::Withdraw { channel_no, .. } => {
                channel_no == self.config.name
            }
            CommandBody::SettleConfirm { target } | CommandBody::SettleFail { target } => {
                self.open.contains_key(&target) || self.queued_new.contains(&target)
            }
            CommandBody::Cutover { .. } => true,
            CommandBody::OpenAccount { account_no, .. } => {
                account_no == self.config.name && self.currency.is_none()
            }
            _ => false,
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
        if let Some(queued) = index.ok().and_then(|index| self.records.get_mut(index)) {
            if queued.outcome == Outcome::Asked {
                queued.outcome = Outcome::Known(applied);
            }
        }
        self.process_records();
    }

    /// Follows the queued records from the front, in journal order, up to one whose outcome is
    /// not known yet.
    fn process_records(&mut self) {
        while let Some(front) = self.records.front() {
            let applied = match front.outcome {
                Outcome::Asked => return,
                Outcome::Ignored => false,
                Outcome::Known(applied) => applied,
            };
            let Some(Queued { seq, command, .. }) = self.records.pop_front() else { return };
            self.queued_new.remove(&command.tx_id);
            // Journal timestamps never go backwards: any record at or past the window's end
            // closes it, whatever it is.
            if self.collecting.as_ref().is_some_and(|c| command.timestamp_ns >= c.window_end_ns) {
                self.close_batch();
            }
            if applied {
                self.follow(seq, &command);
            }
            if self.error.is_some() {
                return;
            }
        }
    }

    /// One command the engine applied that matters here.
    fn follow(&mut self, seq: u64, command: &Command) {
        let (direction, amount) = match command.body {
            CommandBody::Deposit { amount, .. } => (Direction::Deposit, amount),
            CommandBody::Withdraw { amount, .. } => (Direction::Withdraw, amount),
            CommandBody::SettleConfirm { target } => return self.finished(target, Some(seq)),
            CommandBody::SettleFail { target } => return self.finished(target, None),
            CommandBody::Cutover { business_date } => {
                // The end of the day also ends the open netting window.
                self.close_batch();
                return self.cut_day(business_date, seq);
            }
            CommandBody::OpenAccount { currency, .. } => {
                self.currency = Some(currency);
                return;
            }
            _ => return,
        };
        if self.open.contains_key(&command.tx_id) {
            return; // The same transaction journaled again: followed once.
        }
        let member = Member {
            tx_id: command.tx_id,
            direction,
            mantissa: amount.mantissa,
            scale: amount.scale,
        };
        let items_max = self.config.net_items_max;
        if self.collecting.as_ref().is_some_and(|c| c.members.len() >= items_max) {
            self.close_batch();
        }
        let window_ns = self.config.net_window_ms.saturating_mul(NS_PER_MS);
        let collecting = self.collecting.get_or_insert_with(|| Collecting {
            id: batch_id(member.tx_id),
            window_end_ns: command.timestamp_ns.saturating_add(window_ns),
            members: Vec::new(),
            begun: Begun::default(),
        });
        collecting.members.push(member.clone());
        let batch = collecting.id;
        self.open.insert(member.tx_id, OpenTx { batch, member });
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

    /// Puts batch `id` on the timers at its next send, unless it waits for something else.
    fn arm(&mut self, id: u128) {
        if let Some(batch) = self.batches.get(&id) {
            if batch.begun.outstanding == 0 && !batch.ready {
                self.timers.insert((batch.next_send_ns, id));
            }
        }
    }

    fn disarm(&mut self, id: u128) {
        if let Some(batch) = self.batches.get(&id) {
            self.timers.remove(&(batch.next_send_ns, id));
        }
    }

    /// When `handle_timeout` is next needed: `None` while only an event can move anything.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.error.is_some() {
            return None;
        }
        let batch = self.timers.first().map(|&(at_ns, _)| at_ns);
        let collecting = self.collecting.as_ref().and_then(|collecting| {
            if collecting.begun.count < collecting.members.len() {
                Some(collecting.window_end_ns)
            } else if self.caught_up && self.records.is_empty() {
                Some(collecting.window_end_ns.saturating_add(CLOSE_GRACE_NS))
            } else {
                None
            }
        });
        match (batch, collecting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time is `now_ns`: closes idle windows, sends due batches, gives up exhausted ones.
    pub fn handle_timeout(&mut self, now_ns: u64) {
        if self.error.is_some() {
            return;
        }
        self.close_idle(now_ns);
        while let Some(&(at_ns, id)) = self.timers.first() {
            if at_ns > now_ns {
                break;
            }
            self.timers.remove(&(at_ns, id));
            self.due(id);
        }
    }

    /// A window that has passed on the clock while nothing later was journaled: its members'
    /// `SettleBegin`s are stamped after the window and so close it when read back. Only if
    /// none of them is journaled, once everything durable was read, does the clock close it.
    fn close_idle(&mut self, now_ns: u64) {
        let Some(collecting) = &mut self.collecting else { return };
        if now_ns < collecting.window_end_ns {
            return;
        }
        let (id, from) = (collecting.id, collecting.begun.count);
        let rest: Vec<TxId> = collecting.members[from..].iter().map(|m| m.tx_id).collect();
        collecting.begun.count = collecting.members.len();
        collecting.begun.outstanding += rest.len();
        let grace_end_ns = collecting.window_end_ns.saturating_add(CLOSE_GRACE_NS);
        self.begin(id, &rest);
        if self.caught_up && self.records.is_empty() && now_ns >= grace_end_ns {
            self.close_batch();
        }
    }

    fn begin(&mut self, batch: u128, targets: &[TxId]) {
        let commands = targets.iter().map(|&target| SettleCommand::new(target, Step::Begin, batch));
        self.commands.extend(commands);
    }

    /// Batch `id`'s send time has come.
    fn due(&mut self, id: u128) {
        let open = &self.open;
        let Some(batch) = self.batches.get_mut(&id) else { return };
        if batch.begun.count < batch.members.len() {
            // Every member still open gets `SettleBegin` first; the send waits for them.
            let rest: Vec<TxId> = batch.members[batch.begun.count..]
                .iter()
                .copied()
                .filter(|tx_id| open.contains_key(tx_id))
                .collect();
            batch.begun.count = batch.members.len();
            batch.begun.outstanding += rest.len();
            if !rest.is_empty() {
                return self.begin(id, &rest);
            }
        }
        if !batch.begun.live {
            // Nothing began now: settled, failed or rejected already (a restarted processor
            // re-reads old batches), unless a member is still open (someone else began it).
            if !batch.members.iter().any(|tx_id| open.contains_key(tx_id)) {
                self.batches.remove(&id);
                return;
            }
            batch.begun.live = true;
        }
        if batch.attempts >= self.config.attempts_max {
            return self.give_up(id);
        }
        batch.ready = true;
        self.ready.push_back(id);
    }

    fn give_up(&mut self, id: u128) {
        self.disarm(id);
        let Some(batch) = self.batches.remove(&id) else { return };
        let (members, attempts) = (batch.members.len(), batch.attempts);
        self.notice(Notice::GivenUp { batch: id, members, attempts });
        if self.given_up.len() >= GIVEN_UP_MAX {
            self.given_up.pop_front();
        }
        self.given_up.push_back((id, batch.members));
    }

    /// Whether an instruction waits to be sent (the driver connects to the bank first).
    pub fn has_instruction(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The next instruction to send at `now_ns`; taking it counts as a send, and the batch is
    /// sent again after the backoff unless answered.
    pub fn poll_instruction(&mut self, now_ns: u64) -> Option<Instruction> {
        while let Some(id) = self.ready.pop_front() {
            let Some(batch) = self.batches.get_mut(&id) else { continue };
            if !batch.ready {
                continue;
            }
            let shift = batch.attempts.min(16);
            let backoff_ms = self
                .config
                .retry_initial_ms
                .saturating_mul(1 << shift)
                .min(self.config.retry_max_ms);
            batch.ready = false;
            batch.attempts += 1;
            batch.next_send_ns = now_ns.saturating_add(backoff_ms.saturating_mul(NS_PER_MS));
            let instruction =
                Instruction { batch: id, attempt: batch.attempts, lines: batch.lines.clone() };
            self.arm(id);
            return Some(instruction);
        }
        None
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
