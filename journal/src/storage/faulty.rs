//! [`FaultyStorage`]: any [`Storage`] plus scripted failures and simulated power loss, for the
//! journal's and the runtime's tests and the coming deterministic simulation.
//!
//! - **Scripted failures.** [`FaultyStorage::fail_next`] makes the next call of one operation
//!   (optionally only on files whose name contains a given text) fail with an errno, once. The
//!   script is shared by every clone and every thread (writer, flusher, spare preparer), so a
//!   test scripts a fault where the journal will meet it, not on a particular thread.
//! - **A killed process.** [`FaultyStorage::stop_after`] lets a given number of operations that
//!   change the disk succeed and fails every later one, as if the process died there: a test
//!   walks a multi-step operation through every point it can be interrupted at.
//! - **Lost unsynced bytes and torn tails.** Every file the storage touched keeps the end of
//!   what a successful sync covered (`sync_map`, `sync_data`: the synced range's end; `sync_file`:
//!   the end of the file's last non-zero byte). [`FaultyStorage::crash`] then does what a power
//!   failure may do to an append-only file: it zeroes everything past that end, except the first
//!   `torn_bytes` of it (a write the disk completed only in part). This model relies on the
//!   journal's own discipline (files only grow by appends, synced in order); it does not model
//!   names whose directory was never synced.

use std::io;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileStorage, Storage};

/// An operation a scripted fault can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// [`Storage::allocate`] (`fallocate`).
    Allocate,
    /// [`Storage::write_at`].
    Write,
    /// A data sync of a mapped file: [`Storage::sync_map`] (`msync`) or [`Storage::sync_data`]
    /// (`fdatasync`), whichever comes first.
    SyncData,
    /// [`Storage::sync_file`] (`fsync` of a file).
    SyncFile,
    /// [`Storage::sync_dir`] (`fsync` of a directory).
    SyncDir,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::create_new`].
    Create,
    /// [`Storage::remove_file`].
    Remove,
}

/// One scripted failure.
#[derive(Debug, Clone)]
struct Fault {
    op: FaultOp,
    errno: i32,
    /// Only files (or directories) whose name contains this text; `None`: any.
    name_contains: Option<String>,
}

/// What the storage knows about one file it touched.
#[derive(Debug)]
struct Tracked {
    path: Mutex<PathBuf>,
    /// Bytes before this offset are durable; what follows is lost at a crash.
    durable_end: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<Fault>,
    files: Vec<Arc<Tracked>>,
    /// Operations that change the disk still allowed to succeed ([`FaultyStorage::stop_after`]).
    changes_left: Option<u64>,
}

/// A [`Storage`] that fails on request and simulates power loss (see the module docs). Clones
/// share the script and the files' state.
#[derive(Debug, Clone)]
pub struct FaultyStorage<S: Storage = FileStorage> {
    inner: S,
    state: Arc<Mutex<State>>,
}

impl Default for FaultyStorage<FileStorage> {
    fn default() -> Self {
        FaultyStorage::new(FileStorage)
    }
}

/// A file of a [`FaultyStorage`].
#[derive(Debug)]
pub struct FaultyFile<F> {
    inner: F,
    tracked: Arc<Tracked>,
}

/// A writable map of a [`FaultyStorage`] file.
#[derive(Debug)]
pub struct FaultyMap<M> {
    inner: M,
    tracked: Arc<Tracked>,
}

impl<M: Deref<Target = [u8]>> Deref for FaultyMap<M> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.inner
    }
}

impl<M: DerefMut<Target = [u8]>> DerefMut for FaultyMap<M> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.inner
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A test that panicked while holding the lock left consistent data: every update is one
    // push, removal or store.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S: Storage> FaultyStorage<S> {
    /// Wraps `inner`; no fault is scripted yet.
    pub fn new(inner: S) -> Self {
        FaultyStorage { inner, state: Arc::new(Mutex::new(State::default())) }
    }

    /// Makes the next `op` (on any file) fail with `errno`, once.
    pub fn fail_next(&self, op: FaultOp, errno: i32) {
        lock(&self.state).faults.push(Fault { op, errno, name_contains: None });
    }

    /// Makes the next `op` on a file whose name contains `name_contains` fail with `errno`, once.
    pub fn fail_next_on(&self, op: FaultOp, name_contains: &str, errno: i32) {
        let name_contains = Some(name_contains.to_owned());
        lock(&self.state).faults.push(Fault { op, errno, name_contains });
    }

    /// Scripted faults not met yet.
    pub fn pending_faults(&self) -> usize {
        lock(&self.state).faults.len()
    }

    /// Forgets every scripted fault not met yet, and a [`FaultyStorage::stop_after`].
    pub fn clear_faults(&self) {
        let mut state = lock(&self.state);
        state.faults.clear();
        state.changes_left = None;
    }

    /// Lets the next `changes` operations that change the disk (every [`FaultOp`]: allocate,
    /// write, the syncs, rename, create, remove) succeed, and fails every one after them with
    /// `EIO`, as a process killed at that point would never issue them. Reads, listings, locks
    /// and maps still work. Until [`FaultyStorage::clear_faults`].
    pub fn stop_after(&self, changes: u64) {
        lock(&self.state).changes_left = Some(changes);
    }

    /// Simulates a power failure: in every file this storage touched, zeroes the bytes past what
    /// a sync covered, keeping the first `torn_bytes` of them (0: every unsynced byte is lost).
    /// Call it with no journal open on the storage (a dropped writer = a killed process).
    pub fn crash(&self, torn_bytes: u64) -> io::Result<()> {
        let files = std::mem::take(&mut lock(&self.state).files);
        for tracked in files {
            let path = lock_path(&tracked).clone();
            let Ok(file) = self.inner.open_write(&path) else { continue };
            let len_bytes = self.inner.len_bytes(&file)?;
            let keep_end = tracked.durable_end.load(Ordering::Acquire).saturating_add(torn_bytes);
            if keep_end < len_bytes {
                let zeros = vec![0u8; (len_bytes - keep_end) as usize];
                self.inner.write_at(&file, keep_end, &zeros)?;
                self.inner.sync_file(&file)?;
            }
        }
        Ok(())
    }

    /// Fails if a scripted fault matches `op` on `path`, consuming it.
    fn check(&self, op: FaultOp, path: &Path) -> io::Result<()> {
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        let mut state = lock(&self.state);
        if let Some(left) = state.changes_left.as_mut() {
            if *left == 0 {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            *left -= 1;
        }
        let found = state.faults.iter().position(|fault| {
            fault.op == op && fault.name_contains.as_ref().is_none_or(|text| name.contains(text))
        });
        match found {
            Some(index) => Err(io::Error::from_raw_os_error(state.faults.remove(index).errno)),
            None => Ok(()),
        }
    }

    fn track(&self, path: &Path, durable_end: u64) -> Arc<Tracked> {
        let tracked = Arc::new(Tracked {
            path: Mutex::new(path.to_path_buf()),
            durable_end: AtomicU64::new(durable_end),
        });
        let mut state = lock(&self.state);
        state.files.retain(|other| *lock_path(other) != path);
        state.files.push(tracked.clone());
        tracked
    }

    /// The end of the last non-zero byte of the file at `path` (what an fsync made durable).
    fn data_end(&self, path: &Path) -> io::Result<u64> {
        let map = self.inner.map_read(path)?;
        Ok(map.iter().rposition(|&byte| byte != 0).map_or(0, |at| at as u64 + 1))
    }
}

fn lock_path(tracked: &Tracked) -> MutexGuard<'_, PathBuf> {
    tracked.path.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn mark_durable(tracked: &Tracked, end: u64) {
    tracked.durable_end.fetch_max(end, Ordering::AcqRel);
}

impl<S: Storage> Storage for FaultyStorage<S> {
    type File = FaultyFile<S::File>;
    type Map = FaultyMap<S::Map>;
    type ReadMap = S::ReadMap;
    type Dirty = (S::Dirty, u64);
    type Lock = S::Lock;

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<S::Lock> {
        self.inner.lock_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(FaultOp::SyncDir, dir)?;
        self.inner.sync_dir(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FaultOp::Rename, from)?;
        self.inner.rename(from, to)?;
        for tracked in &lock(&self.state).files {
            let mut path = lock_path(tracked);
            if *path == from {
                *path = to.to_path_buf();
            }
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(FaultOp::Remove, path)?;
        self.inner.remove_file(path)?;
        lock(&self.state).files.retain(|tracked| *lock_path(tracked) != path);
        Ok(())
    }

    fn create_new(&self, path: &Path) -> io::Result<Self::File> {
        self.check(FaultOp::Create, path)?;
        let inner = self.inner.create_new(path)?;
        Ok(FaultyFile { inner, tracked: self.track(path, 0) })
    }

    fn open_write(&self, path: &Path) -> io::Result<Self::File> {
        let inner = self.inner.open_write(path)?;
        // What is on disk when a file is opened survived whatever came before.
        let durable_end = self.inner.len_bytes(&inner)?;
        Ok(FaultyFile { inner, tracked: self.track(path, durable_end) })
    }

    fn len_bytes(&self, file: &Self::File) -> io::Result<u64> {
        self.inner.len_bytes(&file.inner)
    }

    fn allocate(&self, file: &Self::File, len_bytes: u64) -> io::Result<()> {
        self.check(FaultOp::Allocate, &lock_path(&file.tracked))?;
        self.inner.allocate(&file.inner, len_bytes)
    }

    fn write_at(&self, file: &Self::File, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.check(FaultOp::Write, &lock_path(&file.tracked))?;
        self.inner.write_at(&file.inner, offset, bytes)
    }

    fn sync_file(&self, file: &Self::File) -> io::Result<()> {
        let path = lock_path(&file.tracked).clone();
        self.check(FaultOp::SyncFile, &path)?;
        self.inner.sync_file(&file.inner)?;
        let end = self.data_end(&path)?;
        file.tracked.durable_end.store(end, Ordering::Release);
        Ok(())
    }

    fn map_write(&self, file: &Self::File, len_bytes: u64) -> io::Result<Self::Map> {
        let inner = self.inner.map_write(&file.inner, len_bytes)?;
        Ok(FaultyMap { inner, tracked: file.tracked.clone() })
    }

    fn sync_map(&self, map: &Self::Map, start: u64, end: u64) -> io::Result<()> {
        self.check(FaultOp::SyncData, &lock_path(&map.tracked))?;
        self.inner.sync_map(&map.inner, start, end)?;
        mark_durable(&map.tracked, end);
        Ok(())
    }

    fn dirty(&self, map: &Self::Map, start: u64, end: u64) -> Self::Dirty {
        (self.inner.dirty(&map.inner, start, end), end)
    }

    fn sync_data(&self, file: &Self::File, dirty: &Self::Dirty) -> io::Result<()> {
        self.check(FaultOp::SyncData, &lock_path(&file.tracked))?;
        self.inner.sync_data(&file.inner, &dirty.0)?;
        mark_durable(&file.tracked, dirty.1);
        Ok(())
    }

    fn map_read(&self, path: &Path) -> io::Result<S::ReadMap> {
        self.inner.map_read(path)
    }

    fn refresh_read(&self, path: &Path, map: &mut S::ReadMap) -> io::Result<()> {
        self.inner.refresh_read(path, map)
    }

    fn release_map(&self, map: Self::Map) {
        self.inner.release_map(map.inner);
    }
}
