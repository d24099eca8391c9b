//! A walk through the engine: accounts, a T+0 deposit spent downstream, a hold and its
//! captures, settlement, a failed deposit compensated by a receivable, and the proofs — money
//! conserved per currency and a state hash.
//!
//! `cargo run --release -p engine --example demo`

use engine::{
    format_minor, AccountKind, AccountLimits, AccountNo, Command, CommandBody, CurrencyCode,
    Effects, Engine, EngineConfig, Outcome, TxId,
};

struct Demo {
    engine: Engine,
    fx: Effects,
    timestamp_ns: u64,
    next_tx: u128,
}

fn key(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("demo keys are valid")
}

impl Demo {
    fn run(&mut self, what: &str, body: CommandBody) -> (TxId, Outcome) {
        self.next_tx += 1;
        self.run_as(what, TxId(self.next_tx), body)
    }

    fn run_as(&mut self, what: &str, tx_id: TxId, body: CommandBody) -> (TxId, Outcome) {
        self.timestamp_ns += 1_000_000;
        self.fx.clear();
        let command = Command { tx_id, timestamp_ns: self.timestamp_ns, body };
        let outcome = self.engine.apply(&command, &mut self.fx);
        let state = outcome.tx_state.map_or("-", |state| state.name());
        let result = if outcome.duplicate { "duplicate" } else { "" };
        println!("{what:<44} {:<20}{result:<10} state={state}", outcome.result.name());
        for view in outcome.balances.as_slice() {
            let account = self.engine.account_by_id(view.account);
            let money = |minor| format_minor(minor, account.scale);
            println!(
                "    {:<8} available={:>9} frozen={:>8} ledger={:>9} {}",
                account.account_no.as_str(),
                money(view.available_minor),
                money(view.frozen_minor),
                money(view.ledger_minor),
                account.currency,
            );
        }
        (tx_id, outcome)
    }
}

fn main() {
    let mut demo = Demo {
        engine: Engine::new(EngineConfig::default()),
        fx: Effects::default(),
        timestamp_ns: 1_764_000_000_000_000_000,
        next_tx: 0,
    };
    let usd = CurrencyCode::new("USD").expect("valid code");
    for (account, kind) in [
        ("alice", AccountKind::User),
        ("bob", AccountKind::User),
        ("carol", AccountKind::User),
        ("bank", AccountKind::System),
        ("risk", AccountKind::Risk),
    ] {
        let body = CommandBody::OpenAccount {
            account_no: key(account),
            user_id: 1,
            currency: usd,
            kind,
            limits: AccountLimits::default(),
        };
        demo.run(&format!("open {account}"), body);
    }
    let amount = |text: &str| text.parse().expect("demo amounts are valid");
    let deposit = |account: &str, text: &str| CommandBody::Deposit {
        account_no: key(account),
        channel_no: key("bank"),
        amount: amount(text),
    };
    let transfer = |from: &str, to: &str, text: &str| CommandBody::Transfer {
        from: key(from),
        to: key(to),
        amount: amount(text),
    };

    let (settles, _) = demo.run("deposit 100.00 to alice (T+0)", deposit("alice", "100.00"));
    demo.run("transfer 30.00 alice -> bob", transfer("alice", "bob", "30.00"));
    demo.run("transfer 30.001 alice -> bob (too precise)", transfer("alice", "bob", "30.001"));
    demo.run("transfer 500.00 alice -> bob (overdraft)", transfer("alice", "bob", "500.00"));
    let freeze =
        CommandBody::Freeze { account_no: key("alice"), amount: amount("50"), expires_ns: None };
    let (hold, _) = demo.run("freeze 50.00 on alice", freeze);
    let capture = CommandBody::Capture { hold, to: key("carol"), amount: amount("20") };
    let (captured, _) = demo.run("capture 20.00 of the hold to carol", capture);
    demo.run_as("the same capture again (a retry)", captured, capture);
    let other = CommandBody::Capture { hold, to: key("bob"), amount: amount("1") };
    demo.run_as("another command with that tx_id", captured, other);
    demo.run("unfreeze the rest", CommandBody::Unfreeze { hold });
    demo.run("bank takes the deposit", CommandBody::SettleBegin { target: settles });
    demo.run("bank confirms: ledger catches up", CommandBody::SettleConfirm { target: settles });

    let (fails, _) = demo.run("deposit 40.00 to bob", deposit("bob", "40.00"));
    demo.run("bob spends 60.00 -> carol", transfer("bob", "carol", "60.00"));
    demo.run("bank takes bob's deposit", CommandBody::SettleBegin { target: fails });
    demo.run("bank refuses it: clawback + receivable", CommandBody::SettleFail { target: fails });

    println!();
    for total in demo.engine.currency_totals().iter().filter(|t| t.currency == usd) {
        println!(
            "{}: sum(available + frozen) = {}, sum(ledger) = {}",
            total.currency,
            format_minor(total.available_minor + total.frozen_minor, total.scale),
            format_minor(total.ledger_minor, total.scale)
        );
    }
    demo.engine.check_invariants().expect("the demo keeps every invariant");
    println!("invariants hold; state_hash = {:032x}", demo.engine.state_hash());
}
