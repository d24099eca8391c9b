//! Replication's figures for the Prometheus endpoint: role, epoch, the log position, append
//! latency (a histogram), failovers. Lock-free: relaxed atomic adds, one per append.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::role::{Role, RoleState};

/// Upper bounds of the append latency histogram's buckets, in microseconds.
pub const APPEND_BUCKETS_US: [u64; 12] = [
    500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 1_000_000, 4_000_000,
];

/// Counters of the replication stage and the replica thread.
#[derive(Debug, Default)]
pub struct ReplicationMetrics {
    appends: AtomicU64,
    append_bytes: AtomicU64,
    append_us_sum: AtomicU64,
    /// Appends at or below each bucket's bound (not cumulative; summed when rendered).
    append_buckets: [AtomicU64; APPEND_BUCKETS_US.len()],
    entries_applied: AtomicU64,
    /// The oldest log index kept by this node's last trim (0: it never trimmed).
    trimmed_below: AtomicU64,
    trimmed_entries: AtomicU64,
    /// As standby, at its last report: records between the log head and what it applied, and
    /// for how long it has been behind (0 when caught up).
    lag_records: AtomicU64,
    lag_ms: AtomicU64,
}

impl ReplicationMetrics {
    pub(crate) fn record_append(&self, took: Duration, len_bytes: usize) {
        let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.append_bytes.fetch_add(len_bytes as u64, Ordering::Relaxed);
        self.append_us_sum.fetch_add(took_us, Ordering::Relaxed);
        if let Some(bucket) = APPEND_BUCKETS_US.iter().position(|&bound| took_us <= bound) {
            self.append_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_trim(&self, below_index: u64, entries: u64) {
        self.trimmed_below.fetch_max(below_index, Ordering::Relaxed);
        self.trimmed_entries.fetch_add(entries, Ordering::Relaxed);
    }

    pub(crate) fn record_lag(&self, records: u64, behind_ms: u64) {
        self.lag_records.store(records, Ordering::Relaxed);
        self.lag_ms.store(behind_ms, Ordering::Relaxed);
    }

    pub(crate) fn record_applied(&self) {
        self.entries_applied.fetch_add(1, Ordering::Relaxed);
    }

    /// Entries appended since start.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition, with the role's figures.
    pub fn render(&self, role: &Role, out: &mut String) {
        let state = role.state();
        let (index, seq) = role.log_position();
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
        };
        let _ = writeln!(
            out,
            "# HELP ledger_replication_role This node's role (1 for the current one)."
        );
        let _ = writeln!(out, "# TYPE ledger_replication_role gauge");
        for candidate in
            [RoleState::Starting, RoleState::Standby, RoleState::Primary, RoleState::Stopped]
        {
            let on = u64::from(candidate == state);
            let _ = writeln!(out, "ledger_replication_role{{role=\"{}\"}} {on}", candidate.name());
        }
        gauge(
            out,
            "ledger_replication_epoch",
            "The epoch this node last saw (its own as primary).",
            role.epoch(),
        );
        gauge(
            out,
            "ledger_replication_log_index",
            "The last log entry applied or appended.",
            index,
        );
        gauge(
            out,
            "ledger_replication_log_seq",
            "The last seq applied from or appended to the log.",
            seq,
        );
        gauge(
            out,
            "ledger_replication_promotions",
            "Times this node became the primary.",
            role.promotions(),
        );
        gauge(
            out,
            "ledger_replication_lag_records",
            "As standby: records between the log head (read every 500 ms) and what it applied.",
            self.lag_records.load(Ordering::Relaxed),
        );
        let lag_s = self.lag_ms.load(Ordering::Relaxed) as f64 / 1e3;
        let _ = write!(
            out,
            "# HELP ledger_replication_lag_seconds As standby: how long it has been behind the log head \
             (0 when caught up at its last report).\n# TYPE ledger_replication_lag_seconds gauge\n\
             ledger_replication_lag_seconds {lag_s}\n"
        );
        gauge(
            out,
            "ledger_replication_trimmed_below_index",
            "As primary: the log's entries below this index were deleted from etcd (0: none yet).",
            self.trimmed_below.load(Ordering::Relaxed),
        );
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
        };
        counter(
            out,
            "ledger_replication_entries_applied_total",
            "Log entries a standby applied.",
            self.entries_applied.load(Ordering::Relaxed),
        );
        counter(
            out,
            "ledger_replication_trimmed_entries_total",
            "Log entries this node deleted from etcd as primary.",
            self.trimmed_entries.load(Ordering::Relaxed),
        );
        counter(
            out,
            "ledger_replication_append_bytes_total",
            "Bytes of entries appended.",
            self.append_bytes.load(Ordering::Relaxed),
        );
        let name = "ledger_replication_append_seconds";
        let _ = writeln!(out, "# HELP {name} Time from sending an append to its commit in etcd.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in APPEND_BUCKETS_US.iter().zip(&self.append_buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", *bound as f64 / 1e6);
        }
        let count = self.appends.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum_s = self.append_us_sum.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum_s}\n{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_counts_every_append() {
        let metrics = ReplicationMetrics::default();
        metrics.record_append(Duration::from_micros(300), 10);
        metrics.record_append(Duration::from_millis(3), 10);
        metrics.record_append(Duration::from_secs(9), 10);
        let mut out = String::new();
        metrics.render(&Role::default(), &mut out);
        assert!(
            out.contains("ledger_replication_append_seconds_bucket{le=\"0.0005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("ledger_replication_append_seconds_bucket{le=\"0.004\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("ledger_replication_append_seconds_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("ledger_replication_role{role=\"starting\"} 1\n"), "{out}");
        assert!(out.contains("ledger_replication_append_bytes_total 30\n"), "{out}");
    }
}
