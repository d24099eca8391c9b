//! `Engine::apply` throughput: 1-cent transfers over 1 million funded accounts, uniform random
//! pairs and one hot credit account, each with a fresh random 128-bit tx_id (so every command
//! goes through the idempotency table, which evicts once its retention window is full).
//!
//! `cargo bench -p benches --bench engine_apply`

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::time::Instant;

use benches::{setup_accounts, transfer_pool, Pattern, Rng};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::{Effects, Engine, EngineConfig, ResultCode};

const ACCOUNTS: u32 = 1_000_000;
const POOL_LEN: usize = 1 << 20;
const CHUNK_LEN: usize = 8_192;
const _: () = assert!(POOL_LEN % CHUNK_LEN == 0);

fn bench_apply(c: &mut Criterion) {
    let mut rng = Rng::new(42);
    let mut engine = Engine::new(EngineConfig::default());
    setup_accounts(&mut engine, ACCOUNTS, 100_000_000, &mut rng);
    let mut group = c.benchmark_group("engine_apply");
    group.throughput(Throughput::Elements(CHUNK_LEN as u64));
    for pattern in [Pattern::Uniform, Pattern::Hot] {
        let mut pool = transfer_pool(ACCOUNTS, POOL_LEN, pattern, &mut rng);
        let mut fx = Effects::with_capacity(CHUNK_LEN);
        let mut cursor = 0usize;
        let mut timestamp_ns = 1_000_000u64;
        let name = format!("batch_transfer_{pattern:?}_1M_accounts").to_lowercase();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    fx.clear();
                    let chunk = &mut pool[cursor..cursor + CHUNK_LEN];
                    cursor = (cursor + CHUNK_LEN) & (POOL_LEN - 1);
                    for command in chunk.iter_mut() {
                        command.tx_id = rng.tx_id();
                        timestamp_ns += 1;
                        command.timestamp_ns = timestamp_ns;
                    }
                    engine.apply_batch(chunk, &mut fx, |_, outcome| {
                        debug_assert_eq!(outcome.result, ResultCode::Ok);
                        std::hint::black_box(outcome);
                    });
                }
                start.elapsed()
            })
        });
        let name = format!("transfer_{pattern:?}_1M_accounts").to_lowercase();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    fx.clear();
                    for _ in 0..CHUNK_LEN {
                        let command = &mut pool[cursor];
                        cursor = (cursor + 1) & (POOL_LEN - 1);
                        command.tx_id = rng.tx_id();
                        timestamp_ns += 1;
                        command.timestamp_ns = timestamp_ns;
                        let outcome = engine.apply(command, &mut fx);
                        debug_assert_eq!(outcome.result, ResultCode::Ok);
                        std::hint::black_box(outcome);
                    }
                }
                start.elapsed()
            })
        });
    }
    group.finish();
    engine.check_invariants().expect("benchmark kept the invariants");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_apply
}
criterion_main!(benches);
