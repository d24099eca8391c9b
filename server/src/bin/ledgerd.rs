//! `ledgerd`: the ledger server. Zero configuration: `./data` and `127.0.0.1:7070`.
//!
//! Startup is recovery (newest valid snapshot + journal tail, verified) and prints what it
//! recovered and where it listens. SIGTERM/SIGINT stop accepting, finish in-flight requests,
//! flush the journal and exit 0. A journal failure is fatal: nothing more is acknowledged and
//! the process exits 70 with the reason. A replica (`--cluster`) that is deposed starts again
//! in the same process, as a standby; one stopped by a fault a restart does not repair exits
//! 75 (REPLICATION.md, *Rejoining*).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use journal::SyncMode;
use protocol::auth::{Credentials, Opened};
use protocol::limits::BATCH_LEN_MAX;
use runtime::{Runtime, RuntimeOptions};
use server::{Server, ServerOptions, ServerTls, CONNECTION_IN_FLIGHT_DEFAULT};

#[derive(Parser, Debug)]
#[command(name = "ledgerd", version, about = "The T+0 ledger server")]
struct Args {
    /// Data directory (journal, snapshots, credentials). Default: ./data
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Client address. Default: 127.0.0.1:7070 (port 0 picks a free port and prints it).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Prometheus metrics address, or `off`. Default: 127.0.0.1:7071
    #[arg(long)]
    metrics_listen: Option<String>,
    /// `fsync` (default): a reply is released only once durable. `none`: UNSAFE, benchmarks only.
    #[arg(long, value_enum)]
    sync: Option<SyncArg>,
    /// A config file of `key = value` lines (data_dir, listen, metrics_listen, sync,
    /// credentials, tls_cert, tls_key, tls_client_ca, insecure, batch_delay_us, batch_len_max, pin_core, snapshot_every_records, tx_retained, channel
    /// (repeatable), net_window_ms, cluster, ledger, node, advertise, lease_ttl_s,
    /// log_entries_max, transfer_credentials, transfer_tls_ca, transfer_tls_server_name,
    /// transfer_tls_cert, transfer_tls_key); flags
    /// win (channels add up).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve clients over TLS with this certificate chain (PEM, leaf first; with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: require client certificates signed by a CA in FILE (PEM); a HELLO's client
    /// id must equal its certificate's subject CN (with --tls-cert).
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Allow plaintext on a non-loopback --listen address (refused otherwise: use TLS).
    #[arg(long)]
    insecure: bool,
    /// The credentials store (default: DATA_DIR/credentials, created with an admin on first
    /// start; the admin's secret goes to admin.credentials next to it).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Keep a group commit open this long for more commands (µs). Default 0.
    #[arg(long)]
    batch_delay_us: Option<u32>,
    /// Most commands per SUBMIT, announced to clients in HELLO_OK (1..=8192). Default 1024.
    #[arg(long)]
    batch_len_max: Option<u32>,
    /// Core to pin the writer thread to, or `none`. Default 1.
    #[arg(long)]
    pin_core: Option<String>,
    /// Settle the deposits and withdrawals of channel NAME (its system account's account_no)
    /// through the bank at ADDR (`ledger-bank`); repeatable.
    #[arg(long = "channel", value_name = "NAME=ADDR", value_parser = channel)]
    channels: Vec<(engine::AccountNo, SocketAddr)>,
    /// Netting window of the settlement processors: deposits and withdrawals of a channel
    /// within this many milliseconds of a batch's first are settled as one net payment.
    /// Default 50.
    #[arg(long)]
    net_window_ms: Option<u64>,
    /// Run the snapshot follower: a snapshot every N records, or `off` (default: off).
    #[arg(long)]
    snapshot_every: Option<String>,
    /// Run as a replica of a replica group whose log is in the etcd cluster at these
    /// comma-separated client endpoints (`host:port,...`). Without it: a single node.
    #[arg(long)]
    cluster: Option<String>,
    /// The replica group's ledger name (with --cluster). Default: main
    #[arg(long)]
    ledger: Option<String>,
    /// This node's id in the group, unique (with --cluster; required there).
    #[arg(long)]
    node: Option<String>,
    /// The client address other nodes send clients to when this one is the primary
    /// (with --cluster). Default: the address it listens on.
    #[arg(long)]
    advertise: Option<String>,
    /// This node's etcd lease TTL in seconds (with --cluster): a primary that cannot renew it
    /// for this long is replaced. Default: 2
    #[arg(long)]
    lease_ttl_s: Option<i64>,
    /// The most log entries etcd keeps behind the head (with --cluster): a replica further
    /// behind catches up by a state transfer from a peer. Default: 1024 (entries are at most
    /// 1 MiB)
    #[arg(long)]
    log_entries_max: Option<u64>,
    /// The client credentials file this node uses to copy a peer's state when the log was
    /// trimmed past it (with --cluster; its admin entry, which the peers' stores must know).
    /// Default: DATA_DIR/admin.credentials
    #[arg(long)]
    transfer_credentials: Option<PathBuf>,
    /// The CA that signed the peers' server certificates, for a state transfer from peers
    /// that serve TLS (with --cluster). Default: plain TCP
    #[arg(long)]
    transfer_tls_ca: Option<PathBuf>,
    /// The name the peers' certificates carry (with --transfer-tls-ca). Default: the
    /// peer's IP address
    #[arg(long, requires = "transfer_tls_ca")]
    transfer_tls_server_name: Option<String>,
    /// The client certificate chain this node presents to peers that require one (mutual
    /// TLS; with --transfer-tls-ca and --transfer-tls-key). Its subject CN must be the id of
    /// the admin entry in --transfer-credentials
    #[arg(long, requires_all = ["transfer_tls_ca", "transfer_tls_key"])]
    transfer_tls_cert: Option<PathBuf>,
    /// The key of --transfer-tls-cert
    #[arg(long, requires = "transfer_tls_cert")]
    transfer_tls_key: Option<PathBuf>,
    /// How this node, as the primary, stores log entry bodies in etcd (with --cluster): `lz4`
    /// (entry version 2) or `none` (version 1, which nodes built before version 2 read).
    /// Default: lz4
    #[arg(long, value_parser = entry_compression)]
    entry_compression: Option<bool>,
}

/// `--entry-compression`: whether bodies are compressed.
fn entry_compression(text: &str) -> std::result::Result<bool, String> {
    match text {
        "lz4" => Ok(true),
        "none" => Ok(false),
        _ => Err(format!("{text:?} is neither lz4 nor none")),
    }
}

/// `NAME=ADDR` of `--channel`.
fn channel(text: &str) -> std::result::Result<(engine::AccountNo, SocketAddr), String> {
    let (name, addr) = text.split_once('=').ok_or_else(|| format!("{text:?} is not NAME=ADDR"))?;
    let name =
        engine::AccountNo::new(name.as_bytes()).map_err(|error| format!("{name:?}: {error}"))?;
    let addr = addr.parse().map_err(|error| format!("{addr:?}: {error}"))?;
    Ok((name, addr))
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum SyncArg {
    Fsync,
    None,
}

/// Settings after merging the config file and the flags.
struct Settings {
    data_dir: PathBuf,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    sync_mode: SyncMode,
    credentials: PathBuf,
    tls: TlsFiles,
    batch_delay_us: u32,
    batch_len_max: u32,
    pin_core: Option<usize>,
    snapshot_every_records: Option<u64>,
    tx_retained: Option<u32>,
    channels: Vec<(engine::AccountNo, SocketAddr)>,
    net_window_ms: Option<u64>,
    cluster: Option<Cluster>,
}

/// The TLS files and `insecure` (flags win over the config file).
#[derive(Default)]
struct TlsFiles {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    insecure: bool,
}

impl TlsFiles {
    /// The listener's TLS configuration, or `None`; refuses plaintext on a non-loopback
    /// address unless `insecure`.
    fn resolve(&self, listen: SocketAddr) -> Result<Option<ServerTls>> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let tls = ServerTls::from_files(cert, key, self.client_ca.as_deref())
                    .context("TLS setup")?;
                Ok(Some(tls))
            }
            (None, None) => {
                if self.client_ca.is_some() {
                    bail!("tls_client_ca needs tls_cert and tls_key");
                }
                if !listen.ip().is_loopback() && !self.insecure {
                    bail!(
                        "refusing to serve plaintext on {listen}, which is not a loopback \
                         address: give --tls-cert and --tls-key, or --insecure to accept that \
                         secrets and money cross the network in the clear"
                    );
                }
                Ok(None)
            }
            (Some(_), None) | (None, Some(_)) => bail!("tls_cert and tls_key go together"),
        }
    }
}

/// `true` or `false` in the config file.
fn boolean(value: &str) -> Result<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => bail!("{value:?} is not true or false"),
    }
}

/// The replica-group settings (`--cluster` and what goes with it).
struct Cluster {
    endpoints: Vec<String>,
    ledger: String,
    node: String,
    advertise: Option<String>,
    lease_ttl_s: i64,
    log_entries_max: u64,
    /// `None`: DATA_DIR/admin.credentials.
    transfer_credentials: Option<PathBuf>,
    transfer_tls_ca: Option<PathBuf>,
    transfer_tls_server_name: Option<String>,
    /// `(certificate chain, key)` for peers that require mutual TLS.
    transfer_tls_client: Option<(PathBuf, PathBuf)>,
    compress_entries: bool,
}

/// The raw replica-group settings, from the config file and the flags.
#[derive(Default)]
struct ClusterArgs {
    cluster: Option<String>,
    ledger: Option<String>,
    node: Option<String>,
    advertise: Option<String>,
    lease_ttl_s: Option<i64>,
    log_entries_max: Option<u64>,
    transfer_credentials: Option<PathBuf>,
    transfer_tls_ca: Option<PathBuf>,
    transfer_tls_server_name: Option<String>,
    transfer_tls_cert: Option<PathBuf>,
    transfer_tls_key: Option<PathBuf>,
    compress_entries: Option<bool>,
}

impl ClusterArgs {
    fn resolve(self) -> Result<Option<Cluster>> {
        let Some(cluster) = self.cluster else {
            let transfer = self.transfer_credentials.is_some() || self.transfer_tls_ca.is_some();
            if self.node.is_some() || self.ledger.is_some() || self.advertise.is_some() || transfer
            {
                bail!(
                    "--node, --ledger, --advertise and --transfer-* need --cluster ETCD_ENDPOINTS"
                );
            }
            return Ok(None);
        };
        let endpoints: Vec<String> =
            cluster.split(',').map(str::trim).filter(|e| !e.is_empty()).map(String::from).collect();
        if endpoints.is_empty() {
            bail!("--cluster needs at least one etcd endpoint (host:port,...)");
        }
        let node = self.node.context("--cluster needs --node ID (unique in the replica group)")?;
        Ok(Some(Cluster {
            endpoints,
            ledger: self.ledger.unwrap_or_else(|| "main".to_owned()),
            node,
            advertise: self.advertise,
            lease_ttl_s: self.lease_ttl_s.unwrap_or(2),
            log_entries_max: self.log_entries_max.unwrap_or(replication::LOG_ENTRIES_MAX_DEFAULT),
            transfer_credentials: self.transfer_credentials,
            transfer_tls_ca: self.transfer_tls_ca,
            transfer_tls_server_name: self.transfer_tls_server_name,
            transfer_tls_client: match (self.transfer_tls_cert, self.transfer_tls_key) {
                (None, None) => None,
                (Some(cert), Some(key)) => Some((cert, key)),
                _ => bail!("transfer_tls_cert and transfer_tls_key go together"),
            },
            compress_entries: self.compress_entries.unwrap_or(true),
        }))
    }
}

fn parse_config(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("{}:{}: expected `key = value`", path.display(), number + 1);
        };
        let value = value.trim().trim_matches('"').to_string();
        pairs.push((key.trim().to_string(), value));
    }
    Ok(pairs)
}

fn metrics_addr(value: &str) -> Result<Option<SocketAddr>> {
    if value == "off" {
        return Ok(None);
    }
    Ok(Some(value.parse().with_context(|| format!("metrics address {value:?}"))?))
}

fn pin_core(value: &str) -> Result<Option<usize>> {
    if value == "none" {
        return Ok(None);
    }
    Ok(Some(value.parse().with_context(|| format!("pin_core {value:?}"))?))
}

fn snapshot_every(value: &str) -> Result<Option<u64>> {
    if value == "off" {
        return Ok(None);
    }
    Ok(Some(value.parse().with_context(|| format!("snapshot interval {value:?}"))?))
}

fn settings(args: Args) -> Result<Settings> {
    let mut settings = Settings {
        data_dir: PathBuf::from("./data"),
        listen: "127.0.0.1:7070".parse().expect("a valid default address"),
        metrics_listen: Some("127.0.0.1:7071".parse().expect("a valid default address")),
        sync_mode: SyncMode::Fsync,
        credentials: PathBuf::new(),
        tls: TlsFiles::default(),
        batch_delay_us: 0,
        batch_len_max: RuntimeOptions::default().submission_len_max,
        pin_core: Some(1),
        // Off by default: the follower re-applies every command on a second engine, which on a
        // 2-core machine costs the writer about a third of its throughput (BENCHMARKS.md).
        // Snapshots come on demand from `ledger-replay snapshot DATA_DIR`, or from the
        // follower with `--snapshot-every N`.
        snapshot_every_records: None,
        tx_retained: None,
        channels: Vec::new(),
        net_window_ms: None,
        cluster: None,
    };
    let mut credentials = None;
    let mut cluster = ClusterArgs::default();
    if let Some(path) = &args.config {
        for (key, value) in parse_config(path)? {
            let context = || format!("{}: {key} = {value}", path.display());
            match key.as_str() {
                "data_dir" => settings.data_dir = PathBuf::from(&value),
                "listen" => settings.listen = value.parse().with_context(context)?,
                "metrics_listen" => settings.metrics_listen = metrics_addr(&value)?,
                "sync" => {
                    settings.sync_mode = match value.as_str() {
                        "fsync" => SyncMode::Fsync,
                        "none" => SyncMode::None,
                        _ => bail!("{}: sync must be fsync or none", context()),
                    }
                }
                "credentials" => credentials = Some(PathBuf::from(&value)),
                "tls_cert" => settings.tls.cert = Some(PathBuf::from(&value)),
                "tls_key" => settings.tls.key = Some(PathBuf::from(&value)),
                "tls_client_ca" => settings.tls.client_ca = Some(PathBuf::from(&value)),
                "insecure" => settings.tls.insecure = boolean(&value).with_context(context)?,
                "batch_delay_us" => {
                    settings.batch_delay_us = value.parse().with_context(context)?;
                }
                "batch_len_max" => {
                    settings.batch_len_max = value.parse().with_context(context)?;
                }
                "pin_core" => settings.pin_core = pin_core(&value)?,
                "snapshot_every_records" => {
                    settings.snapshot_every_records = snapshot_every(&value)?;
                }
                "tx_retained" => settings.tx_retained = Some(value.parse().with_context(context)?),
                "channel" => {
                    let parsed = channel(&value).map_err(anyhow::Error::msg);
                    settings.channels.push(parsed.with_context(context)?);
                }
                "net_window_ms" => {
                    settings.net_window_ms = Some(value.parse().with_context(context)?);
                }
                "cluster" => cluster.cluster = Some(value),
                "ledger" => cluster.ledger = Some(value),
                "node" => cluster.node = Some(value),
                "advertise" => cluster.advertise = Some(value),
                "lease_ttl_s" => cluster.lease_ttl_s = Some(value.parse().with_context(context)?),
                "log_entries_max" => {
                    cluster.log_entries_max = Some(value.parse().with_context(context)?)
                }
                "transfer_credentials" => {
                    cluster.transfer_credentials = Some(PathBuf::from(&value))
                }
                "transfer_tls_ca" => cluster.transfer_tls_ca = Some(PathBuf::from(&value)),
                "transfer_tls_server_name" => cluster.transfer_tls_server_name = Some(value),
                "transfer_tls_cert" => cluster.transfer_tls_cert = Some(PathBuf::from(&value)),
                "transfer_tls_key" => cluster.transfer_tls_key = Some(PathBuf::from(&value)),
                "entry_compression" => {
                    let parsed = entry_compression(&value).map_err(anyhow::Error::msg);
                    cluster.compress_entries = Some(parsed.with_context(context)?);
                }
                _ => bail!("{}: unknown key {key:?}", path.display()),
            }
        }
    }
    if let Some(data_dir) = args.data_dir {
        settings.data_dir = data_dir;
    }
    // Channels on the command line come on top of those in the config file.
    settings.channels.extend(args.channels.iter().copied());
    if let Some(window_ms) = args.net_window_ms {
        settings.net_window_ms = Some(window_ms);
    }
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    if let Some(value) = &args.metrics_listen {
        settings.metrics_listen = metrics_addr(value)?;
    }
    if let Some(sync) = args.sync {
        settings.sync_mode = match sync {
            SyncArg::Fsync => SyncMode::Fsync,
            SyncArg::None => SyncMode::None,
        };
    }
    if let Some(path) = args.credentials {
        credentials = Some(path);
    }
    settings.tls.cert = args.tls_cert.or(settings.tls.cert.take());
    settings.tls.key = args.tls_key.or(settings.tls.key.take());
    settings.tls.client_ca = args.tls_client_ca.or(settings.tls.client_ca.take());
    settings.tls.insecure |= args.insecure;
    if let Some(delay) = args.batch_delay_us {
        settings.batch_delay_us = delay;
    }
    if let Some(len_max) = args.batch_len_max {
        settings.batch_len_max = len_max;
    }
    if !(1..=BATCH_LEN_MAX).contains(&settings.batch_len_max) {
        bail!("batch_len_max {} is outside 1..={BATCH_LEN_MAX}", settings.batch_len_max);
    }
    if let Some(value) = &args.pin_core {
        settings.pin_core = pin_core(value)?;
    }
    if let Some(value) = &args.snapshot_every {
        settings.snapshot_every_records = snapshot_every(value)?;
    }
    settings.credentials = credentials.unwrap_or_else(|| settings.data_dir.join("credentials"));
    cluster.cluster = args.cluster.or(cluster.cluster);
    cluster.ledger = args.ledger.or(cluster.ledger);
    cluster.node = args.node.or(cluster.node);
    cluster.advertise = args.advertise.or(cluster.advertise);
    cluster.lease_ttl_s = args.lease_ttl_s.or(cluster.lease_ttl_s);
    cluster.log_entries_max = args.log_entries_max.or(cluster.log_entries_max);
    cluster.transfer_credentials = args.transfer_credentials.or(cluster.transfer_credentials);
    cluster.transfer_tls_ca = args.transfer_tls_ca.or(cluster.transfer_tls_ca);
    cluster.transfer_tls_server_name =
        args.transfer_tls_server_name.or(cluster.transfer_tls_server_name);
    cluster.transfer_tls_cert = args.transfer_tls_cert.or(cluster.transfer_tls_cert);
    cluster.transfer_tls_key = args.transfer_tls_key.or(cluster.transfer_tls_key);
    cluster.compress_entries = args.entry_compression.or(cluster.compress_entries);
    settings.cluster = cluster.resolve()?;
    Ok(settings)
}

/// How this node connects to a peer for a state transfer.
fn transfer_client(cluster: &Cluster, data_dir: &Path) -> Result<replication::TransferClient> {
    let tls = match &cluster.transfer_tls_ca {
        None => None,
        Some(ca) => Some(
            protocol::tls::ClientTls::from_files(
                ca,
                cluster
                    .transfer_tls_client
                    .as_ref()
                    .map(|(cert, key)| (cert.as_path(), key.as_path())),
                cluster.transfer_tls_server_name.as_deref(),
            )
            .with_context(|| format!("--transfer-tls-ca {}", ca.display()))?,
        ),
    };
    let options = protocol::client::ClientOptions {
        connect_timeout_ms: 5_000,
        request_timeout_ms: 30_000,
        in_flight_max: 1,
        tls,
    };
    let credentials =
        cluster.transfer_credentials.clone().unwrap_or_else(|| data_dir.join("admin.credentials"));
    Ok(replication::TransferClient { credentials, options })
}

/// How one start of the server ended.
enum Served {
    /// The process exits with this code.
    Exit(ExitCode),
    /// The replica was deposed (REPLICATION.md, *Rejoining*): start again on the same data
    /// directory and addresses, as a standby.
    Rejoin,
}

fn run() -> Result<ExitCode> {
    let mut settings = settings(Args::parse())?;
    // Before anything is created or recovered: a refused listener changes nothing.
    let tls = settings.tls.resolve(settings.listen)?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("create {}", settings.data_dir.display()))?;
    let store = &settings.credentials;
    let (credentials, opened) = Credentials::load_or_generate_admin(store)
        .with_context(|| format!("credentials {}", store.display()))?;
    let clients = credentials.entries().len();
    match opened {
        Opened::Loaded => println!("credentials: {} ({clients} clients)", store.display()),
        Opened::Generated { admin_file } => println!(
            "created admin credentials: the secret is in {} for the admin's clients (mode 0600), \
             its hash in {}",
            admin_file.display(),
            store.display()
        ),
        Opened::Migrated { plaintext_entries, admin_file } => {
            println!(
                "credentials: {} ({clients} clients): replaced {plaintext_entries} plaintext \
                 secrets by their HMAC-SHA256 hashes (rewritten atomically, mode 0600); clients \
                 keep their secrets in their own files",
                store.display()
            );
            if let Some(admin_file) = admin_file {
                println!(
                    "credentials: the first admin's secret is now in {} (mode 0600)",
                    admin_file.display()
                );
            }
        }
    }
    if settings.sync_mode == SyncMode::None {
        println!("WARNING: --sync none releases replies before they are durable (benchmarks only)");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("install signal handlers")?;
    }
    // Bounded by the process's life: each pass is one start; only a deposed replica passes
    // again, after a pause that keeps a flapping group from spinning.
    loop {
        match serve(&mut settings, &credentials, tls.as_ref(), &stop)? {
            Served::Exit(code) => return Ok(code),
            Served::Rejoin if stop.load(Ordering::Acquire) => return Ok(ExitCode::SUCCESS),
            Served::Rejoin => {
                println!("rejoining as a standby: recovery again on the same data directory");
                std::thread::sleep(REJOIN_PAUSE);
            }
        }
    }
}

/// A settlement processor for every `--channel`, on the running runtime.
fn start_processors(settings: &Settings, runtime: &Runtime) -> Result<Vec<settlement::Processor>> {
    let mut processors = Vec::new();
    for (name, addr) in &settings.channels {
        let mut options = settlement::ChannelOptions::new(*name, *addr);
        if let Some(window_ms) = settings.net_window_ms {
            options.net_window_ms = window_ms;
        }
        let processor = settlement::spawn(&settings.data_dir, runtime.handle(), options)
            .with_context(|| format!("start the settlement processor of channel {name}"))?;
        println!("settling channel {name} through {addr}");
        processors.push(processor);
    }
    Ok(processors)
}

/// The pause before a deposed replica starts again.
const REJOIN_PAUSE: Duration = Duration::from_millis(200);

/// One start: recovery, the listeners, the replica, until a stop. The addresses actually
/// bound are written back to `settings`, so a rejoin listens where clients already look.
fn serve(
    settings: &mut Settings,
    credentials: &Credentials,
    tls: Option<&ServerTls>,
    stop: &AtomicBool,
) -> Result<Served> {
    let mut options = RuntimeOptions {
        sync_mode: settings.sync_mode,
        batch_delay_us: settings.batch_delay_us,
        submission_len_max: settings.batch_len_max,
        pin_core: settings.pin_core,
        snapshot_every_records: settings.snapshot_every_records,
        ..RuntimeOptions::default()
    };
    if let Some(tx_retained) = settings.tx_retained {
        options.engine_config.tx_retained = tx_retained;
    }
    let submission_len_max = options.submission_len_max;
    let (stages, starter) = match &settings.cluster {
        None => (Vec::new(), None),
        Some(cluster) => {
            let mut cluster_options = replication::ClusterOptions::new(
                cluster.endpoints.clone(),
                &cluster.ledger,
                &cluster.node,
                cluster.advertise.as_deref().unwrap_or_default(),
            );
            cluster_options.lease_ttl_s = cluster.lease_ttl_s;
            cluster_options.log_entries_max = cluster.log_entries_max;
            cluster_options.compress_entries = cluster.compress_entries;
            let (stage, mut starter) = replication::prepare(cluster_options, &settings.data_dir)
                .context("join the replica group")?;
            starter.set_transfer_client(transfer_client(cluster, &settings.data_dir)?);
            if let Some(position) = starter.reconcile_local().context("replication position")? {
                println!(
                    "replication position: entry {} (epoch {}, seq {})",
                    position.index, position.epoch, position.last_seq
                );
            }
            if let Some((position, snapshot_seq)) = starter.transferred() {
                println!(
                    "replication: state transferred from a peer: snapshot at seq {snapshot_seq}, journal through \
                     seq {} (log entry {})",
                    position.last_seq, position.index
                );
            }
            if let Some(why) = starter.damage() {
                println!("replication: the local journal was damaged: {why}; cut off, read again from the log");
            }
            if let Some((resumed, vouched)) = starter.rewound() {
                println!(
                    "replication: the local journal no longer holds seqs up to {vouched} intact (its \
                     position); following again from seq {resumed}, the rest read again from the log"
                );
            }
            if let Some((first, last)) = starter.cut() {
                println!(
                    "replication: cut seqs {first}..={last} off the local journal (after the confirmed \
                     position: never acknowledged here, or committed and read again from the log)"
                );
            }
            println!(
                "replica {} of ledger {} (etcd {})",
                cluster.node,
                cluster.ledger,
                cluster.endpoints.join(",")
            );
            if let Some(genesis) = starter.genesis() {
                // A replica starts from the group's empty state: same seed, same window.
                options.hash_seed = Some(genesis.hash_seed);
                options.engine_config.tx_retained = genesis.tx_retained;
            }
            (vec![stage], Some(starter))
        }
    };
    let (runtime, report) =
        Runtime::start_in(journal::FileStorage, &settings.data_dir, options, stages)
            .with_context(|| format!("recover {}", settings.data_dir.display()))?;
    println!("recovered {}: {report}", settings.data_dir.display());

    let server_options = ServerOptions {
        listen: settings.listen,
        metrics_listen: settings.metrics_listen,
        batch_len_max: submission_len_max,
        in_flight_max: CONNECTION_IN_FLIGHT_DEFAULT,
        write_timeout_ms: 10_000,
        replica_role: starter.as_ref().map(replication::Starter::role),
        replication_metrics: starter.as_ref().map(replication::Starter::metrics),
        tls: tls.cloned(),
        data_dir: Some(settings.data_dir.clone()),
    };
    let tls_note = server_options.tls.as_ref().map(|tls| {
        if tls.verifies_clients() {
            "TLS, with client certificates required (mutual TLS)"
        } else {
            "TLS"
        }
    });
    let server = Server::start(server_options, credentials.clone(), runtime.handle())
        .with_context(|| format!("listen on {}", settings.listen))?;
    if let Some(note) = tls_note {
        println!("clients speak {note}; metrics stay plain HTTP");
    }
    println!("listening on {}", server.local_addr());
    settings.listen = server.local_addr();
    if let Some(addr) = server.metrics_addr() {
        settings.metrics_listen = Some(addr);
    }
    let replica = match starter {
        None => None,
        Some(mut starter) => {
            starter.advertise_if_unset(&server.local_addr().to_string());
            let engine = replication::EngineSettings {
                hash_seed: report.engine_config.hash_seed,
                tx_retained: report.engine_config.tx_retained,
            };
            let replica = starter.start(runtime.handle(), engine).map_err(anyhow::Error::msg)?;
            Some(replica)
        }
    };
    if let Some(addr) = server.metrics_addr() {
        println!("metrics on http://{addr}/metrics");
    }
    // A single node settles from the start; a replica only once it is the primary (a standby
    // refuses commands, and the bank must hear from one node): the processor recovers what
    // is in flight from the journal, which holds everything the old primary journaled.
    let mut processors = None;
    if replica.is_none() {
        processors = Some(start_processors(settings, &runtime)?);
    }

    while !stop.load(Ordering::Acquire) {
        let failure = runtime.wait_for_failure(Duration::from_millis(100));
        let primary = replica.as_ref().is_some_and(|replica| replica.role().is_primary());
        if processors.is_none() && primary && !settings.channels.is_empty() {
            println!("this node is the primary: settlement starts");
            processors = Some(start_processors(settings, &runtime)?);
        }
        let deposed = replica
            .as_ref()
            .is_some_and(|replica| replica.role().state() == replication::RoleState::Stopped);
        if let Some(failure) = failure.filter(|_| !deposed) {
            eprintln!("ledgerd: FATAL: {failure}; nothing more is acknowledged, exiting");
            return Ok(Served::Exit(ExitCode::from(70)));
        }
        let role = replica.as_ref().map(|replica| replica.role().clone());
        if let Some(role) = role.filter(|role| role.state() == replication::RoleState::Stopped) {
            let why = role.failure().unwrap_or("stopped").to_owned();
            let rejoins = role.rejoins();
            if rejoins {
                eprintln!(
                    "ledgerd: replication stopped: {why}; nothing more is acknowledged here; \
                     starting again to rejoin as a standby"
                );
            } else {
                eprintln!(
                    "ledgerd: replication stopped: {why}; nothing more is acknowledged, exiting \
                     (a restart does not repair this: see REPLICATION.md, Recovery decision table)"
                );
            }
            for processor in processors.take().unwrap_or_default() {
                processor.shutdown();
            }
            server.shutdown();
            drop(replica);
            let _ = runtime.shutdown();
            return Ok(if rejoins { Served::Rejoin } else { Served::Exit(ExitCode::from(75)) });
        }
    }
    println!("stopping: no new connections, finishing in-flight requests");
    for processor in processors.unwrap_or_default() {
        processor.shutdown();
    }
    server.shutdown();
    if let Some(replica) = replica {
        replica.shutdown();
    }
    let shutdown = runtime.shutdown().context("stop the runtime")?;
    println!("stopped: {shutdown}");
    Ok(Served::Exit(ExitCode::SUCCESS))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ledgerd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
