//! The broker's request handlers: one method per API, each turning a decoded request
//! into a response. No socket code lives here (see [`crate::server`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use klog_codec::protocol::fetch::{FetchPart, FetchPartitionHeader, FetchResponseWriter};
use klog_codec::protocol::messages::api_versions_response::ApiVersion;
use klog_codec::protocol::messages::create_topics_response::CreatableTopicResult;
use klog_codec::protocol::messages::delete_topics_response::DeletableTopicResult;
use klog_codec::protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use klog_codec::protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use klog_codec::protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use klog_codec::protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use klog_codec::protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    FetchRequest, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, TopicName,
};
use klog_codec::protocol::{RequestHeader, ResponseError, StrBytes, versions};
use klog_storage::{FileRegion, LogConfig, LogManager, ReadError, TopicPartition};
use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::partition::Partition;
use crate::producer_ids::ProducerIdAllocator;
use crate::topics::{self, TopicMeta};

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
    /// Effective `min.insync.replicas`.
    pub min_insync: i32,
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
        let defaults = config.log.clone();
        let min_insync = config.min_insync_replicas;
        let logs = LogManager::open(
            &config.log_dirs,
            |tp: &TopicPartition| match by_name.get(&tp.topic) {
                Some(meta) => topics::effective_config(&defaults, min_insync, &meta.overrides).0,
                None => defaults.clone(),
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
        let (log_config, min_insync) = topics::effective_config(
            &self.config.log,
            self.config.min_insync_replicas,
            &meta.overrides,
        );
        let mut partitions = Vec::with_capacity(meta.partitions.max(0) as usize);
        for index in 0..meta.partitions {
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
            )));
        }
        Ok(Arc::new(Topic {
            meta,
            partitions,
            min_insync,
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
        let first = self.config.log_dirs.first().cloned().unwrap_or_default();
        let list = self.topic_list();
        topics::store(&first, list.iter().map(|t| &t.meta))
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
        let mut check = self.config.log.clone();
        let mut min_insync = self.config.min_insync_replicas;
        for (k, v) in &overrides {
            if !topics::is_storable(v) {
                return Err((
                    code(ResponseError::InvalidConfig),
                    format!("{k}: invalid characters"),
                ));
            }
            topics::apply_override(&mut check, &mut min_insync, k, v)
                .map_err(|e| (code(ResponseError::InvalidConfig), format!("{k}: {e}")))?;
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
        let _guard = lock(&self.admin);
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
    pub async fn produce(&self, req: ProduceRequest, version: i16) -> Option<ProduceResponse> {
        let acks = req.acks;
        let now = now_ms();
        let mut responses = Vec::with_capacity(req.topic_data.len());
        // (topic index, partition index, partition, offset to wait for)
        let mut waits: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
        for topic_data in req.topic_data {
            let name = topic_data.name.0.as_str().to_owned();
            let mut parts = Vec::with_capacity(topic_data.partition_data.len());
            for pd in topic_data.partition_data {
                let mut resp = PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                let result = self.produce_partition(&name, pd.index, pd.records, acks, now);
                match result {
                    Ok((partition, appended)) => {
                        resp.base_offset = appended.base_offset;
                        resp.log_append_time_ms = appended.log_append_time.unwrap_or(-1);
                        if version >= 5 {
                            resp.log_start_offset = appended.log_start_offset;
                        }
                        if acks == -1 {
                            waits.push((
                                responses.len(),
                                parts.len(),
                                partition,
                                appended.next_offset,
                            ));
                        }
                    }
                    Err(error_code) => resp.error_code = error_code,
                }
                parts.push(resp);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partition_responses(parts),
            );
        }
        if acks == 0 {
            return None;
        }
        if !waits.is_empty() {
            let deadline =
                Instant::now() + Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
            for (t, p, partition, offset) in waits {
                if !wait_for_high_watermark(&partition, offset, deadline).await
                    && let Some(resp) = responses
                        .get_mut(t)
                        .and_then(|t| t.partition_responses.get_mut(p))
                {
                    resp.error_code = code(ResponseError::RequestTimedOut);
                }
            }
        }
        Some(ProduceResponse::default().with_responses(responses))
    }

    fn produce_partition(
        &self,
        topic: &str,
        index: i32,
        records: Option<Bytes>,
        acks: i16,
        now: i64,
    ) -> Result<(Arc<Partition>, crate::partition::Appended), i16> {
        if !matches!(acks, -1..=1) {
            return Err(code(ResponseError::InvalidRequiredAcks));
        }
        if !topics::is_valid_topic_name(topic) {
            return Err(code(ResponseError::InvalidTopicException));
        }
        let t = self.topic_or_create(topic, true)?;
        let partition = usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .cloned()
            .ok_or(code(ResponseError::UnknownTopicOrPartition))?;
        if acks == -1 && (partition.isr_size() as i32) < t.min_insync {
            return Err(code(ResponseError::NotEnoughReplicas));
        }
        let records = records.ok_or(code(ResponseError::CorruptMessage))?;
        // The batch header is rewritten in place (base offset, leader epoch), so the
        // request's shared bytes are copied once into a buffer we own.
        let mut owned = records.to_vec();
        let appended = partition.append(&mut owned, now)?;
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

    /// ListOffsets: earliest (-2), latest (-1) or the first offset with a timestamp
    /// at or after the one given.
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
                                match lp.timestamp {
                                    -2 => r.offset = log.log_start_offset(),
                                    -1 => r.offset = log.high_watermark(),
                                    ts if ts >= 0 => match log.offset_for_timestamp(ts) {
                                        Ok(Some((offset, found))) if offset < log.high_watermark() => {
                                            r.offset = offset;
                                            r.timestamp = found;
                                        }
                                        Ok(_) => {}
                                        Err(e) => {
                                            tracing::error!(topic = name, error = %e, "time index lookup failed");
                                            r.error_code = code(ResponseError::KafkaStorageError);
                                        }
                                    },
                                    _ => r.error_code = code(ResponseError::InvalidRequest),
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
                if !t.assignments.is_empty() {
                    r.error_code = code(ResponseError::InvalidRequest);
                    r.error_message = Some(StrBytes::from_static_str(
                        "manual replica assignment is not supported",
                    ));
                    return r;
                }
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
                    t.num_partitions,
                    t.replication_factor,
                    overrides,
                    req.validate_only,
                ) {
                    // num_partitions / replication_factor in the result are v5+
                    // fields; the versions served leave them at their defaults.
                    Ok(_) => {}
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
        if req.transactional_id.is_some() {
            return r.with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed));
        }
        match lock(&self.producer_ids).allocate() {
            Ok(id) => r.with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Err(e) => {
                tracing::error!(error = %e, "could not allocate a producer id");
                r.with_error_code(code(ResponseError::KafkaStorageError))
            }
        }
    }

    /// DescribeConfigs for topics (resource type 2) and this broker (type 4).
    pub fn describe_configs(&self, req: &DescribeConfigsRequest) -> DescribeConfigsResponse {
        let results = req
            .resources
            .iter()
            .map(|res| {
                let name = res.resource_name.as_str();
                let mut r = DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                let entries = match res.resource_type {
                    2 => match self.topic(name) {
                        Some(t) => self.topic_config_entries(&t),
                        None => {
                            r.error_code = code(ResponseError::UnknownTopicOrPartition);
                            Vec::new()
                        }
                    },
                    4 if name.is_empty() || name == self.config.node_id.to_string() => {
                        self.broker_config_entries()
                    }
                    4 => {
                        r.error_code = code(ResponseError::InvalidRequest);
                        r.error_message = Some(StrBytes::from_string(format!(
                            "this is broker {}, not {name}",
                            self.config.node_id
                        )));
                        Vec::new()
                    }
                    _ => {
                        r.error_code = code(ResponseError::InvalidRequest);
                        Vec::new()
                    }
                };
                let wanted = res.configuration_keys.as_ref();
                r.configs = entries
                    .into_iter()
                    .filter(|e| {
                        wanted.is_none_or(|w| w.iter().any(|k| k.as_str() == e.name.as_str()))
                    })
                    .collect();
                r
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    fn topic_config_entries(&self, t: &Topic) -> Vec<DescribeConfigsResourceResult> {
        let (config, min_insync) = topics::effective_config(
            &self.config.log,
            self.config.min_insync_replicas,
            &t.meta.overrides,
        );
        topics::TOPIC_CONFIGS
            .iter()
            .map(|(name, broker_key)| {
                let value = topic_config_value(&config, min_insync, name);
                // Config sources (DescribeConfigs v1+): 1 dynamic topic config,
                // 4 static broker config, 5 default.
                let source = if t.meta.overrides.contains_key(*name) {
                    1
                } else if self.config.explicit.contains_key(*broker_key) {
                    4
                } else {
                    5
                };
                DescribeConfigsResourceResult::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_config_source(source)
            })
            .collect()
    }

    fn broker_config_entries(&self) -> Vec<DescribeConfigsResourceResult> {
        let c = &self.config;
        let log = &c.log;
        let dirs: Vec<String> = c.log_dirs.iter().map(|d| d.display().to_string()).collect();
        let entries: Vec<(&str, String)> = vec![
            ("node.id", c.node_id.to_string()),
            ("listeners", format!("PLAINTEXT://{}", c.listener)),
            (
                "advertised.listeners",
                format!("PLAINTEXT://{}:{}", c.advertised.0, c.advertised.1),
            ),
            ("log.dirs", dirs.join(",")),
            ("num.partitions", c.num_partitions.to_string()),
            (
                "default.replication.factor",
                c.default_replication_factor.to_string(),
            ),
            (
                "auto.create.topics.enable",
                c.auto_create_topics.to_string(),
            ),
            ("log.segment.bytes", log.segment_bytes.to_string()),
            ("log.roll.ms", opt(log.segment_ms)),
            ("log.retention.ms", opt(log.retention_ms)),
            (
                "log.retention.bytes",
                opt(log.retention_bytes.map(|b| b as i64)),
            ),
            (
                "log.flush.interval.messages",
                opt(log.flush_interval_messages.map(|m| m as i64)),
            ),
            ("log.flush.interval.ms", opt(log.flush_interval_ms)),
            ("message.max.bytes", log.max_message_bytes.to_string()),
            (
                "socket.request.max.bytes",
                c.socket_request_max_bytes.to_string(),
            ),
            ("min.insync.replicas", c.min_insync_replicas.to_string()),
            (
                "log.message.timestamp.type",
                log.timestamp_type.name().to_owned(),
            ),
        ];
        entries
            .into_iter()
            .map(|(name, value)| {
                let source = if c.explicit.contains_key(name) { 4 } else { 5 };
                DescribeConfigsResourceResult::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_read_only(true)
                    .with_config_source(source)
            })
            .collect()
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

fn opt(v: Option<i64>) -> String {
    v.unwrap_or(-1).to_string()
}

/// The value of a topic-level config name in an effective config.
fn topic_config_value(c: &LogConfig, min_insync: i32, name: &str) -> String {
    match name {
        "cleanup.policy" => "delete".to_owned(),
        "compression.type" => "producer".to_owned(),
        "flush.messages" => opt(c.flush_interval_messages.map(|m| m as i64)),
        "flush.ms" => opt(c.flush_interval_ms),
        "index.interval.bytes" => c.index_interval_bytes.to_string(),
        "max.message.bytes" => c.max_message_bytes.to_string(),
        "message.timestamp.type" => c.timestamp_type.name().to_owned(),
        "min.insync.replicas" => min_insync.to_string(),
        "retention.bytes" => opt(c.retention_bytes.map(|b| b as i64)),
        "retention.ms" => opt(c.retention_ms),
        "segment.bytes" => c.segment_bytes.to_string(),
        "segment.index.bytes" => c.segment_index_bytes.to_string(),
        "segment.ms" => opt(c.segment_ms),
        _ => String::new(),
    }
}

/// Waits until `partition`'s high watermark reaches `offset` or `deadline` passes.
/// Woken by appends (and, with replication, by follower fetches), not by a timer.
async fn wait_for_high_watermark(partition: &Partition, offset: i64, deadline: Instant) -> bool {
    let waiter = Arc::new(Notify::new());
    loop {
        partition.register_waiter(&waiter);
        if partition.high_watermark() >= offset {
            return true;
        }
        if tokio::time::timeout_at(deadline.into(), waiter.notified())
            .await
            .is_err()
        {
            return partition.high_watermark() >= offset;
        }
    }
}
