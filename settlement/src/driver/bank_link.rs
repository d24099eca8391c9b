//! The TCP connection to the bank: the driver writes instruction lines; a reader thread per
//! connection parses the bank's lines (`bank::protocol::parse_reply`) onto one bounded queue.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use bank::protocol::{parse_reply, Reply};
use crossbeam_channel::Sender;

/// Answers from the bank waiting for the processor (the reader thread blocks when full, so
/// the bank's writes back up in TCP).
pub const ANSWERS_QUEUED_MAX: usize = 4_096;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Longest line read from the bank; a longer one is read in pieces that do not parse.
const LINE_READ_MAX_BYTES: u64 = 1_024;

/// One connection to the bank.
pub struct BankLink {
    writer: TcpStream,
}

impl BankLink {
    /// Connects and starts the reader thread, which puts every reply on `answers`.
    pub fn connect(addr: SocketAddr, answers: Sender<Reply>) -> std::io::Result<BankLink> {
        let timeout = Duration::from_millis(CONNECT_TIMEOUT_MS);
        let writer = TcpStream::connect_timeout(&addr, timeout)?;
        let read_half = writer.try_clone()?;
        thread::Builder::new()
            .name("settle-bank-reader".into())
            .spawn(move || read_replies(read_half, &answers))?;
        Ok(BankLink { writer })
    }

    /// Writes `lines`; false when the connection is broken.
    pub fn send(&mut self, lines: &str) -> bool {
        self.writer.write_all(lines.as_bytes()).is_ok()
    }
}

impl Drop for BankLink {
    fn drop(&mut self) {
        // Ends the reader thread too: its read returns at once.
        let _ = self.writer.shutdown(Shutdown::Both);
    }
}

/// Reads the bank's lines until the connection or the driver goes away. Lines that are not
/// replies are ignored: the instruction they concern is retried on its backoff.
fn read_replies(stream: TcpStream, answers: &Sender<Reply>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut reader).take(LINE_READ_MAX_BYTES).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Ok((reply, _)) = parse_reply(line.trim_end()) else { continue };
        if answers.send(reply).is_err() {
            return;
        }
    }
}
