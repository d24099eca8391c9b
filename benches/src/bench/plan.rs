//! What a run sends and when: the checked `Plan` and each connection's `Stream` (its frame
//! schedule, closed or open loop, and the frames awaiting replies), whatever carries them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::workload::{Generator, RunAccounts, Workload, Zipf};

/// Longest a worker sleeps without looking at the clock (duration end, progress).
pub(super) const POLL_MAX: Duration = Duration::from_millis(50);

/// When sending stops.
#[derive(Clone, Copy, Debug)]
pub(super) enum Stop {
    Transfers(u64),
    Duration(Duration),
}

/// Everything a run needs to know, checked.
pub(super) struct Plan {
    pub(super) workload: Workload,
    pub(super) accounts: RunAccounts,
    pub(super) zipf: Option<Arc<Zipf>>,
    pub(super) stop: Stop,
    pub(super) connections: u32,
    pub(super) batch_len: u32,
    pub(super) in_flight: u32,
    pub(super) rate: Option<f64>,
    pub(super) seed: u64,
}

impl Plan {
    /// Commands connection `index` sends in `Transfers` mode (`u64::MAX`: until the end).
    pub(super) fn quota(&self, index: u32) -> u64 {
        match self.stop {
            Stop::Transfers(total) => {
                let connections = u64::from(self.connections);
                total / connections + u64::from(u64::from(index) < total % connections)
            }
            Stop::Duration(_) => u64::MAX,
        }
    }

    /// The interval between a connection's frames in open loop.
    pub(super) fn interval(&self) -> Option<Duration> {
        let rate = self.rate?;
        let frames_per_sec = rate / f64::from(self.batch_len) / f64::from(self.connections);
        Some(Duration::from_secs_f64(1.0 / frames_per_sec))
    }

    pub(super) fn stream(&self, index: u32, start: Instant) -> Stream {
        let interval = self.interval();
        // Connections' schedules are spread evenly over one interval.
        let first_due = interval.map(|interval| {
            start + interval.mul_f64(f64::from(index) / f64::from(self.connections))
        });
        let seed = self.seed ^ (u64::from(index) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Stream {
            generator: Generator::new(
                self.workload,
                self.accounts.keys().clone(),
                self.zipf.clone(),
                seed,
            ),
            sent: VecDeque::with_capacity(self.in_flight as usize),
            next_request_id: 2, // HELLO is 1
            remaining: self.quota(index),
            next_due: first_due,
            interval: interval.unwrap_or(Duration::ZERO),
            in_flight_max: self.in_flight as usize,
            batch_len: u64::from(self.batch_len),
        }
    }
}

/// A frame awaiting its reply.
pub(super) struct Sent {
    pub(super) request_id: u64,
    /// Intended send time (open loop) or actual send time (closed loop).
    pub(super) start: Instant,
    pub(super) len: u64,
}

/// One connection's schedule and bookkeeping, whatever carries its frames.
pub(super) struct Stream {
    pub(super) generator: Generator,
    pub(super) sent: VecDeque<Sent>,
    pub(super) next_request_id: u64,
    pub(super) remaining: u64,
    pub(super) next_due: Option<Instant>,
    pub(super) interval: Duration,
    pub(super) in_flight_max: usize,
    pub(super) batch_len: u64,
}

impl Stream {
    /// Reserves the next frame if one may be sent now: `(request id, start, commands)`.
    pub(super) fn next_frame(&mut self, sending: bool) -> Option<(u64, Instant, u64)> {
        if !sending || self.remaining == 0 || self.sent.len() >= self.in_flight_max {
            return None;
        }
        let start = match &mut self.next_due {
            Some(due) => {
                if *due > Instant::now() {
                    return None;
                }
                let start = *due;
                *due += self.interval;
                start
            }
            None => Instant::now(),
        };
        let len = self.batch_len.min(self.remaining);
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.remaining -= len;
        self.sent.push_back(Sent { request_id, start, len });
        Some((request_id, start, len))
    }

    /// The frame `request_id` is answered: forget it (replies usually come in order).
    pub(super) fn complete(&mut self, request_id: u64) -> Option<Sent> {
        let position = self.sent.iter().position(|sent| sent.request_id == request_id)?;
        self.sent.remove(position)
    }

    /// When this stream next wants to send (open loop, with room in the window).
    pub(super) fn wake_at(&self, sending: bool) -> Option<Instant> {
        let room = self.sent.len() < self.in_flight_max;
        (sending && room && self.remaining > 0).then_some(self.next_due).flatten()
    }

    pub(super) fn finished(&self, sending: bool) -> bool {
        (!sending || self.remaining == 0) && self.sent.is_empty()
    }
}
