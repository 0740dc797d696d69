//! The broker's wall clock, read only here (through the wall-clock seam,
//! [`klog_client::clock`], which a simulator replaces).
//!
//! Every module that needs "now" for a sans-IO core (replication, groups, the
//! controller) takes it from [`now_ms`], at the bottom of the module layers, so no
//! service has to reach into a handler or the composition root for the time.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    klog_client::clock::now_ms()
}
