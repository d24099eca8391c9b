//! The ledger's front door: the binary wire protocol specified in `protocol/PROTOCOL.md`, the
//! credentials and roles that guard it, and a blocking Rust client library.
//!
//! - [`wire`]: frames (24-byte header, CRC32C) and the body of every operation; encoders write
//!   into caller-owned buffers, decoders never panic and accept only canonical bytes.
//! - [`auth`]: [`Role`]s, [`Secret`]s, the server's [`Credentials`] file and a client's
//!   [`ClientCredentials`].
//! - [`client`]: [`Client`], one authenticated connection with pipelining, per-request
//!   deadlines and the `OutcomeUnknown` retry contract.
//! - [`tls`]: TLS with rustls: PEM loading, the client's [`tls::ClientTls`] and stream.
//! - [`limits`]: every limit, checked against each other at compile time.
//!
//! Nothing here opens a listener or parses a command line: the server (`server`, binary `ledgerd`)
//! and the CLI (`cli`, binary `ledger`) are crates of their own over this one. The server is
//! built on [`wire::FrameBuffer`], [`wire::decode_body`], the
//! `encode_*` fast paths, [`access::admit`] and [`Credentials`]; the client needs only the codec.

#![warn(missing_docs)]

pub mod access;
pub mod auth;
pub mod client;
pub mod group;
pub mod limits;
pub mod tls;
pub mod wire;

pub use auth::{ClientCredentials, Credentials, CredentialsError, Role, Secret};
pub use client::{Client, ClientError, ClientOptions, Reply, Session};
pub use wire::{ErrorCode, Frame, Message, Op, RequestId, WireOutcome};
