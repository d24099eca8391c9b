//! The workloads of `ledger-bench`: which accounts a run opens, and the commands each
//! connection sends. Pure and seeded: the same seed gives the same commands, and nothing here
//! reads a clock or does I/O (the binary owns sockets, threads and time).
//!
//! Every workload keeps money inside the run's own accounts (plus its funding account), so
//! after any run `Σ (available + frozen)` over them is 0, and every command is expected to
//! succeed: accounts are funded far beyond what a run can move out of them.

use std::collections::VecDeque;
use std::sync::Arc;

use engine::{
    AccountKind, AccountLimits, AccountNo, Amount, CommandBody, CurrencyCode, ResultCode, TxId,
    TxState,
};

use crate::Rng;

/// Most accounts a run may open (the bench's own limit; the engine's is larger).
pub const ACCOUNTS_MAX: u32 = 10_000_000;
/// Minor units deposited into every account during setup (100 000 000.00).
pub const FUNDS_MINOR: i128 = 10_000_000_000;
/// Minor units moved by one transfer (0.01).
pub const TRANSFER_MINOR: i128 = 1;
/// Minor units held by one freeze in the `mix` workload, and captured in full (1.00).
pub const HOLD_MINOR: i128 = 100;
/// Holds a `mix` generator keeps ready for capture; past this it stops freezing.
pub const HOLDS_READY_MAX: usize = 4_096;
/// Decimals of the bench currency.
pub const CURRENCY_SCALE: u8 = 2;
/// Largest Zipf table (one `f64` per account).
pub const ZIPF_ACCOUNTS_MAX: u32 = ACCOUNTS_MAX;

const _: () = assert!(FUNDS_MINOR > 0 && TRANSFER_MINOR > 0 && HOLD_MINOR > 0);
const _: () = assert!(
    (ACCOUNTS_MAX as i128 + 1) * FUNDS_MINOR <= engine::limits::BALANCE_MINOR_MAX,
    "the funding account's balance never overflows"
);

/// The currency every bench account uses (defined by the setup, scale 2).
pub fn currency() -> CurrencyCode {
    CurrencyCode::new("BNCH").expect("a valid currency code")
}

/// Which accounts the transfers pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Random pairs over all accounts.
    Uniform,
    /// Every transfer credits account 0 (a platform fee account); random debit accounts.
    Hot,
    /// Transfers back and forth between accounts 0 and 1 only.
    PingPong,
    /// Debit and credit accounts both drawn from a Zipf distribution over the accounts.
    Zipf,
    /// 80 % uniform transfers, 10 % freezes of 1.00, 10 % captures of a frozen hold in full to
    /// account 0 (a merchant), once the freeze's reply said it is held.
    Mix,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 5] =
        [Workload::Uniform, Workload::Hot, Workload::PingPong, Workload::Zipf, Workload::Mix];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Uniform => "uniform",
            Workload::Hot => "hot",
            Workload::PingPong => "pingpong",
            Workload::Zipf => "zipf",
            Workload::Mix => "mix",
        }
    }

    /// The workload called `name`.
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|workload| workload.name() == name)
    }

    /// Accounts the workload needs at least.
    pub fn accounts_min(self) -> u32 {
        match self {
            Workload::Uniform
            | Workload::Hot
            | Workload::PingPong
            | Workload::Zipf
            | Workload::Mix => 2,
        }
    }

    /// Whether the generator must see the outcomes ([`Generator::observe`]).
    pub fn needs_outcomes(self) -> bool {
        match self {
            Workload::Mix => true,
            Workload::Uniform | Workload::Hot | Workload::PingPong | Workload::Zipf => false,
        }
    }
}

/// The accounts of one run: `b<tag>-<index>` and the system account `b<tag>-funding` that
/// funds them. A fresh tag per run keeps runs against the same server apart.
#[derive(Clone, Debug)]
pub struct RunAccounts {
    tag: u32,
    keys: Arc<[AccountNo]>,
}

impl RunAccounts {
    /// The keys of `count` accounts tagged `tag` (`count` ≤ [`ACCOUNTS_MAX`]).
    pub fn new(tag: u32, count: u32) -> RunAccounts {
        assert!(count <= ACCOUNTS_MAX, "at most ACCOUNTS_MAX accounts");
        let keys = (0..count).map(|index| run_key(tag, &format!("{index:08}"))).collect();
        RunAccounts { tag, keys }
    }

    /// The run's tag.
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// The user accounts, by index.
    pub fn keys(&self) -> &Arc<[AccountNo]> {
        &self.keys
    }

    /// The system account that funds the user accounts.
    pub fn funding(&self) -> AccountNo {
        run_key(self.tag, "funding")
    }

    /// The setup, in phases: each phase's commands are independent of each other and depend
    /// on the phases before it (so a phase may be pipelined, but must be complete before the
    /// next starts). Open the funding account; open every account; deposit into each; begin
    /// settling each deposit; confirm each settlement. `rng` supplies the `tx_id`s.
    pub fn setup_phases(&self, rng: &mut Rng) -> Vec<Vec<(TxId, CommandBody)>> {
        let currency = currency();
        let open = |account_no, kind| CommandBody::OpenAccount {
            account_no,
            user_id: 1,
            currency,
            kind,
            limits: AccountLimits::default(),
        };
        let define = CommandBody::DefineCurrency { code: currency, scale: CURRENCY_SCALE };
        let first =
            vec![(rng.tx_id(), define), (rng.tx_id(), open(self.funding(), AccountKind::System))];
        let opens = self.keys.iter().map(|&key| (rng.tx_id(), open(key, AccountKind::User)));
        let opens: Vec<_> = opens.collect();
        let amount = Amount { mantissa: FUNDS_MINOR, scale: CURRENCY_SCALE };
        let deposits: Vec<_> = self
            .keys
            .iter()
            .map(|&account_no| {
                let body = CommandBody::Deposit { account_no, channel_no: self.funding(), amount };
                (rng.tx_id(), body)
            })
            .collect();
        let begins = deposits
            .iter()
            .map(|&(target, _)| (rng.tx_id(), CommandBody::SettleBegin { target }))
            .collect();
        let confirms = deposits
            .iter()
            .map(|&(target, _)| (rng.tx_id(), CommandBody::SettleConfirm { target }))
            .collect();
        vec![first, opens, deposits, begins, confirms]
    }
}

fn run_key(tag: u32, suffix: &str) -> AccountNo {
    AccountNo::new(format!("b{tag:08x}-{suffix}").as_bytes()).expect("generated keys are valid")
}

/// A Zipf distribution over `0..n`: rank `k` has weight `1 / (k + 1)^s`. Sampled by binary
/// search in the cumulative table.
#[derive(Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The table for `n` (1..=[`ZIPF_ACCOUNTS_MAX`]) values and exponent `s` (> 0, finite).
    pub fn new(n: u32, s: f64) -> Option<Zipf> {
        if n == 0 || n > ZIPF_ACCOUNTS_MAX || !(s.is_finite() && s > 0.0) {
            return None;
        }
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for rank in 0..n {
            total += 1.0 / f64::from(rank + 1).powf(s);
            cdf.push(total);
        }
        for value in &mut cdf {
            *value /= total;
        }
        Some(Zipf { cdf })
    }

    /// One value in `0..n`.
    #[inline]
    pub fn sample(&self, rng: &mut Rng) -> u32 {
        let unit = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let index = self.cdf.partition_point(|&value| value < unit);
        index.min(self.cdf.len() - 1) as u32
    }

    /// The probability of the most frequent value (rank 0).
    pub fn top_probability(&self) -> f64 {
        self.cdf.first().copied().unwrap_or(0.0)
    }
}

/// The commands of one connection (or in-process producer): fresh random `tx_id`s, accounts
/// picked by the workload.
pub struct Generator {
    workload: Workload,
    keys: Arc<[AccountNo]>,
    zipf: Option<Arc<Zipf>>,
    rng: Rng,
    sent: u64,
    /// Holds whose freeze succeeded, not yet captured (`mix`).
    ready_holds: VecDeque<TxId>,
    /// Freezes sent whose outcome has not been seen (`mix`).
    freezes_pending: usize,
}

impl Generator {
    /// A generator over `keys`; `zipf` is required by [`Workload::Zipf`] (over `keys.len()`).
    pub fn new(
        workload: Workload,
        keys: Arc<[AccountNo]>,
        zipf: Option<Arc<Zipf>>,
        seed: u64,
    ) -> Generator {
        assert!(keys.len() >= workload.accounts_min() as usize, "enough accounts");
        assert!(workload != Workload::Zipf || zipf.is_some(), "zipf needs its table");
        Generator {
            workload,
            keys,
            zipf,
            rng: Rng::new(seed),
            sent: 0,
            ready_holds: VecDeque::with_capacity(HOLDS_READY_MAX),
            freezes_pending: 0,
        }
    }

    /// Generates `len` commands, handing each to `push`.
    #[inline]
    pub fn fill(&mut self, len: usize, mut push: impl FnMut(TxId, CommandBody)) {
        for _ in 0..len {
            let body = self.next_body();
            push(self.rng.tx_id(), body);
            self.sent += 1;
        }
    }

    /// Tells the generator a command's outcome. Only `mix` uses it: a freeze that is now held
    /// becomes a hold to capture. Cheap to call for every outcome. (A freeze that fails is not
    /// recognised here and stays counted as pending; the run reports it as a failure anyway.)
    #[inline]
    pub fn observe(&mut self, tx_id: TxId, result: ResultCode, tx_state: Option<TxState>) {
        if self.workload != Workload::Mix || tx_state != Some(TxState::Frozen) {
            return;
        }
        self.freezes_pending = self.freezes_pending.saturating_sub(1);
        if result == ResultCode::Ok && self.ready_holds.len() < HOLDS_READY_MAX {
            self.ready_holds.push_back(tx_id);
        }
    }

    /// Commands generated so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    #[inline]
    fn next_body(&mut self) -> CommandBody {
        let (from, to) = match self.workload {
            Workload::Uniform => self.uniform_pair(),
            Workload::Hot => (1 + self.rng.below(self.keys.len() as u64 - 1) as usize, 0),
            Workload::PingPong => {
                if self.sent % 2 == 0 {
                    (0, 1)
                } else {
                    (1, 0)
                }
            }
            Workload::Zipf => self.zipf_pair(),
            Workload::Mix => match self.rng.below(10) {
                0 => return self.freeze_or_transfer(),
                1 => return self.capture_or_transfer(),
                _ => self.uniform_pair(),
            },
        };
        self.transfer(from, to)
    }

    #[inline]
    fn transfer(&self, from: usize, to: usize) -> CommandBody {
        CommandBody::Transfer {
            from: self.keys[from],
            to: self.keys[to],
            amount: Amount { mantissa: TRANSFER_MINOR, scale: CURRENCY_SCALE },
        }
    }

    #[inline]
    fn uniform_pair(&mut self) -> (usize, usize) {
        let accounts = self.keys.len() as u64;
        let from = self.rng.below(accounts) as usize;
        let mut to = self.rng.below(accounts - 1) as usize;
        if to >= from {
            to += 1;
        }
        (from, to)
    }

    fn zipf_pair(&mut self) -> (usize, usize) {
        let zipf = self.zipf.as_ref().expect("checked in new");
        let from = zipf.sample(&mut self.rng) as usize;
        // Redraw a few times on a collision (likely with a steep exponent), then take the
        // neighbour: bounded work per command.
        for _ in 0..4 {
            let to = zipf.sample(&mut self.rng) as usize;
            if to != from {
                return (from, to);
            }
        }
        (from, (from + 1) % self.keys.len())
    }

    fn freeze_or_transfer(&mut self) -> CommandBody {
        if self.ready_holds.len() + self.freezes_pending >= HOLDS_READY_MAX {
            let (from, to) = self.uniform_pair();
            return self.transfer(from, to);
        }
        self.freezes_pending += 1;
        // Never on account 0: captures pay into it.
        let account = 1 + self.rng.below(self.keys.len() as u64 - 1) as usize;
        CommandBody::Freeze {
            account_no: self.keys[account],
            amount: Amount { mantissa: HOLD_MINOR, scale: CURRENCY_SCALE },
            expires_ns: None,
        }
    }

    fn capture_or_transfer(&mut self) -> CommandBody {
        match self.ready_holds.pop_front() {
            Some(hold) => CommandBody::Capture {
                hold,
                to: self.keys[0],
                amount: Amount { mantissa: HOLD_MINOR, scale: CURRENCY_SCALE },
            },
            None => {
                let (from, to) = self.uniform_pair();
                self.transfer(from, to)
            }
        }
    }
}

#[cfg(test)]
mod tests;
