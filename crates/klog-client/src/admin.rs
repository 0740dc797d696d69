//! The admin client: create, delete, list, describe and grow topics; describe and
//! alter configs; delete records and list offsets; describe the cluster and its log
//! directories; list and describe consumer groups, their committed offsets and lag.
//!
//! CreateTopics, DeleteTopics and CreatePartitions go to the controller that
//! Metadata names (KAFKA-COMPAT.md trap 5); a NOT_CONTROLLER answer refreshes
//! metadata and retries. Config requests about a topic go to any broker, about a
//! broker to that broker. DeleteRecords and ListOffsets go to each partition's
//! leader, one request per leader; partitions that fail retriably are retried after
//! a metadata refresh until the request timeout. DescribeLogDirs goes to the broker
//! asked about.
//! ListGroups goes to every broker (each lists the groups it coordinates);
//! DescribeGroups and OffsetFetch go to the group's coordinator (FindCoordinator);
//! lag compares a group's committed offsets with ListOffsets(latest) at each
//! partition's leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use klog_codec::protocol::messages::create_partitions_request::CreatePartitionsTopic;
use klog_codec::protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use klog_codec::protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use klog_codec::protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use klog_codec::protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use klog_codec::protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use klog_codec::protocol::messages::{
    CreatePartitionsRequest, DeleteRecordsRequest, DescribeClusterRequest, DescribeLogDirsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, OffsetCommitRequest,
};

use klog_codec::protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use klog_codec::protocol::messages::describe_configs_request::DescribeConfigsResource;
use klog_codec::protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, TopicName,
};
use klog_codec::protocol::{ResponseError, StrBytes};

use klog_codec::protocol::messages::{
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest, OffsetFetchRequest,
};

use crate::cluster::{BrokerInfo, ClientConfig, Cluster, TopicInfo};
use crate::conn::Connection;
use crate::consumer::{Offset, TopicPartition};
use crate::consumer_protocol;
use crate::error::{AdminError, ClientError};

/// What kind of leader election [`Admin::elect_leaders`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The preferred replica (the first in the replica list), if in sync.
    Preferred = 0,
    /// Any live replica, for partitions without a leader; may lose records.
    Unclean = 1,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions (-1: the broker's `num.partitions`).
    pub partitions: i32,
    /// Replication factor (-1: the broker's `default.replication.factor`).
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `segment.bytes`, ...).
    pub configs: Vec<(String, String)>,
}

/// The CreateTopics request for `topics`, as [`Admin::create_topics`] sends it
/// (for programs that forward it themselves).
pub fn create_topics_request(topics: &[NewTopic], timeout_ms: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                        .with_num_partitions(t.partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(
                            t.configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(k.clone()))
                                        .with_value(Some(StrBytes::from_string(v.clone())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

impl NewTopic {
    /// A topic with `partitions` partitions and replication factor 1.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor: 1,
            configs: Vec::new(),
        }
    }

    /// Sets the replication factor.
    pub fn with_replication_factor(mut self, rf: i16) -> Self {
        self.replication_factor = rf;
        self
    }

    /// Adds a topic config.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// One config entry of a topic or broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name.
    pub name: String,
    /// Value (`None` for sensitive or unset values).
    pub value: Option<String>,
    /// Whether it cannot be changed at run time.
    pub read_only: bool,
    /// Whether it is the default (config source 5) rather than set explicitly.
    pub is_default: bool,
    /// Whether the value is hidden.
    pub is_sensitive: bool,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Every level the value is or could be set at, most specific first (the
    /// effective one first); empty unless synonyms were asked for.
    pub synonyms: Vec<ConfigSynonym>,
    /// The broker's description of the config (DescribeConfigs v3+), if it sent one.
    pub documentation: Option<String>,
}

/// Where a config value comes from (Kafka's `ConfigEntry.ConfigSource`, as numbered
/// in DescribeConfigs v1+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigSource {
    /// A per-topic override (`DYNAMIC_TOPIC_CONFIG`, 1).
    DynamicTopic,
    /// A per-broker dynamic config (`DYNAMIC_BROKER_CONFIG`, 2).
    DynamicBroker,
    /// A cluster-wide dynamic broker default (`DYNAMIC_DEFAULT_BROKER_CONFIG`, 3).
    DynamicDefaultBroker,
    /// The broker's startup configuration (`STATIC_BROKER_CONFIG`, 4).
    StaticBroker,
    /// The built-in default (`DEFAULT_CONFIG`, 5).
    Default,
    /// A broker logger level (`DYNAMIC_BROKER_LOGGER_CONFIG`, 6).
    DynamicBrokerLogger,
    /// Any other code, including 0 (`UNKNOWN`).
    Unknown(i8),
}

impl ConfigSource {
    /// The source for a DescribeConfigs `config_source` code.
    pub fn from_code(code: i8) -> Self {
        match code {
            1 => Self::DynamicTopic,
            2 => Self::DynamicBroker,
            3 => Self::DynamicDefaultBroker,
            4 => Self::StaticBroker,
            5 => Self::Default,
            6 => Self::DynamicBrokerLogger,
            other => Self::Unknown(other),
        }
    }

    /// Kafka's name for the source, as `kafka-configs.sh` prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            Self::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            Self::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            Self::StaticBroker => "STATIC_BROKER_CONFIG",
            Self::Default => "DEFAULT_CONFIG",
            Self::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG",
            Self::Unknown(_) => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One level a config is set at (`segment.bytes` of a topic may come from the
/// topic override, from the broker's `log.segment.bytes`, or the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The name at that level (`log.segment.bytes` for a broker-level synonym).
    pub name: String,
    /// The value at that level (`None` when sensitive).
    pub value: Option<String>,
    /// The level.
    pub source: ConfigSource,
}

/// One change of an IncrementalAlterConfigs request (KIP-339).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlterConfigOp {
    /// Set `name` to `value` (operation 0).
    Set {
        /// Config name.
        name: String,
        /// New value.
        value: String,
    },
    /// Remove the override of `name`, falling back to the broker's value (operation 1).
    Delete {
        /// Config name.
        name: String,
    },
    /// Add `value` to the list config `name` (operation 2).
    Append {
        /// Config name (a list config such as `cleanup.policy`).
        name: String,
        /// The element to add.
        value: String,
    },
    /// Remove `value` from the list config `name` (operation 3).
    Subtract {
        /// Config name (a list config such as `cleanup.policy`).
        name: String,
        /// The element to remove.
        value: String,
    },
}

impl AlterConfigOp {
    /// `name = value`.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Set {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Remove the override of `name`.
    pub fn delete(name: impl Into<String>) -> Self {
        Self::Delete { name: name.into() }
    }

    /// Append `value` to the list `name`.
    pub fn append(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Append {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Remove `value` from the list `name`.
    pub fn subtract(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Subtract {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The wire form: (name, operation code, value).
    fn to_wire(&self) -> AlterableConfig {
        let (name, op, value) = match self {
            Self::Set { name, value } => (name, 0, Some(value)),
            Self::Delete { name } => (name, 1, None),
            Self::Append { name, value } => (name, 2, Some(value)),
            Self::Subtract { name, value } => (name, 3, Some(value)),
        };
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.clone()))
            .with_config_operation(op)
            .with_value(value.map(|v| StrBytes::from_string(v.clone())))
    }
}

/// A topic to grow, for [`Admin::create_partitions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartitions {
    /// The topic.
    pub topic: String,
    /// The partition count wanted (the total, not the number to add).
    pub total_count: i32,
}

impl NewPartitions {
    /// Grow `topic` to `total_count` partitions.
    pub fn increase_to(topic: impl Into<String>, total_count: i32) -> Self {
        Self {
            topic: topic.into(),
            total_count,
        }
    }
}

/// Which offset ListOffsets should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetSpec {
    /// The log start offset (timestamp -2).
    Earliest,
    /// The high watermark (timestamp -1).
    Latest,
    /// The earliest offset whose record timestamp is at or after this one (ms).
    Timestamp(i64),
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            Self::Earliest => -2,
            Self::Latest => -1,
            Self::Timestamp(t) => t,
        }
    }
}

/// A partition's offset as ListOffsets found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset (`None`: no record at or after the timestamp asked for).
    pub offset: Option<i64>,
    /// The timestamp of the record found (`None` for earliest/latest and when
    /// nothing was found).
    pub timestamp: Option<i64>,
    /// The leader epoch of that offset, if the broker reports it.
    pub leader_epoch: Option<i32>,
}

/// A group's committed offset for one partition, with its metadata string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommittedOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch committed with it, if any.
    pub leader_epoch: Option<i32>,
    /// The metadata string committed with it (`None` when null).
    pub metadata: Option<String>,
}

/// One replica in a log directory, from DescribeLogDirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLogInfo {
    /// The partition.
    pub partition: TopicPartition,
    /// Bytes of its log segments on disk.
    pub size: i64,
    /// How far a future replica (being moved between directories) lags; 0 otherwise.
    pub offset_lag: i64,
    /// Whether this is the future replica of a directory move.
    pub is_future: bool,
}

/// One log directory of a broker, from DescribeLogDirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirDescription {
    /// Absolute path on the broker.
    pub path: String,
    /// The directory's error (KAFKA_STORAGE_ERROR when offline), if any.
    pub error: Option<ResponseError>,
    /// Its replicas, sorted by partition.
    pub replicas: Vec<ReplicaLogInfo>,
    /// Size of the volume (DescribeLogDirs v4+), if reported.
    pub total_bytes: Option<i64>,
    /// Free space on the volume (DescribeLogDirs v4+), if reported.
    pub usable_bytes: Option<i64>,
}

/// The cluster as DescribeCluster (or, from older brokers, Metadata) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id (`None` if the broker has none).
    pub cluster_id: Option<String>,
    /// The controller's broker id (`None` if unknown).
    pub controller_id: Option<i32>,
    /// The brokers, sorted by id.
    pub brokers: Vec<BrokerInfo>,
}

/// The metadata quorum as its leader (the active controller) reports it:
/// DescribeQuorum (KIP-595), what Kafka's `kafka-metadata-quorum describe` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The leader's node id (`None` while there is none).
    pub leader_id: Option<i32>,
    /// The leader's epoch (its Raft term).
    pub leader_epoch: i32,
    /// The offset below which the metadata log is committed.
    pub high_watermark: i64,
    /// The voters, sorted by id.
    pub voters: Vec<QuorumReplica>,
    /// The observers (broker-only nodes following the log), sorted by id.
    pub observers: Vec<QuorumReplica>,
    /// The voters' controller endpoints as `(node id, host, port)`, sorted (v2,
    /// KIP-853; empty from older brokers).
    pub voter_endpoints: Vec<(i32, String, u16)>,
}

/// One member of the metadata quorum in a [`QuorumDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    /// Its node id.
    pub node_id: i32,
    /// The end of its copy of the metadata log, as the leader knows it (-1 if
    /// unknown).
    pub log_end_offset: i64,
    /// When it last fetched from the leader, in ms since the epoch (`None` if
    /// the leader does not say).
    pub last_fetch_timestamp: Option<i64>,
    /// When it was last caught up with the leader (`None` if not said).
    pub last_caught_up_timestamp: Option<i64>,
}

/// What to describe configs of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigResource<'a> {
    /// A topic.
    Topic(&'a str),
    /// A broker, by id.
    Broker(i32),
}

impl ConfigResource<'_> {
    /// Kafka's resource type (TOPIC = 2, BROKER = 4), the resource name, and the
    /// broker the request must go to (`None`: any).
    fn wire(&self) -> (i8, String, Option<i32>) {
        match *self {
            Self::Topic(t) => (2, t.to_owned(), None),
            Self::Broker(id) => (4, id.to_string(), Some(id)),
        }
    }
}

impl std::fmt::Display for ConfigResource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Topic(t) => write!(f, "topic {t}"),
            Self::Broker(id) => write!(f, "broker {id}"),
        }
    }
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer` for consumer groups; empty for groups that only
    /// commit offsets).
    pub protocol_type: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client id it connected with.
    pub client_id: String,
    /// The host it connected from.
    pub client_host: String,
    /// Its assignment, decoded when the group uses the consumer protocol.
    pub assignment: Vec<TopicPartition>,
}

/// A described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    pub state: String,
    /// Protocol type (`consumer`).
    pub protocol_type: String,
    /// The chosen protocol (the assignor's name for consumer groups).
    pub protocol: String,
    /// Members, sorted by member id.
    pub members: Vec<GroupMember>,
}

/// A group's progress on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset (`None`: nothing committed).
    pub committed: Option<i64>,
    /// The partition's log end offset (high watermark).
    pub log_end: i64,
    /// `log_end - committed` (`None` without a commit).
    pub lag: Option<i64>,
    /// The member that owns the partition now, if any.
    pub member_id: Option<String>,
}

/// The admin client.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
    timeout: Duration,
}

impl Admin {
    /// An admin client; connects lazily.
    pub fn new(config: ClientConfig) -> Result<Self, AdminError> {
        let timeout = config.request_timeout;
        Ok(Self {
            cluster: Cluster::new(config)?,
            timeout,
        })
    }

    async fn controller(&self) -> Result<Arc<Connection>, ClientError> {
        self.cluster.refresh(Some(&[])).await?;
        let id = self.cluster.controller();
        if id >= 0 {
            self.cluster.connection(id).await
        } else {
            self.cluster.any_connection().await
        }
    }

    /// Runs `op` against the controller, retrying retriable failures (a moved
    /// controller, a restarting broker) until the request timeout.
    async fn with_controller<T, F, Fut>(&self, op: F) -> Result<T, AdminError>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, AdminError>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            let result = match self.controller().await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e.into()),
            };
            match result {
                Err(
                    e @ (AdminError::Client(_)
                    | AdminError::Topic {
                        error: ResponseError::NotController,
                        ..
                    }),
                ) if e.is_retriable() && Instant::now() < deadline => {
                    attempt += 1;
                    tokio::time::sleep(self.cluster.config.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Sends `request` to the controller (admin requests that change topics must go
    /// there), retrying on another controller while `not_controller` finds a result
    /// answered with NOT_CONTROLLER (it returns that result's topic name).
    async fn send_to_controller<R>(
        &self,
        request: R,
        not_controller: fn(&R::Response) -> Option<String>,
    ) -> Result<R::Response, AdminError>
    where
        R: klog_codec::protocol::client::Request + Clone + Send + Sync,
        R::Response: Send + 'static,
    {
        self.with_controller(|conn| {
            let request = request.clone();
            async move {
                let r = conn
                    .send(&request)
                    .map_err(ClientError::from)?
                    .await
                    .map_err(ClientError::from)?;
                if let Some(topic) = not_controller(&r) {
                    return Err(AdminError::Topic {
                        topic,
                        error: ResponseError::NotController,
                        message: None,
                    });
                }
                Ok(r)
            }
        })
        .await
    }

    /// Creates topics. Returns one result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
    ) -> Result<Vec<Result<(), AdminError>>, AdminError> {
        let timeout_ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        let request = create_topics_request(topics, timeout_ms);
        let response = self
            .send_to_controller(request, |r| {
                r.topics
                    .iter()
                    .find(|t| t.error_code == ResponseError::NotController.code())
                    .map(|t| t.name.0.to_string())
            })
            .await?;
        Ok(topics
            .iter()
            .map(|t| {
                let r = response
                    .topics
                    .iter()
                    .find(|r| r.name.0.as_str() == t.name)
                    .ok_or_else(|| AdminError::UnknownTopic(t.name.clone()))?;
                topic_result(&t.name, r.error_code, r.error_message.as_ref())
            })
            .collect())
    }

    /// Deletes topics. Returns one result per topic, in order.
    pub async fn delete_topics(
        &self,
        names: &[String],
    ) -> Result<Vec<Result<(), AdminError>>, AdminError> {
        let timeout_ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        let request = DeleteTopicsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topic_names(
                names
                    .iter()
                    .map(|n| TopicName(StrBytes::from_string(n.clone())))
                    .collect(),
            );
        let response = self
            .send_to_controller(request, |r| {
                r.responses
                    .iter()
                    .find(|t| t.error_code == ResponseError::NotController.code())
                    .map(|t| t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default())
            })
            .await?;
        Ok(names
            .iter()
            .map(|n| {
                let r = response
                    .responses
                    .iter()
                    .find(|r| r.name.as_ref().is_some_and(|rn| rn.0.as_str() == n))
                    .ok_or_else(|| AdminError::UnknownTopic(n.clone()))?;
                topic_result(n, r.error_code, r.error_message.as_ref())
            })
            .collect())
    }

    /// Names of all topics, sorted (internal ones included).
    pub async fn list_topics(&self) -> Result<Vec<String>, AdminError> {
        let response = self.cluster.refresh(None).await?;
        let mut names: Vec<String> = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Metadata of these topics (partitions, leaders, replicas, ISR).
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicInfo>, AdminError> {
        // Describing must not create topics as a side effect.
        let response = self.cluster.refresh_no_create(names).await?;
        names
            .iter()
            .map(|n| {
                let t = response
                    .topics
                    .iter()
                    .find(|t| t.name.as_ref().is_some_and(|tn| tn.0.as_str() == n))
                    .ok_or_else(|| AdminError::UnknownTopic(n.clone()))?;
                if t.error_code == ResponseError::UnknownTopicOrPartition.code() {
                    return Err(AdminError::UnknownTopic(n.clone()));
                }
                topic_result(n, t.error_code, None)?;
                self.cluster
                    .topic(n)
                    .map(|t| (*t).clone())
                    .ok_or_else(|| AdminError::UnknownTopic(n.clone()))
            })
            .collect()
    }

    /// The brokers of the cluster, sorted by id.
    pub async fn brokers(&self) -> Result<Vec<BrokerInfo>, AdminError> {
        self.cluster.refresh(Some(&[])).await?;
        Ok(self.cluster.brokers())
    }

    /// The configs of a topic or broker (all of them when `keys` is `None`).
    pub async fn describe_configs(
        &self,
        resource: ConfigResource<'_>,
        keys: Option<&[String]>,
    ) -> Result<Vec<ConfigEntry>, AdminError> {
        self.describe_configs_with(resource, keys, false).await
    }

    /// As [`Admin::describe_configs`], with each entry's synonyms when
    /// `include_synonyms` (what `kafka-configs.sh --describe --all` shows).
    pub async fn describe_configs_with(
        &self,
        resource: ConfigResource<'_>,
        keys: Option<&[String]>,
        include_synonyms: bool,
    ) -> Result<Vec<ConfigEntry>, AdminError> {
        let (resource_type, name, target) = resource.wire();
        let request = DescribeConfigsRequest::default()
            .with_include_synonyms(include_synonyms)
            .with_include_documentation(true)
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.clone()))
                    .with_configuration_keys(keys.map(|ks| {
                        ks.iter()
                            .map(|k| StrBytes::from_string(k.clone()))
                            .collect()
                    })),
            ]);
        let conn = self.config_connection(target).await?;
        let response = conn
            .send(&request)
            .map_err(ClientError::from)?
            .await
            .map_err(ClientError::from)?;
        let result = response
            .results
            .into_iter()
            .next()
            .ok_or_else(|| AdminError::UnknownTopic(name.clone()))?;
        topic_result(&name, result.error_code, result.error_message.as_ref())?;
        Ok(result
            .configs
            .into_iter()
            .map(|c| {
                let source = ConfigSource::from_code(c.config_source);
                ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    read_only: c.read_only,
                    is_default: source == ConfigSource::Default,
                    is_sensitive: c.is_sensitive,
                    source,
                    synonyms: c
                        .synonyms
                        .into_iter()
                        .map(|s| ConfigSynonym {
                            name: s.name.to_string(),
                            value: s.value.map(|v| v.to_string()),
                            source: ConfigSource::from_code(s.source),
                        })
                        .collect(),
                    documentation: c.documentation.map(|d| d.to_string()),
                }
            })
            .collect())
    }

    /// Where config requests about `broker` (or, for `None`, a topic) go: the
    /// broker itself, or any broker for topics (as Kafka's admin client does).
    async fn config_connection(&self, broker: Option<i32>) -> Result<Arc<Connection>, ClientError> {
        match broker {
            Some(id) => {
                self.cluster.refresh(Some(&[])).await?;
                self.cluster.connection(id).await
            }
            None => self.cluster.any_connection().await,
        }
    }

    /// Changes configs of a topic (or broker, if it allows) with
    /// IncrementalAlterConfigs: each op sets, deletes, appends to or subtracts from
    /// one config, leaving the others as they are. With `validate_only` the broker
    /// checks the change and applies nothing. An unknown name or bad value fails
    /// the whole request with INVALID_CONFIG ([`AdminError::Config`]), changing
    /// nothing.
    pub async fn incremental_alter_configs(
        &self,
        resource: ConfigResource<'_>,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let (resource_type, name, target) = resource.wire();
        let request = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.clone()))
                    .with_configs(ops.iter().map(AlterConfigOp::to_wire).collect()),
            ]);
        let conn = self.config_connection(target).await?;
        let response = conn
            .send(&request)
            .map_err(ClientError::from)?
            .await
            .map_err(ClientError::from)?;
        let result = response
            .responses
            .iter()
            .find(|r| r.resource_type == resource_type && r.resource_name.as_str() == name)
            .ok_or_else(|| AdminError::MissingResult {
                api: "IncrementalAlterConfigs",
                what: resource.to_string(),
            })?;
        match ResponseError::try_from_code(result.error_code) {
            None => Ok(()),
            Some(error) => Err(AdminError::Config {
                resource: resource.to_string(),
                error,
                message: result.error_message.as_ref().map(|m| m.to_string()),
            }),
        }
    }

    /// Grows topics to the partition counts given (CreatePartitions, at the
    /// controller). Returns one result per topic, in order; a count that is not
    /// larger than the current one fails with INVALID_PARTITIONS. With
    /// `validate_only` nothing is created.
    pub async fn create_partitions(
        &self,
        topics: &[NewPartitions],
        validate_only: bool,
    ) -> Result<Vec<Result<(), AdminError>>, AdminError> {
        let timeout_ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatePartitionsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.topic.clone())))
                            .with_count(t.total_count)
                            // The broker places the new partitions.
                            .with_assignments(None)
                    })
                    .collect(),
            );
        let response = self
            .send_to_controller(request, |r| {
                r.results
                    .iter()
                    .find(|t| t.error_code == ResponseError::NotController.code())
                    .map(|t| t.name.0.to_string())
            })
            .await?;
        Ok(topics
            .iter()
            .map(|t| {
                let r = response
                    .results
                    .iter()
                    .find(|r| r.name.0.as_str() == t.topic)
                    .ok_or_else(|| AdminError::MissingResult {
                        api: "CreatePartitions",
                        what: t.topic.clone(),
                    })?;
                topic_result(&t.topic, r.error_code, r.error_message.as_ref())
            })
            .collect())
    }

    /// Deletes the records of each partition below the offset given (-1: below the
    /// high watermark), moving its log start offset (DeleteRecords, at each
    /// partition's leader). Returns, per partition in order, the new low watermark.
    pub async fn delete_records(
        &self,
        targets: &[(TopicPartition, i64)],
    ) -> Result<Vec<(TopicPartition, Result<i64, AdminError>)>, AdminError> {
        let wanted: BTreeMap<TopicPartition, i64> = targets.iter().cloned().collect();
        let timeout_ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        let results = self
            .at_leaders(
                targets.iter().map(|(tp, _)| tp.clone()).collect(),
                |conn, parts| {
                    let request = DeleteRecordsRequest::default()
                        .with_timeout_ms(timeout_ms)
                        .with_topics(
                            by_topic(&parts)
                                .into_iter()
                                .map(|(topic, ps)| {
                                    DeleteRecordsTopic::default()
                                        .with_name(TopicName(StrBytes::from_string(topic)))
                                        .with_partitions(
                                            ps.into_iter()
                                                .map(|tp| {
                                                    DeleteRecordsPartition::default()
                                                        .with_partition_index(tp.partition)
                                                        .with_offset(
                                                            wanted.get(&tp).copied().unwrap_or(-1),
                                                        )
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        );
                    async move {
                        let response = conn.send(&request)?.await?;
                        Ok(response
                            .topics
                            .iter()
                            .flat_map(|t| {
                                t.partitions.iter().map(move |p| {
                                    let tp = TopicPartition::new(
                                        t.name.0.to_string(),
                                        p.partition_index,
                                    );
                                    let r = match ResponseError::try_from_code(p.error_code) {
                                        None => Ok(p.low_watermark),
                                        Some(error) => Err(partition_error(&tp, error)),
                                    };
                                    (tp, r)
                                })
                            })
                            .collect())
                    }
                },
            )
            .await?;
        Ok(in_order(
            targets.iter().map(|(tp, _)| tp),
            results,
            "DeleteRecords",
        ))
    }

    /// Looks up an offset of each partition (ListOffsets, at each partition's
    /// leader): the log start, the high watermark, or the first offset at or after
    /// a timestamp. Returns one result per partition, in order.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<Vec<(TopicPartition, Result<ListedOffset, AdminError>)>, AdminError> {
        let timestamp = spec.timestamp();
        let results = self
            .at_leaders(partitions.to_vec(), |conn, parts| {
                let request = ListOffsetsRequest::default()
                    .with_replica_id((-1).into())
                    .with_topics(
                        by_topic(&parts)
                            .into_iter()
                            .map(|(topic, ps)| {
                                ListOffsetsTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(topic)))
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|tp| {
                                                ListOffsetsPartition::default()
                                                    .with_partition_index(tp.partition)
                                                    .with_current_leader_epoch(-1)
                                                    .with_timestamp(timestamp)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                async move {
                    let response = conn.send(&request)?.await?;
                    Ok(response
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions.iter().map(move |p| {
                                let tp =
                                    TopicPartition::new(t.name.0.to_string(), p.partition_index);
                                let r = match ResponseError::try_from_code(p.error_code) {
                                    None => Ok(ListedOffset {
                                        offset: (p.offset >= 0).then_some(p.offset),
                                        timestamp: (p.timestamp >= 0).then_some(p.timestamp),
                                        leader_epoch: (p.leader_epoch >= 0)
                                            .then_some(p.leader_epoch),
                                    }),
                                    Some(error) => Err(partition_error(&tp, error)),
                                };
                                (tp, r)
                            })
                        })
                        .collect())
                }
            })
            .await?;
        Ok(in_order(partitions.iter(), results, "ListOffsets"))
    }

    /// Runs a per-partition request at each partition's leader: `op` gets a
    /// connection to one leader and the partitions it leads, and returns a result
    /// per partition. Partitions that fail retriably (a moved leader, no leader
    /// yet, a closed connection) are retried after a metadata refresh until the
    /// request timeout; the last result of each partition is returned.
    async fn at_leaders<T, F, Fut>(
        &self,
        partitions: Vec<TopicPartition>,
        op: F,
    ) -> Result<BTreeMap<TopicPartition, Result<T, AdminError>>, AdminError>
    where
        F: Fn(Arc<Connection>, Vec<TopicPartition>) -> Fut,
        Fut: std::future::Future<
                Output = Result<Vec<(TopicPartition, Result<T, AdminError>)>, ClientError>,
            >,
    {
        let deadline = Instant::now() + self.timeout;
        let mut topics: Vec<String> = partitions.iter().map(|tp| tp.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        let mut out: BTreeMap<TopicPartition, Result<T, AdminError>> = BTreeMap::new();
        let mut pending: Vec<TopicPartition> = partitions;
        pending.sort();
        pending.dedup();
        let mut attempt = 0;
        loop {
            self.cluster.refresh_no_create(&topics).await?;
            let mut leaders: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
            for tp in pending.drain(..) {
                let known = self
                    .cluster
                    .topic(&tp.topic)
                    .is_some_and(|t| t.partitions.iter().any(|p| p.partition == tp.partition));
                match self.cluster.leader(&tp.topic, tp.partition) {
                    Some(leader) => leaders.entry(leader).or_default().push(tp),
                    None => {
                        let error = if known {
                            ResponseError::LeaderNotAvailable
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        out.insert(tp.clone(), Err(partition_error(&tp, error)));
                    }
                }
            }
            for (leader, parts) in leaders {
                let result = match self.cluster.connection(leader).await {
                    Ok(conn) => op(conn, parts.clone()).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(results) => {
                        for tp in &parts {
                            out.insert(
                                tp.clone(),
                                Err(AdminError::MissingResult {
                                    api: "partition request",
                                    what: tp.to_string(),
                                }),
                            );
                        }
                        for (tp, r) in results {
                            if parts.contains(&tp) {
                                out.insert(tp, r);
                            }
                        }
                    }
                    Err(e) => {
                        for tp in parts {
                            out.insert(tp, Err(AdminError::Client(e.clone())));
                        }
                    }
                }
            }
            pending = out
                .iter()
                .filter(|(_, r)| r.as_ref().is_err_and(AdminError::is_retriable))
                .map(|(tp, _)| tp.clone())
                .collect();
            if pending.is_empty() || Instant::now() >= deadline {
                return Ok(out);
            }
            attempt += 1;
            tokio::time::sleep(self.cluster.config.backoff(attempt)).await;
        }
    }

    /// The log directories of broker `broker` and the size of each partition in
    /// them (DescribeLogDirs), for `topics` only if given.
    pub async fn describe_log_dirs(
        &self,
        broker: i32,
        topics: Option<&[String]>,
    ) -> Result<Vec<LogDirDescription>, AdminError> {
        let wanted = match topics {
            None => None,
            Some(names) => {
                let infos = self.describe_topics(names).await?;
                Some(
                    infos
                        .iter()
                        .map(|t| {
                            DescribableLogDirTopic::default()
                                .with_topic(TopicName(StrBytes::from_string(t.name.clone())))
                                .with_partitions(t.partitions.iter().map(|p| p.partition).collect())
                        })
                        .collect(),
                )
            }
        };
        let request = DescribeLogDirsRequest::default().with_topics(wanted);
        self.cluster.refresh(Some(&[])).await?;
        let conn = self.cluster.connection(broker).await?;
        let response = conn
            .send(&request)
            .map_err(ClientError::from)?
            .await
            .map_err(ClientError::from)?;
        if let Some(e) = ClientError::broker("DescribeLogDirs", response.error_code, None) {
            return Err(e.into());
        }
        Ok(response
            .results
            .into_iter()
            .map(|d| {
                let mut replicas: Vec<ReplicaLogInfo> = d
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(|p| ReplicaLogInfo {
                            partition: TopicPartition::new(t.name.0.to_string(), p.partition_index),
                            size: p.partition_size,
                            offset_lag: p.offset_lag,
                            is_future: p.is_future_key,
                        })
                    })
                    .collect();
                replicas.sort_by(|a, b| a.partition.cmp(&b.partition));
                LogDirDescription {
                    path: d.log_dir.to_string(),
                    error: ResponseError::try_from_code(d.error_code),
                    replicas,
                    total_bytes: (d.total_bytes >= 0).then_some(d.total_bytes),
                    usable_bytes: (d.usable_bytes >= 0).then_some(d.usable_bytes),
                }
            })
            .collect())
    }

    /// Elects leaders (ElectLeaders, at the controller): the preferred replica
    /// (the first of the replica list) where it is alive and in sync, or with
    /// [`ElectionType::Unclean`] any live replica of a partition that has no
    /// leader. `partitions: None` means every partition. Returns, per partition
    /// the controller answered for, `Ok(true)` if a leader was elected,
    /// `Ok(false)` if the one it has is already right (ELECTION_NOT_NEEDED), or
    /// the partition's error.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<(TopicPartition, Result<bool, AdminError>)>, AdminError> {
        use klog_codec::protocol::messages::ElectLeadersRequest;
        use klog_codec::protocol::messages::elect_leaders_request::TopicPartitions;
        let timeout_ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        let topic_partitions = partitions.map(|tps| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for tp in tps {
                by_topic.entry(&tp.topic).or_default().push(tp.partition);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_owned())))
                        .with_partitions(ps)
                })
                .collect()
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(election as i8)
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(timeout_ms);
        let response = self
            .send_to_controller(request, |r| {
                (r.error_code == ResponseError::NotController.code()).then(String::new)
            })
            .await?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(AdminError::Topic {
                topic: "(every partition)".to_owned(),
                error,
                message: None,
            });
        }
        let mut results = Vec::new();
        for t in &response.replica_election_results {
            for p in &t.partition_result {
                let tp = TopicPartition::new(t.topic.0.as_str(), p.partition_id);
                let result = match ResponseError::try_from_code(p.error_code) {
                    None => Ok(true),
                    Some(ResponseError::ElectionNotNeeded) => Ok(false),
                    Some(error) => Err(AdminError::Partition {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        error,
                    }),
                };
                results.push((tp, result));
            }
        }
        results.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(results)
    }

    /// The metadata quorum (DescribeQuorum, which a broker forwards to the active
    /// controller): its leader, epoch, committed offset, voters and observers.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, AdminError> {
        use klog_codec::protocol::messages::DescribeQuorumRequest;
        use klog_codec::protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        use klog_codec::protocol::messages::describe_quorum_response::ReplicaState;
        const TOPIC: &str = "__cluster_metadata";
        let request = DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]);
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        let response = loop {
            let result = async {
                let conn = self.cluster.any_connection().await?;
                let r = conn.send(&request)?.await?;
                if let Some(e) = ClientError::broker(
                    "DescribeQuorum",
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                ) {
                    return Err(e);
                }
                Ok(r)
            }
            .await;
            match result {
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    attempt += 1;
                    tokio::time::sleep(self.cluster.config.backoff(attempt)).await;
                }
                other => break other?,
            }
        };
        let partition = response
            .topics
            .iter()
            .filter(|t| t.topic_name.0.as_str() == TOPIC)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == 0)
            .ok_or_else(|| AdminError::UnknownTopic(TOPIC.to_owned()))?;
        if let Some(error) = ResponseError::try_from_code(partition.error_code) {
            return Err(AdminError::Partition {
                topic: TOPIC.to_owned(),
                partition: 0,
                error,
            });
        }
        let replica = |r: &ReplicaState| QuorumReplica {
            node_id: r.replica_id.0,
            log_end_offset: r.log_end_offset,
            last_fetch_timestamp: (r.last_fetch_timestamp >= 0).then_some(r.last_fetch_timestamp),
            last_caught_up_timestamp: (r.last_caught_up_timestamp >= 0)
                .then_some(r.last_caught_up_timestamp),
        };
        let mut voters: Vec<QuorumReplica> = partition.current_voters.iter().map(replica).collect();
        voters.sort_by_key(|r| r.node_id);
        let mut observers: Vec<QuorumReplica> = partition.observers.iter().map(replica).collect();
        observers.sort_by_key(|r| r.node_id);
        let mut voter_endpoints: Vec<(i32, String, u16)> = response
            .nodes
            .iter()
            .flat_map(|n| {
                n.listeners
                    .iter()
                    .map(move |l| (n.node_id.0, l.host.to_string(), l.port))
            })
            .collect();
        voter_endpoints.sort();
        Ok(QuorumDescription {
            leader_id: (partition.leader_id.0 >= 0).then_some(partition.leader_id.0),
            leader_epoch: partition.leader_epoch,
            high_watermark: partition.high_watermark,
            voters,
            observers,
            voter_endpoints,
        })
    }

    /// The cluster id, controller and brokers (DescribeCluster; from Metadata if
    /// the broker predates DescribeCluster, Kafka 2.8).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, AdminError> {
        let conn = self.cluster.any_connection().await?;
        // Endpoint type 1: brokers (2, controllers, is for KRaft controller quorums).
        let request = DescribeClusterRequest::default().with_endpoint_type(1);
        let sent = match conn.send(&request) {
            Ok(f) => Some(f),
            Err(crate::error::ConnectionError::UnsupportedVersion { .. }) => None,
            Err(e) => return Err(ClientError::from(e).into()),
        };
        let Some(sent) = sent else {
            let m = self.cluster.refresh(Some(&[])).await?;
            return Ok(ClusterDescription {
                cluster_id: m.cluster_id.map(|c| c.to_string()),
                controller_id: (m.controller_id.0 >= 0).then_some(m.controller_id.0),
                brokers: self.cluster.brokers(),
            });
        };
        let response = sent.await.map_err(ClientError::from)?;
        if let Some(e) = ClientError::broker(
            "DescribeCluster",
            response.error_code,
            response.error_message.map(|m| m.to_string()),
        ) {
            return Err(e.into());
        }
        let mut brokers: Vec<BrokerInfo> = response
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                node_id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
            })
            .collect();
        brokers.sort_by_key(|b| b.node_id);
        Ok(ClusterDescription {
            cluster_id: Some(response.cluster_id.to_string()).filter(|c| !c.is_empty()),
            controller_id: (response.controller_id.0 >= 0).then_some(response.controller_id.0),
            brokers,
        })
    }
}

impl Admin {
    /// The connection to `group`'s coordinator.
    async fn group_coordinator(&self, group: &str) -> Result<Arc<Connection>, ClientError> {
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0);
        let conn = self.cluster.any_connection().await?;
        let response = conn.send(&request)?.await?;
        if let Some(e) = ClientError::broker("FindCoordinator", response.error_code, None) {
            return Err(e);
        }
        self.cluster.refresh(Some(&[])).await?;
        self.cluster.connection(response.node_id.0).await
    }

    /// Runs `op` against `group`'s coordinator, retrying retriable failures (a
    /// coordinator loading its offsets, a moved coordinator) until the timeout.
    async fn with_group_coordinator<T, F, Fut>(&self, group: &str, op: F) -> Result<T, AdminError>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            let result = match self.group_coordinator(group).await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    attempt += 1;
                    tokio::time::sleep(self.cluster.config.backoff(attempt)).await;
                }
                other => return other.map_err(AdminError::from),
            }
        }
    }

    /// Every group of the cluster (asking each broker), sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, AdminError> {
        self.cluster.refresh(Some(&[])).await?;
        let mut out: Vec<GroupListing> = Vec::new();
        for broker in self.cluster.brokers() {
            let conn = self.cluster.connection(broker.node_id).await?;
            let response = conn
                .send(&ListGroupsRequest::default())
                .map_err(ClientError::from)?
                .await
                .map_err(ClientError::from)?;
            if let Some(e) = ClientError::broker("ListGroups", response.error_code, None) {
                return Err(e.into());
            }
            out.extend(response.groups.iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// Describes a group: state, protocol and members with their assignments.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, AdminError> {
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let response = self
            .with_group_coordinator(group, |conn| {
                let request = request.clone();
                async move {
                    let r = conn.send(&request)?.await?;
                    let g = r.groups.into_iter().next().ok_or(ClientError::Broker {
                        api: "DescribeGroups",
                        error: ResponseError::UnknownServerError,
                        message: Some("empty response".to_owned()),
                    })?;
                    if let Some(e) = ClientError::broker("DescribeGroups", g.error_code, None) {
                        return Err(e);
                    }
                    Ok(g)
                }
            })
            .await?;
        let consumer = response.protocol_type.as_str() == "consumer";
        let mut members: Vec<GroupMember> = response
            .members
            .iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    // An undecodable assignment is shown as none rather than
                    // failing the whole description.
                    consumer_protocol::decode_assignment(&m.member_assignment).unwrap_or_default()
                } else {
                    Vec::new()
                },
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(GroupDescription {
            group_id: response.group_id.0.to_string(),
            state: response.group_state.to_string(),
            protocol_type: response.protocol_type.to_string(),
            protocol: response.protocol_data.to_string(),
            members,
        })
    }

    /// The group's committed offsets (every partition it has committed), sorted.
    pub async fn group_offsets(
        &self,
        group: &str,
    ) -> Result<Vec<(TopicPartition, i64)>, AdminError> {
        Ok(self
            .committed_offsets(group)
            .await?
            .into_iter()
            .map(|c| (c.partition, c.offset))
            .collect())
    }

    /// The group's committed offsets with their leader epochs and metadata
    /// strings (OffsetFetch), sorted by partition.
    pub async fn committed_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>, AdminError> {
        // topics = null: all partitions with a committed offset (OffsetFetch v2+).
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(None);
        let response = self
            .with_group_coordinator(group, |conn| {
                let request = request.clone();
                async move {
                    let r = conn.send(&request)?.await?;
                    if let Some(e) = ClientError::broker("OffsetFetch", r.error_code, None) {
                        return Err(e);
                    }
                    Ok(r)
                }
            })
            .await?;
        let mut out: Vec<CommittedOffset> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.error_code == 0 && p.committed_offset >= 0)
                    .map(|p| CommittedOffset {
                        partition: TopicPartition::new(t.name.0.to_string(), p.partition_index),
                        offset: p.committed_offset,
                        leader_epoch: (p.committed_leader_epoch >= 0)
                            .then_some(p.committed_leader_epoch),
                        metadata: p.metadata.as_ref().map(|m| m.to_string()),
                    })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Sets a group's committed offsets (and metadata strings), as Kafka's
    /// `alterConsumerGroupOffsets` and `kafka-consumer-groups.sh --reset-offsets`
    /// do: an OffsetCommit outside any generation, which the coordinator accepts
    /// only while the group has no members. Returns one result per offset, in order.
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[CommittedOffset],
    ) -> Result<Vec<(TopicPartition, Result<(), AdminError>)>, AdminError> {
        let parts: Vec<TopicPartition> = offsets.iter().map(|c| c.partition.clone()).collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_topics(
                by_topic(&parts)
                    .into_iter()
                    .map(|(topic, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(
                                ps.iter()
                                    .filter_map(|tp| offsets.iter().find(|c| &c.partition == tp))
                                    .map(|c| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(c.partition.partition)
                                            .with_committed_offset(c.offset)
                                            .with_committed_leader_epoch(
                                                c.leader_epoch.unwrap_or(-1),
                                            )
                                            .with_committed_metadata(
                                                c.metadata.clone().map(StrBytes::from_string),
                                            )
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self
            .with_group_coordinator(group, |conn| {
                let request = request.clone();
                async move {
                    let r = conn.send(&request)?.await?;
                    // A coordinator that is loading or moved answers every partition
                    // with the same retriable error: retry the whole commit.
                    if let Some(e) = r
                        .topics
                        .iter()
                        .flat_map(|t| t.partitions.iter())
                        .filter_map(|p| ClientError::broker("OffsetCommit", p.error_code, None))
                        .find(ClientError::is_retriable)
                    {
                        return Err(e);
                    }
                    Ok(r)
                }
            })
            .await?;
        let results: BTreeMap<TopicPartition, Result<(), AdminError>> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    let r = match ResponseError::try_from_code(p.error_code) {
                        None => Ok(()),
                        Some(error) => Err(partition_error(&tp, error)),
                    };
                    (tp, r)
                })
            })
            .collect();
        Ok(in_order(parts.iter(), results, "OffsetCommit"))
    }

    /// Lag per partition, like `kafka-consumer-groups.sh --describe`: every
    /// partition the group committed or a member owns, with the committed offset,
    /// the log end offset and their difference.
    pub async fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>, AdminError> {
        let description = self.describe_group(group).await?;
        let committed: std::collections::BTreeMap<TopicPartition, i64> =
            self.group_offsets(group).await?.into_iter().collect();
        let mut owners: std::collections::BTreeMap<TopicPartition, Option<String>> =
            committed.keys().map(|tp| (tp.clone(), None)).collect();
        for m in &description.members {
            for tp in &m.assignment {
                owners.insert(tp.clone(), Some(m.member_id.clone()));
            }
        }
        let mut out = Vec::with_capacity(owners.len());
        for (tp, member_id) in owners {
            let log_end = crate::consumer::list_offset(&self.cluster, &tp, Offset::End).await?;
            let c = committed.get(&tp).copied();
            out.push(PartitionLag {
                lag: c.map(|c| (log_end - c).max(0)),
                committed: c,
                log_end,
                member_id,
                partition: tp,
            });
        }
        Ok(out)
    }
}

fn topic_result(topic: &str, code: i16, message: Option<&StrBytes>) -> Result<(), AdminError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(AdminError::Topic {
            topic: topic.to_owned(),
            error,
            message: message.map(|m| m.to_string()),
        }),
    }
}

fn partition_error(tp: &TopicPartition, error: ResponseError) -> AdminError {
    AdminError::Partition {
        topic: tp.topic.clone(),
        partition: tp.partition,
        error,
    }
}

/// Partitions grouped by topic, topics and partitions sorted.
fn by_topic(parts: &[TopicPartition]) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
    for tp in parts {
        out.entry(tp.topic.clone()).or_default().push(tp.clone());
    }
    for ps in out.values_mut() {
        ps.sort();
        ps.dedup();
    }
    out
}

/// The results for `order`, in that order; a partition the broker left out gets
/// [`AdminError::MissingResult`].
fn in_order<'a, T: Clone>(
    order: impl Iterator<Item = &'a TopicPartition>,
    results: BTreeMap<TopicPartition, Result<T, AdminError>>,
    api: &'static str,
) -> Vec<(TopicPartition, Result<T, AdminError>)> {
    order
        .map(|tp| {
            let r = results.get(tp).cloned().unwrap_or_else(|| {
                Err(AdminError::MissingResult {
                    api,
                    what: tp.to_string(),
                })
            });
            (tp.clone(), r)
        })
        .collect()
}
