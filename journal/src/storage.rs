//! Where the journal's bytes live: the [`Storage`] trait (the dozen file and directory
//! operations the journal really needs), [`FileStorage`] (real files, segments memory-mapped),
//! [`FaultyStorage`] (any storage plus scripted failures and simulated crashes, for tests) and
//! [`MemoryStorage`] (an in-memory disk with a page cache and power loss, for the
//! deterministic simulation).
//!
//! The journal is generic over its storage (`Journal<S: Storage = FileStorage>`), so the append
//! path is monomorphised: writing a record is a copy into `S::Map` through `DerefMut`, with no
//! virtual call, allocation or syscall. A writable mapping is the one operation a storage must
//! provide that plain read/write files do not: a storage without memory maps (an in-memory
//! simulation) implements `Map` as its own buffer and copies the bytes out when it is synced
//! ([`Storage::sync_map`], or [`Storage::dirty`] + [`Storage::sync_data`] for a sync that runs
//! on another thread), which is exactly the moment a real mapping's bytes become durable.
//!
//! **Contract** (what the journal relies on, and what [`FaultyStorage`] breaks on request):
//! bytes written through a map or with `write_at` are durable only after a sync that covers
//! them returned `Ok`; a failed sync may have dropped them (the journal never retries it); a
//! name (create, rename, remove) is durable only after `sync_dir` of its directory.

mod faulty;
mod memory;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use memmap2::{Mmap, MmapMut, MmapOptions, UncheckedAdvice};

pub use faulty::{FaultOp, FaultyFile, FaultyMap, FaultyStorage};
pub use memory::{MemoryFile, MemoryMap, MemoryReadMap, MemoryStorage};

/// The file and directory operations the journal needs. Implementations are cheap to clone
/// (a unit struct, or an `Arc` around shared state) and shared by the writer, the spare
/// preparer, the flusher and readers.
pub trait Storage: Clone + Send + Sync + 'static {
    /// An open file.
    type File: Send + Sync + 'static;
    /// A writable view of a whole file: what appends copy records into.
    type Map: DerefMut<Target = [u8]> + Send + 'static;
    /// A read-only view of a whole file, which may show bytes written after it was taken.
    type ReadMap: Deref<Target = [u8]> + Send + 'static;
    /// What a sync that runs on another thread needs of a map's dirty range ([`Storage::dirty`]).
    type Dirty: Send + Sync + 'static;
    /// The exclusive writer lock on a directory, held while this value lives.
    type Lock: Send + Sync + 'static;

    /// Creates `dir` (and its parents) if it is missing, durably in its parent.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive writer lock on `dir`; `ErrorKind::WouldBlock` when another holds it.
    fn lock_dir(&self, dir: &Path) -> io::Result<Self::Lock>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries in `dir` (names that are not UTF-8 are left out).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Renames a file (atomically replacing `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a new, empty file; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    fn open_write(&self, path: &Path) -> io::Result<Self::File>;
    /// The file's length.
    fn len_bytes(&self, file: &Self::File) -> io::Result<u64>;
    /// Gives the file `len_bytes` of real blocks (`fallocate`; `EOPNOTSUPP` where unsupported,
    /// and the journal then writes zeros instead).
    fn allocate(&self, file: &Self::File, len_bytes: u64) -> io::Result<()>;
    /// Writes all of `bytes` at `offset`.
    fn write_at(&self, file: &Self::File, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes the file's data and metadata (length, blocks) durable (`fsync`).
    fn sync_file(&self, file: &Self::File) -> io::Result<()>;
    /// Maps the first `len_bytes` of a file (at least that long) for writing.
    fn map_write(&self, file: &Self::File, len_bytes: u64) -> io::Result<Self::Map>;
    /// Makes bytes `start..end` written through `map` durable, inline (`msync`).
    fn sync_map(&self, map: &Self::Map, start: u64, end: u64) -> io::Result<()>;
    /// Takes what [`Storage::sync_data`] needs to make `start..end` of `map` durable from another
    /// thread while the writer goes on writing past `end`. Called on the writer's thread.
    fn dirty(&self, map: &Self::Map, start: u64, end: u64) -> Self::Dirty;
    /// Makes the file's data durable, including the dirty range taken from its map
    /// (`fdatasync`). Runs on any thread.
    fn sync_data(&self, file: &Self::File, dirty: &Self::Dirty) -> io::Result<()>;
    /// Maps a whole file read-only.
    fn map_read(&self, path: &Path) -> io::Result<Self::ReadMap>;
    /// Brings a read-only map up to date with what was written since it was taken. A real
    /// mapping is always up to date; a storage whose read maps are copies re-reads here.
    /// Readers call it when they reach the end of what they can read.
    fn refresh_read(&self, _path: &Path, _map: &mut Self::ReadMap) -> io::Result<()> {
        Ok(())
    }

    /// Lets go of a map the writer has sealed (on the preparer thread, off the writer's path).
    fn release_map(&self, map: Self::Map) {
        drop(map);
    }
}

/// Real files: segments are memory-mapped, syncs are `msync`, `fdatasync` and `fsync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStorage;

impl Storage for FileStorage {
    type File = File;
    type Map = MmapMut;
    type ReadMap = Mmap;
    type Dirty = ();
    type Lock = File;

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir)?;
        let parent =
            dir.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(parent)?.sync_all()
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<File> {
        let dir_file = File::open(dir)?;
        // SAFETY: plain syscall on a file descriptor we own.
        let result = unsafe { libc::flock(dir_file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if result == 0 {
            return Ok(dir_file);
        }
        Err(io::Error::last_os_error())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create_new(true).open(path)
    }

    fn open_write(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }

    fn len_bytes(&self, file: &File) -> io::Result<u64> {
        Ok(file.metadata()?.len())
    }

    fn allocate(&self, file: &File, len_bytes: u64) -> io::Result<()> {
        let len = libc::off_t::try_from(len_bytes)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: plain syscall on a file descriptor we own; mode 0 allocates and extends the size.
        let result = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn write_at(&self, file: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
        file.write_all_at(bytes, offset)
    }

    fn sync_file(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }

    fn map_write(&self, file: &File, len_bytes: u64) -> io::Result<MmapMut> {
        // SAFETY: the caller holds the journal directory's writer lock, so no other process
        // writes the file, and the file is at least `len_bytes` long (preallocated), so every
        // access is backed.
        unsafe { MmapOptions::new().len(len_bytes as usize).populate().map_mut(file) }
    }

    fn sync_map(&self, map: &MmapMut, start: u64, end: u64) -> io::Result<()> {
        // memmap2 rounds the range out to whole pages.
        map.flush_range(start as usize, (end - start) as usize)
    }

    fn dirty(&self, _map: &MmapMut, _start: u64, _end: u64) {}

    fn sync_data(&self, file: &File, _dirty: &()) -> io::Result<()> {
        // On Linux the same `vfs_fsync_range` as `msync` of the range, so pages written through
        // the mapping are included.
        file.sync_data()
    }

    fn map_read(&self, path: &Path) -> io::Result<Mmap> {
        let file = File::open(path)?;
        // SAFETY: the mapping is only read. A live writer in another process may append to the
        // file while it is mapped; readers tolerate that because they only use bytes whose
        // checksum verified, and the writer never changes bytes of a complete record. Segment
        // files are never truncated by the journal, so no access runs past the end of the file.
        let map = unsafe { Mmap::map(&file) }?;
        // Advice is only a hint: ignoring a failure costs speed, never correctness.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(map)
    }

    /// `munmap` takes the process's memory map lock exclusively while it tears down 8 192
    /// page-table entries (~1.6 ms for 32 MiB), and the writer's `msync` (an inline flush)
    /// needs that lock shared. `MADV_DONTNEED` tears them down under the shared lock, so the
    /// `munmap` after it has almost nothing left to do.
    fn release_map(&self, map: MmapMut) {
        // SAFETY: nothing reads or writes the mapping any more (it is dropped right after), and
        // on a shared file mapping MADV_DONTNEED only drops page-table entries: the data stays
        // in the page cache (a dirty entry marks its page dirty), so nothing written is lost. A
        // failure only leaves the work to `munmap`.
        let _ = unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) };
        drop(map);
    }
}
