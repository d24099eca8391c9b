//! Who may connect and what they may do: [`Role`]s, [`Secret`]s (never printed, compared in
//! constant time), the server's credentials file ([`Credentials`]) and a client's own entry
//! ([`ClientCredentials`]). The file format is specified in PROTOCOL.md ("Credentials file").

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use engine::TxKind;

use crate::limits::{
    CLIENT_ID_LEN_BYTES_MAX, CLIENT_ID_LEN_BYTES_MIN, CREDENTIALS_ENTRIES_MAX,
    CREDENTIALS_FILE_LEN_BYTES_MAX, GENERATED_SECRET_RANDOM_BYTES, SECRET_LEN_BYTES_MAX,
    SECRET_LEN_BYTES_MIN,
};

/// The environment variable naming the credentials file.
pub const CREDENTIALS_ENV: &str = "LEDGER_CREDENTIALS";
/// The credentials file used when neither a flag nor [`CREDENTIALS_ENV`] names one.
pub const CREDENTIALS_PATH_DEFAULT: &str = "./data/credentials";

/// What a client may do. Sent as one byte in HELLO_OK.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u8)]
pub enum Role {
    /// Queries only (QUERY_ACCOUNT, QUERY_TX, PING).
    Read = 0,
    /// Money commands and queries.
    Transact = 1,
    /// Everything: also define currency, open account, status and limits changes.
    Admin = 2,
}

impl Role {
    /// Every role, in code order.
    pub const ALL: [Role; 3] = [Role::Read, Role::Transact, Role::Admin];

    /// The role for a wire byte.
    pub fn from_u8(raw: u8) -> Option<Role> {
        Role::ALL.get(raw as usize).copied()
    }

    /// The name used in the credentials file: `read`, `transact`, `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Transact => "transact",
            Role::Admin => "admin",
        }
    }

    /// The role for its name.
    pub fn from_name(name: &[u8]) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name().as_bytes() == name)
    }

    /// Whether this role may submit a command of `kind`.
    pub fn allows_command(self, kind: TxKind) -> bool {
        let admin_only = match kind {
            TxKind::DefineCurrency
            | TxKind::OpenAccount
            | TxKind::SetAccountStatus
            | TxKind::SetAccountLimits
            | TxKind::SetFee
            | TxKind::SetSettlementCycle
            | TxKind::Cutover => true,
            TxKind::Deposit
            | TxKind::Withdraw
            | TxKind::Transfer
            | TxKind::Freeze
            | TxKind::Unfreeze
            | TxKind::Capture
            | TxKind::SettleBegin
            | TxKind::SettleConfirm
            | TxKind::SettleFail
            | TxKind::Refund => false,
        };
        match self {
            Role::Read => false,
            Role::Transact => !admin_only,
            Role::Admin => true,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `bytes` is a valid client id: 1 to 64 bytes of `A-Z a-z 0-9 . _ -`.
pub fn is_valid_client_id(bytes: &[u8]) -> bool {
    (CLIENT_ID_LEN_BYTES_MIN as usize..=CLIENT_ID_LEN_BYTES_MAX as usize).contains(&bytes.len())
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `bytes` is a valid secret: 16 to 128 bytes of printable ASCII without space.
pub fn is_valid_secret(bytes: &[u8]) -> bool {
    (SECRET_LEN_BYTES_MIN as usize..=SECRET_LEN_BYTES_MAX as usize).contains(&bytes.len())
        && bytes.iter().all(|&b| b.is_ascii_graphic())
}

/// Compares `given` with `expected` in time that depends only on `expected.len()`.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (index, &want) in expected.iter().enumerate() {
        diff |= given.get(index).copied().unwrap_or(0) ^ want;
    }
    std::hint::black_box(diff) == 0
}

/// A client's secret. Never printed (`Debug` shows `Secret(..)`), compared in constant time,
/// overwritten with zeros when dropped.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Validates `bytes` (16 to 128 bytes of printable ASCII without space).
    pub fn new(bytes: &[u8]) -> Result<Secret, CredentialsError> {
        if is_valid_secret(bytes) {
            Ok(Secret(bytes.to_vec()))
        } else {
            Err(CredentialsError::Invalid { what: "secret (16..=128 printable ASCII, no space)" })
        }
    }

    /// A new random secret: 32 bytes from the operating system, as 64 lower-case hex digits.
    pub fn generate() -> Result<Secret, CredentialsError> {
        let mut random = [0u8; GENERATED_SECRET_RANDOM_BYTES as usize];
        getrandom::fill(&mut random)
            .map_err(|error| CredentialsError::Random { reason: error.to_string() })?;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = Vec::with_capacity(random.len() * 2);
        for byte in random {
            text.push(HEX[(byte >> 4) as usize]);
            text.push(HEX[(byte & 0x0f) as usize]);
        }
        random.fill(0);
        Ok(Secret(text))
    }

    /// The secret's bytes, to put on the wire. Handle with care: never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// Why credentials could not be read, parsed or written. Never contains a secret, nor any
/// other field of the file (a misplaced secret must not end up in a log).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than `CREDENTIALS_FILE_LEN_BYTES_MAX`.
    #[error("{}: larger than {len_bytes_max} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        len_bytes_max: u64,
    },
    /// Group or others may access the file.
    #[error("{}: mode {mode:03o} lets others read it; run `chmod 600` on it", path.display())]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not `CLIENT_ID ROLE SECRET`, or a field is invalid.
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: u32,
        /// What is wrong (names the field, never shows it).
        reason: &'static str,
    },
    /// More entries than `CREDENTIALS_ENTRIES_MAX`.
    #[error("{}: more than {entries_max} entries", path.display())]
    TooManyEntries {
        /// The file.
        path: PathBuf,
        /// The limit.
        entries_max: u32,
    },
    /// The file has no entry at all.
    #[error("{}: no `CLIENT_ID ROLE SECRET` entry", path.display())]
    NoEntries {
        /// The file.
        path: PathBuf,
    },
    /// The file has no entry for the requested client.
    #[error("{}: no entry for client `{client_id}`", path.display())]
    UnknownClient {
        /// The file.
        path: PathBuf,
        /// The requested client id.
        client_id: String,
    },
    /// `generate_admin` never overwrites a file.
    #[error("{}: already exists", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A client id or secret given in code is invalid.
    #[error("invalid {what}")]
    Invalid {
        /// Which field and its rule.
        what: &'static str,
    },
    /// The operating system's random source failed.
    #[error("cannot generate a secret: {reason}")]
    Random {
        /// What failed.
        reason: String,
    },
}

/// One line of the credentials file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialEntry {
    /// The client's id.
    pub client_id: String,
    /// What it may do.
    pub role: Role,
    /// Its secret.
    pub secret: Secret,
}

/// The server's credential store: every client allowed to connect, its role and secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    entries: Vec<CredentialEntry>,
}

/// A secret the comparison runs against when the client id is unknown, so that an unknown id
/// and a wrong secret take the same time.
const DUMMY_SECRET: &[u8; SECRET_LEN_BYTES_MAX as usize] = &[b'x'; SECRET_LEN_BYTES_MAX as usize];

impl Credentials {
    /// Reads and validates a credentials file. Refuses files that group or others may access.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let mut text = read_private_file(path)?;
        let parsed = Credentials::parse(&text, path);
        text.fill(0);
        parsed
    }

    /// Parses the text of a credentials file (`path` only names it in errors).
    pub fn parse(text: &[u8], path: &Path) -> Result<Credentials, CredentialsError> {
        let mut entries: Vec<CredentialEntry> = Vec::new();
        for (index, raw_line) in text.split(|&b| b == b'\n').enumerate() {
            let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let parse_error = |reason| CredentialsError::Parse { path: path.into(), line, reason };
            let content = raw_line.trim_ascii();
            if content.is_empty() || content.starts_with(b"#") {
                continue;
            }
            let mut fields = content.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
            let (Some(client_id), Some(role), Some(secret), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(parse_error("expected three fields: CLIENT_ID ROLE SECRET"));
            };
            if !is_valid_client_id(client_id) {
                return Err(parse_error("client id must be 1..=64 of A-Z a-z 0-9 . _ -"));
            }
            let Some(role) = Role::from_name(role) else {
                return Err(parse_error("role must be read, transact or admin"));
            };
            if !is_valid_secret(secret) {
                return Err(parse_error("secret must be 16..=128 printable ASCII, no space"));
            }
            if entries.iter().any(|entry| entry.client_id.as_bytes() == client_id) {
                return Err(parse_error("client id already listed on an earlier line"));
            }
            if entries.len() >= CREDENTIALS_ENTRIES_MAX as usize {
                return Err(CredentialsError::TooManyEntries {
                    path: path.into(),
                    entries_max: CREDENTIALS_ENTRIES_MAX,
                });
            }
            entries.push(CredentialEntry {
                client_id: String::from_utf8_lossy(client_id).into_owned(),
                role,
                secret: Secret(secret.to_vec()),
            });
        }
        if entries.is_empty() {
            return Err(CredentialsError::NoEntries { path: path.into() });
        }
        Ok(Credentials { entries })
    }

    /// Creates a new credentials file at `path` (never overwriting one) with one client,
    /// `admin`, role `admin`, and a fresh random secret; mode 0600. Creates missing parent
    /// directories.
    pub fn generate_admin(path: &Path) -> Result<Credentials, CredentialsError> {
        let credentials = Credentials {
            entries: vec![CredentialEntry {
                client_id: "admin".into(),
                role: Role::Admin,
                secret: Secret::generate()?,
            }],
        };
        let mut text = credentials.render();
        let written = write_new_private_file(path, &text);
        text.fill(0);
        written.map(|()| credentials)
    }

    /// [`Credentials::load`], or [`Credentials::generate_admin`] when the file does not exist
    /// (`true`: it was generated).
    pub fn load_or_generate_admin(path: &Path) -> Result<(Credentials, bool), CredentialsError> {
        match Credentials::load(path) {
            Err(CredentialsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok((Credentials::generate_admin(path)?, true))
            }
            other => other.map(|credentials| (credentials, false)),
        }
    }

    /// The role of `client_id` if `secret` is its secret. Takes the same time whether the id
    /// is unknown or the secret wrong.
    pub fn authenticate(&self, client_id: &str, secret: &Secret) -> Option<Role> {
        let entry = self.entries.iter().find(|entry| entry.client_id == client_id);
        let expected = entry.map_or(&DUMMY_SECRET[..], |entry| entry.secret.expose());
        let matches = constant_time_eq(secret.expose(), expected);
        match entry {
            Some(entry) if matches => Some(entry.role),
            Some(_) | None => None,
        }
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[CredentialEntry] {
        &self.entries
    }

    /// The file text for these entries (with a comment header). Contains the secrets.
    pub fn render(&self) -> Vec<u8> {
        let mut text = b"# ledger credentials: one client per line, CLIENT_ID ROLE SECRET\n\
                         # ROLE is read, transact or admin. Keep this file private (mode 0600).\n"
            .to_vec();
        for entry in &self.entries {
            text.extend_from_slice(entry.client_id.as_bytes());
            text.push(b' ');
            text.extend_from_slice(entry.role.name().as_bytes());
            text.push(b' ');
            text.extend_from_slice(entry.secret.expose());
            text.push(b'\n');
        }
        text
    }
}

/// The identity a client presents in HELLO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCredentials {
    client_id: String,
    secret: Secret,
}

impl ClientCredentials {
    /// Validates a client id and takes its secret.
    pub fn new(client_id: &str, secret: Secret) -> Result<ClientCredentials, CredentialsError> {
        if !is_valid_client_id(client_id.as_bytes()) {
            return Err(CredentialsError::Invalid {
                what: "client id (1..=64 of A-Z a-z 0-9 . _ -)",
            });
        }
        Ok(ClientCredentials { client_id: client_id.into(), secret })
    }

    /// The entry for `client_id` in the credentials file at `path`; with `None`, the first
    /// `admin` entry, or else the first entry of the file.
    pub fn from_file(
        path: &Path,
        client_id: Option<&str>,
    ) -> Result<ClientCredentials, CredentialsError> {
        let credentials = Credentials::load(path)?;
        let entries = credentials.entries();
        let entry = match client_id {
            Some(wanted) => {
                entries.iter().find(|entry| entry.client_id == wanted).ok_or_else(|| {
                    CredentialsError::UnknownClient { path: path.into(), client_id: wanted.into() }
                })?
            }
            None => entries
                .iter()
                .find(|entry| entry.role == Role::Admin)
                .or(entries.first())
                .ok_or_else(|| CredentialsError::NoEntries { path: path.into() })?,
        };
        Ok(ClientCredentials { client_id: entry.client_id.clone(), secret: entry.secret.clone() })
    }

    /// Where the CLI, the bench and applications read credentials: `path_flag` (`--credentials
    /// FILE`) if given, else `$LEDGER_CREDENTIALS` if set and not empty, else
    /// `./data/credentials`.
    pub fn resolve_path(path_flag: Option<&Path>) -> PathBuf {
        if let Some(path) = path_flag {
            return path.into();
        }
        match std::env::var_os(CREDENTIALS_ENV) {
            Some(value) if !value.is_empty() => PathBuf::from(value),
            Some(_) | None => PathBuf::from(CREDENTIALS_PATH_DEFAULT),
        }
    }

    /// [`ClientCredentials::from_file`] with no client id (first admin entry, else the first
    /// entry) on the file [`ClientCredentials::resolve_path`] picks.
    pub fn from_env_or_default(
        path_flag: Option<&Path>,
    ) -> Result<ClientCredentials, CredentialsError> {
        ClientCredentials::from_file(&ClientCredentials::resolve_path(path_flag), None)
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

/// Reads a file of at most `CREDENTIALS_FILE_LEN_BYTES_MAX` that only its owner may access.
fn read_private_file(path: &Path) -> Result<Vec<u8>, CredentialsError> {
    let io_error = |source| CredentialsError::Io { path: path.into(), source };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialsError::InsecurePermissions { path: path.into(), mode });
        }
    }
    if metadata.len() > CREDENTIALS_FILE_LEN_BYTES_MAX {
        return Err(CredentialsError::TooLarge {
            path: path.into(),
            len_bytes_max: CREDENTIALS_FILE_LEN_BYTES_MAX,
        });
    }
    let mut text = Vec::with_capacity(metadata.len() as usize);
    // The file may grow between `metadata` and `read`: never read past the limit.
    file.take(CREDENTIALS_FILE_LEN_BYTES_MAX + 1).read_to_end(&mut text).map_err(io_error)?;
    if text.len() as u64 > CREDENTIALS_FILE_LEN_BYTES_MAX {
        text.fill(0);
        return Err(CredentialsError::TooLarge {
            path: path.into(),
            len_bytes_max: CREDENTIALS_FILE_LEN_BYTES_MAX,
        });
    }
    Ok(text)
}

/// Creates `path` (never replacing a file) with mode 0600, writes `text` and syncs it. On a
/// failure after creating it, removes it again, so a half-written file is never left behind.
fn write_new_private_file(path: &Path, text: &[u8]) -> Result<(), CredentialsError> {
    let io_error = |source| CredentialsError::Io { path: path.into(), source };
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            CredentialsError::Exists { path: path.into() }
        } else {
            io_error(source)
        }
    })?;
    let written = file.write_all(text).and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(io_error(source));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
