//! Tests of roles, secrets and the credentials file: parsing rules line by line, file
//! permissions, generation, authentication and the client's choice of entry.

use std::os::unix::fs::PermissionsExt;

use engine::{Amount, CommandBody, TxId, TxKind};

use super::*;
use crate::access::admit;
use crate::wire::{ErrorCode, Message};

const PROTOCOL_MD: &str = include_str!("../../PROTOCOL.md");
const SECRET_A: &str = "aaaaaaaaaaaaaaaa-secret";
const SECRET_B: &str = "bbbbbbbbbbbbbbbb-secret";
const SALT: &str = "00112233445566778899aabbccddeeff";
const MAC: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn secret(text: &str) -> Secret {
    Secret::new(text.as_bytes()).expect("valid secret")
}

/// Parses `text`; on error, the error's message (which must not contain any secret).
fn check(text: &str) -> Result<Credentials, String> {
    Credentials::parse(text.as_bytes(), Path::new("creds")).map_err(|error| {
        let message = error.to_string();
        for field in text.split_whitespace().filter(|field| field.contains("secret")) {
            assert!(!message.contains(field), "{message} shows a secret");
        }
        message
    })
}

#[test]
fn parses_entries_comments_blank_lines_and_crlf() {
    let text = format!(
        "# comment\n\n  admin   admin {SECRET_A}\r\n\tbench\ttransact\t{SECRET_B}  \n  # x y z\n\
         auditor.1 read {SECRET_A}\n"
    );
    let credentials = check(&text).expect("valid file");
    let entries: Vec<(&str, Role)> =
        credentials.entries().iter().map(|e| (e.client_id.as_str(), e.role)).collect();
    assert_eq!(
        entries,
        [("admin", Role::Admin), ("bench", Role::Transact), ("auditor.1", Role::Read)]
    );
    assert!(credentials.entries()[1].hash.verify(&secret(SECRET_B)));
    assert!(!credentials.entries()[1].hash.verify(&secret(SECRET_A)));
    // The store's text holds the hashes, which read back as the same entries, and no secret.
    let text = credentials.render();
    let rendered = Credentials::parse(&text, Path::new("x")).expect("valid");
    assert_eq!(rendered.entries(), credentials.entries());
    let text = String::from_utf8(text).expect("ASCII");
    assert!(!text.contains(SECRET_A) && !text.contains(SECRET_B), "{text}");
    assert!(text.contains("\nbench transact hmac-sha256 "), "{text}");
}

#[test]
fn refuses_bad_lines_with_their_number_and_without_their_content() {
    let cases = [
        (format!("admin admin {SECRET_A} extra"), "creds:1: expected CLIENT_ID ROLE SECRET or"),
        ("admin admin".to_string(), "creds:1: expected CLIENT_ID ROLE SECRET or"),
        (format!("# ok\nad min admin {SECRET_A}"), "creds:2: expected CLIENT_ID ROLE SECRET or"),
        (format!("a admin hmac-sha256 {SALT} {MAC} x"), "creds:1: expected CLIENT_ID ROLE SECRET"),
        (format!("a admin hmac-sha512 {SALT} {MAC}"), "creds:1: expected CLIENT_ID ROLE SECRET"),
        (format!("a admin hmac-sha256 {SALT}0 {MAC}"), "creds:1: hash must be"),
        (format!("a admin hmac-sha256 {SALT} {}", &MAC[1..]), "creds:1: hash must be"),
        (format!("a admin hmac-sha256 {} {MAC}", SALT.to_uppercase()), "creds:1: hash must be"),
        (format!("a admin hmac-sha256 {SALT} g{}", &MAC[1..]), "creds:1: hash must be"),
        (format!("a! admin hmac-sha256 {SALT} {MAC}"), "creds:1: client id must be"),
        (format!("a boss hmac-sha256 {SALT} {MAC}"), "creds:1: role must be"),
        (format!("adm!n admin {SECRET_A}"), "creds:1: client id must be"),
        (format!("{} admin {SECRET_A}", "a".repeat(65)), "creds:1: client id must be"),
        (format!("admin root {SECRET_A}"), "creds:1: role must be"),
        (format!("admin Admin {SECRET_A}"), "creds:1: role must be"),
        ("admin admin short-secret".into(), "creds:1: secret must be"),
        (format!("admin admin {}", "s".repeat(129)), "creds:1: secret must be"),
        ("admin admin sécret-sécret-sécret".into(), "creds:1: secret must be"),
        (format!("a read {SECRET_A}\na admin {SECRET_B}"), "creds:2: client id already listed"),
        ("# nothing here\n\n".into(), "creds: no `CLIENT_ID ROLE SECRET` entry"),
    ];
    for (text, expected) in cases {
        let message = check(&text).expect_err("invalid file");
        assert!(message.starts_with(expected), "{text:?}: {message}");
    }
    let many: String =
        (0..=CREDENTIALS_ENTRIES_MAX).map(|i| format!("c{i} read {SECRET_A}\n")).collect();
    assert_eq!(check(&many).expect_err("too many"), "creds: more than 1024 entries");
}

/// The fenced block of PROTOCOL.md that starts with `first_line`.
fn protocol_md_block(first_line: &str) -> &'static str {
    let start = PROTOCOL_MD.find(first_line).expect("PROTOCOL.md shows the file");
    let end = start + PROTOCOL_MD[start..].find("```").expect("the block ends");
    &PROTOCOL_MD[start..end]
}

#[test]
fn the_examples_in_protocol_md_parse() {
    let store = protocol_md_block("# ledger credentials store:");
    let credentials = check(store).expect("the documented store is valid");
    assert_eq!(credentials.entries().len(), 3);
    assert_eq!(credentials.plaintext_entries, 0, "the documented store holds hashes only");
    // The documented admin secret is the one the store's first entry was made from.
    let client = protocol_md_block("# ledger client credentials:");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("admin.credentials");
    std::fs::write(&path, client).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let admin = ClientCredentials::from_file(&path, None).expect("the documented client file");
    assert_eq!(credentials.authenticate(admin.client_id(), admin.secret()), Some(Role::Admin));
    // The generated headers are the ones documented.
    let rendered = Credentials { entries: Vec::new(), plaintext_entries: 0 }.render();
    assert!(store.starts_with(std::str::from_utf8(&rendered).expect("ASCII")));
    let written = dir.path().join("written");
    write_client_file(&written, &admin, Role::Admin).expect("writes");
    let written = std::fs::read_to_string(&written).expect("reads");
    assert!(client.starts_with(written.lines().next().expect("a header")));
}

#[test]
fn a_missing_store_is_generated_with_the_admin_secret_beside_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data").join("credentials");
    let (generated, opened) = Credentials::load_or_generate_admin(&path).expect("generates");
    let admin_file = dir.path().join("data").join(ADMIN_FILE_NAME);
    assert_eq!(opened, Opened::Generated { admin_file: admin_file.clone() });
    for file in [&path, &admin_file] {
        let mode = std::fs::metadata(file).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let entry = &generated.entries()[0];
    assert_eq!((entry.client_id.as_str(), entry.role), ("admin", Role::Admin));
    let admin = ClientCredentials::from_file(&admin_file, None).expect("the admin's file");
    let secret_text = admin.secret().expose();
    assert_eq!(secret_text.len(), 2 * GENERATED_SECRET_RANDOM_BYTES as usize);
    assert!(secret_text.iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(generated.authenticate("admin", admin.secret()), Some(Role::Admin));
    let store = std::fs::read(&path).expect("reads");
    assert!(!store.windows(secret_text.len()).any(|w| w == secret_text), "no secret in the store");
    assert_eq!(Credentials::load(&path).expect("loads"), generated);

    let (loaded, opened) = Credentials::load_or_generate_admin(&path).expect("loads");
    assert_eq!((loaded, opened), (generated.clone(), Opened::Loaded));
    // The store is not a client's file.
    let error = ClientCredentials::from_file(&path, None).expect_err("hashes only");
    assert!(matches!(error, CredentialsError::HashOnly { .. }), "{error}");
    assert!(error.to_string().contains("admin.credentials"), "{error}");

    // A store gone while the admin's file stays: refused, the admin's file is kept.
    std::fs::remove_file(&path).expect("remove");
    let error = Credentials::load_or_generate_admin(&path).expect_err("admin file exists");
    assert!(matches!(error, CredentialsError::Exists { .. }), "{error}");
    assert!(!path.exists());
    let kept = ClientCredentials::from_file(&admin_file, None).expect("kept");
    assert_eq!(kept.secret(), admin.secret());

    let other = dir.path().join("other").join("credentials");
    let (fresh, _) = Credentials::load_or_generate_admin(&other).expect("generates");
    assert!(!fresh.entries()[0].hash.verify(admin.secret()), "secrets are random");
}

#[test]
fn a_plaintext_store_is_migrated_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("credentials");
    let text = format!("bench transact {SECRET_B}\nops admin {SECRET_A}\nroot admin {SECRET_B}\n");
    std::fs::write(&path, &text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (migrated, opened) = Credentials::load_or_generate_admin(&path).expect("migrates");
    let admin_file = dir.path().join(ADMIN_FILE_NAME);
    let expected = Opened::Migrated { plaintext_entries: 3, admin_file: Some(admin_file.clone()) };
    assert_eq!(opened, expected);
    let store = std::fs::read_to_string(&path).expect("reads");
    assert!(!store.contains(SECRET_A) && !store.contains(SECRET_B), "{store}");
    assert_eq!(std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777, 0o600);
    assert!(!dir.path().join("credentials.tmp").exists());
    let expected = [
        ("bench", SECRET_B, Role::Transact),
        ("ops", SECRET_A, Role::Admin),
        ("root", SECRET_B, Role::Admin),
    ];
    for (id, secret_text, role) in expected {
        assert_eq!(migrated.authenticate(id, &secret(secret_text)), Some(role));
    }
    // The first admin's secret was kept for its client, as a fresh start does.
    let admin = ClientCredentials::from_file(&admin_file, None).expect("the admin's file");
    assert_eq!((admin.client_id(), admin.secret()), ("ops", &secret(SECRET_A)));
    // Loading again changes nothing.
    let (again, opened) = Credentials::load_or_generate_admin(&path).expect("loads");
    assert_eq!((again, opened), (migrated, Opened::Loaded));
    assert_eq!(std::fs::read_to_string(&path).expect("reads"), store);

    // An existing admin file is never overwritten.
    std::fs::write(&path, format!("ops admin {SECRET_B}\n")).expect("write");
    let (_, opened) = Credentials::load_or_generate_admin(&path).expect("migrates");
    assert_eq!(opened, Opened::Migrated { plaintext_entries: 1, admin_file: None });
    let admin = ClientCredentials::from_file(&admin_file, None).expect("the admin's file");
    assert_eq!(admin.secret(), &secret(SECRET_A));
}

#[test]
fn load_refuses_files_others_can_read_and_oversized_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("credentials");
    std::fs::write(&path, format!("admin admin {SECRET_A}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = Credentials::load(&path).expect_err("world-readable");
    assert!(matches!(error, CredentialsError::InsecurePermissions { mode: 0o644, .. }));
    assert!(error.to_string().contains("chmod 600"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    assert!(Credentials::load(&path).is_ok());

    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'#'; CREDENTIALS_FILE_LEN_BYTES_MAX as usize + 1]).expect("write");
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(matches!(Credentials::load(&big), Err(CredentialsError::TooLarge { .. })));

    let missing = Credentials::load(&dir.path().join("missing")).expect_err("missing");
    assert!(matches!(missing, CredentialsError::Io { .. }));
}

#[test]
fn authenticate_checks_id_and_secret() {
    let credentials =
        check(&format!("admin admin {SECRET_A}\nreader read {SECRET_B}\n")).expect("valid");
    assert_eq!(credentials.authenticate("admin", &secret(SECRET_A)), Some(Role::Admin));
    assert_eq!(credentials.authenticate("reader", &secret(SECRET_B)), Some(Role::Read));
    assert_eq!(credentials.authenticate("admin", &secret(SECRET_B)), None);
    assert_eq!(credentials.authenticate("nobody", &secret(SECRET_A)), None);
    assert_eq!(credentials.authenticate("admin", &secret(&format!("{SECRET_A}x"))), None);
}

#[test]
fn constant_time_eq_compares_whole_slices() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abd", b"abc"));
    assert!(!constant_time_eq(b"ab", b"abc"));
    assert!(!constant_time_eq(b"abcd", b"abc"));
    assert!(!constant_time_eq(b"", b"a"));
    assert!(constant_time_eq(b"", b""));
}

#[test]
fn secrets_never_show_in_debug_output() {
    let credentials = check(&format!("admin admin {SECRET_A}")).expect("valid");
    let client = ClientCredentials::new("admin", secret(SECRET_A)).expect("valid");
    let hello =
        Message::Hello(crate::wire::Hello { client_id: "admin".into(), secret: secret(SECRET_A) });
    for debug in [format!("{client:?}"), format!("{hello:?}")] {
        assert!(!debug.contains(SECRET_A), "{debug}");
        assert!(debug.contains("Secret(..)"), "{debug}");
    }
    let hashed = format!("{credentials:?}");
    assert!(hashed.contains("SecretHash(..)"), "{hashed}");
    let rendered = String::from_utf8(credentials.render()).expect("ASCII");
    let mac = rendered.lines().last().expect("an entry").rsplit(' ').next().expect("mac");
    assert!(!hashed.contains(mac), "{hashed}");
    assert!(Secret::new(b"too short").is_err());
    assert!(ClientCredentials::new("bad id", secret(SECRET_A)).is_err());
}

#[test]
fn client_picks_the_first_admin_or_else_the_first_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    };
    let mixed = write(
        "mixed",
        format!("bench transact {SECRET_B}\nops admin {SECRET_A}\nroot admin {SECRET_B}\n"),
    );
    let picked = ClientCredentials::from_file(&mixed, None).expect("loads");
    assert_eq!((picked.client_id(), picked.secret()), ("ops", &secret(SECRET_A)));
    let named = ClientCredentials::from_file(&mixed, Some("bench")).expect("loads");
    assert_eq!(named.client_id(), "bench");
    assert!(matches!(
        ClientCredentials::from_file(&mixed, Some("zed")),
        Err(CredentialsError::UnknownClient { .. })
    ));
    let no_admin = write("no-admin", format!("r1 read {SECRET_A}\nt1 transact {SECRET_B}\n"));
    assert_eq!(ClientCredentials::from_file(&no_admin, None).expect("loads").client_id(), "r1");

    // The flag wins over the environment, which wins over the default. This is the only test
    // that touches LEDGER_CREDENTIALS.
    assert_eq!(ClientCredentials::resolve_path(Some(&mixed)), mixed);
    std::env::set_var(CREDENTIALS_ENV, &no_admin);
    assert_eq!(ClientCredentials::resolve_path(None), no_admin);
    assert_eq!(ClientCredentials::from_env_or_default(None).expect("loads").client_id(), "r1");
    assert_eq!(
        ClientCredentials::from_env_or_default(Some(&mixed)).expect("loads").client_id(),
        "ops"
    );
    std::env::set_var(CREDENTIALS_ENV, "");
    assert_eq!(ClientCredentials::resolve_path(None), PathBuf::from(CREDENTIALS_PATH_DEFAULT));
    std::env::remove_var(CREDENTIALS_ENV);
    assert_eq!(ClientCredentials::resolve_path(None), PathBuf::from("./data/admin.credentials"));
}

#[test]
fn roles_allow_what_protocol_md_says() {
    let admin_only = [
        TxKind::DefineCurrency,
        TxKind::OpenAccount,
        TxKind::SetAccountStatus,
        TxKind::SetAccountLimits,
        TxKind::SetFee,
        TxKind::SetSettlementCycle,
        TxKind::Cutover,
    ];
    for kind in TxKind::ALL {
        assert!(!Role::Read.allows_command(kind));
        assert_eq!(Role::Transact.allows_command(kind), !admin_only.contains(&kind), "{kind:?}");
        assert!(Role::Admin.allows_command(kind));
        // The documented variant ranges: admin-only 0..=3 and 14..=16, money 4..=13.
        assert_eq!(admin_only.contains(&kind), !(4..=13).contains(&(kind as u8)));
    }
    for role in Role::ALL {
        assert_eq!(Role::from_u8(role as u8), Some(role));
        assert_eq!(Role::from_name(role.name().as_bytes()), Some(role));
        assert!(PROTOCOL_MD.contains(&format!("| {} | `{}` |", role as u8, role.name())));
    }
}

#[test]
fn admit_follows_the_connection_state_and_the_role() {
    let no = |text: &str| engine::AccountNo::new(text.as_bytes()).expect("valid");
    let transfer =
        CommandBody::Transfer { from: no("a"), to: no("b"), amount: Amount::minor(1, 0) };
    let open = CommandBody::SetAccountStatus {
        account_no: no("a"),
        status: engine::AccountStatus::DebitFrozen,
    };
    let hello =
        Message::Hello(crate::wire::Hello { client_id: "a".into(), secret: secret(SECRET_A) });
    let submit_money = Message::Submit(vec![(TxId(1), transfer)]);
    let submit_mixed = Message::Submit(vec![(TxId(1), transfer), (TxId(2), open)]);
    let query = Message::QueryTx(TxId(1));
    let ping = Message::Ping { payload: 1 };
    let pong = Message::Pong { payload: 1 };

    assert_eq!(admit(None, &hello), Ok(()));
    assert_eq!(admit(None, &ping), Ok(()));
    for message in [&submit_money, &query, &pong] {
        assert_eq!(admit(None, message), Err(ErrorCode::NotAuthenticated));
    }
    let table = [
        (Role::Read, [Ok(()), Ok(()), Err(ErrorCode::Forbidden), Err(ErrorCode::Forbidden)]),
        (Role::Transact, [Ok(()), Ok(()), Ok(()), Err(ErrorCode::Forbidden)]),
        (Role::Admin, [Ok(()), Ok(()), Ok(()), Ok(())]),
    ];
    for (role, expected) in table {
        let got = [&ping, &query, &submit_money, &submit_mixed].map(|m| admit(Some(role), m));
        assert_eq!(got, expected, "{role}");
        assert_eq!(admit(Some(role), &hello), Err(ErrorCode::UnexpectedOperation));
        assert_eq!(admit(Some(role), &pong), Err(ErrorCode::UnexpectedOperation));
    }
}
