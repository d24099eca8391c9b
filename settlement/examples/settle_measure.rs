//! Measures the settlement processor with netting: N deposits and withdrawals of one channel
//! go through the real runtime (fsync), the real processor and the bank simulator on loopback;
//! reports how fast they settle and how many net instructions carried them (gross vs net).
//!
//! ```text
//! cargo run --release -p settlement --example settle_measure -- [TRANSACTIONS] [NET_WINDOW_MS] [LATENCY_MS]
//! ```
//! Defaults: 100 000 transactions, 50 ms windows, 5 ms bank latency. Every fourth transaction is
//! a withdrawal of 0.01 from an account funded by an earlier deposit of 10.00.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bank::sim::BankConfig;
use engine::{
    AccountKind, AccountLimits, AccountNo, Amount, CommandBody, CurrencyCode, TxId, TxState,
};
use runtime::{NewCommand, Query, QueryAnswer, Runtime, RuntimeOptions};
use settlement::{netting_file, spawn, ChannelOptions};

const ACCOUNTS: u64 = 1_000;
const SUBMISSION: usize = 256;

fn no(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid account number")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let transactions = args.first().copied().unwrap_or(100_000);
    let window_ms = args.get(1).copied().unwrap_or(50);
    let latency_ms = args.get(2).copied().unwrap_or(5);

    let dir = tempfile::tempdir()?;
    let options = RuntimeOptions { pin_core: None, ..RuntimeOptions::default() };
    let (runtime, _) = Runtime::start(dir.path(), options)?;
    let handle = runtime.handle();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let bank_addr = listener.local_addr()?;
    let bank = bank::server::spawn(listener, BankConfig { latency_ms, ..BankConfig::default() })?;

    let usd = CurrencyCode::new("USD").map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut next_tx = 1u128;
    let mut run = |bodies: Vec<CommandBody>| -> anyhow::Result<Vec<TxId>> {
        let commands: Vec<NewCommand> = bodies
            .into_iter()
            .map(|body| {
                next_tx += 1;
                NewCommand { tx_id: TxId(next_tx), body }
            })
            .collect();
        let tx_ids = commands.iter().map(|c| c.tx_id).collect();
        let executed = handle.execute(commands).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(refused) = executed.outcomes.iter().find(|o| o.result != engine::ResultCode::Ok)
        {
            anyhow::bail!("refused: {}", refused.result.name());
        }
        Ok(tx_ids)
    };
    let open = |name: &str, kind| CommandBody::OpenAccount {
        account_no: no(name),
        user_id: 1,
        currency: usd,
        kind,
        limits: AccountLimits::default(),
    };
    run(vec![open("bank1", AccountKind::System), open("risk", AccountKind::Risk)])?;
    let users: Vec<String> = (0..ACCOUNTS).map(|i| format!("u{i}")).collect();
    for chunk in users.chunks(SUBMISSION) {
        run(chunk.iter().map(|name| open(name, AccountKind::User)).collect())?;
    }

    let channel =
        ChannelOptions { net_window_ms: window_ms, ..ChannelOptions::new(no("bank1"), bank_addr) };
    let processor = spawn(dir.path(), handle.clone(), channel)?;

    let started = Instant::now();
    let mut submitted = Vec::with_capacity(transactions as usize);
    let bodies: Vec<CommandBody> = (0..transactions)
        .map(|i| {
            let account_no = no(&users[(i % ACCOUNTS) as usize]);
            let channel_no = no("bank1");
            if i % 4 == 3 && i >= ACCOUNTS {
                CommandBody::Withdraw {
                    account_no,
                    channel_no,
                    amount: Amount { mantissa: 1, scale: 2 },
                }
            } else {
                CommandBody::Deposit {
                    account_no,
                    channel_no,
                    amount: Amount { mantissa: 1_000, scale: 2 },
                }
            }
        })
        .collect();
    for chunk in bodies.chunks(SUBMISSION) {
        submitted.extend(run(chunk.to_vec())?);
    }
    let submitted_s = started.elapsed().as_secs_f64();
    // Everything is settled when the channel account's `ledger` holds the whole net (the
    // bank refuses nothing here); then every transaction is checked, untimed.
    let net_minor: i128 = bodies
        .iter()
        .map(|body| match body {
            CommandBody::Deposit { amount, .. } => amount.mantissa,
            CommandBody::Withdraw { amount, .. } => -amount.mantissa,
            _ => 0,
        })
        .sum();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ledger_minor = match handle.query(Query::Account(no("bank1"))) {
            Ok(QueryAnswer::Account(Some(view))) => view.ledger_minor,
            other => anyhow::bail!("channel account: {other:?}"),
        };
        if ledger_minor == -net_minor {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not settled: ledger {ledger_minor}");
        std::thread::sleep(Duration::from_millis(1));
    }
    let settled_s = started.elapsed().as_secs_f64();
    for tx_id in &submitted {
        let state = match handle.query(Query::Tx(*tx_id)) {
            Ok(QueryAnswer::Tx(Some(view))) => view.state,
            _ => None,
        };
        anyhow::ensure!(state == Some(TxState::Settled), "{tx_id:?}: {state:?}");
    }
    run(vec![CommandBody::Cutover { business_date: 20_261_126 }])?;
    let report = netting_file(dir.path(), &no("bank1"), 20_261_126);
    let wait = Instant::now() + Duration::from_secs(30);
    while !report.exists() && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(5));
    }
    let text = std::fs::read_to_string(&report)?;
    let batches = text.lines().count().saturating_sub(2);
    let total = text.lines().last().unwrap_or_default().to_string();
    match handle.query(Query::CheckInvariants) {
        Ok(QueryAnswer::Invariants(Ok(()))) => {}
        other => anyhow::bail!("invariants: {other:?}"),
    }
    println!(
        "transactions={transactions} window_ms={window_ms} bank_latency_ms={latency_ms} \
         submitted_s={submitted_s:.2} settled_s={settled_s:.2} settled_per_s={:.0} \
         net_instructions={batches} items_per_instruction={:.1} bank_statement_lines={}",
        transactions as f64 / settled_s,
        transactions as f64 / batches.max(1) as f64,
        bank.statement().len(),
    );
    println!("netting total (items,deposits,withdrawals,gross,net): {total}");
    processor.shutdown();
    runtime.shutdown().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
