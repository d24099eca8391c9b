//! The client's own tokio runtime: a multi-thread runtime with exactly one worker thread.
//!
//! Why this shape: the callers are plain threads (the ledger's replication thread, tests), so
//! the public API blocks and tokio stays inside. Something must drive the connections, the
//! submitted transactions and the watch streams while no caller is waiting: the one worker
//! thread does (`etcd-client`). A `current_thread` runtime makes progress only inside a
//! `block_on`, so it would need a dedicated thread parked in `block_on` plus a channel hop per
//! request; a one-worker multi-thread runtime is exactly that thread, and in addition lets
//! several caller threads `block_on` at once, each polling its own request future on its own
//! thread while the I/O stays on the worker. One worker is enough: the work is I/O and
//! protobuf coding of at most a few MiB per request, and the machine has two cores.

use std::future::Future;

use crate::error::Error;

/// Owns the runtime; dropping it shuts the runtime down without waiting.
pub(crate) struct Runtime {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    /// Starts the worker thread.
    pub(crate) fn start() -> Result<Runtime, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-client")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| Error::Io {
                context: "start the etcd client's runtime".into(),
                source,
            })?;
        Ok(Runtime { runtime: Some(runtime) })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime is only taken in drop")
    }

    /// The handle to spawn tasks with and to enter the runtime's context.
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime().handle()
    }

    /// Runs `future` to completion on the calling thread. Refused on a thread that is inside
    /// a tokio runtime (tokio would panic, or the worker would wait on itself).
    pub(crate) fn block_on<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InsideRuntime);
        }
        Ok(self.runtime().block_on(future))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropping a tokio runtime blocks, which panics when the last handle goes away inside
        // a runtime (a `txn_submit` callback that owned a client clone): never wait here.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
