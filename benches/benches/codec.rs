//! The wire codec on the hot path of every request: encoding a SUBMIT frame of N transfers
//! (what a client does per batch), decoding it (what the server does: header, CRC32C, every
//! command), and the same for its SUBMIT_REPLY (two balances per outcome). Throughput is in
//! commands per second.
//!
//! `cargo bench -p benches --bench codec`

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use benches::workload::{Generator, RunAccounts, Workload};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::{AccountId, BalanceView, CommandBody, ResultCode, TxId, TxState};
use protocol::wire::{decode_frame, encode_frame, encode_submit, Message, RequestId, WireOutcome};

const BATCH_LENS: [usize; 3] = [1, 64, 1024];

fn transfers(len: usize) -> Vec<(TxId, CommandBody)> {
    let accounts = RunAccounts::new(1, 100_000);
    let mut generator = Generator::new(Workload::Uniform, accounts.keys().clone(), None, 42);
    let mut commands = Vec::with_capacity(len);
    generator.fill(len, |tx_id, body| commands.push((tx_id, body)));
    commands
}

fn outcomes(commands: &[(TxId, CommandBody)]) -> Vec<WireOutcome> {
    let balance = |id, available_minor| BalanceView {
        account: AccountId(id),
        available_minor,
        frozen_minor: 0,
        ledger_minor: available_minor,
    };
    commands
        .iter()
        .enumerate()
        .map(|(index, (tx_id, _))| {
            let balances = [balance(index as u32, 9_999), balance(index as u32 + 1, 10_001)];
            WireOutcome::new(*tx_id, ResultCode::Ok, false, Some(TxState::Settled), &balances)
                .expect("two balances fit")
        })
        .collect()
}

fn bench_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for len in BATCH_LENS {
        let commands = transfers(len);
        let request_id = RequestId(7);
        let mut submit = Vec::new();
        encode_submit(request_id, &commands, &mut submit).expect("valid commands");
        let reply_message = Message::SubmitReply(outcomes(&commands));
        let mut reply = Vec::new();
        encode_frame(request_id, &reply_message, &mut reply).expect("valid outcomes");
        group.throughput(Throughput::Elements(len as u64));

        let mut out = Vec::with_capacity(submit.len());
        group.bench_with_input(BenchmarkId::new("encode_submit", len), &commands, |b, commands| {
            b.iter(|| {
                out.clear();
                encode_submit(request_id, black_box(commands), &mut out).expect("valid");
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("decode_submit", len), &submit, |b, bytes| {
            b.iter(|| black_box(decode_frame(black_box(bytes)).expect("valid")))
        });
        group.bench_with_input(
            BenchmarkId::new("encode_submit_reply", len),
            &reply_message,
            |b, message| {
                b.iter(|| {
                    out.clear();
                    encode_frame(request_id, black_box(message), &mut out).expect("valid");
                    black_box(out.len())
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("decode_submit_reply", len), &reply, |b, bytes| {
            b.iter(|| black_box(decode_frame(black_box(bytes)).expect("valid")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
