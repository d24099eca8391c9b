//! Who may connect and what they may do: [`Role`]s, [`Secret`]s (never printed, compared in
//! constant time), the server's credential store ([`Credentials`]: keyed hashes of the
//! secrets, [`SecretHash`], never the secrets) and a client's own entry
//! ([`ClientCredentials`], from its own file, which holds its secret). The file formats are
//! specified in PROTOCOL.md ("Credentials files").

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use engine::TxKind;

use crate::limits::{
    CLIENT_ID_LEN_BYTES_MAX, CLIENT_ID_LEN_BYTES_MIN, CREDENTIALS_ENTRIES_MAX,
    CREDENTIALS_FILE_LEN_BYTES_MAX, GENERATED_SECRET_RANDOM_BYTES, SECRET_LEN_BYTES_MAX,
    SECRET_LEN_BYTES_MIN, SECRET_MAC_LEN_BYTES, SECRET_SALT_LEN_BYTES,
};

/// The environment variable naming the credentials file.
pub const CREDENTIALS_ENV: &str = "LEDGER_CREDENTIALS";
/// The client credentials file used when neither a flag nor [`CREDENTIALS_ENV`] names one:
/// the admin's file a zero-configuration `ledgerd` writes.
pub const CREDENTIALS_PATH_DEFAULT: &str = "./data/admin.credentials";

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
    /// A client read a server's store: it holds the secret's hash, not the secret.
    #[error(
        "{}: client `{client_id}` has only a hash here (this is a server's credentials store); \
         a client needs its own file with the secret (ledgerd writes the admin's to {ADMIN_FILE_NAME} \
         next to its store)",
        path.display()
    )]
    HashOnly {
        /// The file.
        path: PathBuf,
        /// The entry's client id.
        client_id: String,
    },
    /// The store has an entry for this client already.
    #[error("{}: client `{client_id}` has an entry already", path.display())]
    Duplicate {
        /// The store.
        path: PathBuf,
        /// The client id.
        client_id: String,
    },
    /// A new file is never written over an existing one.
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

/// The scheme name of a hashed entry, the third field of its line.
pub const HASH_SCHEME: &str = "hmac-sha256";

/// The keyed hash the server's store keeps instead of a secret: HMAC-SHA256 of the secret,
/// keyed with a random per-entry salt. Secrets are high-entropy random tokens (32 random bytes
/// when generated), so a fast keyed hash cannot be brute-forced from the store, and it costs
/// the network thread about a microsecond per HELLO where a slow password KDF would stall it
/// (PROTOCOL.md, "Credentials files"). `Debug` shows `SecretHash(..)`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    salt: [u8; SECRET_SALT_LEN_BYTES as usize],
    mac: [u8; SECRET_MAC_LEN_BYTES as usize],
}

impl SecretHash {
    /// The hash of `secret` under a fresh random salt.
    pub fn new(secret: &Secret) -> Result<SecretHash, CredentialsError> {
        let mut salt = [0u8; SECRET_SALT_LEN_BYTES as usize];
        getrandom::fill(&mut salt)
            .map_err(|error| CredentialsError::Random { reason: error.to_string() })?;
        Ok(SecretHash::with_salt(secret, salt))
    }

    /// The hash of `secret` under `salt`.
    pub fn with_salt(secret: &Secret, salt: [u8; SECRET_SALT_LEN_BYTES as usize]) -> SecretHash {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &salt);
        let tag = ring::hmac::sign(&key, secret.expose());
        let mut mac = [0u8; SECRET_MAC_LEN_BYTES as usize];
        mac.copy_from_slice(tag.as_ref());
        SecretHash { salt, mac }
    }

    /// Whether `secret` hashes to this, compared in constant time (`ring::hmac::verify`).
    pub fn verify(&self, secret: &Secret) -> bool {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.salt);
        ring::hmac::verify(&key, secret.expose(), &self.mac).is_ok()
    }

    /// The line's fields after the role: `hmac-sha256 SALT_HEX MAC_HEX`.
    fn render_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(HASH_SCHEME.as_bytes());
        out.push(b' ');
        push_hex(&self.salt, out);
        out.push(b' ');
        push_hex(&self.mac, out);
    }

    fn parse(salt_hex: &[u8], mac_hex: &[u8]) -> Option<SecretHash> {
        Some(SecretHash { salt: parse_hex(salt_hex)?, mac: parse_hex(mac_hex)? })
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// One entry of the server's credential store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialEntry {
    /// The client's id.
    pub client_id: String,
    /// What it may do.
    pub role: Role,
    /// Its secret's keyed hash.
    pub hash: SecretHash,
}

/// What a line of a credentials file holds after the client id and the role.
enum Key {
    /// `SECRET`: a client's own file (or a server store not yet migrated).
    Secret(Secret),
    /// `hmac-sha256 SALT MAC`: a server's store.
    Hash(SecretHash),
}

/// One parsed line of a credentials file.
struct Line {
    client_id: String,
    role: Role,
    key: Key,
}

/// Parses the lines of a credentials file in either form (PROTOCOL.md, "Credentials files").
fn parse_lines(text: &[u8], path: &Path) -> Result<Vec<Line>, CredentialsError> {
    let mut lines: Vec<Line> = Vec::new();
    for (index, raw_line) in text.split(|&b| b == b'\n').enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let parse_error = |reason| CredentialsError::Parse { path: path.into(), line, reason };
        let content = raw_line.trim_ascii();
        if content.is_empty() || content.starts_with(b"#") {
            continue;
        }
        let mut fields = content.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
        let fields: [Option<&[u8]>; 6] = std::array::from_fn(|_| fields.next());
        let (client_id, role, key) = match fields {
            [Some(client_id), Some(role), Some(secret), None, None, None] => {
                if !is_valid_secret(secret) {
                    return Err(parse_error("secret must be 16..=128 printable ASCII, no space"));
                }
                (client_id, role, Key::Secret(Secret(secret.to_vec())))
            }
            [Some(client_id), Some(role), Some(scheme), Some(salt), Some(mac), None]
                if scheme == HASH_SCHEME.as_bytes() =>
            {
                let Some(hash) = SecretHash::parse(salt, mac) else {
                    return Err(parse_error(
                        "hash must be hmac-sha256, 32 hex digits of salt, 64 hex digits of mac",
                    ));
                };
                (client_id, role, Key::Hash(hash))
            }
            _ => {
                return Err(parse_error(
                    "expected CLIENT_ID ROLE SECRET or CLIENT_ID ROLE hmac-sha256 SALT MAC",
                ))
            }
        };
        if !is_valid_client_id(client_id) {
            return Err(parse_error("client id must be 1..=64 of A-Z a-z 0-9 . _ -"));
        }
        let Some(role) = Role::from_name(role) else {
            return Err(parse_error("role must be read, transact or admin"));
        };
        if lines.iter().any(|entry| entry.client_id.as_bytes() == client_id) {
            return Err(parse_error("client id already listed on an earlier line"));
        }
        if lines.len() >= CREDENTIALS_ENTRIES_MAX as usize {
            return Err(CredentialsError::TooManyEntries {
                path: path.into(),
                entries_max: CREDENTIALS_ENTRIES_MAX,
            });
        }
        let client_id = String::from_utf8_lossy(client_id).into_owned();
        lines.push(Line { client_id, role, key });
    }
    if lines.is_empty() {
        return Err(CredentialsError::NoEntries { path: path.into() });
    }
    Ok(lines)
}

/// The server's credential store: every client allowed to connect, its role and its secret's
/// keyed hash (never the secret itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    entries: Vec<CredentialEntry>,
    /// Entries that were read as plaintext secrets (hashed on parsing).
    plaintext_entries: u32,
}

/// How [`Credentials::load_or_generate_admin`] found the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// It held hashes only.
    Loaded,
    /// It held `plaintext_entries` secrets in plaintext: it was rewritten with their hashes.
    /// `admin_file` is the admin's client file written first, when there was none, so that the
    /// first admin's secret is not lost with the plaintext.
    Migrated {
        /// Entries whose secret was replaced by its hash.
        plaintext_entries: u32,
        /// The client file written with the first admin entry's secret, if any was written.
        admin_file: Option<PathBuf>,
    },
    /// It did not exist: a new admin was generated, its hash written to the store and its
    /// secret to `admin_file`.
    Generated {
        /// The admin's client file (`CLIENT_ID ROLE SECRET`, mode 0600).
        admin_file: PathBuf,
    },
}

/// A hash the verification runs against when the client id is unknown, so that an unknown id
/// and a wrong secret take the same time.
const DUMMY_HASH: SecretHash = SecretHash {
    salt: [0x5a; SECRET_SALT_LEN_BYTES as usize],
    mac: [0; SECRET_MAC_LEN_BYTES as usize],
};

/// The name of the admin's client file `ledgerd` writes next to its store.
pub const ADMIN_FILE_NAME: &str = "admin.credentials";

impl Credentials {
    /// Reads and validates a credentials store (hashed entries, or plaintext ones, which are
    /// hashed in memory; the file is not changed). Refuses files that group or others may
    /// access.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let mut text = read_private_file(path)?;
        let parsed = Credentials::parse(&text, path);
        text.fill(0);
        parsed
    }

    /// Parses the text of a credentials store (`path` only names it in errors). Plaintext
    /// secrets are hashed under fresh salts.
    pub fn parse(text: &[u8], path: &Path) -> Result<Credentials, CredentialsError> {
        let mut entries = Vec::new();
        let mut plaintext_entries = 0;
        for Line { client_id, role, key } in parse_lines(text, path)? {
            let hash = match key {
                Key::Secret(secret) => {
                    plaintext_entries += 1;
                    SecretHash::new(&secret)?
                }
                Key::Hash(hash) => hash,
            };
            entries.push(CredentialEntry { client_id, role, hash });
        }
        Ok(Credentials { entries, plaintext_entries })
    }

    /// A store of one client, `admin`, role `admin`, with a fresh random secret, and that
    /// secret as the admin's [`ClientCredentials`].
    pub fn generate_admin() -> Result<(Credentials, ClientCredentials), CredentialsError> {
        let secret = Secret::generate()?;
        let entry = CredentialEntry {
            client_id: "admin".into(),
            role: Role::Admin,
            hash: SecretHash::new(&secret)?,
        };
        let client = ClientCredentials { client_id: entry.client_id.clone(), secret };
        Ok((Credentials { entries: vec![entry], plaintext_entries: 0 }, client))
    }

    /// Opens the server's store at `path`: loads it; rewrites it with hashes when it held
    /// plaintext secrets (atomically: a new file, fsynced, renamed over the old one, the
    /// directory fsynced; mode 0600); or, when it does not exist, creates it with a new admin
    /// whose secret goes to `admin.credentials` next to it ([`Opened`] says which). Creates
    /// missing parent directories. Never overwrites an admin client file.
    pub fn load_or_generate_admin(path: &Path) -> Result<(Credentials, Opened), CredentialsError> {
        let admin_file = admin_file_for(path);
        let mut text = match read_private_file(path) {
            Ok(text) => text,
            Err(CredentialsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let (credentials, admin) = Credentials::generate_admin()?;
                write_client_file(&admin_file, &admin, Role::Admin)?;
                if let Err(error) = write_new_private_file(path, &credentials.render()) {
                    let _ = std::fs::remove_file(&admin_file);
                    return Err(error);
                }
                return Ok((credentials, Opened::Generated { admin_file }));
            }
            Err(error) => return Err(error),
        };
        let parsed = Credentials::migrate(&text, path, &admin_file);
        text.fill(0);
        parsed
    }

    /// Parses a store's `text`; if it holds plaintext secrets, writes the first admin's to
    /// `admin_file` (unless that exists) and rewrites the store with hashes.
    fn migrate(
        text: &[u8],
        path: &Path,
        admin_file: &Path,
    ) -> Result<(Credentials, Opened), CredentialsError> {
        let lines = parse_lines(text, path)?;
        let credentials = Credentials::parse(text, path)?;
        if credentials.plaintext_entries == 0 {
            return Ok((credentials, Opened::Loaded));
        }
        let first_admin = lines.iter().find(|line| line.role == Role::Admin);
        let mut written = None;
        if let Some(Line { client_id, role, key: Key::Secret(secret) }) = first_admin {
            if !admin_file.exists() {
                let admin =
                    ClientCredentials { client_id: client_id.clone(), secret: secret.clone() };
                write_client_file(admin_file, &admin, *role)?;
                written = Some(admin_file.to_path_buf());
            }
        }
        replace_private_file(path, &credentials.render())?;
        let opened = Opened::Migrated {
            plaintext_entries: credentials.plaintext_entries,
            admin_file: written,
        };
        Ok((Credentials { plaintext_entries: 0, ..credentials }, opened))
    }

    /// The role of `client_id` if `secret` is its secret. Takes the same time whether the id
    /// is unknown or the secret wrong (one HMAC and a constant-time comparison either way).
    pub fn authenticate(&self, client_id: &str, secret: &Secret) -> Option<Role> {
        let entry = self.entries.iter().find(|entry| entry.client_id == client_id);
        let matches = entry.map_or(&DUMMY_HASH, |entry| &entry.hash).verify(secret);
        match entry {
            Some(entry) if matches => Some(entry.role),
            Some(_) | None => None,
        }
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[CredentialEntry] {
        &self.entries
    }

    /// The store's text for these entries (with a comment header): hashes, no secret.
    pub fn render(&self) -> Vec<u8> {
        let mut text = b"# ledger credentials store: one client per line, CLIENT_ID ROLE hmac-sha256 SALT MAC\n\
                         # ROLE is read, transact or admin. Secrets are not kept here, only their keyed hashes.\n"
            .to_vec();
        for entry in &self.entries {
            text.extend_from_slice(entry.client_id.as_bytes());
            text.push(b' ');
            text.extend_from_slice(entry.role.name().as_bytes());
            text.push(b' ');
            entry.hash.render_into(&mut text);
            text.push(b'\n');
        }
        text
    }
}

/// Where `ledgerd` writes the admin's client file for the store at `store`: next to it.
pub fn admin_file_for(store: &Path) -> PathBuf {
    let admin = store.with_file_name(ADMIN_FILE_NAME);
    if admin == store {
        store.with_file_name(format!("{ADMIN_FILE_NAME}.client"))
    } else {
        admin
    }
}

impl Credentials {
    /// Adds client `client_id` with `role` to the server's store at `store`: a new random
    /// secret is written to the new client file `client_file` (`CLIENT_ID ROLE SECRET`, mode
    /// 0600, never over an existing file), then its hash is added to the store, rewritten
    /// atomically (a plaintext store is hashed on the way). A client id the store has already
    /// is refused, changing nothing; a store that cannot be rewritten leaves no client file.
    /// `ledgerd` reads the store at start: restart it to admit the new client.
    pub fn add_client(
        store: &Path,
        client_id: &str,
        role: Role,
        client_file: &Path,
    ) -> Result<(), CredentialsError> {
        let mut credentials = Credentials::load(store)?;
        if credentials.entries.iter().any(|entry| entry.client_id == client_id) {
            return Err(CredentialsError::Duplicate {
                path: store.into(),
                client_id: client_id.to_owned(),
            });
        }
        if credentials.entries.len() >= CREDENTIALS_ENTRIES_MAX as usize {
            return Err(CredentialsError::TooManyEntries {
                path: store.into(),
                entries_max: CREDENTIALS_ENTRIES_MAX,
            });
        }
        let client = ClientCredentials::new(client_id, Secret::generate()?)?;
        let hash = SecretHash::new(&client.secret)?;
        write_client_file(client_file, &client, role)?;
        credentials.entries.push(CredentialEntry { client_id: client_id.to_owned(), role, hash });
        if let Err(error) = replace_private_file(store, &credentials.render()) {
            let _ = std::fs::remove_file(client_file);
            return Err(error);
        }
        Ok(())
    }
}

/// Writes a new client file (`CLIENT_ID ROLE SECRET`, mode 0600) for `client`.
fn write_client_file(
    path: &Path,
    client: &ClientCredentials,
    role: Role,
) -> Result<(), CredentialsError> {
    let mut text = b"# ledger client credentials: CLIENT_ID ROLE SECRET. Keep this file private (mode 0600).\n"
        .to_vec();
    text.extend_from_slice(client.client_id.as_bytes());
    text.push(b' ');
    text.extend_from_slice(role.name().as_bytes());
    text.push(b' ');
    text.extend_from_slice(client.secret.expose());
    text.push(b'\n');
    let written = write_new_private_file(path, &text);
    text.fill(0);
    written
}

fn push_hex(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.push(HEX[(byte >> 4) as usize]);
        out.push(HEX[(byte & 0x0f) as usize]);
    }
}

/// Lower-case hex digits, exactly `2 * N` of them.
fn parse_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(bytes)
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
        let mut text = read_private_file(path)?;
        let lines = parse_lines(&text, path);
        text.fill(0);
        let lines = lines?;
        let line = match client_id {
            Some(wanted) => {
                lines.iter().find(|line| line.client_id == wanted).ok_or_else(|| {
                    CredentialsError::UnknownClient { path: path.into(), client_id: wanted.into() }
                })?
            }
            None => lines
                .iter()
                .find(|line| line.role == Role::Admin)
                .or(lines.first())
                .ok_or_else(|| CredentialsError::NoEntries { path: path.into() })?,
        };
        match &line.key {
            Key::Secret(secret) => {
                Ok(ClientCredentials { client_id: line.client_id.clone(), secret: secret.clone() })
            }
            Key::Hash(_) => Err(CredentialsError::HashOnly {
                path: path.into(),
                client_id: line.client_id.clone(),
            }),
        }
    }

    /// Where the CLI, the bench and applications read credentials: `path_flag` (`--credentials
    /// FILE`) if given, else `$LEDGER_CREDENTIALS` if set and not empty, else
    /// `./data/admin.credentials`.
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

/// Replaces `path` with `text` atomically: `PATH.tmp` (mode 0600) written and fsynced, renamed
/// over `path`, the directory fsynced. A crash leaves the old file or the whole new one.
fn replace_private_file(path: &Path, text: &[u8]) -> Result<(), CredentialsError> {
    let io_error = |source| CredentialsError::Io { path: path.into(), source };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    match std::fs::remove_file(&tmp) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(io_error(error)),
        Ok(()) | Err(_) => {}
    }
    write_new_private_file(&tmp, text)?;
    if let Err(error) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(error));
    }
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty());
    let dir = std::fs::File::open(parent.unwrap_or(Path::new("."))).map_err(io_error)?;
    dir.sync_all().map_err(io_error)
}

#[cfg(test)]
mod tests;
