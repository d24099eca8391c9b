//! Journal replay for operators and auditors: rebuild the engine from a snapshot and the
//! journal, one record at a time, exactly as recovery does, and hand every step (command,
//! outcome, postings) to a tool.
//!
//! The starting point is the runtime's own recovery ([`runtime::recover`] in its read-only
//! mode): the same snapshot selection rule, the ledger's own engine settings, invariants
//! checked. Everything here is read-only on the journal: records are read through
//! [`journal::JournalReader`], which never modifies a file, and read-only recovery takes no lock,
//! zeroes no torn tail and writes no genesis snapshot, so it can read a directory a live
//! `ledgerd` is writing. The only writer is the `snapshot` subcommand, and it goes through
//! [`journal::snapshot::write`].

#![warn(missing_docs)]

pub mod shadow;
pub mod text;

use std::path::{Path, PathBuf};

use engine::{decode_command, Command, Effects, Engine, Outcome};
use journal::{JournalError, JournalReader, TornTail};
use runtime::{Base, RecoverOptions, RecoveredLog, RuntimeError};

/// What can stop a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The journal could not be read, or is corrupt (the error names file and offset).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A record's payload is not a command.
    #[error("record seq {seq}: {reason}")]
    Decode {
        /// The record.
        seq: u64,
        /// Why it does not decode.
        reason: String,
    },
    /// A snapshot could not be used.
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The journal does not reach back to the snapshot the replay starts from.
    #[error("journal starts at seq {first_seq}, but the replay needs seq {needed_seq}")]
    MissingRecords {
        /// The first record present.
        first_seq: u64,
        /// The first record needed.
        needed_seq: u64,
    },
    /// Recovery refused the ledger: no snapshot records its settings, or the starting state
    /// breaks an invariant.
    #[error(transparent)]
    Recover(RuntimeError),
}

impl From<RuntimeError> for ReplayError {
    fn from(error: RuntimeError) -> ReplayError {
        match error {
            RuntimeError::Journal(error) => ReplayError::Journal(error),
            RuntimeError::RecordDecode { seq, reason } => ReplayError::Decode { seq, reason },
            RuntimeError::MissingSegments { snapshot_seq, first_seq } => {
                ReplayError::MissingRecords { first_seq, needed_seq: snapshot_seq + 1 }
            }
            other => ReplayError::Recover(other),
        }
    }
}

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the oldest snapshot (a ledger's genesis snapshot has seq 0 and records its engine
    /// settings). A directory without snapshots is refused: nothing records its settings.
    Oldest,
    /// From the newest valid snapshot whose seq is at most this one.
    AtOrBefore(u64),
}

/// One applied record.
pub struct Step<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// The command it carried.
    pub command: &'a Command,
    /// What the engine answered (exactly what the server answered when it was first applied).
    pub outcome: &'a Outcome,
    /// Its postings and lifecycle changes.
    pub effects: &'a Effects,
    /// The engine right after the record.
    pub engine: &'a Engine,
}

/// An engine being rebuilt from a data directory.
pub struct Replay {
    /// The engine, including every record applied so far.
    pub engine: Engine,
    /// The snapshot the replay started from (`None`: an empty engine).
    pub base: Option<(u64, PathBuf)>,
    /// Snapshots skipped because they were damaged, and why.
    pub skipped: Vec<(PathBuf, String)>,
    /// The last record applied (the base snapshot's seq before any).
    pub last_seq: u64,
    /// Records applied.
    pub records: u64,
    /// Timestamp of the last record applied.
    pub last_timestamp_ns: u64,
    reader: JournalReader,
    fx: Effects,
    /// A record read ahead by `run_to_time` but not applied.
    pending: Option<(u64, Command)>,
    /// The last command applied and its outcome (borrowed by `Step`).
    command: Command,
    outcome: Outcome,
}

/// `DATA_DIR/journal` and `DATA_DIR/snapshots`.
pub fn dirs(data_dir: &Path) -> (PathBuf, PathBuf) {
    (journal::journal_dir(data_dir), journal::snapshot_dir(data_dir))
}

impl Replay {
    /// Loads the starting snapshot and positions the reader right after it, through the
    /// runtime's read-only recovery (which replays nothing here: the steps are the tool's).
    pub fn open(data_dir: &Path, start: Start) -> Result<Replay, ReplayError> {
        let base = match start {
            Start::Oldest => Base::Oldest,
            Start::AtOrBefore(seq) => Base::AtOrBefore(seq),
        };
        let options = RecoverOptions::read_only(base, Some(0));
        let recovered = runtime::recover(journal::FileStorage, data_dir, &options)?;
        let RecoveredLog::Reader(reader) = recovered.log else {
            unreachable!("a read-only recovery returns a reader");
        };
        let report = recovered.report;
        let skipped = report.skipped_snapshots.into_iter().map(|s| (s.path, s.reason)).collect();
        Ok(Replay {
            engine: recovered.engine,
            base: report.snapshot,
            skipped,
            last_seq: report.last_seq,
            records: 0,
            last_timestamp_ns: 0,
            reader,
            fx: Effects::default(),
            pending: None,
            command: Command {
                tx_id: engine::TxId(0),
                timestamp_ns: 0,
                body: engine::CommandBody::SettleBegin { target: engine::TxId(0) },
            },
            outcome: Outcome::rejected(engine::TxId(0), engine::ResultCode::TxNotFound),
        })
    }

    /// The next record's command, decoded but not applied.
    fn next_command(&mut self) -> Result<Option<(u64, Command)>, ReplayError> {
        if let Some(pending) = self.pending.take() {
            return Ok(Some(pending));
        }
        let Some(record) = self.reader.next_ref()? else {
            return Ok(None);
        };
        let seq = record.seq;
        let command = decode_command(record.payload)
            .map_err(|error| ReplayError::Decode { seq, reason: error.to_string() })?;
        Ok(Some((seq, command)))
    }

    /// Applies the next record; `Ok(None)` at the end of the log (for now: a live journal may
    /// grow).
    pub fn step(&mut self) -> Result<Option<Step<'_>>, ReplayError> {
        let Some((seq, command)) = self.next_command()? else {
            return Ok(None);
        };
        self.fx.clear();
        self.outcome = self.engine.apply(&command, &mut self.fx);
        self.command = command;
        self.last_seq = seq;
        self.records += 1;
        self.last_timestamp_ns = command.timestamp_ns;
        Ok(Some(Step {
            seq,
            command: &self.command,
            outcome: &self.outcome,
            effects: &self.fx,
            engine: &self.engine,
        }))
    }

    /// Applies records up to and including `seq` (or to the end of the log).
    pub fn run_to(&mut self, seq: u64) -> Result<(), ReplayError> {
        while self.last_seq < seq {
            if self.step()?.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// Applies every record stamped at or before `timestamp_ns` (the sequencer's timestamps never
    /// decrease, so this is a prefix of the journal).
    pub fn run_to_time(&mut self, timestamp_ns: u64) -> Result<(), ReplayError> {
        while let Some((seq, command)) = self.next_command()? {
            if command.timestamp_ns > timestamp_ns {
                self.pending = Some((seq, command));
                break;
            }
            self.pending = Some((seq, command));
            self.step()?;
        }
        Ok(())
    }

    /// The torn record the reader stopped at, if any (a record being written, or what the
    /// server will truncate at its next start).
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.reader.torn_tail()
    }

    /// The sequence number the next record would have.
    pub fn next_seq(&self) -> u64 {
        self.reader.next_seq()
    }
}
