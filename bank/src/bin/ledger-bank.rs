//! `ledger-bank`: runs the bank-channel simulator (`bank/BANK.md`) until killed.

use std::net::TcpListener;

use anyhow::Context;
use bank::sim::{parse_rate_ppm, BankConfig};
use clap::Parser;

/// A seeded bank-channel simulator for the ledger's settlement processor.
#[derive(Parser, Debug)]
#[command(name = "ledger-bank", version)]
struct Args {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7171")]
    listen: String,
    /// Base answer delay in milliseconds (each answer waits 50..150 % of it).
    #[arg(long = "latency-ms", default_value_t = 10)]
    latency_ms: u64,
    /// Probability that an instruction is refused (0..1, at most 6 decimals).
    #[arg(long = "fail-rate", default_value = "0", value_parser = parse_rate_ppm)]
    fail_rate: u32,
    /// Probability that a send is never answered.
    #[arg(long = "timeout-rate", default_value = "0", value_parser = parse_rate_ppm)]
    timeout_rate: u32,
    /// Probability that an answer is sent twice.
    #[arg(long = "duplicate-rate", default_value = "0", value_parser = parse_rate_ppm)]
    duplicate_rate: u32,
    /// Seed of every decision: the same seed and instructions give the same answers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("listen on {}", args.listen))?;
    let address = listener.local_addr().context("local address")?;
    let config = BankConfig {
        latency_ms: args.latency_ms,
        fail_ppm: args.fail_rate,
        timeout_ppm: args.timeout_rate,
        duplicate_ppm: args.duplicate_rate,
        seed: args.seed,
    };
    bank::server::spawn(listener, config).context("start threads")?;
    println!("ledger-bank listening on {address}");
    loop {
        std::thread::park();
    }
}
