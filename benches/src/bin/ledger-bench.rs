//! `ledger-bench`: the load and latency harness. It opens and funds its own accounts (not
//! timed), sends transfers for a number of commands or seconds, then verifies that money was
//! conserved and that every command succeeded, and prints a table and one machine-readable
//! line. Latency is per frame (a SUBMIT of `--batch` commands: the batch latency), recorded in
//! µs in an HdrHistogram.
//!
//! ```text
//! ledger-bench --addr 127.0.0.1:7070 --workload uniform --duration 20 --connections 4 --batch 1024
//! ledger-bench --embedded /tmp/bench-ledger --sync fsync --workload hot --transfers 5000000
//! ledger-bench --addr 127.0.0.1:7070 --batch 1 --connections 32 --in-flight 1 --rate 50000
//! ```
//!
//! **Closed loop** (default): each connection keeps `--in-flight` frames outstanding and sends
//! the next as soon as a reply comes; latency is measured from the moment a frame is sent.
//! **Open loop** (`--rate N`, transfers per second in total): frames are due at fixed
//! intervals whatever the server does; latency is measured from the *intended* send time, so a
//! stalled server is charged for every frame it delayed (no coordinated omission). A frame
//! that is due while its connection already has `--in-flight` frames outstanding waits, and
//! that wait counts as latency.
//!
//! Over TCP, worker threads (`--threads`) each drive several connections with non-blocking
//! sockets and `epoll`, so a reply is read the moment it arrives and a frame leaves the moment
//! it is due. `--embedded DIR` runs the same runtime and journal in this process, one producer
//! per connection, each on its own thread.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, ensure, Context, Result};
use benches::report::{
    machine_cpu, process_cpu, thread_cpu, threads_cpu, threads_cpu_delta, write_hgrm,
};
use benches::workload::{
    Generator, RunAccounts, Workload, Zipf, ACCOUNTS_MAX, CURRENCY_SCALE, FUNDS_MINOR,
};
use benches::Rng;
use clap::{Parser, ValueEnum};
use engine::{AccountNo, CommandBody, ResultCode, TxId};
use hdrhistogram::Histogram;
use journal::SyncMode;
use protocol::auth::{ClientCredentials, Role};
use protocol::limits::READ_CHUNK_LEN_BYTES;
use protocol::wire::{
    encode_frame, encode_submit, ErrorReply, Frame, FrameBuffer, Hello, HelloOk, Message, RequestId,
};
use protocol::{Client, ClientOptions, Reply as ClientReply};
use runtime::{
    Answer, Handle, NewCommand, Producer, Query, QueryAnswer, Replies, Runtime, RuntimeOptions,
    RuntimeStats,
};

/// Frames in flight on the setup and verification connection.
const SETUP_IN_FLIGHT: u32 = 64;
/// Account queries in flight during verification.
const QUERY_IN_FLIGHT: u32 = 256;
/// Longest a worker sleeps without looking at the clock (duration end, progress).
const POLL_MAX: Duration = Duration::from_millis(50);
/// Socket reads per connection per wake-up, so one busy connection cannot starve the others.
const READS_PER_WAKE_MAX: u32 = 16;
/// Pending output past which a connection writes before encoding more.
const WRITE_AHEAD_BYTES_MAX: usize = 256 * 1024;
/// Latencies above this (µs) are recorded as this.
const LATENCY_US_MAX: u64 = 600_000_000;
/// Distinct error messages kept for the report.
const ERRORS_KEPT_MAX: usize = 8;
const CONNECTIONS_MAX: u32 = 4_096;
const IN_FLIGHT_MAX: u32 = 65_536;
const BATCH_LEN_MAX: u32 = protocol::limits::BATCH_LEN_MAX;

#[derive(Parser, Debug)]
#[command(name = "ledger-bench", version, about = "Load and latency harness for the ledger")]
struct Args {
    /// A running ledgerd (host:port). Exactly one of --addr and --embedded.
    #[arg(long, conflicts_with = "embedded", required_unless_present = "embedded")]
    addr: Option<String>,
    /// Run the runtime and journal in this process, data in DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    embedded: Option<PathBuf>,
    /// Credentials file for --addr (default: $LEDGER_CREDENTIALS, else ./data/credentials);
    /// an admin is needed to open the accounts.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Journal sync mode with --embedded (a server has its own).
    #[arg(long, value_enum, default_value = "fsync")]
    sync: SyncArg,
    /// uniform, hot, pingpong, zipf or mix.
    #[arg(long, default_value = "uniform", value_parser = parse_workload)]
    workload: Workload,
    /// Accounts to open and fund (default 100000; pingpong: 2).
    #[arg(long)]
    accounts: Option<u32>,
    /// Exponent of the zipf workload.
    #[arg(long, default_value_t = 1.0)]
    zipf_s: f64,
    /// Transfers (commands) to send in total (default 2000000 unless --duration).
    #[arg(long, conflicts_with = "duration")]
    transfers: Option<u64>,
    /// Send for this many seconds instead, then wait for the replies.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Connections (or in-process producers).
    #[arg(long, default_value_t = 4)]
    connections: u32,
    /// Commands per frame (SUBMIT).
    #[arg(long, default_value_t = 1024)]
    batch: u32,
    /// Frames in flight per connection.
    #[arg(long, default_value_t = 4)]
    in_flight: u32,
    /// Open loop: transfers per second in total, at fixed intervals (latency from the intended
    /// send time). Default: closed loop.
    #[arg(long, value_name = "TRANSFERS_PER_SEC")]
    rate: Option<f64>,
    /// Client threads driving the TCP connections (default: min(connections, 2)).
    #[arg(long)]
    threads: Option<u32>,
    /// Write the latency distribution here (HdrHistogram percentile text, `.hgrm`, in µs).
    #[arg(long, value_name = "FILE")]
    hist_out: Option<PathBuf>,
    /// Seed of the workload (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Also report the CPU use of this process's threads (e.g. the ledgerd under test).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum SyncArg {
    Fsync,
    None,
}

fn parse_workload(name: &str) -> Result<Workload, String> {
    Workload::from_name(name).ok_or_else(|| {
        let names: Vec<_> = Workload::ALL.iter().map(|workload| workload.name()).collect();
        format!("unknown workload {name:?}; one of {}", names.join(", "))
    })
}

/// When sending stops.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Transfers(u64),
    Duration(Duration),
}

/// Everything a run needs to know, checked.
struct Plan {
    workload: Workload,
    accounts: RunAccounts,
    zipf: Option<Arc<Zipf>>,
    stop: Stop,
    connections: u32,
    batch_len: u32,
    in_flight: u32,
    rate: Option<f64>,
    seed: u64,
}

impl Plan {
    /// Commands connection `index` sends in `Transfers` mode (`u64::MAX`: until the end).
    fn quota(&self, index: u32) -> u64 {
        match self.stop {
            Stop::Transfers(total) => {
                let connections = u64::from(self.connections);
                total / connections + u64::from(u64::from(index) < total % connections)
            }
            Stop::Duration(_) => u64::MAX,
        }
    }

    /// The interval between a connection's frames in open loop.
    fn interval(&self) -> Option<Duration> {
        let rate = self.rate?;
        let frames_per_sec = rate / f64::from(self.batch_len) / f64::from(self.connections);
        Some(Duration::from_secs_f64(1.0 / frames_per_sec))
    }

    fn stream(&self, index: u32, start: Instant) -> Stream {
        let interval = self.interval();
        // Connections' schedules are spread evenly over one interval.
        let first_due = interval.map(|interval| {
            start + interval.mul_f64(f64::from(index) / f64::from(self.connections))
        });
        let seed = self.seed ^ (u64::from(index) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Stream {
            generator: Generator::new(
                self.workload,
                self.accounts.keys().clone(),
                self.zipf.clone(),
                seed,
            ),
            sent: VecDeque::with_capacity(self.in_flight as usize),
            next_request_id: 2, // HELLO is 1
            remaining: self.quota(index),
            next_due: first_due,
            interval: interval.unwrap_or(Duration::ZERO),
            in_flight_max: self.in_flight as usize,
            batch_len: u64::from(self.batch_len),
        }
    }
}

/// A frame awaiting its reply.
struct Sent {
    request_id: u64,
    /// Intended send time (open loop) or actual send time (closed loop).
    start: Instant,
    len: u64,
}

/// One connection's schedule and bookkeeping, whatever carries its frames.
struct Stream {
    generator: Generator,
    sent: VecDeque<Sent>,
    next_request_id: u64,
    remaining: u64,
    next_due: Option<Instant>,
    interval: Duration,
    in_flight_max: usize,
    batch_len: u64,
}

impl Stream {
    /// Reserves the next frame if one may be sent now: `(request id, start, commands)`.
    fn next_frame(&mut self, sending: bool) -> Option<(u64, Instant, u64)> {
        if !sending || self.remaining == 0 || self.sent.len() >= self.in_flight_max {
            return None;
        }
        let start = match &mut self.next_due {
            Some(due) => {
                if *due > Instant::now() {
                    return None;
                }
                let start = *due;
                *due += self.interval;
                start
            }
            None => Instant::now(),
        };
        let len = self.batch_len.min(self.remaining);
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.remaining -= len;
        self.sent.push_back(Sent { request_id, start, len });
        Some((request_id, start, len))
    }

    /// The frame `request_id` is answered: forget it (replies usually come in order).
    fn complete(&mut self, request_id: u64) -> Option<Sent> {
        let position = self.sent.iter().position(|sent| sent.request_id == request_id)?;
        self.sent.remove(position)
    }

    /// When this stream next wants to send (open loop, with room in the window).
    fn wake_at(&self, sending: bool) -> Option<Instant> {
        let room = self.sent.len() < self.in_flight_max;
        (sending && room && self.remaining > 0).then_some(self.next_due).flatten()
    }

    fn finished(&self, sending: bool) -> bool {
        (!sending || self.remaining == 0) && self.sent.is_empty()
    }
}

/// Shared between the workers, the progress line and the main thread.
#[derive(Default)]
struct Counters {
    commands_sent: AtomicU64,
    commands_done: AtomicU64,
    frames_sent: AtomicU64,
    frames_done: AtomicU64,
    /// Set when sending stops (duration over, or a worker failed).
    stop_sending: AtomicBool,
    /// Finished connections, kept open until the server's CPU has been read (its connection
    /// threads end when they close).
    parked: Mutex<Vec<TcpStream>>,
}

/// What one worker measured.
struct Tally {
    latency_us: Histogram<u64>,
    /// Open loop: how late each frame left after its intended send time (the client's own
    /// lateness, plus any wait for a free in-flight slot).
    send_lag_us: Histogram<u64>,
    ok: u64,
    failed: BTreeMap<&'static str, u64>,
    refused_commands: u64,
    errors: Vec<String>,
    frames: u64,
    cpu: Duration,
    first_send: Option<Instant>,
    last_reply: Option<Instant>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("valid histogram bounds"),
            send_lag_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("valid histogram bounds"),
            ok: 0,
            failed: BTreeMap::new(),
            refused_commands: 0,
            errors: Vec::new(),
            frames: 0,
            cpu: Duration::ZERO,
            first_send: None,
            last_reply: None,
        }
    }

    fn sent(&mut self, start: Instant) {
        let lag_us = start.elapsed().as_micros() as u64;
        self.send_lag_us.saturating_record(lag_us);
        if self.first_send.is_none_or(|first| start < first) {
            self.first_send = Some(start);
        }
    }

    fn answered(&mut self, sent: &Sent, now: Instant, counters: &Counters) {
        let latency_us = now.saturating_duration_since(sent.start).as_micros() as u64;
        self.latency_us.saturating_record(latency_us.max(1));
        self.frames += 1;
        self.last_reply = Some(now);
        counters.commands_done.fetch_add(sent.len, Ordering::Relaxed);
        counters.frames_done.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    fn outcome(&mut self, result: ResultCode) {
        if result == ResultCode::Ok {
            self.ok += 1;
        } else {
            *self.failed.entry(result.name()).or_insert(0) += 1;
        }
    }

    fn error(&mut self, message: String) {
        if self.errors.len() < ERRORS_KEPT_MAX && !self.errors.contains(&message) {
            self.errors.push(message);
        }
    }

    fn merge(&mut self, other: Tally) -> Result<()> {
        self.latency_us.add(&other.latency_us).context("merge histograms")?;
        self.send_lag_us.add(&other.send_lag_us).context("merge histograms")?;
        self.ok += other.ok;
        for (name, count) in other.failed {
            *self.failed.entry(name).or_insert(0) += count;
        }
        self.refused_commands += other.refused_commands;
        for error in other.errors {
            self.error(error);
        }
        self.frames += other.frames;
        self.cpu += other.cpu;
        self.first_send = match (self.first_send, other.first_send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_reply = self.last_reply.max(other.last_reply);
        Ok(())
    }
}

// ----- setup and verification (not timed) -----

/// The untimed side of a target: run setup phases, read balances.
trait Admin {
    /// Executes every command (pipelined, in frames of at most the target's batch length);
    /// returns their results in order.
    fn execute(&mut self, commands: &[(TxId, CommandBody)]) -> Result<Vec<ResultCode>>;
    /// `available + frozen` of each account, `None` if it does not exist.
    fn totals(&mut self, keys: &[AccountNo]) -> Result<Vec<Option<i128>>>;
}

struct TcpAdmin {
    client: Client,
}

impl Admin for TcpAdmin {
    fn execute(&mut self, commands: &[(TxId, CommandBody)]) -> Result<Vec<ResultCode>> {
        let len_max = self.client.session().batch_len_max as usize;
        let mut results = vec![None; commands.len()];
        let mut chunks = commands.chunks(len_max).enumerate();
        let mut pending = HashMap::new();
        loop {
            while self.client.in_flight() < SETUP_IN_FLIGHT {
                let Some((index, chunk)) = chunks.next() else { break };
                pending.insert(self.client.send_submit(chunk)?, index);
            }
            if pending.is_empty() {
                break;
            }
            let (request_id, reply) = self.client.recv()?;
            let index = pending.remove(&request_id).context("a reply to no request")?;
            let ClientReply::Submitted(outcomes) = reply else { bail!("not a SUBMIT_REPLY") };
            for (offset, outcome) in outcomes.iter().enumerate() {
                results[index * len_max + offset] = Some(outcome.result);
            }
        }
        results.into_iter().map(|result| result.context("an outcome is missing")).collect()
    }

    fn totals(&mut self, keys: &[AccountNo]) -> Result<Vec<Option<i128>>> {
        let mut totals = vec![None; keys.len()];
        let mut keys_left = keys.iter().enumerate();
        let mut pending = HashMap::new();
        loop {
            while self.client.in_flight() < QUERY_IN_FLIGHT {
                let Some((index, key)) = keys_left.next() else { break };
                pending.insert(self.client.send_query_account(key)?, index);
            }
            if pending.is_empty() {
                break;
            }
            let (request_id, reply) = self.client.recv()?;
            let index = pending.remove(&request_id).context("a reply to no request")?;
            let ClientReply::Account(account) = reply else { bail!("not an ACCOUNT reply") };
            totals[index] = account.map(|view| view.available_minor + view.frozen_minor);
        }
        Ok(totals)
    }
}

struct EmbeddedAdmin {
    producer: Producer,
    replies: Replies,
    len_max: usize,
}

impl Admin for EmbeddedAdmin {
    fn execute(&mut self, commands: &[(TxId, CommandBody)]) -> Result<Vec<ResultCode>> {
        let mut results = vec![None; commands.len()];
        let chunks = commands.chunks(self.len_max).enumerate();
        let mut in_flight = 0u32;
        let receive = |in_flight: &mut u32, results: &mut Vec<Option<ResultCode>>| {
            let reply = self.replies.recv().context("the runtime stopped")?;
            *in_flight -= 1;
            let Answer::Executed(executed) = reply.result? else { bail!("not outcomes") };
            let start = reply.token as usize * self.len_max;
            for (offset, outcome) in executed.outcomes.iter().enumerate() {
                results[start + offset] = Some(outcome.result);
            }
            Ok(())
        };
        for (index, chunk) in chunks {
            if in_flight >= SETUP_IN_FLIGHT {
                receive(&mut in_flight, &mut results)?;
            }
            let chunk = chunk.iter().map(|&(tx_id, body)| NewCommand { tx_id, body }).collect();
            self.producer.submit(index as u64, chunk).map_err(|refused| anyhow!(refused.error))?;
            in_flight += 1;
        }
        while in_flight > 0 {
            receive(&mut in_flight, &mut results)?;
        }
        results.into_iter().map(|result| result.context("an outcome is missing")).collect()
    }

    fn totals(&mut self, keys: &[AccountNo]) -> Result<Vec<Option<i128>>> {
        let mut totals = vec![None; keys.len()];
        let mut in_flight = 0u32;
        let receive = |in_flight: &mut u32, totals: &mut Vec<Option<i128>>| {
            let reply = self.replies.recv().context("the runtime stopped")?;
            *in_flight -= 1;
            let Answer::Query(QueryAnswer::Account(account)) = reply.result? else {
                bail!("not an account")
            };
            totals[reply.token as usize] =
                account.map(|view| view.available_minor + view.frozen_minor);
            Ok(())
        };
        for (index, key) in keys.iter().enumerate() {
            if in_flight >= QUERY_IN_FLIGHT {
                receive(&mut in_flight, &mut totals)?;
            }
            self.producer.query(index as u64, Query::Account(*key))?;
            in_flight += 1;
        }
        while in_flight > 0 {
            receive(&mut in_flight, &mut totals)?;
        }
        Ok(totals)
    }
}

/// Opens the run's accounts and funds them with settled deposits.
fn setup(admin: &mut dyn Admin, accounts: &RunAccounts, rng: &mut Rng) -> Result<()> {
    for (phase, commands) in accounts.setup_phases(rng).iter().enumerate() {
        let results = admin.execute(commands).with_context(|| format!("setup phase {phase}"))?;
        if let Some((index, result)) =
            results.iter().enumerate().find(|(_, result)| **result != ResultCode::Ok)
        {
            let command = &commands[index].1;
            bail!("setup phase {phase}: {command:?} failed: {}", result.name());
        }
    }
    Ok(())
}

/// What verification found.
struct Verified {
    accounts_missing: u64,
    sum_minor: i128,
    funding_minor: Option<i128>,
    funding_expected_minor: i128,
    ok_expected: u64,
    ok: u64,
}

impl Verified {
    fn conserved(&self) -> bool {
        self.accounts_missing == 0
            && self.sum_minor == 0
            && self.funding_minor == Some(self.funding_expected_minor)
    }

    fn passed(&self) -> bool {
        self.conserved() && self.ok == self.ok_expected
    }
}

fn verify(
    admin: &mut dyn Admin,
    accounts: &RunAccounts,
    tally: &Tally,
    sent: u64,
) -> Result<Verified> {
    let mut keys: Vec<AccountNo> = accounts.keys().to_vec();
    keys.push(accounts.funding());
    let totals = admin.totals(&keys)?;
    let funding_minor = totals.last().copied().flatten();
    Ok(Verified {
        accounts_missing: totals.iter().filter(|total| total.is_none()).count() as u64,
        sum_minor: totals.iter().flatten().sum(),
        funding_minor,
        funding_expected_minor: -(accounts.keys().len() as i128) * FUNDS_MINOR,
        ok_expected: sent,
        ok: tally.ok,
    })
}

// ----- the timed run over TCP -----

/// One TCP connection of a worker.
struct Connection {
    stream: TcpStream,
    reader: FrameBuffer,
    out: Vec<u8>,
    out_start: usize,
    frame: Stream,
    commands: Vec<(TxId, CommandBody)>,
    observe: bool,
}

/// Connects and authenticates; returns the stream (non-blocking) and the server's limits.
fn connect(addr: SocketAddr, credentials: &ClientCredentials) -> Result<(TcpStream, HelloOk)> {
    let timeout = Duration::from_secs(5);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    let hello = Message::Hello(Hello {
        client_id: credentials.client_id().into(),
        secret: credentials.secret().clone(),
    });
    let mut out = Vec::new();
    encode_frame(RequestId(1), &hello, &mut out)?;
    let written = stream.write_all(&out);
    out.fill(0); // it held the secret
    written.context("send HELLO")?;
    let mut reader = FrameBuffer::new();
    let frame = loop {
        match reader.next_frame() {
            Ok(Some(frame)) => break frame,
            Ok(None) => {
                if reader.read_from(&mut stream).context("read HELLO_OK")? == 0 {
                    bail!("{addr} closed the connection during the handshake");
                }
            }
            Err(error) => bail!("{addr} sent an invalid frame: {error}"),
        }
    };
    let hello_ok = match frame.message {
        Message::HelloOk(hello_ok) => hello_ok,
        Message::Error(ErrorReply { code, message }) => {
            bail!("{addr} refused HELLO: {code}: {message}")
        }
        other => bail!("{addr} answered HELLO with {}", other.op()),
    };
    stream.set_read_timeout(None)?;
    stream.set_nonblocking(true)?;
    Ok((stream, hello_ok))
}

impl Connection {
    /// Encodes and writes every frame that may be sent now.
    fn send_due(&mut self, sending: bool, tally: &mut Tally, counters: &Counters) -> Result<()> {
        while let Some((request_id, start, len)) = self.frame.next_frame(sending) {
            self.commands.clear();
            let commands = &mut self.commands;
            self.frame.generator.fill(len as usize, |tx_id, body| commands.push((tx_id, body)));
            encode_submit(RequestId(request_id), &self.commands, &mut self.out)?;
            tally.sent(start);
            counters.commands_sent.fetch_add(len, Ordering::Relaxed);
            counters.frames_sent.fetch_add(1, Ordering::Relaxed);
            if self.out.len() - self.out_start >= WRITE_AHEAD_BYTES_MAX {
                self.write_some()?;
            }
        }
        self.write_some()
    }

    /// Writes as much pending output as the socket takes now.
    fn write_some(&mut self) -> Result<()> {
        while self.out_start < self.out.len() {
            match self.stream.write(&self.out[self.out_start..]) {
                Ok(0) => bail!("the server closed the connection"),
                Ok(written) => self.out_start += written,
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error).context("write"),
            }
        }
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
        }
        Ok(())
    }

    /// Reads what has arrived and handles every complete reply.
    fn receive(&mut self, tally: &mut Tally, counters: &Counters) -> Result<()> {
        for _ in 0..READS_PER_WAKE_MAX {
            while let Some(frame) = self.next_frame()? {
                self.on_frame(frame, Instant::now(), tally, counters)?;
            }
            match self.reader.read_from(&mut self.stream) {
                Ok(0) => bail!("the server closed the connection"),
                // A short read drained the socket: handle what came and let `epoll` say when
                // there is more, rather than spend a syscall to hear `WouldBlock`.
                Ok(read) if read < READ_CHUNK_LEN_BYTES as usize => {
                    while let Some(frame) = self.next_frame()? {
                        self.on_frame(frame, Instant::now(), tally, counters)?;
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error).context("read"),
            }
        }
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        self.reader
            .next_frame()
            .map_err(|error| anyhow!("the server sent an invalid frame: {error}"))
    }

    fn on_frame(
        &mut self,
        frame: Frame,
        now: Instant,
        tally: &mut Tally,
        counters: &Counters,
    ) -> Result<()> {
        let Some(sent) = self.frame.complete(frame.request_id.0) else {
            if let Message::Error(ErrorReply { code, message }) = frame.message {
                bail!("the server closed the connection: {code}: {message}");
            }
            bail!("a reply to request {}, which is not in flight", frame.request_id);
        };
        tally.answered(&sent, now, counters);
        match frame.message {
            Message::SubmitReply(outcomes) => {
                ensure!(outcomes.len() as u64 == sent.len, "a reply with the wrong count");
                for outcome in &outcomes {
                    tally.outcome(outcome.result);
                }
                if self.observe {
                    for outcome in &outcomes {
                        let generator = &mut self.frame.generator;
                        generator.observe(outcome.tx_id, outcome.result, outcome.tx_state);
                    }
                }
            }
            Message::Error(ErrorReply { code, message }) => {
                tally.refused_commands += sent.len;
                tally.error(format!("{code}: {message}"));
                ensure!(!code.closes_connection(), "the server closed the connection: {code}");
            }
            other => bail!("{} in answer to a SUBMIT", other.op()),
        }
        Ok(())
    }
}

/// Readiness of one worker's sockets: `epoll`, level-triggered, waiting with µs resolution
/// (`epoll_pwait2`), so an open-loop frame leaves when it is due. Output interest is added
/// only while a connection has bytes the socket did not take.
struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
    wants_output: Vec<bool>,
}

impl Poller {
    fn new(fds: &[RawFd]) -> Result<Poller> {
        // SAFETY: epoll_create1 has no memory preconditions; a non-negative result is a new
        // descriptor that we own from here on.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_create1");
        }
        // SAFETY: `raw` is a valid descriptor owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
        let poller = Poller {
            epoll,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; fds.len().max(1)],
            wants_output: vec![false; fds.len()],
        };
        for (index, &fd) in fds.iter().enumerate() {
            poller.control(libc::EPOLL_CTL_ADD, index, fd, false)?;
        }
        Ok(poller)
    }

    fn control(&self, op: libc::c_int, index: usize, fd: RawFd, output: bool) -> Result<()> {
        let interest = libc::EPOLLIN | libc::EPOLLRDHUP | if output { libc::EPOLLOUT } else { 0 };
        let mut event = libc::epoll_event { events: interest as u32, u64: index as u64 };
        // SAFETY: both descriptors are open; `event` is a valid epoll_event for the call.
        let done = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if done < 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_ctl");
        }
        Ok(())
    }

    fn want_output(&mut self, index: usize, fd: RawFd, output: bool) -> Result<()> {
        if self.wants_output[index] != output {
            self.control(libc::EPOLL_CTL_MOD, index, fd, output)?;
            self.wants_output[index] = output;
        }
        Ok(())
    }

    /// Waits until a socket is ready or `timeout` passes; returns the ready connections.
    fn wait(&mut self, timeout: Duration) -> Result<impl Iterator<Item = usize> + '_> {
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `events` is an exclusively borrowed buffer of `len` epoll_events; the
        // timeout outlives the call; a null signal mask leaves the mask unchanged.
        let ready = unsafe {
            libc::epoll_pwait2(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                &timeout,
                std::ptr::null(),
            )
        };
        let ready = if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != ErrorKind::Interrupted {
                return Err(error).context("epoll_pwait2");
            }
            0
        } else {
            ready as usize
        };
        Ok(self.events[..ready].iter().map(|event| event.u64 as usize))
    }
}

fn tcp_worker(
    mut connections: Vec<Connection>,
    end: Option<Instant>,
    counters: &Counters,
) -> Result<Tally> {
    let cpu_start = thread_cpu();
    let mut tally = Tally::new();
    let fds: Vec<RawFd> =
        connections.iter().map(|connection| connection.stream.as_raw_fd()).collect();
    let mut poller = Poller::new(&fds)?;
    loop {
        let now = Instant::now();
        let sending =
            !counters.stop_sending.load(Ordering::Relaxed) && end.is_none_or(|end| now < end);
        let mut wake = end.filter(|_| sending);
        let mut finished = true;
        for (index, connection) in connections.iter_mut().enumerate() {
            connection.send_due(sending, &mut tally, counters)?;
            poller.want_output(index, fds[index], !connection.out.is_empty())?;
            finished &= connection.frame.finished(sending) && connection.out.is_empty();
            if let Some(due) = connection.frame.wake_at(sending) {
                wake = Some(wake.map_or(due, |wake| wake.min(due)));
            }
        }
        if finished {
            break;
        }
        let timeout = wake.map_or(POLL_MAX, |wake| wake.saturating_duration_since(now));
        for index in poller.wait(timeout.min(POLL_MAX))? {
            let connection = connections.get_mut(index).context("epoll: unknown connection")?;
            // Readable, closed or failed: `receive` tells which. (Writable: the send loop
            // above writes what is pending.)
            connection.receive(&mut tally, counters)?;
        }
    }
    tally.cpu = thread_cpu().saturating_sub(cpu_start);
    let mut parked = counters.parked.lock().unwrap_or_else(PoisonError::into_inner);
    parked.extend(connections.into_iter().map(|connection| connection.stream));
    Ok(tally)
}

fn run_tcp(
    plan: &Plan,
    addr: SocketAddr,
    credentials: &ClientCredentials,
    threads: u32,
    counters: &Counters,
) -> Result<Tally> {
    let start = Instant::now() + Duration::from_millis(20);
    let mut groups: Vec<Vec<Connection>> = (0..threads).map(|_| Vec::new()).collect();
    for index in 0..plan.connections {
        let (stream, hello_ok) = connect(addr, credentials)?;
        ensure!(
            plan.batch_len <= hello_ok.batch_len_max,
            "--batch {} exceeds the server's batch_len_max {}",
            plan.batch_len,
            hello_ok.batch_len_max
        );
        if plan.in_flight > hello_ok.in_flight_max {
            eprintln!(
                "ledger-bench: the server reads only {} frames ahead per connection",
                hello_ok.in_flight_max
            );
        }
        groups[(index % threads) as usize].push(Connection {
            stream,
            reader: FrameBuffer::new(),
            out: Vec::with_capacity(WRITE_AHEAD_BYTES_MAX * 2),
            out_start: 0,
            frame: plan.stream(index, start),
            commands: Vec::with_capacity(plan.batch_len as usize),
            observe: plan.workload.needs_outcomes(),
        });
    }
    let end = match plan.stop {
        Stop::Duration(duration) => Some(start + duration),
        Stop::Transfers(_) => None,
    };
    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    let results: Vec<Result<Tally>> = std::thread::scope(|scope| {
        let workers: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(index, connections)| {
                std::thread::Builder::new().name(format!("bench-tcp-{index}")).spawn_scoped(
                    scope,
                    move || {
                        let result = tcp_worker(connections, end, counters);
                        if result.is_err() {
                            counters.stop_sending.store(true, Ordering::Relaxed);
                        }
                        result
                    },
                )
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| match worker {
                Ok(worker) => worker.join().unwrap_or_else(|_| Err(anyhow!("a worker panicked"))),
                Err(error) => Err(anyhow!("spawn a worker: {error}")),
            })
            .collect()
    });
    merge(results)
}

fn merge(results: Vec<Result<Tally>>) -> Result<Tally> {
    let mut total = Tally::new();
    for result in results {
        total.merge(result?)?;
    }
    Ok(total)
}

// ----- the timed run in process -----

fn embedded_worker(
    mut stream: Stream,
    producer: Producer,
    replies: Replies,
    end: Option<Instant>,
    observe: bool,
    counters: &Counters,
) -> Result<Tally> {
    let cpu_start = thread_cpu();
    let mut tally = Tally::new();
    loop {
        let now = Instant::now();
        let sending =
            !counters.stop_sending.load(Ordering::Relaxed) && end.is_none_or(|end| now < end);
        while let Some((token, start, len)) = stream.next_frame(sending) {
            let mut commands = Vec::with_capacity(len as usize);
            stream.generator.fill(len as usize, |tx_id, body| {
                commands.push(NewCommand { tx_id, body });
            });
            tally.sent(start);
            counters.commands_sent.fetch_add(len, Ordering::Relaxed);
            counters.frames_sent.fetch_add(1, Ordering::Relaxed);
            producer.submit(token, commands).map_err(|refused| anyhow!(refused.error))?;
        }
        if stream.finished(sending) {
            break;
        }
        let mut wake = stream.wake_at(sending).unwrap_or(now + POLL_MAX).min(now + POLL_MAX);
        if let Some(end) = end.filter(|_| sending) {
            wake = wake.min(end);
        }
        let Some(reply) = replies.recv_deadline(wake) else { continue };
        let mut next = Some(reply);
        while let Some(reply) = next {
            let sent = stream.complete(reply.token).context("a reply to no request")?;
            tally.answered(&sent, Instant::now(), counters);
            match reply.result {
                Ok(Answer::Executed(executed)) => {
                    ensure!(executed.outcomes.len() as u64 == sent.len, "wrong outcome count");
                    for outcome in &executed.outcomes {
                        tally.outcome(outcome.result);
                        if observe {
                            let generator = &mut stream.generator;
                            generator.observe(outcome.tx_id, outcome.result, outcome.tx_state);
                        }
                    }
                }
                Ok(Answer::Query(_)) => bail!("a query answer to a submission"),
                Err(error) => {
                    tally.refused_commands += sent.len;
                    tally.error(error.to_string());
                }
            }
            next = replies.try_recv();
        }
    }
    tally.cpu = thread_cpu().saturating_sub(cpu_start);
    Ok(tally)
}

fn run_embedded(plan: &Plan, handle: &Handle, counters: &Counters) -> Result<Tally> {
    let start = Instant::now() + Duration::from_millis(20);
    let end = match plan.stop {
        Stop::Duration(duration) => Some(start + duration),
        Stop::Transfers(_) => None,
    };
    let results: Vec<Result<Tally>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..plan.connections)
            .map(|index| {
                let (producer, replies) = handle.producer(plan.in_flight);
                let stream = plan.stream(index, start);
                let observe = plan.workload.needs_outcomes();
                std::thread::Builder::new().name(format!("bench-prod-{index}")).spawn_scoped(
                    scope,
                    move || {
                        std::thread::sleep(start.saturating_duration_since(Instant::now()));
                        let result =
                            embedded_worker(stream, producer, replies, end, observe, counters);
                        if result.is_err() {
                            counters.stop_sending.store(true, Ordering::Relaxed);
                        }
                        result
                    },
                )
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| match worker {
                Ok(worker) => worker.join().unwrap_or_else(|_| Err(anyhow!("a worker panicked"))),
                Err(error) => Err(anyhow!("spawn a worker: {error}")),
            })
            .collect()
    });
    merge(results)
}

// ----- progress and report -----

/// Prints one progress line per second on stderr until `done` is set.
fn progress(counters: &Counters, done: &AtomicBool) {
    let started = Instant::now();
    let mut last = (started, 0u64);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        if now.duration_since(last.0) < Duration::from_secs(1) {
            continue;
        }
        let commands = counters.commands_done.load(Ordering::Relaxed);
        let rate = (commands - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        let in_flight = counters.frames_sent.load(Ordering::Relaxed)
            - counters
                .frames_done
                .load(Ordering::Relaxed)
                .min(counters.frames_sent.load(Ordering::Relaxed));
        eprintln!(
            "ledger-bench: {:5.1} s  {:>12} transfers/s  {:>12} done  {:>6} frames in flight",
            now.duration_since(started).as_secs_f64(),
            group(rate as u64),
            group(commands),
            in_flight
        );
        last = (now, commands);
    }
}

/// `1234567` as `1 234 567`.
fn group(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

struct Report<'a> {
    plan: &'a Plan,
    target: String,
    sync: &'a str,
    tally: &'a Tally,
    sent: u64,
    seconds: f64,
    client_cpu: Duration,
    process_cpu: Duration,
    server_threads: Option<Vec<(String, Duration)>>,
    machine: Option<(Duration, Duration)>,
    runtime: Option<(RuntimeStats, RuntimeStats)>,
    verified: &'a Verified,
}

impl Report<'_> {
    fn print(&self) {
        let plan = self.plan;
        let latency = &self.tally.latency_us;
        let loop_kind = match plan.rate {
            Some(rate) => format!(
                "open loop at {} transfers/s (latency from the intended send time)",
                group(rate as u64)
            ),
            None => "closed loop (latency from the send time)".to_string(),
        };
        let tps = self.tally.ok as f64 / self.seconds.max(1e-9);
        println!();
        println!(
            "ledger-bench: {} over {} accounts, {}, sync {}",
            plan.workload.name(),
            plan.accounts.keys().len(),
            self.target,
            self.sync
        );
        println!(
            "  {} connections x {} frames in flight x {} transfers per frame, {loop_kind}",
            plan.connections, plan.in_flight, plan.batch_len
        );
        let failed: u64 = self.tally.failed.values().sum();
        println!("  {:<22} {:>14}", "transfers sent", group(self.sent));
        println!(
            "  {:<22} {:>14}  (failed {failed}, refused {})",
            "transfers ok",
            group(self.tally.ok),
            self.tally.refused_commands
        );
        println!("  {:<22} {:>14}", "frames", group(self.tally.frames));
        println!("  {:<22} {:>14.3}", "seconds", self.seconds);
        println!("  {:<22} {:>14}", "transfers/s", group(tps as u64));
        println!("  latency per frame (= batch latency), µs:");
        println!(
            "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
        );
        println!(
            "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10.0}",
            latency.value_at_quantile(0.50),
            latency.value_at_quantile(0.90),
            latency.value_at_quantile(0.99),
            latency.value_at_quantile(0.999),
            latency.value_at_quantile(0.9999),
            latency.max(),
            latency.mean()
        );
        if plan.rate.is_some() {
            let lag = &self.tally.send_lag_us;
            println!(
                "  client send lag (intended -> sent), µs: p50 {} p99 {} p99.9 {} max {} \
                 (includes waits for a free in-flight slot)",
                lag.value_at_quantile(0.50),
                lag.value_at_quantile(0.99),
                lag.value_at_quantile(0.999),
                lag.max()
            );
        }
        println!(
            "  client cpu: {:.2} s = {:.0} % of wall (this process in all: {:.0} %; 100 % = one core)",
            self.client_cpu.as_secs_f64(),
            self.cpu_pct(self.client_cpu),
            self.cpu_pct(self.process_cpu)
        );
        if let Some(threads) = &self.server_threads {
            let total: Duration = threads.iter().map(|(_, time)| *time).sum();
            let top: Vec<String> = threads
                .iter()
                .take(6)
                .map(|(name, time)| format!("{name} {:.0} %", self.cpu_pct(*time)))
                .collect();
            println!(
                "  server cpu: {:.0} % of wall; by thread: {}",
                self.cpu_pct(total),
                top.join(", ")
            );
        }
        if let Some(busy_pct) = self.machine_busy_pct() {
            let ours = self.client_cpu + self.server_cpu().unwrap_or(Duration::ZERO);
            let others =
                if self.server_cpu().is_some() { "others" } else { "others and the server" };
            println!(
                "  machine: {busy_pct:.0} % busy of {:.0} % ({:.0} % by {others})",
                100.0 * self.cores(),
                (busy_pct - self.cpu_pct(ours)).max(0.0)
            );
        }
        if let Some((before, after)) = &self.runtime {
            let flushes = after.flushes - before.flushes;
            let commands = after.commands - before.commands;
            println!(
                "  runtime: {} flushes, {:.1} commands per flush, {} pipelined",
                group(flushes),
                commands as f64 / flushes.max(1) as f64,
                group(after.pipelined_flushes - before.pipelined_flushes)
            );
        }
        for (name, count) in &self.tally.failed {
            println!("  FAILED: {count} x {name}");
        }
        for error in &self.tally.errors {
            println!("  ERROR: {error}");
        }
        let verified = self.verified;
        println!(
            "  verify: {} accounts + funding; sum of available+frozen {} (funding {} of {}); ok {} of {} expected: {}",
            plan.accounts.keys().len(),
            verified.sum_minor,
            verified.funding_minor.map_or("missing".into(), |minor| minor.to_string()),
            verified.funding_expected_minor,
            verified.ok,
            verified.ok_expected,
            if verified.passed() { "PASSED" } else { "FAILED" }
        );
        println!("{}", self.machine_line());
    }

    fn cpu_pct(&self, time: Duration) -> f64 {
        100.0 * time.as_secs_f64() / self.seconds.max(1e-9)
    }

    fn server_cpu(&self) -> Option<Duration> {
        self.server_threads.as_ref().map(|threads| threads.iter().map(|(_, time)| *time).sum())
    }

    fn cores(&self) -> f64 {
        std::thread::available_parallelism().map_or(1.0, |cores| cores.get() as f64)
    }

    /// How busy the whole machine was while the run was timed, in % of one core.
    fn machine_busy_pct(&self) -> Option<f64> {
        let (busy, total) = self.machine?;
        (!total.is_zero()).then(|| 100.0 * self.cores() * busy.as_secs_f64() / total.as_secs_f64())
    }

    fn machine_line(&self) -> String {
        let plan = self.plan;
        let latency = &self.tally.latency_us;
        let server_pct =
            self.server_cpu().map_or("na".into(), |time| format!("{:.0}", self.cpu_pct(time)));
        let machine_pct =
            self.machine_busy_pct().map_or("na".into(), |busy_pct| format!("{busy_pct:.0}"));
        format!(
            "workload={} target={} sync={} accounts={} connections={} batch={} in_flight={} rate={} \
             transfers={} ok={} seconds={:.3} tps={:.0} p50_us={} p99_us={} p999_us={} max_us={} \
             latency=frame client_cpu_s={:.2} client_cpu_pct={:.0} server_cpu_pct={} \
             send_lag_p99_us={} machine_cpu_pct={} cores={} conserved={} verified={} seed={}",
            plan.workload.name(),
            self.target.split_whitespace().next().unwrap_or("?"),
            self.sync,
            plan.accounts.keys().len(),
            plan.connections,
            plan.batch_len,
            plan.in_flight,
            plan.rate.map_or("closed".into(), |rate| format!("{rate:.0}")),
            self.sent,
            self.tally.ok,
            self.seconds,
            self.tally.ok as f64 / self.seconds.max(1e-9),
            latency.value_at_quantile(0.50),
            latency.value_at_quantile(0.99),
            latency.value_at_quantile(0.999),
            latency.max(),
            self.client_cpu.as_secs_f64(),
            self.cpu_pct(self.client_cpu),
            server_pct,
            self.tally.send_lag_us.value_at_quantile(0.99),
            machine_pct,
            self.cores(),
            if self.verified.conserved() { "yes" } else { "NO" },
            if self.verified.passed() { "ok" } else { "FAILED" },
            plan.seed
        )
    }
}

// ----- wiring -----

fn plan(args: &Args) -> Result<Plan> {
    let default_accounts = if args.workload == Workload::PingPong { 2 } else { 100_000 };
    let accounts = args.accounts.unwrap_or(default_accounts);
    ensure!(
        (args.workload.accounts_min()..=ACCOUNTS_MAX).contains(&accounts),
        "--accounts must be in {}..={ACCOUNTS_MAX} for {}",
        args.workload.accounts_min(),
        args.workload.name()
    );
    ensure!(
        (1..=CONNECTIONS_MAX).contains(&args.connections),
        "--connections must be in 1..={CONNECTIONS_MAX}"
    );
    ensure!((1..=BATCH_LEN_MAX).contains(&args.batch), "--batch must be in 1..={BATCH_LEN_MAX}");
    ensure!(
        (1..=IN_FLIGHT_MAX).contains(&args.in_flight),
        "--in-flight must be in 1..={IN_FLIGHT_MAX}"
    );
    let stop = match (args.transfers, args.duration) {
        (Some(transfers), _) => {
            ensure!(transfers >= 1, "--transfers must be at least 1");
            Stop::Transfers(transfers)
        }
        (None, Some(seconds)) => {
            ensure!(
                seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0,
                "--duration must be in (0, 86400]"
            );
            Stop::Duration(Duration::from_secs_f64(seconds))
        }
        (None, None) => Stop::Transfers(2_000_000),
    };
    if let Some(rate) = args.rate {
        ensure!(rate.is_finite() && rate >= 1.0, "--rate must be at least 1 transfer/s");
    }
    let seed = args.seed.unwrap_or_else(|| {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        nanos.as_nanos() as u64 | 1
    });
    let tag = Rng::new(seed ^ 0x5eed).next_u64() as u32;
    let zipf = match args.workload {
        Workload::Zipf => Some(Arc::new(
            Zipf::new(accounts, args.zipf_s).context("--zipf-s must be a positive number")?,
        )),
        Workload::Uniform | Workload::Hot | Workload::PingPong | Workload::Mix => None,
    };
    Ok(Plan {
        workload: args.workload,
        accounts: RunAccounts::new(tag, accounts),
        zipf,
        stop,
        connections: args.connections,
        batch_len: args.batch,
        in_flight: args.in_flight,
        rate: args.rate,
        seed,
    })
}

fn write_histogram(path: &Path, histogram: &Histogram<u64>) -> Result<()> {
    let mut out = Vec::new();
    write_hgrm(histogram, &mut out)?;
    std::fs::write(path, out).with_context(|| format!("write {}", path.display()))
}

/// The timed part of a run.
struct Timed {
    tally: Tally,
    /// CPU of this whole process while it ran.
    process_cpu: Duration,
    /// CPU per thread name of the server (`--server-pid`, or this process when embedded).
    server_threads: Option<Vec<(String, Duration)>>,
    /// The whole machine's busy and total CPU time while it ran (`/proc/stat`).
    machine: Option<(Duration, Duration)>,
}

/// What the target-specific part of a run hands back.
struct Measured {
    timed: Timed,
    verified: Verified,
    runtime: Option<(RuntimeStats, RuntimeStats)>,
}

fn run() -> Result<ExitCode> {
    let args = Args::parse();
    let plan = plan(&args)?;
    let counters = Counters::default();
    let mut setup_rng = Rng::new(plan.seed ^ 0xacc0);
    let sync = match (&args.embedded, args.sync) {
        (None, _) => "server",
        (Some(_), SyncArg::Fsync) => "fsync",
        (Some(_), SyncArg::None) => "none",
    };
    eprintln!(
        "ledger-bench: seed {}, accounts b{:08x}-*; opening and funding {} accounts (not timed)",
        plan.seed,
        plan.accounts.tag(),
        plan.accounts.keys().len()
    );
    let setup_started = Instant::now();
    let server_pid = args.server_pid.or(args.embedded.as_ref().map(|_| std::process::id()));
    let timed = |body: &mut dyn FnMut() -> Result<Tally>| -> Result<Timed> {
        eprintln!(
            "ledger-bench: setup took {:.1} s; running",
            setup_started.elapsed().as_secs_f64()
        );
        let threads_before = server_pid.and_then(threads_cpu);
        let machine_before = machine_cpu();
        let cpu_before = process_cpu();
        let done = AtomicBool::new(false);
        let tally = std::thread::scope(|scope| {
            if !args.quiet {
                scope.spawn(|| progress(&counters, &done));
            }
            let result = body();
            done.store(true, Ordering::Relaxed);
            result
        })?;
        let process_cpu = process_cpu().saturating_sub(cpu_before);
        let machine = match (machine_before, machine_cpu()) {
            (Some((busy0, total0)), Some((busy1, total1))) => {
                Some((busy1.saturating_sub(busy0), total1.saturating_sub(total0)))
            }
            _ => None,
        };
        let server_threads = match (server_pid, &threads_before) {
            (Some(pid), Some(before)) => threads_cpu(pid).map(|after| {
                let mut delta = threads_cpu_delta(before, &after);
                // In process, the bench's own threads are the client, not the server.
                delta.retain(|(name, _)| {
                    !name.starts_with("bench-") && !name.starts_with("ledger-bench")
                });
                delta
            }),
            _ => None,
        };
        counters.parked.lock().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(Timed { tally, process_cpu, server_threads, machine })
    };
    let (target, measured) = match (&args.addr, &args.embedded) {
        (Some(addr), _) => {
            let addr: SocketAddr = addr
                .to_socket_addrs()
                .with_context(|| format!("resolve {addr}"))?
                .next()
                .with_context(|| format!("{addr} resolves to nothing"))?;
            let credentials =
                ClientCredentials::from_env_or_default(args.credentials.as_deref())
                    .context("load the client credentials (--credentials, LEDGER_CREDENTIALS)")?;
            let options = ClientOptions { request_timeout_ms: 60_000, ..ClientOptions::default() };
            let client = Client::connect(addr, &credentials, options)
                .with_context(|| format!("connect to {addr}"))?;
            ensure!(
                client.session().role == Role::Admin,
                "opening accounts needs the admin role; {} has {:?}",
                credentials.client_id(),
                client.session().role
            );
            let mut admin = TcpAdmin { client };
            setup(&mut admin, &plan.accounts, &mut setup_rng)?;
            let threads = args.threads.unwrap_or(2).clamp(1, plan.connections);
            let timed = timed(&mut || run_tcp(&plan, addr, &credentials, threads, &counters))?;
            let sent = counters.commands_sent.load(Ordering::Relaxed);
            let verified = verify(&mut admin, &plan.accounts, &timed.tally, sent)?;
            let target = format!("tcp {addr}, {threads} client threads");
            (target, Measured { timed, verified, runtime: None })
        }
        (None, Some(dir)) => {
            let sync_mode = match args.sync {
                SyncArg::Fsync => SyncMode::Fsync,
                SyncArg::None => SyncMode::None,
            };
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            let options = RuntimeOptions { sync_mode, ..RuntimeOptions::default() };
            let len_max = options.submission_len_max;
            ensure!(
                plan.batch_len <= len_max,
                "--batch exceeds the runtime's submission_len_max {len_max}"
            );
            let (runtime, report) = Runtime::start(dir, options)
                .with_context(|| format!("start the runtime in {}", dir.display()))?;
            eprintln!("ledger-bench: recovered {}: {report}", dir.display());
            let handle = runtime.handle();
            let (producer, replies) = handle.producer(SETUP_IN_FLIGHT.max(QUERY_IN_FLIGHT));
            let mut admin = EmbeddedAdmin { producer, replies, len_max: len_max as usize };
            setup(&mut admin, &plan.accounts, &mut setup_rng)?;
            let stats_before = runtime.stats();
            let timed = timed(&mut || run_embedded(&plan, &handle, &counters))?;
            let stats_after = runtime.stats();
            let sent = counters.commands_sent.load(Ordering::Relaxed);
            let verified = verify(&mut admin, &plan.accounts, &timed.tally, sent)?;
            match handle.query(Query::CheckInvariants)? {
                QueryAnswer::Invariants(Ok(())) => {}
                QueryAnswer::Invariants(Err(broken)) => bail!("engine invariants broken: {broken}"),
                other => bail!("unexpected answer {other:?}"),
            }
            drop(admin);
            runtime.shutdown().context("stop the runtime")?;
            let target = format!("embedded {}", dir.display());
            let runtime = Some((stats_before, stats_after));
            (target, Measured { timed, verified, runtime })
        }
        (None, None) => bail!("give --addr or --embedded"),
    };
    let Measured { timed, verified, runtime } = measured;
    let tally = &timed.tally;
    let seconds = match (tally.first_send, tally.last_reply) {
        (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    // Over TCP this process is only the client; in process, only the bench's threads are.
    let client_cpu = if args.embedded.is_some() { tally.cpu } else { timed.process_cpu };
    if let Some(path) = &args.hist_out {
        write_histogram(path, &tally.latency_us)?;
    }
    let report = Report {
        plan: &plan,
        target,
        sync,
        tally,
        sent: counters.commands_sent.load(Ordering::Relaxed),
        seconds,
        client_cpu,
        process_cpu: timed.process_cpu,
        server_threads: timed.server_threads.clone(),
        machine: timed.machine,
        runtime,
        verified: &verified,
    };
    report.print();
    Ok(if verified.passed() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ledger-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

const _: () = assert!(CURRENCY_SCALE == 2, "amounts above are in cents");
const _: () = assert!(SETUP_IN_FLIGHT >= 1 && QUERY_IN_FLIGHT >= 1);
const _: () = assert!(READS_PER_WAKE_MAX >= 1);
const _: () = assert!(ERRORS_KEPT_MAX >= 1);
