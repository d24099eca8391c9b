//! Memory placement and prefetch hints for the big tables. A hint changes speed, never results.
//!
//! The account table, the account index and the transaction table are hundreds of megabytes
//! accessed at random: with 4 KiB pages nearly every access also misses the TLB, and under
//! virtualization a page walk costs several cache misses. Asking for transparent huge pages
//! (`MADV_HUGEPAGE`; this machine kind runs THP in `madvise` mode) removes most of that.

/// Asks the OS to back the whole pages inside `slice`'s allocation (capacity included) with
/// huge pages. Errors are ignored: the hint is optional.
pub(crate) fn advise_huge_pages<T>(ptr: *const T, capacity: usize) {
    const HUGE_PAGE_BYTES: usize = 2 << 20;
    let bytes = capacity * std::mem::size_of::<T>();
    if bytes < HUGE_PAGE_BYTES {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const PAGE_BYTES: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE_BYTES);
        let end = (ptr as usize + bytes) / PAGE_BYTES * PAGE_BYTES;
        if end > start {
            // SAFETY: madvise only changes how the kernel backs pages of our own live
            // allocation; MADV_HUGEPAGE never changes their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ptr;
}

/// Issues a prefetch of the cache line at `ptr` (no effect on results, and none off x86-64).
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, even for an invalid address.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(ptr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
