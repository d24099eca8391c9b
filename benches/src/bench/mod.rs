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
//!
//! The parts: `args` (flags and the checked `Plan` they make), `plan` (each connection's
//! schedule), `tally` (what the workers count), `verify` (setup and conservation checks),
//! `tcp` and `embedded` (the two drivers), `measure` (CPU around the timed run) and `report`
//! (the progress line, the table and the machine-readable line).

mod args;
mod embedded;
mod measure;
mod plan;
mod report;
mod tally;
mod tcp;
mod verify;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use journal::SyncMode;

use self::args::{plan, Args, SyncArg};
use self::measure::{Measured, Meter};
use self::report::Report;
use self::tally::Counters;
use crate::report::write_hgrm;
use crate::workload::CURRENCY_SCALE;
use crate::Rng;

const _: () = assert!(CURRENCY_SCALE == 2, "amounts above are in cents");

/// `ledger-bench`'s `main`: parses the flags, runs, prints; exit code 2 when verification
/// failed, 1 on an error.
pub fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ledger-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
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
    let meter = Meter {
        counters: &counters,
        quiet: args.quiet,
        server_pid: args.server_pid.or(args.embedded.as_ref().map(|_| std::process::id())),
        setup_started: Instant::now(),
    };
    let (target, measured) = match (&args.addr, &args.embedded) {
        (Some(addr), _) => {
            let credentials = args.credentials.as_deref();
            tcp::run(&plan, addr, credentials, args.threads, &mut setup_rng, &meter)?
        }
        (None, Some(dir)) => {
            let sync_mode = match args.sync {
                SyncArg::Fsync => SyncMode::Fsync,
                SyncArg::None => SyncMode::None,
            };
            embedded::run(&plan, dir, sync_mode, &mut setup_rng, &meter)?
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

fn write_histogram(path: &Path, histogram: &Histogram<u64>) -> Result<()> {
    let mut out = Vec::new();
    write_hgrm(histogram, &mut out)?;
    std::fs::write(path, out).with_context(|| format!("write {}", path.display()))
}
