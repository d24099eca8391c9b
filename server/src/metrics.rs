//! Counters for the Prometheus endpoint: commands by result code, connections, and the
//! runtime's own figures, rendered as the Prometheus text format on a separate loopback port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::ResultCode;
use runtime::Handle;

/// Gateway-side counters (lock-free; one relaxed add per outcome).
pub struct Metrics {
    /// Outcomes by `ResultCode`, indexed by its number.
    results: [AtomicU64; ResultCode::ALL.len()],
    /// Of those, duplicates (retries answered from memory).
    duplicates: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused because the maximum was reached.
    pub connections_refused: AtomicU64,
    /// Frames received.
    pub frames_in: AtomicU64,
    /// ERROR replies sent, by any cause.
    pub errors_out: AtomicU64,
    /// Replication's figures, on a node of a replica group.
    replication:
        std::sync::OnceLock<(Arc<replication::ReplicationMetrics>, Arc<replication::Role>)>,
}

// Written out because `Default` for arrays stops at 32 elements, and there are more codes.
impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            results: std::array::from_fn(|_| AtomicU64::new(0)),
            duplicates: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            errors_out: AtomicU64::new(0),
            replication: std::sync::OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Counts one outcome.
    pub fn outcome(&self, result: ResultCode, duplicate: bool) {
        self.results[result as usize].fetch_add(1, Ordering::Relaxed);
        if duplicate {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds replication's figures to the exposition (once; a later call changes nothing).
    pub fn set_replication(
        &self,
        metrics: Arc<replication::ReplicationMetrics>,
        role: Arc<replication::Role>,
    ) {
        let _ = self.replication.set((metrics, role));
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self, handle: &Handle) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP ledger_commands_total Commands answered, by result code.\n");
        out.push_str("# TYPE ledger_commands_total counter\n");
        for code in ResultCode::ALL {
            let count = self.results[code as usize].load(Ordering::Relaxed);
            out.push_str(&format!("ledger_commands_total{{result=\"{}\"}} {count}\n", code.name()));
        }
        let gauge = |out: &mut String, name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        };
        gauge(
            &mut out,
            "ledger_duplicates_total",
            "counter",
            "Commands answered as duplicates of an earlier tx_id.",
            self.duplicates.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ledger_connections",
            "gauge",
            "Client connections open now.",
            self.connections_open.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ledger_connections_total",
            "counter",
            "Client connections accepted since start.",
            self.connections_total.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ledger_connections_refused_total",
            "counter",
            "Connections refused at the connection limit.",
            self.connections_refused.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ledger_frames_received_total",
            "counter",
            "Request frames received.",
            self.frames_in.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ledger_error_replies_total",
            "counter",
            "ERROR replies sent.",
            self.errors_out.load(Ordering::Relaxed),
        );
        let stats = handle.stats();
        gauge(
            &mut out,
            "ledger_ring_depth",
            "gauge",
            "Requests waiting in the input ring.",
            stats.ring_depth,
        );
        gauge(
            &mut out,
            "ledger_durable_seq",
            "gauge",
            "Highest journal sequence number known durable.",
            stats.durable_seq,
        );
        gauge(
            &mut out,
            "ledger_journal_commands_total",
            "counter",
            "Commands journaled and applied since start.",
            stats.commands,
        );
        gauge(
            &mut out,
            "ledger_journal_flushes_total",
            "counter",
            "Journal group commits (flushes) since start.",
            stats.flushes,
        );
        out.push_str(
            "# HELP ledger_journal_flush_seconds Time spent making journal records durable.\n",
        );
        out.push_str("# TYPE ledger_journal_flush_seconds summary\n");
        out.push_str(&format!(
            "ledger_journal_flush_seconds_sum {:.9}\nledger_journal_flush_seconds_count {}\n",
            stats.flush_ns_total as f64 / 1e9,
            stats.flushes
        ));
        gauge(
            &mut out,
            "ledger_journal_flush_max_microseconds",
            "gauge",
            "Longest journal flush since start.",
            stats.flush_ns_max / 1_000,
        );
        if let Some((replication, role)) = self.replication.get() {
            replication.render(role, &mut out);
        }
        out
    }
}

/// Serves `GET /metrics` (any path, really) on `listener` until `stop` is set.
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>, handle: Handle, stop: Arc<AtomicBool>) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => answer(stream, &metrics, &handle),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn answer(mut stream: TcpStream, metrics: &Metrics, handle: &Handle) {
    // One short request per connection; a client that does not send it in time gets nothing.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    let mut request = [0u8; 1024];
    let Ok(len) = stream.read(&mut request) else { return };
    let head = String::from_utf8_lossy(&request[..len]);
    let (status, body) = if head.starts_with("GET ") {
        ("200 OK", metrics.render(handle))
    } else {
        ("405 Method Not Allowed", String::from("only GET\n"))
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}
