//! The process's entropy, from the seed.
//!
//! `std`'s `HashMap` keys (and so every map's iteration order, and the
//! broker's incarnation id), and through them tokio's scheduler and `select!`
//! seeds, start from the C library's `getrandom`, as does any crate on
//! `getrandom` 0.3 or later. This module defines that symbol; in the
//! `klog-sim` binary, which checks it with [`active`], the linker binds those
//! calls to it instead of glibc's: it fills buffers from a stream (splitmix64)
//! that starts at a fixed point and that [`seed`] moves. (`rand` 0.8's thread
//! rng is not covered: its `getrandom` 0.2 makes the system call itself. The
//! one user of it in a simulation, openraft's election timeouts, is seeded
//! through [`klog_quorum::seed_election_rng`].) A process that calls [`seed`]
//! before it runs one simulation on one thread therefore hashes, schedules and
//! draws the same way every time it runs, and so takes the same interleaving
//! step for step. That is why a sweep runs each seed in a process of its own
//! (`klog-sim --seed S`), the very command that replays it.

use std::ffi::{c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the stream starts, before [`seed`] moves it.
const START: u64 = 0x6b6c_6f67_2d73_696d; // "klog-sim"
/// splitmix64's increment.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The stream's position.
static STATE: AtomicU64 = AtomicU64::new(START);

/// Starts this process's entropy stream again, at a point drawn from `seed`.
pub fn seed(seed: u64) {
    STATE.store(START ^ mix(seed), Ordering::SeqCst);
}

/// Whether std's calls to `getrandom` come here (if the linker bound them to
/// glibc's instead, nothing would be deterministic). It asks std for the
/// `HashMap` keys of a fresh thread, which it draws with `getrandom`, and sees
/// whether the stream moved. (That moves the stream, the same way each time.)
pub fn active() -> bool {
    let before = STATE.load(Ordering::SeqCst);
    let _ = std::thread::spawn(std::collections::hash_map::RandomState::new).join();
    STATE.load(Ordering::SeqCst) != before
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// glibc's `getrandom(3)`, which this process's calls bind to (see the module
/// docs): fills `buf` from the stream and never fails.
///
/// # Safety
///
/// `buf` must be valid for writes of `buflen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getrandom(buf: *mut c_void, buflen: usize, _flags: c_uint) -> isize {
    if buf.is_null() || buflen == 0 {
        return 0;
    }
    // SAFETY: the caller promises `buf` is valid for writes of `buflen` bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), buflen) };
    for chunk in out.chunks_mut(8) {
        let z = STATE.fetch_add(GAMMA, Ordering::SeqCst).wrapping_add(GAMMA);
        chunk.copy_from_slice(&mix(z).to_le_bytes()[..chunk.len()]);
    }
    isize::try_from(buflen).unwrap_or(isize::MAX)
}
