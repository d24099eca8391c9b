//! The timed part of a run, whatever the target: CPU of this process, of the server's threads
//! and of the whole machine around the workers, and the progress line while they run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use anyhow::Result;
use runtime::RuntimeStats;

use super::report::progress;
use super::tally::{Counters, Tally};
use super::verify::Verified;
use crate::report::{machine_cpu, process_cpu, threads_cpu, threads_cpu_delta};

/// The timed part of a run.
pub(super) struct Timed {
    pub(super) tally: Tally,
    /// CPU of this whole process while it ran.
    pub(super) process_cpu: Duration,
    /// CPU per thread name of the server (`--server-pid`, or this process when embedded).
    pub(super) server_threads: Option<Vec<(String, Duration)>>,
    /// The whole machine's busy and total CPU time while it ran (`/proc/stat`).
    pub(super) machine: Option<(Duration, Duration)>,
}

/// What the target-specific part of a run hands back.
pub(super) struct Measured {
    pub(super) timed: Timed,
    pub(super) verified: Verified,
    pub(super) runtime: Option<(RuntimeStats, RuntimeStats)>,
}

/// Times the workers of a run and reads the CPU counters around them.
pub(super) struct Meter<'a> {
    pub(super) counters: &'a Counters,
    /// No progress line.
    pub(super) quiet: bool,
    /// The process whose threads are the server (`--server-pid`, or this one when embedded).
    pub(super) server_pid: Option<u32>,
    pub(super) setup_started: Instant,
}

impl Meter<'_> {
    /// Runs `body` (the workers) with the progress line beside it, and measures it.
    pub(super) fn timed(&self, body: impl FnOnce() -> Result<Tally>) -> Result<Timed> {
        eprintln!(
            "ledger-bench: setup took {:.1} s; running",
            self.setup_started.elapsed().as_secs_f64()
        );
        let threads_before = self.server_pid.and_then(threads_cpu);
        let machine_before = machine_cpu();
        let cpu_before = process_cpu();
        let done = AtomicBool::new(false);
        let tally = std::thread::scope(|scope| {
            if !self.quiet {
                scope.spawn(|| progress(self.counters, &done));
            }
            let result = body();
            done.store(true, Ordering::Relaxed);
            result
        })?;
        let process_cpu = process_cpu().saturating_sub(cpu_before);
        let machine = match (machine_before, machine_cpu()) {
            (Some((busy0, total0)), Some((busy1, total1))) => {
                Some((busy1.saturating_sub(busy0), total1.saturating_sub(total0)))
            }
            _ => None,
        };
        let server_threads = match (self.server_pid, &threads_before) {
            (Some(pid), Some(before)) => threads_cpu(pid).map(|after| {
                let mut delta = threads_cpu_delta(before, &after);
                // In process, the bench's own threads are the client, not the server.
                delta.retain(|(name, _)| {
                    !name.starts_with("bench-") && !name.starts_with("ledger-bench")
                });
                delta
            }),
            _ => None,
        };
        self.counters.parked.lock().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(Timed { tally, process_cpu, server_threads, machine })
    }
}
