//! [`MemoryStorage`]: a disk in memory, for the deterministic simulation and for tests that
//! need power loss to be exact. Every file has a *page cache* (what reads see) and a *durable*
//! image (what survives [`MemoryStorage::crash`]); every directory has its current names and its
//! durable names (what survives a crash).
//!
//! - A writable map is a private buffer: its bytes reach the page cache when a sync covers them
//!   (`sync_map`, or `dirty` + `sync_data`) or when the map is dropped (a killed process: the
//!   kernel keeps what was written through a mapping), and the durable image only when a sync
//!   covers them. So a reader sees an appended record once it was synced or its writer is gone.
//! - `write_at` and `allocate` change the page cache; `sync_file` makes the whole file durable.
//! - A create, rename or remove changes the current names; `sync_dir` makes the directory's
//!   current names durable.
//! - [`MemoryStorage::crash`] is a power failure: every file returns to its durable image, every
//!   directory to its durable names, every lock is released. Run it with no journal open.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Storage;

/// One file: its page cache and its durable image.
#[derive(Debug, Default)]
pub struct MemoryFile {
    cache: Mutex<Vec<u8>>,
    durable: Mutex<Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, Arc<MemoryFile>>,
    durable_names: BTreeMap<PathBuf, Arc<MemoryFile>>,
    locks: BTreeSet<PathBuf>,
}

/// The in-memory disk (see the module docs). Clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
}

/// A writable map of a [`MemoryStorage`] file: a private buffer (see the module docs).
#[derive(Debug)]
pub struct MemoryMap {
    buf: Vec<u8>,
    file: Arc<MemoryFile>,
}

/// A read-only map of a [`MemoryStorage`] file: a copy of its page cache, refreshed on request.
#[derive(Debug)]
pub struct MemoryReadMap(Vec<u8>);

/// The writer lock on a [`MemoryStorage`] directory.
#[derive(Debug)]
pub struct MemoryLock {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update below is complete before anything can panic, so a poisoned lock still
    // guards consistent data.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

/// Copies `bytes` into `image` at `offset`, growing it with zeros if needed.
fn copy_into(image: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = offset as usize;
    let end = start + bytes.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(bytes);
}

impl Deref for MemoryMap {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl DerefMut for MemoryMap {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for MemoryMap {
    /// Unmapping keeps what was written in the page cache (not on disk).
    fn drop(&mut self) {
        copy_into(&mut lock(&self.file.cache), 0, &self.buf);
    }
}

impl Deref for MemoryReadMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        lock(&self.state).locks.remove(&self.dir);
    }
}

impl MemoryStorage {
    /// An empty disk.
    pub fn new() -> Self {
        MemoryStorage::default()
    }

    /// A power failure (see the module docs). Run it with no journal open on the storage.
    pub fn crash(&self) {
        let mut state = lock(&self.state);
        state.names = state.durable_names.clone();
        state.locks.clear();
        for file in state.names.values() {
            *lock(&file.cache) = lock(&file.durable).clone();
        }
    }

    /// The page-cache contents of the file at `path` (what a reader would see), for tests.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let state = lock(&self.state);
        state.names.get(path).map(|file| lock(&file.cache).clone())
    }

    fn file(&self, path: &Path) -> io::Result<Arc<MemoryFile>> {
        lock(&self.state).names.get(path).cloned().ok_or_else(not_found)
    }
}

impl Storage for MemoryStorage {
    type File = Arc<MemoryFile>;
    type Map = MemoryMap;
    type ReadMap = MemoryReadMap;
    type Dirty = (u64, Vec<u8>);
    type Lock = MemoryLock;

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        // Directories are durable at once: the journal creates its own once, before any file.
        for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<MemoryLock> {
        let mut state = lock(&self.state);
        if !state.dirs.contains(dir) {
            return Err(not_found());
        }
        if !state.locks.insert(dir.to_path_buf()) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        Ok(MemoryLock { state: self.state.clone(), dir: dir.to_path_buf() })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        let current: Vec<_> = state
            .names
            .iter()
            .filter(|(path, _)| in_dir(path))
            .map(|(p, f)| (p.clone(), f.clone()))
            .collect();
        state.durable_names.retain(|path, _| !in_dir(path));
        state.durable_names.extend(current);
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = lock(&self.state);
        if !state.dirs.contains(dir) {
            return Err(not_found());
        }
        let names = state.names.keys().filter(|path| path.parent() == Some(dir));
        Ok(names.filter_map(|path| path.file_name()?.to_str().map(str::to_owned)).collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        let file = state.names.remove(from).ok_or_else(not_found)?;
        state.names.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        lock(&self.state).names.remove(path).map(drop).ok_or_else(not_found)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<MemoryFile>> {
        let mut state = lock(&self.state);
        if state.names.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let parent = path.parent().ok_or_else(not_found)?;
        if !state.dirs.contains(parent) {
            return Err(not_found());
        }
        let file = Arc::new(MemoryFile::default());
        state.names.insert(path.to_path_buf(), file.clone());
        Ok(file)
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<MemoryFile>> {
        self.file(path)
    }

    fn len_bytes(&self, file: &Arc<MemoryFile>) -> io::Result<u64> {
        Ok(lock(&file.cache).len() as u64)
    }

    fn allocate(&self, file: &Arc<MemoryFile>, len_bytes: u64) -> io::Result<()> {
        let mut cache = lock(&file.cache);
        if (cache.len() as u64) < len_bytes {
            cache.resize(len_bytes as usize, 0);
        }
        Ok(())
    }

    fn write_at(&self, file: &Arc<MemoryFile>, offset: u64, bytes: &[u8]) -> io::Result<()> {
        copy_into(&mut lock(&file.cache), offset, bytes);
        Ok(())
    }

    fn sync_file(&self, file: &Arc<MemoryFile>) -> io::Result<()> {
        let cache = lock(&file.cache).clone();
        *lock(&file.durable) = cache;
        Ok(())
    }

    fn map_write(&self, file: &Arc<MemoryFile>, len_bytes: u64) -> io::Result<MemoryMap> {
        let cache = lock(&file.cache);
        let Some(bytes) = cache.get(..len_bytes as usize) else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        Ok(MemoryMap { buf: bytes.to_vec(), file: file.clone() })
    }

    fn sync_map(&self, map: &MemoryMap, start: u64, end: u64) -> io::Result<()> {
        let bytes = &map.buf[start as usize..end as usize];
        copy_into(&mut lock(&map.file.cache), start, bytes);
        copy_into(&mut lock(&map.file.durable), start, bytes);
        Ok(())
    }

    fn dirty(&self, map: &MemoryMap, start: u64, end: u64) -> (u64, Vec<u8>) {
        (start, map.buf[start as usize..end as usize].to_vec())
    }

    fn sync_data(&self, file: &Arc<MemoryFile>, dirty: &(u64, Vec<u8>)) -> io::Result<()> {
        let (start, bytes) = dirty;
        copy_into(&mut lock(&file.cache), *start, bytes);
        copy_into(&mut lock(&file.durable), *start, bytes);
        Ok(())
    }

    fn map_read(&self, path: &Path) -> io::Result<MemoryReadMap> {
        Ok(MemoryReadMap(lock(&self.file(path)?.cache).clone()))
    }

    fn refresh_read(&self, path: &Path, map: &mut MemoryReadMap) -> io::Result<()> {
        *map = self.map_read(path)?;
        Ok(())
    }
}
