//! `Engine::apply` throughput: 1-cent transfers over 1 million funded accounts, uniform random
//! pairs and one hot credit account, each with a fresh random 128-bit tx_id (so every command
//! goes through the idempotency table, which evicts once its retention window is full).
//! Commands are generated outside the timed region: the figures are the engine's own.
//!
//! `cargo bench -p benches --bench engine_apply`

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::time::{Duration, Instant};

use benches::{account_keys, fill_transfers, setup_accounts, Pattern, Rng};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::{Effects, Engine, EngineConfig, ResultCode};

const ACCOUNTS: u32 = 1_000_000;
const CHUNK_LEN: usize = 8_192;

fn bench_apply(c: &mut Criterion) {
    let mut rng = Rng::new(42);
    let mut engine = Engine::new(EngineConfig::default());
    setup_accounts(&mut engine, ACCOUNTS, 100_000_000, &mut rng);
    let keys = account_keys(ACCOUNTS);
    let mut chunk = Vec::with_capacity(CHUNK_LEN);
    let mut fx = Effects::with_capacity(CHUNK_LEN);
    let mut timestamp_ns = 1_000_000u64;
    let mut group = c.benchmark_group("engine_apply");
    group.throughput(Throughput::Elements(CHUNK_LEN as u64));
    for pattern in [Pattern::Uniform, Pattern::Hot] {
        for batched in [true, false] {
            let how = if batched { "apply_batch" } else { "apply" };
            let name = format!("{how}_transfer_{pattern:?}_1M_accounts").to_lowercase();
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        fill_transfers(
                            &mut chunk,
                            CHUNK_LEN,
                            &keys,
                            pattern,
                            &mut rng,
                            &mut timestamp_ns,
                        );
                        fx.clear();
                        let start = Instant::now();
                        if batched {
                            engine.apply_batch(&chunk, &mut fx, |_, outcome| {
                                debug_assert_eq!(outcome.result, ResultCode::Ok);
                                std::hint::black_box(outcome);
                            });
                        } else {
                            for command in &chunk {
                                std::hint::black_box(engine.apply(command, &mut fx));
                            }
                        }
                        elapsed += start.elapsed();
                    }
                    elapsed
                })
            });
        }
    }
    group.finish();
    engine.check_invariants().expect("benchmark kept the invariants");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(8));
    targets = bench_apply
}
criterion_main!(benches);
