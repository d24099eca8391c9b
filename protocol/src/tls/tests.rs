//! Tests of the PEM loaders and the client's TLS configuration (the handshake and sessions end
//! to end against `ledgerd`: server/tests/it/tls.rs).

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn loaders_take_pem_and_say_what_is_wrong_without_quoting_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let certificate = params.self_signed(&key).expect("certificate");
    let cert_path = write(dir.path(), "cert.pem", &certificate.pem());
    let key_pem = key.serialize_pem();
    let key_path = write(dir.path(), "key.pem", &key_pem);
    assert_eq!(load_certificates(&cert_path).expect("certificates").len(), 1);
    assert!(load_private_key(&key_path).is_ok());
    assert_eq!(load_roots(&cert_path).expect("roots").len(), 1);

    // A key where a certificate should be, and the other way round.
    let error = load_certificates(&key_path).expect_err("no certificate").to_string();
    assert!(error.contains("no certificate in it"), "{error}");
    let error = load_private_key(&cert_path).expect_err("no key").to_string();
    assert!(error.contains("no PEM private key"), "{error}");
    let body = key_pem.lines().nth(1).expect("a base64 line");
    for error in [error, format!("{:?}", load_certificates(&key_path))] {
        assert!(!error.contains(body), "{error} quotes the key");
    }
    let missing = load_roots(&dir.path().join("missing.pem")).expect_err("missing").to_string();
    assert!(missing.contains("missing.pem"), "{missing}");
    let big = write(dir.path(), "big.pem", &"#".repeat(TLS_FILE_LEN_BYTES_MAX as usize + 1));
    let error = load_certificates(&big).expect_err("too large").to_string();
    assert!(error.contains("larger than"), "{error}");

    // A client configuration: the server name is checked, Debug shows no key.
    let tls = ClientTls::from_files(&cert_path, Some((&cert_path, &key_path)), Some("localhost"))
        .expect("client TLS");
    let debug = format!("{tls:?}");
    assert!(debug.contains("client_certificate: true") && !debug.contains(body), "{debug}");
    assert_eq!(tls.clone(), tls);
    let error = ClientTls::from_files(&cert_path, None, Some("not a name!")).expect_err("bad name");
    assert!(matches!(error, TlsError::ServerName { .. }), "{error}");
    // A key that is not the certificate's.
    let other_key =
        write(dir.path(), "other.pem", &rcgen::KeyPair::generate().expect("key").serialize_pem());
    let error = ClientTls::from_files(&cert_path, Some((&cert_path, &other_key)), None);
    assert!(matches!(error, Err(TlsError::Config { .. })), "{error:?}");
}
