//! One thread's `epoll` instance, the readiness loop under `ledger-bench`'s TCP workers and the
//! `tcp_ceiling` example: level-triggered, input interest always, output interest on request,
//! and a wait with µs resolution (`epoll_pwait2`, Linux 5.11), so an open-loop frame leaves
//! when it is due rather than at the next millisecond.
//!
//! Why not `mio`: its registrations are edge-triggered, which would change how the workers
//! read (they stop after `READS_PER_WAKE_MAX` reads and count on being woken again for the
//! rest), and its `poll` rounds timeouts up to whole milliseconds. This module is the only
//! `unsafe` the benches' event loops need, behind a safe interface over borrowed descriptors.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result};

/// Readiness bits that mean "read now": data, the peer's shutdown, a hang-up or an error (the
/// read says which).
const READABLE: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
/// Readiness bits that mean "the socket takes output again".
const WRITABLE: u32 = libc::EPOLLOUT as u32;

/// What one ready descriptor reported.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// The token the descriptor was registered with.
    pub token: u64,
    bits: u32,
}

impl Event {
    /// Input, end of input or an error is waiting: a read will tell which.
    pub fn readable(self) -> bool {
        self.bits & READABLE != 0
    }

    /// The socket has room for output (reported only while output interest is on).
    pub fn writable(self) -> bool {
        self.bits & WRITABLE != 0
    }
}

/// A level-triggered `epoll` instance with room for `capacity` events per wait.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
    ready_len: usize,
}

impl Epoll {
    /// A new instance that returns at most `capacity` (at least 1) events per wait.
    pub fn new(capacity: usize) -> Result<Epoll> {
        // SAFETY: epoll_create1 has no memory preconditions; a non-negative result is a new
        // descriptor that we own from here on.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_create1");
        }
        // SAFETY: `raw` is a valid descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)];
        Ok(Epoll { fd, events, ready_len: 0 })
    }

    /// Watches `fd` for input under `token` (no output interest yet).
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, false)
    }

    /// Turns output interest on or off for `fd`, registered under `token`.
    pub fn set_output(&self, fd: BorrowedFd<'_>, token: u64, output: bool) -> Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, output)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<()> {
        self.control(libc::EPOLL_CTL_DEL, fd, 0, false)
    }

    fn control(&self, op: libc::c_int, fd: BorrowedFd<'_>, token: u64, output: bool) -> Result<()> {
        let interest = libc::EPOLLIN | libc::EPOLLRDHUP | if output { libc::EPOLLOUT } else { 0 };
        let mut event = libc::epoll_event { events: interest as u32, u64: token };
        // SAFETY: both descriptors are open (one owned, one borrowed for the call); `event` is
        // a valid epoll_event for the call.
        let done = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut event) };
        if done < 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_ctl");
        }
        Ok(())
    }

    /// Waits until a descriptor is ready or `timeout` passes; returns how many events the wait
    /// left for [`Epoll::event`] (0 on a timeout or a signal).
    pub fn wait(&mut self, timeout: Duration) -> Result<usize> {
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `events` is an exclusively borrowed buffer of `len` epoll_events; the
        // timeout outlives the call; a null signal mask leaves the mask unchanged.
        let ready = unsafe {
            libc::epoll_pwait2(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                &timeout,
                std::ptr::null(),
            )
        };
        self.ready_len = if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != ErrorKind::Interrupted {
                return Err(error).context("epoll_pwait2");
            }
            0
        } else {
            ready as usize
        };
        Ok(self.ready_len)
    }

    /// Event `index` (below what the last [`Epoll::wait`] returned).
    pub fn event(&self, index: usize) -> Event {
        assert!(index < self.ready_len, "event {index} of {} ready", self.ready_len);
        let event = self.events[index];
        Event { token: event.u64, bits: event.events }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::time::Duration;

    use super::Epoll;

    /// A connected pair reports nothing until a byte arrives, then input under its token;
    /// output interest reports an empty socket as writable.
    #[test]
    fn reports_input_and_output_by_token() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut client = TcpStream::connect(listener.local_addr()?)?;
        let (server, _) = listener.accept()?;
        let mut epoll = Epoll::new(4)?;
        epoll.add(server.as_fd(), 7)?;
        assert_eq!(epoll.wait(Duration::from_micros(500))?, 0);
        client.write_all(b"x")?;
        assert_eq!(epoll.wait(Duration::from_secs(5))?, 1);
        let event = epoll.event(0);
        assert_eq!(event.token, 7);
        assert!(event.readable() && !event.writable());
        epoll.set_output(server.as_fd(), 7, true)?;
        assert_eq!(epoll.wait(Duration::from_secs(5))?, 1);
        assert!(epoll.event(0).writable());
        epoll.delete(server.as_fd())?;
        assert_eq!(epoll.wait(Duration::ZERO)?, 0);
        Ok(())
    }
}
