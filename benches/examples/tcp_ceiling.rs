//! `tcp_ceiling`: the machine's ceiling for `ledger-bench`'s connection pattern with no ledger
//! work at all. One server thread (epoll, level-triggered, `benches::poll`) answers every
//! fixed-size request with a fixed-size reply; `--client-threads` epoll threads keep exactly
//! one request in flight per connection (closed loop) over TCP loopback, `TCP_NODELAY`
//! everywhere. After a 1 s warm-up it counts round trips for `--duration-s` seconds and
//! reports round trips per second, round-trip latency (HdrHistogram), the CPU time of the
//! server thread and of the client threads (% of one core), and the whole machine's CPU from
//! `/proc/stat` (100% = one core busy). `--work-us N` spins N µs per request on the server to
//! emulate work.
//!
//! ```text
//! cargo build --release -p benches --example tcp_ceiling
//! target/release/examples/tcp_ceiling --connections 32 --duration-s 10
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use benches::poll::Epoll;
use benches::report::{machine_cpu, thread_cpu};
use clap::Parser;
use hdrhistogram::Histogram;

/// How long a thread may sleep in `epoll` before it looks at the stop flag and the clock.
const POLL_TIMEOUT: Duration = Duration::from_millis(10);
/// The warm-up before the measured window (not counted).
const WARM_UP: Duration = Duration::from_secs(1);
/// Bytes taken from a socket per readable event.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// epoll token of the listening socket.
const LISTENER_TOKEN: u64 = u64::MAX;
/// Latencies above this (ns) are recorded as this.
const LATENCY_NS_MAX: u64 = 60_000_000_000;

#[derive(Parser, Debug, Clone)]
#[command(name = "tcp_ceiling", about = "Request/reply round trips per second over TCP loopback")]
struct Args {
    /// TCP connections, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Client threads; connections are dealt to them round-robin.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Measured seconds (after a 1 s warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Bytes per request.
    #[arg(long, default_value_t = 96)]
    request_bytes: usize,
    /// Bytes per reply.
    #[arg(long, default_value_t = 48)]
    reply_bytes: usize,
    /// Server work per request: µs of busy spinning.
    #[arg(long, default_value_t = 0)]
    work_us: u64,
}

/// The measured window, known once every connection is open.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: Instant,
    end: Instant,
}

/// A thread's CPU time and wall time over the measured window, from its own readings taken
/// the first time it saw the window start and end.
#[derive(Default)]
struct CpuMeter {
    start: Option<(Duration, Instant)>,
    end: Option<(Duration, Instant)>,
}

impl CpuMeter {
    fn observe(&mut self, window: &Window, now: Instant) {
        if self.start.is_none() && now >= window.start {
            self.start = Some((thread_cpu(), now));
        }
        if self.start.is_some() && self.end.is_none() && now >= window.end {
            self.end = Some((thread_cpu(), now));
        }
    }

    /// CPU time as % of one core over the window (`None` if the window was not seen whole).
    fn pct(&self) -> Option<f64> {
        let ((cpu0, wall0), (cpu1, wall1)) = (self.start?, self.end?);
        let wall = wall1.saturating_duration_since(wall0).as_secs_f64();
        Some(cpu1.saturating_sub(cpu0).as_secs_f64() / wall.max(1e-9) * 100.0)
    }
}

/// Writes `buf[*pos..]` until done or the socket is full; `Ok(true)` once everything is out.
fn write_pending(stream: &mut TcpStream, buf: &[u8], pos: &mut usize) -> std::io::Result<bool> {
    while *pos < buf.len() {
        match stream.write(&buf[*pos..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(written) => *pos += written,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(true)
}

/// One read; `Ok(None)` if nothing was there after all (spurious wake-up or EINTR).
fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    match stream.read(buf) {
        Ok(read) => Ok(Some(read)),
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn spin(work: Duration) {
    let until = Instant::now() + work;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------------
// Server

struct ServerConn {
    stream: TcpStream,
    /// Bytes of the request frame read so far (the contents are not looked at).
    partial: usize,
    /// Replies not yet taken by the socket: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    wants_output: bool,
}

#[derive(Default)]
struct ServerReport {
    cpu: CpuMeter,
    /// Requests answered inside the window.
    replies: u64,
    accepted: u64,
    /// Connections that failed inside the window, and the first such error.
    failed: u64,
    first_error: Option<String>,
}

struct Server {
    args: Args,
    reply: Vec<u8>,
    work: Duration,
    epoll: Epoll,
    conns: Vec<Option<ServerConn>>,
    report: ServerReport,
}

fn server(
    listener: TcpListener,
    args: Args,
    window: Arc<OnceLock<Window>>,
    stop: Arc<AtomicBool>,
) -> Result<ServerReport> {
    let epoll = Epoll::new(args.connections + 1)?;
    epoll.add(listener.as_fd(), LISTENER_TOKEN)?;
    let mut server = Server {
        reply: vec![0x5a; args.reply_bytes],
        work: Duration::from_micros(args.work_us),
        args,
        epoll,
        conns: Vec::new(),
        report: ServerReport::default(),
    };
    let mut scratch = vec![0u8; READ_CHUNK_BYTES];
    loop {
        // Read the clock before the stop flag, so the end of the window is always seen.
        let now = Instant::now();
        let window = window.get();
        if let Some(window) = window {
            server.report.cpu.observe(window, now);
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let in_window = window.is_some_and(|window| now >= window.start && now < window.end);
        let ready = server.epoll.wait(POLL_TIMEOUT)?;
        for index in 0..ready {
            let event = server.epoll.event(index);
            let token = event.token;
            if token == LISTENER_TOKEN {
                server.accept(&listener)?;
            } else if let Err(error) = server.serve(token as usize, event, &mut scratch, in_window)
            {
                // A connection's failure ends that connection, not the server (clients reset
                // their connections at shutdown); failures inside the window are reported.
                if in_window {
                    server.report.failed += 1;
                    server.report.first_error.get_or_insert_with(|| format!("{error:#}"));
                }
                server.close(token as usize)?;
            }
        }
    }
    Ok(server.report)
}

impl Server {
    fn accept(&mut self, listener: &TcpListener) -> Result<()> {
        loop {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(error).context("accept"),
            };
            stream.set_nodelay(true).context("server TCP_NODELAY")?;
            stream.set_nonblocking(true).context("server O_NONBLOCK")?;
            let token = self.conns.len();
            self.epoll.add(stream.as_fd(), token as u64)?;
            self.conns.push(Some(ServerConn {
                stream,
                partial: 0,
                out: Vec::with_capacity(self.args.reply_bytes * 4),
                out_pos: 0,
                wants_output: false,
            }));
            self.report.accepted += 1;
        }
    }

    fn serve(
        &mut self,
        token: usize,
        event: benches::poll::Event,
        scratch: &mut [u8],
        in_window: bool,
    ) -> Result<()> {
        let Some(conn) = self.conns.get_mut(token).and_then(Option::as_mut) else {
            return Ok(()); // closed earlier in this batch of events
        };
        if event.readable() {
            match read_some(&mut conn.stream, scratch).context("server read")? {
                Some(0) => bail!("client closed the connection"),
                Some(read) => {
                    // Requests are fixed-size frames: complete ones are answered, the rest of a
                    // frame waits for the next read.
                    let total = conn.partial + read;
                    let requests = total / self.args.request_bytes;
                    conn.partial = total % self.args.request_bytes;
                    if conn.out_pos == conn.out.len() {
                        conn.out.clear();
                        conn.out_pos = 0;
                    }
                    for _ in 0..requests {
                        if !self.work.is_zero() {
                            spin(self.work);
                        }
                        conn.out.extend_from_slice(&self.reply);
                    }
                    if in_window {
                        self.report.replies += requests as u64;
                    }
                }
                None => {}
            }
        }
        if conn.out_pos < conn.out.len() || event.writable() {
            let done = write_pending(&mut conn.stream, &conn.out, &mut conn.out_pos)
                .context("server write")?;
            if done {
                conn.out.clear();
                conn.out_pos = 0;
            }
            // Ask for EPOLLOUT only while the socket holds back part of a reply.
            if conn.wants_output == done {
                conn.wants_output = !done;
                self.epoll.set_output(conn.stream.as_fd(), token as u64, !done)?;
            }
        }
        Ok(())
    }

    fn close(&mut self, token: usize) -> Result<()> {
        if let Some(conn) = self.conns.get_mut(token).and_then(Option::take) {
            self.epoll.delete(conn.stream.as_fd())?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Client

struct ClientConn {
    stream: TcpStream,
    /// Bytes of the current request written so far.
    sent: usize,
    /// Bytes of the current reply read so far.
    received: usize,
    sent_at: Instant,
    wants_output: bool,
}

struct ClientReport {
    cpu: CpuMeter,
    /// Round-trip latency (ns) of the replies that completed inside the window.
    latency_ns: Histogram<u64>,
}

fn client(
    streams: Vec<TcpStream>,
    args: Args,
    window: Window,
    stop: Arc<AtomicBool>,
) -> Result<ClientReport> {
    let request = vec![0xa5; args.request_bytes];
    let mut report = ClientReport {
        cpu: CpuMeter::default(),
        latency_ns: Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3)
            .map_err(|error| anyhow!("histogram: {error}"))?,
    };
    let mut epoll = Epoll::new(streams.len())?;
    let now = Instant::now();
    let mut conns = Vec::with_capacity(streams.len());
    for (token, stream) in streams.into_iter().enumerate() {
        epoll.add(stream.as_fd(), token as u64)?;
        conns.push(ClientConn { stream, sent: 0, received: 0, sent_at: now, wants_output: false });
    }
    // The first request of every connection.
    for (token, conn) in conns.iter_mut().enumerate() {
        send_request(conn, token, &request, &epoll)?;
    }
    let mut scratch = vec![0u8; READ_CHUNK_BYTES];
    loop {
        if stop.load(Ordering::Relaxed) {
            bail!("stopped early (another thread failed)");
        }
        let now = Instant::now();
        report.cpu.observe(&window, now);
        if now >= window.end {
            return Ok(report);
        }
        let ready = epoll.wait(POLL_TIMEOUT)?;
        for index in 0..ready {
            let event = epoll.event(index);
            let token = event.token;
            let conn = &mut conns[token as usize];
            if event.writable() {
                flush_request(conn, token as usize, &request, &epoll)?;
            }
            if !event.readable() {
                continue;
            }
            let Some(read) = read_some(&mut conn.stream, &mut scratch).context("client read")?
            else {
                continue;
            };
            ensure!(read > 0, "the server closed a connection");
            conn.received += read;
            ensure!(
                conn.received <= args.reply_bytes,
                "the server sent {} bytes for one {}-byte reply",
                conn.received,
                args.reply_bytes
            );
            if conn.received == args.reply_bytes {
                let done = Instant::now();
                if done >= window.start && done < window.end {
                    let latency = done.saturating_duration_since(conn.sent_at).as_nanos();
                    report.latency_ns.saturating_record(latency.min(LATENCY_NS_MAX.into()) as u64);
                }
                conn.received = 0;
                send_request(conn, token as usize, &request, &epoll)?;
            }
        }
    }
}

/// Starts the connection's next request (its previous reply is complete).
fn send_request(conn: &mut ClientConn, token: usize, request: &[u8], epoll: &Epoll) -> Result<()> {
    ensure!(conn.sent == request.len() || conn.sent == 0, "a request is still being written");
    conn.sent = 0;
    conn.sent_at = Instant::now();
    flush_request(conn, token, request, epoll)
}

/// Writes what the socket takes of the current request; EPOLLOUT while some is left.
fn flush_request(conn: &mut ClientConn, token: usize, request: &[u8], epoll: &Epoll) -> Result<()> {
    let done = write_pending(&mut conn.stream, request, &mut conn.sent).context("client write")?;
    if conn.wants_output == done {
        conn.wants_output = !done;
        epoll.set_output(conn.stream.as_fd(), token as u64, !done)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Driver

fn join<T>(handle: JoinHandle<Result<T>>, name: &str) -> Result<T> {
    handle.join().unwrap_or_else(|_| Err(anyhow!("the {name} thread panicked")))
}

/// Runs `body` on a named thread; a failure raises `stop` so the other threads end too.
fn spawn<T: Send + 'static>(
    name: String,
    stop: &Arc<AtomicBool>,
    body: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<JoinHandle<Result<T>>> {
    let stop = Arc::clone(stop);
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let result = body().with_context(|| format!("thread {name}"));
            if result.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            result
        })
        .with_context(|| "spawn a thread".to_string())
}

fn run(args: Args) -> Result<()> {
    ensure!(args.connections >= 1, "--connections must be at least 1");
    ensure!(args.client_threads >= 1, "--client-threads must be at least 1");
    ensure!(args.request_bytes >= 1 && args.reply_bytes >= 1, "frames must be at least 1 byte");
    ensure!(args.duration_s > 0.0 && args.duration_s.is_finite(), "--duration-s must be > 0");
    let client_threads = args.client_threads.min(args.connections);

    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    listener.set_nonblocking(true).context("listener O_NONBLOCK")?;
    let addr: SocketAddr = listener.local_addr().context("local_addr")?;
    let stop = Arc::new(AtomicBool::new(false));
    let window_cell = Arc::new(OnceLock::new());
    let server_thread = {
        let (args, window_cell, stop2) = (args.clone(), Arc::clone(&window_cell), stop.clone());
        spawn("server".into(), &stop, move || server(listener, args, window_cell, stop2))?
    };

    // Open every connection, dealt round-robin to the client threads.
    let mut per_thread: Vec<Vec<TcpStream>> = (0..client_threads).map(|_| Vec::new()).collect();
    for index in 0..args.connections {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true).context("client TCP_NODELAY")?;
        stream.set_nonblocking(true).context("client O_NONBLOCK")?;
        per_thread[index % client_threads].push(stream);
    }
    let start = Instant::now() + WARM_UP;
    let window = Window { start, end: start + Duration::from_secs_f64(args.duration_s) };
    window_cell.set(window).map_err(|_| anyhow!("the window was already set"))?;

    let mut client_handles = Vec::with_capacity(client_threads);
    for (index, streams) in per_thread.into_iter().enumerate() {
        let (args, stop2) = (args.clone(), stop.clone());
        client_handles.push(spawn(format!("client-{index}"), &stop, move || {
            client(streams, args, window, stop2)
        })?);
    }

    // Machine-wide CPU over the window, read from here (this thread sleeps meanwhile).
    let sleep_until = |deadline: Instant| {
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
    };
    sleep_until(window.start);
    let machine_before = machine_cpu();
    sleep_until(window.end);
    let machine_after = machine_cpu();

    let mut clients = Vec::with_capacity(client_threads);
    let mut errors = Vec::new();
    for (index, handle) in client_handles.into_iter().enumerate() {
        match join(handle, &format!("client-{index}")) {
            Ok(report) => clients.push(report),
            Err(error) => errors.push(error),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let server_report = join(server_thread, "server");
    if let Some(error) = errors.into_iter().next() {
        return Err(error);
    }
    let server_report = server_report?;

    let mut latency = Histogram::<u64>::new_with_bounds(1, LATENCY_NS_MAX, 3)
        .map_err(|error| anyhow!("histogram: {error}"))?;
    let mut client_pct = 0.0;
    for report in &clients {
        latency.add(&report.latency_ns).map_err(|error| anyhow!("merge histograms: {error}"))?;
        client_pct += report.cpu.pct().context("a client thread missed the window")?;
    }
    let server_pct = server_report.cpu.pct().context("the server thread missed the window")?;
    let machine_pct = match (machine_before, machine_after) {
        (Some((busy0, total0)), Some((busy1, total1))) => {
            let total = total1.saturating_sub(total0).as_secs_f64();
            let busy = busy1.saturating_sub(busy0).as_secs_f64();
            // SAFETY: sysconf has no preconditions.
            let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as f64;
            Some(busy / total.max(1e-9) * cores * 100.0)
        }
        _ => None,
    };

    print_report(
        &args,
        client_threads,
        &latency,
        &server_report,
        server_pct,
        client_pct,
        machine_pct,
    );
    Ok(())
}

/// Prints the table and the machine-readable `tcp_ceiling ...=...` line.
fn print_report(
    args: &Args,
    client_threads: usize,
    latency: &Histogram<u64>,
    server_report: &ServerReport,
    server_pct: f64,
    client_pct: f64,
    machine_pct: Option<f64>,
) {
    let round_trips = latency.len();
    let rps = round_trips as f64 / args.duration_s;
    let us = |quantile: f64| latency.value_at_quantile(quantile) as f64 / 1000.0;
    let machine = machine_pct.map_or("na".to_string(), |pct| format!("{pct:.0}"));
    println!("tcp_ceiling: request/reply over TCP loopback, no work beyond --work-us");
    println!(
        "  connections {} (one request in flight each), client threads {}, 1 server thread",
        args.connections, client_threads
    );
    println!(
        "  request {} B, reply {} B, server work {} µs/request, {:.1} s measured after {} s warm-up",
        args.request_bytes,
        args.reply_bytes,
        args.work_us,
        args.duration_s,
        WARM_UP.as_secs()
    );
    println!(
        "  round trips         {round_trips:>12}  ({} answered by the server)",
        server_report.replies
    );
    println!("  round trips/s       {rps:>12.0}");
    println!(
        "  latency µs          p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        us(0.50),
        us(0.90),
        us(0.99),
        us(0.999),
        latency.max() as f64 / 1000.0
    );
    println!(
        "  CPU % of one core   server {server_pct:.0}  clients {client_pct:.0}  machine {machine} \
         (machine: all processes, 100 = one core)"
    );
    if server_report.failed > 0 {
        println!(
            "  WARNING: {} server connection(s) failed during the window; first: {}",
            server_report.failed,
            server_report.first_error.as_deref().unwrap_or("?")
        );
    }
    println!(
        "tcp_ceiling connections={} client_threads={} request_bytes={} reply_bytes={} work_us={} \
         seconds={:.1} rps={:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} server_cpu_pct={:.0} \
         client_cpu_pct={:.0} machine_cpu_pct={}",
        args.connections,
        client_threads,
        args.request_bytes,
        args.reply_bytes,
        args.work_us,
        args.duration_s,
        rps,
        us(0.50),
        us(0.99),
        us(0.999),
        server_pct,
        client_pct,
        machine
    );
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tcp_ceiling: {error:#}");
            ExitCode::FAILURE
        }
    }
}
