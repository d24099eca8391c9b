//! The core driven directly: a scripted day against a real `engine::Engine` standing in for the
//! runtime (a `Vec` is the journal), a fake clock and scripted bank answers. No threads, no
//! sleeps; every test is one `check(tune, script, expect)` whose transcript is a snapshot.

use std::fmt::Write as _;

use bank::protocol::{format_id, parse_reply};
use engine::{
    encode_command, AccountKind, AccountLimits, AccountNo, Command, CommandBody, CurrencyCode,
    Effects, Engine, EngineConfig, TxId,
};
use expect_test::{expect, Expect};

use super::{
    Config, CoreError, Settlement, Submitted, GIVEN_UP_MAX, NOTICES_QUEUED_MAX, WATCHED_MAX,
};
use crate::{batch_id, settlement_tx_id, Step};

/// The fake clock's zero: 2025-11-24, in ns since the Unix epoch.
const T0_NS: u64 = 1_764_000_000_000_000_000;
const NS_PER_MS: u64 = 1_000_000;

/// One step of a script.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// The clock reads this many ms after `T0_NS`, and the core is told.
    At(u64),
    /// The clock reads this many ms after `T0_NS`; the next step happens then.
    Clock(u64),
    /// A client deposit named `.0` to account `.1` of `.2`.
    Deposit(&'static str, &'static str, &'static str),
    /// A client withdrawal named `.0` from account `.1` of `.2`.
    Withdraw(&'static str, &'static str, &'static str),
    /// A bank line; `{name}` stands for the id of the batch that transaction `name` opened.
    Bank(&'static str),
    /// An operator settles transaction `.0` (`ledger settle`).
    Operator(&'static str, Step),
    /// `Cutover { business_date }`.
    Cutover(u32),
    /// A journal record that is not a command.
    Garbage,
    /// The processor restarts: a new core reads the whole journal again.
    Restart,
    /// From now on the runtime refuses (`true`) or executes (`false`) the core's commands.
    RefuseCommands(bool),
    /// From now on writing reports fails (`true`) or works.
    FailReports(bool),
}

struct Harness {
    config: Config,
    core: Settlement,
    engine: Engine,
    fx: Effects,
    journal: Vec<Vec<u8>>,
    /// Records fed to the core (`journal[..fed]`).
    fed: usize,
    now_ns: u64,
    /// (32-hex id, name) for the transcript.
    names: Vec<(String, String)>,
    tx_ids: Vec<(&'static str, TxId)>,
    next_tx: u128,
    refuse_commands: bool,
    fail_reports: bool,
    out: String,
}

fn no(text: &str) -> AccountNo {
    AccountNo::new(text.as_bytes()).expect("valid")
}

fn test_config() -> Config {
    Config {
        name: no("bank1"),
        retry_initial_ms: 100,
        retry_max_ms: 400,
        attempts_max: 3,
        net_window_ms: 5,
        net_items_max: 3,
    }
}

impl Harness {
    fn new(config: Config) -> Harness {
        let mut harness = Harness {
            core: Settlement::new(config.clone(), None),
            config,
            engine: Engine::new(EngineConfig::default()),
            fx: Effects::default(),
            journal: Vec::new(),
            fed: 0,
            now_ns: T0_NS,
            names: Vec::new(),
            tx_ids: Vec::new(),
            next_tx: 1_000,
            refuse_commands: false,
            fail_reports: false,
            out: String::new(),
        };
        for (account, kind) in [
            ("alice", AccountKind::User),
            ("bob", AccountKind::User),
            ("bank1", AccountKind::System),
            ("risk", AccountKind::Risk),
        ] {
            harness.client(CommandBody::OpenAccount {
                account_no: no(account),
                user_id: 1,
                currency: CurrencyCode::new("USD").expect("valid"),
                kind,
                limits: AccountLimits::default(),
            });
        }
        harness
    }

    /// Journals and applies `body` at the clock's time, as the runtime would.
    fn journal(&mut self, tx_id: TxId, body: CommandBody) -> (u64, engine::Outcome) {
        let command = Command { tx_id, timestamp_ns: self.now_ns, body };
        let mut payload = Vec::new();
        encode_command(&command, &mut payload);
        self.journal.push(payload);
        self.fx.entries.clear();
        self.fx.transitions.clear();
        let outcome = self.engine.apply(&command, &mut self.fx);
        (self.journal.len() as u64, outcome)
    }

    fn client(&mut self, body: CommandBody) -> TxId {
        self.next_tx += 1;
        let tx_id = TxId(self.next_tx);
        self.journal(tx_id, body);
        tx_id
    }

    fn name(&mut self, name: &'static str, tx_id: TxId) {
        self.tx_ids.push((name, tx_id));
        self.names.push((format_id(tx_id.0), name.to_string()));
        self.names.push((format_id(batch_id(tx_id)), format!("B({name})")));
    }

    fn tx(&self, name: &str) -> TxId {
        let found = self.tx_ids.iter().find(|(known, _)| *known == name);
        found.map(|(_, tx_id)| *tx_id).expect("a named transaction")
    }

    /// `text` with every known id replaced by its name.
    fn render(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (hex, name) in &self.names {
            text = text.replace(hex, name);
        }
        text
    }

    fn say(&mut self, line: &str) {
        let ms = (self.now_ns - T0_NS) / NS_PER_MS;
        let line = self.render(line);
        let _ = writeln!(self.out, "{:<7} {line}", format!("{ms}ms"));
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::At(ms) => self.now_ns = T0_NS + ms * NS_PER_MS,
            Op::Clock(ms) => {
                self.now_ns = T0_NS + ms * NS_PER_MS;
                return;
            }
            Op::Deposit(name, account, value) | Op::Withdraw(name, account, value) => {
                let (account_no, channel_no) = (no(account), no("bank1"));
                let amount = value.parse().expect("valid amount");
                let body = match op {
                    Op::Deposit(..) => CommandBody::Deposit { account_no, channel_no, amount },
                    _ => CommandBody::Withdraw { account_no, channel_no, amount },
                };
                let tx_id = self.client(body);
                self.name(name, tx_id);
            }
            Op::Bank(line) => {
                let mut line = line.to_string();
                for (name, tx_id) in &self.tx_ids {
                    line = line.replace(&format!("{{{name}}}"), &format_id(batch_id(*tx_id)));
                }
                self.say(&format!("< {line}"));
                let (reply, _) = parse_reply(&line).expect("a bank reply");
                self.core.on_answer(&reply);
            }
            Op::Operator(name, step) => {
                let target = self.tx(name);
                let body = match step {
                    Step::Begin => CommandBody::SettleBegin { target },
                    Step::Confirm => CommandBody::SettleConfirm { target },
                    Step::Fail => CommandBody::SettleFail { target },
                };
                let (_, outcome) = self.journal(TxId(self.next_tx + 1), body);
                self.next_tx += 1;
                self.say(&format!("operator {step:?} {name}: {}", outcome.result.name()));
            }
            Op::Cutover(business_date) => {
                self.client(CommandBody::Cutover { business_date });
            }
            Op::Garbage => self.journal.push(vec![0xff; 7]),
            Op::Restart => {
                self.say("restart");
                self.core = Settlement::new(self.config.clone(), None);
                self.fed = 0;
            }
            Op::RefuseCommands(refuse) => self.refuse_commands = refuse,
            Op::FailReports(fail) => self.fail_reports = fail,
        }
        self.pump();
    }

    /// Carries out everything the core asks for until it asks for nothing more.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut busy = false;
            while self.fed < self.journal.len() && self.core.wants_records() {
                let seq = self.fed as u64 + 1;
                let payload = std::mem::take(&mut self.journal[self.fed]);
                let fed = self.core.on_record(seq, &payload);
                self.journal[self.fed] = payload;
                self.fed += 1;
                busy = true;
                if let Err(error) = fed {
                    return self.say(&format!("error: {error}"));
                }
            }
            if self.fed == self.journal.len() {
                self.core.on_caught_up();
            }
            while let Some(query) = self.core.poll_query() {
                let view = self.engine.tx(query.tx_id);
                let applied = view.is_some_and(|view| view.result == engine::ResultCode::Ok);
                self.core.on_outcome(query.seq, applied);
                busy = true;
            }
            while let Some(command) = self.core.poll_command() {
                busy = true;
                let submitted = if self.refuse_commands {
                    Submitted::NotAnswered
                } else {
                    let (seq, outcome) = self.journal(command.tx_id, command.body());
                    let (result, duplicate) = (outcome.result, outcome.duplicate);
                    Submitted::Executed { seq, result, duplicate }
                };
                let target = format_id(command.target.0);
                self.say(&format!("journal {:?} {target}: {}", command.step, describe(submitted)));
                self.core.on_submitted(&command, submitted);
            }
            if self.core.poll_timeout().is_some_and(|at_ns| at_ns <= self.now_ns) {
                self.core.handle_timeout(self.now_ns);
                busy = true;
            }
            while let Some(instruction) = self.core.poll_instruction(self.now_ns) {
                let lines = instruction.lines.trim_end().replace('\n', "; ");
                self.say(&format!("send #{} {lines}", instruction.attempt));
                busy = true;
            }
            while let Some(report) = self.core.poll_report() {
                let text = format!("{}{}", report.netting_csv, report.settlement_csv);
                let lines = text.trim_end().replace('\n', "\n          ");
                let verb = if self.fail_reports { "report (write fails)" } else { "report" };
                self.say(&format!("{verb} {}:\n          {lines}", report.business_date));
                if self.fail_reports {
                    self.core.on_report_failed(report);
                }
            }
            while let Some(notice) = self.core.poll_notice() {
                self.say(&format!("notice: {notice}"));
            }
            if !busy {
                return;
            }
        }
        panic!("the core never settles down");
    }
}

fn describe(submitted: Submitted) -> String {
    match submitted {
        Submitted::Executed { result, duplicate: false, .. } => result.name().to_string(),
        Submitted::Executed { result, duplicate: true, .. } => format!("{} (dup)", result.name()),
        Submitted::NotAnswered => "not answered".to_string(),
    }
}

/// Runs `script` against a core with `tune(test_config())` and compares the transcript, then
/// the stuck transactions and when the core next wants the clock.
fn check(tune: impl FnOnce(Config) -> Config, script: &[Op], expect: Expect) {
    let mut harness = Harness::new(tune(test_config()));
    harness.pump();
    for &op in script {
        harness.run(op);
    }
    let stuck: Vec<String> = harness.core.stuck().iter().map(|tx| format_id(tx.0)).collect();
    let timeout =
        harness.core.poll_timeout().map(|at_ns| format!("{}ms", (at_ns - T0_NS) / NS_PER_MS));
    let end = format!("stuck {stuck:?}, open {}, timeout {timeout:?}", harness.core.open_len());
    harness.say(&end);
    expect.assert_eq(&harness.out);
}

fn same(config: Config) -> Config {
    config
}

#[test]
fn a_window_collects_what_its_timestamps_cover_and_a_later_record_cuts_it() {
    check(
        same,
        &[
            Op::Deposit("d1", "alice", "10"),
            Op::At(2),
            Op::Deposit("d2", "bob", "2.50"),
            Op::At(4),
            Op::Withdraw("w3", "alice", "1"),
            // 5 ms after d1: the window is over; d4 cuts it and opens the next one.
            Op::Clock(5),
            Op::Deposit("d4", "bob", "7"),
            Op::Bank("CONFIRMED {d1}"),
            Op::At(10),
            Op::Bank("CONFIRMED {d4}"),
        ],
        expect![[r#"
            5ms     journal Begin d1: ok
            5ms     journal Begin d2: ok
            5ms     journal Begin w3: ok
            5ms     send #1 NET B(d1) DEPOSIT 11.50 USD 3; ITEM d1 DEPOSIT 10; ITEM d2 DEPOSIT 2.50; ITEM w3 WITHDRAW 1
            5ms     < CONFIRMED B(d1)
            5ms     journal Confirm d1: ok
            5ms     journal Confirm d2: ok
            5ms     journal Confirm w3: ok
            10ms    journal Begin d4: ok
            10ms    send #1 NET B(d4) DEPOSIT 7 USD 1; ITEM d4 DEPOSIT 7
            10ms    < CONFIRMED B(d4)
            10ms    journal Confirm d4: ok
            10ms    stuck [], open 0, timeout None
        "#]],
    );
}

#[test]
fn net_items_max_cuts_a_window_short() {
    check(
        |config| Config { net_window_ms: 1_000, ..config },
        &[
            Op::Deposit("d1", "alice", "1"),
            Op::Deposit("d2", "alice", "2"),
            Op::Deposit("d3", "alice", "3"),
            Op::Deposit("d4", "alice", "4"),
            Op::At(1_000),
        ],
        expect![[r#"
            0ms     journal Begin d1: ok
            0ms     journal Begin d2: ok
            0ms     journal Begin d3: ok
            0ms     send #1 NET B(d1) DEPOSIT 6 USD 3; ITEM d1 DEPOSIT 1; ITEM d2 DEPOSIT 2; ITEM d3 DEPOSIT 3
            1000ms  send #2 NET B(d1) DEPOSIT 6 USD 3; ITEM d1 DEPOSIT 1; ITEM d2 DEPOSIT 2; ITEM d3 DEPOSIT 3
            1000ms  journal Begin d4: ok
            1000ms  send #1 NET B(d4) DEPOSIT 4 USD 1; ITEM d4 DEPOSIT 4
            1000ms  stuck [], open 4, timeout Some("1100ms")
        "#]],
    );
}

#[test]
fn a_refused_payment_fails_every_member_and_a_net_mismatch_fails_none() {
    check(
        same,
        &[
            Op::Deposit("d1", "alice", "10"),
            Op::Deposit("d2", "bob", "5"),
            Op::At(5),
            Op::Bank("FAILED {d1} insufficient_funds"),
            Op::Deposit("d3", "alice", "1"),
            Op::At(10),
            Op::Bank("FAILED {d3} net_mismatch: net DEPOSIT 1 does not match its items"),
        ],
        expect![[r#"
            5ms     journal Begin d1: ok
            5ms     journal Begin d2: ok
            5ms     send #1 NET B(d1) DEPOSIT 15 USD 2; ITEM d1 DEPOSIT 10; ITEM d2 DEPOSIT 5
            5ms     < FAILED B(d1) insufficient_funds
            5ms     journal Fail d1: ok
            5ms     journal Fail d2: ok
            5ms     notice: batch B(d1) refused by the bank: insufficient_funds
            10ms    journal Begin d3: ok
            10ms    send #1 NET B(d3) DEPOSIT 1 USD 1; ITEM d3 DEPOSIT 1
            10ms    < FAILED B(d3) net_mismatch: net DEPOSIT 1 does not match its items
            10ms    notice: batch B(d3): the bank says net_mismatch: net DEPOSIT 1 does not match its items; giving it up
            10ms    notice: batch B(d3) (1 transactions): no answer after 1 sends
            10ms    stuck ["d3"], open 1, timeout None
        "#]],
    );
}

#[test]
fn duplicate_late_and_unknown_answers_change_nothing() {
    check(
        |config| Config { attempts_max: 1, ..config },
        &[
            Op::Deposit("d1", "alice", "10"),
            Op::At(5),
            Op::Bank("ACCEPTED {d1}"),
            Op::Bank("CONFIRMED {d1}"),
            Op::Bank("CONFIRMED {d1}"),
            Op::Bank("FAILED {d1} too_late"),
            Op::Bank("CONFIRMED 000000000000000000000000000000aa"),
            // Given up after one send; a late answer still settles it.
            Op::Deposit("d2", "bob", "3"),
            Op::At(10),
            Op::At(110),
            Op::Bank("CONFIRMED {d2}"),
            // Given up, finished by an operator, then answered: reported for reconciliation.
            Op::Deposit("d3", "bob", "4"),
            Op::At(115),
            Op::At(215),
            Op::Operator("d3", Step::Confirm),
            Op::Bank("FAILED {d3} late"),
        ],
        expect![[r#"
            5ms     journal Begin d1: ok
            5ms     send #1 NET B(d1) DEPOSIT 10 USD 1; ITEM d1 DEPOSIT 10
            5ms     < ACCEPTED B(d1)
            5ms     < CONFIRMED B(d1)
            5ms     journal Confirm d1: ok
            5ms     < CONFIRMED B(d1)
            5ms     < FAILED B(d1) too_late
            5ms     notice: batch B(d1) refused by the bank: too_late
            5ms     < CONFIRMED 000000000000000000000000000000aa
            10ms    journal Begin d2: ok
            10ms    send #1 NET B(d2) DEPOSIT 3 USD 1; ITEM d2 DEPOSIT 3
            110ms   notice: batch B(d2) (1 transactions): no answer after 1 sends
            110ms   < CONFIRMED B(d2)
            110ms   journal Confirm d2: ok
            115ms   journal Begin d3: ok
            115ms   send #1 NET B(d3) DEPOSIT 4 USD 1; ITEM d3 DEPOSIT 4
            215ms   notice: batch B(d3) (1 transactions): no answer after 1 sends
            215ms   operator Confirm d3: ok
            215ms   < FAILED B(d3) late
            215ms   journal Fail d3: illegal_transition
            215ms   notice: batch B(d3) refused by the bank: late
            215ms   notice: d3: Fail for a transaction already finished otherwise: reconcile
            215ms   stuck [], open 0, timeout None
        "#]],
    );
}

#[test]
fn answers_out_of_order_settle_their_own_batches() {
    check(
        same,
        &[
            Op::Deposit("d1", "alice", "1"),
            Op::At(5),
            Op::Deposit("d2", "bob", "2"),
            Op::At(10),
            Op::Bank("CONFIRMED {d2}"),
            Op::Bank("BUSY {d1}"),
            Op::Bank("CONFIRMED {d1}"),
            Op::Cutover(20_261_126),
        ],
        expect![[r#"
            5ms     journal Begin d1: ok
            5ms     send #1 NET B(d1) DEPOSIT 1 USD 1; ITEM d1 DEPOSIT 1
            10ms    journal Begin d2: ok
            10ms    send #1 NET B(d2) DEPOSIT 2 USD 1; ITEM d2 DEPOSIT 2
            10ms    < CONFIRMED B(d2)
            10ms    journal Confirm d2: ok
            10ms    < BUSY B(d1)
            10ms    < CONFIRMED B(d1)
            10ms    journal Confirm d1: ok
            10ms    report 20261126:
                      batch_id,items,deposits,withdrawals,gross,net,direction
                      B(d2),1,2,0,2,2,DEPOSIT
                      B(d1),1,1,0,1,1,DEPOSIT
                      total,2,3,0,3,3,
                      tx_id,direction,amount,currency
                      d2,DEPOSIT,2,USD
                      d1,DEPOSIT,1,USD
            10ms    stuck [], open 0, timeout None
        "#]],
    );
}

#[test]
fn an_unanswered_batch_is_resent_with_doubling_backoff_then_given_up() {
    check(
        |config| Config { attempts_max: 5, ..config },
        &[
            Op::Deposit("d1", "alice", "1"),
            Op::At(5),
            Op::At(104),
            Op::At(105),
            Op::At(305),
            Op::At(705),
            Op::At(1_105),
            Op::At(1_505),
        ],
        expect![[r#"
            5ms     journal Begin d1: ok
            5ms     send #1 NET B(d1) DEPOSIT 1 USD 1; ITEM d1 DEPOSIT 1
            105ms   send #2 NET B(d1) DEPOSIT 1 USD 1; ITEM d1 DEPOSIT 1
            305ms   send #3 NET B(d1) DEPOSIT 1 USD 1; ITEM d1 DEPOSIT 1
            705ms   send #4 NET B(d1) DEPOSIT 1 USD 1; ITEM d1 DEPOSIT 1
            1105ms  send #5 NET B(d1) DEPOSIT 1 USD 1; ITEM d1 DEPOSIT 1
            1505ms  notice: batch B(d1) (1 transactions): no answer after 5 sends
            1505ms  stuck ["d1"], open 1, timeout None
        "#]],
    );
}

#[test]
fn a_restarted_core_forms_the_same_batches_and_resends_only_unfinished_ones() {
    check(
        |config| Config { attempts_max: 1, ..config },
        &[
            Op::Deposit("d1", "alice", "1"),
            Op::Deposit("d2", "bob", "2"),
            Op::At(5),
            Op::Bank("CONFIRMED {d1}"),
            Op::Deposit("d3", "alice", "3"),
            Op::Withdraw("w4", "alice", "0.5"),
            Op::At(10),
            Op::At(110),
            Op::At(200),
            Op::Restart,
            Op::At(300),
            Op::Bank("CONFIRMED {d3}"),
        ],
        expect![[r#"
            5ms     journal Begin d1: ok
            5ms     journal Begin d2: ok
            5ms     send #1 NET B(d1) DEPOSIT 3 USD 2; ITEM d1 DEPOSIT 1; ITEM d2 DEPOSIT 2
            5ms     < CONFIRMED B(d1)
            5ms     journal Confirm d1: ok
            5ms     journal Confirm d2: ok
            10ms    journal Begin d3: ok
            10ms    journal Begin w4: ok
            10ms    send #1 NET B(d3) DEPOSIT 2.5 USD 2; ITEM d3 DEPOSIT 3; ITEM w4 WITHDRAW 0.5
            110ms   notice: batch B(d3) (2 transactions): no answer after 1 sends
            200ms   restart
            200ms   journal Begin d3: ok (dup)
            200ms   journal Begin w4: ok (dup)
            200ms   send #1 NET B(d3) DEPOSIT 2.5 USD 2; ITEM d3 DEPOSIT 3; ITEM w4 WITHDRAW 0.5
            300ms   notice: batch B(d3) (2 transactions): no answer after 1 sends
            300ms   < CONFIRMED B(d3)
            300ms   journal Confirm d3: ok
            300ms   journal Confirm w4: ok
            300ms   stuck [], open 0, timeout None
        "#]],
    );
}

#[test]
fn a_cutover_reports_the_days_confirmations_and_a_failed_write_keeps_them() {
    check(
        same,
        &[
            Op::Deposit("d1", "alice", "10"),
            Op::Deposit("d2", "bob", "2.5"),
            Op::Withdraw("w3", "alice", "4"),
            Op::At(5),
            Op::Bank("CONFIRMED {d1}"),
            Op::Deposit("d4", "bob", "1"),
            Op::At(10),
            Op::Bank("CONFIRMED {d4}"),
            Op::FailReports(true),
            Op::Cutover(20_261_126),
            Op::FailReports(false),
            Op::Deposit("d5", "alice", "0.25"),
            Op::At(15),
            Op::Bank("CONFIRMED {d5}"),
            Op::Cutover(20_261_127),
            Op::Cutover(20_261_128),
        ],
        expect![[r#"
            5ms     journal Begin d1: ok
            5ms     journal Begin d2: ok
            5ms     journal Begin w3: ok
            5ms     send #1 NET B(d1) DEPOSIT 8.5 USD 3; ITEM d1 DEPOSIT 10; ITEM d2 DEPOSIT 2.5; ITEM w3 WITHDRAW 4
            5ms     < CONFIRMED B(d1)
            5ms     journal Confirm d1: ok
            5ms     journal Confirm d2: ok
            5ms     journal Confirm w3: ok
            10ms    journal Begin d4: ok
            10ms    send #1 NET B(d4) DEPOSIT 1 USD 1; ITEM d4 DEPOSIT 1
            10ms    < CONFIRMED B(d4)
            10ms    journal Confirm d4: ok
            10ms    report (write fails) 20261126:
                      batch_id,items,deposits,withdrawals,gross,net,direction
                      B(d1),3,12.5,4.0,16.5,8.5,DEPOSIT
                      B(d4),1,1.0,0.0,1.0,1.0,DEPOSIT
                      total,4,13.5,4.0,17.5,9.5,
                      tx_id,direction,amount,currency
                      d1,DEPOSIT,10,USD
                      d2,DEPOSIT,2.5,USD
                      w3,WITHDRAW,4,USD
                      d4,DEPOSIT,1,USD
            15ms    journal Begin d5: ok
            15ms    send #1 NET B(d5) DEPOSIT 0.25 USD 1; ITEM d5 DEPOSIT 0.25
            15ms    < CONFIRMED B(d5)
            15ms    journal Confirm d5: ok
            15ms    report 20261127:
                      batch_id,items,deposits,withdrawals,gross,net,direction
                      B(d1),3,12.50,4.00,16.50,8.50,DEPOSIT
                      B(d4),1,1.00,0.00,1.00,1.00,DEPOSIT
                      B(d5),1,0.25,0.00,0.25,0.25,DEPOSIT
                      total,5,13.75,4.00,17.75,9.75,
                      tx_id,direction,amount,currency
                      d1,DEPOSIT,10,USD
                      d2,DEPOSIT,2.5,USD
                      w3,WITHDRAW,4,USD
                      d4,DEPOSIT,1,USD
                      d5,DEPOSIT,0.25,USD
            15ms    report 20261128:
                      batch_id,items,deposits,withdrawals,gross,net,direction
                      total,0,0,0,0,0,
                      tx_id,direction,amount,currency
            15ms    stuck [], open 0, timeout None
        "#]],
    );
}

#[test]
fn an_idle_window_is_closed_by_the_clock_when_nothing_is_journaled() {
    check(
        same,
        &[
            Op::RefuseCommands(true),
            Op::Deposit("d1", "alice", "1"),
            Op::At(5),
            Op::At(1_004),
            Op::At(1_005),
            Op::RefuseCommands(false),
            Op::At(1_105),
        ],
        expect![[r#"
            5ms     journal Begin d1: not answered
            1005ms  send #1 NET B(d1) DEPOSIT 1 USD 1; ITEM d1 DEPOSIT 1
            1105ms  send #2 NET B(d1) DEPOSIT 1 USD 1; ITEM d1 DEPOSIT 1
            1105ms  stuck [], open 1, timeout Some("1305ms")
        "#]],
    );
}

#[test]
fn a_refused_deposit_is_not_followed() {
    check(
        same,
        &[Op::Deposit("d1", "nobody", "1"), Op::Withdraw("w2", "bob", "1"), Op::At(10)],
        expect![[r#"
            10ms    stuck [], open 0, timeout None
        "#]],
    );
}

#[test]
fn an_undecodable_record_stops_the_core_naming_its_seq() {
    check(
        same,
        &[
            Op::Deposit("d1", "alice", "1"),
            Op::Garbage,
            Op::Deposit("d2", "alice", "1"),
            Op::At(10),
        ],
        expect![[r#"
            0ms     error: journal record 6 does not decode as a command: invalid command encoding: UnexpectedEnd { additional: 9 }
            10ms    stuck [], open 1, timeout None
        "#]],
    );
    // Once stopped, every later record gets the same error, and nothing moves.
    let mut core = Settlement::new(test_config(), None);
    let first = core.on_record(7, &[1, 2, 3]);
    assert!(matches!(first, Err(CoreError::Undecodable { seq: 7, .. })), "{first:?}");
    assert!(!core.wants_records());
    let again = core.on_record(8, &deposit_record(1, T0_NS));
    assert_eq!(again, first);
    assert_eq!(core.error(), first.err().as_ref());
}

/// Encodes a deposit of channel `bank1` stamped `timestamp_ns`.
fn deposit_record(tx: u128, timestamp_ns: u64) -> Vec<u8> {
    let body = CommandBody::Deposit {
        account_no: no("alice"),
        channel_no: no("bank1"),
        amount: "1".parse().expect("valid"),
    };
    let mut payload = Vec::new();
    encode_command(&Command { tx_id: TxId(tx), timestamp_ns, body }, &mut payload);
    payload
}

#[test]
fn at_watched_max_the_core_wants_no_more_records_until_some_finish() {
    let config = Config { net_items_max: 4_096, ..test_config() };
    let mut core = Settlement::new(config, CurrencyCode::new("USD").ok());
    let mut seq = 0;
    while core.wants_records() {
        seq += 1;
        core.on_record(seq, &deposit_record(u128::from(seq), T0_NS)).expect("decodes");
        while let Some(query) = core.poll_query() {
            core.on_outcome(query.seq, true);
        }
    }
    assert_eq!(core.open_len(), WATCHED_MAX);
    assert_eq!(seq, WATCHED_MAX as u64);
    // Every member begins and every closed batch is sent; the core still wants nothing.
    let ok = Submitted::Executed { seq: 0, result: engine::ResultCode::Ok, duplicate: false };
    core.handle_timeout(T0_NS + 5 * NS_PER_MS);
    let mut begun = 0;
    while let Some(command) = core.poll_command() {
        core.on_submitted(&command, ok);
        begun += 1;
    }
    assert_eq!(begun, WATCHED_MAX);
    core.handle_timeout(T0_NS + 5 * NS_PER_MS);
    let mut sent = 0;
    while core.poll_instruction(T0_NS + 5 * NS_PER_MS).is_some() {
        sent += 1;
    }
    assert_eq!(sent, WATCHED_MAX / 4_096 - 1, "all but the batch still collecting");
    assert!(!core.wants_records());
    // A confirmed batch finishes its members: room again.
    core.on_answer(&bank::protocol::Reply::Confirmed(batch_id(TxId(1))));
    let mut seq = 1_000_000;
    while let Some(command) = core.poll_command() {
        seq += 1;
        let confirmed =
            Submitted::Executed { seq, result: engine::ResultCode::Ok, duplicate: false };
        core.on_submitted(&command, confirmed);
    }
    assert_eq!(core.open_len(), WATCHED_MAX - 4_096);
    assert!(core.wants_records());
}

#[test]
fn given_up_batches_and_notices_are_bounded() {
    let config = Config { attempts_max: 1, net_items_max: 1, ..test_config() };
    let mut core = Settlement::new(config, CurrencyCode::new("USD").ok());
    let batches = GIVEN_UP_MAX + NOTICES_QUEUED_MAX;
    for index in 0..batches as u64 {
        core.on_record(index + 1, &deposit_record(u128::from(index) + 1, T0_NS)).expect("ok");
        while let Some(query) = core.poll_query() {
            core.on_outcome(query.seq, true);
        }
    }
    // `net_items_max: 1`: every deposit but the last closed the one before it.
    let mut now_ns = T0_NS;
    for _ in 0..3 {
        core.handle_timeout(now_ns);
        while let Some(command) = core.poll_command() {
            let ok = engine::ResultCode::Ok;
            core.on_submitted(
                &command,
                Submitted::Executed { seq: 0, result: ok, duplicate: false },
            );
        }
        while core.poll_instruction(now_ns).is_some() {}
        now_ns += 1_000 * NS_PER_MS;
    }
    assert_eq!(core.stuck().len(), GIVEN_UP_MAX, "the oldest given-up batches are forgotten");
    let mut notices = Vec::new();
    while let Some(notice) = core.poll_notice() {
        notices.push(notice);
    }
    assert_eq!(notices.len(), NOTICES_QUEUED_MAX + 1);
    assert!(
        matches!(notices.last(), Some(super::Notice::Dropped { count }) if *count as usize == batches - 1 - NOTICES_QUEUED_MAX),
        "{:?}",
        notices.last()
    );
    // Given up in timer order: the first notices name the forgotten batches, so a late answer
    // for the first does nothing, and one for the 1 024th (the oldest remembered) settles it.
    let batch_of = |notice: &super::Notice| match notice {
        super::Notice::GivenUp { batch, .. } => *batch,
        other => panic!("unexpected {other:?}"),
    };
    let forgotten = batch_of(&notices[0]);
    core.on_answer(&bank::protocol::Reply::Confirmed(forgotten));
    assert!(core.poll_command().is_none());
    let remembered = batch_of(&notices[NOTICES_QUEUED_MAX - 1]);
    let member = (1..=batches as u128).map(TxId).find(|tx| batch_id(*tx) == remembered);
    let member = member.expect("a member");
    core.on_answer(&bank::protocol::Reply::Confirmed(remembered));
    let command = core.poll_command().expect("a confirmation");
    assert_eq!(command.tx_id, settlement_tx_id(member, Step::Confirm));
    assert!(core.poll_command().is_none());
}
