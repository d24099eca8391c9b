//! The `ledger` binary itself: what `src/bin/ledger.rs` adds to `cli::run` (the arguments, the
//! clock, a fresh tx id, printing and the exit code). Everything else is tested through
//! `cli::run` (`src/tests.rs`) and against a real `ledgerd` (`server/tests/it`).

use std::process::Command;

fn ledger(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ledger")).args(args).output().expect("run");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_prints_on_stdout_and_exits_zero() {
    let (code, out, _) = ledger(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("transfer"), "{out}");
}

#[test]
fn a_usage_error_exits_two() {
    let (code, out, err) = ledger(&["transfer", "alice"]);
    assert_eq!(code, 2, "{out}{err}");
}

#[test]
fn no_server_behind_the_address_exits_three() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let dir = tempfile::tempdir().expect("temp dir");
    let credentials = dir.path().join("credentials");
    std::fs::write(&credentials, "admin admin 0123456789abcdef0123456789abcdef\n").expect("write");
    std::fs::set_permissions(&credentials, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let credentials = credentials.to_string_lossy().into_owned();
    let (code, out, err) =
        ledger(&["--addr", &addr, "--credentials", &credentials, "balance", "alice"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("error"), "{err}");
}
