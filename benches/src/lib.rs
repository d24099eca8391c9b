//! Shared workload generation for the ledger's benchmarks and measurement tools.
//!
//! - the items at the root: an in-process engine workload (`setup_accounts`, `fill_transfers`)
//!   for `engine_apply`, `engine-measure` and `journal-gen`;
//! - [`workload`]: the accounts and per-connection command generators of `ledger-bench`;
//! - [`bench`]: `ledger-bench` itself (the binary is a thin `main`);
//! - [`poll`]: the `epoll` wrapper of `ledger-bench`'s TCP workers and of `tcp_ceiling`;
//! - [`report`]: CPU accounting (this process, its threads, a server's threads) and the `.hgrm`
//!   latency distribution format.

#![warn(missing_docs)]

pub mod bench;
pub mod poll;
pub mod report;
pub mod workload;

use engine::{
    AccountKind, AccountLimits, AccountNo, Amount, Command, CommandBody, CurrencyCode, Effects,
    Engine, ResultCode, TxId,
};

/// A small, fast, deterministic generator (xorshift64*): benchmarks must be repeatable.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random 128-bit transaction id, as clients produce them.
    #[inline]
    pub fn tx_id(&mut self) -> TxId {
        TxId((self.next_u64() as u128) << 64 | self.next_u64() as u128)
    }

    /// Uniform in `0..n`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// The key of benchmark account `index`.
pub fn account_no(index: u32) -> AccountNo {
    AccountNo::new(format!("acct-{index:010}").as_bytes()).expect("generated keys are valid")
}

/// The system account that funds benchmark accounts.
pub fn funding_no() -> AccountNo {
    AccountNo::new(b"bench-funding").expect("valid key")
}

/// Opening a USD account of `kind` for user 1, without limits: every benchmark account.
pub fn open_account(account_no: AccountNo, kind: AccountKind) -> CommandBody {
    let usd = CurrencyCode::new("USD").expect("valid code");
    CommandBody::OpenAccount {
        account_no,
        user_id: 1,
        currency: usd,
        kind,
        limits: AccountLimits::default(),
    }
}

/// Opens `accounts` USD user accounts and deposits `funds_minor` cents into each, settled.
pub fn setup_accounts(engine: &mut Engine, accounts: u32, funds_minor: i128, rng: &mut Rng) {
    let mut fx = Effects::default();
    let mut timestamp_ns = 1;
    let mut run = |engine: &mut Engine, body: CommandBody, fx: &mut Effects| {
        timestamp_ns += 1;
        let command = Command { tx_id: rng.tx_id(), timestamp_ns, body };
        fx.clear();
        let outcome = engine.apply(&command, fx);
        assert_eq!(outcome.result, ResultCode::Ok, "setup command failed: {body:?}");
        command.tx_id
    };
    run(engine, open_account(funding_no(), AccountKind::System), &mut fx);
    for index in 0..accounts {
        run(engine, open_account(account_no(index), AccountKind::User), &mut fx);
        let amount = Amount { mantissa: funds_minor, scale: 2 };
        let deposit = CommandBody::Deposit {
            account_no: account_no(index),
            channel_no: funding_no(),
            amount,
        };
        let target = run(engine, deposit, &mut fx);
        run(engine, CommandBody::SettleBegin { target }, &mut fx);
        run(engine, CommandBody::SettleConfirm { target }, &mut fx);
    }
}

/// How transfers pick their accounts.
#[derive(Clone, Copy, Debug)]
pub enum Pattern {
    /// Random pairs over all accounts.
    Uniform,
    /// Random debit account; every transfer credits account 0.
    Hot,
}

/// Fills `chunk` with fresh 1-cent transfers (new random tx_ids, increasing timestamps)
/// between accounts chosen by `pattern` from `keys`. Benchmarks call it outside the timed
/// region, so the figures are the engine's own: a real writer receives its commands decoded
/// and cache-hot from the network.
pub fn fill_transfers(
    chunk: &mut Vec<Command>,
    len: usize,
    keys: &[AccountNo],
    pattern: Pattern,
    rng: &mut Rng,
    timestamp_ns: &mut u64,
) {
    chunk.clear();
    let accounts = keys.len() as u64;
    for _ in 0..len {
        let (from, to) = match pattern {
            Pattern::Uniform => {
                let from = rng.below(accounts) as usize;
                let mut to = rng.below(accounts - 1) as usize;
                if to >= from {
                    to += 1;
                }
                (from, to)
            }
            Pattern::Hot => (1 + rng.below(accounts - 1) as usize, 0),
        };
        *timestamp_ns += 1;
        let body = CommandBody::Transfer {
            from: keys[from],
            to: keys[to],
            amount: Amount { mantissa: 1, scale: 2 },
        };
        chunk.push(Command { tx_id: rng.tx_id(), timestamp_ns: *timestamp_ns, body });
    }
}

/// The keys of accounts `0..accounts`.
pub fn account_keys(accounts: u32) -> Vec<AccountNo> {
    (0..accounts).map(account_no).collect()
}

/// `len` transfer commands of 1 cent between accounts chosen by `pattern` (tx ids are
/// replaced before use, so the pool can be cycled).
pub fn transfer_pool(accounts: u32, len: usize, pattern: Pattern, rng: &mut Rng) -> Vec<Command> {
    let keys: Vec<AccountNo> = (0..accounts).map(account_no).collect();
    (0..len)
        .map(|_| {
            let (from, to) = match pattern {
                Pattern::Uniform => {
                    let from = rng.below(accounts as u64) as usize;
                    let mut to = rng.below(accounts as u64 - 1) as usize;
                    if to >= from {
                        to += 1;
                    }
                    (from, to)
                }
                Pattern::Hot => (1 + rng.below(accounts as u64 - 1) as usize, 0),
            };
            let body = CommandBody::Transfer {
                from: keys[from],
                to: keys[to],
                amount: Amount { mantissa: 1, scale: 2 },
            };
            Command { tx_id: TxId(0), timestamp_ns: 0, body }
        })
        .collect()
}

/// Resident set size of this process, in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident_pages * 4096)
}
