//! A klog node: the layers composed into one process (CLUSTER.md, "Roles and the
//! metadata quorum").
//!
//! ```text
//!  controller listener ──► quorum RPCs (raft) + ControllerApi ──► ControllerRuntime
//!                                 │ committed entries                 │ writes
//!                                 ▼                                   ▼
//!                          MetadataStore (image) ◄──────────── Quorum (openraft)
//!                                 │ changes, in log order
//!                                 ▼
//!  client listener ──► Broker ──► ReplicaManager ──► Partition ──► Log
//!                        │ admin requests: Admin (active controller) or forward
//!                        └ Lifecycle: registration, heartbeats, controlled shutdown
//! ```
//!
//! [`Node::start`] opens the logs, starts the quorum (replaying the metadata log
//! into the image), starts the controller runtime on a controller node, builds the
//! broker and waits until the controller has registered and unfenced it: from then
//! on it serves. With no voters configured the node is a one-node quorum of itself,
//! and a data dir from before the quorum has its topics written into the fresh
//! metadata log (`klog-topics` stays on disk, unused).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use klog_coordinator::metadata::{BootstrapTopic, ConfigResource, Endpoint, MetadataImage};
use klog_storage::{LogManager, TopicPartition};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::config::topic::TopicConfig;
use crate::controller::admin::Admin;
use crate::controller::api::ControllerApi;
use crate::controller::auto_create::TopicCreator;
use crate::controller::client::ControllerClient;
use crate::controller::id_allocator::ProducerIdAllocator;
use crate::controller::lifecycle::{BrokerIdentity, Lifecycle, boot_id, previous_epoch};
use crate::controller::runtime::{ControllerHandle, ControllerRuntime};
use crate::group::runtime::Groups;
use crate::handlers::{Handlers as Broker, Services};
use crate::metadata::publisher::MetadataPublisher;
use crate::metadata::store::{MetadataQuorum, MetadataStateMachineHandle, MetadataStore};
use crate::policy::CreateTopicPolicy;
use crate::replica::fetcher::ReplicaFetchers;
use crate::replica::manager::ReplicaManager;
use crate::replica::{isr, maintenance};
use crate::security::AllowAll;
use klog_quorum::{QuorumConfig, QuorumRole};
use klog_rt::clock::now_ms;

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

/// How long [`Node::start`] waits for the controller to unfence this broker
/// before it starts serving anyway (a cluster without a quorum cannot do much,
/// but the node stays reachable to say so).
pub const UNFENCE_WAIT: Duration = Duration::from_secs(60);

/// A running node.
pub struct Node {
    config: BrokerConfig,
    broker: Arc<Broker>,
    store: Arc<MetadataStore>,
    quorum: Arc<MetadataQuorum>,
    controller: Option<ControllerHandle>,
    lifecycle: Arc<Lifecycle>,
    controller_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A random 128-bit id for this run (the broker's incarnation): distinct
/// between restarts, which is all it is for. Drawn from std's randomly keyed
/// hasher, whose keys come from the C library's `getrandom` (which a simulator
/// can seed; rand 0.8's thread rng makes the system call itself).
fn incarnation() -> String {
    use std::hash::{BuildHasher, RandomState};
    let keys = RandomState::new();
    format!("{:016x}{:016x}", keys.hash_one(1u8), keys.hash_one(2u8))
}

impl Node {
    /// Starts a node from `config`; see the module docs.
    pub async fn start(config: BrokerConfig) -> Result<Arc<Self>, StartError> {
        Self::start_with_policy(config, None).await
    }

    /// As [`Node::start`], with a policy every topic a client creates must pass
    /// (it runs where the topic is created: on the active controller).
    pub async fn start_with_policy(
        config: BrokerConfig,
        policy: Option<Box<dyn CreateTopicPolicy>>,
    ) -> Result<Arc<Self>, StartError> {
        let first = config
            .log_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("."));
        for dir in &config.log_dirs {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        // Before the quorum uses the first log dir: another node's dirs are refused.
        let identity = crate::config::log_dir_identity(&config);
        let identity = LogManager::claim(&config.log_dirs, &identity)?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        // The metadata quorum: its log replays into the store before anything else
        // looks at the image.
        let store = MetadataStore::new();
        let changes = store.changes();
        let voters: BTreeMap<u64, String> = config
            .cluster
            .voters
            .iter()
            .map(|v| (v.id as u64, format!("{}:{}", v.host, v.port)))
            .collect();
        let mut qc = QuorumConfig::new(config.node_id as u64, first.clone());
        qc.voters = voters.clone();
        qc.role = if config.cluster.roles.controller {
            QuorumRole::Voter
        } else {
            QuorumRole::Learner
        };
        let quorum = Arc::new(
            klog_quorum::Quorum::start(qc, MetadataStateMachineHandle(store.clone()))
                .await
                .map_err(|e| StartError::Quorum(e.to_string()))?,
        );

        // The logs, with each topic's configuration from the image, or from the
        // topics file of a data dir from before the quorum.
        let legacy = crate::topics::load(&first).map_err(io_err(&first))?;
        let image = store.image();
        let now = now_ms();
        // The dirs were claimed above: opening checks the node id they now carry.
        let logs = LogManager::open_with_node_id(
            &config.log_dirs,
            identity.node_id,
            |tp: &TopicPartition| {
                let overrides = image
                    .configs
                    .get(&ConfigResource::Topic(tp.topic.clone()))
                    .cloned()
                    .or_else(|| {
                        legacy
                            .iter()
                            .find(|m| m.name == tp.topic)
                            .map(|m| m.overrides.clone())
                    })
                    .unwrap_or_default();
                TopicConfig::lenient(&config, &overrides).storage_log_config()
            },
            now,
        )?;
        let bootstrap = bootstrap_topics(&legacy, &logs, &first);

        // The controller, on a controller node.
        let controller = if config.cluster.roles.controller {
            // Differs per node even for nodes of one process started together.
            let seed =
                now_ms() as u64 ^ u64::from(std::process::id()) ^ (config.node_id as u64) << 32;
            let (handle, task) = ControllerRuntime::start(
                &config,
                quorum.clone(),
                store.clone(),
                Some(bootstrap),
                seed,
                stop_rx.clone(),
            );
            tasks.push(task);
            Some(handle)
        } else {
            None
        };
        let admin = controller.clone().map(|c| {
            Arc::new(Admin::new(
                config.clone(),
                store.clone(),
                c,
                quorum.clone(),
                policy,
            ))
        });
        let voter_addrs: BTreeMap<i32, String> = voters
            .iter()
            .map(|(id, a)| (*id as i32, a.clone()))
            .collect();
        let client = Arc::new(ControllerClient::new(
            config.node_id,
            controller.clone(),
            voter_addrs,
            quorum.leader_watch(),
            store.clone(),
        ));

        let config_max_frame = config.socket_request_max_bytes;
        // The controller listener: raft and the controller APIs on a controller of
        // a quorum with voters; a broker-only node receives the metadata log (as a
        // learner) on it.
        let mut controller_addr = None;
        let wants_listener = if config.cluster.roles.controller {
            !config.cluster.voters.is_empty()
        } else {
            true
        };
        if let Some(addr) = config
            .cluster
            .controller_listener
            .filter(|_| wants_listener)
        {
            let listener = klog_client::net::bind(addr)
                .await
                .map_err(|e| StartError::Io {
                    path: PathBuf::from(addr.to_string()),
                    source: e,
                })?;
            controller_addr = listener.local_addr().ok();
            tracing::info!(address = ?controller_addr, "controller listener");
            let task = match (controller.clone(), admin.clone()) {
                (Some(handle), Some(admin)) => {
                    let api = ControllerApi::new(handle, store.clone(), admin);
                    let handler = Arc::new(quorum.rpc().with_fallback(api));
                    spawn_listener(listener, handler, config_max_frame, stop_rx.clone())
                }
                _ => spawn_listener(
                    listener,
                    Arc::new(quorum.rpc()),
                    config_max_frame,
                    stop_rx.clone(),
                ),
            };
            tasks.push(task);
        }

        // The broker. It announces its client listener, and the listener a
        // broker-only node receives the metadata log on.
        let mut endpoints = vec![Endpoint {
            name: config.cluster.inter_broker_listener_name.clone(),
            host: config.advertised.0.clone(),
            port: config.advertised.1,
        }];
        if let Some(addr) = controller_addr {
            endpoints.push(Endpoint {
                name: config.cluster.controller_listener_name.clone(),
                host: config.advertised.0.clone(),
                port: addr.port(),
            });
        }
        let boot = boot_id(config.cluster.boot_id_file.as_deref());
        let lifecycle = Lifecycle::new(
            BrokerIdentity {
                node_id: config.node_id,
                incarnation: incarnation(),
                endpoints,
                previous_epoch: previous_epoch(&first, boot.as_deref()),
                boot_id: boot,
            },
            Duration::from_millis(
                u64::try_from(config.cluster.heartbeat_interval_ms).unwrap_or(500),
            ),
            client.clone(),
            store.clone(),
            &first,
        );
        let fetchers = ReplicaFetchers::new(config.clone(), store.clone(), stop_rx.clone());
        let (isr_tx, isr_rx) = tokio::sync::mpsc::unbounded_channel();
        let replicas = ReplicaManager::new(config.clone(), logs, Some(fetchers), Some(isr_tx));
        let replicas = Arc::new(replicas);
        let creator = Arc::new(TopicCreator::new(
            config.auto_create_topics,
            admin.clone(),
            client.clone(),
        ));
        let groups = Arc::new(Groups::new(
            &config,
            replicas.clone(),
            store.clone(),
            creator.clone(),
        ));
        let producer_ids = Arc::new(ProducerIdAllocator::new(
            config.node_id,
            lifecycle.clone(),
            client.clone(),
        ));
        let broker = Broker::new(
            config.clone(),
            Services {
                replicas: replicas.clone(),
                store: store.clone(),
                client: client.clone(),
                creator,
                groups: groups.clone(),
                producer_ids,
                authorizer: Arc::new(AllowAll),
            },
        );
        let publisher = MetadataPublisher::new(replicas.clone(), groups.clone(), store.clone());
        tasks.push(klog_client::task::spawn(
            publisher.run(changes, stop_rx.clone()),
        ));
        tasks.push(klog_client::task::spawn(
            lifecycle.clone().run(stop_rx.clone()),
        ));
        tasks.push(klog_client::task::spawn(isr::send_isr_changes(
            config.node_id,
            replicas.clone(),
            client,
            lifecycle.clone(),
            isr_rx,
            stop_rx.clone(),
        )));
        tasks.push(klog_client::task::spawn(maintenance::run(
            replicas.clone(),
            config.clone(),
            stop_rx.clone(),
        )));
        tasks.push(klog_client::task::spawn(groups.run_timer(stop_rx.clone())));
        tasks.push(klog_client::task::spawn(isr::expire_lagging_followers(
            replicas,
            config.replica_lag_time_max_ms,
            stop_rx.clone(),
        )));

        // Serve once unfenced.
        let mut state = lifecycle.state();
        let unfenced = tokio::time::timeout(UNFENCE_WAIT, state.wait_for(|s| !s.fenced)).await;
        if unfenced.is_err() {
            tracing::warn!(
                node = config.node_id,
                "not unfenced by a controller yet; serving anyway"
            );
        }
        for tp in broker.replicas().unclaimed_logs() {
            tracing::warn!(partition = %tp, "log folder belongs to no known partition of this broker; left untouched");
        }
        broker.groups().start().await;
        Ok(Arc::new(Self {
            config,
            broker,
            store,
            quorum,
            controller,
            lifecycle,
            controller_addr,
            stop,
            tasks: Mutex::new(tasks),
        }))
    }

    /// The broker (request handlers).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The metadata image as this node has it.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.store.image()
    }

    /// Whether this node is the active controller.
    pub fn is_active_controller(&self) -> bool {
        self.controller
            .as_ref()
            .is_some_and(ControllerHandle::is_active)
    }

    /// The bound address of the controller listener, if any.
    pub fn controller_addr(&self) -> Option<SocketAddr> {
        self.controller_addr
    }

    /// The quorum.
    pub fn quorum(&self) -> &Arc<MetadataQuorum> {
        &self.quorum
    }

    /// Controlled shutdown (CLUSTER.md): asks the controller to move this
    /// broker's leaderships away and waits (at most 10 s, or a session timeout if
    /// longer) until it says this broker may stop. Call before stopping the
    /// listeners.
    pub async fn controlled_shutdown(&self) {
        self.lifecycle.begin_shutdown();
        let limit = Duration::from_millis(
            u64::try_from(self.config.cluster.session_timeout_ms)
                .unwrap_or(0)
                .max(10_000),
        );
        let mut state = self.lifecycle.state();
        match tokio::time::timeout(limit, state.wait_for(|s| s.may_stop || s.epoch < 0)).await {
            Ok(_) => tracing::info!("controlled shutdown: leaderships moved"),
            Err(_) => tracing::warn!(
                "controlled shutdown: the controller did not confirm in time; stopping anyway"
            ),
        }
    }

    /// Stops the background tasks, flushes the logs, records the clean stop and
    /// stops the quorum.
    pub async fn shutdown(&self) -> std::io::Result<()> {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let flushed = self.broker.shutdown();
        if flushed.is_ok() {
            self.lifecycle.record_clean_stop();
        }
        if let Err(e) = self.quorum.shutdown().await {
            tracing::warn!(error = %e, "quorum shutdown");
        }
        flushed
    }
}

/// Serves the controller listener (raft RPCs, and the controller APIs on a
/// controller) until `stop`.
fn spawn_listener<H: klog_quorum::FrameHandler>(
    listener: klog_client::net::Listener,
    handler: Arc<H>,
    max_frame: usize,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    klog_client::task::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = klog_quorum::serve(listener, handler, max_frame, shutdown).await {
            tracing::error!(error = %e, "controller listener failed");
        }
    })
}

/// The topics of a data dir from before the quorum, with each partition's latest
/// leader epoch and the producer ids handed out, to seed an empty metadata log.
fn bootstrap_topics(
    legacy: &[crate::topics::TopicMeta],
    logs: &LogManager,
    first: &std::path::Path,
) -> (Vec<BootstrapTopic>, i64) {
    let topics = legacy
        .iter()
        .map(|m| BootstrapTopic {
            name: m.name.clone(),
            leader_epochs: (0..m.partitions)
                .map(|i| {
                    logs.get(&TopicPartition::new(m.name.clone(), i))
                        .and_then(|l| l.lock().unwrap_or_else(|e| e.into_inner()).latest_epoch())
                        .unwrap_or(0)
                })
                .collect(),
            configs: m.overrides.clone(),
        })
        .collect();
    let next_pid = crate::producer_ids::next_unreserved(first).unwrap_or(0);
    (topics, next_pid)
}
