//! How replies wake the event loop: the [`Doorbell`] (a `mio::Waker` plus a bounded queue of
//! ready connection keys) and each connection's [`ConnectionNotify`], which the runtime's writer
//! calls after it put replies on the connection's queue (see `event_loop.rs`, "How replies wake
//! the loop"). Below both the loop and the connections, which each hold one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use mio::Waker;
use runtime::ReplyNotify;

use super::CONNECTIONS_MAX;

/// Keys on the doorbell's ready queue. Each connection's notify puts its key there at most once
/// until the loop takes it, so this is never full unless closed connections' late replies
/// pile up; then the loop turns every connection once instead.
const READY_QUEUE_LEN: usize = 2 * CONNECTIONS_MAX as usize;
const _: () = assert!(READY_QUEUE_LEN >= CONNECTIONS_MAX as usize);

/// How the runtime (and `Server::shutdown`) wakes the loop.
pub(crate) struct Doorbell {
    waker: Waker,
    /// Set when the waker was written and the loop has not looked since: later rings are free.
    pub(crate) rung: AtomicBool,
    ready_tx: Sender<usize>,
    pub(crate) ready: Receiver<usize>,
    /// A key did not fit the ready queue: the loop must turn every connection.
    pub(crate) overflowed: AtomicBool,
}

impl Doorbell {
    pub(crate) fn new(waker: Waker) -> Doorbell {
        let (ready_tx, ready) = bounded(READY_QUEUE_LEN);
        Doorbell {
            waker,
            rung: AtomicBool::new(false),
            ready_tx,
            ready,
            overflowed: AtomicBool::new(false),
        }
    }

    /// Wakes the loop (one eventfd write until the loop looks again).
    pub(crate) fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            // Writing an eventfd fails only at its counter's limit, which a pending wake-up
            // already covers.
            let _ = self.waker.wake();
        }
    }
}

/// A connection's notifier: the runtime calls it after putting replies on the connection's
/// queue.
pub(crate) struct ConnectionNotify {
    key: usize,
    /// The key is on the ready queue (or about to be) and the loop has not taken it yet.
    queued: AtomicBool,
    doorbell: Arc<Doorbell>,
}

impl ConnectionNotify {
    pub(crate) fn new(key: usize, doorbell: Arc<Doorbell>) -> ConnectionNotify {
        ConnectionNotify { key, queued: AtomicBool::new(false), doorbell }
    }

    /// The loop takes the key: from now on a new reply queues it again. Called before the
    /// connection's replies are taken, so none is missed.
    pub(crate) fn taken(&self) {
        self.queued.swap(false, Ordering::AcqRel);
    }
}

impl ReplyNotify for ConnectionNotify {
    fn notify(&self) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.doorbell.ready_tx.try_send(self.key).is_err() {
            self.doorbell.overflowed.store(true, Ordering::Release);
        }
        self.doorbell.ring();
    }
}
