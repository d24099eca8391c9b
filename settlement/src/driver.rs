//! The thin driver around `core::Settlement`: one thread that owns the journal tail, the
//! runtime producer, the bank connection, the clock and the files. It decides nothing: each
//! turn it feeds the core what happened and carries out what the core asks for, then sleeps
//! until the core's timeout, a bank answer, a runtime reply or `poll_ms` (the durable point
//! has no notification, so the journal is polled).

mod bank_link;
mod files;
mod tail;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, select, Receiver, Sender};
use engine::{ResultCode, TxId};
use runtime::{Answer, Handle, NewCommand, Producer, Query, QueryAnswer, Replies, ReplyNotify};

use crate::core::{SettleCommand, Settlement, Submitted};
use crate::{netting_file, settlement_file, ChannelOptions, SettlementError};
use bank_link::BankLink;
use tail::Tail;

/// Commands per submission to the runtime (below any configured submission maximum).
const SUBMISSION_LEN: usize = 64;
/// Requests (queries, submissions) the processor keeps in flight on its producer.
const PIPELINE: usize = 256;
/// Journal records fed to the core per turn.
const RECORDS_PER_TURN: usize = 16_384;

/// What the processor shows to other threads.
#[derive(Default)]
struct Shared {
    stuck: Vec<TxId>,
    failure: Option<String>,
}

/// A running processor.
pub struct Processor {
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<Result<(), SettlementError>>>,
}

impl Processor {
    /// Transactions whose batch was given up after `attempts_max` sends without an answer
    /// (among the last given-up batches) and that are not finished yet.
    pub fn stuck(&self) -> Vec<TxId> {
        self.shared.lock().map(|shared| shared.stuck.clone()).unwrap_or_default()
    }

    /// Why the processor stopped by itself, if it did (it was also logged on stderr).
    pub fn failure(&self) -> Option<String> {
        self.shared.lock().ok().and_then(|shared| shared.failure.clone())
    }

    /// Stops the processor and waits for it.
    pub fn shutdown(self) {
        let _ = self.join();
    }

    /// Stops the processor, waits for it and says how it ended.
    pub fn join(mut self) -> Result<(), SettlementError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            // A panic is a bug; it was printed by the panic hook.
            Some(Err(_)) | None => Ok(()),
        }
    }
}

impl Drop for Processor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Starts a processor for one channel.
pub fn spawn(
    data_dir: &Path,
    handle: Handle,
    options: ChannelOptions,
) -> std::io::Result<Processor> {
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(Shared::default()));
    let currency = match handle.query(Query::Account(options.name)) {
        Ok(QueryAnswer::Account(Some(view))) => Some(view.currency),
        // Not opened yet: the core learns it from the account's `OpenAccount` record.
        _ => None,
    };
    let (wake_tx, wake) = bounded(1);
    let (producer, replies) = handle.producer_notifying(PIPELINE as u32, Arc::new(Wake(wake_tx)));
    let (answers_tx, answers) = bounded(bank_link::ANSWERS_QUEUED_MAX);
    let mut driver = Driver {
        core: Settlement::new(options.core_config(), currency),
        tail: Tail::new(journal::journal_dir(data_dir)),
        data_dir: data_dir.to_path_buf(),
        handle,
        producer,
        replies,
        wake,
        answers_tx,
        answers,
        bank: None,
        pending: HashMap::new(),
        next_token: 0,
        stop: stop.clone(),
        shared: shared.clone(),
        published_at: None,
        options,
    };
    let name = format!("settle-{}", driver.options.name);
    let thread = thread::Builder::new().name(name).spawn(move || {
        let result = driver.run();
        if let Err(error) = &result {
            driver.log(&format!("stopped: {error}"));
            if let Ok(mut shared) = driver.shared.lock() {
                shared.failure = Some(error.to_string());
            }
        }
        result
    })?;
    Ok(Processor { stop, shared, thread: Some(thread) })
}

/// Wakes the driver when the runtime put replies on its queue.
struct Wake(Sender<()>);

impl ReplyNotify for Wake {
    fn notify(&self) {
        // Full means a wake-up is pending already.
        let _ = self.0.try_send(());
    }
}

/// A request in flight on the producer.
enum Pending {
    /// Whether the record at this seq was applied.
    Outcome(u64),
    Submit(Vec<SettleCommand>),
}

struct Driver {
    options: ChannelOptions,
    core: Settlement,
    tail: Tail,
    data_dir: PathBuf,
    handle: Handle,
    /// The processor's own submission path: queries and commands are pipelined through it,
    /// so one journal flush serves many of them.
    producer: Producer,
    replies: Replies,
    wake: Receiver<()>,
    /// Every connection's reader thread puts the bank's replies here.
    answers_tx: Sender<bank::protocol::Reply>,
    answers: Receiver<bank::protocol::Reply>,
    bank: Option<BankLink>,
    pending: HashMap<u64, Pending>,
    next_token: u64,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    published_at: Option<Instant>,
}

/// The wall clock in ns since the Unix epoch: the unit of the journal's timestamps.
fn clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

impl Driver {
    fn log(&self, message: &str) {
        eprintln!("ledgerd: channel {}: {message}", self.options.name);
    }

    fn run(&mut self) -> Result<(), SettlementError> {
        while !self.stop.load(Ordering::Acquire) {
            let mut busy = self.read_journal()?;
            busy |= self.exchange()?;
            while let Ok(reply) = self.answers.try_recv() {
                self.core.on_answer(&reply);
                busy = true;
            }
            let now_ns = clock_ns();
            if self.core.poll_timeout().is_some_and(|at_ns| at_ns <= now_ns) {
                self.core.handle_timeout(now_ns);
                busy = true;
            }
            busy |= self.send_instructions(now_ns);
            self.write_reports();
            while let Some(notice) = self.core.poll_notice() {
                self.log(&notice.to_string());
            }
            if let Some(error) = self.core.error() {
                return Err(error.clone().into());
            }
            self.publish();
            if !busy {
                self.wait(now_ns);
            }
        }
        Ok(())
    }

    /// Feeds the core the durable records it has room for; true when any was fed.
    fn read_journal(&mut self) -> Result<bool, SettlementError> {
        let durable_seq = self.handle.durable_seq();
        match self.tail.feed(durable_seq, &mut self.core, RECORDS_PER_TURN) {
            Ok(fed) => Ok(fed > 0),
            Err(tail::TailError::Core(error)) => Err(error.into()),
            Err(tail::TailError::Journal { seq, error }) => {
                // Reopened at `seq` on the next turn.
                self.log(&format!("read the journal at {seq}: {error}"));
                Ok(false)
            }
        }
    }

    /// Sends the core's queries and commands (at most `PIPELINE` in flight) and gives it the
    /// replies that came back; true when anything moved.
    fn exchange(&mut self) -> Result<bool, SettlementError> {
        let mut busy = false;
        while self.pending.len() < PIPELINE {
            if let Some(query) = self.core.poll_query() {
                let token = self.token(Pending::Outcome(query.seq));
                if let Err(error) = self.producer.query(token, Query::Tx(query.tx_id)) {
                    return Err(error.into());
                }
            } else if let Some(first) = self.core.poll_command() {
                let mut commands = vec![first];
                while commands.len() < SUBMISSION_LEN {
                    let Some(next) = self.core.poll_command() else { break };
                    commands.push(next);
                }
                self.submit(commands);
            } else {
                break;
            }
            busy = true;
        }
        while let Some(reply) = self.replies.try_recv() {
            busy = true;
            match (self.pending.remove(&reply.token), reply.result) {
                (Some(Pending::Outcome(seq)), Ok(Answer::Query(QueryAnswer::Tx(view)))) => {
                    let applied = view.is_some_and(|view| view.result == ResultCode::Ok);
                    self.core.on_outcome(seq, applied);
                }
                (Some(Pending::Outcome(_)), Ok(_)) => {}
                (Some(Pending::Outcome(_)), Err(error)) => return Err(error.into()),
                (Some(Pending::Submit(commands)), result) => self.submitted(&commands, result),
                (None, _) => {}
            }
        }
        Ok(busy)
    }

    fn token(&mut self, pending: Pending) -> u64 {
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        self.pending.insert(token, pending);
        token
    }

    fn submit(&mut self, commands: Vec<SettleCommand>) {
        let new_commands = commands
            .iter()
            .map(|command| NewCommand { tx_id: command.tx_id, body: command.body() })
            .collect();
        let token = self.token(Pending::Submit(commands));
        if let Err(refused) = self.producer.submit(token, new_commands) {
            self.log(&format!("request refused by the runtime: {}", refused.error));
            if let Some(Pending::Submit(commands)) = self.pending.remove(&token) {
                self.submitted(&commands, Err(refused.error));
            }
        }
    }

    /// Gives the core the result of each command of one submission.
    fn submitted(
        &mut self,
        commands: &[SettleCommand],
        result: Result<Answer, runtime::RequestError>,
    ) {
        let Ok(Answer::Executed(executed)) = result else {
            let step = commands.first().map(|command| command.step);
            self.log(&format!("{step:?} for {} transactions not answered", commands.len()));
            for command in commands {
                self.core.on_submitted(command, Submitted::NotAnswered);
            }
            return;
        };
        let first_seq = (executed.last_seq + 1).saturating_sub(executed.outcomes.len() as u64);
        for (index, command) in commands.iter().enumerate() {
            let submitted = match executed.outcomes.get(index) {
                Some(outcome) => Submitted::Executed {
                    seq: first_seq + index as u64,
                    result: outcome.result,
                    duplicate: outcome.duplicate,
                },
                None => Submitted::NotAnswered,
            };
            self.core.on_submitted(command, submitted);
        }
    }

    /// Sends what the core has for the bank, connecting first; true when anything was sent.
    fn send_instructions(&mut self, now_ns: u64) -> bool {
        if !self.core.has_instruction() {
            return false;
        }
        if self.bank.is_none() {
            match BankLink::connect(self.options.addr, self.answers_tx.clone()) {
                Ok(link) => self.bank = Some(link),
                // Not counted as a send: tried again on the next turn.
                Err(_) => return false,
            }
        }
        let mut sent = false;
        while let Some(instruction) = self.core.poll_instruction(now_ns) {
            sent = true;
            let written = self.bank.as_mut().is_some_and(|bank| bank.send(&instruction.lines));
            if !written {
                // The send counts (the backoff applies); the next one reconnects.
                self.bank = None;
                break;
            }
        }
        sent
    }

    fn write_reports(&mut self) {
        while let Some(report) = self.core.poll_report() {
            let (name, date) = (&self.options.name, report.business_date);
            // The settlement file last: once it exists, the report does too (`ledger cutover`).
            let files = [
                (netting_file(&self.data_dir, name, date), &report.netting_csv),
                (settlement_file(&self.data_dir, name, date), &report.settlement_csv),
            ];
            let failed = files.iter().find_map(|(path, text)| {
                files::write_durably(path, text).err().map(|error| (path.clone(), error))
            });
            if let Some((path, error)) = failed {
                self.log(&format!("write {}: {error}", path.display()));
                // Keep the day: a later cutover writes it again.
                self.core.on_report_failed(report);
            }
        }
    }

    /// Shows the stuck transactions to other threads, at most once per `poll_ms`.
    fn publish(&mut self) {
        let interval = Duration::from_millis(self.options.poll_ms);
        if self.published_at.is_some_and(|at| at.elapsed() < interval) {
            return;
        }
        self.published_at = Some(Instant::now());
        let stuck = self.core.stuck();
        if let Ok(mut shared) = self.shared.lock() {
            shared.stuck = stuck;
        }
    }

    /// Sleeps until the core's timeout, `poll_ms`, a bank answer or a runtime reply.
    fn wait(&mut self, now_ns: u64) {
        let poll = Duration::from_millis(self.options.poll_ms);
        let timeout = match self.core.poll_timeout() {
            Some(at_ns) => poll.min(Duration::from_nanos(at_ns.saturating_sub(now_ns))),
            None => poll,
        };
        select! {
            recv(self.answers) -> reply => {
                if let Ok(reply) = reply {
                    self.core.on_answer(&reply);
                }
            }
            recv(self.wake) -> _ => {}
            default(timeout) => {}
        }
    }
}
