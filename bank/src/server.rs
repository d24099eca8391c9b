//! The TCP server: one reader thread per connection, one timer thread sending the delayed
//! answers. The only shared state is behind one mutex; the queue of answers is bounded.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::protocol::{
    parse_item, parse_request, Instruction, NetInstruction, Reply, Request, LINE_LEN_MAX,
};
use crate::sim::{decide, BankConfig};

/// Most answers waiting to be sent; past it an instruction is answered `BUSY`.
pub const IN_FLIGHT_MAX: usize = 65_536;
/// Most distinct instructions remembered (attempt counts and confirmations).
pub const INSTRUCTIONS_MAX: usize = 1 << 20;

type Conn = Arc<Mutex<TcpStream>>;

struct Job {
    conn: Conn,
    reply: Reply,
    /// The statement lines a confirmation adds (one per transaction it settles).
    settles: Arc<Vec<Instruction>>,
}

#[derive(Default)]
struct State {
    attempts: HashMap<u128, u64>,
    confirmed_ids: HashSet<u128>,
    /// Confirmed instructions in confirmation order (the statement).
    confirmed: Vec<Instruction>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    jobs: HashMap<u64, Job>,
    next_job: u64,
}

/// A running simulated bank.
pub struct Bank {
    config: BankConfig,
    state: Mutex<State>,
    wake: Condvar,
}

impl Bank {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread cannot leave the maps half-updated in a way that matters to a
        // simulator; keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many times instruction `id` was received.
    pub fn sends(&self, id: u128) -> u64 {
        self.lock().attempts.get(&id).copied().unwrap_or(0)
    }

    /// The confirmed instructions so far, in confirmation order.
    pub fn statement(&self) -> Vec<Instruction> {
        self.lock().confirmed.clone()
    }

    fn schedule(&self, state: &mut State, at: Instant, job: Job) {
        let seq = state.next_job;
        state.next_job += 1;
        state.queue.push(Reverse((at, seq)));
        state.jobs.insert(seq, job);
        self.wake.notify_one();
    }

    /// Handles one instruction (gross, or net with the transactions it settles): answers at
    /// once (`ACCEPTED`, `BUSY`, nothing on a timeout) and schedules the final answer.
    fn settle(&self, conn: &Conn, id: u128, settles: Vec<Instruction>) {
        let mut state = self.lock();
        let known = state.attempts.contains_key(&id);
        if state.queue.len() + 2 > IN_FLIGHT_MAX
            || (!known && state.attempts.len() >= INSTRUCTIONS_MAX)
        {
            drop(state);
            send(conn, &Reply::Busy(id));
            return;
        }
        let attempt = state.attempts.entry(id).or_insert(0);
        let decision = decide(&self.config, id, *attempt);
        *attempt += 1;
        let Some(confirmed) = decision.outcome else { return };
        let reply = if confirmed {
            Reply::Confirmed(id)
        } else {
            Reply::Failed(id, "refused_by_bank".into())
        };
        // ACCEPTED goes out before the answer can be scheduled (the timer needs this lock), so
        // a client always sees it first. A client that stops reading stalls the bank, which
        // is what a simulator of one channel may do.
        send(conn, &Reply::Accepted(id));
        let settles = Arc::new(settles);
        let at = Instant::now() + Duration::from_millis(decision.delay_ms);
        if let Some(after_ms) = decision.duplicate_after_ms {
            let again = Job { conn: conn.clone(), reply: reply.clone(), settles: settles.clone() };
            self.schedule(&mut state, at + Duration::from_millis(after_ms), again);
        }
        self.schedule(&mut state, at, Job { conn: conn.clone(), reply, settles });
    }

    /// A net instruction: checked against its items (a mismatch is refused at once, without
    /// `ACCEPTED`), then settled as one payment; a confirmation lists every item.
    fn settle_net(&self, conn: &Conn, net: NetInstruction) {
        if let Err(problem) = net.check() {
            send(conn, &Reply::Failed(net.id, format!("net_mismatch: {problem}")));
            return;
        }
        let settles = net
            .items
            .iter()
            .map(|item| Instruction {
                id: item.id,
                direction: item.direction,
                amount: item.amount.clone(),
                currency: net.currency.clone(),
            })
            .collect();
        self.settle(conn, net.id, settles);
    }

    /// The timer thread: sends every answer when it is due.
    fn run_timer(&self) {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            match state.queue.peek().copied() {
                Some(Reverse((at, seq))) if at <= now => {
                    state.queue.pop();
                    let Some(job) = state.jobs.remove(&seq) else { continue };
                    if let Reply::Confirmed(_) = job.reply {
                        for settled in job.settles.iter() {
                            if state.confirmed_ids.insert(settled.id) {
                                state.confirmed.push(settled.clone());
                            }
                        }
                    }
                    drop(state);
                    send(&job.conn, &job.reply);
                    state = self.lock();
                }
                Some(Reverse((at, _))) => {
                    state = self
                        .wake
                        .wait_timeout(state, at - now)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
                None => {
                    state = self.wake.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
        }
    }

    fn serve_connection(&self, stream: TcpStream) {
        let Ok(read_half) = stream.try_clone() else { return };
        let conn: Conn = Arc::new(Mutex::new(stream));
        let mut reader = BufReader::new(read_half);
        let mut line = String::new();
        loop {
            let Some(request) = read_line(&mut reader, &mut line) else {
                if !line.is_empty() {
                    send(&conn, &Reply::Error("line too long or not terminated".into()));
                }
                return;
            };
            let request = request.to_string();
            match parse_request(&request) {
                Ok((Request::Settle(instruction), _)) => {
                    self.settle(&conn, instruction.id, vec![instruction])
                }
                Ok((Request::Net(mut net), count)) => {
                    for _ in 0..count {
                        match read_line(&mut reader, &mut line).map(parse_item) {
                            Some(Ok(item)) => net.items.push(item),
                            Some(Err(error)) => {
                                // The rest of the instruction cannot be told from new requests.
                                send(&conn, &Reply::Error(error.0));
                                return;
                            }
                            None => {
                                send(
                                    &conn,
                                    &Reply::Error("line too long or not terminated".into()),
                                );
                                return;
                            }
                        }
                    }
                    self.settle_net(&conn, net);
                }
                Ok((Request::Statement, _)) => send(&conn, &Reply::Statement(self.statement())),
                Err(error) => send(&conn, &Reply::Error(error.0)),
            }
        }
    }
}

/// Reads one line into `line` and returns it without its `\n` (and a trailing `\r`).
/// `None` at the end of the stream, on an error, or for a line longer than the maximum or not
/// terminated (bounded: never a growing buffer); `line` is then left non-empty if anything
/// was read.
fn read_line<'a>(reader: &mut BufReader<TcpStream>, line: &'a mut String) -> Option<&'a str> {
    line.clear();
    let mut limited = Read::take(&mut *reader, LINE_LEN_MAX as u64 + 2);
    match limited.read_line(line) {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    if !line.ends_with('\n') {
        return None;
    }
    Some(line.trim_end_matches(['\n', '\r']))
}

/// Writes a reply; a broken connection is the client's business (its reader sees it).
fn send(conn: &Conn, reply: &Reply) {
    let text = reply.to_string();
    let mut stream = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let _ = stream.write_all(text.as_bytes());
}

/// Starts serving `listener` on background threads and returns the bank.
pub fn spawn(listener: TcpListener, config: BankConfig) -> std::io::Result<Arc<Bank>> {
    let bank = Arc::new(Bank { config, state: Mutex::new(State::default()), wake: Condvar::new() });
    let timer = bank.clone();
    thread::Builder::new().name("bank-timer".into()).spawn(move || timer.run_timer())?;
    let acceptor = bank.clone();
    thread::Builder::new().name("bank-accept".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let bank = acceptor.clone();
            let _ = thread::Builder::new()
                .name("bank-conn".into())
                .spawn(move || bank.serve_connection(stream));
        }
    })?;
    Ok(bank)
}
