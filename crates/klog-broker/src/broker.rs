//! The broker's request handlers: one method per API, each turning a decoded request
//! into a response. No socket code lives here (see [`crate::net::connection`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use klog_codec::protocol::fetch::{FetchPart, FetchPartitionHeader, FetchResponseWriter};
use klog_codec::protocol::messages::api_versions_response::ApiVersion;
use klog_codec::protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use klog_codec::protocol::messages::describe_cluster_response::DescribeClusterBroker;
use klog_codec::protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use klog_codec::protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
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
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteRecordsResponse, DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, FetchRequest,
    InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, ProduceResponse, ProducerId, TopicName,
};
use klog_codec::protocol::produce::ProduceData;
use klog_codec::protocol::{RequestHeader, ResponseError, StrBytes, versions};
use klog_storage::{FileRegion, LogManager, ReadError};
use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::config::topic::{self as configs, ConfigEntry};
use crate::controller::admin::Admin;
use crate::controller::api::AdminHandler;
use crate::controller::auto_create::TopicCreator;
use crate::controller::client::ControllerClient;
use crate::controller::lifecycle::Lifecycle;
use crate::features;
use crate::metadata::store::MetadataStore;
use crate::replica::manager::{ReplicaManager, Topic};
use crate::replica::partition::Partition;
use crate::replica::rules::Refusal;
use crate::topics::{self};
use klog_codec::protocol::messages::{
    CreateTopicsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use klog_codec::protocol::parse_request_header;
use klog_coordinator::metadata::{ConfigResource, MetadataImage};
use klog_replication::ProduceOutcome;

use crate::clock::now_ms;

fn code(e: ResponseError) -> i16 {
    e.code()
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
    /// The metadata quorum could not start.
    #[error("metadata quorum: {0}")]
    Quorum(String),
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
            let outcome = partition.await_committed(offset, self.deadline).await;
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

/// The broker: configuration, the hosted partitions and the metadata image,
/// shared by all connections.
pub struct Broker {
    config: BrokerConfig,
    replicas: Arc<ReplicaManager>,
    store: Arc<MetadataStore>,
    creator: Arc<TopicCreator>,
    client: Arc<ControllerClient>,
    /// The admin handlers, on a controller node (they run where the controller is
    /// active; elsewhere admin requests are forwarded).
    admin: Option<Arc<Admin>>,
    lifecycle: Arc<Lifecycle>,
    /// Producer ids left from the last block the controller handed out: (next, end).
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    cluster_id: String,
    groups: Arc<crate::group::runtime::Groups>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

/// The cluster id every node of a cluster derives alike: from the node id on a
/// single node (as before the quorum), from the voters otherwise.
pub fn cluster_id(config: &BrokerConfig) -> String {
    if config.cluster.voters.is_empty() {
        return format!("klog-{}", config.node_id);
    }
    let voters: String = config
        .cluster
        .voters
        .iter()
        .map(|v| format!("{}@{}:{},", v.id, v.host, v.port))
        .collect();
    format!("klog-{:08x}", crc32c::crc32c(voters.as_bytes()))
}

impl Broker {
    /// The broker of a node (see [`crate::node::Node::start`], which builds it).
    pub fn new(
        config: BrokerConfig,
        replicas: ReplicaManager,
        store: Arc<MetadataStore>,
        client: Arc<ControllerClient>,
        admin: Option<Arc<Admin>>,
        lifecycle: Arc<Lifecycle>,
    ) -> Result<Arc<Self>, StartError> {
        let replicas = Arc::new(replicas);
        let creator = Arc::new(TopicCreator::new(
            config.auto_create_topics,
            admin.clone(),
            client.clone(),
        ));
        let groups = Arc::new(crate::group::runtime::Groups::new(
            &config,
            replicas.clone(),
            store.clone(),
            creator.clone(),
        ));
        Ok(Arc::new(Self {
            cluster_id: cluster_id(&config),
            config,
            replicas,
            creator,
            store,
            client,
            admin,
            lifecycle,
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            groups,
        }))
    }

    /// Consumer groups: the group coordinator and its persistence.
    pub fn groups(&self) -> &crate::group::runtime::Groups {
        &self.groups
    }

    /// The group runtime, shared (for its timer task).
    pub fn groups_arc(&self) -> Arc<crate::group::runtime::Groups> {
        self.groups.clone()
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The partition logs.
    pub fn logs(&self) -> &LogManager {
        self.replicas.logs()
    }

    /// The hosted partitions.
    pub fn replicas(&self) -> &Arc<ReplicaManager> {
        &self.replicas
    }

    /// The metadata image this broker serves from.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.store.image()
    }

    /// The way to the active controller.
    pub fn controller(&self) -> &ControllerClient {
        &self.client
    }

    /// A hosted topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.replicas.topic(name)
    }

    fn topic_list(&self) -> Vec<Arc<Topic>> {
        self.replicas.topic_list()
    }

    /// Creates topics that do not exist with the broker defaults; see
    /// [`TopicCreator::auto_create`].
    pub async fn auto_create(&self, names: &[String]) -> Vec<(String, i16)> {
        self.creator.auto_create(names).await
    }

    /// Creates one topic through the active controller, the create-topic policy
    /// not consulted (for programs composing a broker, and benches); the Kafka
    /// error code on refusal.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), i16> {
        self.creator
            .create_topic(name, partitions, replication_factor)
            .await
    }

    /// CreateTopics, run by the active controller (here, or forwarded to it).
    pub async fn create_topics(&self, req: &CreateTopicsRequest) -> CreateTopicsResponse {
        if let Some(admin) = self.admin.as_ref().filter(|a| a.is_active()) {
            return admin.create_topics(req).await;
        }
        match self.creator.forward_request(req, 4).await {
            Ok(r) => r,
            Err(c) => CreateTopicsResponse::default().with_topics(
                req.topics
                    .iter()
                    .map(|t| {
                        klog_codec::protocol::messages::create_topics_response::CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(c)
                    })
                    .collect(),
            ),
        }
    }

    /// An admin request that changes metadata (see [`crate::controller::admin::is_forwarded`]): run
    /// here when this node is the active controller, else forwarded whole to it.
    /// `frame` is the request as read, without its size prefix.
    pub async fn admin_request(
        &self,
        header: &RequestHeader,
        frame: Bytes,
        peer: &str,
    ) -> Option<Bytes> {
        if let Some(admin) = self.admin.as_ref().filter(|a| a.is_active()) {
            let (_, at) = parse_request_header(&frame).ok()?;
            return admin
                .handle_forwarded(header.clone(), frame.slice(at..))
                .await;
        }
        match self.client.forward(frame, peer).await {
            Ok(data) => {
                let mut out = BytesMut::with_capacity(data.len() + 4);
                out.extend_from_slice(&(data.len() as i32).to_be_bytes());
                out.extend_from_slice(&data);
                Some(out.freeze())
            }
            Err(e) => {
                tracing::debug!(error = %e, api_key = header.api_key, "no controller for an admin request");
                None
            }
        }
    }

    /// The topics of a Produce request that do not exist in the cluster (with
    /// `auto.create.topics.enable`, for [`Broker::auto_create`]).
    pub fn produce_topics_to_create(&self, req: &ProduceData) -> Vec<String> {
        if !self.config.auto_create_topics {
            return Vec::new();
        }
        let mut missing = Vec::new();
        for t in &req.topics {
            if self.replicas.topic(&t.name).is_none()
                && topics::is_valid_topic_name(&t.name)
                && self.store.image().topic(&t.name).is_none()
            {
                missing.push(t.name.clone());
            }
        }
        missing
    }

    /// The unfenced brokers with the address clients reach them at (their
    /// `inter.broker.listener.name` listener): id, host, port, rack.
    fn live_brokers(&self, image: &MetadataImage) -> Vec<(i32, String, u16, Option<String>)> {
        let listener = &self.config.cluster.inter_broker_listener_name;
        image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let e = b
                    .registration
                    .endpoints
                    .iter()
                    .find(|e| &e.name == listener)
                    .or(b.registration.endpoints.first())?;
                Some((
                    b.registration.id,
                    e.host.clone(),
                    e.port,
                    b.registration.rack.clone(),
                ))
            })
            .collect()
    }

    /// The controller id that Metadata and DescribeCluster tell clients, among the
    /// brokers `listed` in the same response: the active controller when it is a
    /// listed broker (its admin requests need no forwarding), else this broker,
    /// which forwards them (Kafka's KRaft brokers name a random live broker). A
    /// client never gets an id it has no address for, as it would while the
    /// active controller is a controller-only node or not yet unfenced.
    fn client_controller_id(&self, listed: impl Iterator<Item = i32> + Clone) -> i32 {
        let own = self.config.node_id;
        match self.client.controller_id() {
            Some(active) if listed.clone().any(|id| id == active) => active,
            _ if listed.clone().any(|id| id == own) => own,
            _ => listed.min().unwrap_or(-1),
        }
    }

    /// Whether `topic` has a partition `index` in the cluster (nothing is created).
    pub fn has_partition(&self, topic: &str, index: i32) -> bool {
        self.store.image().partition(topic, index).is_some()
    }

    /// The hosted partition `topic`-`index` if this broker leads it:
    /// NOT_LEADER_OR_FOLLOWER when another broker does (or none), and
    /// UNKNOWN_TOPIC_OR_PARTITION when the cluster has no such partition.
    fn leader_partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>, i16> {
        match self.replicas.partition(topic, index) {
            Some(p) if p.is_leader() => Ok(p),
            Some(_) => Err(code(ResponseError::NotLeaderOrFollower)),
            None if self.has_partition(topic, index) => {
                Err(code(ResponseError::NotLeaderOrFollower))
            }
            None => Err(code(ResponseError::UnknownTopicOrPartition)),
        }
    }

    // ----------------------------------------------------------------------------
    // ApiVersions

    /// ApiVersions at `version`: the version table. An unsupported version gets
    /// UNSUPPORTED_VERSION, encoded by the caller in the v0 layout.
    ///
    /// From v3 the answer carries klog's feature levels (KIP-584, tagged fields):
    /// `metadata.version` supported and finalized at
    /// [`features::METADATA_VERSION_LEVEL`] (Kafka's `3.0-IV1`: Kafka 3.0 is as far
    /// as klog's client APIs reach), and the finalized epoch is the offset of the
    /// metadata image this broker serves from, as a Kafka broker in KRaft mode
    /// sends (-1 before it has applied any entry). `transaction.version` (0: no
    /// transactions) is never finalized and, with its supported minimum of 0, is
    /// listed from v4 only (KAFKA-17492), which klog does not serve. See
    /// [`features`] for the reasoning.
    pub fn api_versions(&self, error_code: i16, version: i16) -> ApiVersionsResponse {
        let api_keys = versions::SUPPORTED_APIS
            .iter()
            .map(|s| {
                ApiVersion::default()
                    .with_api_key(s.key as i16)
                    .with_min_version(s.min)
                    .with_max_version(s.max)
            })
            .collect();
        let resp = ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(api_keys);
        features::with_features(resp, version, self.store.image().offset)
    }

    // ----------------------------------------------------------------------------
    // Metadata

    /// Metadata, from the image: the unfenced brokers, the active controller, and
    /// each topic's partitions with their real leaders, leader epochs, replicas,
    /// ISR and offline replicas. Topics asked for that do not exist are created
    /// first when the request and `auto.create.topics.enable` allow it.
    pub async fn metadata(&self, req: &MetadataRequest, version: i16) -> MetadataResponse {
        let allow_create = version < 4 || req.allow_auto_topic_creation;
        let mut refused = Vec::new();
        if let Some(list) = &req.topics
            && allow_create
        {
            let image = self.store.image();
            let missing: Vec<String> = list
                .iter()
                .filter_map(|t| t.name.as_ref())
                .map(|n| n.0.as_str())
                .filter(|n| topics::is_valid_topic_name(n) && image.topic(n).is_none())
                .map(str::to_owned)
                .collect();
            refused = self.auto_create(&missing).await;
        }
        let image = self.store.image();
        let brokers: Vec<MetadataResponseBroker> = self
            .live_brokers(&image)
            .into_iter()
            .map(|(id, host, port, rack)| {
                let mut m = MetadataResponseBroker::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(i32::from(port));
                if version >= 1 {
                    m.rack = rack.map(StrBytes::from_string);
                }
                m
            })
            .collect();
        let topics: Vec<MetadataResponseTopic> = match &req.topics {
            None => image
                .topics
                .keys()
                .map(|name| topic_metadata(&image, name, version))
                .collect(),
            Some(list) => list
                .iter()
                .filter_map(|t| t.name.as_ref())
                .map(|name| {
                    let name = name.0.as_str();
                    if let Some((_, c)) = refused.iter().find(|(n, _)| n == name) {
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
                            .with_error_code(*c)
                    } else if topics::is_valid_topic_name(name) {
                        topic_metadata(&image, name, version)
                    } else {
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
                            .with_error_code(code(ResponseError::InvalidTopicException))
                    }
                })
                .collect(),
        };
        let controller = self.client_controller_id(brokers.iter().map(|b| b.node_id.0));
        let mut resp = MetadataResponse::default()
            .with_brokers(brokers)
            .with_controller_id(BrokerId(controller))
            .with_topics(topics);
        if version >= 2 {
            resp.cluster_id = Some(StrBytes::from_string(self.cluster_id.clone()));
        }
        resp
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
    ) -> Result<(Arc<Partition>, crate::replica::partition::Appended), Refusal> {
        if !matches!(acks, -1..=1) {
            return Err(code(ResponseError::InvalidRequiredAcks).into());
        }
        if !topics::is_valid_topic_name(topic) {
            return Err(code(ResponseError::InvalidTopicException).into());
        }
        // Hosted here: the partition refuses appends unless it leads.
        let hosted = self
            .topic(topic)
            .and_then(|t| t.partition(index).cloned().map(|p| (t, p)));
        let Some((t, partition)) = hosted else {
            return Err(self
                .leader_partition(topic, index)
                .err()
                .unwrap_or(code(ResponseError::NotLeaderOrFollower))
                .into());
        };
        if acks == -1 {
            partition.check_acks_all()?;
        }
        let mut records = records.ok_or(code(ResponseError::CorruptMessage))?;
        if t.config.cleanup.compact {
            let name = format!("{topic}-{index}");
            crate::replica::rules::require_keys(&records, &name)?;
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
                        .filter_map(|p| self.leader_partition(t.topic.0.as_str(), p.partition).ok())
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
                _ = tokio::time::timeout_at(deadline, waiter.notified()) => {}
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
                let partition = match self.leader_partition(name, fp.partition) {
                    Ok(p) => p,
                    Err(e) => {
                        ph.error_code = e;
                        w.partition_error(&ph);
                        continue;
                    }
                };
                // KIP-320: a fetch naming another leader epoch is refused; a
                // follower's fetch also reports its progress to the leader (which
                // may move the high watermark before the answer carries it).
                let epoch = (fp.current_leader_epoch >= 0).then_some(fp.current_leader_epoch);
                let checked = if is_replica {
                    partition.follower_fetch(req.replica_id.0, fp.fetch_offset, epoch, now_ms())
                } else {
                    match epoch {
                        Some(e) if e < partition.leader_epoch() => {
                            Err(code(ResponseError::FencedLeaderEpoch))
                        }
                        Some(e) if e > partition.leader_epoch() => {
                            Err(code(ResponseError::UnknownLeaderEpoch))
                        }
                        _ => Ok(()),
                    }
                };
                if let Err(e) = checked {
                    ph.error_code = e;
                    w.partition_error(&ph);
                    continue;
                }
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
    // OffsetForLeaderEpoch

    /// OffsetForLeaderEpoch (KIP-101, KIP-279): for each partition led here, the
    /// largest epoch at or below the one asked and where it ends in this log (the
    /// start of the next epoch, or the log end for the current one); a
    /// `current_leader_epoch` other than this leader's is refused (KIP-320).
    pub fn offset_for_leader_epoch(
        &self,
        req: &OffsetForLeaderEpochRequest,
    ) -> OffsetForLeaderEpochResponse {
        use klog_codec::protocol::messages::offset_for_leader_epoch_response::{
            EpochEndOffset, OffsetForLeaderTopicResult,
        };
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.topic.0.as_str();
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut r = EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                        let partition = match self.leader_partition(name, p.partition) {
                            Ok(x) => x,
                            Err(e) => return r.with_error_code(e),
                        };
                        let current = partition.leader_epoch();
                        if p.current_leader_epoch >= 0 && p.current_leader_epoch != current {
                            r.error_code = code(if p.current_leader_epoch < current {
                                ResponseError::FencedLeaderEpoch
                            } else {
                                ResponseError::UnknownLeaderEpoch
                            });
                            return r;
                        }
                        if let Some((epoch, end)) =
                            partition.log().end_offset_for_epoch(p.leader_epoch)
                        {
                            r.leader_epoch = epoch;
                            r.end_offset = end;
                        }
                        r
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic.clone())
                    .with_partitions(partitions)
            })
            .collect();
        OffsetForLeaderEpochResponse::default().with_topics(topics)
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
                        match self.leader_partition(name, lp.partition_index) {
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
                        match self.leader_partition(name, dp.partition_index) {
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
        if changed && let Err(e) = self.logs().checkpoint() {
            tracing::error!(error = %e, "writing checkpoints after DeleteRecords failed");
        }
        DeleteRecordsResponse::default().with_topics(topics)
    }

    /// DescribeCluster: every live broker and, as the controller, the active
    /// controller when it is a listed broker, else a listed broker that forwards to
    /// it (this one if it is listed). Asking for
    /// controller endpoints (v1 `endpoint_type` 2) gets UNSUPPORTED_ENDPOINT_TYPE, as
    /// from a Kafka broker. ACLs do not exist, so authorized operations are not
    /// reported.
    pub fn describe_cluster(
        &self,
        req: &DescribeClusterRequest,
        version: i16,
    ) -> DescribeClusterResponse {
        let mut resp = DescribeClusterResponse::default();
        if version >= 1 {
            resp.endpoint_type = req.endpoint_type;
            if req.endpoint_type != 1 {
                resp.error_code = code(ResponseError::UnsupportedEndpointType);
                return resp;
            }
        }
        let image = self.store.image();
        let brokers: Vec<DescribeClusterBroker> = self
            .live_brokers(&image)
            .into_iter()
            .map(|(id, host, port, rack)| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(i32::from(port))
                    .with_rack(rack.map(StrBytes::from_string))
            })
            .collect();
        let controller = self.client_controller_id(brokers.iter().map(|b| b.broker_id.0));
        resp.with_cluster_id(StrBytes::from_string(self.cluster_id.clone()))
            .with_controller_id(BrokerId(controller))
            .with_brokers(brokers)
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
            for p in t.partitions.values() {
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

    /// InitProducerId: a fresh producer id at epoch 0 for idempotent producers.
    /// Transactions are not supported.
    pub async fn init_producer_id(&self, req: &InitProducerIdRequest) -> InitProducerIdResponse {
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
        match self.next_producer_id().await {
            Ok(id) => r.with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Err(error_code) => r.with_error_code(error_code),
        }
    }

    /// The next producer id, from the block the controller last handed this
    /// broker (`AllocateProducerIds`: blocks recorded in the metadata log, so no
    /// two brokers ever give out the same id). COORDINATOR_LOAD_IN_PROGRESS, a
    /// retriable error, while no controller answers.
    async fn next_producer_id(&self) -> Result<i64, i16> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let ids = self
                .client
                .allocate_producer_ids(self.config.node_id, self.lifecycle.epoch())
                .await;
            match ids {
                Ok(Ok((start, len))) => *block = (start, start + len),
                Ok(Err(_)) | Err(_) => {
                    return Err(code(ResponseError::CoordinatorLoadInProgress));
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// DescribeConfigs for topics (resource type 2) and this broker (type 4): every
    /// config with its value, source and flags; synonyms when asked (v1+), type and
    /// documentation from v3.
    pub fn describe_configs(
        &self,
        req: &DescribeConfigsRequest,
        version: i16,
    ) -> DescribeConfigsResponse {
        let image = self.store.image();
        let results = req
            .resources
            .iter()
            .map(|res| {
                let name = res.resource_name.as_str();
                let mut r = DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                let entries = match res.resource_type {
                    RESOURCE_TOPIC => match image.topic(name) {
                        Some(_) => configs::topic_entries(
                            &self.config,
                            &image
                                .configs
                                .get(&ConfigResource::Topic(name.to_owned()))
                                .cloned()
                                .unwrap_or_default(),
                        ),
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

    /// Flushes every log, writes checkpoints and the clean-shutdown marker.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.logs().shutdown()
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

/// One topic of a Metadata response, from the image: UNKNOWN_TOPIC_OR_PARTITION
/// if it does not exist; a partition without a leader gets LEADER_NOT_AVAILABLE,
/// and replicas on fenced brokers are listed as offline (v5+).
fn topic_metadata(image: &MetadataImage, name: &str, version: i16) -> MetadataResponseTopic {
    let base = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
        .with_is_internal(name == klog_coordinator::OFFSETS_TOPIC);
    let Some(t) = image.topic(name) else {
        return base.with_error_code(code(ResponseError::UnknownTopicOrPartition));
    };
    let mut base = base;
    if version >= 10 {
        base.topic_id = crate::controller::client::uuid_of(t.id);
    }
    base.with_partitions(
        t.partitions
            .iter()
            .map(|(index, p)| {
                let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
                let mut m = MetadataResponsePartition::default()
                    .with_partition_index(*index)
                    .with_leader_id(BrokerId(p.leader))
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr));
                if p.leader == klog_replication::NO_LEADER {
                    m.error_code = code(ResponseError::LeaderNotAvailable);
                }
                if version >= 7 {
                    m.leader_epoch = p.leader_epoch;
                }
                if version >= 5 {
                    let offline: Vec<i32> = p
                        .replicas
                        .iter()
                        .copied()
                        .filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced))
                        .collect();
                    m.offline_replicas = ids(&offline);
                }
                m
            })
            .collect(),
    )
}
