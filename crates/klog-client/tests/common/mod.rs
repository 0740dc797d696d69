//! A real `klog-broker` process per test (from `klog-test-support`: a free
//! 127.0.0.1 port, a temporary data directory, killed by its pid on drop), and a
//! time-bounded runner for async test bodies.

#![allow(dead_code)]

use std::time::Duration;

#[allow(unused_imports)]
pub use klog_test_support::Broker;

/// Runs an async test body on a multi-threaded runtime with a time bound, and
/// returns its value.
pub fn run<T, F: std::future::Future<Output = anyhow::Result<T>>>(limit: Duration, f: F) -> T {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(limit, f)
            .await
            .expect("test timed out")
            .expect("test failed")
    })
}
