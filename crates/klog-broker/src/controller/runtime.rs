//! The controller runtime: drives `klog-coordinator`'s sans-IO
//! [`Controller`] on the node that leads the metadata quorum.
//!
//! One task owns the state machine and handles one request at a time: it decides
//! against the committed image, writes the records through the quorum, and answers
//! once they are committed and applied here, with the log offset they are at, so
//! that the broker that asked can wait until its own image has them too. Between
//! requests it sleeps until the controller's next deadline (a broker session, the
//! leader-rebalance check), never on a fixed poll.
//!
//! ```text
//!  ControllerHandle::submit ──► mpsc ──► driver task ──► Controller (decide)
//!                                           │  ▲              │ records
//!                 leader_watch (quorum) ────┘  │              ▼
//!                                     answer ◄─┴── Quorum::write (commit, apply)
//! ```
//!
//! Becoming the quorum leader makes the node the active controller only after a
//! first (empty) write has been applied here, so that its image holds every record
//! committed by earlier leaders; then broker sessions restart from now
//! (`Controller::activate`), and an empty metadata log is seeded from a single
//! node's existing topics (`Controller::bootstrap`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use klog_codec::protocol::ResponseError;
use klog_coordinator::metadata::{
    AlterPartition, BootstrapTopic, ConfigResource, Controller, ControllerConfig, CreateTopic,
    CreatedTopic, Heartbeat, HeartbeatReply, MetadataImage, MetadataRecord, RegisterBroker,
    TopicId, encode_batch,
};
use klog_replication::PartitionRegistration;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::config::topic::TopicConfig;
use crate::metadata::store::MetadataStore;
use klog_quorum::WriteError;

/// What the controller is asked (the decoded form of the controller APIs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControllerRequest {
    /// `BrokerRegistration`.
    Register(RegisterBroker),
    /// `BrokerHeartbeat`.
    Heartbeat(Heartbeat),
    /// `AlterPartition` from a leader.
    AlterPartition {
        /// The leader.
        broker: i32,
        /// Its broker epoch.
        epoch: i64,
        /// The ISR changes.
        partitions: Vec<AlterPartition>,
    },
    /// `CreateTopics`.
    CreateTopics {
        /// The topics.
        topics: Vec<CreateTopic>,
        /// Check only.
        validate_only: bool,
    },
    /// `DeleteTopics`.
    DeleteTopics(Vec<String>),
    /// `CreatePartitions` for one topic.
    CreatePartitions {
        /// The topic.
        topic: String,
        /// Its new partition count.
        count: i32,
        /// Replicas of each new partition, if given.
        assignments: Option<Vec<Vec<i32>>>,
        /// Check only.
        validate_only: bool,
    },
    /// Set or remove configuration keys of one resource (already validated).
    SetConfigs {
        /// The resource.
        resource: ConfigResource,
        /// Keys and new values (`None`: remove).
        changes: Vec<(String, Option<String>)>,
    },
    /// `ElectLeaders`.
    ElectLeaders {
        /// Unclean (true) or preferred elections.
        unclean: bool,
        /// The partitions, or every one that needs it.
        partitions: Option<Vec<(String, i32)>>,
    },
    /// `AllocateProducerIds`.
    AllocateProducerIds {
        /// The broker.
        broker: i32,
        /// Its epoch.
        epoch: i64,
    },
}

/// The controller's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControllerReply {
    /// Registered at this broker epoch.
    Registered(i64),
    /// A heartbeat's answer.
    Heartbeat(HeartbeatReply),
    /// Each partition's new registration or error code.
    AlterPartition(Vec<Result<PartitionRegistration, i16>>),
    /// Each topic's result.
    CreateTopics(Vec<CreatedTopic>),
    /// Each name's error code and the deleted topic's id.
    DeleteTopics(Vec<(String, i16, Option<TopicId>)>),
    /// Partitions added (or would be, with validate_only).
    CreatePartitions,
    /// Configs changed.
    SetConfigs,
    /// Each partition's election result.
    ElectLeaders(Vec<((String, i32), i16)>),
    /// A block of producer ids: first id and count.
    ProducerIds(i64, i64),
}

/// An answer and the metadata log offset its records are at (the image offset
/// when nothing was written): the asker waits until its image reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The reply, or the Kafka error code of a refusal.
    pub reply: Result<ControllerReply, (i16, String)>,
    /// Where the records are in the metadata log.
    pub offset: u64,
}

/// Why a request did not reach an active controller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// This node is not the active controller; `leader` is the quorum leader if
    /// known.
    #[error("not the active controller (leader: {leader:?})")]
    NotController {
        /// The quorum's leader, as far as this node knows.
        leader: Option<i32>,
    },
    /// The controller runtime has stopped.
    #[error("the controller has stopped")]
    Stopped,
}

struct Job {
    request: ControllerRequest,
    reply: oneshot::Sender<Result<Answer, SubmitError>>,
}

/// Submits requests to this node's controller runtime.
#[derive(Debug, Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Job>,
    active: watch::Receiver<bool>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.request.fmt(f)
    }
}

impl ControllerHandle {
    /// Whether this node is the active controller now.
    pub fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    /// Watches whether this node is the active controller.
    pub fn active_watch(&self) -> watch::Receiver<bool> {
        self.active.clone()
    }

    /// Hands `request` to the controller and waits for its answer.
    pub async fn submit(&self, request: ControllerRequest) -> Result<Answer, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { request, reply })
            .await
            .map_err(|_| SubmitError::Stopped)?;
        rx.await.map_err(|_| SubmitError::Stopped)?
    }
}

pub use crate::metadata::store::MetadataQuorum;

/// What the runtime needs besides the quorum.
pub struct ControllerRuntime {
    node_id: i32,
    broker: BrokerConfig,
    quorum: Arc<MetadataQuorum>,
    store: Arc<MetadataStore>,
    controller: Controller,
    /// Topics of a single node's data dir from before the quorum, to seed an empty
    /// metadata log (taken once).
    bootstrap: Option<(Vec<BootstrapTopic>, i64)>,
    active: watch::Sender<bool>,
}

/// The controller settings from the broker's.
pub fn controller_config(c: &BrokerConfig) -> ControllerConfig {
    ControllerConfig {
        session_timeout_ms: c.cluster.session_timeout_ms,
        default_partitions: c.num_partitions,
        default_replication_factor: c.default_replication_factor,
        min_insync_replicas: usize::try_from(c.min_insync_replicas).unwrap_or(1),
        unclean_leader_election: c.cluster.unclean_leader_election,
        producer_id_block_size: 1000,
        auto_leader_rebalance: c.cluster.auto_leader_rebalance,
        leader_imbalance_check_interval_ms: c.cluster.leader_imbalance_check_interval_ms,
    }
}

/// How long a request waits for the controller to become available before giving
/// up with NOT_CONTROLLER (the caller retries elsewhere).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl ControllerRuntime {
    /// Starts the runtime's task. `bootstrap` holds the topics to seed an empty
    /// metadata log with, and the next producer id the node would have handed out.
    pub fn start(
        broker: &BrokerConfig,
        quorum: Arc<MetadataQuorum>,
        store: Arc<MetadataStore>,
        bootstrap: Option<(Vec<BootstrapTopic>, i64)>,
        id_seed: u64,
        stop: watch::Receiver<bool>,
    ) -> (ControllerHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let (active_tx, active_rx) = watch::channel(false);
        let runtime = Self {
            node_id: broker.node_id,
            broker: broker.clone(),
            quorum,
            store,
            controller: Controller::new(controller_config(broker), id_seed),
            bootstrap,
            active: active_tx,
        };
        let task = klog_client::task::spawn(runtime.run(rx, stop));
        (
            ControllerHandle {
                tx,
                active: active_rx,
            },
            task,
        )
    }

    fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    fn leader(&self) -> Option<i32> {
        self.quorum.leader().and_then(|l| i32::try_from(l).ok())
    }

    async fn run(mut self, mut jobs: mpsc::Receiver<Job>, mut stop: watch::Receiver<bool>) {
        let mut leader = self.quorum.leader_watch();
        loop {
            let leads = self.quorum.is_leader();
            if leads && !self.is_active() {
                self.activate().await;
            } else if !leads && self.is_active() {
                tracing::info!(node = self.node_id, "no longer the active controller");
                self.active.send_replace(false);
            }
            let deadline = if self.is_active() {
                self.controller.next_deadline()
            } else {
                None
            };
            let sleep = async {
                match deadline {
                    Some(at) => {
                        let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            // Requests first: a heartbeat waiting in the queue must renew its
            // session before the tick that would fence the broker for missing it.
            tokio::select! {
                biased;
                job = jobs.recv() => match job {
                    Some(job) => {
                        let answer = self.handle(job.request).await;
                        let _ = job.reply.send(answer);
                    }
                    None => return,
                },
                changed = leader.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = sleep => {
                    let image = self.store.image();
                    let records = self.controller.tick(&image, now_ms());
                    for r in &records {
                        if let MetadataRecord::FenceBroker { id, epoch } = r {
                            tracing::warn!(broker = id, epoch, "broker session expired: fencing it");
                        }
                    }
                    if !records.is_empty()
                        && let Err(e) = self.write(&records).await
                    {
                        tracing::warn!(error = %e, "controller tick could not write");
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Catches the image up with the log (an empty write), restarts broker sessions
    /// and seeds an empty log.
    async fn activate(&mut self) {
        if let Err(e) = self.write(&[]).await {
            tracing::warn!(error = %e, "could not become the active controller yet");
            // Try again when leadership next changes, or at the next request.
            return;
        }
        let image = self.store.image();
        self.controller.activate(&image, now_ms());
        tracing::info!(
            node = self.node_id,
            offset = image.offset,
            "active controller"
        );
        if let Some((topics, next_pid)) = self.bootstrap.take()
            && image.topics.is_empty()
            && (!topics.is_empty() || next_pid > 0)
        {
            let records = self
                .controller
                .bootstrap(&image, self.node_id, &topics, next_pid);
            match self.write(&records).await {
                Ok(_) => tracing::info!(
                    topics = topics.len(),
                    "existing topics written to the metadata log"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "could not write the existing topics to the metadata log");
                    self.bootstrap = Some((topics, next_pid));
                    return;
                }
            }
        }
        self.active.send_replace(true);
    }

    /// Writes one entry and returns its offset once applied here.
    async fn write(&self, records: &[MetadataRecord]) -> Result<u64, WriteError> {
        let offset = tokio::time::timeout(WRITE_TIMEOUT, self.quorum.write(encode_batch(records)))
            .await
            .map_err(|_| WriteError::Stopped("metadata write timed out".to_owned()))??;
        // The quorum answers once the entry is applied to the state machine, which
        // is the store; this wait only covers a store that applies asynchronously.
        self.store.wait_for(offset, WRITE_TIMEOUT).await;
        Ok(offset)
    }

    async fn handle(&mut self, request: ControllerRequest) -> Result<Answer, SubmitError> {
        if !self.is_active() {
            if self.quorum.is_leader() {
                self.activate().await;
            }
            if !self.is_active() {
                return Err(SubmitError::NotController {
                    leader: self.leader(),
                });
            }
        }
        let image = self.store.image();
        let now = now_ms();
        let learner = self.learner_to_add(&request);
        let (records, reply) = self.decide(&image, request, now);
        if let (Some((id, addr)), Ok(ControllerReply::Registered(_))) = (learner, &reply) {
            // A broker-only node receives the metadata log as a learner, on its
            // controller listener. Added in the background: a membership change
            // is a write of its own.
            let quorum = self.quorum.clone();
            klog_client::task::spawn(async move {
                match quorum.add_learner(id as u64, addr.clone()).await {
                    Ok(_) => {
                        tracing::info!(node = id, %addr, "broker-only node added to the quorum as a learner")
                    }
                    Err(e) => {
                        tracing::warn!(node = id, %addr, error = %e, "could not add a learner")
                    }
                }
            });
        }
        if records.is_empty() {
            return Ok(Answer {
                reply,
                offset: image.offset,
            });
        }
        match self.write(&records).await {
            Ok(offset) => Ok(Answer { reply, offset }),
            Err(WriteError::NotLeader { leader }) => {
                self.active.send_replace(false);
                Err(SubmitError::NotController {
                    leader: leader.and_then(|l| i32::try_from(l).ok()),
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "metadata write failed");
                self.active.send_replace(false);
                Err(SubmitError::NotController { leader: None })
            }
        }
    }

    /// For the registration of a broker that is not a voter: its id and the
    /// controller listener the metadata log reaches it on.
    fn learner_to_add(&self, request: &ControllerRequest) -> Option<(i32, String)> {
        let ControllerRequest::Register(r) = request else {
            return None;
        };
        if self.broker.cluster.voters.iter().any(|v| v.id == r.id)
            || self.broker.cluster.voters.is_empty()
        {
            return None;
        }
        let known = self
            .quorum
            .describe()
            .learners
            .iter()
            .any(|l| l.node_id == r.id as u64);
        if known {
            return None;
        }
        r.endpoints
            .iter()
            .find(|e| e.name == self.broker.cluster.controller_listener_name)
            .map(|e| (r.id, format!("{}:{}", e.host, e.port)))
    }

    /// Runs the state machine for one request: the records to write and the reply.
    fn decide(
        &mut self,
        image: &MetadataImage,
        request: ControllerRequest,
        now: i64,
    ) -> (Vec<MetadataRecord>, Result<ControllerReply, (i16, String)>) {
        let refused = |code: i16| (Vec::new(), Err((code, String::new())));
        match request {
            ControllerRequest::Register(r) => {
                if r.id == self.node_id {
                    // This process is that broker: its previous incarnation is gone.
                    self.controller.forget_session(r.id);
                }
                match self.controller.register_broker(image, r, now) {
                    Ok(o) => (o.records, Ok(ControllerReply::Registered(o.response))),
                    Err(c) => refused(c),
                }
            }
            ControllerRequest::Heartbeat(h) => match self.controller.heartbeat(image, h, now) {
                Ok(o) => (o.records, Ok(ControllerReply::Heartbeat(o.response))),
                Err(c) => refused(c),
            },
            ControllerRequest::AlterPartition {
                broker,
                epoch,
                partitions,
            } => match self
                .controller
                .alter_partition(image, broker, epoch, &partitions)
            {
                Ok(o) => (o.records, Ok(ControllerReply::AlterPartition(o.response))),
                Err(c) => refused(c),
            },
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            } => {
                let broker = &self.broker;
                let validate = |overrides: &BTreeMap<String, String>| {
                    TopicConfig::strict(broker, overrides)
                        .map(|_| ())
                        .map_err(|(k, e)| {
                            (ResponseError::InvalidConfig.code(), format!("{k}: {e}"))
                        })
                };
                let o = self
                    .controller
                    .create_topics(image, &topics, validate_only, &validate);
                (o.records, Ok(ControllerReply::CreateTopics(o.response)))
            }
            ControllerRequest::DeleteTopics(names) => {
                let o = self.controller.delete_topics(image, &names);
                (o.records, Ok(ControllerReply::DeleteTopics(o.response)))
            }
            ControllerRequest::CreatePartitions {
                topic,
                count,
                assignments,
                validate_only,
            } => match self.controller.create_partitions(
                image,
                &topic,
                count,
                assignments.as_deref(),
                validate_only,
            ) {
                Ok(o) => (o.records, Ok(ControllerReply::CreatePartitions)),
                Err(e) => (Vec::new(), Err(e)),
            },
            ControllerRequest::SetConfigs { resource, changes } => {
                match self.controller.set_configs(image, &resource, &changes) {
                    Ok(o) => (o.records, Ok(ControllerReply::SetConfigs)),
                    Err(c) => refused(c),
                }
            }
            ControllerRequest::ElectLeaders {
                unclean,
                partitions,
            } => {
                let o = self
                    .controller
                    .elect_leaders(image, unclean, partitions.as_deref());
                (o.records, Ok(ControllerReply::ElectLeaders(o.response)))
            }
            ControllerRequest::AllocateProducerIds { broker, epoch } => {
                match self.controller.allocate_producer_ids(image, broker, epoch) {
                    Ok(o) => (
                        o.records,
                        Ok(ControllerReply::ProducerIds(o.response.0, o.response.1)),
                    ),
                    Err(c) => refused(c),
                }
            }
        }
    }
}
