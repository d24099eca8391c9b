//! TLS, with rustls (the `ring` provider): the PEM files both sides load ([`load_certificates`],
//! [`load_private_key`], [`load_roots`]), the client's configuration ([`ClientTls`]) and the
//! client's stream over a blocking socket ([`Stream`], used by [`crate::Client`]). The
//! protocol runs inside TLS unchanged (PROTOCOL.md, "TLS").
//!
//! The client verifies the server's certificate chain against the CA it is given (only that
//! CA: no system roots) and the certificate's name against the server name: the one given, or
//! else the IP address it connected to. With a client certificate it also presents that
//! (mutual TLS).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::limits::TLS_FILE_LEN_BYTES_MAX;

/// Why a TLS setup failed. Never shows a key's bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read, or is not what it should be.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The server name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {name:?}")]
    ServerName {
        /// The name given.
        name: String,
    },
    /// rustls refused the configuration (a key that does not match its certificate, ...).
    #[error("TLS configuration: {reason}")]
    Config {
        /// rustls's words.
        reason: String,
    },
}

/// The crypto provider every configuration here uses: rustls's `ring` provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM file of at most `TLS_FILE_LEN_BYTES_MAX`.
fn read_pem_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    let file_error = |reason: String| TlsError::File { path: path.into(), reason };
    let file = std::fs::File::open(path).map_err(|error| file_error(error.to_string()))?;
    let mut bytes = Vec::new();
    file.take(TLS_FILE_LEN_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| file_error(error.to_string()))?;
    if bytes.len() as u64 > TLS_FILE_LEN_BYTES_MAX {
        bytes.fill(0);
        return Err(file_error(format!("larger than {TLS_FILE_LEN_BYTES_MAX} bytes")));
    }
    Ok(bytes)
}

/// Every certificate (PEM `CERTIFICATE` block) in `path`, in order; at least one.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem_file(path)?;
    let certificates: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    let file_error = |reason: &str| TlsError::File { path: path.into(), reason: reason.into() };
    let certificates = certificates.map_err(|_| file_error("not a PEM file of certificates"))?;
    if certificates.is_empty() {
        return Err(file_error("no certificate in it (PEM `CERTIFICATE` blocks)"));
    }
    Ok(certificates)
}

/// The private key (PKCS#8, PKCS#1 or SEC1 PEM) in `path`. Errors never quote the file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut bytes = read_pem_file(path)?;
    let key = PrivateKeyDer::from_pem_slice(&bytes);
    bytes.fill(0);
    key.map_err(|_| TlsError::File {
        path: path.into(),
        reason: "no PEM private key in it (PKCS#8, PKCS#1 or SEC1)".into(),
    })
}

/// The CA certificates in `path` as trust anchors.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in load_certificates(path)? {
        roots.add(certificate).map_err(|error| TlsError::File {
            path: path.into(),
            reason: format!("not a usable CA certificate: {error}"),
        })?;
    }
    Ok(roots)
}

/// How a client speaks TLS: the rustls configuration (trusted CA, optional client
/// certificate) and the name the server's certificate must carry (`None`: the IP address the
/// client connected to).
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl ClientTls {
    /// Trusts the CA certificates in `ca` (only those), presents the certificate chain and key
    /// of `client_cert` = (certificate file, key file) when given, and expects `server_name`
    /// (a DNS name or an IP address; `None`: the address connected to).
    pub fn from_files(
        ca: &Path,
        client_cert: Option<(&Path, &Path)>,
        server_name: Option<&str>,
    ) -> Result<ClientTls, TlsError> {
        let roots = load_roots(ca)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config { reason: error.to_string() })?
            .with_root_certificates(roots);
        let config = match client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(load_certificates(cert)?, load_private_key(key)?)
                .map_err(|error| TlsError::Config { reason: error.to_string() })?,
        };
        let server_name = match server_name {
            None => None,
            Some(name) => Some(
                ServerName::try_from(name.to_owned())
                    .map_err(|_| TlsError::ServerName { name: name.into() })?,
            ),
        };
        Ok(ClientTls { config: Arc::new(config), server_name })
    }

    /// A configuration built elsewhere.
    pub fn from_config(
        config: Arc<ClientConfig>,
        server_name: Option<ServerName<'static>>,
    ) -> ClientTls {
        ClientTls { config, server_name }
    }

    /// A new TLS client session with the server at `peer`.
    fn session(&self, peer: SocketAddr) -> Result<ClientConnection, rustls::Error> {
        let name = self.server_name.clone().unwrap_or_else(|| ServerName::from(peer.ip()));
        ClientConnection::new(self.config.clone(), name)
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &ClientTls) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

impl Eq for ClientTls {}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("client_certificate", &self.config.client_auth_cert_resolver.has_certs())
            .finish()
    }
}

/// The client's connection: plain TCP, or TLS over it. Reads and writes follow the socket's
/// timeouts and blocking mode, as [`TcpStream`]'s do; a TLS read never writes and a TLS write
/// never reads, so a client blocked writing can still read replies in between.
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls {
        /// The socket.
        tcp: TcpStream,
        /// The TLS session.
        session: Box<ClientConnection>,
    },
}

impl Stream {
    /// Opens `tls` over `tcp` and completes the handshake by `deadline`, or plain TCP.
    pub(crate) fn new(
        tcp: TcpStream,
        peer: SocketAddr,
        tls: Option<&ClientTls>,
        deadline: Instant,
    ) -> Result<Stream, String> {
        let Some(tls) = tls else { return Ok(Stream::Plain(tcp)) };
        let mut session = tls.session(peer).map_err(|error| error.to_string())?;
        // Bounded by the deadline: each pass either moves handshake bytes or waits on the
        // socket's timeout.
        while session.is_handshaking() {
            let now = Instant::now();
            if now >= deadline {
                return Err("no TLS handshake before the deadline".into());
            }
            tcp.set_read_timeout(Some(deadline - now)).map_err(|error| error.to_string())?;
            match session.complete_io(&mut &tcp) {
                Ok((0, 0)) => return Err("the server closed the connection".into()),
                Ok(_) => {}
                Err(error) if is_wait(&error) => {}
                Err(error) => return Err(tls_reason(&error)),
            }
        }
        Ok(Stream::Tls { tcp, session: Box::new(session) })
    }

    /// The socket (for timeouts, blocking mode, shutdown).
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) | Stream::Tls { tcp, .. } => tcp,
        }
    }

    /// Whether TLS records wait to be written to the socket.
    pub(crate) fn has_pending_output(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls { session, .. } => session.wants_write(),
        }
    }

    /// Writes the TLS records that wait (blocking as the socket does).
    pub(crate) fn write_pending(&mut self) -> std::io::Result<()> {
        let Stream::Tls { tcp, session } = self else { return Ok(()) };
        // Bounded: each pass writes at least one byte or returns.
        while session.wants_write() {
            if session.write_tls(&mut &*tcp)? == 0 {
                return Err(ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (tcp, session) = match self {
            Stream::Plain(tcp) => return tcp.read(buf),
            Stream::Tls { tcp, session } => (tcp, session),
        };
        // Bounded: a socket read per pass, and a peer cannot keep it from ending without
        // sending bytes (each pass reads some, or returns).
        loop {
            match session.reader().read(buf) {
                Ok(read) => return Ok(read),
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            let read = session.read_tls(&mut &*tcp)?;
            session.process_new_packets().map_err(|error| {
                std::io::Error::new(ErrorKind::InvalidData, format!("TLS: {error}"))
            })?;
            if read == 0 {
                // The end of the TCP stream: what was decrypted, then `Ok(0)` after the
                // server's close_notify, else an `UnexpectedEof` error.
                return session.reader().read(buf);
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Stream::Plain(tcp) = self {
            return tcp.write(buf);
        }
        // Records of earlier writes first, so rustls's buffer has room (an error here means
        // nothing of `buf` was taken).
        self.write_pending()?;
        let Stream::Tls { tcp, session } = self else { return Ok(0) };
        let taken = session.writer().write(buf)?;
        // Best effort now; what the socket does not take goes with the next write or with
        // `write_pending`.
        while session.wants_write() {
            match session.write_tls(&mut &*tcp) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(error) if is_wait(&error) => break,
                Err(error) => return Err(error),
            }
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.write_pending()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Stream::Tls { tcp, session } = self {
            // Best effort, without waiting long: the server then sees a clean end.
            session.send_close_notify();
            let _ = tcp.set_nonblocking(true);
            let _ = session.write_tls(&mut &*tcp);
        }
    }
}

/// A timeout or a would-block: wait and try again.
fn is_wait(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted)
}

/// A handshake failure in words, with a hint for the commonest one.
fn tls_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        return format!(
            "{text} (is the server speaking TLS? plaintext ledgerd answers in plain frames)"
        );
    }
    text
}

#[cfg(test)]
mod tests;
