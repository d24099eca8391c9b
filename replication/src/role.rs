//! What this node is in its replica group right now, shared between the replica thread (which
//! decides), the replication stage (which appends only as a primary) and the server (which
//! refuses requests with `not_primary` unless this node is the primary).
//!
//! **Invariant:** the role only moves forward: `Starting → Standby → Primary → Stopped`
//! (`Standby → Stopped` too). A node that stopped being the primary never becomes it again
//! in the same process: it restarts and rejoins as a standby.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::entry::Head;

/// The role's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoleState {
    /// Catching up with the log; not serving.
    Starting,
    /// Following the log; requests are refused with `not_primary`.
    Standby,
    /// Serving: every round is appended to the log before its replies are released.
    Primary,
    /// Stopped for good: deposed, fenced or failed ([`Role::failure`] says why).
    Stopped,
}

impl RoleState {
    fn from_code(code: u8) -> RoleState {
        match code {
            0 => RoleState::Starting,
            1 => RoleState::Standby,
            2 => RoleState::Primary,
            _ => RoleState::Stopped,
        }
    }

    /// Lower-case name, for logs, metrics and `cluster status`.
    pub fn name(self) -> &'static str {
        match self {
            RoleState::Starting => "starting",
            RoleState::Standby => "standby",
            RoleState::Primary => "primary",
            RoleState::Stopped => "stopped",
        }
    }
}

/// The shared role of this node.
#[derive(Debug, Default)]
pub struct Role {
    state: AtomicU8,
    epoch: AtomicU64,
    /// The last seq applied from the log (standby) or appended to it (primary).
    log_seq: AtomicU64,
    /// The entry index of `log_seq`.
    log_index: AtomicU64,
    /// Failovers this node took part in as the new primary.
    promotions: AtomicU64,
    /// Where clients reach the primary, when known (for `not_primary` answers).
    primary_addr: Mutex<Option<String>>,
    /// The head of the last entry applied or appended (what the position file records).
    head: Mutex<Option<Head>>,
    failure: OnceLock<(String, bool)>,
}

impl Role {
    /// The current state.
    pub fn state(&self) -> RoleState {
        RoleState::from_code(self.state.load(Ordering::Acquire))
    }

    /// Whether this node serves requests.
    pub fn is_primary(&self) -> bool {
        self.state() == RoleState::Primary
    }

    /// The epoch this node last saw (its own while primary).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// `(entry index, seq)` of the last entry applied or appended.
    pub fn log_position(&self) -> (u64, u64) {
        (self.log_index.load(Ordering::Acquire), self.log_seq.load(Ordering::Acquire))
    }

    /// Times this node became the primary.
    pub fn promotions(&self) -> u64 {
        self.promotions.load(Ordering::Relaxed)
    }

    /// The primary's client address, when known.
    pub fn primary_addr(&self) -> Option<String> {
        self.primary_addr.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Why the node stopped, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(|(why, _)| why.as_str())
    }

    /// Whether the node stopped in a way a restart on the same data directory repairs (it was
    /// deposed: its lease was lost or an append fenced; or its journal holds records the log
    /// does not): it then rejoins as a standby, the unacknowledged tail cut off at start. A
    /// stop that is not (a divergent state, a broken chain, etcd refusing a request) needs a
    /// person: restarting would only stop again.
    pub fn rejoins(&self) -> bool {
        self.failure.get().is_some_and(|(_, rejoins)| *rejoins)
    }

    pub(crate) fn set_standby(&self) {
        let moved = self.state.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
        assert!(
            moved.is_ok()
                || self.state() == RoleState::Standby
                || self.state() == RoleState::Stopped,
            "a node becomes a standby only from starting"
        );
    }

    pub(crate) fn set_primary(&self, epoch: u64, own_addr: &str) {
        self.epoch.store(epoch, Ordering::Release);
        self.set_primary_addr(Some(own_addr.to_owned()));
        self.promotions.fetch_add(1, Ordering::Relaxed);
        let moved = self.state.compare_exchange(1, 2, Ordering::AcqRel, Ordering::Acquire);
        assert!(moved.is_ok() || self.state() == RoleState::Stopped, "only a standby is promoted");
    }

    pub(crate) fn set_epoch_seen(&self, epoch: u64) {
        self.epoch.fetch_max(epoch, Ordering::AcqRel);
    }

    pub(crate) fn set_primary_addr(&self, addr: Option<String>) {
        *self.primary_addr.lock().unwrap_or_else(PoisonError::into_inner) = addr;
    }

    /// The last entry applied or appended (once per entry: an uncontended lock).
    pub(crate) fn set_log_head(&self, head: Head) {
        *self.head.lock().unwrap_or_else(PoisonError::into_inner) = Some(head);
        self.log_index.store(head.index, Ordering::Release);
        self.log_seq.store(head.last_seq, Ordering::Release);
    }

    /// The head of the last entry applied or appended.
    pub fn log_head(&self) -> Option<Head> {
        *self.head.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the node for good with `why` (the first reason wins): a fault a restart does not
    /// repair.
    pub(crate) fn stop(&self, why: String) {
        let _ = self.failure.set((why, false));
        self.state.store(3, Ordering::Release);
    }

    /// Stops the node for good with `why` (the first reason wins), in a way a restart repairs
    /// ([`Role::rejoins`]).
    pub(crate) fn depose(&self, why: String) {
        let _ = self.failure.set((why, true));
        self.state.store(3, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_moves_forward_only() {
        let role = Role::default();
        assert_eq!(role.state(), RoleState::Starting);
        role.set_standby();
        assert!(!role.is_primary());
        role.set_primary(3, "127.0.0.1:1");
        assert!(role.is_primary());
        assert_eq!((role.epoch(), role.primary_addr().as_deref()), (3, Some("127.0.0.1:1")));
        role.depose("lease lost".into());
        role.stop("second reason".into());
        assert_eq!(role.state(), RoleState::Stopped);
        assert_eq!(role.failure(), Some("lease lost"));
        assert!(role.rejoins(), "the first reason decides");
        role.set_standby();
        assert_eq!(role.state(), RoleState::Stopped, "a stopped node stays stopped");
    }
}
