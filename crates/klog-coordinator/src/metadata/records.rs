//! The records of the metadata log, named after Kafka's (KRaft's
//! `metadata/src/main/resources/common/metadata/*Record.json`).
//!
//! One entry of the log is a [`RecordBatch`]: records applied together, or not at
//! all. They are stored as JSON: the log is small and rarely written, and an
//! operator can read it.

use std::fmt;

use klog_replication::PartitionRegistration;
use serde::{Deserialize, Serialize};

/// A topic's id (Kafka's topic UUID), printed as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TopicId(pub u128);

impl TopicId {
    /// The id as Kafka's 16 bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

impl From<TopicId> for String {
    fn from(id: TopicId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for TopicId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        u128::from_str_radix(&s, 16)
            .map(TopicId)
            .map_err(|_| format!("bad topic id {s:?}"))
    }
}

/// A listener a broker announces (`advertised.listeners`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, `CONTROLLER`).
    pub name: String,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
}

/// A broker's registration (Kafka's `RegisterBrokerRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// `node.id`.
    pub id: i32,
    /// The broker epoch: raised by every registration, so that requests from an
    /// earlier incarnation of the same node are refused.
    pub epoch: i64,
    /// Distinguishes one run of the process from the next (a random id chosen at
    /// start).
    pub incarnation: String,
    /// Where clients and brokers reach it.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// What a configuration record applies to; stored as `topic:<name>` or
/// `broker:<id>` (`broker:` alone for the cluster-wide default).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
#[non_exhaustive]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker, by id ("" for the cluster-wide default).
    Broker(String),
}

impl From<ConfigResource> for String {
    fn from(r: ConfigResource) -> String {
        match r {
            ConfigResource::Topic(t) => format!("topic:{t}"),
            ConfigResource::Broker(b) => format!("broker:{b}"),
        }
    }
}

impl TryFrom<String> for ConfigResource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("topic", t)) => Ok(ConfigResource::Topic(t.to_owned())),
            Some(("broker", b)) => Ok(ConfigResource::Broker(b.to_owned())),
            _ => Err(format!("bad config resource {s:?}")),
        }
    }
}

/// One record of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MetadataRecord {
    /// A broker registered (it starts fenced).
    RegisterBroker(BrokerRegistration),
    /// A broker may serve: its session is alive and it caught up with the log.
    UnfenceBroker {
        /// Broker id.
        id: i32,
        /// Its epoch.
        epoch: i64,
    },
    /// A broker's session expired (or it asked to be fenced): it leads nothing and
    /// is in no ISR.
    FenceBroker {
        /// Broker id.
        id: i32,
        /// Its epoch.
        epoch: i64,
    },
    /// A broker asked to shut down (controlled shutdown): it may not join an ISR or
    /// lead while its leaderships are moved away.
    BeginShutdown {
        /// Broker id.
        id: i32,
        /// Its epoch.
        epoch: i64,
    },
    /// A broker is removed from the cluster.
    UnregisterBroker {
        /// Broker id.
        id: i32,
    },
    /// A topic exists (its partitions follow as [`MetadataRecord::Partition`]).
    Topic {
        /// Topic name.
        name: String,
        /// Topic id.
        id: TopicId,
    },
    /// A partition exists with this registration.
    Partition {
        /// Its topic.
        topic_id: TopicId,
        /// Partition index.
        partition: i32,
        /// Replicas, ISR, ELR, leader and epochs.
        registration: PartitionRegistration,
    },
    /// A change of a partition (Kafka's `PartitionChangeRecord`): the fields given
    /// replace the current ones; the partition epoch rises by one, and the leader
    /// epoch too when the leader is given.
    PartitionChange {
        /// Its topic.
        topic_id: TopicId,
        /// Partition index.
        partition: i32,
        /// A new leader (-1: none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<i32>,
        /// A new ISR.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        isr: Option<Vec<i32>>,
        /// A new ELR.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        elr: Option<Vec<i32>>,
        /// New replicas.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<Vec<i32>>,
        /// A new last known leader (KIP-966).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_known_leader: Option<i32>,
    },
    /// A topic and its partitions are deleted.
    RemoveTopic {
        /// Topic id.
        id: TopicId,
    },
    /// A configuration value is set (or, with `value: None`, removed).
    Config {
        /// What it applies to.
        resource: ConfigResource,
        /// Configuration key.
        key: String,
        /// The value, or `None` to remove it.
        value: Option<String>,
    },
    /// A block of producer ids was handed to a broker: the next block starts at
    /// `next_producer_id`.
    ProducerIds {
        /// The broker given the block.
        broker: i32,
        /// Its epoch.
        broker_epoch: i64,
        /// The first id of the next block.
        next_producer_id: i64,
    },
}

/// The records of one metadata log entry, applied together.
pub type RecordBatch = Vec<MetadataRecord>;

/// Why a log entry could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("malformed metadata log entry: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

/// Encodes the records of one log entry.
pub fn encode_batch(records: &[MetadataRecord]) -> Vec<u8> {
    // Serializing plain data to a Vec cannot fail.
    serde_json::to_vec(records).unwrap_or_default()
}

/// Decodes the records of one log entry.
pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch, DecodeError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// The change a [`MetadataRecord::PartitionChange`] must carry to turn `old` into
/// `new` (as the election functions of `klog-replication` compute it), or `None`
/// if nothing changed.
pub fn partition_change(
    topic_id: TopicId,
    partition: i32,
    old: &PartitionRegistration,
    new: &PartitionRegistration,
) -> Option<MetadataRecord> {
    if old == new {
        return None;
    }
    let changed = |a: &Vec<i32>, b: &Vec<i32>| (a != b).then(|| b.clone());
    Some(MetadataRecord::PartitionChange {
        topic_id,
        partition,
        leader: (old.leader != new.leader || old.leader_epoch != new.leader_epoch)
            .then_some(new.leader),
        isr: changed(&old.isr, &new.isr),
        elr: changed(&old.elr, &new.elr),
        replicas: changed(&old.replicas, &new.replicas),
        last_known_leader: (old.last_known_leader != new.last_known_leader)
            .then_some(new.last_known_leader),
    })
}
