//! TLS on the client listener: the server's rustls configuration ([`ServerTls`]), and what a
//! connection keeps of its TLS session ([`TlsSession`]: rustls's `ServerConnection` state
//! machine, fed from the non-blocking socket by the connection itself, no thread and no
//! blocking I/O). Mutual TLS: with a client CA, every client presents a certificate that CA
//! signed, and a HELLO is accepted only for the client id equal to the certificate's subject
//! Common Name (PROTOCOL.md, "TLS").

use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use protocol::tls::{load_certificates, load_private_key, load_roots, provider, TlsError};
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection};

/// TLS records read from the socket per read of plaintext, so a peer sending records without
/// plaintext cannot keep the network thread in one connection.
const TLS_READS_PER_CALL_MAX: u32 = 16;
/// Bytes of TLS records rustls may queue for one connection's socket (plaintext beyond it
/// waits in the connection's own output buffer, which has its own bound).
const TLS_SEND_BUFFER_LEN_BYTES_MAX: usize = 64 * 1024;

/// The listener's TLS configuration.
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    verifies_clients: bool,
}

impl ServerTls {
    /// The certificate chain in `cert` (PEM, leaf first) with its key in `key`; with
    /// `client_ca`, client certificates signed by a CA in that file are required and verified.
    pub fn from_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, TlsError> {
        let config_error = |error: rustls::Error| TlsError::Config { reason: error.to_string() };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(load_roots(ca)?),
                    provider(),
                )
                .build()
                .map_err(|error| TlsError::Config { reason: error.to_string() })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(load_certificates(cert)?, load_private_key(key)?)
            .map_err(config_error)?;
        Ok(ServerTls { config: Arc::new(config), verifies_clients: client_ca.is_some() })
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn verifies_clients(&self) -> bool {
        self.verifies_clients
    }

    /// A session for a new connection.
    pub(crate) fn session(&self) -> Option<TlsSession> {
        let mut session = ServerConnection::new(self.config.clone()).ok()?;
        session.set_buffer_limit(Some(TLS_SEND_BUFFER_LEN_BYTES_MAX));
        Some(TlsSession {
            session,
            failed: false,
            close_queued: false,
            first_read: true,
            plaintext_peer: false,
        })
    }
}

/// One connection's TLS session.
pub(crate) struct TlsSession {
    session: ServerConnection,
    /// The session failed (a bad record, a refused certificate): only its alert goes out.
    failed: bool,
    close_queued: bool,
    /// Nothing was read from the socket yet.
    first_read: bool,
    /// The client's first byte is a frame's (`L` of `LDGR`), which no TLS record starts with:
    /// a plaintext client, told so in plaintext and closed.
    plaintext_peer: bool,
}

impl TlsSession {
    /// Whether TLS records wait for the socket.
    pub(crate) fn wants_write(&self) -> bool {
        self.session.wants_write()
    }

    /// Whether the session failed (its alert may still wait to be written).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Whether the client sent a plaintext frame instead of a TLS handshake.
    pub(crate) fn plaintext_peer(&self) -> bool {
        self.plaintext_peer
    }

    /// Queues a close_notify (once; not after a failure).
    pub(crate) fn queue_close(&mut self) {
        if !self.failed && !self.close_queued {
            self.session.send_close_notify();
            self.close_queued = true;
        }
    }

    /// The subject Common Name of the client's verified certificate, if it has exactly one.
    pub(crate) fn client_common_name(&self) -> Option<String> {
        let certificate = self.session.peer_certificates()?.first()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
        let mut names = parsed.subject().iter_common_name();
        let name = names.next()?.as_str().ok()?.to_owned();
        names.next().is_none().then_some(name)
    }

    /// Reads plaintext into `buf`, reading TLS records from `stream` as needed. `Ok(0)` is the
    /// end (the client's close_notify, or the end of the TCP stream after all plaintext);
    /// `WouldBlock` means the socket is empty; `Interrupted` means read again (records without
    /// plaintext, the per-call bound reached); `InvalidData` is a failed session.
    pub(crate) fn read(&mut self, stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.first_read {
            let mut first = [0u8; 1];
            if stream.peek(&mut first)? == 1 && first[0] == protocol::limits::MAGIC[0] {
                self.failed = true;
                self.plaintext_peer = true;
                return Err(std::io::Error::new(ErrorKind::InvalidData, "a plaintext client"));
            }
            self.first_read = false;
        }
        for _ in 0..TLS_READS_PER_CALL_MAX {
            match self.session.reader().read(buf) {
                Ok(read) => return Ok(read),
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            let mut socket = stream;
            let read = self.session.read_tls(&mut socket)?;
            if let Err(error) = self.session.process_new_packets() {
                self.failed = true;
                return Err(std::io::Error::new(ErrorKind::InvalidData, error));
            }
            if read == 0 {
                return match self.session.reader().read(buf) {
                    Err(error) if error.kind() == ErrorKind::WouldBlock => Ok(0),
                    other => other,
                };
            }
        }
        Err(ErrorKind::Interrupted.into())
    }

    /// Hands `out[*out_written..]` to the session and writes its records to `stream`, until
    /// both are done or the socket is full. `Ok(progress)`: whether the socket took bytes;
    /// `Err`: the connection is broken.
    pub(crate) fn write(
        &mut self,
        stream: &TcpStream,
        out: &[u8],
        out_written: &mut usize,
    ) -> Result<bool, ()> {
        let mut progress = false;
        // Bounded: every pass hands plaintext to rustls (at most its buffer limit) or writes
        // records to the socket, or ends.
        loop {
            let mut taken = 0;
            if *out_written < out.len() && !self.failed {
                taken = self.session.writer().write(&out[*out_written..]).map_err(|_| ())?;
                *out_written += taken;
            }
            if !self.session.wants_write() {
                if taken > 0 {
                    continue;
                }
                return Ok(progress);
            }
            let mut socket = stream;
            match self.session.write_tls(&mut socket) {
                Ok(0) => return Err(()),
                Ok(_) => progress = true,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(progress),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
    }
}
