//! An async Kafka-protocol client for klog: a producer, a consumer (with or without
//! group membership), and an admin client.
//!
//! It speaks only the Kafka protocol (negotiating versions with ApiVersions on every
//! connection), so it works against klog and against any Kafka broker since 1.0.
//!
//! ```text
//!  Producer::send ──► per-partition batches (klog-codec builder, in place)
//!                      └─► sender task ──► Produce, pipelined per broker ──┐
//!  Consumer::poll ◄── decode ◄── prefetch channel ◄── fetcher task ◄── Fetch ◄┤
//!  GroupConsumer ──► FindCoordinator, Join/Sync/Heartbeat/Leave, OffsetCommit/Fetch
//!                    (own coordinator connection) + a Consumer for its partitions
//!  Admin ──► CreateTopics / DeleteTopics / CreatePartitions (controller), Metadata,
//!            DescribeConfigs, IncrementalAlterConfigs, DescribeCluster,
//!            DescribeLogDirs, DeleteRecords + ListOffsets (partition leaders),
//!            ListGroups, DescribeGroups, OffsetFetch / OffsetCommit (coordinator)
//!                                                                            │
//!        Cluster: metadata cache, one pipelined Connection per broker ◄──────┘
//! ```
//!
//! * [`producer`]: batching, compression (every codec), `acks`, `linger.ms`,
//!   `batch.size`, `buffer.memory` backpressure, idempotence (on by default),
//!   retries for retriable errors only, delivery futures with offset and timestamp.
//! * [`consumer`]: assign partitions, seek (beginning, end, offset, timestamp),
//!   prefetching fetches, decompression and CRC checks, `max.poll.records`, a
//!   `Stream` of records.
//! * [`group`]: consumer-group membership: subscribe, assignors from `klog-assign`
//!   run by the leader, background heartbeats, rebalance callbacks, auto and manual
//!   commits, resuming from committed offsets, static membership.
//! * [`consumer_protocol`]: the subscription and assignment bytes group members
//!   exchange through the coordinator.
//! * [`admin`]: create, delete, list, describe and grow topics; describe and alter
//!   configs; delete records and list offsets; describe the cluster and its log
//!   dirs; list and describe groups, their committed offsets (with metadata) and lag.
//! * [`error`]: one error enum per failure domain, each saying whether it is
//!   retriable.
//!
//! Not here (yet): transactions, SASL/TLS, regex subscriptions, KIP-848 groups.
//! Partitioners live in `klog-assign`; wire formats in `klog-codec`.
//!
//! Everything runs on the caller's tokio runtime; the producer and consumer spawn
//! their background tasks when created or first polled.
//! Three seams let a simulator run all of this (and the broker) in simulated
//! time: [`net`] (sockets), [`clock`] (the wall clock) and [`task`] (spawned
//! tasks, which it can pause, and blocking file work, which it can slow). They
//! live in `klog-rt` and are re-exported here, so `klog_client::net` and the
//! others name the same seams as `klog_rt::net`.

pub mod admin;
mod cluster;
pub mod conn;
pub mod consumer;
pub mod consumer_protocol;
pub mod error;
pub mod group;
pub mod producer;

pub use klog_rt::{clock, net, task};

pub use admin::{
    Admin, AlterConfigOp, ClusterDescription, CommittedOffset, ConfigEntry, ConfigResource,
    ConfigSource, ConfigSynonym, ElectionType, GroupDescription, GroupListing, GroupMember,
    ListedOffset, LogDirDescription, NewPartitions, NewTopic, OffsetSpec, PartitionLag,
    QuorumDescription, QuorumReplica, ReplicaLogInfo,
};
pub use bytes::Bytes;
pub use cluster::{BrokerInfo, ClientConfig, PartitionInfo, TopicInfo};
pub use consumer::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, Offset, RecordStream, TopicPartition,
};
pub use error::{AdminError, ClientError, ConnectionError, ConsumeError, GroupError, ProduceError};
pub use group::{CommitHandle, GroupConfig, GroupConsumer, RebalanceListener};
pub use klog_assign::{Assignor, RebalanceProtocol};
pub use klog_codec::{Compression, OwnedHeader};
pub use producer::{
    Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
