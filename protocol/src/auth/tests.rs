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
    assert_eq!(credentials.entries()[1].secret, secret(SECRET_B));
    let rendered = Credentials::parse(&credentials.render(), Path::new("x")).expect("valid");
    assert_eq!(rendered, credentials);
}

#[test]
fn refuses_bad_lines_with_their_number_and_without_their_content() {
    let cases = [
        (format!("admin admin {SECRET_A} extra"), "creds:1: expected three fields"),
        ("admin admin".to_string(), "creds:1: expected three fields"),
        (format!("# ok\nad min admin {SECRET_A}"), "creds:2: expected three fields"),
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

#[test]
fn the_example_in_protocol_md_parses() {
    let start = PROTOCOL_MD.find("# ledger credentials:").expect("PROTOCOL.md shows a file");
    let end = start + PROTOCOL_MD[start..].find("```").expect("the block ends");
    let credentials = check(&PROTOCOL_MD[start..end]).expect("the documented example is valid");
    assert_eq!(credentials.entries().len(), 3);
    // The generated header is the one documented.
    let rendered = Credentials { entries: Vec::new() }.render();
    assert!(PROTOCOL_MD[start..end].starts_with(std::str::from_utf8(&rendered).expect("ASCII")));
}

#[test]
fn generate_admin_writes_a_private_file_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data").join("credentials");
    let generated = Credentials::generate_admin(&path).expect("generates");
    let mode = std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let entry = &generated.entries()[0];
    assert_eq!((entry.client_id.as_str(), entry.role), ("admin", Role::Admin));
    let secret_text = entry.secret.expose();
    assert_eq!(secret_text.len(), 2 * GENERATED_SECRET_RANDOM_BYTES as usize);
    assert!(secret_text.iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(Credentials::load(&path).expect("loads"), generated);

    assert!(matches!(Credentials::generate_admin(&path), Err(CredentialsError::Exists { .. })));
    assert_eq!(Credentials::load(&path).expect("unchanged"), generated);
    let (loaded, created) = Credentials::load_or_generate_admin(&path).expect("loads");
    assert_eq!((loaded, created), (generated.clone(), false));

    let other = dir.path().join("other");
    let (fresh, created) = Credentials::load_or_generate_admin(&other).expect("generates");
    assert!(created);
    assert_ne!(fresh.entries()[0].secret, generated.entries()[0].secret, "secrets are random");
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
    for debug in [format!("{credentials:?}"), format!("{client:?}"), format!("{hello:?}")] {
        assert!(!debug.contains(SECRET_A), "{debug}");
        assert!(debug.contains("Secret(..)"), "{debug}");
    }
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
    assert_eq!(ClientCredentials::resolve_path(None), PathBuf::from("./data/credentials"));
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
