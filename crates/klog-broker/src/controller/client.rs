//! Reaching the active controller from any node (KIP-590's forwarding).
//!
//! A node that is itself the active controller hands requests to its own
//! [`ControllerHandle`]. Any other node sends them to the quorum leader's
//! controller listener: broker lifecycle and ISR changes as Kafka's own controller
//! APIs (BrokerRegistration 62, BrokerHeartbeat 63, AlterPartition 56,
//! AllocateProducerIds 67), and an admin request a client sent it whole, inside an
//! Envelope (58). The answer carries the metadata log offset of the records it
//! wrote (in the Envelope response, as a klog tagged field), and the forwarder
//! waits until its own image has applied that offset before it answers: a client
//! that created a topic through any broker sees it in that broker's Metadata next.
//!
//! `NOT_CONTROLLER` and broken connections are retried against the leader of the
//! moment, until a deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use klog_client::conn::Connection;
use klog_codec::protocol::messages::alter_partition_request::{PartitionData, TopicData};
use klog_codec::protocol::messages::broker_registration_request::Listener;
use klog_codec::protocol::messages::{
    AllocateProducerIdsRequest, AlterPartitionRequest, BrokerHeartbeatRequest, BrokerId,
    BrokerRegistrationRequest, EnvelopeRequest,
};
use klog_codec::protocol::{ResponseError, StrBytes};
use klog_coordinator::metadata::{
    AlterPartition, Heartbeat, HeartbeatReply, MetadataImage, RegisterBroker,
};
use klog_replication::PartitionRegistration;
use tokio::sync::watch;

use crate::controller::runtime::{
    AlterPartitionReply, Answer, ControllerHandle, Refusal, SubmitError,
};
use crate::metadata::store::MetadataStore;

/// The Envelope response's tagged field carrying the metadata log offset of the
/// forwarded request's records (a klog extension: unknown tags are skipped by any
/// other reader).
pub const OFFSET_TAG: i32 = 0x6b6c; // "kl"

/// How long a request keeps trying to reach an active controller.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request could not be answered by a controller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// No active controller answered before the deadline (the client retries).
    #[error("no active controller answered")]
    Unavailable,
    /// The node is stopping.
    #[error("stopped")]
    Stopped,
}

impl ForwardError {
    /// The Kafka error code a client gets for it.
    pub fn code(&self) -> i16 {
        match self {
            ForwardError::Unavailable | ForwardError::Stopped => {
                ResponseError::NotController.code()
            }
        }
    }
}

/// Sends requests to the active controller, wherever it is.
#[derive(Debug)]
pub struct ControllerClient {
    node_id: i32,
    local: Option<ControllerHandle>,
    /// Controller listener of each voter.
    voters: BTreeMap<i32, String>,
    leader: watch::Receiver<Option<u64>>,
    store: Arc<MetadataStore>,
    connections: Mutex<HashMap<i32, Arc<Connection>>>,
    /// Which voter to try next while the leader is unknown (a broker-only node
    /// before it receives the metadata log).
    probe: std::sync::atomic::AtomicUsize,
}

impl ControllerClient {
    /// A client for node `node_id`: `local` is its own controller runtime (a
    /// controller node), `voters` the controller listeners, `leader` the quorum's
    /// leader as this node knows it.
    pub fn new(
        node_id: i32,
        local: Option<ControllerHandle>,
        voters: BTreeMap<i32, String>,
        leader: watch::Receiver<Option<u64>>,
        store: Arc<MetadataStore>,
    ) -> Self {
        Self {
            node_id,
            local,
            voters,
            leader,
            store,
            connections: Mutex::new(HashMap::new()),
            probe: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The node that is (or will be) the active controller as far as this node
    /// knows: the quorum leader.
    pub fn controller_id(&self) -> Option<i32> {
        (*self.leader.borrow()).and_then(|l| i32::try_from(l).ok())
    }

    /// This node's own controller runtime, when it is the active controller.
    pub fn local_active(&self) -> Option<&ControllerHandle> {
        self.local.as_ref().filter(|h| h.is_active())
    }

    /// The image this node serves from.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.store.image()
    }

    /// `BrokerRegistration` at the active controller: the broker epoch.
    pub async fn register(
        &self,
        request: RegisterBroker,
    ) -> Result<Result<i64, Refusal>, ForwardError> {
        self.submit(&Register(request)).await
    }

    /// `BrokerHeartbeat` at the active controller.
    pub async fn heartbeat(
        &self,
        request: Heartbeat,
    ) -> Result<Result<HeartbeatReply, Refusal>, ForwardError> {
        self.submit(&Beat(request)).await
    }

    /// `AlterPartition` at the active controller, for the leader `broker` at its
    /// broker `epoch`: each partition's new registration or error code, in the
    /// order given.
    pub async fn alter_partition(
        &self,
        broker: i32,
        epoch: i64,
        partitions: Vec<AlterPartition>,
    ) -> Result<Result<AlterPartitionReply, Refusal>, ForwardError> {
        self.submit(&AlterIsr {
            broker,
            epoch,
            partitions,
        })
        .await
    }

    /// `AllocateProducerIds` at the active controller: a block of producer ids,
    /// as its first id and count.
    pub async fn allocate_producer_ids(
        &self,
        broker: i32,
        epoch: i64,
    ) -> Result<Result<(i64, i64), Refusal>, ForwardError> {
        self.submit(&ProducerIds { broker, epoch }).await
    }

    /// Submits `rpc` to the active controller, here or remote, and waits until
    /// this node's image has applied the answer's records.
    async fn submit<R: Rpc>(&self, rpc: &R) -> Result<Result<R::Reply, Refusal>, ForwardError> {
        let deadline = Instant::now() + FORWARD_TIMEOUT;
        let mut backoff = Duration::from_millis(20);
        loop {
            let attempt = match self.local_active() {
                Some(local) => rpc.local(local).await.map_err(|e| match e {
                    SubmitError::NotController { .. } => None,
                    SubmitError::Stopped => Some(ForwardError::Stopped),
                }),
                None => self.submit_remote(rpc).await.ok_or(None),
            };
            match attempt {
                Ok(answer) => {
                    self.wait_applied(answer.offset, deadline).await;
                    return Ok(answer.reply);
                }
                Err(Some(e)) => return Err(e),
                Err(None) => {}
            }
            if Instant::now() + backoff >= deadline {
                return Err(ForwardError::Unavailable);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Forwards an admin request frame (header and body, as the client sent it) in
    /// an Envelope to the active controller; returns the response frame body (what
    /// follows the correlation id) once this node's image has applied it.
    pub async fn forward(
        &self,
        request_frame: Bytes,
        client_host: &str,
    ) -> Result<Bytes, ForwardError> {
        let deadline = Instant::now() + FORWARD_TIMEOUT;
        let mut backoff = Duration::from_millis(20);
        let envelope = EnvelopeRequest::default()
            .with_request_data(request_frame)
            .with_client_host_address(Bytes::copy_from_slice(client_host.as_bytes()));
        loop {
            if let Some(conn) = self.leader_connection(true).await {
                match conn.send(&envelope) {
                    Ok(fut) => match fut.await {
                        Ok(resp) if resp.error_code == 0 => {
                            let offset = resp
                                .unknown_tagged_fields
                                .get(&OFFSET_TAG)
                                .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
                                .map_or(0, u64::from_be_bytes);
                            if let Some(data) = resp.response_data {
                                self.wait_applied(offset, deadline).await;
                                return Ok(data);
                            }
                        }
                        Ok(resp) => {
                            tracing::debug!(error = resp.error_code, "envelope refused");
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "forwarding failed");
                            self.drop_connection(conn.addr());
                        }
                    },
                    Err(e) => {
                        tracing::debug!(error = %e, "forwarding failed");
                        self.drop_connection(conn.addr());
                    }
                }
            }
            if Instant::now() + backoff >= deadline {
                return Err(ForwardError::Unavailable);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    async fn wait_applied(&self, offset: u64, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        if !self.store.wait_for(offset, left).await {
            tracing::warn!(
                offset,
                "the metadata image did not reach a controller's write in time"
            );
        }
    }

    fn drop_connection(&self, addr: &str) {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, c| c.addr() != addr);
    }

    /// A connection to the quorum leader's controller listener; `None` when that
    /// is this node, unless `to_self`. An Envelope is forwarded only when this
    /// node was not the active controller, but it may become it meanwhile (as its
    /// answering broker does when the active controller crashes): then it goes to
    /// this node's own controller listener, or would wait out [`FORWARD_TIMEOUT`].
    async fn leader_connection(&self, to_self: bool) -> Option<Arc<Connection>> {
        let leader = match self.controller_id() {
            Some(l) if l == self.node_id && !to_self => return None,
            Some(l) => l,
            None => {
                // Unknown: try the voters in turn (one that is not the controller
                // answers NOT_CONTROLLER, and the next attempt moves on).
                let others: Vec<i32> = self
                    .voters
                    .keys()
                    .copied()
                    .filter(|&v| v != self.node_id)
                    .collect();
                let i = self
                    .probe
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *others.get(i % others.len().max(1))?
            }
        };
        let addr = self.voters.get(&leader)?.clone();
        let cached = self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&leader)
            .filter(|c| !c.is_closed())
            .cloned();
        if let Some(c) = cached {
            return Some(c);
        }
        let client_id = StrBytes::from_string(format!("klog-broker-{}", self.node_id));
        match Connection::connect(
            &addr,
            Some(client_id),
            Duration::from_secs(2),
            Duration::from_secs(30),
        )
        .await
        {
            Ok(c) => {
                self.connections
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(leader, c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::debug!(leader, %addr, error = %e, "cannot reach the controller");
                None
            }
        }
    }

    /// Completes once the quorum leader, as this node knows it, is no longer
    /// `target` (at once if it is not now).
    async fn leader_moves_from(&self, target: Option<i32>) {
        let mut leader = self.leader.clone();
        let moved = leader
            .wait_for(|l| (*l).and_then(|l| i32::try_from(l).ok()) != target)
            .await
            .is_ok();
        if !moved {
            // The quorum is gone (shutdown): the request's own timeout decides.
            std::future::pending::<()>().await;
        }
    }

    /// One attempt of `rpc` at the remote leader. `None`: try again (no leader,
    /// NOT_CONTROLLER, a broken connection).
    async fn submit_remote<R: Rpc>(&self, rpc: &R) -> Option<Answer<R::Reply>> {
        let target = self.controller_id();
        let conn = self.leader_connection(false).await?;
        let reply = tokio::select! {
            r = rpc.remote(&conn, &self.store) => r,
            // The quorum elected another leader while the request was out (this node
            // learns it from the quorum itself, from the new leader's first append):
            // try there at once instead of waiting out the old leader's request
            // timeout (30 s), which left a paused or cut-off controller's brokers
            // heartbeating nowhere until the new controller fenced them (issue 29).
            // The four broker RPCs are safe to repeat: a heartbeat or registration
            // is renewed, an AlterPartition carries its partition epoch, a second
            // producer-id block only skips ids.
            () = self.leader_moves_from(target) => None,
        };
        if reply.is_none() && conn.is_closed() {
            self.drop_connection(conn.addr());
        }
        // Kafka's controller APIs carry no metadata log offset: registration's
        // records are applied before the broker's first heartbeat asks to be
        // unfenced, and a new partition epoch reaches the leader through its
        // image, which ignores anything older.
        Some(Answer {
            reply: reply?,
            offset: 0,
        })
    }
}

/// A request that travels to the active controller as one of Kafka's controller
/// APIs. Only the four broker RPCs implement it; the admin commands are run on
/// the active controller's node alone (a broker forwards the client's request
/// whole, [`ControllerClient::forward`]), so forwarding one is a type error.
trait Rpc: Sync {
    /// What the controller answers.
    type Reply: Send;

    /// Hands it to this node's own controller runtime.
    fn local(
        &self,
        controller: &ControllerHandle,
    ) -> impl std::future::Future<Output = Result<Answer<Self::Reply>, SubmitError>> + Send;

    /// Sends it on `conn`. `None`: try again (NOT_CONTROLLER, a broken connection).
    fn remote(
        &self,
        conn: &Connection,
        store: &MetadataStore,
    ) -> impl std::future::Future<Output = Option<Result<Self::Reply, Refusal>>> + Send;
}

/// The reply when `error_code` is 0, else the refusal; `None` for NOT_CONTROLLER.
fn reply_or_refusal<T>(error_code: i16, reply: impl FnOnce() -> T) -> Option<Result<T, Refusal>> {
    if error_code == ResponseError::NotController.code() {
        None
    } else if error_code == 0 {
        Some(Ok(reply()))
    } else {
        Some(Err(Refusal::code(error_code)))
    }
}

/// `BrokerRegistration` (62).
struct Register(RegisterBroker);

impl Rpc for Register {
    type Reply = i64;

    async fn local(&self, controller: &ControllerHandle) -> Result<Answer<i64>, SubmitError> {
        controller.register(self.0.clone()).await
    }

    async fn remote(&self, conn: &Connection, _: &MetadataStore) -> Option<Result<i64, Refusal>> {
        let r = &self.0;
        let req = BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(r.id))
            .with_cluster_id(StrBytes::from_static_str("klog"))
            .with_incarnation_id(incarnation_uuid(&r.incarnation))
            .with_listeners(
                r.endpoints
                    .iter()
                    .map(|e| {
                        Listener::default()
                            .with_name(StrBytes::from_string(e.name.clone()))
                            .with_host(StrBytes::from_string(e.host.clone()))
                            .with_port(e.port)
                    })
                    .collect(),
            )
            .with_rack(r.rack.clone().map(StrBytes::from_string))
            .with_previous_broker_epoch(r.previous_epoch);
        let resp = conn.send(&req).ok()?.await.ok()?;
        reply_or_refusal(resp.error_code, || resp.broker_epoch)
    }
}

/// `BrokerHeartbeat` (63).
struct Beat(Heartbeat);

impl Rpc for Beat {
    type Reply = HeartbeatReply;

    async fn local(
        &self,
        controller: &ControllerHandle,
    ) -> Result<Answer<HeartbeatReply>, SubmitError> {
        controller.heartbeat(self.0).await
    }

    async fn remote(
        &self,
        conn: &Connection,
        _: &MetadataStore,
    ) -> Option<Result<HeartbeatReply, Refusal>> {
        let h = &self.0;
        let req = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(h.id))
            .with_broker_epoch(h.epoch)
            .with_current_metadata_offset(i64::try_from(h.metadata_offset).unwrap_or(i64::MAX))
            .with_want_fence(h.want_fence)
            .with_want_shut_down(h.want_shut_down);
        let resp = conn.send(&req).ok()?.await.ok()?;
        reply_or_refusal(resp.error_code, || HeartbeatReply {
            is_caught_up: resp.is_caught_up,
            is_fenced: resp.is_fenced,
            should_shut_down: resp.should_shut_down,
        })
    }
}

/// `AlterPartition` (56).
struct AlterIsr {
    broker: i32,
    epoch: i64,
    partitions: Vec<AlterPartition>,
}

impl Rpc for AlterIsr {
    type Reply = AlterPartitionReply;

    async fn local(
        &self,
        controller: &ControllerHandle,
    ) -> Result<Answer<AlterPartitionReply>, SubmitError> {
        controller
            .alter_partition(self.broker, self.epoch, self.partitions.clone())
            .await
    }

    async fn remote(
        &self,
        conn: &Connection,
        store: &MetadataStore,
    ) -> Option<Result<AlterPartitionReply, Refusal>> {
        let image = store.image();
        let req = alter_partition_request(&image, self.broker, self.epoch, &self.partitions);
        let resp = conn.send(&req).ok()?.await.ok()?;
        reply_or_refusal(resp.error_code, || {
            self.partitions
                .iter()
                .map(|p| {
                    let found = resp.topics.iter().find_map(|t| {
                        let name = image.topic_by_id(topic_id(t.topic_id))?.name.clone();
                        (name == p.topic)
                            .then_some(t)?
                            .partitions
                            .iter()
                            .find(|x| x.partition_index == p.partition)
                    });
                    match found {
                        Some(x) if x.error_code == 0 => {
                            let old = image.partition(&p.topic, p.partition);
                            Ok(PartitionRegistration {
                                replicas: old.map(|o| o.replicas.clone()).unwrap_or_default(),
                                isr: x.isr.iter().map(|b| b.0).collect(),
                                elr: old.map(|o| o.elr.clone()).unwrap_or_default(),
                                leader: x.leader_id.0,
                                leader_epoch: x.leader_epoch,
                                partition_epoch: x.partition_epoch,
                                last_known_leader: klog_replication::NO_LEADER,
                            })
                        }
                        Some(x) => Err(x.error_code),
                        None => Err(ResponseError::UnknownTopicOrPartition.code()),
                    }
                })
                .collect()
        })
    }
}

/// `AllocateProducerIds` (67).
struct ProducerIds {
    broker: i32,
    epoch: i64,
}

impl Rpc for ProducerIds {
    type Reply = (i64, i64);

    async fn local(
        &self,
        controller: &ControllerHandle,
    ) -> Result<Answer<(i64, i64)>, SubmitError> {
        controller
            .allocate_producer_ids(self.broker, self.epoch)
            .await
    }

    async fn remote(
        &self,
        conn: &Connection,
        _: &MetadataStore,
    ) -> Option<Result<(i64, i64), Refusal>> {
        let req = AllocateProducerIdsRequest::default()
            .with_broker_id(BrokerId(self.broker))
            .with_broker_epoch(self.epoch);
        let resp = conn.send(&req).ok()?.await.ok()?;
        reply_or_refusal(resp.error_code, || {
            (resp.producer_id_start.0, i64::from(resp.producer_id_len))
        })
    }
}

/// A Kafka topic id (UUID) from klog's.
pub fn uuid_of(id: klog_coordinator::metadata::TopicId) -> uuid::Uuid {
    uuid::Uuid::from_u128(id.0)
}

/// klog's topic id from a Kafka topic id.
pub fn topic_id(u: uuid::Uuid) -> klog_coordinator::metadata::TopicId {
    klog_coordinator::metadata::TopicId(u.as_u128())
}

/// The incarnation id (a UUID in Kafka) from klog's incarnation string, which is
/// 32 hex digits.
pub fn incarnation_uuid(incarnation: &str) -> uuid::Uuid {
    u128::from_str_radix(incarnation, 16).map_or(uuid::Uuid::nil(), uuid::Uuid::from_u128)
}

/// AlterPartition (v2, topic ids) for ISR changes of `broker` at `epoch`.
pub fn alter_partition_request(
    image: &MetadataImage,
    broker: i32,
    epoch: i64,
    partitions: &[AlterPartition],
) -> AlterPartitionRequest {
    let mut topics: BTreeMap<uuid::Uuid, Vec<PartitionData>> = BTreeMap::new();
    for p in partitions {
        let Some(t) = image.topic(&p.topic) else {
            continue;
        };
        topics.entry(uuid_of(t.id)).or_default().push(
            PartitionData::default()
                .with_partition_index(p.partition)
                .with_leader_epoch(p.leader_epoch)
                .with_new_isr(p.isr.iter().copied().map(BrokerId).collect())
                .with_partition_epoch(p.partition_epoch),
        );
    }
    AlterPartitionRequest::default()
        .with_broker_id(BrokerId(broker))
        .with_broker_epoch(epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(id, partitions)| {
                    TopicData::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}
