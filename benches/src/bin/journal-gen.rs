//! Writes a synthetic ledger data directory — genesis snapshot plus a journal of ACCOUNTS
//! opened and funded accounts and TRANSFERS uniform transfers — in the format the runtime
//! writes, for measuring replay and recovery.
//!
//! `cargo run --release -p benches --bin journal-gen -- DATA_DIR ACCOUNTS TRANSFERS`

use std::path::PathBuf;
use std::time::Instant;

use benches::{account_keys, fill_transfers, funding_no, open_account, Pattern, Rng};
use engine::{
    encode_command, AccountKind, Amount, Command, CommandBody, Effects, Engine, EngineConfig,
    ResultCode,
};
use journal::{Journal, JournalOptions, SyncMode};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(accounts), Some(transfers)) = (args.get(1), args.get(2), args.get(3))
    else {
        eprintln!("usage: journal-gen DATA_DIR ACCOUNTS TRANSFERS");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let accounts: u32 = accounts.parse().expect("ACCOUNTS is a number");
    let transfers: u64 = transfers.parse().expect("TRANSFERS is a number");
    let config = EngineConfig::default();
    let mut engine = Engine::new(config);
    let mut genesis = Vec::new();
    engine.encode_state(&mut genesis);
    journal::snapshot::write(&journal::snapshot_dir(&dir), 0, &genesis).expect("genesis snapshot");
    let options = JournalOptions { sync_mode: SyncMode::None, ..JournalOptions::default() };
    let (mut log, _) = Journal::open(&journal::journal_dir(&dir), options).expect("open journal");
    let started = Instant::now();
    let mut rng = Rng::new(11);
    let mut fx = Effects::default();
    let mut payload = Vec::new();
    let mut timestamp_ns = 1u64;
    let mut write = |command: &Command, engine: &mut Engine, log: &mut Journal| {
        payload.clear();
        encode_command(command, &mut payload);
        log.append(&payload).expect("append");
        fx.clear();
        let outcome = engine.apply(command, &mut fx);
        assert_eq!(outcome.result, ResultCode::Ok, "{command:?}");
    };
    let keys = account_keys(accounts);
    let next = |body, timestamp_ns: &mut u64, rng: &mut Rng| {
        *timestamp_ns += 1;
        Command { tx_id: rng.tx_id(), timestamp_ns: *timestamp_ns, body }
    };
    let command =
        next(open_account(funding_no(), AccountKind::System), &mut timestamp_ns, &mut rng);
    write(&command, &mut engine, &mut log);
    for key in &keys {
        let command = next(open_account(*key, AccountKind::User), &mut timestamp_ns, &mut rng);
        write(&command, &mut engine, &mut log);
        let amount = Amount { mantissa: 100_000_000, scale: 2 };
        let deposit = CommandBody::Deposit { account_no: *key, channel_no: funding_no(), amount };
        let command = next(deposit, &mut timestamp_ns, &mut rng);
        write(&command, &mut engine, &mut log);
    }
    let mut chunk = Vec::new();
    let mut done = 0;
    while done < transfers {
        let len = (transfers - done).min(8_192) as usize;
        fill_transfers(&mut chunk, len, &keys, Pattern::Uniform, &mut rng, &mut timestamp_ns);
        for command in &chunk {
            write(command, &mut engine, &mut log);
        }
        done += len as u64;
    }
    log.flush().expect("flush");
    println!(
        "wrote {} records in {:.1} s; state_hash {:032x}",
        log.next_seq() - 1,
        started.elapsed().as_secs_f64(),
        engine.state_hash()
    );
}
