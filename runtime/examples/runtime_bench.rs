//! Measures the runtime (figures for BENCHMARKS.md). Not a test: numbers depend on the machine.
//!
//! ```text
//! runtime_bench append DIR RECORDS BATCH_LEN [SEGMENT_MIB]  journal append+flush, Fsync, None
//! runtime_bench rollover DIR RECORDS BATCH_LEN [SEGMENT_MIB] [fsync|none]
//!                                                     per-batch latency, rollover batches apart
//! runtime_bench e2e DIR PRODUCERS BATCH_LEN WINDOW SUBMISSIONS [fsync|none] [ACCOUNTS] [SEG_MIB]
//!                   [pipeline|inline]
//!                                                     submit -> durable reply, in process
//! runtime_bench replay DIR RECORDS                    recovery replay speed
//! runtime_bench ring PRODUCERS BATCH_LEN BATCHES      input ring: crossbeam vs Disruptor-style
//! ```
//! Build with `CARGO_TARGET_DIR=/work/target-runtime cargo build --release -p journal
//! --example runtime_bench`. DIR must be on the disk you care about; a temporary directory is
//! created inside it and removed afterwards.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use engine::{
    AccountKind, AccountLimits, AccountNo, Amount, Command, CommandBody, CurrencyCode, TxId,
};
use hdrhistogram::Histogram;
use journal::{Journal, JournalOptions, SyncMode};
use runtime::{Answer, NewCommand, Runtime, RuntimeOptions, RUNTIME_SEGMENT_LEN_BYTES_DEFAULT};

type BenchResult = Result<(), Box<dyn std::error::Error>>;

fn main() -> BenchResult {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |index: usize, default: &str| args.get(index).cloned().unwrap_or(default.into());
    let num = |index: usize, default: u64| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(arg(index, &default.to_string()).parse()?)
    };
    match arg(0, "").as_str() {
        "append" => {
            append(Path::new(&arg(1, "/tmp")), num(2, 2_000_000)?, num(3, 256)?, num(4, 256)?)
        }
        "e2e" => e2e(
            Path::new(&arg(1, "/tmp")),
            E2e {
                producers: num(2, 4)? as usize,
                batch_len: num(3, 1)? as usize,
                window: num(4, 64)? as u32,
                submissions: num(5, 50_000)?,
                sync_mode: if arg(6, "fsync") == "none" { SyncMode::None } else { SyncMode::Fsync },
                accounts: num(7, 100_000)? as u32,
                segment_mib: num(8, RUNTIME_SEGMENT_LEN_BYTES_DEFAULT >> 20)?,
                pipeline: arg(9, "pipeline") != "inline",
            },
        ),
        "rollover" => rollover(
            Path::new(&arg(1, "/tmp")),
            num(2, 4_000_000)?,
            num(3, 256)?,
            num(4, RUNTIME_SEGMENT_LEN_BYTES_DEFAULT >> 20)?,
            if arg(5, "fsync") == "none" { SyncMode::None } else { SyncMode::Fsync },
        ),
        "replay" => replay(Path::new(&arg(1, "/tmp")), num(2, 3_000_000)?),
        "ring" => ring(num(1, 4)? as usize, num(2, 1)? as usize, num(3, 200_000)?),
        _ => {
            eprintln!(
                "usage: runtime_bench append|rollover|e2e|replay|ring ... (see the file's docs)"
            );
            Ok(())
        }
    }
}

// ----- workload -----

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

fn account_nos(accounts: u32) -> Arc<Vec<AccountNo>> {
    let nos = (0..accounts).map(|index| {
        AccountNo::new(format!("acct-{index:010}").as_bytes()).expect("generated keys are valid")
    });
    Arc::new(nos.collect())
}

fn bank() -> AccountNo {
    AccountNo::new(b"bench-bank").expect("valid key")
}

/// Opens the bank channel and every account, and deposits 1 000 000.00 into each.
fn setup_commands(nos: &[AccountNo]) -> Vec<NewCommand> {
    let usd = CurrencyCode::new("USD").expect("valid code");
    let open = |account_no, kind| CommandBody::OpenAccount {
        account_no,
        user_id: 1,
        currency: usd,
        kind,
        limits: AccountLimits::default(),
    };
    let mut tx = 0u128;
    let mut next = |body| {
        tx += 1;
        NewCommand { tx_id: TxId(tx), body }
    };
    let mut commands = vec![next(open(bank(), AccountKind::System))];
    for &account_no in nos {
        commands.push(next(open(account_no, AccountKind::User)));
        let amount = Amount { mantissa: 100_000_000, scale: 2 };
        commands.push(next(CommandBody::Deposit { account_no, channel_no: bank(), amount }));
    }
    commands
}

fn transfer(rng: &mut Rng, nos: &[AccountNo], tx_id: TxId) -> NewCommand {
    let from = nos[rng.below(nos.len() as u64) as usize];
    let to = nos[rng.below(nos.len() as u64) as usize];
    let amount = Amount { mantissa: 1 + i128::from(rng.below(10_000)), scale: 2 };
    NewCommand { tx_id, body: CommandBody::Transfer { from, to, amount } }
}

fn bench_options(sync_mode: SyncMode) -> RuntimeOptions {
    RuntimeOptions { sync_mode, snapshot_every_records: None, ..RuntimeOptions::default() }
}

fn percentiles(histogram: &Histogram<u64>) -> String {
    format!(
        "p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max()
    )
}

// ----- journal append -----

/// 4 096 encoded transfers (77 bytes each), cycled through by the journal benchmarks.
fn transfer_payloads() -> Vec<Vec<u8>> {
    let nos = account_nos(100_000);
    let mut rng = Rng(7);
    let mut payloads = Vec::new();
    for index in 0..4096u64 {
        let new = transfer(&mut rng, &nos, TxId(u128::from(index) + 1));
        let command = Command { tx_id: new.tx_id, timestamp_ns: index, body: new.body };
        let mut encoded = Vec::new();
        engine::encode_command(&command, &mut encoded);
        payloads.push(encoded);
    }
    payloads
}

fn append(dir: &Path, records: u64, batch_len: u64, segment_mib: u64) -> BenchResult {
    let payloads = transfer_payloads();
    for sync_mode in [SyncMode::Fsync, SyncMode::None] {
        let temp = tempfile::tempdir_in(dir)?;
        let options = JournalOptions { sync_mode, segment_len_bytes: segment_mib << 20 };
        let (mut journal, _) = Journal::open(temp.path(), options)?;
        let mut flush_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let (mut bytes, started) = (0u64, Instant::now());
        for index in 0..records {
            let payload = &payloads[(index % 4096) as usize];
            journal.append(payload)?;
            bytes += payload.len() as u64;
            if (index + 1) % batch_len == 0 || index + 1 == records {
                let flush_started = Instant::now();
                journal.flush()?;
                flush_us.record(flush_started.elapsed().as_micros().max(1) as u64)?;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "append {sync_mode:?}: {records} records of {:.0} B avg, {batch_len} per flush: \
             {:.2} M records/s, {:.1} MB/s payload; flush {}",
            bytes as f64 / records as f64,
            records as f64 / secs / 1e6,
            bytes as f64 / secs / 1e6,
            percentiles(&flush_us)
        );
    }
    Ok(())
}

// ----- rollover stall -----

/// Batches of `batch_len` appends, each followed by one flush (group commit as the runtime does
/// it inline), timed one by one. A batch whose records start a new segment pays the rollover;
/// they are found by replaying the journal's space accounting (FORMAT.md: a record goes to a new
/// segment when it does not fit), so the figures need nothing from the journal's internals.
fn rollover(
    dir: &Path,
    records: u64,
    batch_len: u64,
    segment_mib: u64,
    sync_mode: SyncMode,
) -> BenchResult {
    let payloads = transfer_payloads();
    let segment_len_bytes = segment_mib << 20;
    let temp = tempfile::tempdir_in(dir)?;
    let options = JournalOptions { sync_mode, segment_len_bytes };
    let (mut journal, _) = Journal::open(temp.path(), options)?;
    let histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
    let (mut all_us, mut rollover_us, mut plain_us) = (histogram()?, histogram()?, histogram()?);
    let mut write_offset = journal::SEGMENT_HEADER_LEN_BYTES;
    let (mut index, started) = (0u64, Instant::now());
    while index < records {
        let batch_started = Instant::now();
        let mut rolled = false;
        let batch_end = records.min(index + batch_len);
        while index < batch_end {
            let payload = &payloads[(index % 4096) as usize];
            journal.append(payload)?;
            let record_len_bytes = (journal::RECORD_HEADER_LEN_BYTES + payload.len() as u64)
                .div_ceil(journal::RECORD_ALIGN_BYTES)
                * journal::RECORD_ALIGN_BYTES;
            if write_offset + record_len_bytes > segment_len_bytes {
                write_offset = journal::SEGMENT_HEADER_LEN_BYTES;
                rolled = true;
            }
            write_offset += record_len_bytes;
            index += 1;
        }
        journal.flush()?;
        let took_us = batch_started.elapsed().as_micros().max(1) as u64;
        all_us.record(took_us)?;
        if rolled {
            rollover_us.record(took_us)?;
        } else {
            plain_us.record(took_us)?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "rollover {sync_mode:?}: {records} records, {batch_len} per flush, {segment_mib} MiB \
         segments, {:.2} M records/s; batch (append + flush): all {}; {} batches with a \
         rollover: p50 {} µs, max {} µs; others: p99 {} µs, max {} µs",
        records as f64 / secs / 1e6,
        percentiles(&all_us),
        rollover_us.len(),
        rollover_us.value_at_quantile(0.5),
        rollover_us.max(),
        plain_us.value_at_quantile(0.99),
        plain_us.max(),
    );
    Ok(())
}

// ----- end to end -----

struct E2e {
    producers: usize,
    batch_len: usize,
    window: u32,
    submissions: u64,
    sync_mode: SyncMode,
    accounts: u32,
    segment_mib: u64,
    pipeline: bool,
}

fn e2e(dir: &Path, bench: E2e) -> BenchResult {
    let temp = tempfile::tempdir_in(dir)?;
    let options = RuntimeOptions {
        segment_len_bytes: bench.segment_mib << 20,
        pipeline_flushes: bench.pipeline,
        ..bench_options(bench.sync_mode)
    };
    let (runtime, _) = Runtime::start(temp.path(), options.clone())?;
    let handle = runtime.handle();
    let nos = account_nos(bench.accounts);
    for chunk in setup_commands(&nos).chunks(options.submission_len_max as usize) {
        handle.execute(chunk.to_vec())?;
    }
    let stats_before = runtime.stats();
    let started = Instant::now();
    let histograms: Vec<Histogram<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..bench.producers)
            .map(|producer_index| {
                let (producer, replies) = handle.producer(bench.window);
                let nos = nos.clone();
                let bench = &bench;
                scope.spawn(move || {
                    let mut rng = Rng(0x1234_5678 + producer_index as u64);
                    let mut next_tx = (producer_index as u128 + 1) << 64;
                    let mut latency_us =
                        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
                    let mut sent_at = vec![Instant::now(); bench.window as usize];
                    let (mut submitted, mut received) = (0u64, 0u64);
                    while received < bench.submissions {
                        while submitted < bench.submissions
                            && submitted - received < u64::from(bench.window)
                        {
                            let batch: Vec<NewCommand> = (0..bench.batch_len)
                                .map(|_| {
                                    next_tx += 1;
                                    transfer(&mut rng, &nos, TxId(next_tx))
                                })
                                .collect();
                            sent_at[(submitted % u64::from(bench.window)) as usize] =
                                Instant::now();
                            producer.submit(submitted, batch).expect("submit");
                            submitted += 1;
                        }
                        let reply = replies.recv().expect("a reply for every submission");
                        let at = sent_at[(reply.token % u64::from(bench.window)) as usize];
                        let Ok(Answer::Executed(_)) = reply.result else {
                            panic!("refused: {:?}", reply.result);
                        };
                        latency_us
                            .record(at.elapsed().as_micros().max(1) as u64)
                            .expect("in range");
                        received += 1;
                    }
                    latency_us
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().expect("producer")).collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for histogram in &histograms {
        latency_us.add(histogram)?;
    }
    let stats = runtime.stats();
    let commands = stats.commands - stats_before.commands;
    let flushes = stats.flushes - stats_before.flushes;
    let pipelined = stats.pipelined_flushes - stats_before.pipelined_flushes;
    println!(
        "e2e {:?} {} MiB segments, {}: {} producers x {} submissions of {} transfers (window {}), {} accounts: \
         {:.0} transfers/s, {:.0} submissions/s, {:.1} commands per flush \
         ({:.0}% of flushes pipelined); submit->durable reply {}",
        bench.sync_mode,
        bench.segment_mib,
        if bench.pipeline { "pipelined" } else { "inline syncs" },
        bench.producers,
        bench.submissions,
        bench.batch_len,
        bench.window,
        bench.accounts,
        commands as f64 / secs,
        (bench.producers as u64 * bench.submissions) as f64 / secs,
        commands as f64 / flushes.max(1) as f64,
        100.0 * pipelined as f64 / flushes.max(1) as f64,
        percentiles(&latency_us)
    );
    runtime.shutdown()?;
    Ok(())
}

// ----- recovery replay -----

fn replay(dir: &Path, records: u64) -> BenchResult {
    let temp = tempfile::tempdir_in(dir)?;
    let nos = account_nos(100_000);
    let started = Instant::now();
    {
        let options = JournalOptions { sync_mode: SyncMode::None, ..JournalOptions::default() };
        let (mut journal, _) = Journal::open(&journal::journal_dir(temp.path()), options)?;
        let mut encoded = Vec::new();
        let mut append = |new: NewCommand, seq: u64| -> BenchResult {
            let command = Command { tx_id: new.tx_id, timestamp_ns: seq, body: new.body };
            encoded.clear();
            engine::encode_command(&command, &mut encoded);
            journal.append(&encoded)?;
            Ok(())
        };
        let setup = setup_commands(&nos);
        let mut seq = 0;
        for new in setup.iter().copied() {
            seq += 1;
            append(new, seq)?;
        }
        let mut rng = Rng(99);
        while seq < records {
            seq += 1;
            append(transfer(&mut rng, &nos, TxId(u128::from(seq) << 32)), seq)?;
        }
        journal.flush()?;
    }
    println!("replay: wrote {records} records in {:.1} s", started.elapsed().as_secs_f64());
    let options = RuntimeOptions { pin_core: None, ..bench_options(SyncMode::Fsync) };
    let (runtime, report) = Runtime::start(temp.path(), options)?;
    println!(
        "replay: {} records in {:.3} s = {:.2} M records/s (warm page cache); \
         recovery total {:.3} s (incl. invariant check and state hash)",
        report.records_replayed,
        report.replay_elapsed.as_secs_f64(),
        report.replay_records_per_sec() / 1e6,
        report.elapsed.as_secs_f64()
    );
    runtime.shutdown()?;
    Ok(())
}

// ----- input ring: crossbeam-channel vs a Disruptor-style ring -----

fn ring(producers: usize, batch_len: usize, batches: u64) -> BenchResult {
    const CAPACITY: usize = 1024;
    let body = CommandBody::Unfreeze { hold: TxId(1) };
    let make = move |tx: u128| -> Vec<NewCommand> {
        (0..batch_len).map(|i| NewCommand { tx_id: TxId(tx + i as u128), body }).collect()
    };
    for round in 0..2 {
        // crossbeam-channel, bounded: what the runtime uses.
        let (tx, rx) = crossbeam_channel::bounded::<Vec<NewCommand>>(CAPACITY);
        let started = Instant::now();
        let received = std::thread::scope(|scope| {
            for producer in 0..producers {
                let tx = tx.clone();
                scope.spawn(move || {
                    for index in 0..batches {
                        let tx_id = (producer as u128) << 64 | u128::from(index);
                        tx.send(make(tx_id)).expect("consumer alive");
                    }
                });
            }
            drop(tx);
            let consumer = scope.spawn(move || {
                let mut commands = 0u64;
                while let Ok(batch) = rx.recv() {
                    commands += batch.len() as u64;
                    // Drain what is queued, as the writer does.
                    while let Ok(batch) = rx.try_recv() {
                        commands += batch.len() as u64;
                    }
                }
                commands
            });
            consumer.join().expect("consumer")
        });
        report_ring("crossbeam bounded", round, producers, batch_len, received, started);

        let ring = Arc::new(DisruptorRing::<Vec<NewCommand>>::new(CAPACITY));
        let started = Instant::now();
        let received = std::thread::scope(|scope| {
            let consumer = {
                let ring = ring.clone();
                scope.spawn(move || {
                    ring.register_consumer();
                    let expected = producers as u64 * batches;
                    let (mut taken, mut commands) = (0u64, 0u64);
                    while taken < expected {
                        ring.drain(|batch| {
                            taken += 1;
                            commands += batch.len() as u64;
                        });
                    }
                    commands
                })
            };
            while !ring.consumer_registered() {
                std::thread::yield_now();
            }
            for producer in 0..producers {
                let ring = ring.clone();
                scope.spawn(move || {
                    for index in 0..batches {
                        let tx_id = (producer as u128) << 64 | u128::from(index);
                        ring.push(make(tx_id));
                    }
                });
            }
            consumer.join().expect("consumer")
        });
        report_ring("Disruptor-style ring", round, producers, batch_len, received, started);
    }
    Ok(())
}

fn report_ring(
    name: &str,
    round: u32,
    producers: usize,
    batch_len: usize,
    commands: u64,
    started: Instant,
) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ring round {round}: {name:22} {producers} producers, batches of {batch_len}: \
         {:.2} M batches/s, {:.2} M commands/s",
        commands as f64 / batch_len as f64 / secs / 1e6,
        commands as f64 / secs / 1e6
    );
}

/// A multi-producer, single-consumer ring in the LMAX Disruptor style: producers claim a
/// sequence number with one `fetch_add`, wait for the slot to be free (the consumer's cursor
/// is more than a lap behind), write it and publish it by storing its sequence number; the
/// consumer reads every published slot in order and releases them with one cursor store per
/// drained batch. Waits spin briefly, then yield, then park (consumer) or sleep (producers).
struct DisruptorRing<T> {
    slots: Box<[RingSlot<T>]>,
    mask: u64,
    claimed: AtomicU64,
    consumed: AtomicU64,
    consumer_sleeping: AtomicBool,
    consumer: std::sync::OnceLock<Thread>,
}

struct RingSlot<T> {
    published: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: a slot's value is written only by the producer that claimed its sequence number
// (while the consumer is more than a lap behind) and read only by the single consumer after
// it observed the publication with Acquire ordering.
unsafe impl<T: Send> Sync for DisruptorRing<T> {}

impl<T> DisruptorRing<T> {
    fn new(capacity: usize) -> Self {
        assert!(capacity.is_power_of_two());
        let slots = (0..capacity)
            .map(|_| RingSlot {
                published: AtomicU64::new(u64::MAX),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        DisruptorRing {
            slots,
            mask: capacity as u64 - 1,
            claimed: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            consumer_sleeping: AtomicBool::new(false),
            consumer: std::sync::OnceLock::new(),
        }
    }

    fn register_consumer(&self) {
        let _ = self.consumer.set(std::thread::current());
    }

    fn consumer_registered(&self) -> bool {
        self.consumer.get().is_some()
    }

    fn push(&self, value: T) {
        let seq = self.claimed.fetch_add(1, Ordering::Relaxed);
        let mut spins = 0u32;
        while seq >= self.consumed.load(Ordering::Acquire) + self.slots.len() as u64 {
            backoff(&mut spins, || std::thread::sleep(Duration::from_micros(20)));
        }
        let slot = &self.slots[(seq & self.mask) as usize];
        // SAFETY: this producer alone claimed `seq`, and the consumer has released the slot's
        // previous lap (checked above), so nobody else touches the value now.
        unsafe { (*slot.value.get()).write(value) };
        slot.published.store(seq, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.consumer_sleeping.load(Ordering::SeqCst) {
            self.consumer_sleeping.store(false, Ordering::SeqCst);
            if let Some(consumer) = self.consumer.get() {
                consumer.unpark();
            }
        }
    }

    /// Hands every published value to `take`, in order; waits if there is none.
    fn drain(&self, mut take: impl FnMut(T)) {
        let mut next = self.consumed.load(Ordering::Relaxed);
        let start = next;
        let mut spins = 0u32;
        loop {
            let slot = &self.slots[(next & self.mask) as usize];
            if slot.published.load(Ordering::Acquire) == next {
                // SAFETY: the producer published `next` (Acquire above) and will not touch
                // the slot again until `consumed` passes it.
                take(unsafe { (*slot.value.get()).assume_init_read() });
                next += 1;
                continue;
            }
            if next > start {
                self.consumed.store(next, Ordering::Release);
                return;
            }
            backoff(&mut spins, || {
                self.consumer_sleeping.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if slot.published.load(Ordering::Acquire) != next {
                    std::thread::park_timeout(Duration::from_millis(1));
                }
                self.consumer_sleeping.store(false, Ordering::SeqCst);
            });
        }
    }
}

/// Spin a little, then yield, then block with `sleep`.
fn backoff(spins: &mut u32, sleep: impl FnOnce()) {
    *spins += 1;
    if *spins <= 64 {
        std::hint::spin_loop();
    } else if *spins <= 80 {
        std::thread::yield_now();
    } else {
        sleep();
    }
}
