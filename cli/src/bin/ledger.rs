//! `ledger`: the command-line client of `ledgerd` (see `cli/CLI.md`, or `ledger --help`).
//!
//! All of it lives in `cli`; this binary only hands it the arguments, the clock and a
//! random tx id, prints what it returns, and exits with its code.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use cli::{run, txid::generate_tx_id, RunEnv};

fn main() -> ExitCode {
    // Before 1970 or after 2554 the clock is useless; 0 makes `--expires-in-ms` expire at once.
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX));
    let env = RunEnv { now_ns, fresh_tx_id: generate_tx_id() };
    let rendered = run(std::env::args_os(), &env);
    // A closed stdout (`ledger ... | head -0`) must not turn a known outcome into a panic.
    let _ = std::io::stdout().write_all(rendered.stdout.as_bytes());
    let _ = std::io::stderr().write_all(rendered.stderr.as_bytes());
    ExitCode::from(rendered.exit as u8)
}
