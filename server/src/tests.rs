//! The server in process, on a runtime with a tiny input ring: what the integration tests in
//! `tests/it` cannot arrange (they start the real `ledgerd` with its defaults).

use std::net::SocketAddr;

use engine::{AccountKind, AccountLimits, AccountNo, CommandBody, CurrencyCode, ResultCode, TxId};
use runtime::{Runtime, RuntimeOptions};

use super::{Server, ServerOptions};
use protocol::auth::{ClientCredentials, Credentials, Secret};
use protocol::client::{Client, ClientOptions, Reply};

const SECRET: &str = "writer-secret-0123456789abcdef";

fn key(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid key")
}

fn open(account: &str, kind: AccountKind) -> CommandBody {
    CommandBody::OpenAccount {
        account_no: key(account),
        user_id: 1,
        currency: CurrencyCode::new("USD").expect("valid code"),
        kind,
        limits: AccountLimits::default(),
    }
}

fn deposit(account: &str) -> CommandBody {
    CommandBody::Deposit {
        account_no: key(account),
        channel_no: key("bank"),
        amount: "0.01".parse().expect("valid amount"),
    }
}

fn connect(addr: SocketAddr) -> Client {
    let secret = Secret::new(SECRET.as_bytes()).expect("valid secret");
    let credentials = ClientCredentials::new("writer", secret).expect("credentials");
    let options = ClientOptions {
        connect_timeout_ms: 10_000,
        request_timeout_ms: 30_000,
        in_flight_max: 64,
        tls: None,
    };
    Client::connect(addr, &credentials, options).expect("connect")
}

#[test]
fn a_full_input_ring_holds_requests_back_without_refusing_any() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = RuntimeOptions {
        ring_capacity: 1,
        submission_len_max: 8,
        batch_len_max: 8,
        pin_core: None,
        snapshot_every_records: None,
        ..RuntimeOptions::default()
    };
    let (runtime, _) = Runtime::start(dir.path(), options).expect("start the runtime");
    let text = format!("writer transact {SECRET}\n");
    let credentials =
        Credentials::parse(text.as_bytes(), &dir.path().join("credentials")).expect("parse");
    let server_options = ServerOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        metrics_listen: None,
        batch_len_max: 8,
        in_flight_max: 64,
        write_timeout_ms: 10_000,
        replica_role: None,
        replication_metrics: None,
        tls: None,
        data_dir: None,
    };
    let server = Server::start(server_options, credentials, runtime.handle()).expect("server");
    let setup = vec![
        (TxId(1), open("bank", AccountKind::System)),
        (TxId(2), open("alice", AccountKind::User)),
    ];
    let outcomes = runtime.handle().execute(
        setup.into_iter().map(|(tx_id, body)| runtime::NewCommand { tx_id, body }).collect(),
    );
    assert!(outcomes.expect("setup").outcomes.iter().all(|outcome| outcome.is_ok()));

    // Four clients pipeline 64 requests each into a ring of one slot: most wait in their
    // connection for room, none is refused.
    let clients: Vec<_> = (0..4u128)
        .map(|worker| {
            let mut client = connect(server.local_addr());
            std::thread::spawn(move || {
                for index in 0..64u128 {
                    let tx_id = TxId(worker << 64 | (index + 10));
                    client.send_submit(&[(tx_id, deposit("alice"))]).expect("send");
                }
                let mut answered = 0;
                while answered < 64 {
                    match client.recv().expect("a reply, not a refusal") {
                        (_, Reply::Submitted(outcomes)) => {
                            assert_eq!(outcomes[0].result, ResultCode::Ok);
                            answered += 1;
                        }
                        (_, other) => panic!("unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }
    assert_eq!(server.metrics().errors_out.load(std::sync::atomic::Ordering::Relaxed), 0);
    server.shutdown();
    let report = runtime.shutdown().expect("shutdown");
    assert_eq!(report.commands, 2 + 4 * 64);
}
