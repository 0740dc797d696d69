//! A global allocator for the broker binary that keeps hostile requests from aborting
//! the process.
//!
//! The message decoders of `kafka-protocol` 0.18 call `Vec::with_capacity(n)` with
//! an array count `n` read from the request before any element is decoded (upstream
//! kafka-protocol-rs PRs #152, #161 and #200 propose bounding it by the bytes
//! left). An 8-byte request can therefore ask for tens or hundreds of GiB. With the
//! system allocator under Linux's heuristic overcommit such a request fails and
//! Rust aborts the whole broker: one client's bad request would take every other
//! client's connection down with it.
//!
//! [`BrokerAllocator`] serves allocations of [`HUGE`] bytes or more with an anonymous
//! `mmap(MAP_NORESERVE)`: address space only, no commit charge, no pages touched.
//! The decoder then fails on the missing bytes a few instructions later and the
//! mapping is unmapped; resident memory never grows. Nothing in the broker makes a
//! legitimate allocation that large (requests are capped by
//! `socket.request.max.bytes`, 100 MiB by default), so ordinary allocations all go
//! to the system allocator unchanged.
//!
//! The binary installs it with `#[global_allocator]`; the bad-input tests run
//! against that binary.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at or above this size are served by `mmap(MAP_NORESERVE)`.
pub const HUGE: usize = 1 << 30;

/// mmap returns page-aligned memory; larger alignments go to the system allocator.
const PAGE: usize = 4096;

/// The broker's global allocator: the system allocator, except for huge requests.
#[derive(Debug, Default, Clone, Copy)]
pub struct BrokerAllocator;

fn is_huge(size: usize, align: usize) -> bool {
    size >= HUGE && align <= PAGE
}

// SAFETY: every pointer returned is either from `System` (and given back to it) or
// from `mmap` of exactly `layout.size()` bytes (and unmapped with the same size);
// `is_huge` depends only on the layout, so alloc and dealloc always agree on which.
unsafe impl GlobalAlloc for BrokerAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            // SAFETY: an anonymous private mapping with no address hint has no
            // preconditions.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                p.cast()
            }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(layout.size(), layout.align()) {
            // SAFETY: `ptr` came from the mmap above with this exact size.
            unsafe {
                libc::munmap(ptr.cast(), layout.size());
            }
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !is_huge(layout.size(), layout.align()) && !is_huge(new_size, layout.align()) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size` with this alignment is a valid
        // layout size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a fresh allocation, a copy of the smaller size between two
        // distinct live blocks, then the old block is released with its layout.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_allocation_is_address_space_only() {
        let a = BrokerAllocator;
        // 64 GiB: more than this machine's memory, as a hostile array count asks.
        let layout = Layout::from_size_align(64 << 30, 8).expect("layout");
        // SAFETY: non-zero size; released below with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            p.write(7);
            assert_eq!(p.read(), 7);
            a.dealloc(p, layout);
        }
    }

    #[test]
    fn small_allocations_round_trip_and_grow_into_huge() {
        let a = BrokerAllocator;
        let layout = Layout::from_size_align(16, 8).expect("layout");
        // SAFETY: valid layouts, each block released once with its layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(0xAB, 16);
            let q = a.realloc(p, layout, HUGE);
            assert!(!q.is_null());
            assert_eq!(q.add(15).read(), 0xAB);
            a.dealloc(q, Layout::from_size_align(HUGE, 8).expect("layout"));
        }
    }
}
