//! The preparer: a thread that makes the next segment file ready before the writer needs it, so a
//! rollover does not create, preallocate, fsync and map 32 MiB on the writer's path (8–12 ms at
//! p50 on the development VM), only stamps a header, syncs one page and renames (see `FORMAT.md`,
//! *Spare segment*).
//!
//! One spare at a time: the writer asks for one ([`Preparer::request`]) at its first append and
//! after every rollover ([`Preparer::request_after_rollover`], which also hands over the sealed
//! segment's mapping: unmapping 32 MiB takes ~1.6 ms), and takes it ([`Preparer::take`]) at the
//! next rollover, waiting for the preparation if it is still running. The thread runs at a lower
//! priority (`PREPARER_NICE`): its work (mostly zeroing the page cache for the mapping, ~8 ms of
//! CPU per 32 MiB) is due only at the next rollover, and must not take a core from the writer
//! or the flusher in the meantime. Whatever goes wrong here is never reported by itself: a
//! missing or failed spare makes the writer create the segment inline, exactly as without a
//! preparer, and that creation reports its own errors (`NoSpace` with the completed prefix).
//!
//! **Invariant:** the preparer only ever writes `spare.seg.tmp`, a temporary name that readers
//! ignore and the next `Journal::open` removes; only the writer gives a file a segment name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::JournalError;
use crate::segment::{self, Spare};
use crate::storage::Storage;

/// The preparer thread's nice value (0 is normal, 19 the lowest). Not the lowest: on a machine
/// saturated by other processes a spare must still be ready before the next rollover (~0.3 s
/// at full speed), or the writer waits for it.
const PREPARER_NICE: i32 = 10;

/// The mapping and file of a segment the writer has sealed, dropped on the preparer thread.
pub(crate) struct Sealed<S: Storage> {
    pub map: S::Map,
    pub file: Arc<S::File>,
}

/// A request for the next spare.
struct Request<S: Storage> {
    sealed: Option<Sealed<S>>,
}

/// Where the one spare is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No preparer thread (it could not be started, or it died): segments are created inline.
    Disabled,
    /// Nothing requested yet (or the last spare was taken and no new one asked for).
    Idle,
    /// A spare was requested; its result is in (or on its way to) `ready`.
    Requested,
}

/// The writer's side of the preparer thread.
pub(crate) struct Preparer<S: Storage> {
    storage: S,
    /// Dropping it ends the thread (after the preparation it is running, if any).
    requests: Option<Sender<Request<S>>>,
    ready: Receiver<Result<Spare<S>, JournalError>>,
    thread: Option<JoinHandle<()>>,
    state: State,
}

impl<S: Storage> Preparer<S> {
    /// Starts the preparer thread for spares of `segment_len_bytes` in `dir`. If the OS refuses
    /// a thread, every segment is created inline: slower rollovers, equally safe.
    pub(crate) fn start(storage: S, dir: &Path, segment_len_bytes: u64) -> Preparer<S> {
        // One request and one result at a time: neither send ever blocks.
        let (requests, requests_rx) = bounded::<Request<S>>(1);
        let (ready_tx, ready) = bounded(1);
        let dir: PathBuf = dir.to_path_buf();
        let thread_storage = storage.clone();
        let spawned =
            std::thread::Builder::new().name("journal-spare".to_owned()).spawn(move || {
                lower_priority();
                let storage = thread_storage;
                for request in requests_rx {
                    if let Some(sealed) = request.sealed {
                        unmap(&storage, sealed);
                    }
                    let spare = segment::prepare_spare(&storage, &dir, segment_len_bytes);
                    if ready_tx.send(spare).is_err() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(thread) => Preparer {
                storage,
                requests: Some(requests),
                ready,
                thread: Some(thread),
                state: State::Idle,
            },
            Err(_) => {
                Preparer { storage, requests: None, ready, thread: None, state: State::Disabled }
            }
        }
    }

    /// Asks for a spare unless one is already requested (or there is no preparer thread).
    /// Cheap when there is nothing to do: the writer calls it on every append.
    #[inline]
    pub(crate) fn request(&mut self) {
        if self.state == State::Idle {
            self.send_request(None);
        }
    }

    /// Asks for the next spare after a rollover, handing over the sealed segment's mapping to
    /// be unmapped on the preparer thread (here, when there is none).
    pub(crate) fn request_after_rollover(&mut self, sealed: Sealed<S>) {
        if self.state == State::Idle {
            self.send_request(Some(sealed));
        }
    }

    #[cold]
    fn send_request(&mut self, sealed: Option<Sealed<S>>) {
        assert_eq!(self.state, State::Idle, "one spare at a time");
        let request = Request { sealed };
        let sent =
            self.requests.as_ref().is_some_and(|requests| requests.try_send(request).is_ok());
        self.state = if sent { State::Requested } else { State::Disabled };
    }

    /// The requested spare, waiting for its preparation if it is still running; `None` when
    /// none was requested or the preparer thread is gone. `Some(Err(_))`: the preparation failed
    /// (its file is already removed).
    pub(crate) fn take(&mut self) -> Option<Result<Spare<S>, JournalError>> {
        if self.state != State::Requested {
            return None;
        }
        match self.ready.recv() {
            Ok(prepared) => {
                if let Ok(spare) = &prepared {
                    assert!(spare.path.ends_with(segment::SPARE_FILE_NAME), "only the spare");
                }
                self.state = State::Idle;
                Some(prepared)
            }
            Err(_) => {
                self.state = State::Disabled;
                None
            }
        }
    }
}

/// Unmaps a sealed segment without holding up the writer ([`Storage::release_map`]).
fn unmap<S: Storage>(storage: &S, sealed: Sealed<S>) {
    let Sealed { map, file } = sealed;
    storage.release_map(map);
    // After the mapping: the file may still be shared with a flush job, and closes with it.
    drop(file);
}

/// Lowers the calling thread's priority to `PREPARER_NICE`. Only a hint: a failure costs the
/// writer some CPU at times, never correctness.
fn lower_priority() {
    // SAFETY: plain syscalls; `gettid` cannot fail, and `setpriority` on our own thread id only
    // changes this thread's nice value (raising it needs no privilege).
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, PREPARER_NICE);
    }
}

impl<S: Storage> Drop for Preparer<S> {
    /// Stops the thread, waits for the preparation it may be running, and removes an unused
    /// spare (best effort: a leftover is removed by the next open anyway).
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Ok(Ok(spare)) = self.ready.try_recv() {
            let Spare { path, map, file, .. } = spare;
            drop((map, file));
            let _ = self.storage.remove_file(&path);
        }
    }
}
