//! The wall-clock seam: the milliseconds since the Unix epoch klog reads for
//! record timestamps and for the time it passes into its protocol cores (ISR lag,
//! broker sessions, group timeouts).
//!
//! By default that is [`SystemTime::now`]. A simulator installs its own clock once
//! per process with [`install`] (one that follows simulated time, say); when that
//! clock answers `None` (called outside a simulation) the system clock is used.
//! Intervals and deadlines use [`tokio::time::Instant`], which a simulator driving
//! a paused tokio runtime already controls.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static INSTALLED: OnceLock<fn() -> Option<i64>> = OnceLock::new();

/// Makes `clock` the wall clock of this process. Only the first call has an effect
/// (it returns `false` after that).
pub fn install(clock: fn() -> Option<i64>) -> bool {
    INSTALLED.set(clock).is_ok()
}

/// Milliseconds since the Unix epoch, from the installed clock or the system's.
pub fn now_ms() -> i64 {
    if let Some(ms) = INSTALLED.get().and_then(|clock| clock()) {
        return ms;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
