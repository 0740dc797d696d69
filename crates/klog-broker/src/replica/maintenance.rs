//! The node's maintenance of its logs: time-based flushes, retention and
//! checkpoints, each on its interval, on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::replica::manager::ReplicaManager;
use klog_rt::clock::now_ms;

/// Time-based flushes, retention and checkpoints on their intervals until `stop`.
pub async fn run(replicas: Arc<ReplicaManager>, c: BrokerConfig, mut stop: watch::Receiver<bool>) {
    let flush_every = Duration::from_millis(c.flush_scheduler_interval_ms);
    let retention_every = c.retention_check_interval_ms;
    let checkpoint_every = c.checkpoint_interval_ms;
    let mut ticker = tokio::time::interval(flush_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = tokio::time::Instant::now();
    let mut last_retention = 0u64;
    let mut last_checkpoint = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let elapsed = start.elapsed().as_millis() as u64;
        let retention = elapsed - last_retention >= retention_every;
        let checkpoint = elapsed - last_checkpoint >= checkpoint_every;
        if retention {
            last_retention = elapsed;
        }
        if checkpoint {
            last_checkpoint = elapsed;
        }
        let r = replicas.clone();
        // fsync and file deletion block: keep them off the connection threads.
        let _ = klog_client::task::blocking(move || r.maintenance(now_ms(), retention, checkpoint))
            .await;
    }
}
