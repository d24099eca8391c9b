//! When batches are sent: the timers, `SettleBegin` before the first send, the backoff that
//! doubles from `retry_initial_ms` to `retry_max_ms`, and the give-up after `attempts_max`.

use engine::TxId;

use super::{
    Instruction, Notice, SettleCommand, Settlement, CLOSE_GRACE_NS, GIVEN_UP_MAX, NS_PER_MS,
};
use crate::Step;

impl Settlement {
    /// Puts batch `id` on the timers at its next send, unless it waits for something else.
    pub(super) fn arm(&mut self, id: u128) {
        if let Some(batch) = self.batches.get(&id) {
            if batch.begun.outstanding == 0 && !batch.ready {
                self.timers.insert((batch.next_send_ns, id));
            }
        }
    }

    pub(super) fn disarm(&mut self, id: u128) {
        if let Some(batch) = self.batches.get(&id) {
            self.timers.remove(&(batch.next_send_ns, id));
        }
    }

    /// When `handle_timeout` is next needed: `None` while only an event can move anything.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.error.is_some() {
            return None;
        }
        let batch = self.timers.first().map(|&(at_ns, _)| at_ns);
        let collecting = self.collecting.as_ref().and_then(|collecting| {
            if collecting.begun.count < collecting.members.len() {
                Some(collecting.window_end_ns)
            } else if self.caught_up && self.records.is_empty() {
                Some(collecting.window_end_ns.saturating_add(CLOSE_GRACE_NS))
            } else {
                None
            }
        });
        match (batch, collecting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time is `now_ns`: closes idle windows, sends due batches, gives up exhausted ones.
    pub fn handle_timeout(&mut self, now_ns: u64) {
        if self.error.is_some() {
            return;
        }
        self.close_idle(now_ns);
        while let Some(&(at_ns, id)) = self.timers.first() {
            if at_ns > now_ns {
                break;
            }
            self.timers.remove(&(at_ns, id));
            self.due(id);
        }
    }

    /// A window that has passed on the clock while nothing later was journaled: its members'
    /// `SettleBegin`s are stamped after the window and so close it when read back. Only if
    /// none of them is journaled, once everything durable was read, does the clock close it.
    fn close_idle(&mut self, now_ns: u64) {
        let Some(collecting) = &mut self.collecting else { return };
        if now_ns < collecting.window_end_ns {
            return;
        }
        let (id, from) = (collecting.id, collecting.begun.count);
        let rest: Vec<TxId> = collecting.members[from..].iter().map(|m| m.tx_id).collect();
        collecting.begun.count = collecting.members.len();
        collecting.begun.outstanding += rest.len();
        let grace_end_ns = collecting.window_end_ns.saturating_add(CLOSE_GRACE_NS);
        self.begin(id, &rest);
        if self.caught_up && self.records.is_empty() && now_ns >= grace_end_ns {
            self.close_batch();
        }
    }

    fn begin(&mut self, batch: u128, targets: &[TxId]) {
        let commands = targets.iter().map(|&target| SettleCommand::new(target, Step::Begin, batch));
        self.commands.extend(commands);
    }

    /// Batch `id`'s send time has come.
    fn due(&mut self, id: u128) {
        let open = &self.open;
        let Some(batch) = self.batches.get_mut(&id) else { return };
        if batch.begun.count < batch.members.len() {
            // Every member still open gets `SettleBegin` first; the send waits for them.
            let rest: Vec<TxId> = batch.members[batch.begun.count..]
                .iter()
                .copied()
                .filter(|tx_id| open.contains_key(tx_id))
                .collect();
            batch.begun.count = batch.members.len();
            batch.begun.outstanding += rest.len();
            if !rest.is_empty() {
                return self.begin(id, &rest);
            }
        }
        if !batch.begun.live {
            // Nothing began now: settled, failed or rejected already (a restarted processor
            // re-reads old batches), unless a member is still open (someone else began it).
            if !batch.members.iter().any(|tx_id| open.contains_key(tx_id)) {
                self.batches.remove(&id);
                return;
            }
            batch.begun.live = true;
        }
        if batch.attempts >= self.config.attempts_max {
            return self.give_up(id);
        }
        batch.ready = true;
        self.ready.push_back(id);
    }

    pub(super) fn give_up(&mut self, id: u128) {
        self.disarm(id);
        let Some(batch) = self.batches.remove(&id) else { return };
        let (members, attempts) = (batch.members.len(), batch.attempts);
        self.notice(Notice::GivenUp { batch: id, members, attempts });
        if self.given_up.len() >= GIVEN_UP_MAX {
            self.given_up.pop_front();
        }
        self.given_up.push_back((id, batch.members));
    }

    /// Whether an instruction waits to be sent (the driver connects to the bank first).
    pub fn has_instruction(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The next instruction to send at `now_ns`; taking it counts as a send, and the batch is
    /// sent again after the backoff unless answered.
    pub fn poll_instruction(&mut self, now_ns: u64) -> Option<Instruction> {
        while let Some(id) = self.ready.pop_front() {
            let Some(batch) = self.batches.get_mut(&id) else { continue };
            if !batch.ready {
                continue;
            }
            let shift = batch.attempts.min(16);
            let backoff_ms = self
                .config
                .retry_initial_ms
                .saturating_mul(1 << shift)
                .min(self.config.retry_max_ms);
            batch.ready = false;
            batch.attempts += 1;
            batch.next_send_ns = now_ns.saturating_add(backoff_ms.saturating_mul(NS_PER_MS));
            let instruction =
                Instruction { batch: id, attempt: batch.attempts, lines: batch.lines.clone() };
            self.arm(id);
            return Some(instruction);
        }
        None
    }
}
