//! `ledger-replay`: verify a journal, rebuild state, state as of a sequence number or time,
//! account statements, exports, reconciliation against an independent shadow ledger, and
//! following a live journal. Read-only on the journal; `snapshot` writes a snapshot file.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use engine::{format_minor, AccountId, AccountNo, Bucket, Engine};
use replay::shadow::Shadow;
use replay::{text, Replay, Start};

#[derive(Parser)]
#[command(
    name = "ledger-replay",
    version,
    about = "Verify, rebuild, audit and reconcile a ledger from its journal"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check every record, replay into a fresh engine, check every invariant.
    Verify {
        /// The ledger's data directory.
        data_dir: PathBuf,
    },
    /// Write a snapshot of the state at a sequence number (default: the end of the journal).
    Snapshot {
        /// The ledger's data directory.
        data_dir: PathBuf,
        /// Include records up to this sequence number.
        #[arg(long)]
        at: Option<u64>,
    },
    /// Balances as of a sequence number or a command timestamp.
    State {
        /// The ledger's data directory.
        data_dir: PathBuf,
        /// Include records up to this sequence number.
        #[arg(long, conflicts_with = "at_time_ns")]
        at: Option<u64>,
        /// Include records stamped at or before this time (ns since the Unix epoch).
        #[arg(long)]
        at_time_ns: Option<u64>,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every posting of one account, with running balances.
    Statement {
        /// The ledger's data directory.
        data_dir: PathBuf,
        /// The account.
        account_no: String,
        /// From this sequence number.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Up to this sequence number.
        #[arg(long)]
        to: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Every posting, for loading into a warehouse.
    Export {
        /// The ledger's data directory.
        data_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
    },
    /// Rebuild balances from postings alone and compare them with the newest snapshot and the
    /// replayed engine; every mismatch is listed by account. Exit code 1 when there is any.
    Reconcile {
        /// The ledger's data directory.
        data_dir: PathBuf,
        /// Also compare with a running `ledgerd` (its balances of every account the journal
        /// knows). Run it on a quiet server: commands that land between the journal read and
        /// the queries show up as mismatches.
        #[arg(long)]
        addr: Option<String>,
        /// Credentials for `--addr` (default: $LEDGER_CREDENTIALS, else ./data/admin.credentials).
        #[arg(long)]
        credentials: Option<PathBuf>,
    },
    /// Follow a live journal, printing commands as they are appended.
    Tail {
        /// The ledger's data directory.
        data_dir: PathBuf,
        /// Start at this sequence number (default: the current end).
        #[arg(long)]
        from: Option<u64>,
        /// Poll interval.
        #[arg(long, default_value_t = 100)]
        poll_ms: u64,
        /// Stop after this long without a new record (default: never).
        #[arg(long)]
        idle_exit_ms: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Csv,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ExportFormat {
    Csv,
    Jsonl,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Verify { data_dir } => verify(&data_dir),
        Cmd::Snapshot { data_dir, at } => snapshot(&data_dir, at),
        Cmd::State { data_dir, at, at_time_ns, account, json } => {
            state(&data_dir, at, at_time_ns, account.as_deref(), json)
        }
        Cmd::Statement { data_dir, account_no, from, to, format } => {
            statement(&data_dir, &account_no, from, to, format)
        }
        Cmd::Export { data_dir, format } => export(&data_dir, format),
        Cmd::Reconcile { data_dir, addr, credentials } => {
            reconcile(&data_dir, addr.as_deref(), credentials.as_deref())
        }
        Cmd::Tail { data_dir, from, poll_ms, idle_exit_ms } => {
            tail(&data_dir, from, poll_ms, idle_exit_ms)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ledger-replay: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn open(data_dir: &Path, start: Start) -> Result<Replay> {
    if !journal::journal_dir(data_dir).is_dir() {
        bail!("{} has no journal directory", data_dir.display());
    }
    let replay =
        Replay::open(data_dir, start).with_context(|| format!("open {}", data_dir.display()))?;
    for (path, reason) in &replay.skipped {
        eprintln!("skipped damaged snapshot {}: {reason}", path.display());
    }
    Ok(replay)
}

fn key(text: &str) -> Result<AccountNo> {
    AccountNo::new(text.as_bytes()).map_err(|error| anyhow::anyhow!("account_no {text:?}: {error}"))
}

fn verify(data_dir: &Path) -> Result<ExitCode> {
    let started = Instant::now();
    let mut replay = open(data_dir, Start::Oldest)?;
    let mut shadow = Shadow::from_engine(&replay.engine);
    let base_seq = replay.last_seq;
    let progress = std::io::stderr().is_terminal();
    const PROGRESS_EVERY: u64 = 1 << 20;
    loop {
        let step = replay.step().context("replay")?;
        let Some(step) = step else { break };
        shadow.apply(&step);
        let (records, seq) = (replay.records, replay.last_seq);
        if progress && records % PROGRESS_EVERY == 0 {
            let rate = records as f64 / started.elapsed().as_secs_f64();
            eprint!("\rverify: {records} records, seq {seq}, {rate:.0} records/s   ");
        }
    }
    if progress {
        eprintln!();
    }
    let elapsed = started.elapsed();
    if let Some(torn) = replay.torn_tail() {
        println!(
            "torn tail: seq {} at {} offset {} ({} bytes, {}) — not an acknowledged record; the server truncates it at start",
            torn.seq,
            torn.path.display(),
            torn.offset,
            torn.len_bytes,
            torn.defect
        );
    }
    if let Err(problem) = replay.engine.check_invariants() {
        bail!("invariant broken after seq {}: {problem}", replay.last_seq);
    }
    let mismatches = shadow.compare(&replay.engine);
    if let Some(first) = mismatches.first() {
        bail!(
            "postings and balances disagree: account {} {} postings {} balance {} ({} mismatches)",
            first.account_no,
            first.field,
            first.shadow_minor,
            first.other_minor,
            mismatches.len()
        );
    }
    let from = match &replay.base {
        Some((seq, path)) => format!("snapshot seq {seq} ({})", path.display()),
        None => "an empty ledger".to_string(),
    };
    println!("replayed from: {from}");
    println!("records: {}", replay.records);
    if replay.records > 0 {
        println!("seq range: {}..={}", base_seq + 1, replay.last_seq);
    }
    println!(
        "elapsed: {:.3} s ({:.0} records/s)",
        elapsed.as_secs_f64(),
        replay.records as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!("accounts: {}", replay.engine.account_count());
    println!("state_hash: {:032x}", replay.engine.state_hash());
    for total in replay.engine.currency_totals() {
        let any = total.available_minor != 0 || total.frozen_minor != 0 || total.ledger_minor != 0;
        let used = any
            || (0..replay.engine.account_count())
                .any(|i| replay.engine.account_by_id(AccountId(i)).currency == total.currency);
        if used {
            println!(
                "{}: sum(available)={} sum(frozen)={} sum(available+frozen)={} sum(ledger)={}",
                total.currency,
                format_minor(total.available_minor, total.scale),
                format_minor(total.frozen_minor, total.scale),
                format_minor(total.available_minor + total.frozen_minor, total.scale),
                format_minor(total.ledger_minor, total.scale)
            );
        }
    }
    println!("ok: checksums, sequence, invariants and postings all sound");
    Ok(ExitCode::SUCCESS)
}

fn snapshot(data_dir: &Path, at: Option<u64>) -> Result<ExitCode> {
    let target = at.unwrap_or(u64::MAX);
    let mut replay = open(data_dir, Start::AtOrBefore(target))?;
    replay.run_to(target).context("replay")?;
    if let Some(at) = at {
        if replay.last_seq != at {
            bail!("the journal ends at seq {}, before {at}", replay.last_seq);
        }
    }
    replay
        .engine
        .check_invariants()
        .map_err(|problem| anyhow::anyhow!("invariant broken: {problem}"))?;
    let mut payload = Vec::new();
    replay.engine.encode_state(&mut payload);
    let path =
        journal::snapshot::write(&journal::snapshot_dir(data_dir), replay.last_seq, &payload)
            .context("write snapshot")?;
    println!(
        "wrote {} (seq {}, {} bytes, state_hash {:032x})",
        path.display(),
        replay.last_seq,
        payload.len(),
        replay.engine.state_hash()
    );
    Ok(ExitCode::SUCCESS)
}

fn print_account(engine: &Engine, id: AccountId, json: bool) {
    let view = engine.account_by_id(id);
    let money = |minor| format_minor(minor, view.scale);
    if json {
        println!(
            "{{\"account_no\":{},\"currency\":\"{}\",\"available\":\"{}\",\"frozen\":\"{}\",\"ledger\":\"{}\",\"status\":\"{:?}\"}}",
            text::json_string(view.account_no.as_str()),
            view.currency,
            money(view.available_minor),
            money(view.frozen_minor),
            money(view.ledger_minor),
            view.status
        );
    } else {
        println!(
            "{:<32} {:<5} available={:>20} frozen={:>20} ledger={:>20} {:?}",
            view.account_no.as_str(),
            view.currency.as_str(),
            money(view.available_minor),
            money(view.frozen_minor),
            money(view.ledger_minor),
            view.status
        );
    }
}

fn state(
    data_dir: &Path,
    at: Option<u64>,
    at_time_ns: Option<u64>,
    account: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let mut replay = match (at, at_time_ns) {
        (Some(seq), _) => {
            let mut replay = open(data_dir, Start::AtOrBefore(seq))?;
            replay.run_to(seq).context("replay")?;
            replay
        }
        (None, Some(timestamp_ns)) => {
            let mut replay = open(data_dir, Start::Oldest)?;
            replay.run_to_time(timestamp_ns).context("replay")?;
            replay
        }
        (None, None) => bail!("give --at SEQ or --at-time-ns NS"),
    };
    let engine = &mut replay.engine;
    if !json {
        println!("as of seq {}", replay.last_seq);
    }
    match account {
        Some(text) => {
            let Some(view) = engine.account(&key(text)?) else {
                bail!("account {text} does not exist at seq {}", replay.last_seq);
            };
            print_account(engine, view.id, json);
        }
        None => {
            for index in 0..engine.account_count() {
                print_account(engine, AccountId(index), json);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn statement(
    data_dir: &Path,
    account_no: &str,
    from: u64,
    to: Option<u64>,
    format: Format,
) -> Result<ExitCode> {
    let wanted = key(account_no)?;
    let to = to.unwrap_or(u64::MAX);
    let mut replay = open(data_dir, Start::Oldest)?;
    let mut running = None;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Some(view) = replay.engine.account(&wanted) {
        running =
            Some((view.id, view.scale, view.available_minor, view.frozen_minor, view.ledger_minor));
    }
    match format {
        Format::Csv => {
            writeln!(out, "seq,timestamp_ns,tx_id,kind,bucket,delta,available,frozen,ledger")?
        }
        Format::Table => writeln!(
            out,
            "{:>10} {:<36} {:<14} {:<9} {:>16} {:>16} {:>16} {:>16}",
            "seq", "tx_id", "kind", "bucket", "delta", "available", "frozen", "ledger"
        )?,
        Format::Jsonl => {}
    }
    while replay.last_seq < to {
        let Some(step) = replay.step().context("replay")? else { break };
        if running.is_none() {
            if let Some(view) = step.engine.account(&wanted) {
                running = Some((view.id, view.scale, 0, 0, 0));
            }
        }
        let Some((id, scale, available, frozen, ledger)) = running.as_mut() else { continue };
        for entry in step.effects.entries.iter().filter(|entry| entry.account == *id) {
            let bucket = match entry.bucket {
                Bucket::Available => {
                    *available += entry.delta_minor;
                    "available"
                }
                Bucket::Frozen => {
                    *frozen += entry.delta_minor;
                    "frozen"
                }
                Bucket::Ledger => {
                    *ledger += entry.delta_minor;
                    "ledger"
                }
            };
            if step.seq < from {
                continue;
            }
            let money = |minor: i128| format_minor(minor, *scale);
            let kind = step.command.body.kind().name();
            let tx = text::tx_id(entry.tx_id);
            match format {
                Format::Csv => writeln!(
                    out,
                    "{},{},{tx},{kind},{bucket},{},{},{},{}",
                    step.seq,
                    step.command.timestamp_ns,
                    money(entry.delta_minor),
                    money(*available),
                    money(*frozen),
                    money(*ledger)
                )?,
                Format::Jsonl => writeln!(
                    out,
                    "{{\"seq\":{},\"timestamp_ns\":{},\"tx_id\":\"{tx}\",\"kind\":\"{kind}\",\"bucket\":\"{bucket}\",\"delta\":\"{}\",\"available\":\"{}\",\"frozen\":\"{}\",\"ledger\":\"{}\"}}",
                    step.seq,
                    step.command.timestamp_ns,
                    money(entry.delta_minor),
                    money(*available),
                    money(*frozen),
                    money(*ledger)
                )?,
                Format::Table => writeln!(
                    out,
                    "{:>10} {tx} {kind:<14} {bucket:<9} {:>16} {:>16} {:>16} {:>16}",
                    step.seq,
                    money(entry.delta_minor),
                    money(*available),
                    money(*frozen),
                    money(*ledger)
                )?,
            }
        }
    }
    out.flush()?;
    if running.is_none() {
        bail!("account {account_no} never existed up to seq {}", replay.last_seq);
    }
    Ok(ExitCode::SUCCESS)
}

fn export(data_dir: &Path, format: ExportFormat) -> Result<ExitCode> {
    let mut replay = open(data_dir, Start::Oldest)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == ExportFormat::Csv {
        writeln!(
            out,
            "seq,timestamp_ns,command_tx_id,entry_tx_id,kind,account_no,currency,bucket,delta"
        )?;
    }
    while let Some(step) = replay.step().context("replay")? {
        let engine = step.engine;
        for entry in &step.effects.entries {
            let view = engine.account_by_id(entry.account);
            let bucket = match entry.bucket {
                Bucket::Available => "available",
                Bucket::Frozen => "frozen",
                Bucket::Ledger => "ledger",
            };
            let delta = format_minor(entry.delta_minor, view.scale);
            let (command_tx, entry_tx) =
                (text::tx_id(step.command.tx_id), text::tx_id(entry.tx_id));
            let kind = step.command.body.kind().name();
            match format {
                ExportFormat::Csv => writeln!(
                    out,
                    "{},{},{command_tx},{entry_tx},{kind},{},{},{bucket},{delta}",
                    step.seq,
                    step.command.timestamp_ns,
                    text::csv_field(view.account_no.as_str()),
                    view.currency
                )?,
                ExportFormat::Jsonl => writeln!(
                    out,
                    "{{\"seq\":{},\"timestamp_ns\":{},\"command_tx_id\":\"{command_tx}\",\"entry_tx_id\":\"{entry_tx}\",\"kind\":\"{kind}\",\"account_no\":{},\"currency\":\"{}\",\"bucket\":\"{bucket}\",\"delta\":\"{delta}\"}}",
                    step.seq,
                    step.command.timestamp_ns,
                    text::json_string(view.account_no.as_str()),
                    view.currency
                )?,
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The newest snapshot that decodes for an audit (the one selection rule, with
/// `Engine::decode_state_for_audit`: a snapshot whose sums are off is read, so that its accounts
/// can be compared with the postings; stdout says that recovery would refuse it).
fn newest_snapshot_for_audit(dir: &Path) -> Result<Option<(u64, PathBuf, Engine)>> {
    let choice = runtime::select_snapshot_decoded(
        &journal::FileStorage,
        dir,
        runtime::Base::Newest,
        Engine::decode_state_for_audit,
    )
    .context("load the newest snapshot")?;
    for skipped in &choice.skipped {
        eprintln!("snapshot {} is unusable: {}", skipped.path.display(), skipped.reason);
    }
    let Some(loaded) = choice.loaded else { return Ok(None) };
    if let Err(problem) = loaded.engine.check_invariants() {
        println!(
            "snapshot {} breaks an invariant (recovery refuses it): {problem}",
            loaded.path.display()
        );
    }
    Ok(Some((loaded.seq, loaded.path, loaded.engine)))
}

fn reconcile(data_dir: &Path, addr: Option<&str>, credentials: Option<&Path>) -> Result<ExitCode> {
    let mut replay = open(data_dir, Start::Oldest)?;
    let mut shadow = Shadow::from_engine(&replay.engine);
    let snapshot_dir = journal::snapshot_dir(data_dir);
    let checkpoint = newest_snapshot_for_audit(&snapshot_dir)?;
    let mut total = 0usize;
    let mut report = |against: &str, mismatches: Vec<replay::shadow::Mismatch>| {
        for m in &mismatches {
            println!(
                "MISMATCH {against}: account {} {}: postings say {} but {against} says {}",
                m.account_no, m.field, m.shadow_minor, m.other_minor
            );
        }
        total += mismatches.len();
        mismatches.len()
    };
    let base_seq = replay.last_seq;
    let mut checked_snapshot = false;
    if let Some((seq, path, engine)) = &checkpoint {
        if *seq == base_seq {
            let found = report("snapshot", shadow.compare(engine));
            println!("snapshot {} (seq {seq}): {found} mismatches", path.display());
            checked_snapshot = true;
        }
    }
    while let Some(step) = replay.step().context("replay")? {
        shadow.apply(&step);
        if let Some((seq, path, engine)) = &checkpoint {
            if replay.last_seq == *seq {
                let found = report("snapshot", shadow.compare(engine));
                println!("snapshot {} (seq {seq}): {found} mismatches", path.display());
                checked_snapshot = true;
            }
        }
    }
    if let (Some((seq, path, _)), false) = (&checkpoint, checked_snapshot) {
        println!(
            "snapshot {} (seq {seq}) is outside the journal's range: not compared",
            path.display()
        );
    }
    let found = report("engine", shadow.compare(&replay.engine));
    println!("replayed engine at seq {}: {found} mismatches", replay.last_seq);
    if let Some(addr) = addr {
        let credentials = protocol::auth::ClientCredentials::from_env_or_default(credentials)
            .context("credentials for --addr")?;
        let mut client = protocol::client::Client::connect(addr, &credentials, Default::default())
            .with_context(|| format!("connect to {addr}"))?;
        let mut failure = None;
        let mismatches = shadow.compare_with(|account_no| match client.account(account_no) {
            Ok(view) => view.map(|v| (v.available_minor, v.frozen_minor, v.ledger_minor)),
            Err(error) => {
                failure.get_or_insert(error.to_string());
                None
            }
        });
        if let Some(error) = failure {
            bail!("query {addr}: {error}");
        }
        let found = report("server", mismatches);
        println!("server {addr}: {found} mismatches");
    }
    println!("accounts: {}, mismatches: {total}", replay.engine.account_count());
    Ok(if total == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn tail(
    data_dir: &Path,
    from: Option<u64>,
    poll_ms: u64,
    idle_exit_ms: Option<u64>,
) -> Result<ExitCode> {
    let journal_dir = journal::journal_dir(data_dir);
    let start = match from {
        Some(seq) => seq,
        None => {
            // The current end: walk to it once, then follow.
            let mut reader = journal::JournalReader::open(&journal_dir, 1)
                .or_else(|_| {
                    let first =
                        journal::list_segments(&journal_dir)?.first().map_or(1, |s| s.first_seq);
                    journal::JournalReader::open(&journal_dir, first)
                })
                .context("open the journal")?;
            while reader.next_ref().context("read")?.is_some() {}
            reader.next_seq()
        }
    };
    let mut reader =
        journal::JournalReader::open(&journal_dir, start).context("open the journal")?;
    let mut idle_since = Instant::now();
    let mut out = std::io::stdout().lock();
    loop {
        match reader.next_ref().context("read")? {
            Some(record) => {
                let line = match engine::decode_command(record.payload) {
                    Ok(command) => text::command(&command),
                    Err(error) => format!("undecodable payload: {error}"),
                };
                writeln!(out, "{} {line}", record.seq)?;
                idle_since = Instant::now();
            }
            None => {
                out.flush()?;
                if idle_exit_ms.is_some_and(|ms| idle_since.elapsed() >= Duration::from_millis(ms))
                {
                    return Ok(ExitCode::SUCCESS);
                }
                std::thread::sleep(Duration::from_millis(poll_ms));
            }
        }
    }
}
