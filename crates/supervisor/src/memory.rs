//! Giving back the pages start-up needed but an idle supervisor does not.
//!
//! `lameduck` is one binary for every part, so parsing the command line and
//! setting up the runtime fault in code from all over it (the kernel maps file
//! pages around each fault, 64 KiB at a time). A supervisor then sits idle for
//! the life of the container, waiting for signals. Once the app has started,
//! `MADV_PAGEOUT` on lameduck's read-only file mappings (its own executable, and
//! the shared libraries it alone maps, such as libm) lets the kernel drop those
//! clean, file-backed pages; the few the signal path needs come back on their
//! next use (measured: no change in forwarding latency, see docs/bench.md).
//! Nothing is lost: the pages are read-only copies of files on disk.

use std::{fs, time::Duration};

/// Pages are handed back once when the app has started, and once more this
/// long after, when the supervise loop has settled into waiting for a signal.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);

use nix::sys::mman::{madvise, MmapAdvise};

/// Advises the kernel to page out this process's read-only file mappings:
/// its own executable and the shared libraries it loaded (glibc, libm,
/// libgcc_s, the loader); returns the bytes advised. The kernel leaves alone
/// the pages another process maps too (glibc's, usually), so this only drops
/// what lameduck alone holds. Errors (an old kernel without `MADV_PAGEOUT`) are
/// ignored: this only saves memory.
pub(crate) fn page_out_own_executable() -> usize {
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    maps.lines()
        .filter_map(read_only_file_mapping)
        .map(|(start, end)| advise(start, end - start))
        .sum()
}

/// The address range of a `/proc/self/maps` line that maps a file read-only
/// (or read and execute): never written, so never dirty.
fn read_only_file_mapping(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?;
    if perms.contains('w') || !path.starts_with('/') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    Some((
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
    ))
}

#[allow(unsafe_code)]
fn advise(start: usize, len: usize) -> usize {
    let Some(ptr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
        return 0;
    };
    // SAFETY: the range is one of this process's read-only file mappings,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_mappings_of_files_are_paged_out() {
        let maps = "\
5581a000-5581b000 r--p 00000000 08:01 131 /usr/bin/lameduck
5581b000-5581c000 r-xp 00001000 08:01 131 /usr/bin/lameduck
5581c000-5581d000 rw-p 00002000 08:01 131 /usr/bin/lameduck
7f00a000-7f00b000 r-xp 00000000 08:01 200 /usr/lib/x86_64-linux-gnu/libm.so.6
7f00c000-7f00d000 rw-p 00000000 00:00 0
7ffd0000-7ffd1000 r-xp 00000000 00:00 0 [vdso]
5581e000-5581f000 rw-p 00000000 00:00 0 [heap]";
        let ranges: Vec<_> = maps.lines().filter_map(read_only_file_mapping).collect();
        assert_eq!(
            ranges,
            [
                (0x5581a000, 0x5581b000),
                (0x5581b000, 0x5581c000),
                (0x7f00a000, 0x7f00b000)
            ]
        );
    }
}
