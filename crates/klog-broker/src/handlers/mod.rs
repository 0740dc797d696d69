//! The request handlers: one file per API family, each turning a decoded request
//! into a response by calling the broker's services (the replica manager, the
//! metadata store, the group runtime, the controller client and admin service).
//! Handlers own no state; no socket code lives here (see [`crate::net`]).

mod admin;
mod api_versions;
mod configs;
mod fetch;
mod log_dirs;
mod metadata;
mod offsets;
mod produce;
mod producer_id;

pub use produce::PendingProduce;

use std::sync::Arc;

use klog_codec::protocol::ResponseError;
use klog_storage::LogManager;

use crate::config::BrokerConfig;
use crate::controller::admin::Admin;
use crate::controller::auto_create::TopicCreator;
use crate::controller::client::ControllerClient;
use crate::controller::lifecycle::Lifecycle;
use crate::metadata::store::MetadataStore;
use crate::replica::manager::{ReplicaManager, Topic};
use crate::replica::partition::Partition;
use klog_coordinator::metadata::MetadataImage;

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
    /// The admin handlers, on a controller node (they run where the controller is
    /// active; elsewhere admin requests are forwarded).
    admin: Option<Arc<Admin>>,
    lifecycle: Arc<Lifecycle>,
    /// Producer ids left from the last block the controller handed out: (next, end).
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    cluster_id: String,
    groups: Arc<crate::group::runtime::Groups>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

impl Handlers {
    /// The broker of a node (see [`crate::node::Node::start`], which builds it).
    pub fn new(
        config: BrokerConfig,
        replicas: ReplicaManager,
        store: Arc<MetadataStore>,
        client: Arc<ControllerClient>,
        admin: Option<Arc<Admin>>,
        lifecycle: Arc<Lifecycle>,
    ) -> Arc<Self> {
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
        Arc::new(Self {
            cluster_id: crate::config::cluster_id(&config),
            config,
            replicas,
            creator,
            store,
            client,
            admin,
            lifecycle,
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            groups,
        })
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
