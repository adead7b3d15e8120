//! Read buffers between requests: a few kept per worker thread for the next
//! request on any connection.
//!
//! Why: an idle connection holds no buffer (see [`crate::server`]), so every
//! request needs one. Allocating it anew each time cost a trip through the
//! allocator's slow path (a 4 KiB block is too large for its per-thread cache)
//! and, once the head was split off, a second allocation for the shared
//! header. A buffer given back here keeps both: once the request's head is
//! dropped it is unique again, and the next request reuses it from the start.
//!
//! The list is bounded ([`KEEP`] buffers of at most [`LARGEST`] bytes), so
//! 10,000 idle connections cost no more than a few busy ones. A buffer taken
//! back while some of its bytes are still referenced is not wrong, only
//! slower: reserving room in it then allocates anew.

use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread: about as many as requests in flight at once.
const KEEP: usize = 64;
/// A buffer larger than this (grown for a large head) is freed, not kept.
const LARGEST: usize = 64 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for `room` bytes.
pub fn take(room: usize) -> BytesMut {
    let mut buf = SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_default();
    buf.reserve(room);
    buf
}

/// Keeps `buf` (emptied) for a later [`take`], if there is room.
pub fn give(mut buf: BytesMut) {
    if buf.capacity() == 0 || buf.capacity() > LARGEST {
        return;
    }
    buf.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < KEEP {
            spare.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_reused_once_its_head_is_dropped() {
        let mut buf = take(4096);
        let first = buf.as_ptr();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = buf.split_to(18).freeze();
        drop(head);
        give(buf);
        let again = take(4096);
        assert_eq!(again.as_ptr(), first, "the same memory, from its start");
        assert!(again.is_empty() && again.capacity() >= 4096);
    }

    #[test]
    fn the_list_is_bounded_and_large_buffers_are_not_kept() {
        for _ in 0..KEEP + 10 {
            give(BytesMut::with_capacity(1024));
        }
        give(BytesMut::with_capacity(LARGEST + 1));
        let kept = SPARE.with(|s| s.borrow().len());
        assert_eq!(kept, KEEP);
        let largest = SPARE.with(|s| s.borrow().iter().map(BytesMut::capacity).max());
        assert_eq!(largest, Some(1024));
    }
}
