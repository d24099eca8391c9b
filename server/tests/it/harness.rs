//! Starting, stopping and killing the real `ledgerd`, and connecting to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::AccountNo;
use protocol::auth::{ClientCredentials, Secret};
use protocol::client::{Client, ClientOptions};

pub fn key(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid key")
}

/// The three clients every test server knows.
const CREDENTIALS: &str = "\
admin admin admin-secret-0123456789abcdef
writer transact writer-secret-0123456789abcdef
reader read reader-secret-0123456789abcdef
";

pub fn credentials(client_id: &str) -> (String, Secret) {
    let line = CREDENTIALS
        .lines()
        .find(|line| line.starts_with(&format!("{client_id} ")))
        .expect("known client");
    let secret = line.rsplit(' ').next().expect("secret");
    (client_id.to_string(), Secret::new(secret.as_bytes()).expect("valid secret"))
}

pub fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout_ms: 10_000,
        request_timeout_ms: 20_000,
        in_flight_max: 64,
        tls: None,
    }
}

pub fn client(server: &Ledgerd, client_id: &str) -> Client {
    let (id, secret) = credentials(client_id);
    let credentials = ClientCredentials::new(&id, secret).expect("credentials");
    Client::connect(server.addr, &credentials, options()).expect("connect to ledgerd")
}

pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "condition not reached within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `ledgerd` and its temporary data directory.
pub struct Ledgerd {
    child: Option<Child>,
    pub addr: SocketAddr,
    metrics_addr: SocketAddr,
    dir: Arc<tempfile::TempDir>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Ledgerd {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A new ledger with the test credentials file.
    pub fn start_fresh(extra: &[&str]) -> Ledgerd {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let path = data.join("credentials");
        std::fs::write(&path, CREDENTIALS).expect("write credentials");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        Ledgerd::spawn(dir, extra)
    }

    /// A new ledger without a credentials file (ledgerd creates one).
    pub fn start_fresh_without_credentials() -> Ledgerd {
        Ledgerd::spawn(Arc::new(tempfile::tempdir().expect("temp dir")), &[])
    }

    fn spawn(dir: Arc<tempfile::TempDir>, extra: &[&str]) -> Ledgerd {
        let mut child = ledgerd_command(&dir, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ledgerd");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let (lines, tx) = (lines.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().expect("lock").push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let (addr, metrics_addr) = wait_for_addresses(&rx, &lines);
        Ledgerd { child: Some(child), addr, metrics_addr, dir, lines }
    }

    /// Starts a new process on the same data directory (after `kill9` or `stop`).
    pub fn restart(previous: Ledgerd) -> Ledgerd {
        let dir = previous.dir.clone();
        drop(previous);
        Ledgerd::spawn(dir, &[])
    }

    /// Starts a new process on the same data directory with `extra` flags (after `kill9`).
    pub fn restart_with(previous: Ledgerd, extra: &[&str]) -> Ledgerd {
        let dir = previous.dir.clone();
        drop(previous);
        Ledgerd::spawn(dir, extra)
    }

    /// Runs `ledgerd` on the same data directory with `extra` flags, expecting it to fail
    /// before it serves: its exit status and output. The returned handle (no process) keeps
    /// the data directory for a restart.
    pub fn restart_failing(previous: Ledgerd, extra: &[&str]) -> (Ledgerd, ExitStatus, String) {
        let (dir, addr, metrics_addr) =
            (previous.dir.clone(), previous.addr, previous.metrics_addr);
        drop(previous);
        let output = Command::new(env!("CARGO_BIN_EXE_ledgerd"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--pin-core",
                "none",
            ])
            .args(extra)
            .output()
            .expect("run ledgerd");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines = Arc::new(Mutex::new(text.lines().map(String::from).collect()));
        (Ledgerd { child: None, addr, metrics_addr, dir, lines }, output.status, text)
    }

    /// Restarts the server that `sigterm` stopped.
    pub fn restart_stopped() -> Ledgerd {
        let dir = LAST_STOPPED.lock().expect("lock").take().expect("a stopped server");
        Ledgerd::spawn(dir, &[])
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to the running process.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as i32, signal) };
    }

    /// Waits up to `timeout` for the process to exit; its status, if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM without waiting for the exit.
    pub fn send_sigterm(&self) {
        let child = self.child.as_ref().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }

    /// SIGTERM, then wait for the exit; returns the status and everything it printed.
    pub fn sigterm(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().expect("wait");
        std::thread::sleep(Duration::from_millis(50)); // let the output threads finish
        *LAST_STOPPED.lock().expect("lock") = Some(self.dir.clone());
        (status, self.output())
    }

    /// SIGTERM and wait (for restarts).
    pub fn stop(self) -> Ledgerd {
        let dir = self.dir.clone();
        let (lines, addr, metrics_addr) = (self.lines.clone(), self.addr, self.metrics_addr);
        let (status, output) = self.sigterm();
        assert!(status.success(), "{output}");
        LAST_STOPPED.lock().expect("lock").take();
        Ledgerd { child: None, addr, metrics_addr, dir, lines }
    }

    pub fn output(&self) -> String {
        self.lines.lock().expect("lock").join("\n")
    }

    /// The state hash printed by the last recovery.
    pub fn state_hash(&self) -> String {
        let output = self.output();
        let line = output
            .lines()
            .rev()
            .find(|line| line.starts_with("recovered "))
            .expect("a recovery line");
        let at = line.find("state_hash ").expect("state_hash in the recovery line")
            + "state_hash ".len();
        line[at..at + 32].to_string()
    }

    /// The server process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("a number")
    }

    /// The Prometheus text, or `None` if the endpoint does not answer (the process died).
    pub fn try_metrics(&self) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.metrics_addr).ok()?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// The Prometheus text.
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.metrics_addr).expect("metrics");
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("response");
        text
    }
}

/// `ledgerd` on `dir`'s data directory, on ports the kernel picks, with `extra` flags.
fn ledgerd_command(dir: &tempfile::TempDir, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledgerd"));
    command
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--pin-core", "none"])
        .args(extra);
    command
}

static LAST_STOPPED: Mutex<Option<Arc<tempfile::TempDir>>> = Mutex::new(None);

impl Drop for Ledgerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for_addresses(
    rx: &Receiver<String>,
    lines: &Mutex<Vec<String>>,
) -> (SocketAddr, SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut addr, mut metrics) = (None, None);
    while addr.is_none() || metrics.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("ledgerd did not start:\n{}", lines.lock().expect("lock").join("\n"));
        };
        if let Some(rest) = line.strip_prefix("listening on ") {
            addr = Some(rest.trim().parse().expect("address"));
        }
        if let Some(rest) = line.strip_prefix("metrics on http://") {
            metrics = Some(rest.trim_end_matches("/metrics").parse().expect("metrics address"));
        }
    }
    (addr.expect("address"), metrics.expect("metrics address"))
}
