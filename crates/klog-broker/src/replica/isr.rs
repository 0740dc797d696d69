//! The leader side of ISR changes (Kafka's `AlterPartitionManager` and ISR
//! expiration): leaders' proposals go to the active controller as AlterPartition,
//! and each answer (the new registration, or the refusal) goes back to its
//! partition; a timer ticks the partitions led here so followers that lag are
//! proposed out of the ISR.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::controller::client::ControllerClient;
use crate::controller::lifecycle::Lifecycle;
use crate::replica::manager::ReplicaManager;
use klog_rt::clock::now_ms;

/// Sends leaders' ISR proposals to the controller (`AlterPartition`) and hands
/// each partition the answer: its new registration, or the refusal.
pub async fn send_isr_changes(
    node_id: i32,
    replicas: Arc<ReplicaManager>,
    client: Arc<ControllerClient>,
    lifecycle: Arc<Lifecycle>,
    mut proposals: tokio::sync::mpsc::UnboundedReceiver<(
        String,
        i32,
        klog_replication::IsrProposal,
    )>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (topic, index, proposal) = tokio::select! {
            p = proposals.recv() => match p {
                Some(p) => p,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let change = vec![klog_coordinator::metadata::AlterPartition {
            topic: topic.clone(),
            partition: index,
            leader_epoch: proposal.leader_epoch,
            partition_epoch: proposal.partition_epoch,
            isr: proposal.isr.clone(),
        }];
        let Some(partition) = replicas.partition(&topic, index) else {
            continue;
        };
        let answer = tokio::select! {
            a = client.alter_partition(node_id, lifecycle.epoch(), change) => a,
            _ = stop.changed() => return,
        };
        let now = now_ms();
        match answer {
            Ok(Ok(mut results)) => match results.pop() {
                Some(Ok(reg)) => {
                    tracing::info!(topic, partition = index, isr = ?reg.isr, partition_epoch = reg.partition_epoch, "ISR changed");
                    partition.apply_registration(node_id, &reg, now);
                }
                Some(Err(code)) => {
                    tracing::info!(topic, partition = index, code, "ISR change refused");
                    partition.on_isr_change_failed(proposal.partition_epoch, code, now);
                }
                None => partition.on_isr_change_failed(
                    proposal.partition_epoch,
                    klog_codec::protocol::ResponseError::UnknownServerError.code(),
                    now,
                ),
            },
            Ok(Err(_)) | Err(_) => {
                partition.on_isr_change_failed(
                    proposal.partition_epoch,
                    klog_codec::protocol::ResponseError::NotController.code(),
                    now,
                );
            }
        }
    }
}

/// Ticks the partitions led here every `replica.lag.time.max.ms / 2` (Kafka's
/// ISR expiration): followers that lag are proposed out of the ISR.
pub async fn expire_lagging_followers(
    replicas: Arc<ReplicaManager>,
    replica_lag_time_max_ms: i64,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(
        u64::try_from(replica_lag_time_max_ms / 2)
            .unwrap_or(1000)
            .max(50),
    );
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        replicas.tick(now_ms());
    }
}
