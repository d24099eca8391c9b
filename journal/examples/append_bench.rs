//! Measures the sync choice recorded in FORMAT.md: `msync(MS_SYNC)` of the dirty range versus
//! `fdatasync`, on a preallocated segment written through a shared mapping, then the journal's own
//! append + flush loop. Not a test: numbers depend on the disk.
//!
//! `cargo run --release -p journal --example append_bench -- [DIR] [FLUSHES] [BATCH_LEN]`
//! (DIR defaults to a temporary directory; it must be on the disk you care about.)

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use journal::{Journal, JournalOptions, SyncMode};
use memmap2::MmapOptions;

const SEGMENT_LEN_BYTES: u64 = 64 << 20;
const RECORD_LEN_BYTES: usize = 128;

#[derive(Clone, Copy, Debug)]
enum Prealloc {
    /// `fallocate` mode 0: blocks reserved as unwritten extents.
    Fallocate,
    /// Zeros written and synced once: blocks already initialized.
    ZeroWritten,
}

#[derive(Clone, Copy, Debug)]
enum Method {
    MsyncRange,
    Fdatasync,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let temp = tempfile::tempdir()?;
    let dir = args.next().map_or_else(|| temp.path().to_path_buf(), Into::into);
    let flushes: usize = args.next().map_or(Ok(2_000), |arg| arg.parse())?;
    let batch_len: usize = args.next().map_or(Ok(16), |arg| arg.parse())?;
    println!(
        "dir {}, {flushes} flushes of {batch_len} x {RECORD_LEN_BYTES} B per run",
        dir.display()
    );
    for round in 0..2 {
        for prealloc in [Prealloc::Fallocate, Prealloc::ZeroWritten] {
            for method in [Method::MsyncRange, Method::Fdatasync] {
                let path = dir.join(format!("raw-{round}-{prealloc:?}-{method:?}.seg"));
                let latencies = raw_run(&path, prealloc, method, flushes, batch_len)?;
                report(&format!("raw {prealloc:?} {method:?}"), latencies, flushes * batch_len);
                std::fs::remove_file(&path)?;
            }
        }
    }
    for round in 0..2 {
        let journal_dir = dir.join(format!("journal-{round}"));
        let latencies = journal_run(&journal_dir, flushes, batch_len)?;
        report("journal append+flush", latencies, flushes * batch_len);
        std::fs::remove_dir_all(&journal_dir)?;
    }
    Ok(())
}

/// Appends `batch_len` records' worth of bytes through the mapping, then syncs; per-sync latency.
fn raw_run(
    path: &Path,
    prealloc: Prealloc,
    method: Method,
    flushes: usize,
    batch_len: usize,
) -> std::io::Result<Vec<Duration>> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
    preallocate(&file, prealloc)?;
    // SAFETY: the file is private to this run and SEGMENT_LEN_BYTES long.
    let mut map =
        unsafe { MmapOptions::new().len(SEGMENT_LEN_BYTES as usize).populate().map_mut(&file)? };
    let batch_bytes = batch_len * RECORD_LEN_BYTES;
    let mut offset = 0usize;
    let mut latencies = Vec::with_capacity(flushes);
    for flush in 0..flushes {
        if offset + batch_bytes > map.len() {
            offset = 0;
        }
        map[offset..offset + batch_bytes].fill((flush % 251) as u8 + 1);
        let start = Instant::now();
        match method {
            Method::MsyncRange => map.flush_range(offset, batch_bytes)?,
            Method::Fdatasync => file.sync_data()?,
        }
        latencies.push(start.elapsed());
        offset += batch_bytes;
    }
    Ok(latencies)
}

fn preallocate(file: &File, prealloc: Prealloc) -> std::io::Result<()> {
    // SAFETY: plain syscall on a descriptor we own.
    let result =
        unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, SEGMENT_LEN_BYTES as libc::off_t) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if let Prealloc::ZeroWritten = prealloc {
        let zeros = vec![0u8; 1 << 20];
        for offset in (0..SEGMENT_LEN_BYTES).step_by(zeros.len()) {
            file.write_all_at(&zeros, offset)?;
        }
    }
    file.sync_all()
}

/// The journal's own loop: a batch of appends, one flush; per-flush latency.
fn journal_run(
    dir: &Path,
    flushes: usize,
    batch_len: usize,
) -> Result<Vec<Duration>, journal::JournalError> {
    let options =
        JournalOptions { segment_len_bytes: SEGMENT_LEN_BYTES, sync_mode: SyncMode::Fsync };
    let (mut journal, _) = Journal::open(dir, options)?;
    let payload = [7u8; RECORD_LEN_BYTES - 16];
    let mut latencies = Vec::with_capacity(flushes);
    for _ in 0..flushes {
        for _ in 0..batch_len {
            journal.append(&payload)?;
        }
        let start = Instant::now();
        journal.flush()?;
        latencies.push(start.elapsed());
    }
    Ok(latencies)
}

fn report(label: &str, mut latencies: Vec<Duration>, records: usize) {
    latencies.sort();
    let total: Duration = latencies.iter().sum();
    let at = |quantile: f64| latencies[((latencies.len() - 1) as f64 * quantile) as usize];
    println!(
        "{label:<36} sync mean {:>7.1} us  p50 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us  ({:.0} records/s sync-bound)",
        total.as_secs_f64() * 1e6 / latencies.len() as f64,
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6,
        records as f64 / total.as_secs_f64(),
    );
}
