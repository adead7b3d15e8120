//! Giving back the pages start-up needed but an idle supervisor does not.
//!
//! `lameduck` is one binary for every part, so parsing the command line and
//! setting up the runtime fault in code from all over it (the kernel maps file
//! pages around each fault, 64 KiB at a time). A supervisor then sits idle for
//! the life of the container, waiting for signals. Once the app has started,
//! `MADV_PAGEOUT` on lameduck's own executable mapping lets the kernel drop those
//! clean, file-backed pages; the few the signal path needs come back on their
//! next use (measured: no change in forwarding latency, see docs/bench.md). Nothing is lost: the pages are read-only copies of
//! the binary on disk.

use std::{fs, time::Duration};

/// Pages are handed back once when the app has started, and once more this
/// long after, when the supervise loop has settled into waiting for a signal.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);

use nix::sys::mman::{madvise, MmapAdvise};

/// Advises the kernel to page out this process's executable mappings; returns
/// the bytes advised. Errors (an old kernel without `MADV_PAGEOUT`) are ignored:
/// this only saves memory.
pub(crate) fn page_out_own_executable() -> usize {
    let Ok(exe) = fs::read_link("/proc/self/exe") else {
        return 0;
    };
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let exe = exe.to_string_lossy().into_owned();
    maps.lines()
        .filter(|line| line.ends_with(exe.as_str()))
        .filter_map(|line| {
            let (range, rest) = line.split_once(' ')?;
            // Only read-only or executable file pages: never written, so never dirty.
            let perms = rest.split_whitespace().next()?;
            if perms.contains('w') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .map(|(start, end)| advise(start, end - start))
        .sum()
}

#[allow(unsafe_code)]
fn advise(start: usize, len: usize) -> usize {
    let Some(ptr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
        return 0;
    };
    // SAFETY: the range is one of this process's own read-only file mappings,
    // taken from /proc/self/maps; MADV_PAGEOUT only drops clean pages, which
    // the kernel reads back from the file on the next access. No memory is
    // unmapped and no content changes.
    // MADV_RANDOM first: a page faulted back later is read alone, without the
    // readahead that would bring its neighbours back too.
    let _ = unsafe { madvise(ptr, len, MmapAdvise::MADV_RANDOM) };
    match unsafe { madvise(ptr, len, MmapAdvise::MADV_PAGEOUT) } {
        Ok(()) => len,
        Err(_) => 0,
    }
}
