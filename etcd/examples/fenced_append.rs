//! Measures fenced appends against a local 3-member cluster: the replication's write path.
//!
//! Each append is one transaction: when the epoch key still has the revision this writer saw
//! (the fence) and the entry's key does not exist yet, put the entry. Values of 64 KiB and
//! 1 MiB, with 1 and 8 in flight (`txn_submit`). Prints ops/s, latency p50/p99 (submit to
//! answer), and how many neighbours etcd applied out of submission order.
//!
//! `cargo run --release -p etcd --example fenced_append [OPS_64K] [OPS_1M]`

use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use etcd::local::LocalCluster;
use etcd::{Client, Cmp, Compare, Error, Op, Txn, TxnResult};

/// One finished append: its number, when it was submitted, its answer.
type Answer = (u64, Instant, Result<TxnResult, Error>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1).map(|argument| argument.parse::<u64>());
    let ops_64k = arguments.next().transpose()?.unwrap_or(500);
    let ops_1m = arguments.next().transpose()?.unwrap_or(150);
    let dir = tempfile::tempdir()?;
    let cluster = LocalCluster::start(3, dir.path())?;
    let client = Client::connect(&cluster.endpoints(), 1_000, 10_000)?;
    let epoch = client.put(b"bench/epoch", b"1", 0)?.revision;
    println!("fenced append: 3 etcd members on 127.0.0.1 (fsync on), one client, epoch fence + create-only key");
    let mut next_seq = 0;
    for (value_bytes, ops) in [(64 << 10, ops_64k), (1 << 20, ops_1m)] {
        for in_flight in [1, 8] {
            let run = Run { client: &client, epoch, value: vec![0x5a; value_bytes], in_flight };
            run.measure(&mut next_seq, ops / 10)?; // warm-up, not reported
            let cpu_before = cpu_seconds(&cluster);
            let report = run.measure(&mut next_seq, ops)?;
            let cpu_after = cpu_seconds(&cluster);
            println!(
                "  {:>7} B values, {in_flight} in flight: {ops:>4} ops in {:>5.2} s = {:>5.0} ops/s, {:>6.1} MiB/s; \
                 latency p50 {:>5.1} ms, p99 {:>5.1} ms; {} neighbours applied out of submission order",
                value_bytes,
                report.wall.as_secs_f64(),
                ops as f64 / report.wall.as_secs_f64(),
                (ops * value_bytes as u64) as f64 / report.wall.as_secs_f64() / (1 << 20) as f64,
                percentile_ms(&report.latencies_us, 50),
                percentile_ms(&report.latencies_us, 99),
                report.out_of_order,
            );
            let used: Vec<String> = cpu_before
                .iter()
                .zip(&cpu_after)
                .map(|(before, after)| format!("{:.2}", after - before))
                .collect();
            println!("      CPU seconds: client {}, members {}", used[0], used[1..].join(" / "));
            // Keep the database small between runs: drop the entries and their history.
            let (_, header) =
                client.delete_range(b"bench/log/", &etcd::prefix_end(b"bench/log/"))?;
            client.compact(header.revision, true)?;
        }
    }
    Ok(())
}

struct Run<'a> {
    client: &'a Client,
    epoch: i64,
    value: Vec<u8>,
    in_flight: usize,
}

struct Report {
    wall: Duration,
    latencies_us: Vec<u64>,
    out_of_order: usize,
}

impl Run<'_> {
    fn append(&self, seq: u64) -> Txn {
        let key = format!("bench/log/{seq:016}");
        Txn::new()
            .when(Compare::mod_revision("bench/epoch", Cmp::Equal, self.epoch))
            .when(Compare::create_revision(key.clone(), Cmp::Equal, 0))
            .then(Op::put(key, self.value.clone(), 0))
    }

    /// `ops` appends, at most `in_flight` at once.
    fn measure(&self, next_seq: &mut u64, ops: u64) -> Result<Report, Error> {
        // Never more answers pending than appends in flight: the callback's send never blocks.
        let (answers, answered) = mpsc::sync_channel::<Answer>(self.in_flight);
        let first = *next_seq;
        let mut revisions = vec![0_i64; ops as usize];
        let mut latencies_us = Vec::with_capacity(ops as usize);
        let mut pending = VecDeque::new();
        let start = Instant::now();
        let mut done = 0;
        while done < ops {
            while pending.len() < self.in_flight && *next_seq < first + ops {
                let seq = *next_seq;
                *next_seq += 1;
                let answers = answers.clone();
                let submitted = Instant::now();
                let callback = move |result| {
                    let _ = answers.send((seq, submitted, result));
                };
                self.client.txn_submit(self.append(seq), Box::new(callback));
                pending.push_back(seq);
            }
            let (seq, submitted, result) = answered.recv().expect("this function holds a sender");
            let result = result?;
            assert!(result.succeeded, "append {seq} refused: the fence moved");
            latencies_us.push(submitted.elapsed().as_micros() as u64);
            revisions[(seq - first) as usize] = result.header.revision;
            pending.retain(|&waiting| waiting != seq);
            done += 1;
        }
        let wall = start.elapsed();
        let out_of_order = revisions.windows(2).filter(|pair| pair[0] > pair[1]).count();
        latencies_us.sort_unstable();
        Ok(Report { wall, latencies_us, out_of_order })
    }
}

/// CPU seconds (user + system) used so far by this process, then by each member.
fn cpu_seconds(cluster: &LocalCluster) -> Vec<f64> {
    let mut pids = vec![std::process::id()];
    pids.extend((0..cluster.member_count()).filter_map(|index| cluster.pid(index)));
    pids.iter().map(|pid| process_cpu_seconds(*pid)).collect()
}

fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14 and stime 15.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks =
        |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn percentile_ms(sorted_us: &[u64], percentile: usize) -> f64 {
    let index = (sorted_us.len() * percentile / 100).min(sorted_us.len().saturating_sub(1));
    sorted_us.get(index).copied().unwrap_or(0) as f64 / 1_000.0
}
