//! Real local etcd clusters for tests: [`LocalCluster`] starts `etcd` processes on 127.0.0.1
//! with ports of their own, waits until every member answers and a leader exists, and lets a
//! test kill, stop, continue and restart members. Dropping it kills every member.
//!
//! Only std (processes, sockets, files; `kill -STOP`/`-CONT` through the `kill` command) and
//! this crate's own client, which asks the members for their status.
//!
//! Timings: `--heartbeat-interval 50 --election-timeout 500` by default, with `--pre-vote` (a
//! member that rejoins does not force an election). etcd's shortest lease is
//! ceil(1.5 × election timeout) in seconds (`minTTL` in etcd's server), so 1 s leases are
//! granted as asked here, where etcd's default 1 000 ms election timeout would raise them to
//! 2 s.
//!
//! Ports: every member gets a client and a peer port from the kernel (bind `127.0.0.1:0`),
//! never 2379/2380; a process-wide set keeps two clusters of one test binary from being handed
//! the same port, and a start that loses a port to another process anyway ("address already
//! in use" in a member's log) is retried with new ports.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::client::Client;
use crate::error::Error;
use crate::options::ClientOptions;
use crate::types::MemberStatus;

/// How a local cluster is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOptions {
    /// How many members (1 or more; 3 for failover tests).
    pub members: usize,
    /// `--quota-backend-bytes`: the database size at which etcd refuses writes.
    pub quota_backend_bytes: u64,
    /// `--heartbeat-interval`, in ms.
    pub heartbeat_ms: u64,
    /// `--election-timeout`, in ms (at least 5 heartbeats, etcd insists).
    pub election_ms: u64,
    /// `--experimental-watch-progress-notify-interval`, in ms: how often a watch asking for
    /// progress reports gets one.
    pub watch_progress_notify_interval_ms: u64,
    /// How long a start or restart may take before it fails.
    pub start_timeout_ms: u64,
}

impl LocalOptions {
    /// `members` members, a 2 GiB quota, 50 ms heartbeats, 500 ms election timeout, progress
    /// reports every second, 30 s to start.
    pub fn new(members: usize) -> LocalOptions {
        LocalOptions {
            members,
            quota_backend_bytes: 2 << 30,
            heartbeat_ms: 50,
            election_ms: 500,
            watch_progress_notify_interval_ms: 1_000,
            start_timeout_ms: 30_000,
        }
    }
}

/// What a member's process is doing, as far as the cluster has made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Started (or continued).
    Running,
    /// SIGSTOPped: alive, holding its ports, answering nothing.
    Stopped,
    /// SIGKILLed.
    Killed,
}

#[derive(Debug)]
struct LocalMember {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    state: MemberState,
    /// etcd's id of the member, learnt when it first answered.
    id: u64,
}

/// A running local etcd cluster. Member indexes are `0..member_count()`; a method given an
/// index outside that panics (a bug in the test).
#[derive(Debug)]
pub struct LocalCluster {
    dir: PathBuf,
    binary: PathBuf,
    options: LocalOptions,
    token: String,
    members: Vec<LocalMember>,
    /// Asks members for their status (short timeouts; never waits long on a stopped one).
    probe: Client,
}

/// How many times a start is tried with new ports after losing one to another process.
const START_ATTEMPTS_MAX: usize = 4;
/// Poll interval while waiting for members.
const POLL_MS: u64 = 20;
/// Lines of a member's log quoted in an error.
const LOG_TAIL_BYTES: u64 = 2_048;

/// Why a start attempt failed: a port was taken (try again), or anything else.
enum StartError {
    PortInUse(Error),
    Failed(Error),
}

impl LocalCluster {
    /// Starts `members` members with [`LocalOptions::new`], data and logs under `dir`.
    pub fn start(members: usize, dir: &Path) -> Result<LocalCluster, Error> {
        LocalCluster::start_with(&LocalOptions::new(members), dir)
    }

    /// Starts a new cluster: member `i` keeps its data in `dir/m<i>/data` (emptied first) and
    /// logs to `dir/m<i>/etcd.log`. Returns when every member answers and they agree on a
    /// leader.
    pub fn start_with(options: &LocalOptions, dir: &Path) -> Result<LocalCluster, Error> {
        assert!(options.members >= 1, "a cluster needs a member");
        let binary = find_etcd(std::env::var_os("PATH"), Path::new("/usr/bin/etcd"))
            .ok_or(Error::EtcdNotFound)?;
        let mut port_lost = None;
        for _ in 0..START_ATTEMPTS_MAX {
            match LocalCluster::try_start(&binary, options, dir) {
                Ok(cluster) => return Ok(cluster),
                Err(StartError::PortInUse(error)) => port_lost = Some(error),
                Err(StartError::Failed(error)) => return Err(error),
            }
        }
        Err(port_lost.expect("the loop ran and every attempt lost a port"))
    }

    fn try_start(
        binary: &Path,
        options: &LocalOptions,
        dir: &Path,
    ) -> Result<LocalCluster, StartError> {
        let failed = StartError::Failed;
        let mut members = Vec::with_capacity(options.members);
        for index in 0..options.members {
            let name = format!("m{index}");
            let member_dir = dir.join(&name);
            if member_dir.exists() {
                fs::remove_dir_all(&member_dir)
                    .map_err(|source| failed(io_error("empty", &member_dir, source)))?;
            }
            fs::create_dir_all(&member_dir)
                .map_err(|source| failed(io_error("create", &member_dir, source)))?;
            let (client_port, peer_port) =
                (free_port().map_err(failed)?, free_port().map_err(failed)?);
            members.push(LocalMember {
                name,
                client_port,
                peer_port,
                child: None,
                state: MemberState::Killed,
                id: 0,
            });
        }
        let endpoints: Vec<String> =
            members.iter().map(|member| client_url(member.client_port)).collect();
        let probe_options = ClientOptions::new(500, 1_000);
        let probe = Client::lazy(&endpoints, probe_options).map_err(failed)?;
        let mut cluster = LocalCluster {
            dir: dir.to_path_buf(),
            binary: binary.to_path_buf(),
            options: options.clone(),
            token: unique_token(),
            members,
            probe,
        };
        for index in 0..cluster.members.len() {
            cluster.spawn(index).map_err(failed)?;
        }
        let deadline = Instant::now() + Duration::from_millis(options.start_timeout_ms);
        cluster.wait_ready(&(0..cluster.members.len()).collect::<Vec<_>>(), deadline)?;
        Ok(cluster)
    }

    /// The members' client URLs (`http://127.0.0.1:port`), by index.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|member| client_url(member.client_port)).collect()
    }

    /// Member `index`'s client URL.
    pub fn endpoint(&self, index: usize) -> String {
        client_url(self.members[index].client_port)
    }

    /// How many members the cluster has (whatever their state).
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// etcd's id of member `index`.
    pub fn member_id(&self, index: usize) -> u64 {
        self.members[index].id
    }

    /// What member `index`'s process is doing.
    pub fn state(&self, index: usize) -> MemberState {
        self.members[index].state
    }

    /// Member `index`'s process id, while it has a process (running or stopped).
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.members[index].child.as_ref().map(Child::id)
    }

    /// Member `index`'s log file.
    pub fn log_path(&self, index: usize) -> PathBuf {
        self.dir.join(&self.members[index].name).join("etcd.log")
    }

    /// Member `index`'s data directory.
    pub fn data_dir(&self, index: usize) -> PathBuf {
        self.dir.join(&self.members[index].name).join("data")
    }

    /// SIGKILLs member `index` and reaps it (nothing happens if it is not running).
    pub fn kill(&mut self, index: usize) -> Result<(), Error> {
        let member = &mut self.members[index];
        if let Some(mut child) = member.child.take() {
            // The process may have exited on its own: then kill fails and wait reaps it.
            let _ = child.kill();
            child.wait().map_err(|source| Error::Io {
                context: format!("reap etcd member {index}"),
                source,
            })?;
        }
        member.state = MemberState::Killed;
        Ok(())
    }

    /// SIGSTOPs member `index`: it keeps its ports and connections and answers nothing.
    pub fn stop(&mut self, index: usize) -> Result<(), Error> {
        self.signal(index, "STOP")?;
        self.members[index].state = MemberState::Stopped;
        Ok(())
    }

    /// SIGCONTs member `index` after [`LocalCluster::stop`].
    pub fn cont(&mut self, index: usize) -> Result<(), Error> {
        self.signal(index, "CONT")?;
        self.members[index].state = MemberState::Running;
        Ok(())
    }

    fn signal(&self, index: usize, signal: &str) -> Result<(), Error> {
        let Some(child) = &self.members[index].child else {
            let reason = format!("SIG{signal} to a member that is not running");
            return Err(Error::MemberStart { member: index, reason, log: self.log_path(index) });
        };
        let context = || format!("kill -{signal} etcd member {index}");
        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .map_err(|source| Error::Io { context: context(), source })?;
        if !status.success() {
            let source = std::io::Error::other(format!("kill exited with {status}"));
            return Err(Error::Io { context: context(), source });
        }
        Ok(())
    }

    /// Kills member `index` if it runs, starts it again on the same data directory and ports,
    /// and waits until it answers and knows a leader (it rejoins the cluster).
    pub fn restart(&mut self, index: usize) -> Result<(), Error> {
        self.kill(index)?;
        self.spawn(index)?;
        let deadline = Instant::now() + Duration::from_millis(self.options.start_timeout_ms);
        self.wait_ready(&[index], deadline).map_err(|error| match error {
            StartError::PortInUse(error) | StartError::Failed(error) => error,
        })
    }

    /// The member that is the raft leader now, as the running members see it: the one that
    /// reports itself as leader (the highest term wins, should an old leader not know yet).
    /// `None` when there is none (no quorum, an election under way).
    pub fn leader_index(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (index, member) in self.members.iter().enumerate() {
            if member.state != MemberState::Running {
                continue;
            }
            let Ok(status) = self.status(index) else { continue };
            let leads = status.leader_id == status.member_id && status.leader_id != 0;
            if leads && best.is_none_or(|(term, _)| status.raft_term > term) {
                best = Some((status.raft_term, index));
            }
        }
        best.map(|(_, index)| index)
    }

    /// Waits up to `timeout_ms` for a leader; its index.
    pub fn wait_for_leader(&self, timeout_ms: u64) -> Result<usize, Error> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            if let Some(index) = self.leader_index() {
                return Ok(index);
            }
            if Instant::now() >= deadline {
                let reason = format!("no leader within {timeout_ms} ms");
                return Err(Error::MemberStart { member: 0, reason, log: self.log_path(0) });
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
    }

    /// Member `index`'s status, asked of it alone (within a second).
    pub fn status(&self, index: usize) -> Result<MemberStatus, Error> {
        self.probe.status(&self.endpoint(index))
    }

    fn spawn(&mut self, index: usize) -> Result<(), Error> {
        let member_dir = self.dir.join(&self.members[index].name);
        let log_path = self.log_path(index);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| io_error("open", &log_path, source))?;
        let log_too = log.try_clone().map_err(|source| io_error("reopen", &log_path, source))?;
        let child = Command::new(&self.binary)
            .args(self.arguments(index, &member_dir))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too)
            .spawn()
            .map_err(|source| Error::Io {
                context: format!("start {}", self.binary.display()),
                source,
            })?;
        let member = &mut self.members[index];
        member.child = Some(child);
        member.state = MemberState::Running;
        Ok(())
    }

    fn arguments(&self, index: usize, member_dir: &Path) -> Vec<String> {
        let member = &self.members[index];
        let peer_url = |port: u16| format!("http://127.0.0.1:{port}");
        let initial_cluster = self
            .members
            .iter()
            .map(|member| format!("{}={}", member.name, peer_url(member.peer_port)))
            .collect::<Vec<_>>()
            .join(",");
        let options = &self.options;
        let pairs = [
            ("--name", member.name.clone()),
            ("--data-dir", member_dir.join("data").display().to_string()),
            ("--listen-client-urls", client_url(member.client_port)),
            ("--advertise-client-urls", client_url(member.client_port)),
            ("--listen-peer-urls", peer_url(member.peer_port)),
            ("--initial-advertise-peer-urls", peer_url(member.peer_port)),
            ("--initial-cluster", initial_cluster),
            ("--initial-cluster-token", self.token.clone()),
            ("--initial-cluster-state", "new".to_string()),
            ("--heartbeat-interval", options.heartbeat_ms.to_string()),
            ("--election-timeout", options.election_ms.to_string()),
            ("--quota-backend-bytes", options.quota_backend_bytes.to_string()),
            (
                "--experimental-watch-progress-notify-interval",
                format!("{}ms", options.watch_progress_notify_interval_ms),
            ),
            ("--logger", "zap".to_string()),
            ("--log-outputs", "stderr".to_string()),
        ];
        let mut arguments: Vec<String> =
            pairs.into_iter().flat_map(|(flag, value)| [flag.to_string(), value]).collect();
        arguments.push("--pre-vote".to_string());
        arguments
    }

    /// Waits until each of `indexes` answers and knows a leader that is a member; learns their
    /// ids on the way.
    fn wait_ready(&mut self, indexes: &[usize], deadline: Instant) -> Result<(), StartError> {
        loop {
            for &index in indexes {
                self.check_alive(index)?;
            }
            let mut waiting_for = None;
            for &index in indexes {
                match self.status(index) {
                    Ok(status) if status.leader_id != 0 => {
                        self.members[index].id = status.member_id
                    }
                    Ok(_) => {
                        waiting_for =
                            waiting_for.or(Some((index, "it knows no leader".to_string())))
                    }
                    Err(error) => waiting_for = waiting_for.or(Some((index, error.to_string()))),
                }
            }
            let Some((index, why)) = waiting_for else { return Ok(()) };
            if Instant::now() >= deadline {
                let reason =
                    format!("not ready within {} ms: {why}", self.options.start_timeout_ms);
                return Err(StartError::Failed(Error::MemberStart {
                    member: index,
                    reason,
                    log: self.log_path(index),
                }));
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
    }

    /// An error when member `index` has exited: PortInUse when its log says a port was taken.
    fn check_alive(&mut self, index: usize) -> Result<(), StartError> {
        let log = self.log_path(index);
        let Some(child) = self.members[index].child.as_mut() else { return Ok(()) };
        let exited = child
            .try_wait()
            .map_err(|source| StartError::Failed(io_error("wait for", &log, source)))?;
        let Some(status) = exited else { return Ok(()) };
        self.members[index].child = None;
        self.members[index].state = MemberState::Killed;
        let tail = log_tail(&log);
        let reason = format!("it exited ({status}); its log ends with:\n{tail}");
        let error = Error::MemberStart { member: index, reason, log };
        if tail.contains("address already in use") {
            return Err(StartError::PortInUse(error));
        }
        Err(StartError::Failed(error))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            // SIGKILL ends a stopped process too; nothing useful can be done about a failure.
            let _ = self.kill(index);
        }
    }
}

fn client_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn io_error(what: &str, path: &Path, source: std::io::Error) -> Error {
    Error::Io { context: format!("{what} {}", path.display()), source }
}

/// Ports handed out by this process; never handed out twice.
static PORTS_HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
/// Kernel ports tried before giving up.
const PORT_TRIES_MAX: usize = 256;

/// A port that was free a moment ago and that this process has not handed out before.
fn free_port() -> Result<u16, Error> {
    for _ in 0..PORT_TRIES_MAX {
        let context = || "bind 127.0.0.1:0 to find a free port".to_string();
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|source| Error::Io { context: context(), source })?;
        let port = listener
            .local_addr()
            .map_err(|source| Error::Io { context: context(), source })?
            .port();
        let mut ports = PORTS_HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if ports.insert(port) {
            return Ok(port);
        }
    }
    let source =
        std::io::Error::other(format!("{PORT_TRIES_MAX} ports tried, all handed out already"));
    Err(Error::Io { context: "find a free port".into(), source })
}

/// A cluster token no other cluster on this machine uses.
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_nanos()).unwrap_or(0);
    format!(
        "ledger-test-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The end of a log, for an error message.
fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_else(|error| format!("(the log could not be read: {error})"))
}

/// The `etcd` executable: the first on `path_var`, else `fallback` if it exists.
pub(crate) fn find_etcd(path_var: Option<OsString>, fallback: &Path) -> Option<PathBuf> {
    let executable = |path: &Path| {
        fs::metadata(path)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    };
    let on_path = path_var
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("etcd"))
        .find(|path| executable(path));
    on_path.or_else(|| executable(fallback).then(|| fallback.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::find_etcd;
    use crate::error::Error;

    #[test]
    fn a_missing_etcd_says_how_to_install_it() {
        assert_eq!(
            find_etcd(Some("/nonexistent-dir".into()), Path::new("/nonexistent-etcd")),
            None
        );
        assert_eq!(
            Error::EtcdNotFound.to_string(),
            "etcd not found on PATH or at /usr/bin/etcd: install with `apt-get install etcd-server etcd-client`"
        );
    }
}
