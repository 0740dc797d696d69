//! A real `klog-broker` process per test (from `klog-test-support`: a free
//! 127.0.0.1 port, a temporary data directory, killed by its pid on drop), and a
//! time-bounded runner for async test bodies.

#![allow(dead_code)]

use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use klog_test_support::Broker;

/// Runs an async test body on a multi-threaded runtime with a time bound, and
/// returns its value.
pub fn run<T, F: std::future::Future<Output = anyhow::Result<T>>>(limit: Duration, f: F) -> T {
    runtime().block_on(async {
        tokio::time::timeout(limit, f)
            .await
            .expect("test timed out")
            .expect("test failed")
    })
}

/// A multi-threaded runtime of two workers, for tests that drive processes from
/// the test thread between async steps.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Waits until `check` holds, polling every 50 ms, at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Waits (at most `limit`) until DescribeCluster lists `n` live brokers.
pub async fn live_brokers(
    admin: &klog_client::Admin,
    n: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    eventually(limit, &format!("{n} live brokers"), || async {
        admin
            .describe_cluster()
            .await
            .is_ok_and(|c| c.brokers.len() == n)
    })
    .await
}

/// The cluster tests of one test binary run one at a time: each runs a cluster
/// whose failure detection is timed, and two at once on a small machine would
/// starve them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the cluster-test lock until dropped (a panicked holder releases it).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
