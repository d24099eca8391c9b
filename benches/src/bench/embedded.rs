//! The embedded driver: the runtime and journal in this process as the target (`--embedded
//! DIR`), one producer per connection, each on its own thread; setup and verification through
//! one more producer (`EmbeddedAdmin`), and the engine's invariants checked at the end.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use engine::{AccountNo, CommandBody, ResultCode, TxId};
use journal::SyncMode;
use runtime::{
    Answer, Handle, NewCommand, Producer, Query, QueryAnswer, Replies, Runtime, RuntimeOptions,
};

use super::measure::{Measured, Meter};
use super::plan::{Plan, Stop, Stream, POLL_MAX};
use super::tally::{run_workers, Counters, Tally};
use super::verify::{setup, verify, Admin, QUERY_IN_FLIGHT, SETUP_IN_FLIGHT};
use crate::report::thread_cpu;
use crate::Rng;

/// Runs the whole benchmark against a runtime started in `dir` (created if missing): setup,
/// the timed run, verification, the engine's invariants, shutdown.
pub(super) fn run(
    plan: &Plan,
    dir: &Path,
    sync_mode: SyncMode,
    setup_rng: &mut Rng,
    meter: &Meter<'_>,
) -> Result<(String, Measured)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let options = RuntimeOptions { sync_mode, ..RuntimeOptions::default() };
    let len_max = options.submission_len_max;
    ensure!(
        plan.batch_len <= len_max,
        "--batch exceeds the runtime's submission_len_max {len_max}"
    );
    let (runtime, report) = Runtime::start(dir, options)
        .with_context(|| format!("start the runtime in {}", dir.display()))?;
    eprintln!("ledger-bench: recovered {}: {report}", dir.display());
    let handle = runtime.handle();
    let (producer, replies) = handle.producer(SETUP_IN_FLIGHT.max(QUERY_IN_FLIGHT));
    let mut admin = EmbeddedAdmin { producer, replies, len_max: len_max as usize };
    setup(&mut admin, &plan.accounts, setup_rng)?;
    let stats_before = runtime.stats();
    let counters = meter.counters;
    let timed = meter.timed(|| run_embedded(plan, &handle, counters))?;
    let stats_after = runtime.stats();
    let sent = counters.commands_sent.load(Ordering::Relaxed);
    let verified = verify(&mut admin, &plan.accounts, &timed.tally, sent)?;
    match handle.query(Query::CheckInvariants)? {
        QueryAnswer::Invariants(Ok(())) => {}
        QueryAnswer::Invariants(Err(broken)) => bail!("engine invariants broken: {broken}"),
        other => bail!("unexpected answer {other:?}"),
    }
    drop(admin);
    runtime.shutdown().context("stop the runtime")?;
    let target = format!("embedded {}", dir.display());
    let runtime = Some((stats_before, stats_after));
    Ok((target, Measured { timed, verified, runtime }))
}

struct EmbeddedAdmin {
    producer: Producer,
    replies: Replies,
    len_max: usize,
}

impl Admin for EmbeddedAdmin {
    fn execute(&mut self, commands: &[(TxId, CommandBody)]) -> Result<Vec<ResultCode>> {
        let mut results = vec![None; commands.len()];
        let chunks = commands.chunks(self.len_max).enumerate();
        let mut in_flight = 0u32;
        let receive = |in_flight: &mut u32, results: &mut Vec<Option<ResultCode>>| {
            let reply = self.replies.recv().context("the runtime stopped")?;
            *in_flight -= 1;
            let Answer::Executed(executed) = reply.result? else { bail!("not outcomes") };
            let start = reply.token as usize * self.len_max;
            for (offset, outcome) in executed.outcomes.iter().enumerate() {
                results[start + offset] = Some(outcome.result);
            }
            Ok(())
        };
        for (index, chunk) in chunks {
            if in_flight >= SETUP_IN_FLIGHT {
                receive(&mut in_flight, &mut results)?;
            }
            let chunk = chunk.iter().map(|&(tx_id, body)| NewCommand { tx_id, body }).collect();
            self.producer.submit(index as u64, chunk).map_err(|refused| anyhow!(refused.error))?;
            in_flight += 1;
        }
        while in_flight > 0 {
            receive(&mut in_flight, &mut results)?;
        }
        results.into_iter().map(|result| result.context("an outcome is missing")).collect()
    }

    fn totals(&mut self, keys: &[AccountNo]) -> Result<Vec<Option<i128>>> {
        let mut totals = vec![None; keys.len()];
        let mut in_flight = 0u32;
        let receive = |in_flight: &mut u32, totals: &mut Vec<Option<i128>>| {
            let reply = self.replies.recv().context("the runtime stopped")?;
            *in_flight -= 1;
            let Answer::Query(QueryAnswer::Account(account)) = reply.result? else {
                bail!("not an account")
            };
            totals[reply.token as usize] =
                account.map(|view| view.available_minor + view.frozen_minor);
            Ok(())
        };
        for (index, key) in keys.iter().enumerate() {
            if in_flight >= QUERY_IN_FLIGHT {
                receive(&mut in_flight, &mut totals)?;
            }
            self.producer.query(index as u64, Query::Account(*key))?;
            in_flight += 1;
        }
        while in_flight > 0 {
            receive(&mut in_flight, &mut totals)?;
        }
        Ok(totals)
    }
}

fn embedded_worker(
    mut stream: Stream,
    producer: Producer,
    replies: Replies,
    end: Option<Instant>,
    observe: bool,
    counters: &Counters,
) -> Result<Tally> {
    let cpu_start = thread_cpu();
    let mut tally = Tally::new();
    loop {
        let now = Instant::now();
        let sending =
            !counters.stop_sending.load(Ordering::Relaxed) && end.is_none_or(|end| now < end);
        while let Some((token, start, len)) = stream.next_frame(sending) {
            let mut commands = Vec::with_capacity(len as usize);
            stream.generator.fill(len as usize, |tx_id, body| {
                commands.push(NewCommand { tx_id, body });
            });
            tally.sent(start);
            counters.commands_sent.fetch_add(len, Ordering::Relaxed);
            counters.frames_sent.fetch_add(1, Ordering::Relaxed);
            producer.submit(token, commands).map_err(|refused| anyhow!(refused.error))?;
        }
        if stream.finished(sending) {
            break;
        }
        let mut wake = stream.wake_at(sending).unwrap_or(now + POLL_MAX).min(now + POLL_MAX);
        if let Some(end) = end.filter(|_| sending) {
            wake = wake.min(end);
        }
        let Some(reply) = replies.recv_deadline(wake) else { continue };
        let mut next = Some(reply);
        while let Some(reply) = next {
            let sent = stream.complete(reply.token).context("a reply to no request")?;
            tally.answered(&sent, Instant::now(), counters);
            match reply.result {
                Ok(Answer::Executed(executed)) => {
                    ensure!(executed.outcomes.len() as u64 == sent.len, "wrong outcome count");
                    for outcome in &executed.outcomes {
                        tally.outcome(outcome.result);
                        if observe {
                            let generator = &mut stream.generator;
                            generator.observe(outcome.tx_id, outcome.result, outcome.tx_state);
                        }
                    }
                }
                Ok(Answer::Query(_) | Answer::Replicated(_)) => {
                    bail!("a query or replication answer to a submission")
                }
                Err(error) => {
                    tally.refused_commands += sent.len;
                    tally.error(error.to_string());
                }
            }
            next = replies.try_recv();
        }
    }
    tally.cpu = thread_cpu().saturating_sub(cpu_start);
    Ok(tally)
}

fn run_embedded(plan: &Plan, handle: &Handle, counters: &Counters) -> Result<Tally> {
    let start = Instant::now() + Duration::from_millis(20);
    let end = match plan.stop {
        Stop::Duration(duration) => Some(start + duration),
        Stop::Transfers(_) => None,
    };
    let workers: Vec<_> = (0..plan.connections)
        .map(|index| {
            let (producer, replies) = handle.producer(plan.in_flight);
            let stream = plan.stream(index, start);
            let observe = plan.workload.needs_outcomes();
            move || {
                std::thread::sleep(start.saturating_duration_since(Instant::now()));
                embedded_worker(stream, producer, replies, end, observe, counters)
            }
        })
        .collect();
    run_workers("bench-prod", workers, counters)
}
