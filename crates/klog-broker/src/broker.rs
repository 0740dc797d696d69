//! The broker's request handlers: one method per API, each turning a decoded request
//! into a response. No socket code lives here (see [`crate::server`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use klog_codec::protocol::fetch::{FetchPart, FetchPartitionHeader, FetchResponseWriter};
use klog_codec::protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use klog_codec::protocol::messages::api_versions_response::ApiVersion;
use klog_codec::protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use klog_codec::protocol::messages::create_topics_request::CreatableTopic;
use klog_codec::protocol::messages::create_topics_response::CreatableTopicResult;
use klog_codec::protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use klog_codec::protocol::messages::delete_topics_response::DeletableTopicResult;
use klog_codec::protocol::messages::describe_cluster_response::DescribeClusterBroker;
use klog_codec::protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use klog_codec::protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use klog_codec::protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalAlterResourceResponse;
use klog_codec::protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use klog_codec::protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use klog_codec::protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use klog_codec::protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, ApiVersionsResponse, BrokerId,
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, FetchRequest,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceResponse, ProducerId, TopicName,
};
use klog_codec::protocol::produce::ProduceData;
use klog_codec::protocol::{RequestHeader, ResponseError, StrBytes, versions};
use klog_storage::{FileRegion, LogManager, ReadError, TopicPartition};
use tokio::sync::Notify;

use crate::assignment;
use crate::config::BrokerConfig;
use crate::configs::{self, AlterOp, ConfigEntry, TopicConfig};
use crate::partition::{CommitWait, Partition};
use crate::policy::{CreateTopicPolicy, NewTopic};
use crate::producer_ids::ProducerIdAllocator;
use crate::rules::Refusal;
use crate::topics::{self, TopicMeta};
use klog_replication::ProduceOutcome;

/// Milliseconds since the Unix epoch: the broker's clock, read only here.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// A topic with its partitions.
#[derive(Debug)]
pub struct Topic {
    /// Persistent description.
    pub meta: TopicMeta,
    /// Partitions, by index.
    pub partitions: Vec<Arc<Partition>>,
    /// The effective configuration (broker defaults and the topic's overrides).
    pub config: TopicConfig,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A log dir or the metadata in it could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Opening the partition logs failed.
    #[error("opening logs: {0}")]
    Logs(#[from] klog_storage::OpenError),
}

/// A Produce request whose batches are appended and whose response waits for
/// fsyncs and the high watermark; see [`Broker::start_produce`].
#[derive(Debug)]
pub struct PendingProduce {
    acks: i16,
    /// When `acks=-1` stops waiting for the high watermark.
    deadline: Instant,
    responses: Vec<TopicProduceResponse>,
    /// `((topic, partition) index in responses, partition, offset)` to wait for.
    waits: Vec<((usize, usize), Arc<Partition>, i64)>,
    /// Same, for batches the flush policy wants on disk first.
    syncs: Vec<((usize, usize), Arc<Partition>, i64)>,
}

impl PendingProduce {
    /// Waits for what the request needs and returns its response (`None` for
    /// `acks=0`).
    pub async fn finish(mut self) -> Option<ProduceResponse> {
        for ((t, p), partition, offset) in std::mem::take(&mut self.syncs) {
            if let Err(error_code) = partition.sync_to(offset).await
                && let Some(resp) = self.partition_response(t, p)
            {
                resp.error_code = error_code;
            }
        }
        if self.acks == 0 {
            return None;
        }
        for ((t, p), partition, offset) in std::mem::take(&mut self.waits) {
            let outcome = wait_committed(&partition, offset, self.deadline).await;
            if outcome != ProduceOutcome::Committed
                && let Some(resp) = self.partition_response(t, p)
            {
                resp.error_code = outcome.code();
            }
        }
        Some(ProduceResponse::default().with_responses(self.responses))
    }

    fn partition_response(&mut self, t: usize, p: usize) -> Option<&mut PartitionProduceResponse> {
        self.responses
            .get_mut(t)
            .and_then(|t| t.partition_responses.get_mut(p))
    }
}

/// What a request produces for the connection.
#[derive(Debug)]
pub enum Reply {
    /// Nothing to send (Produce with acks=0).
    None,
    /// A whole encoded response frame.
    Frame(Bytes),
    /// A Fetch response: bytes and file regions, in order.
    Fetch(Vec<FetchPart<FileRegion>>),
}

/// The broker: configuration, logs and topic metadata, shared by all connections.
pub struct Broker {
    config: BrokerConfig,
    logs: LogManager,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises topic creation and deletion (and writes of the topics file).
    admin: Mutex<()>,
    producer_ids: Mutex<ProducerIdAllocator>,
    cluster_id: String,
    groups: crate::groups::Groups,
    create_topic_policy: Option<Box<dyn CreateTopicPolicy>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Broker {
    /// Opens (or creates) the log dirs, recovers every partition and loads topics.
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>, StartError> {
        Self::open_inner(config, None)
    }

    /// As [`Broker::open`], with a policy every topic a client creates must pass
    /// (see [`crate::policy`]).
    pub fn open_with_policy(
        config: BrokerConfig,
        policy: impl CreateTopicPolicy,
    ) -> Result<Arc<Self>, StartError> {
        Self::open_inner(config, Some(Box::new(policy)))
    }

    fn open_inner(
        config: BrokerConfig,
        create_topic_policy: Option<Box<dyn CreateTopicPolicy>>,
    ) -> Result<Arc<Self>, StartError> {
        let first = config
            .log_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("."));
        for dir in &config.log_dirs {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let metas = topics::load(&first).map_err(io_err(&first))?;
        let by_name: BTreeMap<String, TopicMeta> =
            metas.iter().map(|m| (m.name.clone(), m.clone())).collect();
        let now = now_ms();
        let logs = LogManager::open(
            &config.log_dirs,
            |tp: &TopicPartition| match by_name.get(&tp.topic) {
                Some(meta) => TopicConfig::lenient(&config, &meta.overrides).storage_log_config(),
                None => config.log.clone(),
            },
            now,
        )?;
        let producer_ids = ProducerIdAllocator::open(&first).map_err(io_err(&first))?;
        let cluster_id = format!("klog-{}", config.node_id);
        let groups = crate::groups::Groups::new(&config);
        let broker = Self {
            config,
            logs,
            topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            producer_ids: Mutex::new(producer_ids),
            cluster_id,
            groups,
            create_topic_policy,
        };
        let mut known = std::collections::BTreeSet::new();
        for meta in metas {
            let topic = broker.open_topic(meta, now)?;
            for p in &topic.partitions {
                known.insert(TopicPartition::new(p.topic.clone(), p.index));
            }
            broker
                .topics
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(topic.meta.name.clone(), topic);
        }
        for tp in broker.logs.partitions() {
            if !known.contains(&tp) {
                tracing::warn!(partition = %tp, "log folder belongs to no known topic; left untouched");
            }
        }
        broker.groups.start(&broker)?;
        Ok(Arc::new(broker))
    }

    /// Consumer groups: the group coordinator and its persistence.
    pub fn groups(&self) -> &crate::groups::Groups {
        &self.groups
    }

    fn open_topic(&self, meta: TopicMeta, now: i64) -> Result<Arc<Topic>, StartError> {
        let config = TopicConfig::lenient(&self.config, &meta.overrides);
        self.open_partitions(meta, config, Vec::new(), now)
    }

    /// Builds a topic from `existing` partitions plus new ones up to
    /// `meta.partitions`, creating (or reopening) their logs.
    fn open_partitions(
        &self,
        meta: TopicMeta,
        config: TopicConfig,
        existing: Vec<Arc<Partition>>,
        now: i64,
    ) -> Result<Arc<Topic>, StartError> {
        let log_config = config.storage_log_config();
        let mut partitions = existing;
        for index in partitions.len() as i32..meta.partitions {
            let tp = TopicPartition::new(meta.name.clone(), index);
            let log = match self.logs.get(&tp) {
                Some(log) => log,
                None => self.logs.create(tp, log_config.clone(), now)?,
            };
            partitions.push(Arc::new(Partition::new(
                meta.name.clone(),
                index,
                log,
                self.config.node_id,
                config.leader_config(&self.config),
            )));
        }
        Ok(Arc::new(Topic {
            meta,
            partitions,
            config,
        }))
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The partition logs.
    pub fn logs(&self) -> &LogManager {
        &self.logs
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn topic_list(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn store_topics(&self) -> std::io::Result<()> {
        self.store_topics_with(None)
    }

    /// Writes the topics file as the map stands, with `replacement` in place of the
    /// topic of the same name.
    fn store_topics_with(&self, replacement: Option<&TopicMeta>) -> std::io::Result<()> {
        let first = self.config.log_dirs.first().cloned().unwrap_or_default();
        let list = self.topic_list();
        let metas = list.iter().map(|t| match replacement {
            Some(r) if r.name == t.meta.name => r,
            _ => &t.meta,
        });
        topics::store(&first, metas)
    }

    /// Replaces a topic's entry (new overrides and/or more partitions): persists it
    /// first, so that nothing changes if the file cannot be written, then swaps it in
    /// and hands the new log config to every partition log. The caller holds `admin`.
    fn replace_topic(&self, topic: Arc<Topic>) -> Result<(), (i16, String)> {
        if let Err(e) = self.store_topics_with(Some(&topic.meta)) {
            tracing::error!(error = %e, "could not persist topic metadata");
            return Err((code(ResponseError::KafkaStorageError), e.to_string()));
        }
        let log_config = topic.config.storage_log_config();
        let leader_config = topic.config.leader_config(&self.config);
        let now = now_ms();
        for p in &topic.partitions {
            p.log().set_config(log_config.clone());
            p.set_leader_config(leader_config, now);
        }
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.meta.name.clone(), topic);
        Ok(())
    }

    /// Creates a topic. Returns the Kafka error code and message on refusal.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Option<Arc<Topic>>, (i16, String)> {
        if !topics::is_valid_topic_name(name) {
            return Err((
                code(ResponseError::InvalidTopicException),
                format!("invalid topic name {name:?}"),
            ));
        }
        let partitions = if partitions == -1 {
            self.config.num_partitions
        } else {
            partitions
        };
        if partitions <= 0 {
            return Err((
                code(ResponseError::InvalidPartitions),
                format!("number of partitions must be positive, got {partitions}"),
            ));
        }
        let replication_factor = if replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        if replication_factor != 1 {
            return Err((
                code(ResponseError::InvalidReplicationFactor),
                format!(
                    "replication factor {replication_factor} is larger than the 1 available broker"
                ),
            ));
        }
        TopicConfig::strict(&self.config, &overrides)
            .map_err(|(k, e)| (code(ResponseError::InvalidConfig), format!("{k}: {e}")))?;
        if let Some(policy) = &self.create_topic_policy
            && name != klog_coordinator::OFFSETS_TOPIC
        {
            policy
                .validate(&NewTopic {
                    name,
                    partitions,
                    replication_factor,
                    configs: &overrides,
                })
                .map_err(|e| (code(ResponseError::PolicyViolation), e))?;
        }
        let _guard = lock(&self.admin);
        if self.topic(name).is_some() {
            return Err((
                code(ResponseError::TopicAlreadyExists),
                format!("topic {name:?} already exists"),
            ));
        }
        if validate_only {
            return Ok(None);
        }
        let meta = TopicMeta {
            name: name.to_owned(),
            partitions,
            overrides,
        };
        let topic = self
            .open_topic(meta, now_ms())
            .map_err(|e| (code(ResponseError::KafkaStorageError), e.to_string()))?;
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), topic.clone());
        if let Err(e) = self.store_topics() {
            tracing::error!(error = %e, "could not persist topic metadata");
            return Err((code(ResponseError::KafkaStorageError), e.to_string()));
        }
        tracing::info!(topic = name, partitions, "created topic");
        Ok(Some(topic))
    }

    /// Deletes a topic and its partition folders.
    pub fn delete_topic(&self, name: &str) -> Result<(), i16> {
        let guard = lock(&self.admin);
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or(code(ResponseError::UnknownTopicOrPartition))?;
        if let Err(e) = self.store_topics() {
            tracing::error!(error = %e, "could not persist topic metadata");
        }
        for p in &topic.partitions {
            let tp = TopicPartition::new(name.to_owned(), p.index);
            if let Err(e) = self.logs.delete(&tp) {
                tracing::error!(partition = %tp, error = %e, "could not delete partition folder");
            }
        }
        drop(guard);
        self.groups.topic_deleted(self, name);
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// The topic, created with broker defaults if it does not exist and
    /// `auto.create.topics.enable` (and the request) allow it.
    fn topic_or_create(&self, name: &str, allow: bool) -> Result<Arc<Topic>, i16> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if !(allow && self.config.auto_create_topics) {
            return Err(code(ResponseError::UnknownTopicOrPartition));
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), false) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(code(ResponseError::UnknownTopicOrPartition)),
            // Lost a race with another creator: use theirs.
            Err((c, _)) if c == code(ResponseError::TopicAlreadyExists) => self
                .topic(name)
                .ok_or(code(ResponseError::UnknownTopicOrPartition)),
            Err((c, _)) => Err(c),
        }
    }

    /// Whether `topic` exists and has a partition `index` (nothing is created).
    pub fn has_partition(&self, topic: &str, index: i32) -> bool {
        self.partition(topic, index, false).is_ok()
    }

    fn partition(&self, topic: &str, index: i32, create: bool) -> Result<Arc<Partition>, i16> {
        let t = self.topic_or_create(topic, create)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .cloned()
            .ok_or(code(ResponseError::UnknownTopicOrPartition))
    }

    // ----------------------------------------------------------------------------
    // ApiVersions

    /// ApiVersions: the version table. An unsupported version gets
    /// UNSUPPORTED_VERSION, encoded by the caller in the v0 layout.
    ///
    /// Feature levels (KIP-584, v3 tagged fields): none are reported, because klog
    /// has none it could truthfully report at the versions it serves.
    /// `metadata.version` comes with the controller's metadata log. A
    /// `transaction.version` range of 0..0 would say the classic transaction
    /// protocol works (level 0 is Kafka's pre-KIP-890 transactions, not "no
    /// transactions"), and a supported minimum of 0 is not allowed in ApiVersions v3
    /// anyway (KAFKA-17011: Kafka 3.9 lists such features from v4 only). There is no
    /// finalized-features state, so the epoch is -1, "unknown" in KIP-584.
    pub fn api_versions(&self, error_code: i16) -> ApiVersionsResponse {
        let api_keys = versions::SUPPORTED_APIS
            .iter()
            .map(|s| {
                ApiVersion::default()
                    .with_api_key(s.key as i16)
                    .with_min_version(s.min)
                    .with_max_version(s.max)
            })
            .collect();
        ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(api_keys)
            .with_supported_features(Vec::new())
            .with_finalized_features_epoch(-1)
            .with_finalized_features(Vec::new())
    }

    // ----------------------------------------------------------------------------
    // Metadata

    /// Metadata: brokers (this node), controller (this node) and topics.
    pub fn metadata(&self, req: &MetadataRequest, version: i16) -> MetadataResponse {
        let (host, port) = &self.config.advertised;
        let node = self.config.node_id;
        let brokers = vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node))
                .with_host(StrBytes::from_string(host.clone()))
                .with_port(i32::from(*port)),
        ];
        let allow_create = version < 4 || req.allow_auto_topic_creation;
        let topics: Vec<MetadataResponseTopic> = match &req.topics {
            None => self
                .topic_list()
                .iter()
                .map(|t| self.topic_metadata(&t.meta.name, Ok(t.clone()), version))
                .collect(),
            Some(list) => list
                .iter()
                .filter_map(|t| t.name.as_ref())
                .map(|name| {
                    let name = name.0.as_str();
                    let found = if topics::is_valid_topic_name(name) {
                        self.topic_or_create(name, allow_create)
                    } else {
                        Err(code(ResponseError::InvalidTopicException))
                    };
                    self.topic_metadata(name, found, version)
                })
                .collect(),
        };
        let mut resp = MetadataResponse::default()
            .with_brokers(brokers)
            .with_controller_id(BrokerId(node))
            .with_topics(topics);
        if version >= 2 {
            resp.cluster_id = Some(StrBytes::from_string(self.cluster_id.clone()));
        }
        resp
    }

    fn topic_metadata(
        &self,
        name: &str,
        topic: Result<Arc<Topic>, i16>,
        version: i16,
    ) -> MetadataResponseTopic {
        let base = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
            .with_is_internal(name == klog_coordinator::OFFSETS_TOPIC);
        match topic {
            Err(error_code) => base.with_error_code(error_code),
            Ok(t) => base.with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        let isr: Vec<BrokerId> = p.isr().into_iter().map(BrokerId).collect();
                        let mut m = MetadataResponsePartition::default()
                            .with_partition_index(p.index)
                            .with_leader_id(BrokerId(self.config.node_id))
                            .with_replica_nodes(vec![BrokerId(self.config.node_id)])
                            .with_isr_nodes(isr);
                        if version >= 7 {
                            m.leader_epoch = p.leader_epoch();
                        }
                        m
                    })
                    .collect(),
            ),
        }
    }

    // ----------------------------------------------------------------------------
    // Produce

    /// Produce: validates and appends one batch per partition; `acks=-1` waits for
    /// the high watermark. Returns `None` for `acks=0` (no response is sent).
    pub async fn produce(&self, req: ProduceData, version: i16) -> Option<ProduceResponse> {
        self.start_produce(req, version).finish().await
    }

    /// The first half of [`Broker::produce`]: validates and appends every
    /// partition's batches now, and returns what is left before the response can go:
    /// the fsyncs the flush policy wants (group commit) and, for `acks=-1`, the high
    /// watermark. A connection can read and append its next request while this one
    /// waits, so a producer's pipelined requests share fsyncs.
    pub fn start_produce(&self, req: ProduceData, version: i16) -> PendingProduce {
        let acks = req.acks;
        let now = now_ms();
        let mut pending = PendingProduce {
            acks,
            deadline: Instant::now()
                + Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0)),
            responses: Vec::with_capacity(req.topics.len()),
            waits: Vec::new(),
            syncs: Vec::new(),
        };
        for topic_data in req.topics {
            let name = topic_data.name;
            let mut parts = Vec::with_capacity(topic_data.partitions.len());
            for pd in topic_data.partitions {
                let mut resp = PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                let result = self.produce_partition(&name, pd.index, pd.records, acks, now);
                let at = (pending.responses.len(), parts.len());
                match result {
                    Ok((partition, appended)) => {
                        resp.base_offset = appended.base_offset;
                        resp.log_append_time_ms = appended.log_append_time.unwrap_or(-1);
                        if version >= 5 {
                            resp.log_start_offset = appended.log_start_offset;
                        }
                        if let Some(offset) = appended.sync_to {
                            pending.syncs.push((at, partition.clone(), offset));
                        }
                        if acks == -1 {
                            pending.waits.push((at, partition, appended.next_offset));
                        }
                    }
                    Err(refusal) => {
                        resp.error_code = refusal.code;
                        // KIP-467 fields, Produce v8+.
                        if version >= 8 {
                            resp.error_message = refusal.message().map(StrBytes::from_string);
                            resp.record_errors = refusal
                                .record_errors
                                .into_iter()
                                .map(|(index, message)| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(index)
                                        .with_batch_index_error_message(Some(
                                            StrBytes::from_string(message),
                                        ))
                                })
                                .collect();
                        }
                    }
                }
                parts.push(resp);
            }
            pending.responses.push(
                TopicProduceResponse::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partition_responses(parts),
            );
        }
        pending
    }

    fn produce_partition(
        &self,
        topic: &str,
        index: i32,
        records: Option<BytesMut>,
        acks: i16,
        now: i64,
    ) -> Result<(Arc<Partition>, crate::partition::Appended), Refusal> {
        if !matches!(acks, -1..=1) {
            return Err(code(ResponseError::InvalidRequiredAcks).into());
        }
        if !topics::is_valid_topic_name(topic) {
            return Err(code(ResponseError::InvalidTopicException).into());
        }
        let t = self.topic_or_create(topic, true)?;
        let partition = usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .cloned()
            .ok_or(code(ResponseError::UnknownTopicOrPartition))?;
        if acks == -1 {
            partition.check_acks_all()?;
        }
        let mut records = records.ok_or(code(ResponseError::CorruptMessage))?;
        if t.config.cleanup.compact {
            let name = format!("{topic}-{index}");
            crate::rules::require_keys(&records, &name)?;
        }
        // The records are this partition's own part of the request frame: batch
        // headers are rewritten in place (base offset, leader epoch), no copy.
        let appended = partition.append(&mut records, now)?;
        Ok((partition, appended))
    }

    // ----------------------------------------------------------------------------
    // Fetch

    /// Fetch: whole batches from each partition, never past the high watermark for
    /// consumers; waits up to `max_wait_ms` for `min_bytes`, woken by appends.
    pub async fn fetch(
        &self,
        header: &RequestHeader,
        req: &FetchRequest,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Vec<FetchPart<FileRegion>> {
        let deadline =
            Instant::now() + Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
        let min_bytes = u64::try_from(req.min_bytes).unwrap_or(0);
        let waiter = Arc::new(Notify::new());
        let mut shutdown = shutdown.clone();
        loop {
            // Register before reading so that an append between the read and the
            // wait still wakes us.
            let partitions: Vec<Arc<Partition>> = req
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .filter_map(|p| self.partition(t.topic.0.as_str(), p.partition, false).ok())
                })
                .collect();
            for p in &partitions {
                p.register_waiter(&waiter);
            }
            let (parts, total) = self.fetch_once(header, req);
            if total >= min_bytes || Instant::now() >= deadline || *shutdown.borrow() {
                return parts;
            }
            tokio::select! {
                _ = tokio::time::timeout_at(deadline.into(), waiter.notified()) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn fetch_once(
        &self,
        header: &RequestHeader,
        req: &FetchRequest,
    ) -> (Vec<FetchPart<FileRegion>>, u64) {
        let is_replica = req.replica_id.0 >= 0;
        let read_committed = req.isolation_level == 1;
        let mut budget = u64::try_from(req.max_bytes).unwrap_or(0);
        let mut total: u64 = 0;
        let mut w = FetchResponseWriter::new(header, 0, 0, req.topics.len() as i32);
        for t in &req.topics {
            let name = t.topic.0.as_str();
            w.topic(name, t.partitions.len() as i32);
            for fp in &t.partitions {
                let mut ph = FetchPartitionHeader {
                    partition_index: fp.partition,
                    error_code: 0,
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                    read_committed,
                };
                let partition = match self.partition(name, fp.partition, false) {
                    Ok(p) => p,
                    Err(e) => {
                        ph.error_code = e;
                        w.partition_error(&ph);
                        continue;
                    }
                };
                let log = partition.log();
                let hw = log.high_watermark();
                ph.high_watermark = hw;
                ph.last_stable_offset = hw;
                ph.log_start_offset = log.log_start_offset();
                let max_offset = if is_replica { log.log_end_offset() } else { hw };
                let limit = u64::try_from(fp.partition_max_bytes)
                    .unwrap_or(0)
                    .min(budget);
                // KIP-74: the first batch of the response is sent whole even when it
                // is larger than the limits; later partitions get only what fits.
                if limit == 0 && total > 0 {
                    w.partition_error(&ph);
                    continue;
                }
                match log.read(fp.fetch_offset, limit as usize, max_offset) {
                    Ok(read) => {
                        drop(log);
                        total += read.total_bytes;
                        budget = budget.saturating_sub(read.total_bytes);
                        let regions = read.regions.into_iter().map(|r| {
                            let len = r.len;
                            (r, len)
                        });
                        w.partition(&ph, regions);
                    }
                    Err(ReadError::OffsetOutOfRange { .. }) => {
                        ph.error_code = code(ResponseError::OffsetOutOfRange);
                        w.partition_error(&ph);
                    }
                    Err(e) => {
                        tracing::error!(topic = name, partition = fp.partition, error = %e, "read failed");
                        ph.error_code = code(ResponseError::KafkaStorageError);
                        w.partition_error(&ph);
                    }
                }
            }
        }
        (w.finish(), total)
    }

    // ----------------------------------------------------------------------------
    // ListOffsets

    /// ListOffsets: earliest (-2), latest (-1), the record with the largest
    /// timestamp (-3, KIP-734, v7+) or the first offset with a timestamp at or after
    /// the one given.
    pub fn list_offsets(&self, req: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.as_str();
                let partitions = t
                    .partitions
                    .iter()
                    .map(|lp| {
                        let mut r = ListOffsetsPartitionResponse::default()
                            .with_partition_index(lp.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1);
                        match self.partition(name, lp.partition_index, false) {
                            Err(e) => r.error_code = e,
                            Ok(p) => {
                                if version >= 4 {
                                    r.leader_epoch = p.leader_epoch();
                                }
                                let log = p.log();
                                let by_time = match lp.timestamp {
                                    -2 => {
                                        r.offset = log.log_start_offset();
                                        None
                                    }
                                    -1 => {
                                        r.offset = log.high_watermark();
                                        None
                                    }
                                    // KIP-734, from ListOffsets v7.
                                    -3 if version < 7 => {
                                        r.error_code = code(ResponseError::UnsupportedVersion);
                                        None
                                    }
                                    -3 => Some(offset_of_max_timestamp(&log)),
                                    ts if ts >= 0 => Some(offset_for_timestamp(&log, ts)),
                                    _ => {
                                        r.error_code = code(ResponseError::InvalidRequest);
                                        None
                                    }
                                };
                                match by_time {
                                    Some(Ok(Some((offset, found)))) => {
                                        r.offset = offset;
                                        r.timestamp = found;
                                    }
                                    Some(Err(e)) => {
                                        tracing::error!(topic = name, error = %e, "time index lookup failed");
                                        r.error_code = code(ResponseError::KafkaStorageError);
                                    }
                                    Some(Ok(None)) | None => {}
                                }
                            }
                        }
                        r
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }

    // ----------------------------------------------------------------------------
    // Admin

    /// CreateTopics.
    pub fn create_topics(&self, req: &CreateTopicsRequest) -> CreateTopicsResponse {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.as_str();
                let mut r = CreatableTopicResult::default().with_name(t.name.clone());
                let (num_partitions, replication_factor) = if t.assignments.is_empty() {
                    (t.num_partitions, t.replication_factor)
                } else {
                    match self.manual_assignment(t) {
                        Ok(sizes) => sizes,
                        Err((error_code, message)) => {
                            r.error_code = error_code;
                            r.error_message = Some(StrBytes::from_string(message));
                            return r;
                        }
                    }
                };
                let mut overrides = BTreeMap::new();
                for c in &t.configs {
                    match &c.value {
                        Some(v) => {
                            overrides.insert(c.name.as_str().to_owned(), v.as_str().to_owned());
                        }
                        None => {
                            r.error_code = code(ResponseError::InvalidConfig);
                            r.error_message = Some(StrBytes::from_string(format!(
                                "{}: null value",
                                c.name.as_str()
                            )));
                            return r;
                        }
                    }
                }
                match self.create_topic(
                    name,
                    num_partitions,
                    replication_factor,
                    overrides,
                    req.validate_only,
                ) {
                    // num_partitions / replication_factor in the result are v5+
                    // fields; the versions served leave them at their defaults.
                    Ok(_) => {
                        configs::warn_deprecated(name, t.configs.iter().map(|c| c.name.as_str()))
                    }
                    Err((error_code, message)) => {
                        r.error_code = error_code;
                        r.error_message = Some(StrBytes::from_string(message));
                    }
                }
                r
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }

    /// The partition count and replication factor of a CreateTopics topic given
    /// with `assignments`: those must come without `num_partitions` and
    /// `replication_factor` (both -1, else INVALID_REQUEST, as Kafka) and name only
    /// brokers that exist, this one on a single node
    /// (INVALID_REPLICA_ASSIGNMENT otherwise; see [`assignment`]).
    fn manual_assignment(&self, t: &CreatableTopic) -> Result<(i32, i16), (i16, String)> {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                code(ResponseError::InvalidRequest),
                "both num_partitions or replication_factor and assignments were set; \
                 only one can be used"
                    .to_owned(),
            ));
        }
        let given: Vec<(i32, Vec<i32>)> = t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        assignment::check_topic_assignment(&given, &[self.config.node_id])
            .map_err(|e| (code(ResponseError::InvalidReplicaAssignment), e))
    }

    /// Grows a topic to `count` partitions (never shrinks: INVALID_PARTITIONS). New
    /// partition folders are created and the topics file is rewritten before the new
    /// partitions become visible in Metadata.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        let _guard = lock(&self.admin);
        let topic = self.topic(name).ok_or_else(|| {
            (
                code(ResponseError::UnknownTopicOrPartition),
                format!("topic {name:?} does not exist"),
            )
        })?;
        let current = topic.meta.partitions;
        if count <= current {
            return Err((
                code(ResponseError::InvalidPartitions),
                format!("topic {name:?} has {current} partitions; the count can only grow"),
            ));
        }
        if name == klog_coordinator::OFFSETS_TOPIC {
            // Groups are mapped to its partitions by count: changing it would lose them.
            return Err((
                code(ResponseError::InvalidRequest),
                format!("the partition count of {name} cannot change"),
            ));
        }
        if let Some(assignments) = assignments {
            let added = count - current;
            if assignments.len() != added as usize {
                return Err((
                    code(ResponseError::InvalidReplicaAssignment),
                    format!(
                        "{added} partitions added but {} assignments given",
                        assignments.len()
                    ),
                ));
            }
            // Every topic has one replica on one node (create_topic refuses more).
            let factor = 1;
            for a in assignments {
                assignment::check_replicas(a, &[self.config.node_id])
                    .and_then(|()| {
                        if a.len() == factor {
                            Ok(())
                        } else {
                            Err(format!(
                                "replicas {a:?}: the topic's replication factor is {factor}"
                            ))
                        }
                    })
                    .map_err(|e| (code(ResponseError::InvalidReplicaAssignment), e))?;
            }
        }
        if validate_only {
            return Ok(());
        }
        let meta = TopicMeta {
            partitions: count,
            ..topic.meta.clone()
        };
        let grown = self
            .open_partitions(
                meta,
                topic.config.clone(),
                topic.partitions.clone(),
                now_ms(),
            )
            .map_err(|e| (code(ResponseError::KafkaStorageError), e.to_string()))?;
        self.replace_topic(grown)?;
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// CreatePartitions.
    pub fn create_partitions_request(
        &self,
        req: &CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let results = req
            .topics
            .iter()
            .map(|t| {
                let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| {
                    a.iter()
                        .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                });
                let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                if let Err((error_code, message)) = self.create_partitions(
                    t.name.0.as_str(),
                    t.count,
                    assignments.as_deref(),
                    req.validate_only,
                ) {
                    r.error_code = error_code;
                    r.error_message = Some(StrBytes::from_string(message));
                }
                r
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }

    /// DeleteRecords: moves each partition's log start offset up to the offset given
    /// (-1: the high watermark), deleting the segments wholly below it. An offset
    /// above the high watermark is OFFSET_OUT_OF_RANGE. The new log start offsets are
    /// checkpointed before the answer, so they survive a crash.
    pub fn delete_records(&self, req: &DeleteRecordsRequest) -> DeleteRecordsResponse {
        let mut changed = false;
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.as_str();
                let partitions = t
                    .partitions
                    .iter()
                    .map(|dp| {
                        let mut r = DeleteRecordsPartitionResult::default()
                            .with_partition_index(dp.partition_index)
                            .with_low_watermark(-1);
                        match self.partition(name, dp.partition_index, false) {
                            Err(e) => r.error_code = e,
                            Ok(p) => {
                                let mut log = p.log();
                                let offset = match dp.offset {
                                    -1 => log.high_watermark(),
                                    o => o,
                                };
                                let before = log.log_start_offset();
                                let result = if offset < 0 {
                                    Err(klog_storage::StorageError::OffsetOutOfRange {
                                        offset,
                                        low: before,
                                        high: log.high_watermark(),
                                    })
                                } else {
                                    log.delete_records_before(offset)
                                };
                                match result {
                                    Ok(()) => {
                                        r.low_watermark = log.log_start_offset();
                                        changed |= r.low_watermark != before;
                                    }
                                    Err(klog_storage::StorageError::OffsetOutOfRange { .. }) => {
                                        r.error_code = code(ResponseError::OffsetOutOfRange)
                                    }
                                    Err(e) => {
                                        tracing::error!(topic = name, partition = dp.partition_index, error = %e, "delete records failed");
                                        r.error_code = code(ResponseError::KafkaStorageError);
                                    }
                                }
                            }
                        }
                        r
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        if changed && let Err(e) = self.logs.checkpoint() {
            tracing::error!(error = %e, "writing checkpoints after DeleteRecords failed");
        }
        DeleteRecordsResponse::default().with_topics(topics)
    }

    /// DescribeCluster: this node as the only broker and the controller. Asking for
    /// controller endpoints (v1 `endpoint_type` 2) gets UNSUPPORTED_ENDPOINT_TYPE, as
    /// from a Kafka broker. ACLs do not exist, so authorized operations are not
    /// reported.
    pub fn describe_cluster(
        &self,
        req: &DescribeClusterRequest,
        version: i16,
    ) -> DescribeClusterResponse {
        let (host, port) = &self.config.advertised;
        let mut resp = DescribeClusterResponse::default();
        if version >= 1 {
            resp.endpoint_type = req.endpoint_type;
            if req.endpoint_type != 1 {
                resp.error_code = code(ResponseError::UnsupportedEndpointType);
                return resp;
            }
        }
        resp.with_cluster_id(StrBytes::from_string(self.cluster_id.clone()))
            .with_controller_id(BrokerId(self.config.node_id))
            .with_brokers(vec![
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(self.config.node_id))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(i32::from(*port)),
            ])
    }

    /// DescribeLogDirs: every configured log dir with the size in bytes of each
    /// partition it holds (all topics when `topics` is null). Offset lag is 0: there
    /// are no future replicas being moved between dirs.
    pub fn describe_log_dirs(&self, req: &DescribeLogDirsRequest) -> DescribeLogDirsResponse {
        let wanted = |topic: &str, partition: i32| match &req.topics {
            None => true,
            Some(list) => list
                .iter()
                .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
        };
        // log dir -> topic -> partitions
        let mut by_dir: BTreeMap<PathBuf, BTreeMap<String, Vec<DescribeLogDirsPartition>>> = self
            .config
            .log_dirs
            .iter()
            .map(|d| (d.clone(), BTreeMap::new()))
            .collect();
        for t in self.topic_list() {
            for p in &t.partitions {
                if !wanted(&t.meta.name, p.index) {
                    continue;
                }
                let (dir, size) = {
                    let log = p.log();
                    (log.dir().parent().map(PathBuf::from), log.size_bytes())
                };
                let Some(topics) = dir.and_then(|d| by_dir.get_mut(&d)) else {
                    continue;
                };
                topics.entry(t.meta.name.clone()).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                        .with_offset_lag(0),
                );
            }
        }
        let results = by_dir
            .into_iter()
            .map(|(dir, topics)| {
                DescribeLogDirsResult::default()
                    .with_log_dir(StrBytes::from_string(dir.display().to_string()))
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(name, partitions)| {
                                DescribeLogDirsTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(name)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    )
            })
            .collect();
        DescribeLogDirsResponse::default().with_results(results)
    }

    /// DeleteTopics.
    pub fn delete_topics(&self, req: &DeleteTopicsRequest) -> DeleteTopicsResponse {
        let responses = req
            .topic_names
            .iter()
            .map(|name| {
                let r = DeletableTopicResult::default().with_name(Some(name.clone()));
                match self.delete_topic(name.0.as_str()) {
                    Ok(()) => r,
                    Err(error_code) => r.with_error_code(error_code),
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    /// InitProducerId: a fresh producer id at epoch 0 for idempotent producers.
    /// Transactions are not supported.
    pub fn init_producer_id(&self, req: &InitProducerIdRequest) -> InitProducerIdResponse {
        let r = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
            None => {}
            // Kafka answers an empty transactional id with INVALID_REQUEST.
            Some("") => return r.with_error_code(code(ResponseError::InvalidRequest)),
            // Transactions are not supported: refuse as a broker whose ACLs forbid
            // them would, a fatal error clients report rather than retry.
            Some(_) => {
                return r.with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed));
            }
        }
        match lock(&self.producer_ids).allocate() {
            Ok(id) => r.with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Err(e) => {
                tracing::error!(error = %e, "could not allocate a producer id");
                r.with_error_code(code(ResponseError::KafkaStorageError))
            }
        }
    }

    /// DescribeConfigs for topics (resource type 2) and this broker (type 4): every
    /// config with its value, source and flags; synonyms when asked (v1+), type and
    /// documentation from v3.
    pub fn describe_configs(
        &self,
        req: &DescribeConfigsRequest,
        version: i16,
    ) -> DescribeConfigsResponse {
        let results = req
            .resources
            .iter()
            .map(|res| {
                let name = res.resource_name.as_str();
                let mut r = DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                let entries = match res.resource_type {
                    RESOURCE_TOPIC => match self.topic(name) {
                        Some(t) => configs::topic_entries(&self.config, &t.meta.overrides),
                        None => {
                            r.error_code = code(ResponseError::UnknownTopicOrPartition);
                            Vec::new()
                        }
                    },
                    RESOURCE_BROKER if self.is_this_broker(name) => {
                        configs::broker_entries(&self.config)
                    }
                    RESOURCE_BROKER => {
                        r.error_code = code(ResponseError::InvalidRequest);
                        r.error_message = Some(StrBytes::from_string(format!(
                            "this is broker {}, not {name}",
                            self.config.node_id
                        )));
                        Vec::new()
                    }
                    _ => {
                        r.error_code = code(ResponseError::InvalidRequest);
                        r.error_message = Some(StrBytes::from_static_str(
                            "only topic and broker configs exist",
                        ));
                        Vec::new()
                    }
                };
                let wanted = res.configuration_keys.as_ref();
                r.configs = entries
                    .into_iter()
                    .filter(|e| wanted.is_none_or(|w| w.iter().any(|k| k.as_str() == e.name)))
                    .map(|e| {
                        describe_entry(e, req.include_synonyms, req.include_documentation, version)
                    })
                    .collect();
                r
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    fn is_this_broker(&self, name: &str) -> bool {
        name.is_empty() || name == self.config.node_id.to_string()
    }

    /// Checks a non-topic resource of AlterConfigs / IncrementalAlterConfigs: broker
    /// configs are static in klog, other resource types do not exist.
    fn alter_other_resource(&self, resource_type: i8, name: &str) -> (i16, String) {
        match resource_type {
            RESOURCE_BROKER if self.is_this_broker(name) => (
                code(ResponseError::InvalidRequest),
                "broker configs are static in klog: set them in server.properties or with --set"
                    .to_owned(),
            ),
            RESOURCE_BROKER => (
                code(ResponseError::InvalidRequest),
                format!("this is broker {}, not {name}", self.config.node_id),
            ),
            _ => (
                code(ResponseError::InvalidRequest),
                format!("resource type {resource_type} has no alterable configs"),
            ),
        }
    }

    /// Changes one topic's overrides with `alter` (given the current ones), as one
    /// atomic step: validated whole, persisted, then applied to the open logs.
    fn alter_topic(
        &self,
        name: &str,
        validate_only: bool,
        alter: impl FnOnce(
            &BTreeMap<String, String>,
        )
            -> Result<(BTreeMap<String, String>, TopicConfig), configs::AlterError>,
    ) -> Result<(), (i16, String)> {
        let _guard = lock(&self.admin);
        let topic = self.topic(name).ok_or_else(|| {
            (
                code(ResponseError::UnknownTopicOrPartition),
                format!("topic {name:?} does not exist"),
            )
        })?;
        let (overrides, config) = alter(&topic.meta.overrides).map_err(|e| (e.code, e.message))?;
        if validate_only {
            return Ok(());
        }
        let meta = TopicMeta {
            overrides,
            ..topic.meta.clone()
        };
        self.replace_topic(Arc::new(Topic {
            meta,
            partitions: topic.partitions.clone(),
            config,
        }))?;
        tracing::info!(topic = name, "topic configs changed");
        Ok(())
    }

    /// AlterConfigs: replaces a topic's overrides with the entries given.
    pub fn alter_configs(&self, req: &AlterConfigsRequest) -> AlterConfigsResponse {
        let responses = req
            .resources
            .iter()
            .map(|res| {
                let name = res.resource_name.as_str();
                let result = if res.resource_type == RESOURCE_TOPIC {
                    let entries: Vec<(String, Option<String>)> = res
                        .configs
                        .iter()
                        .map(|c| {
                            (
                                c.name.as_str().to_owned(),
                                c.value.as_ref().map(|v| v.as_str().to_owned()),
                            )
                        })
                        .collect();
                    self.alter_topic(name, req.validate_only, |_| {
                        configs::replace_overrides(&self.config, &entries)
                    })
                    .inspect(|()| {
                        configs::warn_deprecated(name, entries.iter().map(|(k, _)| k.as_str()))
                    })
                } else {
                    Err(self.alter_other_resource(res.resource_type, name))
                };
                let mut r = AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                if let Err((error_code, message)) = result {
                    r.error_code = error_code;
                    r.error_message = Some(StrBytes::from_string(message));
                }
                r
            })
            .collect();
        AlterConfigsResponse::default().with_responses(responses)
    }

    /// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on a topic's
    /// overrides (KIP-339).
    pub fn incremental_alter_configs(
        &self,
        req: &IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let responses = req
            .resources
            .iter()
            .map(|res| {
                let name = res.resource_name.as_str();
                let result = if res.resource_type == RESOURCE_TOPIC {
                    let ops: Result<Vec<configs::AlterEntry>, (i16, String)> = res
                        .configs
                        .iter()
                        .map(|c| {
                            let op = AlterOp::from_code(c.config_operation).ok_or_else(|| {
                                (
                                    code(ResponseError::InvalidRequest),
                                    format!(
                                        "{}: unknown operation {}",
                                        c.name.as_str(),
                                        c.config_operation
                                    ),
                                )
                            })?;
                            Ok((
                                c.name.as_str().to_owned(),
                                op,
                                c.value.as_ref().map(|v| v.as_str().to_owned()),
                            ))
                        })
                        .collect();
                    ops.and_then(|ops| {
                        self.alter_topic(name, req.validate_only, |current| {
                            configs::alter_overrides(&self.config, current, &ops)
                        })
                        .inspect(|()| {
                            configs::warn_deprecated(name, ops.iter().map(|(k, _, _)| k.as_str()))
                        })
                    })
                } else {
                    Err(self.alter_other_resource(res.resource_type, name))
                };
                let mut r = IncrementalAlterResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                if let Err((error_code, message)) = result {
                    r.error_code = error_code;
                    r.error_message = Some(StrBytes::from_string(message));
                }
                r
            })
            .collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }

    /// Runs retention, time-based flushes and checkpoints once (the background
    /// tasks call this on their intervals).
    pub fn maintenance(&self, retention: bool, checkpoint: bool) {
        let now = now_ms();
        self.logs.flush_due(now);
        if retention {
            self.logs.run_retention(now);
        }
        if checkpoint && let Err(e) = self.logs.checkpoint() {
            tracing::error!(error = %e, "writing checkpoints failed");
        }
    }

    /// Flushes every log, writes checkpoints and the clean-shutdown marker.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.logs.shutdown()
    }

    /// ApiKeys klog answers, for logging unknown ones.
    pub fn is_known_api(api_key: i16) -> bool {
        ApiKey::try_from(api_key).is_ok()
    }
}

/// DescribeConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs resource type of a broker.
const RESOURCE_BROKER: i8 = 4;

/// One DescribeConfigs entry on the wire. Fields a version lacks stay at their
/// defaults (the message crate refuses to encode them otherwise).
fn describe_entry(
    e: ConfigEntry,
    synonyms: bool,
    documentation: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(Some(StrBytes::from_string(e.value)))
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8)
        .with_is_sensitive(false);
    if synonyms {
        r.synonyms = e
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(source as i8)
            })
            .collect();
    }
    if version >= 3 {
        r.config_type = e.ty as i8;
        if documentation {
            r.documentation = Some(StrBytes::from_static_str(e.doc));
        }
    }
    r
}

/// ListOffsets by time: the earliest committed offset whose record timestamp is at
/// or after `ts`, with that timestamp. The time index finds the first batch whose
/// max timestamp qualifies; that one batch is then read and decoded to find the
/// exact record (off the produce and fetch paths: ListOffsets is rare). `None` when
/// no committed record is that recent.
fn offset_for_timestamp(log: &klog_storage::Log, ts: i64) -> Result<Option<(i64, i64)>, ReadError> {
    let Some((base, max_ts)) = log.offset_for_timestamp(ts)? else {
        return Ok(None);
    };
    committed_record(log, base, max_ts, |records| {
        records.into_iter().find(|&(_, t)| t >= ts)
    })
}

/// ListOffsets -3 (KIP-734): the committed record with the largest timestamp, the
/// earliest one on ties, as (offset, timestamp). Storage finds the batch from the
/// maximum each segment keeps; that batch is decoded for the exact record. `None`
/// when no committed record has a timestamp.
fn offset_of_max_timestamp(log: &klog_storage::Log) -> Result<Option<(i64, i64)>, ReadError> {
    let Some((base, max_ts)) = log.max_timestamp_batch(log.high_watermark())? else {
        return Ok(None);
    };
    committed_record(log, base, max_ts, |records| {
        records
            .into_iter()
            .fold(None, |best: Option<(i64, i64)>, (offset, t)| match best {
                Some((_, bt)) if bt >= t => best,
                _ => Some((offset, t)),
            })
    })
}

/// Reads and decodes the batch at `base` and lets `pick` choose among its committed
/// records (log start offset to below the high watermark), given as (offset,
/// timestamp) in offset order. `None` when the batch is not below the high
/// watermark or `pick` finds nothing. A batch that cannot be decoded (it passed its
/// CRC check at append, so only a codec klog cannot read) answers with the batch's
/// own offset and max timestamp.
fn committed_record(
    log: &klog_storage::Log,
    base: i64,
    max_ts: i64,
    pick: impl FnOnce(Vec<(i64, i64)>) -> Option<(i64, i64)>,
) -> Result<Option<(i64, i64)>, ReadError> {
    let hw = log.high_watermark();
    let start = log.log_start_offset();
    if base >= hw {
        return Ok(None);
    }
    let bytes = log.read_to_vec(base, 1, hw)?;
    let records = klog_codec::RecordBatch::parse(&bytes)
        .ok()
        .and_then(|(batch, _)| batch.records().ok())
        .map(|records| {
            records
                .iter()
                .filter_map(Result::ok)
                .filter(|r| r.offset >= start && r.offset < hw)
                .map(|r| (r.offset, r.timestamp))
                .collect::<Vec<_>>()
        });
    Ok(match records {
        Some(records) => pick(records),
        None => Some((base.max(start), max_ts)),
    })
}

/// Waits until `partition`'s high watermark passes `offset` (an `acks=all`
/// produce), the replication state decides otherwise, or `deadline` passes. Woken
/// by the replication state's answer, not by a timer; the deadline's own timer
/// expires it.
async fn wait_committed(partition: &Partition, offset: i64, deadline: Instant) -> ProduceOutcome {
    let left = deadline.saturating_duration_since(Instant::now());
    let deadline_ms = now_ms().saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX));
    match partition.wait_committed(offset, deadline_ms) {
        CommitWait::Done(outcome) => outcome,
        CommitWait::Waiting { id, mut outcome } => {
            match tokio::time::timeout_at(deadline.into(), &mut outcome).await {
                Ok(Ok(o)) => o,
                // The partition went away with the wait unanswered.
                Ok(Err(_)) => ProduceOutcome::NotLeader,
                Err(_) => partition.expire_commit_wait(id, outcome),
            }
        }
    }
}
