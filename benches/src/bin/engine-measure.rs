//! Measures the engine in process: memory per account and per remembered tx_id (RSS), and
//! apply throughput (a quick look; criterion's `engine_apply` is the reference figure).
//!
//! `cargo run --release -p benches --bin engine-measure -- ACCOUNTS TRANSFERS [uniform|hot] [RETAINED]`
//!
//! RETAINED (the engine's `tx_retained`) defaults to TRANSFERS, so every transfer's tx_id stays
//! remembered and the growth of RSS over the transfer phase is the cost per remembered tx_id.

use std::time::Instant;

use benches::{account_keys, fill_transfers, rss_bytes, setup_accounts, Pattern, Rng};
use engine::{Effects, Engine, EngineConfig, ResultCode};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |index: usize, default: u64| -> u64 {
        args.get(index).map_or(default, |text| text.parse().expect("numeric argument"))
    };
    let accounts = arg(1, 1_000_000) as u32;
    let transfers = arg(2, 10_000_000);
    let pattern = match args.get(3).map(String::as_str) {
        Some("hot") => Pattern::Hot,
        _ => Pattern::Uniform,
    };
    let retained = arg(4, transfers).clamp(1, 1 << 30) as u32;
    let rss_start = rss_bytes().unwrap_or(0);
    let mut rng = Rng::new(7);
    let mut engine = Engine::new(EngineConfig { tx_retained: retained, ..EngineConfig::default() });
    let rss_empty = rss_bytes().unwrap_or(0);
    let started = Instant::now();
    setup_accounts(&mut engine, accounts, 100_000_000, &mut rng);
    let setup_s = started.elapsed().as_secs_f64();
    let rss_accounts = rss_bytes().unwrap_or(0);
    let (remembered_setup, _) = engine.tx_counts();
    // Setup remembered 4 tx_ids per account (open, deposit, settle begin and confirm).
    let setup_txs = (4 * accounts as u64 + 1).min(retained as u64);
    println!(
        "accounts={accounts} setup_s={setup_s:.2} setup_rss_mib={:.0} setup_bytes_per_account={:.0} (tx_retained={retained}, {remembered_setup} setup txs remembered)",
        (rss_accounts - rss_empty) as f64 / (1 << 20) as f64,
        (rss_accounts - rss_empty) as f64 / accounts as f64,
    );
    let _ = setup_txs;

    const CHUNK_LEN: usize = 8_192;
    let keys = account_keys(accounts);
    let mut chunk = Vec::with_capacity(CHUNK_LEN);
    let mut fx = Effects::with_capacity(CHUNK_LEN);
    let mut done = 0u64;
    let mut timestamp_ns = 1_000_000u64;
    let mut applying = std::time::Duration::ZERO;
    let started = Instant::now();
    while done + CHUNK_LEN as u64 <= transfers {
        fill_transfers(&mut chunk, CHUNK_LEN, &keys, pattern, &mut rng, &mut timestamp_ns);
        fx.clear();
        let chunk_started = Instant::now();
        engine.apply_batch(&chunk, &mut fx, |_, outcome| {
            debug_assert_eq!(outcome.result, ResultCode::Ok);
            std::hint::black_box(outcome);
        });
        applying += chunk_started.elapsed();
        done += CHUNK_LEN as u64;
    }
    let wall_s = started.elapsed().as_secs_f64();
    let seconds = applying.as_secs_f64();
    let rss_end = rss_bytes().unwrap_or(0);
    let (remembered, pinned) = engine.tx_counts();
    let tx_growth = (remembered - remembered_setup) as u64;
    println!(
        "pattern={pattern:?} transfers={done} apply_seconds={seconds:.2} wall_seconds={wall_s:.2} tps={:.0} remembered_txs={remembered} pinned={pinned} rss_total_mib={:.0} rss_start_mib={:.0} bytes_per_tx_id={:.1}",
        done as f64 / seconds,
        rss_end as f64 / (1 << 20) as f64,
        rss_start as f64 / (1 << 20) as f64,
        (rss_end - rss_accounts) as f64 / tx_growth.max(1) as f64,
    );
    engine.check_invariants().expect("invariants hold");
}
