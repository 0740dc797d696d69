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
//!  ControllerHandle::register, ..  ──► mpsc ──► driver task ──► Controller (decide)
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
    CreatedTopic, Heartbeat, HeartbeatReply, MetadataImage, MetadataRecord, Outcome,
    RegisterBroker, TopicId, encode_batch,
};
use klog_replication::PartitionRegistration;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::BrokerConfig;
use crate::config::topic::TopicConfig;
use crate::metadata::store::MetadataStore;
use klog_quorum::WriteError;
use klog_rt::clock::now_ms;

/// Why the controller refused a request: the Kafka error code the response
/// carries, and a message (empty when the controller gave none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the controller refused with error code {code}: {message}")]
pub struct Refusal {
    /// The Kafka error code.
    pub code: i16,
    /// Why, for the client (may be empty).
    pub message: String,
}

impl Refusal {
    /// A refusal with no message.
    pub fn code(code: i16) -> Self {
        Self {
            code,
            message: String::new(),
        }
    }
}

impl From<(i16, String)> for Refusal {
    fn from((code, message): (i16, String)) -> Self {
        Self { code, message }
    }
}

/// Each partition's new registration, or its error code (`AlterPartition`).
pub type AlterPartitionReply = Vec<Result<PartitionRegistration, i16>>;

/// Each name's error code and the deleted topic's id (`DeleteTopics`), in the
/// order asked.
pub type DeleteTopicsReply = Vec<(String, i16, Option<TopicId>)>;

/// Each partition's election result (`ElectLeaders`).
pub type ElectLeadersReply = Vec<((String, i32), i16)>;

/// The controller's reply of type `T`, or its refusal, and the metadata log
/// offset its records are at (the image offset when nothing was written): the
/// asker waits until its image reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    /// The reply, or the refusal.
    pub reply: Result<T, Refusal>,
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

/// Where the runtime sends the answer of one job, typed by what was asked.
type Reply<T> = oneshot::Sender<Result<Answer<T>, SubmitError>>;

/// One request for the driver task, each with a reply channel of its own type,
/// so an answer of the wrong kind cannot be sent.
#[derive(Debug)]
enum Job {
    Register(RegisterBroker, Reply<i64>),
    Heartbeat(Heartbeat, Reply<HeartbeatReply>),
    AlterPartition {
        broker: i32,
        epoch: i64,
        partitions: Vec<AlterPartition>,
        reply: Reply<AlterPartitionReply>,
    },
    AllocateProducerIds {
        broker: i32,
        epoch: i64,
        reply: Reply<(i64, i64)>,
    },
    CreateTopics {
        topics: Vec<CreateTopic>,
        validate_only: bool,
        reply: Reply<Vec<CreatedTopic>>,
    },
    DeleteTopics(Vec<String>, Reply<DeleteTopicsReply>),
    CreatePartitions {
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        reply: Reply<()>,
    },
    SetConfigs {
        resource: ConfigResource,
        changes: Vec<(String, Option<String>)>,
        reply: Reply<()>,
    },
    ElectLeaders {
        unclean: bool,
        partitions: Option<Vec<(String, i32)>>,
        reply: Reply<ElectLeadersReply>,
    },
}

/// Submits requests to this node's controller runtime. One method per request,
/// each answered with its own reply type.
#[derive(Debug, Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Job>,
    active: watch::Receiver<bool>,
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

    /// Hands the job `make` builds to the controller and waits for its answer.
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Job) -> Result<Answer<T>, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| SubmitError::Stopped)?;
        rx.await.map_err(|_| SubmitError::Stopped)?
    }

    /// `BrokerRegistration`: the broker epoch it is registered at.
    pub async fn register(&self, request: RegisterBroker) -> Result<Answer<i64>, SubmitError> {
        self.ask(|reply| Job::Register(request, reply)).await
    }

    /// `BrokerHeartbeat`.
    pub async fn heartbeat(
        &self,
        request: Heartbeat,
    ) -> Result<Answer<HeartbeatReply>, SubmitError> {
        self.ask(|reply| Job::Heartbeat(request, reply)).await
    }

    /// `AlterPartition` from the leader `broker` at its broker `epoch`: each
    /// partition's new registration or error code, in the order given.
    pub async fn alter_partition(
        &self,
        broker: i32,
        epoch: i64,
        partitions: Vec<AlterPartition>,
    ) -> Result<Answer<AlterPartitionReply>, SubmitError> {
        self.ask(|reply| Job::AlterPartition {
            broker,
            epoch,
            partitions,
            reply,
        })
        .await
    }

    /// `AllocateProducerIds`: a block of producer ids, as its first id and count.
    pub async fn allocate_producer_ids(
        &self,
        broker: i32,
        epoch: i64,
    ) -> Result<Answer<(i64, i64)>, SubmitError> {
        self.ask(|reply| Job::AllocateProducerIds {
            broker,
            epoch,
            reply,
        })
        .await
    }

    /// `CreateTopics` (checked only, with `validate_only`): each topic's result.
    pub async fn create_topics(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
    ) -> Result<Answer<Vec<CreatedTopic>>, SubmitError> {
        self.ask(|reply| Job::CreateTopics {
            topics,
            validate_only,
            reply,
        })
        .await
    }

    /// `DeleteTopics` by name: each name's error code and deleted topic id.
    pub async fn delete_topics(
        &self,
        names: Vec<String>,
    ) -> Result<Answer<DeleteTopicsReply>, SubmitError> {
        self.ask(|reply| Job::DeleteTopics(names, reply)).await
    }

    /// `CreatePartitions` for one topic: grows it to `count` partitions, with the
    /// replicas of each new one if `assignments` gives them.
    pub async fn create_partitions(
        &self,
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<Answer<()>, SubmitError> {
        self.ask(|reply| Job::CreatePartitions {
            topic,
            count,
            assignments,
            validate_only,
            reply,
        })
        .await
    }

    /// Sets (`Some`) or removes (`None`) configuration keys of one resource,
    /// already validated.
    pub async fn set_configs(
        &self,
        resource: ConfigResource,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<Answer<()>, SubmitError> {
        self.ask(|reply| Job::SetConfigs {
            resource,
            changes,
            reply,
        })
        .await
    }

    /// `ElectLeaders`: unclean (true) or preferred elections of `partitions`, or
    /// of every one that needs it.
    pub async fn elect_leaders(
        &self,
        unclean: bool,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Answer<ElectLeadersReply>, SubmitError> {
        self.ask(|reply| Job::ElectLeaders {
            unclean,
            partitions,
            reply,
        })
        .await
    }
}

/// The records to write and the reply, as the state machine decided them.
type Decision<T> = (Vec<MetadataRecord>, Result<T, Refusal>);

/// A decision from the state machine's `Result<Outcome<T>, code>`.
fn decided<T, E: Into<Refusal>>(outcome: Result<Outcome<T>, E>) -> Decision<T> {
    match outcome {
        Ok(o) => (o.records, Ok(o.response)),
        Err(e) => (Vec::new(), Err(e.into())),
    }
}

impl From<i16> for Refusal {
    fn from(code: i16) -> Self {
        Refusal::code(code)
    }
}

use crate::metadata::store::MetadataQuorum;

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
                    Some(job) => self.handle(job).await,
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

    /// Runs one job and sends its answer (a caller that went away is not told).
    async fn handle(&mut self, job: Job) {
        match job {
            Job::Register(r, reply) => {
                let answer = self.execute(|this, image, now| this.register(image, r, now));
                let _ = reply.send(answer.await);
            }
            Job::Heartbeat(h, reply) => {
                let answer = self
                    .execute(|this, image, now| decided(this.controller.heartbeat(image, h, now)));
                let _ = reply.send(answer.await);
            }
            Job::AlterPartition {
                broker,
                epoch,
                partitions,
                reply,
            } => {
                let answer = self.execute(|this, image, _| {
                    decided(
                        this.controller
                            .alter_partition(image, broker, epoch, &partitions),
                    )
                });
                let _ = reply.send(answer.await);
            }
            Job::AllocateProducerIds {
                broker,
                epoch,
                reply,
            } => {
                let answer = self.execute(|this, image, _| {
                    decided(this.controller.allocate_producer_ids(image, broker, epoch))
                });
                let _ = reply.send(answer.await);
            }
            Job::CreateTopics {
                topics,
                validate_only,
                reply,
            } => {
                let answer = self.execute(|this, image, _| {
                    let broker = &this.broker;
                    let validate = |overrides: &BTreeMap<String, String>| {
                        TopicConfig::strict(broker, overrides)
                            .map(|_| ())
                            .map_err(|(k, e)| {
                                (ResponseError::InvalidConfig.code(), format!("{k}: {e}"))
                            })
                    };
                    let o = this
                        .controller
                        .create_topics(image, &topics, validate_only, &validate);
                    (o.records, Ok(o.response))
                });
                let _ = reply.send(answer.await);
            }
            Job::DeleteTopics(names, reply) => {
                let answer = self.execute(|this, image, _| {
                    let o = this.controller.delete_topics(image, &names);
                    (o.records, Ok(o.response))
                });
                let _ = reply.send(answer.await);
            }
            Job::CreatePartitions {
                topic,
                count,
                assignments,
                validate_only,
                reply,
            } => {
                let answer = self.execute(|this, image, _| {
                    decided(this.controller.create_partitions(
                        image,
                        &topic,
                        count,
                        assignments.as_deref(),
                        validate_only,
                    ))
                });
                let _ = reply.send(answer.await);
            }
            Job::SetConfigs {
                resource,
                changes,
                reply,
            } => {
                let answer = self.execute(|this, image, _| {
                    decided(this.controller.set_configs(image, &resource, &changes))
                });
                let _ = reply.send(answer.await);
            }
            Job::ElectLeaders {
                unclean,
                partitions,
                reply,
            } => {
                let answer = self.execute(|this, image, _| {
                    let o = this
                        .controller
                        .elect_leaders(image, unclean, partitions.as_deref());
                    (o.records, Ok(o.response))
                });
                let _ = reply.send(answer.await);
            }
        }
    }

    /// Decides one request against the committed image (`decide` runs the state
    /// machine) and writes its records; the answer once they are applied here.
    async fn execute<T>(
        &mut self,
        decide: impl FnOnce(&mut Self, &MetadataImage, i64) -> Decision<T>,
    ) -> Result<Answer<T>, SubmitError> {
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
        let (records, reply) = decide(self, &image, now_ms());
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

    /// Registers a broker; one that is not a voter is also added to the quorum as
    /// a learner once registered.
    fn register(&mut self, image: &MetadataImage, r: RegisterBroker, now: i64) -> Decision<i64> {
        let learner = self.learner_to_add(&r);
        if r.id == self.node_id {
            // This process is that broker: its previous incarnation is gone.
            self.controller.forget_session(r.id);
        }
        let decision = decided(self.controller.register_broker(image, r, now));
        if let (Some((id, addr)), Ok(_)) = (learner, &decision.1) {
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
        decision
    }

    /// For the registration of a broker that is not a voter: its id and the
    /// controller listener the metadata log reaches it on.
    fn learner_to_add(&self, r: &RegisterBroker) -> Option<(i32, String)> {
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
}
