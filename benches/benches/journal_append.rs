//! The journal's append path: `Journal::append` of N encoded transfer commands (~80 bytes
//! each, as the runtime writes them) followed by one `Journal::flush`, with `SyncMode::None`
//! (page cache only: the cost of framing, CRC32C and copying into the mapping) and
//! `SyncMode::Fsync` (plus one `msync` of the dirty range: the disk's flush latency, which
//! group commit amortises over N). Throughput is in records per second.
//!
//! `cargo bench -p benches --bench journal_append` (the journal lives in a temporary directory
//! under `$TMPDIR`: point it at the disk you care about).

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::time::Duration;

use benches::workload::{Generator, RunAccounts, Workload};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::Command;
use journal::{Journal, JournalOptions, SyncMode};
use runtime::RUNTIME_SEGMENT_LEN_BYTES_DEFAULT;

const BATCH_LENS: [usize; 4] = [1, 16, 256, 4096];
const PAYLOADS: usize = 4096;

fn payloads() -> Vec<Vec<u8>> {
    let accounts = RunAccounts::new(1, 100_000);
    let mut generator = Generator::new(Workload::Uniform, accounts.keys().clone(), None, 42);
    let mut payloads = Vec::with_capacity(PAYLOADS);
    let mut timestamp_ns = 1_700_000_000_000_000_000u64;
    generator.fill(PAYLOADS, |tx_id, body| {
        timestamp_ns += 1;
        let mut encoded = Vec::new();
        engine::encode_command(&Command { tx_id, timestamp_ns, body }, &mut encoded);
        payloads.push(encoded);
    });
    payloads
}

fn bench_append(c: &mut Criterion) {
    let payloads = payloads();
    let mut group = c.benchmark_group("journal_append");
    group.measurement_time(Duration::from_secs(5));
    for sync_mode in [SyncMode::None, SyncMode::Fsync] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options =
            JournalOptions { sync_mode, segment_len_bytes: RUNTIME_SEGMENT_LEN_BYTES_DEFAULT };
        let (mut journal, _) = Journal::open(dir.path(), options).expect("a new journal");
        let mode = match sync_mode {
            SyncMode::None => "none",
            SyncMode::Fsync => "fsync",
        };
        for len in BATCH_LENS {
            group.throughput(Throughput::Elements(len as u64));
            let mut next = 0usize;
            group.bench_function(BenchmarkId::new(format!("append_flush_{mode}"), len), |b| {
                b.iter(|| {
                    for _ in 0..len {
                        journal.append(&payloads[next % PAYLOADS]).expect("append");
                        next += 1;
                    }
                    journal.flush().expect("flush")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
