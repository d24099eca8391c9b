//! What the workers count: `Counters` shared with the progress line, a `Tally` per worker, and
//! the named worker threads that fill them.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use engine::ResultCode;
use hdrhistogram::Histogram;

use super::plan::Sent;

/// Latencies above this (µs) are recorded as this.
const LATENCY_US_MAX: u64 = 600_000_000;
/// Distinct error messages kept for the report.
const ERRORS_KEPT_MAX: usize = 8;

const _: () = assert!(ERRORS_KEPT_MAX >= 1);

/// Shared between the workers, the progress line and the main thread.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) commands_sent: AtomicU64,
    pub(super) commands_done: AtomicU64,
    pub(super) frames_sent: AtomicU64,
    pub(super) frames_done: AtomicU64,
    /// Set when sending stops (duration over, or a worker failed).
    pub(super) stop_sending: AtomicBool,
    /// Finished connections, kept open until the server's CPU has been read (its connection
    /// threads end when they close).
    pub(super) parked: Mutex<Vec<TcpStream>>,
}

/// What one worker measured.
pub(super) struct Tally {
    pub(super) latency_us: Histogram<u64>,
    /// Open loop: how late each frame left after its intended send time (the client's own
    /// lateness, plus any wait for a free in-flight slot).
    pub(super) send_lag_us: Histogram<u64>,
    pub(super) ok: u64,
    pub(super) failed: BTreeMap<&'static str, u64>,
    pub(super) refused_commands: u64,
    pub(super) errors: Vec<String>,
    pub(super) frames: u64,
    pub(super) cpu: Duration,
    pub(super) first_send: Option<Instant>,
    pub(super) last_reply: Option<Instant>,
}

impl Tally {
    pub(super) fn new() -> Tally {
        Tally {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("valid histogram bounds"),
            send_lag_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("valid histogram bounds"),
            ok: 0,
            failed: BTreeMap::new(),
            refused_commands: 0,
            errors: Vec::new(),
            frames: 0,
            cpu: Duration::ZERO,
            first_send: None,
            last_reply: None,
        }
    }

    pub(super) fn sent(&mut self, start: Instant) {
        let lag_us = start.elapsed().as_micros() as u64;
        self.send_lag_us.saturating_record(lag_us);
        if self.first_send.is_none_or(|first| start < first) {
            self.first_send = Some(start);
        }
    }

    pub(super) fn answered(&mut self, sent: &Sent, now: Instant, counters: &Counters) {
        let latency_us = now.saturating_duration_since(sent.start).as_micros() as u64;
        self.latency_us.saturating_record(latency_us.max(1));
        self.frames += 1;
        self.last_reply = Some(now);
        counters.commands_done.fetch_add(sent.len, Ordering::Relaxed);
        counters.frames_done.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn outcome(&mut self, result: ResultCode) {
        if result == ResultCode::Ok {
            self.ok += 1;
        } else {
            *self.failed.entry(result.name()).or_insert(0) += 1;
        }
    }

    pub(super) fn error(&mut self, message: String) {
        if self.errors.len() < ERRORS_KEPT_MAX && !self.errors.contains(&message) {
            self.errors.push(message);
        }
    }

    pub(super) fn merge(&mut self, other: Tally) -> Result<()> {
        self.latency_us.add(&other.latency_us).context("merge histograms")?;
        self.send_lag_us.add(&other.send_lag_us).context("merge histograms")?;
        self.ok += other.ok;
        for (name, count) in other.failed {
            *self.failed.entry(name).or_insert(0) += count;
        }
        self.refused_commands += other.refused_commands;
        for error in other.errors {
            self.error(error);
        }
        self.frames += other.frames;
        self.cpu += other.cpu;
        self.first_send = match (self.first_send, other.first_send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_reply = self.last_reply.max(other.last_reply);
        Ok(())
    }
}

/// Runs each worker on its own thread named `{name_prefix}-{index}`; a worker that fails stops
/// the sending of all the others. Returns the workers' tallies merged, or the first failure.
pub(super) fn run_workers<F>(
    name_prefix: &str,
    workers: Vec<F>,
    counters: &Counters,
) -> Result<Tally>
where
    F: FnOnce() -> Result<Tally> + Send,
{
    let results: Vec<Result<Tally>> = std::thread::scope(|scope| {
        let workers: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(index, worker)| {
                std::thread::Builder::new().name(format!("{name_prefix}-{index}")).spawn_scoped(
                    scope,
                    move || {
                        let result = worker();
                        if result.is_err() {
                            counters.stop_sending.store(true, Ordering::Relaxed);
                        }
                        result
                    },
                )
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| match worker {
                Ok(worker) => worker.join().unwrap_or_else(|_| Err(anyhow!("a worker panicked"))),
                Err(error) => Err(anyhow!("spawn a worker: {error}")),
            })
            .collect()
    });
    let mut total = Tally::new();
    for result in results {
        total.merge(result?)?;
    }
    Ok(total)
}
