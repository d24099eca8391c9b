//! The flags (`Args`) and the checked `Plan` they make.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{ensure, Context, Result};
use clap::{Parser, ValueEnum};

use super::plan::{Plan, Stop};
use crate::workload::{RunAccounts, Workload, Zipf, ACCOUNTS_MAX};
use crate::Rng;

const CONNECTIONS_MAX: u32 = 4_096;
const IN_FLIGHT_MAX: u32 = 65_536;
const BATCH_LEN_MAX: u32 = protocol::limits::BATCH_LEN_MAX;

#[derive(Parser, Debug)]
#[command(name = "ledger-bench", version, about = "Load and latency harness for the ledger")]
pub(super) struct Args {
    /// A running ledgerd (host:port), or a replica group's nodes (host:port,host:port,...):
    /// the one that serves is found before the run. Exactly one of --addr and --embedded.
    #[arg(long, conflicts_with = "embedded", required_unless_present = "embedded")]
    pub(super) addr: Option<String>,
    /// Run the runtime and journal in this process, data in DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(super) embedded: Option<PathBuf>,
    /// Credentials file for --addr (default: $LEDGER_CREDENTIALS, else ./data/admin.credentials);
    /// an admin is needed to open the accounts.
    #[arg(long, value_name = "FILE")]
    pub(super) credentials: Option<PathBuf>,
    /// Journal sync mode with --embedded (a server has its own).
    #[arg(long, value_enum, default_value = "fsync")]
    pub(super) sync: SyncArg,
    /// uniform, hot, pingpong, zipf or mix.
    #[arg(long, default_value = "uniform", value_parser = parse_workload)]
    pub(super) workload: Workload,
    /// Accounts to open and fund (default 100000; pingpong: 2).
    #[arg(long)]
    pub(super) accounts: Option<u32>,
    /// Exponent of the zipf workload.
    #[arg(long, default_value_t = 1.0)]
    pub(super) zipf_s: f64,
    /// Transfers (commands) to send in total (default 2000000 unless --duration).
    #[arg(long, conflicts_with = "duration")]
    pub(super) transfers: Option<u64>,
    /// Send for this many seconds instead, then wait for the replies.
    #[arg(long, value_name = "SECONDS")]
    pub(super) duration: Option<f64>,
    /// Connections (or in-process producers).
    #[arg(long, default_value_t = 4)]
    pub(super) connections: u32,
    /// Commands per frame (SUBMIT).
    #[arg(long, default_value_t = 1024)]
    pub(super) batch: u32,
    /// Frames in flight per connection.
    #[arg(long, default_value_t = 4)]
    pub(super) in_flight: u32,
    /// Open loop: transfers per second in total, at fixed intervals (latency from the intended
    /// send time). Default: closed loop.
    #[arg(long, value_name = "TRANSFERS_PER_SEC")]
    pub(super) rate: Option<f64>,
    /// Client threads driving the TCP connections (default: min(connections, 2)).
    #[arg(long)]
    pub(super) threads: Option<u32>,
    /// Write the latency distribution here (HdrHistogram percentile text, `.hgrm`, in µs).
    #[arg(long, value_name = "FILE")]
    pub(super) hist_out: Option<PathBuf>,
    /// Seed of the workload (default: from the clock; printed).
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Also report the CPU use of this process's threads (e.g. the ledgerd under test).
    #[arg(long, value_name = "PID")]
    pub(super) server_pid: Option<u32>,
    /// No progress line on stderr.
    #[arg(long)]
    pub(super) quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub(super) enum SyncArg {
    Fsync,
    None,
}

fn parse_workload(name: &str) -> Result<Workload, String> {
    Workload::from_name(name).ok_or_else(|| {
        let names: Vec<_> = Workload::ALL.iter().map(|workload| workload.name()).collect();
        format!("unknown workload {name:?}; one of {}", names.join(", "))
    })
}

pub(super) fn plan(args: &Args) -> Result<Plan> {
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
