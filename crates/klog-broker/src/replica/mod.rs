//! Hosted partitions and their replication (Kafka's `ReplicaManager`,
//! `Partition`, `ReplicaFetcherManager`): the partition driver around the sans-IO
//! replica state machine, the idempotent-producer table, the replica manager that
//! reconciles hosted partitions with the metadata image, and the follower's
//! fetchers.

pub mod fetcher;
pub mod isr;
pub mod maintenance;
pub mod manager;
pub mod partition;
pub mod producer_state;
pub mod rules;
