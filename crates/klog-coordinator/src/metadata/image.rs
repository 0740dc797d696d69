//! The metadata image: the cluster's state as a pure function of the metadata log.
//!
//! Every node replays the committed log into its image ([`MetadataImage::apply`]);
//! the controller decides against it, brokers serve from it. A snapshot of the log
//! is the image serialized.

use std::collections::BTreeMap;

use klog_replication::{NO_LEADER, PartitionRegistration};
use serde::{Deserialize, Serialize};

use super::records::{BrokerRegistration, ConfigResource, MetadataRecord, TopicId};

/// A registered broker and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    /// Its registration.
    pub registration: BrokerRegistration,
    /// Fenced: it may not lead or be in an ISR (it starts so).
    pub fenced: bool,
    /// It asked to shut down (controlled shutdown).
    pub shutting_down: bool,
    /// The log offset of its registration: it is caught up once its own image has
    /// reached it.
    pub registered_at: u64,
}

impl BrokerState {
    /// May lead and be in an ISR.
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.shutting_down
    }
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: TopicId,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// Why a record could not be applied (a bug in whoever wrote it: the controller
/// checks before it writes). The image is unchanged then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The record names a topic id the image does not have.
    #[error("unknown topic id {0}")]
    UnknownTopic(TopicId),
    /// The record names a partition the image does not have.
    #[error("unknown partition {1} of topic {0}")]
    UnknownPartition(TopicId, i32),
    /// The record names a broker the image does not have.
    #[error("unknown broker {0}")]
    UnknownBroker(i32),
    /// A topic of that name exists already with another id.
    #[error("topic {0:?} exists already")]
    DuplicateTopic(String),
}

/// What applying a batch changed, for the broker to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDelta {
    /// Partitions created or changed, by topic name.
    pub partitions: Vec<(String, i32)>,
    /// Topics removed (name, id).
    pub removed_topics: Vec<(String, TopicId)>,
    /// Brokers registered, fenced, unfenced, shutting down or removed.
    pub brokers: Vec<i32>,
    /// Configuration resources changed.
    pub configs: Vec<ConfigResource>,
}

/// The cluster metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// The log offset (index) of the last entry applied (0: none).
    pub offset: u64,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerState>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// Topic names by id.
    pub topic_names: BTreeMap<TopicId, String>,
    /// Configuration by resource, then key.
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// The highest broker epoch given so far.
    pub last_broker_epoch: i64,
}

impl MetadataImage {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the records of the log entry at `offset`, all or none: on an error
    /// the image is unchanged (and `offset` not taken).
    pub fn apply_batch(
        &mut self,
        offset: u64,
        records: &[MetadataRecord],
    ) -> Result<ImageDelta, ApplyError> {
        let mut next = self.clone();
        let mut delta = ImageDelta::default();
        next.offset = offset;
        for r in records {
            next.apply(r, &mut delta)?;
        }
        *self = next;
        Ok(delta)
    }

    /// Applies one record, noting what changed in `delta`.
    pub fn apply(
        &mut self,
        record: &MetadataRecord,
        delta: &mut ImageDelta,
    ) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::RegisterBroker(reg) => {
                self.last_broker_epoch = self.last_broker_epoch.max(reg.epoch);
                self.brokers.insert(
                    reg.id,
                    BrokerState {
                        registration: reg.clone(),
                        fenced: true,
                        shutting_down: false,
                        registered_at: self.offset,
                    },
                );
                delta.brokers.push(reg.id);
            }
            MetadataRecord::UnfenceBroker { id, .. } => {
                self.broker_mut(*id)?.fenced = false;
                delta.brokers.push(*id);
            }
            MetadataRecord::FenceBroker { id, .. } => {
                self.broker_mut(*id)?.fenced = true;
                delta.brokers.push(*id);
            }
            MetadataRecord::BeginShutdown { id, .. } => {
                self.broker_mut(*id)?.shutting_down = true;
                delta.brokers.push(*id);
            }
            MetadataRecord::UnregisterBroker { id } => {
                self.brokers
                    .remove(id)
                    .ok_or(ApplyError::UnknownBroker(*id))?;
                delta.brokers.push(*id);
            }
            MetadataRecord::Topic { name, id } => {
                if self.topics.get(name).is_some_and(|t| t.id != *id) {
                    return Err(ApplyError::DuplicateTopic(name.clone()));
                }
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        partitions: BTreeMap::new(),
                    },
                );
                self.topic_names.insert(*id, name.clone());
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                registration,
            } => {
                let t = self.topic_by_id_mut(*topic_id)?;
                t.partitions.insert(*partition, registration.clone());
                delta.partitions.push((t.name.clone(), *partition));
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                isr,
                elr,
                replicas,
                last_known_leader,
            } => {
                let t = self.topic_by_id_mut(*topic_id)?;
                let name = t.name.clone();
                let p = t
                    .partitions
                    .get_mut(partition)
                    .ok_or(ApplyError::UnknownPartition(*topic_id, *partition))?;
                if let Some(l) = leader {
                    p.leader = *l;
                    p.leader_epoch += 1;
                }
                if let Some(isr) = isr {
                    p.isr = isr.clone();
                }
                if let Some(elr) = elr {
                    p.elr = elr.clone();
                }
                if let Some(r) = replicas {
                    p.replicas = r.clone();
                }
                if let Some(l) = last_known_leader {
                    p.last_known_leader = *l;
                }
                p.partition_epoch += 1;
                delta.partitions.push((name, *partition));
            }
            MetadataRecord::RemoveTopic { id } => {
                let name = self
                    .topic_names
                    .remove(id)
                    .ok_or(ApplyError::UnknownTopic(*id))?;
                self.topics.remove(&name);
                self.configs.remove(&ConfigResource::Topic(name.clone()));
                delta.removed_topics.push((name, *id));
            }
            MetadataRecord::Config {
                resource,
                key,
                value,
            } => {
                let entry = self.configs.entry(resource.clone()).or_default();
                match value {
                    Some(v) => {
                        entry.insert(key.clone(), v.clone());
                    }
                    None => {
                        entry.remove(key);
                    }
                }
                if entry.is_empty() {
                    self.configs.remove(resource);
                }
                delta.configs.push(resource.clone());
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
        }
        Ok(())
    }

    fn broker_mut(&mut self, id: i32) -> Result<&mut BrokerState, ApplyError> {
        self.brokers
            .get_mut(&id)
            .ok_or(ApplyError::UnknownBroker(id))
    }

    fn topic_by_id_mut(&mut self, id: TopicId) -> Result<&mut TopicImage, ApplyError> {
        let name = self
            .topic_names
            .get(&id)
            .ok_or(ApplyError::UnknownTopic(id))?;
        self.topics
            .get_mut(name)
            .ok_or(ApplyError::UnknownTopic(id))
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: TopicId) -> Option<&TopicImage> {
        self.topic_names.get(&id).and_then(|n| self.topics.get(n))
    }

    /// A partition's registration.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionRegistration> {
        self.topics.get(topic)?.partitions.get(&partition)
    }

    /// A broker that may lead and be in an ISR (registered, unfenced, not shutting
    /// down).
    pub fn is_active(&self, broker: i32) -> bool {
        self.brokers
            .get(&broker)
            .is_some_and(BrokerState::is_active)
    }

    /// The ids of the active brokers, ascending.
    pub fn active_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| b.is_active())
            .map(|b| b.registration.id)
            .collect()
    }

    /// A configuration value of a resource, if set.
    pub fn config(&self, resource: &ConfigResource, key: &str) -> Option<&str> {
        self.configs.get(resource)?.get(key).map(String::as_str)
    }

    /// Every partition, with its topic's name and id.
    pub fn partitions(&self) -> impl Iterator<Item = (&TopicImage, i32, &PartitionRegistration)> {
        self.topics
            .values()
            .flat_map(|t| t.partitions.iter().map(move |(i, p)| (t, *i, p)))
    }

    /// Partitions with no leader.
    pub fn offline_partitions(
        &self,
    ) -> impl Iterator<Item = (&TopicImage, i32, &PartitionRegistration)> {
        self.partitions().filter(|(_, _, p)| p.leader == NO_LEADER)
    }

    /// The image as snapshot bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// An image from snapshot bytes.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
