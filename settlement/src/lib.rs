//! The settlement processor: drives the deposits and withdrawals of one channel through an
//! external bank (`ledger-bank`, `bank/BANK.md`), applying every answer as a journaled engine
//! command through the runtime `Handle`. Nothing bypasses the journal.
//!
//! - **Discovery.** It tails the journal (read-only `JournalReader`, never past the durable
//!   sequence number) for `Deposit` and `Withdraw` commands whose channel is this channel's
//!   system account; the channel name *is* that account's `account_no`.
//! - **Netting.** The transactions are cut into micro-batches in journal order: a batch starts
//!   with a transaction and takes every later one of the channel whose sequencer timestamp is
//!   less than `net_window_ms` after the first's, up to `net_items_max`. The cut depends only
//!   on the journal (timestamps never go backwards in it), so a restarted processor forms the
//!   same batches with the same ids and re-sends the same instructions. A batch is closed when
//!   a journal record at or past its window's end is read; when nothing else is journaled, the
//!   processor's own `SettleBegin`s, stamped after the window, close it.
//! - **Instruction.** Every member still `PendingSettlement` gets `SettleBegin`; then one
//!   `NET <batch> <direction> <net> <currency> <count>` with the gross items is sent to the bank:
//!   one payment of Σ deposits − Σ withdrawals settles them all.
//! - **Answers.** `CONFIRMED <batch>` submits `SettleConfirm` for every member, `FAILED <batch>`
//!   submits `SettleFail`. The `tx_id` of each of these commands is derived from the target's
//!   `tx_id` and the step (`settlement_tx_id`), so a duplicate or replayed answer is an
//!   idempotent retry; a member already finished otherwise (an operator's `ledger settle`) is
//!   refused by the engine (`IllegalTransition`) and reported on stderr for reconciliation.
//! - **Retries and timeouts.** A batch without an answer is sent again after a backoff that
//!   doubles from `retry_initial_ms` up to `retry_max_ms`; after `attempts_max` sends it is
//!   given up: its members stay `Settling` (money stays available, `ledger` unmoved), are listed
//!   by `Processor::stuck`, and are resolved by a late answer, reconciliation or an operator.
//! - **Files.** At each applied `Cutover` it writes the day's settlement file (one line per
//!   confirmed transaction) and its netting report (gross vs net per batch).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bank::protocol::{parse_reply, Direction, NetInstruction, NetItem, Reply};
use engine::{format_minor, AccountNo, CommandBody, ResultCode, TxId, TxState};
use journal::JournalReader;
use runtime::{Answer, Handle, NewCommand, Producer, Query, QueryAnswer, Replies};

/// Answers from the bank waiting for the processor (the reader thread blocks when full).
const ANSWERS_QUEUED_MAX: usize = 4_096;
/// Most transactions one processor follows at a time; more wait in the journal.
pub const WATCHED_MAX: usize = 65_536;
/// Given-up batches remembered so that a late answer still settles them.
const GIVEN_UP_MAX: usize = 1_024;
/// Commands per submission to the runtime (below any configured submission maximum).
const SUBMISSION_LEN: usize = 64;
/// Requests (queries, submissions) the processor keeps in flight on its producer.
const PIPELINE: usize = 256;
/// Journal records read per discovery pass.
const DISCOVER_RECORDS: usize = 16_384;
/// When nothing closes a batch's window from the journal, it is closed this long after it.
const CLOSE_GRACE_NS: u64 = 1_000_000_000;
/// Where settlement files are written, under the data directory.
pub const SETTLEMENT_DIR_NAME: &str = "settlement";
/// Where netting reports are written, under the settlement directory.
pub const NETTING_DIR_NAME: &str = "netting";
/// The header of a settlement file.
pub const SETTLEMENT_HEADER: &str = "tx_id,direction,amount,currency";
/// The header of a netting report.
pub const NETTING_HEADER: &str = "batch_id,items,deposits,withdrawals,gross,net,direction";

/// The settlement file of channel `name` for `business_date` (YYYYMMDD).
pub fn settlement_file(data_dir: &Path, name: &AccountNo, business_date: u32) -> PathBuf {
    data_dir.join(SETTLEMENT_DIR_NAME).join(format!("{name}-{business_date}.csv"))
}

/// The netting report (gross vs net per batch) of channel `name` for `business_date`.
pub fn netting_file(data_dir: &Path, name: &AccountNo, business_date: u32) -> PathBuf {
    data_dir
        .join(SETTLEMENT_DIR_NAME)
        .join(NETTING_DIR_NAME)
        .join(format!("{name}-{business_date}.csv"))
}

/// How one channel's processor behaves.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// The channel name: its system account's `account_no`.
    pub name: AccountNo,
    /// The bank's address.
    pub addr: SocketAddr,
    /// First retry delay.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// Sends of one instruction before it is given up (left `Settling`).
    pub attempts_max: u32,
    /// How often the journal is polled for new transactions.
    pub poll_ms: u64,
    /// Length of a netting micro-batch's window, from its first transaction's timestamp.
    pub net_window_ms: u64,
    /// Most transactions in one net instruction (1..=`bank::protocol::NET_ITEMS_MAX`).
    pub net_items_max: usize,
}

impl ChannelOptions {
    /// Defaults for a channel: retries from 200 ms to 5 s, 8 sends, 20 ms polling, netting
    /// windows of 50 ms and at most 1 024 transactions.
    pub fn new(name: AccountNo, addr: SocketAddr) -> ChannelOptions {
        ChannelOptions {
            name,
            addr,
            retry_initial_ms: 200,
            retry_max_ms: 5_000,
            attempts_max: 8,
            poll_ms: 20,
            net_window_ms: 50,
            net_items_max: 1_024,
        }
    }
}

/// The step of a settlement a derived command performs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Step {
    /// `SettleBegin`.
    Begin = 1,
    /// `SettleConfirm`.
    Confirm = 2,
    /// `SettleFail`.
    Fail = 3,
}

/// SplitMix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 128-bit id that is a fixed function of `target` and `salt`.
fn derive(target: u128, salt: u64) -> u128 {
    let (high, low) = ((target >> 64) as u64, target as u64);
    let a = mix(high ^ mix(low ^ salt));
    let b = mix(low ^ mix(high ^ salt.rotate_left(32)));
    (a as u128) << 64 | b as u128
}

/// The `tx_id` of the settlement command `step` for `target`: a fixed function of both, so a
/// repeated answer submits the same `tx_id` and is answered as a duplicate.
pub fn settlement_tx_id(target: TxId, step: Step) -> TxId {
    TxId(derive(target.0, 0x5e77_1e00 + step as u64))
}

/// The id of the net instruction whose first transaction is `first` (one batch per first
/// transaction, so the id is the same after a restart).
pub fn batch_id(first: TxId) -> u128 {
    derive(first.0, 0xba7c_4000)
}

/// One transaction of a batch.
#[derive(Clone, Debug)]
struct Member {
    tx_id: TxId,
    direction: Direction,
    /// The amount's digits and decimals, as the command carried them.
    mantissa: i128,
    scale: u8,
}

impl Member {
    fn amount(&self) -> String {
        format_minor(self.mantissa, self.scale)
    }
}

/// Members of a batch that were given `SettleBegin`, and whether any of them is settling.
#[derive(Clone, Copy, Default)]
struct Begun {
    count: usize,
    live: bool,
}

/// The batch being collected from the journal.
struct Collecting {
    window_end_ns: u64,
    members: Vec<Member>,
    begun: Begun,
}

/// A closed batch: one net instruction, sent until answered or given up.
struct Batch {
    members: Vec<TxId>,
    /// The instruction's lines, each ending in `\n`.
    lines: String,
    attempts: u32,
    next_send: Instant,
    begun: Begun,
}

/// A transaction of this channel seen in the journal and not finished yet.
struct OpenTx {
    batch: u128,
    member: Member,
}

/// A transaction confirmed since the last cutover, with the journal position of its
/// `SettleConfirm`.
struct DayEntry {
    seq: u64,
    batch: u128,
    member: Member,
}

/// A request pipelined through the processor's producer.
enum Request {
    Query(TxId),
    Submit(Vec<NewCommand>),
}

/// A running processor.
pub struct Processor {
    stop: Arc<AtomicBool>,
    stuck: Arc<Mutex<Vec<TxId>>>,
    thread: Option<JoinHandle<()>>,
}

impl Processor {
    /// Transactions whose batch was given up after `attempts_max` sends without an answer.
    pub fn stuck(&self) -> Vec<TxId> {
        self.stuck.lock().map(|stuck| stuck.clone()).unwrap_or_default()
    }

    /// Stops the processor and waits for it.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a processor for one channel.
pub fn spawn(
    data_dir: &Path,
    handle: Handle,
    mut options: ChannelOptions,
) -> std::io::Result<Processor> {
    options.net_items_max = options.net_items_max.clamp(1, bank::protocol::NET_ITEMS_MAX);
    options.net_window_ms = options.net_window_ms.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let stuck = Arc::new(Mutex::new(Vec::new()));
    let (producer, replies) = handle.producer(PIPELINE as u32);
    let mut state = State {
        journal_dir: journal::journal_dir(data_dir),
        handle,
        producer,
        replies,
        options,
        stop: stop.clone(),
        stuck: stuck.clone(),
        collecting: None,
        batches: BTreeMap::new(),
        given_up: VecDeque::new(),
        open: HashMap::new(),
        day: Vec::new(),
        data_dir: data_dir.to_path_buf(),
        next_seq: 0,
        reader: None,
        held: None,
        bank: None,
    };
    let name = format!("settle-{}", state.options.name);
    let thread = thread::Builder::new().name(name).spawn(move || state.run())?;
    Ok(Processor { stop, stuck, thread: Some(thread) })
}

struct Bank {
    writer: TcpStream,
    answers: Receiver<String>,
}

struct State {
    journal_dir: PathBuf,
    handle: Handle,
    /// The processor's own submission path: queries and commands are pipelined through it,
    /// so one journal flush serves many of them.
    producer: Producer,
    replies: Replies,
    options: ChannelOptions,
    stop: Arc<AtomicBool>,
    stuck: Arc<Mutex<Vec<TxId>>>,
    collecting: Option<Collecting>,
    /// Closed batches awaiting an answer, by batch id.
    batches: BTreeMap<u128, Batch>,
    /// Given-up batches (id, members), oldest first: a late answer still applies.
    given_up: VecDeque<(u128, Vec<TxId>)>,
    /// This channel's transactions seen in the journal and not finished yet.
    open: HashMap<TxId, OpenTx>,
    /// Confirmations since the last cutover (not in journal order: sorted when written).
    day: Vec<DayEntry>,
    data_dir: PathBuf,
    /// The next journal record to follow, its reader, and a record read before it was durable.
    next_seq: u64,
    reader: Option<JournalReader>,
    held: Option<(u64, engine::Command)>,
    bank: Option<Bank>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

/// Whether a query answer says the engine applied the transaction.
fn was_applied(answer: &Option<Answer>) -> bool {
    matches!(answer, Some(Answer::Query(QueryAnswer::Tx(Some(view)))) if view.result == ResultCode::Ok)
}

impl State {
    fn run(&mut self) {
        while !self.stop.load(Ordering::Acquire) {
            self.discover();
            self.close_idle();
            self.send_due();
            let wait = Duration::from_millis(self.options.poll_ms);
            let answer = match &self.bank {
                Some(bank) => bank.answers.recv_timeout(wait),
                None => {
                    thread::sleep(wait);
                    continue;
                }
            };
            match answer {
                Ok(line) => self.answer(&line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.bank = None,
            }
        }
    }

    fn log(&self, message: &str) {
        eprintln!("ledgerd: channel {}: {message}", self.options.name);
    }

    /// Sends `requests` through the producer, at most `PIPELINE` in flight, and returns their
    /// answers in order (`None`: refused, or the runtime stopped).
    fn pipeline(&self, requests: Vec<Request>) -> Vec<Option<Answer>> {
        let mut answers: Vec<Option<Answer>> = (0..requests.len()).map(|_| None).collect();
        let mut in_flight = 0usize;
        let receive = |in_flight: &mut usize, answers: &mut Vec<Option<Answer>>| {
            *in_flight = in_flight.saturating_sub(1);
            match self.replies.recv() {
                Some(reply) => {
                    if let Some(slot) = answers.get_mut(reply.token as usize) {
                        *slot = reply.result.ok();
                    }
                }
                // The runtime stopped: nothing more will come.
                None => *in_flight = 0,
            }
        };
        for (index, request) in requests.into_iter().enumerate() {
            if in_flight >= PIPELINE {
                receive(&mut in_flight, &mut answers);
            }
            let sent = match request {
                Request::Query(tx_id) => self.producer.query(index as u64, Query::Tx(tx_id)),
                Request::Submit(commands) => {
                    self.producer.submit(index as u64, commands).map_err(|refused| refused.error)
                }
            };
            match sent {
                Ok(()) => in_flight += 1,
                Err(error) => self.log(&format!("request refused by the runtime: {error}")),
            }
        }
        while in_flight > 0 {
            receive(&mut in_flight, &mut answers);
        }
        answers
    }

    /// Reads new durable journal records (at most `DISCOVER_RECORDS` per call) and follows this
    /// channel's transactions. Whether the engine applied a record is asked for all of them at
    /// once, pipelined.
    fn discover(&mut self) {
        if self.open.len() >= WATCHED_MAX {
            return;
        }
        if self.next_seq == 0 {
            let segments = journal::list_segments(&self.journal_dir).unwrap_or_default();
            self.next_seq = segments.first().map_or(1, |segment| segment.first_seq);
        }
        let durable_seq = self.handle.durable_seq();
        if self.next_seq > durable_seq {
            return;
        }
        // One reader for the processor's life: reopening one would scan its segment again.
        let mut reader = match self.reader.take() {
            Some(reader) => reader,
            None => match JournalReader::open(&self.journal_dir, self.next_seq) {
                Ok(reader) => reader,
                Err(error) => {
                    self.log(&format!("read the journal from {}: {error}", self.next_seq));
                    return;
                }
            },
        };
        let mut records: Vec<(u64, engine::Command, bool)> = Vec::new();
        let mut new_txs: HashSet<TxId> = HashSet::new();
        let mut asks: Vec<usize> = Vec::new();
        while records.len() < DISCOVER_RECORDS && self.open.len() + new_txs.len() < WATCHED_MAX {
            let (seq, command) = match self.held.take() {
                Some(held) => held,
                None => match reader.next_ref() {
                    Ok(Some(record)) => match engine::decode_command(record.payload) {
                        Ok(command) => (record.seq, command),
                        Err(_) => {
                            self.next_seq = record.seq + 1;
                            continue;
                        }
                    },
                    Ok(None) => break,
                    Err(error) => {
                        // Reopened at `next_seq` on the next call.
                        self.log(&format!("read the journal at {}: {error}", self.next_seq));
                        return;
                    }
                },
            };
            if seq > durable_seq {
                // Read but not durable yet: kept for a later call.
                self.held = Some((seq, command));
                break;
            }
            self.next_seq = seq + 1;
            let ask = match command.body {
                CommandBody::Deposit { channel_no, .. }
                | CommandBody::Withdraw { channel_no, .. }
                    if channel_no == self.options.name =>
                {
                    new_txs.insert(command.tx_id);
                    true
                }
                CommandBody::SettleConfirm { target } | CommandBody::SettleFail { target } => {
                    self.open.contains_key(&target) || new_txs.contains(&target)
                }
                CommandBody::Cutover { .. } => true,
                _ => false,
            };
            if ask {
                asks.push(records.len());
            }
            records.push((seq, command, false));
        }
        self.reader = Some(reader);
        let questions = asks.iter().map(|&index| Request::Query(records[index].1.tx_id)).collect();
        for (&index, answer) in asks.iter().zip(self.pipeline(questions)) {
            records[index].2 = was_applied(&answer);
        }
        for (seq, command, applied) in records {
            if self.collecting.as_ref().is_some_and(|c| command.timestamp_ns >= c.window_end_ns) {
                self.close_batch();
            }
            if applied {
                self.follow(seq, command);
            }
        }
    }

    /// One journaled command the engine applied: a new transaction of this channel, a
    /// settlement of one, or a cutover (which writes the day's files).
    fn follow(&mut self, seq: u64, command: engine::Command) {
        let (direction, amount) = match command.body {
            CommandBody::Deposit { amount, .. } => (Direction::Deposit, amount),
            CommandBody::Withdraw { amount, .. } => (Direction::Withdraw, amount),
            CommandBody::SettleConfirm { target } => {
                self.finished(target, Some(seq));
                return;
            }
            CommandBody::SettleFail { target } => {
                self.finished(target, None);
                return;
            }
            CommandBody::Cutover { business_date } => {
                // The end of the day also ends the open netting window.
                self.close_batch();
                self.write_day_files(business_date, seq);
                return;
            }
            _ => return,
        };
        let member = Member {
            tx_id: command.tx_id,
            direction,
            mantissa: amount.mantissa,
            scale: amount.scale,
        };
        let full = self
            .collecting
            .as_ref()
            .is_some_and(|collecting| collecting.members.len() >= self.options.net_items_max);
        if full {
            self.close_batch();
        }
        let window_ns = self.options.net_window_ms.saturating_mul(1_000_000);
        let collecting = self.collecting.get_or_insert_with(|| Collecting {
            window_end_ns: command.timestamp_ns.saturating_add(window_ns),
            members: Vec::new(),
            begun: Begun::default(),
        });
        let batch = batch_id(collecting.members.first().map_or(member.tx_id, |first| first.tx_id));
        collecting.members.push(member.clone());
        self.open.insert(member.tx_id, OpenTx { batch, member });
    }

    /// `target` was settled (`confirmed_seq`: its `SettleConfirm`'s journal position) or
    /// failed: it leaves the open set, and a confirmation joins the day.
    fn finished(&mut self, target: TxId, confirmed_seq: Option<u64>) {
        let Some(open) = self.open.remove(&target) else { return };
        if let Some(seq) = confirmed_seq {
            self.day.push(DayEntry { seq, batch: open.batch, member: open.member });
        }
    }

    /// Ends the batch being collected: it becomes one net instruction.
    fn close_batch(&mut self) {
        let Some(collecting) = self.collecting.take() else { return };
        let Some(first) = collecting.members.first() else { return };
        let id = batch_id(first.tx_id);
        let Some(currency) = self.currency() else {
            self.log("channel account not found: batch dropped");
            return;
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
            amount: format_minor(net.abs(), scale),
            currency,
            items,
        };
        let lines = format!("{}\n", bank::protocol::Request::Net(instruction));
        let members = collecting.members.iter().map(|member| member.tx_id).collect();
        let next_send = Instant::now();
        let batch = Batch { members, lines, attempts: 0, next_send, begun: collecting.begun };
        self.batches.insert(id, batch);
    }

    /// A batch whose window has passed on the clock while nothing later was journaled: its
    /// members' `SettleBegin`s are stamped after the window and so close it when read back.
    fn close_idle(&mut self) {
        let Some(collecting) = &self.collecting else { return };
        let window_end_ns = collecting.window_end_ns;
        let now = now_ns();
        if now < window_end_ns {
            return;
        }
        let rest: Vec<TxId> =
            collecting.members[collecting.begun.count..].iter().map(|m| m.tx_id).collect();
        let live = self.begin(&rest);
        if let Some(collecting) = &mut self.collecting {
            collecting.begun.count += rest.len();
            collecting.begun.live |= live;
        }
        self.discover();
        let still_open = self.collecting.as_ref().is_some_and(|c| c.window_end_ns == window_end_ns);
        let read_all = self.next_seq > self.handle.durable_seq();
        if still_open && read_all && now >= window_end_ns.saturating_add(CLOSE_GRACE_NS) {
            self.close_batch();
        }
    }

    /// Submits `SettleBegin` for `members`; true when any of them is now settling. (A
    /// member refused as an illegal transition was settling or finished already.)
    fn begin(&mut self, members: &[TxId]) -> bool {
        let results = self.submit(members, Step::Begin);
        results.contains(&Some(ResultCode::Ok))
    }

    /// Writes the day's settlement file and netting report: the confirmations journaled
    /// before the cutover at `cutover_seq`; later ones stay for the next day.
    fn write_day_files(&mut self, business_date: u32, cutover_seq: u64) {
        let (mut today, later): (Vec<DayEntry>, Vec<DayEntry>) =
            std::mem::take(&mut self.day).into_iter().partition(|entry| entry.seq < cutover_seq);
        self.day = later;
        today.sort_unstable_by_key(|entry| entry.seq);
        let mut settlement = format!("{SETTLEMENT_HEADER}\n");
        let mut by_batch: BTreeMap<u128, Vec<&Member>> = BTreeMap::new();
        let mut order: Vec<u128> = Vec::new();
        let currency = self.currency().unwrap_or_default();
        for entry in &today {
            let member = &entry.member;
            let (id, direction) = (member.tx_id.0, member.direction.word());
            settlement.push_str(&format!("{id:032x},{direction},{},{currency}\n", member.amount()));
            let members = by_batch.entry(entry.batch).or_default();
            if members.is_empty() {
                order.push(entry.batch);
            }
            members.push(member);
        }
        let mut netting = format!("{NETTING_HEADER}\n");
        let scale = today.iter().map(|entry| entry.member.scale).max().unwrap_or(0);
        let mut total = Totals::default();
        for batch in order {
            let members = by_batch.get(&batch).map(Vec::as_slice).unwrap_or_default();
            let totals = Totals::of(members.iter().copied(), scale);
            netting.push_str(&totals.row(&format!("{batch:032x}"), scale));
            total.add(&totals);
        }
        netting.push_str(&total.row("total", scale));
        // The settlement file last: once it exists, the report does too (`ledger cutover`).
        let files = [
            (netting_file(&self.data_dir, &self.options.name, business_date), netting),
            (settlement_file(&self.data_dir, &self.options.name, business_date), settlement),
        ];
        for (path, text) in files {
            if let Err(error) = write_atomically(&path, &text) {
                self.log(&format!("write {}: {error}", path.display()));
                // Keep the day: a later cutover writes it again.
                today.append(&mut self.day);
                self.day = today;
                return;
            }
        }
    }

    fn currency(&self) -> Option<String> {
        match self.handle.query(Query::Account(self.options.name)) {
            Ok(QueryAnswer::Account(Some(view))) => Some(view.currency.to_string()),
            _ => None,
        }
    }

    /// Submits the settlement command `step` for every target, pipelined, and returns each
    /// result (`None`: not answered). Applied confirmations and failures finish their target
    /// at once; anything refused other than a `SettleBegin` already done is logged.
    fn submit(&mut self, targets: &[TxId], step: Step) -> Vec<Option<ResultCode>> {
        let requests = targets
            .chunks(SUBMISSION_LEN)
            .map(|chunk| {
                let commands = chunk
                    .iter()
                    .map(|&target| {
                        let body = match step {
                            Step::Begin => CommandBody::SettleBegin { target },
                            Step::Confirm => CommandBody::SettleConfirm { target },
                            Step::Fail => CommandBody::SettleFail { target },
                        };
                        NewCommand { tx_id: settlement_tx_id(target, step), body }
                    })
                    .collect();
                Request::Submit(commands)
            })
            .collect();
        let answers = self.pipeline(requests);
        let mut results = Vec::with_capacity(targets.len());
        for (chunk, answer) in targets.chunks(SUBMISSION_LEN).zip(answers) {
            let Some(Answer::Executed(executed)) = answer else {
                self.log(&format!("{step:?} for {} transactions not answered", chunk.len()));
                results.extend(chunk.iter().map(|_| None));
                continue;
            };
            let first_seq = executed.last_seq + 1 - executed.outcomes.len() as u64;
            for (index, (&target, outcome)) in chunk.iter().zip(&executed.outcomes).enumerate() {
                results.push(Some(outcome.result));
                match (outcome.result, step) {
                    // A duplicate was applied before: the journal shows it to `discover`.
                    (ResultCode::Ok, _) if outcome.duplicate => {}
                    (ResultCode::Ok, Step::Begin) => {}
                    (ResultCode::Ok, Step::Confirm) => {
                        self.finished(target, Some(first_seq + index as u64));
                    }
                    (ResultCode::Ok, Step::Fail) => self.finished(target, None),
                    (ResultCode::IllegalTransition, Step::Begin) => {}
                    (ResultCode::IllegalTransition, _) => self.log(&format!(
                        "{:032x}: {step:?} for a transaction already finished otherwise: reconcile",
                        target.0
                    )),
                    (other, _) => {
                        self.log(&format!("{:032x}: {step:?} refused: {}", target.0, other.name()))
                    }
                }
            }
        }
        results
    }

    /// Whether any of `members` is still pending or settling (asked all at once).
    fn any_unfinished(&self, members: &[TxId]) -> bool {
        let questions = members.iter().map(|&tx_id| Request::Query(tx_id)).collect();
        self.pipeline(questions).iter().any(|answer| {
            matches!(
                answer,
                Some(Answer::Query(QueryAnswer::Tx(Some(view))))
                    if matches!(view.state, Some(TxState::PendingSettlement | TxState::Settling))
            )
        })
    }

    fn connect(&mut self) -> bool {
        if self.bank.is_some() {
            return true;
        }
        let Ok(writer) = TcpStream::connect_timeout(&self.options.addr, Duration::from_secs(1))
        else {
            return false;
        };
        let Ok(read_half) = writer.try_clone() else { return false };
        let (sender, answers) = sync_channel(ANSWERS_QUEUED_MAX);
        let spawned = thread::Builder::new().name("settle-bank-reader".into()).spawn(move || {
            let mut reader = BufReader::new(read_half);
            let mut line = String::new();
            loop {
                line.clear();
                match std::io::Read::take(&mut reader, 1_024).read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if sender.send(line.trim_end().to_string()).is_err() {
                    return;
                }
            }
        });
        if spawned.is_err() {
            return false;
        }
        self.bank = Some(Bank { writer, answers });
        true
    }

    /// Sends every batch whose time has come; gives up on those out of attempts.
    fn send_due(&mut self) {
        let now = Instant::now();
        let due: Vec<u128> = self
            .batches
            .iter()
            .filter(|(_, batch)| batch.next_send <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(batch) = self.batches.get(&id) else { continue };
            if batch.begun.count < batch.members.len() {
                let rest = batch.members[batch.begun.count..].to_vec();
                let mut begun = batch.begun;
                begun.live |= self.begin(&rest);
                begun.count += rest.len();
                let members = self.batches.get(&id).map(|batch| batch.members.clone());
                // Nothing began now: settled, failed or rejected already (a restarted
                // processor re-reads old batches), unless someone else began them.
                if !begun.live && !members.is_some_and(|members| self.any_unfinished(&members)) {
                    self.batches.remove(&id);
                    continue;
                }
                if let Some(batch) = self.batches.get_mut(&id) {
                    batch.begun = Begun { count: begun.count, live: true };
                }
            }
            let Some(batch) = self.batches.get(&id) else { continue };
            if batch.attempts >= self.options.attempts_max {
                self.give_up(id);
                continue;
            }
            if !self.connect() {
                return;
            }
            let sent = match (&mut self.bank, self.batches.get(&id)) {
                (Some(bank), Some(batch)) => bank.writer.write_all(batch.lines.as_bytes()).is_ok(),
                _ => false,
            };
            if !sent {
                self.bank = None;
            }
            if let Some(batch) = self.batches.get_mut(&id) {
                let shift = batch.attempts.min(16);
                let backoff_ms =
                    (self.options.retry_initial_ms << shift).min(self.options.retry_max_ms);
                batch.attempts += 1;
                batch.next_send = now + Duration::from_millis(backoff_ms);
            }
        }
    }

    fn give_up(&mut self, id: u128) {
        let Some(batch) = self.batches.remove(&id) else { return };
        let count = batch.members.len();
        self.log(&format!(
            "batch {id:032x} ({count} transactions): no answer after {} sends",
            batch.attempts
        ));
        if let Ok(mut stuck) = self.stuck.lock() {
            stuck.extend_from_slice(&batch.members);
        }
        if self.given_up.len() >= GIVEN_UP_MAX {
            self.given_up.pop_front();
        }
        self.given_up.push_back((id, batch.members));
    }

    /// Applies one line from the bank.
    fn answer(&mut self, line: &str) {
        let step = match parse_reply(line) {
            Ok((Reply::Confirmed(id), _)) => (id, Step::Confirm),
            Ok((Reply::Failed(id, reason), _)) if reason.starts_with("net_mismatch") => {
                // Our instruction was wrong, not the transactions: never fail them for it.
                self.log(&format!("batch {id:032x}: the bank says {reason}; giving it up"));
                self.give_up(id);
                return;
            }
            Ok((Reply::Failed(id, reason), _)) => {
                self.log(&format!("batch {id:032x} refused by the bank: {reason}"));
                (id, Step::Fail)
            }
            // ACCEPTED, BUSY (retried on the backoff), or anything else.
            _ => return,
        };
        let (id, step) = step;
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
        self.submit(&members, step);
    }
}

/// Σ deposits − Σ withdrawals of `members`, at the largest scale among them.
fn net_of<'a>(members: impl Iterator<Item = &'a Member> + Clone) -> (i128, u8) {
    let scale = members.clone().map(|member| member.scale).max().unwrap_or(0);
    let totals = Totals::of(members, scale);
    (totals.deposits_minor - totals.withdrawals_minor, scale)
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
        totals.net_abs_minor = (totals.deposits_minor - totals.withdrawals_minor).abs();
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

/// Writes `text` to `path` through a temporary file and a rename, creating the directory.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension("csv.tmp");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests;
