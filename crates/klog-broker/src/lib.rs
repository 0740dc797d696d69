//! The klog broker: the layers composed into a Kafka-protocol server.
//!
//! ```text
//!  socket ──► server (tokio: frames in, replies out, sendfile or read+write)
//!                │ decoded Request (klog-codec)
//!                ▼
//!             Broker (handlers) ──► Partition (ISR / high watermark seam,
//!                │                      idempotent-producer table, waiters)
//!                │                          │
//!                ▼                          ▼
//!           topic metadata            klog-storage Log (segments, indexes)
//! ```
//!
//! What this crate does: listens, parses frames with size limits, dispatches each
//! API, appends produced batches without decoding records, serves fetches as file
//! regions (written with read+write, or sendfile) with long polling woken by appends, keeps topic metadata and
//! producer ids on disk, and runs retention/flush/checkpoint in the background.
//!
//! Consumer groups: [`group`] runs the `klog-coordinator` state machine, keeping
//! offsets and group metadata in the internal `__consumer_offsets` topic.
//!
//! What it does not do (yet): replication to other brokers, transactions, TLS and
//! SASL. The seams for replication are in place: batches carry
//! the leader epoch, the high watermark is derived from the in-sync replicas, and
//! `acks=all` waits on it.

pub mod alloc;
pub mod broker;
pub mod clock;
pub mod config;
pub mod controller;
pub mod features;
pub mod group;
pub mod metadata;
pub mod net;
pub mod node;
pub mod policy;
pub mod producer_ids;
pub mod replica;
pub mod topics;

pub use broker::{Broker, Reply, StartError};
pub use config::{BrokerConfig, ConfigError, FetchMode};
