//! What a run prints: the progress line on stderr while it runs, then the table and the one
//! machine-readable line (`workload=... tps=... p99_us=...`, parsed by `pg-compare.sh`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use runtime::RuntimeStats;

use super::plan::Plan;
use super::tally::{Counters, Tally};
use super::verify::Verified;

/// Prints one progress line per second on stderr until `done` is set.
pub(super) fn progress(counters: &Counters, done: &AtomicBool) {
    let started = Instant::now();
    let mut last = (started, 0u64);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        if now.duration_since(last.0) < Duration::from_secs(1) {
            continue;
        }
        let commands = counters.commands_done.load(Ordering::Relaxed);
        let rate = (commands - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        let in_flight = counters.frames_sent.load(Ordering::Relaxed)
            - counters
                .frames_done
                .load(Ordering::Relaxed)
                .min(counters.frames_sent.load(Ordering::Relaxed));
        eprintln!(
            "ledger-bench: {:5.1} s  {:>12} transfers/s  {:>12} done  {:>6} frames in flight",
            now.duration_since(started).as_secs_f64(),
            group(rate as u64),
            group(commands),
            in_flight
        );
        last = (now, commands);
    }
}

/// `1234567` as `1 234 567`.
pub(super) fn group(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

pub(super) struct Report<'a> {
    pub(super) plan: &'a Plan,
    pub(super) target: String,
    pub(super) sync: &'a str,
    pub(super) tally: &'a Tally,
    pub(super) sent: u64,
    pub(super) seconds: f64,
    pub(super) client_cpu: Duration,
    pub(super) process_cpu: Duration,
    pub(super) server_threads: Option<Vec<(String, Duration)>>,
    pub(super) machine: Option<(Duration, Duration)>,
    pub(super) runtime: Option<(RuntimeStats, RuntimeStats)>,
    pub(super) verified: &'a Verified,
}

impl Report<'_> {
    /// Prints the table, then the machine-readable line.
    pub(super) fn print(&self) {
        self.print_throughput_and_latency();
        self.print_cpu_and_verification();
        println!("{}", self.machine_line());
    }

    /// What was sent and answered, how fast, and the latency distribution.
    fn print_throughput_and_latency(&self) {
        let plan = self.plan;
        let latency = &self.tally.latency_us;
        let loop_kind = match plan.rate {
            Some(rate) => format!(
                "open loop at {} transfers/s (latency from the intended send time)",
                group(rate as u64)
            ),
            None => "closed loop (latency from the send time)".to_string(),
        };
        let tps = self.tally.ok as f64 / self.seconds.max(1e-9);
        println!();
        println!(
            "ledger-bench: {} over {} accounts, {}, sync {}",
            plan.workload.name(),
            plan.accounts.keys().len(),
            self.target,
            self.sync
        );
        println!(
            "  {} connections x {} frames in flight x {} transfers per frame, {loop_kind}",
            plan.connections, plan.in_flight, plan.batch_len
        );
        let failed: u64 = self.tally.failed.values().sum();
        println!("  {:<22} {:>14}", "transfers sent", group(self.sent));
        println!(
            "  {:<22} {:>14}  (failed {failed}, refused {})",
            "transfers ok",
            group(self.tally.ok),
            self.tally.refused_commands
        );
        println!("  {:<22} {:>14}", "frames", group(self.tally.frames));
        println!("  {:<22} {:>14.3}", "seconds", self.seconds);
        println!("  {:<22} {:>14}", "transfers/s", group(tps as u64));
        println!("  latency per frame (= batch latency), µs:");
        println!(
            "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
        );
        println!(
            "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10.0}",
            latency.value_at_quantile(0.50),
            latency.value_at_quantile(0.90),
            latency.value_at_quantile(0.99),
            latency.value_at_quantile(0.999),
            latency.value_at_quantile(0.9999),
            latency.max(),
            latency.mean()
        );
        if plan.rate.is_some() {
            let lag = &self.tally.send_lag_us;
            println!(
                "  client send lag (intended -> sent), µs: p50 {} p99 {} p99.9 {} max {} \
                 (includes waits for a free in-flight slot)",
                lag.value_at_quantile(0.50),
                lag.value_at_quantile(0.99),
                lag.value_at_quantile(0.999),
                lag.max()
            );
        }
    }

    /// Where the CPU went, what failed, and what verification found.
    fn print_cpu_and_verification(&self) {
        let plan = self.plan;
        println!(
            "  client cpu: {:.2} s = {:.0} % of wall (this process in all: {:.0} %; 100 % = one core)",
            self.client_cpu.as_secs_f64(),
            self.cpu_pct(self.client_cpu),
            self.cpu_pct(self.process_cpu)
        );
        if let Some(threads) = &self.server_threads {
            let total: Duration = threads.iter().map(|(_, time)| *time).sum();
            let top: Vec<String> = threads
                .iter()
                .take(6)
                .map(|(name, time)| format!("{name} {:.0} %", self.cpu_pct(*time)))
                .collect();
            println!(
                "  server cpu: {:.0} % of wall; by thread: {}",
                self.cpu_pct(total),
                top.join(", ")
            );
        }
        if let Some(busy_pct) = self.machine_busy_pct() {
            let ours = self.client_cpu + self.server_cpu().unwrap_or(Duration::ZERO);
            let others =
                if self.server_cpu().is_some() { "others" } else { "others and the server" };
            println!(
                "  machine: {busy_pct:.0} % busy of {:.0} % ({:.0} % by {others})",
                100.0 * self.cores(),
                (busy_pct - self.cpu_pct(ours)).max(0.0)
            );
        }
        if let Some((before, after)) = &self.runtime {
            let flushes = after.flushes - before.flushes;
            let commands = after.commands - before.commands;
            println!(
                "  runtime: {} flushes, {:.1} commands per flush, {} pipelined",
                group(flushes),
                commands as f64 / flushes.max(1) as f64,
                group(after.pipelined_flushes - before.pipelined_flushes)
            );
        }
        for (name, count) in &self.tally.failed {
            println!("  FAILED: {count} x {name}");
        }
        for error in &self.tally.errors {
            println!("  ERROR: {error}");
        }
        let verified = self.verified;
        println!(
            "  verify: {} accounts + funding; sum of available+frozen {} (funding {} of {}); ok {} of {} expected: {}",
            plan.accounts.keys().len(),
            verified.sum_minor,
            verified.funding_minor.map_or("missing".into(), |minor| minor.to_string()),
            verified.funding_expected_minor,
            verified.ok,
            verified.ok_expected,
            if verified.passed() { "PASSED" } else { "FAILED" }
        );
    }

    pub(super) fn cpu_pct(&self, time: Duration) -> f64 {
        100.0 * time.as_secs_f64() / self.seconds.max(1e-9)
    }

    pub(super) fn server_cpu(&self) -> Option<Duration> {
        self.server_threads.as_ref().map(|threads| threads.iter().map(|(_, time)| *time).sum())
    }

    pub(super) fn cores(&self) -> f64 {
        std::thread::available_parallelism().map_or(1.0, |cores| cores.get() as f64)
    }

    /// How busy the whole machine was while the run was timed, in % of one core.
    pub(super) fn machine_busy_pct(&self) -> Option<f64> {
        let (busy, total) = self.machine?;
        (!total.is_zero()).then(|| 100.0 * self.cores() * busy.as_secs_f64() / total.as_secs_f64())
    }

    pub(super) fn machine_line(&self) -> String {
        let plan = self.plan;
        let latency = &self.tally.latency_us;
        let server_pct =
            self.server_cpu().map_or("na".into(), |time| format!("{:.0}", self.cpu_pct(time)));
        let machine_pct =
            self.machine_busy_pct().map_or("na".into(), |busy_pct| format!("{busy_pct:.0}"));
        format!(
            "workload={} target={} sync={} accounts={} connections={} batch={} in_flight={} rate={} \
             transfers={} ok={} seconds={:.3} tps={:.0} p50_us={} p99_us={} p999_us={} max_us={} \
             latency=frame client_cpu_s={:.2} client_cpu_pct={:.0} server_cpu_pct={} \
             send_lag_p99_us={} machine_cpu_pct={} cores={} conserved={} verified={} seed={}",
            plan.workload.name(),
            self.target.split_whitespace().next().unwrap_or("?"),
            self.sync,
            plan.accounts.keys().len(),
            plan.connections,
            plan.batch_len,
            plan.in_flight,
            plan.rate.map_or("closed".into(), |rate| format!("{rate:.0}")),
            self.sent,
            self.tally.ok,
            self.seconds,
            self.tally.ok as f64 / self.seconds.max(1e-9),
            latency.value_at_quantile(0.50),
            latency.value_at_quantile(0.99),
            latency.value_at_quantile(0.999),
            latency.max(),
            self.client_cpu.as_secs_f64(),
            self.cpu_pct(self.client_cpu),
            server_pct,
            self.tally.send_lag_us.value_at_quantile(0.99),
            machine_pct,
            self.cores(),
            if self.verified.conserved() { "yes" } else { "NO" },
            if self.verified.passed() { "ok" } else { "FAILED" },
            plan.seed
        )
    }
}
