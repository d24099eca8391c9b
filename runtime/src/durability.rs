//! The durable point: when a round's replies may be released. A round is durable once it has
//! passed every stage: the local flush (the journal's sync of the round's records, always
//! there) and, at the same time on a helper thread, each [`DurableStage`] given to
//! `Runtime::start_in`, in order (none in production today; replication adds "appended to the
//! replicated log in etcd"). Once both are done, each stage is told so
//! ([`DurableStage::settled`]), then the replies are released.
//!
//! Stages run where the local flush runs (inline on the writer, or on the flusher thread while
//! the writer executes the next round), once per round with records, in seq order, never two
//! rounds at once. The writer's loop does not know how many there are: it hands the round to
//! [`Stages`] and waits for one result. See RUNTIME.md, *The durable point*, for the contract.

use std::error::Error;

/// A round as a stage sees it: its records' sequence numbers and payloads.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    /// The round's first record.
    pub first_seq: u64,
    /// The round's last record (`last_seq >= first_seq`: rounds without records pass no stage).
    pub last_seq: u64,
    /// The records' payloads (`engine::encode_command` bytes), each behind its length as a
    /// little-endian `u32`, in seq order. Empty unless a stage asked for them
    /// ([`DurableStage::wants_payloads`]).
    pub payloads: &'a [u8],
    /// The engine's state hash after `last_seq`, when the stage asked for it
    /// ([`DurableStage::wants_state_hash`]).
    pub state_hash: Option<u128>,
}

/// One step a round passes before it counts as durable.
///
/// **Contract:** `make_durable` returns `Ok` only once the round's records are durable in the
/// stage's sense; it may block (the writer goes on executing the next round meanwhile, and no
/// reply of this round or a later one is released before it returns). An `Err` fails the
/// runtime for good, exactly like a failed fsync: the round and every later one are answered
/// `Fatal`, nothing is acknowledged again, and the process must restart (recovery decides
/// from the local journal what survived; a replicated stage must reconcile with it then).
pub trait DurableStage: Send + 'static {
    /// A short name for errors and logs.
    fn name(&self) -> &str;

    /// Whether the stage needs [`Round::payloads`] (copying them costs the writer a `memcpy`
    /// per record, so only stages that ship bytes ask).
    fn wants_payloads(&self) -> bool {
        false
    }

    /// Whether the writer should compute the engine's state hash after the round
    /// `first_seq..=last_seq` for [`Round::state_hash`]. Asked on the writer thread before
    /// the round is handed over; a yes costs the writer O(state) (it encodes the whole state),
    /// so stages ask rarely (a replicated log's checkpoints).
    fn wants_state_hash(&mut self, first_seq: u64, last_seq: u64) -> bool {
        let _ = (first_seq, last_seq);
        false
    }

    /// Makes the round durable in this stage's sense; see the trait's contract. Rounds of
    /// records that came from another replica ([`crate::Handle::replicate`]) pass no stage:
    /// they are durable where they came from already.
    fn make_durable(&mut self, round: &Round<'_>) -> Result<(), Box<dyn Error + Send + Sync>>;

    /// Called once the round is durable everywhere — the local flush and every stage succeeded
    /// — before its replies are released. `make_durable` runs while the local flush may still
    /// be in progress, so what may only follow the local flush (a replica's position, which
    /// must never run ahead of its own journal) goes here. Never called for a round that
    /// failed.
    fn settled(&mut self, round: &Round<'_>) {
        let _ = round;
    }
}

/// The stages after the local flush, run in order.
#[derive(Default)]
pub(crate) struct Stages {
    stages: Vec<Box<dyn DurableStage>>,
    wants_payloads: bool,
}

impl Stages {
    pub(crate) fn new(stages: Vec<Box<dyn DurableStage>>) -> Stages {
        let wants_payloads = stages.iter().any(|stage| stage.wants_payloads());
        Stages { stages, wants_payloads }
    }

    /// Whether there is any stage after the local flush.
    pub(crate) fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Whether the writer must collect the rounds' payloads.
    pub(crate) fn wants_payloads(&self) -> bool {
        self.wants_payloads
    }

    /// Whether any stage wants the state hash after this round.
    pub(crate) fn wants_state_hash(&mut self, first_seq: u64, last_seq: u64) -> bool {
        let mut wants = false;
        for stage in &mut self.stages {
            wants |= stage.wants_state_hash(first_seq, last_seq);
        }
        wants
    }

    /// Passes the round through every stage, in order; the first failure stops it and is
    /// returned as the runtime's fatal message.
    pub(crate) fn run(&mut self, round: &Round<'_>) -> Result<(), String> {
        assert!(round.first_seq <= round.last_seq, "only rounds with records pass the stages");
        for stage in &mut self.stages {
            if let Err(error) = stage.make_durable(round) {
                let failed = crate::RuntimeError::Stage {
                    stage: stage.name().to_owned(),
                    first_seq: round.first_seq,
                    last_seq: round.last_seq,
                    message: error.to_string(),
                };
                return Err(failed.to_string());
            }
        }
        Ok(())
    }

    /// Tells every stage the round is durable everywhere ([`DurableStage::settled`]).
    pub(crate) fn settled(&mut self, round: &Round<'_>) {
        for stage in &mut self.stages {
            stage.settled(round);
        }
    }
}
