//! The settlement processor: drives the deposits and withdrawals of one channel through an
//! external bank (`ledger-bank`, `bank/BANK.md`), applying every answer as a journaled engine
//! command through the runtime `Handle`. Nothing bypasses the journal.
//!
//! - **Discovery.** It tails the journal (read-only `JournalReader`, never past the durable
//!   sequence number) for `Deposit` and `Withdraw` commands whose channel is this channel's
//!   system account; the channel name *is* that account's `account_no`.
//! - **Instruction.** For a transaction still `PendingSettlement` it submits `SettleBegin`, then
//!   sends `SETTLE <tx_id> ...` to the bank (the instruction id is the transaction's `tx_id`).
//! - **Answers.** `CONFIRMED` submits `SettleConfirm`, `FAILED` submits `SettleFail`. The
//!   `tx_id` of each of these commands is derived from the target's `tx_id` and the step
//!   (`settlement_tx_id`), so a duplicate or replayed answer is an idempotent retry; an answer
//!   for a transaction already finished otherwise (a late confirmation after a failure) is
//!   refused by the engine (`IllegalTransition`) and reported on stderr for reconciliation.
//! - **Retries and timeouts.** A transaction without an answer is sent again after a backoff
//!   that doubles from `retry_initial_ms` up to `retry_max_ms`; after `attempts_max` sends it is
//!   given up: it stays `Settling` (money stays available, `ledger` unmoved), is listed by
//!   `Processor::stuck`, and is resolved by reconciliation or an operator's `ledger settle`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use engine::{format_minor, AccountNo, CommandBody, ResultCode, TxId, TxState};
use journal::runtime::{Handle, NewCommand, Query, QueryAnswer};
use journal::JournalReader;

/// Answers from the bank waiting for the processor (the reader thread blocks when full).
const ANSWERS_QUEUED_MAX: usize = 4_096;
/// Most transactions one processor follows at a time; more wait in the journal.
pub const WATCHED_MAX: usize = 65_536;
/// Where settlement files are written, under the data directory.
pub const SETTLEMENT_DIR_NAME: &str = "settlement";
/// The header of a settlement file.
pub const SETTLEMENT_HEADER: &str = "tx_id,direction,amount,currency";

/// The settlement file of channel `name` for `business_date` (YYYYMMDD).
pub fn settlement_file(data_dir: &Path, name: &AccountNo, business_date: u32) -> PathBuf {
    data_dir.join(SETTLEMENT_DIR_NAME).join(format!("{name}-{business_date}.csv"))
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
}

impl ChannelOptions {
    /// Defaults for a channel: retries from 200 ms to 5 s, 8 sends, 20 ms polling.
    pub fn new(name: AccountNo, addr: SocketAddr) -> ChannelOptions {
        ChannelOptions {
            name,
            addr,
            retry_initial_ms: 200,
            retry_max_ms: 5_000,
            attempts_max: 8,
            poll_ms: 20,
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

/// The `tx_id` of the settlement command `step` for `target`: a fixed function of both, so a
/// repeated answer submits the same `tx_id` and is answered as a duplicate.
pub fn settlement_tx_id(target: TxId, step: Step) -> TxId {
    let (high, low) = ((target.0 >> 64) as u64, target.0 as u64);
    let salt = 0x5e77_1e00 + step as u64;
    let a = mix(high ^ mix(low ^ salt));
    let b = mix(low ^ mix(high ^ salt.rotate_left(32)));
    TxId((a as u128) << 64 | b as u128)
}

#[derive(Clone, Debug)]
struct Watched {
    line: String,
    attempts: u32,
    next_send: Instant,
}

/// A running processor.
pub struct Processor {
    stop: Arc<AtomicBool>,
    stuck: Arc<Mutex<Vec<TxId>>>,
    thread: Option<JoinHandle<()>>,
}

impl Processor {
    /// Transactions given up after `attempts_max` sends without an answer.
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
    options: ChannelOptions,
) -> std::io::Result<Processor> {
    let stop = Arc::new(AtomicBool::new(false));
    let stuck = Arc::new(Mutex::new(Vec::new()));
    let mut state = State {
        journal_dir: journal::journal_dir(data_dir),
        handle,
        options,
        stop: stop.clone(),
        stuck: stuck.clone(),
        watched: BTreeMap::new(),
        open: BTreeMap::new(),
        day: Vec::new(),
        data_dir: data_dir.to_path_buf(),
        next_seq: 0,
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
    options: ChannelOptions,
    stop: Arc<AtomicBool>,
    stuck: Arc<Mutex<Vec<TxId>>>,
    watched: BTreeMap<TxId, Watched>,
    /// This channel's transactions seen in the journal and not yet finished, with their line
    /// for the settlement file (`tx_id,direction,amount,currency`).
    open: BTreeMap<TxId, String>,
    /// Settlement-file lines of the transactions confirmed since the last cutover.
    day: Vec<String>,
    data_dir: PathBuf,
    next_seq: u64,
    bank: Option<Bank>,
}

impl State {
    fn run(&mut self) {
        while !self.stop.load(Ordering::Acquire) {
            self.discover();
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

    /// Reads new durable journal records and starts following this channel's transactions.
    fn discover(&mut self) {
        if self.watched.len() >= WATCHED_MAX {
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
        let Ok(mut reader) = JournalReader::open(&self.journal_dir, self.next_seq) else { return };
        let Some(currency) = self.currency() else { return };
        while self.next_seq <= durable_seq && self.open.len() < WATCHED_MAX {
            let Ok(Some(record)) = reader.next_ref() else { break };
            if record.seq > durable_seq {
                break;
            }
            self.next_seq = record.seq + 1;
            let Ok(command) = engine::decode_command(record.payload) else { continue };
            self.follow(command, &currency);
        }
    }

    /// One journaled command: a new transaction of this channel, a settlement of one, or a
    /// cutover (which writes the day's settlement file).
    fn follow(&mut self, command: engine::Command, currency: &str) {
        let (direction, channel_no, amount) = match command.body {
            CommandBody::Deposit { channel_no, amount, .. } => ("DEPOSIT", channel_no, amount),
            CommandBody::Withdraw { channel_no, amount, .. } => ("WITHDRAW", channel_no, amount),
            CommandBody::SettleConfirm { target } | CommandBody::SettleFail { target } => {
                let confirmed = matches!(command.body, CommandBody::SettleConfirm { .. });
                if self.open.contains_key(&target) && self.applied(command.tx_id) {
                    let line = self.open.remove(&target).expect("checked above");
                    if confirmed {
                        self.day.push(line);
                    }
                }
                return;
            }
            CommandBody::Cutover { business_date } => {
                if self.applied(command.tx_id) {
                    self.write_settlement_file(business_date);
                }
                return;
            }
            _ => return,
        };
        if channel_no != self.options.name || !self.applied(command.tx_id) {
            return;
        }
        let tx_id = command.tx_id;
        let amount = format_minor(amount.mantissa, amount.scale);
        let id = format!("{:032x}", tx_id.0);
        self.open.insert(tx_id, format!("{id},{direction},{amount},{currency}"));
        self.watched.entry(tx_id).or_insert_with(|| {
            let line = format!("SETTLE {id} {direction} {amount} {currency}\n");
            Watched { line, attempts: 0, next_send: Instant::now() }
        });
    }

    /// Whether the engine applied the command `tx_id` (rejected ones are journaled too).
    fn applied(&self, tx_id: TxId) -> bool {
        matches!(
            self.handle.query(Query::Tx(tx_id)),
            Ok(QueryAnswer::Tx(Some(view))) if view.result == ResultCode::Ok
        )
    }

    /// Writes the confirmations since the last cutover (atomically: temp file, then rename).
    fn write_settlement_file(&mut self, business_date: u32) {
        let path = settlement_file(&self.data_dir, &self.options.name, business_date);
        let mut text = format!("{SETTLEMENT_HEADER}\n");
        for line in &self.day {
            text.push_str(line);
            text.push('\n');
        }
        let temp = path.with_extension("csv.tmp");
        let written = std::fs::create_dir_all(self.data_dir.join(SETTLEMENT_DIR_NAME))
            .and_then(|()| std::fs::write(&temp, text))
            .and_then(|()| std::fs::rename(&temp, &path));
        match written {
            Ok(()) => self.day.clear(),
            Err(error) => self.log(&format!("write {}: {error}", path.display())),
        }
    }

    fn currency(&self) -> Option<String> {
        match self.handle.query(Query::Account(self.options.name)) {
            Ok(QueryAnswer::Account(Some(view))) => Some(view.currency.to_string()),
            _ => None,
        }
    }

    fn state_of(&self, tx_id: TxId) -> Option<TxState> {
        match self.handle.query(Query::Tx(tx_id)) {
            Ok(QueryAnswer::Tx(Some(view))) if view.result == ResultCode::Ok => view.state,
            _ => None,
        }
    }

    fn submit(&self, target: TxId, step: Step) -> Option<ResultCode> {
        let body = match step {
            Step::Begin => CommandBody::SettleBegin { target },
            Step::Confirm => CommandBody::SettleConfirm { target },
            Step::Fail => CommandBody::SettleFail { target },
        };
        let command = NewCommand { tx_id: settlement_tx_id(target, step), body };
        match self.handle.execute(vec![command]) {
            Ok(executed) => executed.outcomes.first().map(|outcome| outcome.result),
            Err(error) => {
                self.log(&format!("submit {step:?} for {:032x}: {error}", target.0));
                None
            }
        }
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

    /// Sends every instruction whose time has come; gives up on those out of attempts.
    fn send_due(&mut self) {
        let now = Instant::now();
        let due: Vec<TxId> = self
            .watched
            .iter()
            .filter(|(_, watched)| watched.next_send <= now)
            .map(|(tx_id, _)| *tx_id)
            .collect();
        for tx_id in due {
            match self.state_of(tx_id) {
                Some(TxState::PendingSettlement) => {
                    self.submit(tx_id, Step::Begin);
                }
                Some(TxState::Settling) => {}
                // Rejected, finished, or settled by someone else: nothing to send.
                _ => {
                    self.watched.remove(&tx_id);
                    continue;
                }
            }
            let Some(watched) = self.watched.get(&tx_id).cloned() else { continue };
            if watched.attempts >= self.options.attempts_max {
                self.log(&format!("{:032x}: no answer after {} sends", tx_id.0, watched.attempts));
                self.watched.remove(&tx_id);
                if let Ok(mut stuck) = self.stuck.lock() {
                    stuck.push(tx_id);
                }
                continue;
            }
            if !self.connect() {
                return;
            }
            let sent = match &mut self.bank {
                Some(bank) => bank.writer.write_all(watched.line.as_bytes()).is_ok(),
                None => false,
            };
            if !sent {
                self.bank = None;
            }
            let shift = watched.attempts.min(16);
            let backoff_ms =
                (self.options.retry_initial_ms << shift).min(self.options.retry_max_ms);
            if let Some(entry) = self.watched.get_mut(&tx_id) {
                entry.attempts += 1;
                entry.next_send = now + Duration::from_millis(backoff_ms);
            }
        }
    }

    /// Applies one line from the bank.
    fn answer(&mut self, line: &str) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let id_text = rest.split(' ').next().unwrap_or("");
        let Ok(id) = u128::from_str_radix(id_text, 16) else { return };
        let target = TxId(id);
        let step = match word {
            "CONFIRMED" => Step::Confirm,
            "FAILED" => Step::Fail,
            // ACCEPTED, BUSY (retried on the backoff), or anything else.
            _ => return,
        };
        match self.submit(target, step) {
            Some(ResultCode::Ok) => {
                self.watched.remove(&target);
            }
            Some(ResultCode::IllegalTransition) => self.log(&format!(
                "{:032x}: late {step:?} for a transaction already finished: reconcile",
                target.0
            )),
            Some(other) => {
                self.log(&format!("{:032x}: {step:?} refused: {}", target.0, other.name()))
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;
