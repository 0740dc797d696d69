//! Cluster metadata: the records of the metadata log, the image they build, and
//! the active controller's decisions (CLUSTER.md). All pure: the quorum (openraft)
//! and the timers that drive the controller live in the broker.
//!
//! - [`records`]: `RegisterBroker`, `FenceBroker`, `Topic`, `Partition`,
//!   `PartitionChange`, `Config`, `ProducerIds`, ... and their encoding.
//! - [`image`]: [`MetadataImage`], a pure function of the records
//!   (`apply_batch`), serialized whole as the log's snapshot.
//! - [`controller`]: [`Controller`], the active controller as a state machine
//!   with time passed in: registration, heartbeats and fencing, topic creation by
//!   the seed's placement, deletion, partition growth, configs, ISR changes with
//!   epoch checks, elections, producer id blocks.

pub mod controller;
pub mod image;
pub mod records;

pub use controller::{
    AlterPartition, BootstrapTopic, ConfigValidator, Controller, ControllerConfig, CreateTopic,
    CreatedTopic, Heartbeat, HeartbeatReply, Outcome, RegisterBroker, is_valid_topic_name,
};
pub use image::{ApplyError, BrokerState, ImageDelta, MetadataImage, TopicImage};
pub use records::{
    BrokerRegistration, ConfigResource, DecodeError, Endpoint, MetadataRecord, RecordBatch,
    TopicId, decode_batch, encode_batch, partition_change,
};
