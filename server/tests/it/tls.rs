//! TLS end to end: `ledgerd --tls-cert/--tls-key [--tls-client-ca]` with certificates made
//! here (rcgen), driven by the Rust client and the CLI; what is refused and how.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use engine::{CommandBody, CurrencyCode, ResultCode, TxId};
use protocol::auth::ClientCredentials;
use protocol::client::{Client, ClientError, ClientOptions, Reply};
use protocol::tls::ClientTls;
use protocol::wire::ErrorCode;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::harness::{credentials, key, options, Ledgerd};
use crate::{cli_with, deposit, open, setup_accounts, transfer};

/// A CA and certificates it signed, as PEM files in a temporary directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    /// A new CA named `name`, with a server certificate for 127.0.0.1 and localhost.
    pub(crate) fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&ca_key).expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        let pki = Pki { dir, ca, ca_key };
        pki.sign("server", None, &["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth);
        pki
    }

    /// Writes NAME.pem and NAME.key: a certificate with subject CN `common_name` and these
    /// subject alternative names.
    fn sign(
        &self,
        name: &str,
        common_name: Option<&str>,
        alt_names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) {
        let key = KeyPair::generate().expect("key");
        let alt_names: Vec<String> = alt_names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(alt_names).expect("params");
        if let Some(common_name) = common_name {
            params.distinguished_name.push(DnType::CommonName, common_name);
        }
        params.extended_key_usages = vec![usage];
        let certificate = params.signed_by(&key, &self.ca, &self.ca_key).expect("sign");
        std::fs::write(self.path(&format!("{name}.pem")), certificate.pem()).expect("write");
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).expect("write");
    }

    /// A client certificate whose subject CN is `client_id`, as `client-ID.pem`/`.key`.
    pub(crate) fn client(&self, client_id: &str) -> (PathBuf, PathBuf) {
        let name = format!("client-{client_id}");
        self.sign(&name, Some(client_id), &[], ExtendedKeyUsagePurpose::ClientAuth);
        (self.path(&format!("{name}.pem")), self.path(&format!("{name}.key")))
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ledgerd`'s flags for this CA's server certificate (and, with `mutual`, client
    /// certificates from it).
    pub(crate) fn server_flags(&self, mutual: bool) -> Vec<String> {
        let mut flags = vec![
            "--tls-cert".to_string(),
            self.path("server.pem").display().to_string(),
            "--tls-key".to_string(),
            self.path("server.key").display().to_string(),
        ];
        if mutual {
            flags.push("--tls-client-ca".into());
            flags.push(self.path("ca.pem").display().to_string());
        }
        flags
    }

    /// Client options trusting this CA, presenting `client_cert` if given.
    pub(crate) fn options(&self, client_cert: Option<&(PathBuf, PathBuf)>) -> ClientOptions {
        let client_cert = client_cert.map(|(cert, key)| (cert.as_path(), key.as_path()));
        let tls = ClientTls::from_files(&self.path("ca.pem"), client_cert, None).expect("tls");
        ClientOptions { tls: Some(tls), ..options() }
    }
}

fn start(pki: &Pki, mutual: bool) -> Ledgerd {
    let flags = pki.server_flags(mutual);
    Ledgerd::start_fresh(&flags.iter().map(String::as_str).collect::<Vec<_>>())
}

pub(crate) fn connect(
    server: &Ledgerd,
    client_id: &str,
    options: ClientOptions,
) -> Result<Client, ClientError> {
    let (id, secret) = credentials(client_id);
    let credentials = ClientCredentials::new(&id, secret).expect("credentials");
    Client::connect(server.addr, &credentials, options)
}

#[test]
fn a_whole_session_over_tls_with_the_library_and_the_cli() {
    let pki = Pki::new("test CA");
    let server = start(&pki, false);
    assert!(server.output().contains("clients speak TLS"), "{}", server.output());
    let mut admin = connect(&server, "admin", pki.options(None)).expect("TLS connect");
    setup_accounts(&mut admin);
    let mut writer = connect(&server, "writer", pki.options(None)).expect("TLS connect");
    assert_eq!(
        writer.submit(vec![(TxId(10), deposit("alice", "100"))]).expect("deposit")[0].result,
        ResultCode::Ok
    );
    // Many requests in flight, large replies: the TLS buffers fill and drain, and every reply
    // comes back (an edge lost in the TLS read or write path would stall this).
    let mut sent = 0u128;
    let mut received = 0;
    while received < 2_000 {
        while sent < 2_000 && writer.in_flight() < 64 {
            let batch: Vec<_> = (0..50u128)
                .map(|n| (TxId(1_000_000 + sent * 50 + n), transfer("alice", "bob", "0.01")))
                .collect();
            writer.send_submit(&batch).expect("send");
            sent += 1;
        }
        match writer.recv().expect("reply") {
            (_, Reply::Submitted(outcomes)) => assert_eq!(outcomes.len(), 50),
            (id, other) => panic!("{id}: {other:?}"),
        }
        received += 1;
    }
    let bob = admin.account(&key("bob")).expect("query").expect("bob");
    assert_eq!(bob.available_minor, 100 * 100); // 10 000 of the 100 000 transfers of 0.01 fit in alice's 100.00
    let alice = admin.account(&key("alice")).expect("query").expect("alice");
    assert_eq!(alice.available_minor, 0);
    admin.close();
    writer.close();

    // The CLI, with the CA and the admin's file.
    let ca = pki.path("ca.pem").display().to_string();
    let admin_file = server.data_dir().join("admin.credentials");
    let (exit, out, err) = cli_with(server.addr, &admin_file, &["--tls-ca", &ca, "balance", "bob"]);
    assert_eq!(exit, 0, "{out}{err}");
    assert!(out.contains("available: 100.00"), "{out}");
    let line = ["--tls-ca", &ca, "--tls-server-name", "localhost", "transfer", "bob", "alice", "1"];
    let (exit, out, err) = cli_with(server.addr, &admin_file, &line);
    assert_eq!(exit, 0, "{out}{err}");
    // Without --tls-ca the CLI speaks plaintext, which the server refuses and says why.
    let (exit, out, err) = cli_with(server.addr, &admin_file, &["balance", "bob"]);
    assert_eq!(exit, 3, "{out}{err}");
    assert!(err.contains("this server speaks TLS"), "{err}");
    // A name the certificate does not carry is refused by the CLI.
    let line = ["--tls-ca", &ca, "--tls-server-name", "ledger.example", "balance", "bob"];
    let (exit, out, err) = cli_with(server.addr, &admin_file, &line);
    assert_eq!(exit, 3, "{out}{err}");
    assert!(err.contains("not valid for name \"ledger.example\""), "{err}");

    // Nothing secret in the server's output: no client secret, no key material.
    let output = server.output();
    for id in ["admin", "writer", "reader"] {
        let secret = String::from_utf8(credentials(id).1.expose().to_vec()).expect("ASCII");
        assert!(!output.contains(&secret), "{output}");
    }
    assert!(!output.contains("PRIVATE KEY"), "{output}");
}

#[test]
fn a_client_refuses_a_server_its_ca_did_not_sign_and_plaintext_fails_clearly() {
    let pki = Pki::new("test CA");
    let server = start(&pki, false);
    let other = Pki::new("another CA");
    match connect(&server, "admin", other.options(None)) {
        Err(ClientError::Tls { reason, .. }) => {
            assert!(reason.contains("UnknownIssuer"), "{reason}")
        }
        other => panic!("a server from another CA: {other:?}"),
    }
    // A plaintext client to the TLS port: a plaintext ERROR that says why, nothing executed.
    match connect(&server, "admin", options()) {
        Err(ClientError::Refused { code: ErrorCode::MalformedFrame, message, .. }) => {
            assert!(message.contains("this server speaks TLS"), "{message}");
        }
        other => panic!("plaintext to a TLS port: {other:?}"),
    }
    // A TLS client to a plaintext port: the handshake fails and says what it saw.
    let plain = Ledgerd::start_fresh(&[]);
    match connect(&plain, "admin", pki.options(None)) {
        Err(ClientError::Tls { reason, .. }) => {
            assert!(reason.contains("is the server speaking TLS"), "{reason}");
        }
        other => panic!("TLS to a plaintext port: {other:?}"),
    }
    // The server still serves TLS clients after all that.
    connect(&server, "admin", pki.options(None)).expect("connect").ping().expect("ping");
}

#[test]
fn mutual_tls_maps_the_certificate_to_the_hello_client_id() {
    let pki = Pki::new("test CA");
    let server = start(&pki, true);
    assert!(server.output().contains("client certificates required"), "{}", server.output());
    let writer_cert = pki.client("writer");
    let mut writer = connect(&server, "writer", pki.options(Some(&writer_cert))).expect("mTLS");
    let currency =
        CommandBody::DefineCurrency { code: CurrencyCode::new("XAU").expect("code"), scale: 4 };
    // The role is the credential's: transact may not define a currency.
    match writer.submit(vec![(TxId(1), currency)]) {
        Err(ClientError::Refused { code: ErrorCode::Forbidden, .. }) => {}
        other => panic!("a transact client defining a currency: {other:?}"),
    }
    let admin_cert = pki.client("admin");
    let mut admin = connect(&server, "admin", pki.options(Some(&admin_cert))).expect("mTLS");
    let currency =
        CommandBody::DefineCurrency { code: CurrencyCode::new("XAU").expect("code"), scale: 4 };
    assert_eq!(admin.submit(vec![(TxId(2), currency)]).expect("submit")[0].result, ResultCode::Ok);
    let account = open("alice", "XAU", engine::AccountKind::User);
    assert_eq!(admin.submit(vec![(TxId(3), account)]).expect("submit")[0].result, ResultCode::Ok);

    // The writer's certificate with the admin's id and secret: refused.
    match connect(&server, "admin", pki.options(Some(&writer_cert))) {
        Err(ClientError::AuthFailed { message }) => {
            assert!(message.contains("subject CN is not this client id"), "{message}");
        }
        other => panic!("another client's certificate: {other:?}"),
    }
    // A certificate for a client id without a credential: refused like an unknown id.
    let ghost = pki.client("ghost");
    let (_, secret) = credentials("admin");
    let ghost_credentials = ClientCredentials::new("ghost", secret).expect("credentials");
    match Client::connect(server.addr, &ghost_credentials, pki.options(Some(&ghost))) {
        Err(ClientError::AuthFailed { message }) => {
            assert!(message.contains("unknown client id or wrong secret"), "{message}");
        }
        other => panic!("a certificate without a credential: {other:?}"),
    }
    // A certificate without a CN maps to no client.
    pki.sign("no-cn", None, &["client.example"], ExtendedKeyUsagePurpose::ClientAuth);
    let no_cn = (pki.path("no-cn.pem"), pki.path("no-cn.key"));
    assert!(matches!(
        connect(&server, "admin", pki.options(Some(&no_cn))),
        Err(ClientError::AuthFailed { .. })
    ));
    // No certificate, or one from another CA: the server ends the handshake with an alert
    // (TLS 1.3: the client sees it on its first read, the HELLO's reply).
    let other = Pki::new("another CA");
    let foreign = other.client("admin");
    for options in [pki.options(None), pki.options(Some(&foreign))] {
        match connect(&server, "admin", options) {
            Err(ClientError::Handshake { reason, .. } | ClientError::Tls { reason, .. }) => {
                assert!(reason.contains("alert"), "{reason}");
            }
            other => panic!("no or a foreign client certificate: {other:?}"),
        }
    }
    admin.ping().expect("the admin's connection still serves");
}

#[test]
fn plaintext_on_a_non_loopback_address_needs_insecure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let ledgerd = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ledgerd"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "0.0.0.0:0", "--metrics-listen", "off", "--pin-core", "none"])
            .args(extra)
            .output()
            .expect("run ledgerd")
    };
    let refused = ledgerd(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refusing to serve plaintext on 0.0.0.0:0"), "{stderr}");
    assert!(stderr.contains("--insecure"), "{stderr}");
    assert!(!data.exists(), "nothing is created before the check");
    // Half a TLS configuration is refused too.
    let half = ledgerd(&["--tls-client-ca", "/nonexistent/ca.pem"]);
    assert!(!half.status.success());
    let stderr = String::from_utf8_lossy(&half.stderr);
    assert!(stderr.contains("tls_client_ca needs tls_cert and tls_key"), "{stderr}");
    // A config file's `insecure = true` accepts it (the loopback default needs nothing).
    let config = dir.path().join("ledgerd.conf");
    std::fs::write(&config, format!("data_dir = {}\ninsecure = true\n", data.display()))
        .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledgerd"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", "0.0.0.0:0", "--metrics-listen", "off", "--pin-core", "none"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ledgerd");
    let stdout = child.stdout.take().expect("stdout");
    // Ends at the line, or when ledgerd exits (its stdout closes).
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("listening on "));
    let _ = child.kill();
    let _ = child.wait();
    let listening = listening.expect("ledgerd started");
    assert!(listening.starts_with("listening on 0.0.0.0:"), "{listening}");
}

#[test]
fn many_small_pipelined_requests_over_tls_all_come_back() {
    let pki = Pki::new("test CA");
    let server = start(&pki, false);
    let mut admin = connect(&server, "admin", pki.options(None)).expect("TLS connect");
    setup_accounts(&mut admin);
    admin.submit(vec![(TxId(1), deposit("alice", "1000"))]).expect("deposit");
    // New connections, each with a burst of single-transfer requests sent before reading any
    // reply: every round must end with every reply.
    for round in 0..20u128 {
        let options = ClientOptions { in_flight_max: 1_024, ..pki.options(None) };
        let mut writer = connect(&server, "writer", options).expect("TLS connect");
        for n in 0..500u128 {
            let tx_id = TxId(10_000 + round * 1_000 + n);
            writer.send_submit(&[(tx_id, transfer("alice", "bob", "0.01"))]).expect("send");
        }
        for _ in 0..500 {
            let (id, reply) =
                writer.recv().unwrap_or_else(|error| panic!("round {round}: {error}"));
            assert!(matches!(reply, Reply::Submitted(_)), "{id}: {reply:?}");
        }
        writer.close();
    }
}
