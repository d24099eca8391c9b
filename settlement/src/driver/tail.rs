//! The journal tail: reads records in order with one `JournalReader` for the processor's life
//! (reopening one would scan its segment again) and feeds the core those at or below the
//! runtime's durable point.

use std::path::PathBuf;

use journal::{JournalError, JournalReader};

use crate::core::{CoreError, Settlement};

/// Why a pass over the journal stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The core refused a record (it does not decode): the processor stops.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Reading failed at `seq`; the next pass reopens the reader there.
    #[error("read the journal at {seq}: {error}")]
    Journal {
        /// The next record to read.
        seq: u64,
        /// The journal's error.
        error: JournalError,
    },
}

/// Where the processor is in the journal.
pub struct Tail {
    dir: PathBuf,
    /// The next record to feed (0: not known yet, the oldest segment's first).
    next_seq: u64,
    reader: Option<JournalReader>,
    /// A record read before it was durable, fed once it is.
    held: Option<(u64, Vec<u8>)>,
}

impl Tail {
    /// A tail of the journal in `dir`, from its oldest segment on disk.
    pub fn new(dir: PathBuf) -> Tail {
        Tail { dir, next_seq: 0, reader: None, held: None }
    }

    /// Feeds `core` the records up to `durable_seq`, at most `records_max` and while it wants
    /// them; tells it when it has them all. Returns how many were fed.
    pub fn feed(
        &mut self,
        durable_seq: u64,
        core: &mut Settlement,
        records_max: usize,
    ) -> Result<usize, TailError> {
        if self.next_seq == 0 {
            let segments = journal::list_segments(&self.dir).unwrap_or_default();
            self.next_seq = segments.first().map_or(1, |segment| segment.first_seq);
        }
        let mut fed = 0;
        while fed < records_max && core.wants_records() {
            if self.next_seq > durable_seq {
                core.on_caught_up();
                return Ok(fed);
            }
            if let Some((seq, payload)) = self.held.take() {
                if seq > durable_seq {
                    self.held = Some((seq, payload));
                    core.on_caught_up();
                    return Ok(fed);
                }
                self.next_seq = seq + 1;
                core.on_record(seq, &payload)?;
                fed += 1;
                continue;
            }
            let reader = match &mut self.reader {
                Some(reader) => reader,
                None => self.reader.insert(self.open()?),
            };
            match reader.next_ref() {
                Ok(Some(record)) if record.seq > durable_seq => {
                    // Read but not durable yet: kept for a later pass.
                    self.held = Some((record.seq, record.payload.to_vec()));
                }
                Ok(Some(record)) => {
                    self.next_seq = record.seq + 1;
                    core.on_record(record.seq, record.payload)?;
                    fed += 1;
                }
                Ok(None) => {
                    core.on_caught_up();
                    return Ok(fed);
                }
                Err(error) => {
                    self.reader = None;
                    return Err(TailError::Journal { seq: self.next_seq, error });
                }
            }
        }
        Ok(fed)
    }

    fn open(&self) -> Result<JournalReader, TailError> {
        JournalReader::open(&self.dir, self.next_seq)
            .map_err(|error| TailError::Journal { seq: self.next_seq, error })
    }
}
