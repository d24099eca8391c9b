//! The TCP driver: a running `ledgerd` as the target. Setup and verification go through the
//! client library (`TcpAdmin`); the timed run has worker threads (`--threads`) that each drive
//! several non-blocking connections from one level-triggered `epoll` (`crate::poll`), so a
//! reply is read the moment it arrives and a frame leaves the moment it is due.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use engine::{AccountNo, CommandBody, ResultCode, TxId};
use protocol::auth::{ClientCredentials, Role};
use protocol::limits::READ_CHUNK_LEN_BYTES;
use protocol::wire::{
    encode_frame, encode_submit, ErrorReply, Frame, FrameBuffer, Hello, HelloOk, Message, RequestId,
};
use protocol::{Client, ClientError, ClientOptions, Reply as ClientReply};

use super::measure::{Measured, Meter};
use super::plan::{Plan, Stop, Stream, POLL_MAX};
use super::tally::{run_workers, Counters, Tally};
use super::verify::{setup, verify, Admin, QUERY_IN_FLIGHT, SETUP_IN_FLIGHT};
use crate::poll::Epoll;
use crate::report::thread_cpu;
use crate::Rng;

/// Socket reads per connection per wake-up, so one busy connection cannot starve the others.
const READS_PER_WAKE_MAX: u32 = 16;
/// Pending output past which a connection writes before encoding more.
const WRITE_AHEAD_BYTES_MAX: usize = 256 * 1024;

const _: () = assert!(READS_PER_WAKE_MAX >= 1);

/// The node that serves among the comma-separated `addrs` (a replica group: the standbys
/// answer `not_primary`, naming the primary when they know it), and a client connected to it.
/// Resolved once, before the run: a failover during a run ends it with an error.
fn primary_of(
    addrs: &str,
    credentials: &ClientCredentials,
    options: ClientOptions,
) -> Result<(SocketAddr, Client)> {
    let resolve = |addr: &str| -> Result<SocketAddr> {
        addr.to_socket_addrs()
            .with_context(|| format!("resolve {addr}"))?
            .next()
            .with_context(|| format!("{addr} resolves to nothing"))
    };
    let mut candidates: Vec<String> =
        addrs.split(',').map(str::trim).filter(|a| !a.is_empty()).map(String::from).collect();
    ensure!(!candidates.is_empty(), "--addr names no address");
    let mut refusals = Vec::new();
    // Bounded: each address is tried once, and a hint adds at most one per refusal.
    let mut tried = 0;
    while tried < candidates.len() && tried < 16 {
        let text = candidates[tried].clone();
        tried += 1;
        let addr = resolve(&text)?;
        let mut client = match Client::connect(addr, credentials, options.clone()) {
            Ok(client) => client,
            Err(error) => {
                refusals.push(format!("{text}: {error}"));
                continue;
            }
        };
        let probe = engine::AccountNo::new(b"ledger-bench-probe").expect("a valid account no");
        match client.account(&probe) {
            Ok(_) => return Ok((addr, client)),
            Err(protocol::client::ClientError::Refused {
                code: protocol::wire::ErrorCode::NotPrimary,
                message,
                ..
            }) => {
                if let Some(hint) =
                    message.strip_prefix("primary=").filter(|hint| *hint != "unknown")
                {
                    if !candidates.iter().any(|known| known == hint) {
                        candidates.push(hint.to_owned());
                    }
                }
                refusals.push(format!("{text}: not the primary ({message})"));
            }
            Err(error) => refusals.push(format!("{text}: {error}")),
        }
    }
    bail!("no node serves: {}", refusals.join("; "))
}

/// Runs the whole benchmark against the `ledgerd` at `addr`: setup, the timed run on
/// `threads` worker threads (default 2, at most one per connection), verification.
pub(super) fn run(
    plan: &Plan,
    addr: &str,
    credentials: Option<&Path>,
    threads: Option<u32>,
    setup_rng: &mut Rng,
    meter: &Meter<'_>,
) -> Result<(String, Measured)> {
    let credentials = ClientCredentials::from_env_or_default(credentials)
        .context("load the client credentials (--credentials, LEDGER_CREDENTIALS)")?;
    let options = ClientOptions { request_timeout_ms: 60_000, ..ClientOptions::default() };
    let (addr, client) = primary_of(addr, &credentials, options)?;
    ensure!(
        client.session().role == Role::Admin,
        "opening accounts needs the admin role; {} has {:?}",
        credentials.client_id(),
        client.session().role
    );
    let mut admin = TcpAdmin { client };
    setup(&mut admin, &plan.accounts, setup_rng)?;
    let threads = threads.unwrap_or(2).clamp(1, plan.connections);
    let counters = meter.counters;
    let timed = meter.timed(|| run_tcp(plan, addr, &credentials, threads, counters))?;
    let sent = counters.commands_sent.load(Ordering::Relaxed);
    let verified = verify(&mut admin, &plan.accounts, &timed.tally, sent)?;
    let target = format!("tcp {addr}, {threads} client threads");
    Ok((target, Measured { timed, verified, runtime: None }))
}

struct TcpAdmin {
    client: Client,
}

impl Admin for TcpAdmin {
    fn execute(&mut self, commands: &[(TxId, CommandBody)]) -> Result<Vec<ResultCode>> {
        let len_max = self.client.session().batch_len_max as usize;
        let mut results = vec![None; commands.len()];
        let chunks = commands.chunks(len_max);
        let send = |client: &mut Client, chunk| client.send_submit(chunk);
        pipeline(&mut self.client, SETUP_IN_FLIGHT, chunks, send, |index, reply| {
            let ClientReply::Submitted(outcomes) = reply else { bail!("not a SUBMIT_REPLY") };
            for (offset, outcome) in outcomes.iter().enumerate() {
                results[index * len_max + offset] = Some(outcome.result);
            }
            Ok(())
        })?;
        results.into_iter().map(|result| result.context("an outcome is missing")).collect()
    }

    fn totals(&mut self, keys: &[AccountNo]) -> Result<Vec<Option<i128>>> {
        let mut totals = vec![None; keys.len()];
        let send = |client: &mut Client, key| client.send_query_account(key);
        pipeline(&mut self.client, QUERY_IN_FLIGHT, keys.iter(), send, |index, reply| {
            let ClientReply::Account(account) = reply else { bail!("not an ACCOUNT reply") };
            totals[index] = account.map(|view| view.available_minor + view.frozen_minor);
            Ok(())
        })?;
        Ok(totals)
    }
}

/// Sends one request per item with at most `in_flight_max` outstanding, and hands each reply
/// to `on_reply` with the index of its item.
fn pipeline<T>(
    client: &mut Client,
    in_flight_max: u32,
    items: impl Iterator<Item = T>,
    mut send: impl FnMut(&mut Client, T) -> Result<RequestId, ClientError>,
    mut on_reply: impl FnMut(usize, ClientReply) -> Result<()>,
) -> Result<()> {
    let mut items = items.enumerate();
    let mut pending = HashMap::new();
    loop {
        while client.in_flight() < in_flight_max {
            let Some((index, item)) = items.next() else { break };
            pending.insert(send(client, item)?, index);
        }
        if pending.is_empty() {
            return Ok(());
        }
        let (request_id, reply) = client.recv()?;
        let index = pending.remove(&request_id).context("a reply to no request")?;
        on_reply(index, reply)?;
    }
}

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

/// Readiness of one worker's sockets, token = connection index. Output interest is on only
/// while a connection has bytes the socket did not take.
struct Poller {
    epoll: Epoll,
    wants_output: Vec<bool>,
}

impl Poller {
    fn new(connections: &[Connection]) -> Result<Poller> {
        let epoll = Epoll::new(connections.len())?;
        for (index, connection) in connections.iter().enumerate() {
            epoll.add(connection.stream.as_fd(), index as u64)?;
        }
        Ok(Poller { epoll, wants_output: vec![false; connections.len()] })
    }

    fn want_output(&mut self, index: usize, connection: &Connection, output: bool) -> Result<()> {
        if self.wants_output[index] != output {
            self.epoll.set_output(connection.stream.as_fd(), index as u64, output)?;
            self.wants_output[index] = output;
        }
        Ok(())
    }
}

fn tcp_worker(
    mut connections: Vec<Connection>,
    end: Option<Instant>,
    counters: &Counters,
) -> Result<Tally> {
    let cpu_start = thread_cpu();
    let mut tally = Tally::new();
    let mut poller = Poller::new(&connections)?;
    loop {
        let now = Instant::now();
        let sending =
            !counters.stop_sending.load(Ordering::Relaxed) && end.is_none_or(|end| now < end);
        let mut wake = end.filter(|_| sending);
        let mut finished = true;
        for (index, connection) in connections.iter_mut().enumerate() {
            connection.send_due(sending, &mut tally, counters)?;
            poller.want_output(index, connection, !connection.out.is_empty())?;
            finished &= connection.frame.finished(sending) && connection.out.is_empty();
            if let Some(due) = connection.frame.wake_at(sending) {
                wake = Some(wake.map_or(due, |wake| wake.min(due)));
            }
        }
        if finished {
            break;
        }
        let timeout = wake.map_or(POLL_MAX, |wake| wake.saturating_duration_since(now));
        let ready = poller.epoll.wait(timeout.min(POLL_MAX))?;
        for event_index in 0..ready {
            let index = poller.epoll.event(event_index).token as usize;
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
    let workers: Vec<_> = groups
        .into_iter()
        .map(|connections| move || tcp_worker(connections, end, counters))
        .collect();
    run_workers("bench-tcp", workers, counters)
}
