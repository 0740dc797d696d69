//! The request handlers: one file per API family, each turning a decoded request
//! into a response by calling the broker's services (the replica manager, the
//! metadata store, the group runtime, the controller client and admin service).
//! Handlers own no state; no socket code lives here (see [`crate::net`]).

mod admin;
mod api_versions;
mod configs;
pub mod context;
mod fetch;
mod groups;
mod log_dirs;
mod metadata;
mod offsets;
mod produce;
mod producer_id;

use crate::config::BrokerConfig;
use crate::controller::auto_create::TopicCreator;
use crate::controller::client::ControllerClient;
use crate::controller::id_allocator::ProducerIdAllocator;
use crate::group::runtime::Groups;
use crate::metadata::store::MetadataStore;
use crate::replica::manager::{ReplicaManager, Topic};
use crate::replica::partition::Partition;
use klog_codec::protocol::ResponseError;
use klog_codec::protocol::messages::ApiKey;
use klog_coordinator::metadata::MetadataImage;
use klog_storage::LogManager;
use std::sync::Arc;

use crate::security::Authorizer;

pub use context::{DirectRequest, RequestContext};
pub use produce::PendingProduce;

/// Where a request goes once its header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Decoded and answered here, by a handler of this module.
    Local,
    /// Decoded and answered here by the group runtime (this broker must
    /// coordinate the group, else NOT_COORDINATOR).
    Group,
    /// Sent whole to the active controller (KIP-590), or run here when this node
    /// is it; see [`Handlers::admin_request`].
    Forwarded,
}

/// One API klog serves: its key and where its requests go. Version ranges are the
/// codec's ([`klog_codec::protocol::versions::SUPPORTED_APIS`], the versions it can decode);
/// ApiVersions, the routing in [`crate::net`] and the dispatch all read this
/// table, so serving a new API is a codec row (decoding), a row here, and its
/// handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    /// The API.
    pub key: ApiKey,
    /// Where its requests go.
    pub route: Route,
}

const fn api(key: ApiKey, route: Route) -> Api {
    Api { key, route }
}

/// The APIs of the client listener, in API-key order.
pub const APIS: &[Api] = &[
    api(ApiKey::Produce, Route::Local),
    api(ApiKey::Fetch, Route::Local),
    api(ApiKey::ListOffsets, Route::Local),
    api(ApiKey::Metadata, Route::Local),
    api(ApiKey::OffsetCommit, Route::Group),
    api(ApiKey::OffsetFetch, Route::Group),
    api(ApiKey::FindCoordinator, Route::Group),
    api(ApiKey::JoinGroup, Route::Group),
    api(ApiKey::Heartbeat, Route::Group),
    api(ApiKey::LeaveGroup, Route::Group),
    api(ApiKey::SyncGroup, Route::Group),
    api(ApiKey::DescribeGroups, Route::Group),
    api(ApiKey::ListGroups, Route::Group),
    api(ApiKey::ApiVersions, Route::Local),
    api(ApiKey::CreateTopics, Route::Forwarded),
    api(ApiKey::DeleteTopics, Route::Forwarded),
    api(ApiKey::DeleteRecords, Route::Local),
    api(ApiKey::InitProducerId, Route::Local),
    api(ApiKey::OffsetForLeaderEpoch, Route::Local),
    api(ApiKey::DescribeConfigs, Route::Local),
    api(ApiKey::AlterConfigs, Route::Forwarded),
    api(ApiKey::DescribeLogDirs, Route::Local),
    api(ApiKey::CreatePartitions, Route::Forwarded),
    api(ApiKey::DeleteGroups, Route::Group),
    api(ApiKey::ElectLeaders, Route::Forwarded),
    api(ApiKey::IncrementalAlterConfigs, Route::Forwarded),
    api(ApiKey::OffsetDelete, Route::Group),
    api(ApiKey::DescribeQuorum, Route::Forwarded),
    api(ApiKey::DescribeCluster, Route::Local),
];

/// The route of `api_key`, if klog serves it. Whether the version is served is the
/// decoder's question (or, for a forwarded request, the connection's before it
/// forwards): a Produce or Fetch pays one short scan here, nothing more.
pub fn route(api_key: i16) -> Option<Route> {
    APIS.iter()
        .find(|a| a.key as i16 == api_key)
        .map(|a| a.route)
}

pub(crate) fn code(e: ResponseError) -> i16 {
    e.code()
}

/// The broker: configuration, the hosted partitions and the metadata image,
/// shared by all connections.
pub struct Handlers {
    config: BrokerConfig,
    replicas: Arc<ReplicaManager>,
    store: Arc<MetadataStore>,
    creator: Arc<TopicCreator>,
    client: Arc<ControllerClient>,
    producer_ids: Arc<ProducerIdAllocator>,
    cluster_id: String,
    groups: Arc<Groups>,
    authorizer: Arc<dyn Authorizer>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

/// The services a node hands its handlers (see [`crate::node::Node::start`],
/// which builds them). Handlers only call them; they own no state of their own.
pub struct Services {
    /// The hosted partitions.
    pub replicas: Arc<ReplicaManager>,
    /// The metadata image.
    pub store: Arc<MetadataStore>,
    /// The way to the active controller.
    pub client: Arc<ControllerClient>,
    /// Topic creation and the admin service, which runs admin requests while this
    /// node is the active controller (elsewhere they are forwarded).
    pub creator: Arc<TopicCreator>,
    /// The group runtime.
    pub groups: Arc<Groups>,
    /// Producer ids for InitProducerId.
    pub producer_ids: Arc<ProducerIdAllocator>,
    /// What every request is authorized with.
    pub authorizer: Arc<dyn Authorizer>,
}

impl Handlers {
    /// The handlers of a node over its services.
    pub fn new(config: BrokerConfig, services: Services) -> Arc<Self> {
        let Services {
            replicas,
            store,
            client,
            creator,
            groups,
            producer_ids,
            authorizer,
        } = services;
        Arc::new(Self {
            cluster_id: crate::config::cluster_id(&config),
            config,
            replicas,
            creator,
            store,
            client,
            producer_ids,
            groups,
            authorizer,
        })
    }

    /// The authorizer requests are checked with.
    pub fn authorizer(&self) -> &dyn Authorizer {
        &*self.authorizer
    }

    /// Consumer groups: the group coordinator and its persistence.
    pub fn groups(&self) -> &Arc<Groups> {
        &self.groups
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

    /// A hosted topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.replicas.topic(name)
    }

    fn topic_list(&self) -> Vec<Arc<Topic>> {
        self.replicas.topic_list()
    }

    /// Creates topics that do not exist with the broker defaults (Metadata with
    /// `allow_auto_topic_creation`, `auto.create.topics.enable`), through the
    /// active controller, and waits until they are in this broker's image.
    /// Returns the error code of each topic that could not be created.
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

    /// Flushes every log, writes checkpoints and the clean-shutdown marker.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.logs().shutdown()
    }
}
