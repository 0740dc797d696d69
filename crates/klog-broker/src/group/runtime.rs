//! The tokio side of consumer groups: owns the [`GroupCoordinator`] state machine,
//! turns group requests into its events, performs the actions it hands back, and
//! drives its timers.
//!
//! ```text
//!  JoinGroup/SyncGroup ──► coordinator.join/sync ──► RespondJoin/RespondSync
//!      │ (await a oneshot keyed by RequestId)            │ completes the oneshot
//!  Heartbeat, LeaveGroup, OffsetCommit, ... ──► immediate answer
//!  timer task, asleep until coordinator.next_deadline() or woken by any event
//!                       ──► coordinator.tick(now)
//!  PersistOffsets / PersistGroupMetadata ──► BatchBuilder batch ──► Partition::append
//!                                               on __consumer_offsets (like Produce)
//! ```
//!
//! One mutex guards the state machine and the table of waiting requests; actions are
//! performed under it, in order, so a record is appended before any response that
//! depends on it is released. Appends go to the page cache (flushed like any log),
//! so holding the lock across them is short.
//!
//! At start-up the `__consumer_offsets` topic is created if missing
//! (`offsets.topic.num.partitions`, no time retention, since klog has no log
//! compaction yet).
//!
//! A partition of it that this broker comes to lead is loaded in the background
//! (as Kafka's `GroupMetadataManager.scheduleLoadGroupAndOffsets`), never under the
//! mutex nor on an async worker thread:
//!
//! ```text
//!  publisher: BecameLeader(p) ─► load_partition(p): under the mutex, unload p's
//!       groups, mark p loading with a fresh load id; spawn ──┐
//!                                                            ▼
//!  task::blocking: read and decode p's log (no groups mutex) ──► install(p, id):
//!       under the mutex, if p is still loading with this id, coordinator.load_partition
//!  meanwhile: requests for p's groups ─► COORDINATOR_LOAD_IN_PROGRESS (retriable)
//!  StoppedLeading(p) / a later BecameLeader(p): the mark goes / gets a new id, so the
//!       load in flight finds itself superseded and installs nothing
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use klog_codec::protocol::messages::delete_groups_response::DeletableGroupResult;
use klog_codec::protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use klog_codec::protocol::messages::leave_group_response::MemberResponse;
use klog_codec::protocol::messages::list_groups_response::ListedGroup;
use klog_codec::protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use klog_codec::protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use klog_codec::protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use klog_codec::protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
    join_group_response::JoinGroupResponseMember,
};
use klog_codec::protocol::{RequestHeader, ResponseError, StrBytes};
use klog_coordinator::{
    Action, CommitId, CommitPartition, CoordinatorConfig, GroupCoordinator, JoinResponse,
    LoadRecord, MemberRef, OFFSETS_TOPIC, OffsetCommit, Protocol, RequestId, SyncResponse,
    build_batch,
};
use tokio::sync::{Notify, oneshot, watch};

use crate::config::BrokerConfig;
use crate::controller::auto_create::TopicCreator;
use crate::metadata::store::MetadataStore;
use crate::replica::manager::ReplicaManager;
use crate::replica::partition::Partition;
use klog_rt::clock::now_ms;

/// The error message transactional requests get: klog has no transactions.
const TRANSACTIONS_UNSUPPORTED: &str = "klog does not support transactions (no transaction coordinator); \
     use an idempotent producer without transactional.id";

/// How long the timer task sleeps when the coordinator has no deadline at all.
const IDLE_SLEEP: Duration = Duration::from_secs(3600);

/// `segment.bytes` of `__consumer_offsets` (Kafka's `offsets.topic.segment.bytes`).
const OFFSETS_SEGMENT_BYTES: &str = "104857600";

struct Inner {
    coordinator: GroupCoordinator,
    next_request: RequestId,
    joins: HashMap<RequestId, oneshot::Sender<JoinResponse>>,
    syncs: HashMap<RequestId, oneshot::Sender<SyncResponse>>,
    /// The `__consumer_offsets` partitions being loaded in the background. The
    /// coordinator holds none of their groups meanwhile, and no request reaches
    /// them: each is answered COORDINATOR_LOAD_IN_PROGRESS (see
    /// [`Groups::refusal`]).
    ///
    /// Loading is tracked here, not in the coordinator: to the state machine a
    /// loading partition is one whose groups it does not hold yet, exactly as
    /// for a partition this broker does not lead, and which requests it may see
    /// is the runtime's routing decision (as NOT_COORDINATOR is); the answer
    /// also differs per request in wire-compatibility ways (SyncGroup says
    /// REBALANCE_IN_PROGRESS, Heartbeat says nothing is wrong), which belong
    /// with the rest of the request mapping.
    loading: HashMap<i32, Loading>,
    /// The id of the last load started; ids are never reused.
    last_load: u64,
}

/// One background load in flight.
struct Loading {
    /// Which load may install its records: a later load of the same partition
    /// (a new leader epoch) replaces the entry, and an unload removes it, so a
    /// load that finds another id here (or none) was superseded and installs
    /// nothing.
    id: u64,
    /// Topics deleted while the load was in flight: the records it read may
    /// still hold their offsets, removed once it installs.
    deleted_topics: Vec<String>,
}

/// Consumer-group support of the broker.
pub struct Groups {
    inner: Mutex<Inner>,
    config: BrokerConfig,
    /// The hosted `__consumer_offsets` partitions the coordinator's records go to
    /// (Kafka's `PartitionWriter`: append, then wait for the high watermark).
    replicas: Arc<ReplicaManager>,
    store: Arc<MetadataStore>,
    /// Creates `__consumer_offsets` when it does not exist yet.
    creator: Arc<TopicCreator>,
    /// Signalled whenever a request touches the state machine, so the timer task
    /// recomputes its next deadline (a new member's session, a rebalance that
    /// started) instead of polling.
    wake: Notify,
    /// How many `__consumer_offsets` partitions are loading ([`Groups::loaded`]).
    loading: watch::Sender<usize>,
    /// A test's hold on background loads.
    #[cfg(test)]
    hold: Mutex<Option<Arc<tests::LoadHold>>>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups").finish_non_exhaustive()
    }
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

impl Groups {
    /// A coordinator configured from the broker's settings, with no groups loaded.
    pub fn new(
        config: &BrokerConfig,
        replicas: Arc<ReplicaManager>,
        store: Arc<MetadataStore>,
        creator: Arc<TopicCreator>,
    ) -> Self {
        let coordinator = GroupCoordinator::new(CoordinatorConfig {
            offsets_topic_partitions: config.offsets_topic_partitions,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            offsets_retention_ms: config.offsets_retention_ms,
            offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
            member_id_seed: member_id_seed(),
            ..CoordinatorConfig::default()
        });
        Self {
            inner: Mutex::new(Inner {
                coordinator,
                next_request: 0,
                joins: HashMap::new(),
                syncs: HashMap::new(),
                loading: HashMap::new(),
                last_load: 0,
            }),
            wake: Notify::new(),
            loading: watch::Sender::new(0),
            #[cfg(test)]
            hold: Mutex::new(None),
            config: config.clone(),
            replicas,
            store,
            creator,
        }
    }

    /// Locks the state machine to feed it an event, and tells the timer task to
    /// look at its deadlines again once the event is in.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.wake.notify_one();
        self.lock_quiet()
    }

    /// Locks without waking the timer task (the timer task's own lock).
    fn lock_quiet(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At start: `__consumer_offsets`, if it exists, decides how groups map to its
    /// partitions; those this broker leads are loaded as the replica manager
    /// reports them ([`Groups::load_partition`]). On a single node the topic is
    /// created at once, as before the quorum; a cluster creates it on the first
    /// FindCoordinator, when its brokers have registered.
    pub async fn start(&self) {
        if self.store.image().topic(OFFSETS_TOPIC).is_none() && self.config.cluster.is_single_node()
        {
            self.create_offsets_topic().await;
        }
        self.adopt_partition_count();
    }

    /// Keeps the coordinator's group-to-partition mapping that of the existing
    /// topic, whatever `offsets.topic.num.partitions` says now (the mapping must
    /// match the records already written).
    fn adopt_partition_count(&self) {
        let Some(count) = self
            .store
            .image()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as i32)
        else {
            return;
        };
        let mut inner = self.lock();
        if inner.coordinator.config().offsets_topic_partitions != count {
            tracing::warn!(
                existing = count,
                configured = self.config.offsets_topic_partitions,
                "{OFFSETS_TOPIC} exists with a different partition count; using the existing one"
            );
            let mut config = inner.coordinator.config().clone();
            config.offsets_topic_partitions = count;
            inner.coordinator = GroupCoordinator::new(config);
        }
    }

    /// Creates `__consumer_offsets` through the controller, with
    /// `offsets.topic.replication.factor` replicas capped at the active brokers
    /// (warned about), so that one broker still works with zero config.
    async fn create_offsets_topic(&self) {
        let image = self.store.image();
        let active = image.active_brokers().len().max(1);
        let wanted = self.config.cluster.offsets_topic_replication_factor;
        let rf = (wanted as usize).min(active) as i16;
        if (rf as usize) < wanted as usize {
            if capped_rf_deserves_warning(&self.config.cluster) {
                tracing::warn!(
                    wanted,
                    replication_factor = rf,
                    brokers = active,
                    "creating {OFFSETS_TOPIC} with fewer replicas than offsets.topic.replication.factor: not enough brokers"
                );
            } else {
                tracing::info!(
                    replication_factor = rf,
                    "creating {OFFSETS_TOPIC} with one replica (a single node)"
                );
            }
        }
        let topic = klog_coordinator::metadata::CreateTopic {
            name: OFFSETS_TOPIC.to_owned(),
            num_partitions: self.config.offsets_topic_partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: [
                ("retention.ms".to_owned(), "-1".to_owned()),
                ("segment.bytes".to_owned(), OFFSETS_SEGMENT_BYTES.to_owned()),
                ("cleanup.policy".to_owned(), "compact".to_owned()),
            ]
            .into_iter()
            .collect(),
        };
        for (name, error) in self.creator.create_internal(vec![topic], true).await {
            if error != 0 && error != code(ResponseError::TopicAlreadyExists) {
                tracing::warn!(
                    topic = name,
                    error,
                    "could not create the offsets topic yet"
                );
            }
        }
    }

    /// Why this broker cannot answer for `group` now, if it cannot: it does not
    /// lead the group's partition of `__consumer_offsets` (NOT_COORDINATOR: the
    /// client looks the coordinator up again), or it is still loading it
    /// (COORDINATOR_LOAD_IN_PROGRESS: the client retries). Asked under the same
    /// lock as the event the request then feeds the coordinator, so that nothing
    /// reaches a partition's groups between the start of its load and the install
    /// (an offset committed in between would be lost when the load installs).
    fn refusal(&self, inner: &Inner, group: &str) -> Option<ResponseError> {
        let partition = inner.coordinator.partition_for(group);
        let leads = self
            .replicas
            .partition(OFFSETS_TOPIC, partition)
            .is_some_and(|p| p.is_leader());
        if !leads {
            Some(ResponseError::NotCoordinator)
        } else if inner.loading.contains_key(&partition) {
            Some(ResponseError::CoordinatorLoadInProgress)
        } else {
            None
        }
    }

    /// Publishes how many partitions are loading, for [`Groups::loaded`].
    fn loading_changed(&self, inner: &Inner) {
        self.loading.send_replace(inner.loading.len());
    }

    /// Waits until no `__consumer_offsets` partition is loading: every partition
    /// this broker leads (as far as the metadata it has served says) is in the
    /// coordinator. For tests and tools; requests never wait for it.
    pub async fn loaded(&self) {
        let mut rx = self.loading.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// This broker stopped leading `index` of `__consumer_offsets`: its groups
    /// leave memory, and members waiting in them hear NOT_COORDINATOR.
    /// A load of it still in flight is abandoned: it installs nothing.
    pub fn unload_partition(&self, index: i32) {
        let mut inner = self.lock();
        inner.loading.remove(&index);
        self.loading_changed(&inner);
        inner.coordinator.unload_partition(index);
        let actions = inner.coordinator.take_actions();
        self.perform(&mut inner, actions);
        tracing::info!(partition = index, "unloaded consumer groups");
    }

    /// Starts loading one `__consumer_offsets` partition this broker now leads,
    /// and returns at once: the log is read and decoded on the blocking pool
    /// ([`klog_client::task::blocking`]) without the groups mutex, and installed
    /// in one short step under it ([`GroupCoordinator::load_partition`]). Until
    /// then the partition's groups answer COORDINATOR_LOAD_IN_PROGRESS.
    ///
    /// Whatever the coordinator still held of the partition (this broker led it
    /// at an earlier epoch, and a new one began without a leader in between) is
    /// unloaded now: requests parked in its groups hear NOT_COORDINATOR and the
    /// groups are rebuilt from the log alone, which the install does again in
    /// case anything slipped in. (Loading over them set the groups Stable with a
    /// member still waiting in a JoinGroup nobody would answer; found by the
    /// simulation, seed 183.)
    ///
    /// Races: each load gets an id recorded with the partition's loading mark.
    /// [`Groups::unload_partition`] removes the mark and a later `load_partition`
    /// (a new epoch) replaces it, so the earlier load, when it finishes, finds
    /// another id or none and installs nothing: a partition is never left loaded
    /// from a read older than its latest leadership. The read starts after the
    /// mark is set, and while it is set no request reaches the partition's
    /// groups, so nothing is appended that the read could miss.
    pub fn load_partition(self: &Arc<Self>, index: i32) {
        self.adopt_partition_count();
        let Some(p) = self
            .replicas
            .topic(OFFSETS_TOPIC)
            .and_then(|t| t.partition(index).cloned())
        else {
            return;
        };
        let id = {
            let mut inner = self.lock();
            inner.last_load += 1;
            let id = inner.last_load;
            inner.loading.insert(
                index,
                Loading {
                    id,
                    deleted_topics: Vec::new(),
                },
            );
            self.loading_changed(&inner);
            inner.coordinator.unload_partition(index);
            let actions = inner.coordinator.take_actions();
            self.perform(&mut inner, actions);
            id
        };
        #[cfg(test)]
        let hold = self.hold.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let groups = Arc::clone(self);
        klog_client::task::spawn(async move {
            let read = klog_client::task::blocking(move || read_partition(index, &p)).await;
            #[cfg(test)]
            if let Some(hold) = &hold {
                hold.wait().await;
            }
            match read {
                Ok(records) => groups.install(index, id, records),
                // A bug (the read panicked): the partition stays loading, its groups
                // answering a retriable error, rather than served from nothing.
                Err(e) => tracing::error!(
                    partition = index,
                    error = %e,
                    "loading consumer groups failed; the partition stays loading"
                ),
            }
            #[cfg(test)]
            if let Some(hold) = &hold {
                hold.tried.send_modify(|n| *n += 1);
            }
        });
    }

    /// Feeds the records of load `id` of partition `index` to the coordinator,
    /// unless that load was superseded (see [`Groups::load_partition`]).
    fn install(&self, index: i32, id: u64, records: Vec<LoadRecord>) {
        let mut inner = self.lock();
        if inner.loading.get(&index).is_none_or(|l| l.id != id) {
            tracing::debug!(
                partition = index,
                load = id,
                "dropping a superseded consumer-group load"
            );
            return;
        }
        let Some(loading) = inner.loading.remove(&index) else {
            return;
        };
        let count = records.len();
        inner.coordinator.load_partition(index, records, now_ms());
        for topic in &loading.deleted_topics {
            inner.coordinator.remove_topic_offsets(topic);
        }
        let actions = inner.coordinator.take_actions();
        if !self.perform(&mut inner, actions) {
            tracing::error!(
                partition = index,
                "could not persist the removal of deleted topics' offsets after loading"
            );
        }
        self.loading_changed(&inner);
        drop(inner);
        tracing::debug!(partition = index, records = count, "loaded consumer groups");
    }

    /// Performs actions in order; returns whether every append succeeded.
    fn perform(&self, inner: &mut Inner, actions: Vec<Action>) -> bool {
        self.perform_appends(inner, actions).is_some()
    }

    /// As [`Groups::perform`], returning the appends made (partition, offset after
    /// the batch), to wait for their replication; `None` if one failed.
    fn perform_appends(
        &self,
        inner: &mut Inner,
        actions: Vec<Action>,
    ) -> Option<Vec<(Arc<crate::replica::partition::Partition>, i64)>> {
        let mut ok = true;
        let mut appended = Vec::new();
        for action in actions {
            match action {
                Action::RespondJoin { request, response } => {
                    if let Some(tx) = inner.joins.remove(&request) {
                        let _ = tx.send(response);
                    }
                }
                Action::RespondSync { request, response } => {
                    if let Some(tx) = inner.syncs.remove(&request) {
                        let _ = tx.send(response);
                    }
                }
                Action::PersistGroupMetadata {
                    partition,
                    group,
                    record,
                } => match append(&self.replicas, partition, &group, &[record]) {
                    Some(a) => appended.push(a),
                    None => ok = false,
                },
                Action::PersistOffsets {
                    partition,
                    group,
                    records,
                    ..
                } => match append(&self.replicas, partition, &group, &records) {
                    Some(a) => appended.push(a),
                    None => ok = false,
                },
            }
        }
        ok.then_some(appended)
    }

    /// Drives `tick` until `stop` turns true: sleeps until the coordinator's next
    /// deadline (a session or rebalance timeout, the offset-expiry check), or until
    /// a request changes the state machine, never on a fixed polling interval.
    pub async fn run_timer(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let groups = &self;
            let deadline = {
                let mut inner = groups.lock_quiet();
                inner.coordinator.tick(now_ms());
                let actions = inner.coordinator.take_actions();
                groups.perform(&mut inner, actions);
                inner.coordinator.next_deadline()
            };
            let sleep = match deadline {
                Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)),
                None => IDLE_SLEEP,
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = groups.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// OffsetCommits whose appends the coordinator waits to hear about: completed with
/// the outcome, or as failed if the request is dropped (its connection closed)
/// while it waits, so no staged offset is left pending for ever.
struct StagedCommits<'a> {
    groups: &'a Groups,
    staged: Vec<(String, CommitId)>,
}

impl<'a> StagedCommits<'a> {
    fn new(groups: &'a Groups, staged: Vec<(String, CommitId)>) -> Self {
        Self { groups, staged }
    }

    /// Reports whether the appends reached the ISR.
    fn complete(mut self, ok: bool) {
        self.finish(ok);
    }

    fn finish(&mut self, ok: bool) {
        if self.staged.is_empty() {
            return;
        }
        let mut inner = self.groups.lock_quiet();
        for (group, id) in self.staged.drain(..) {
            inner.coordinator.complete_commit(&group, id, ok);
        }
    }
}

impl Drop for StagedCommits<'_> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl Groups {
    // -------------------------------------------------------------------------------
    // FindCoordinator

    /// FindCoordinator: the leader of the group's `__consumer_offsets` partition
    /// (created on the first call if missing); COORDINATOR_NOT_AVAILABLE, which
    /// clients retry, while it has none. A transaction coordinator (key type 1)
    /// does not exist.
    pub async fn find_coordinator(
        &self,
        req: &FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let mut r = FindCoordinatorResponse::default();
        if req.key_type != 0 {
            // There is no transaction coordinator (key type 1) until klog has
            // transactions. COORDINATOR_NOT_AVAILABLE would be retried by every client
            // until `max.block.ms`; TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as for
            // InitProducerId, is fatal in the Java client, kafka-python and
            // librdkafka alike, so a transactional producer fails at once.
            r.error_code = if req.key_type == 1 {
                code(ResponseError::TransactionalIdAuthorizationFailed)
            } else {
                code(ResponseError::InvalidRequest)
            };
            r.node_id = BrokerId(-1);
            r.port = -1;
            if version >= 1 {
                r.error_message = Some(str_bytes(if req.key_type == 1 {
                    TRANSACTIONS_UNSUPPORTED
                } else {
                    "unknown coordinator key type"
                }));
            }
            return r;
        }
        if self.store.image().topic(OFFSETS_TOPIC).is_none() {
            self.create_offsets_topic().await;
            self.adopt_partition_count();
        }
        let key = req.key.as_str();
        let partition = self.lock_quiet().coordinator.partition_for(key);
        let image = self.store.image();
        let leader = image.partition(OFFSETS_TOPIC, partition).map(|p| p.leader);
        let listener = &self.config.cluster.inter_broker_listener_name;
        let endpoint = leader
            .and_then(|l| image.brokers.get(&l))
            .filter(|b| !b.fenced)
            .and_then(|b| {
                b.registration
                    .endpoints
                    .iter()
                    .find(|e| &e.name == listener)
                    .or(b.registration.endpoints.first())
                    .map(|e| (b.registration.id, e.host.clone(), e.port))
            });
        match endpoint {
            Some((id, host, port)) => {
                r.node_id = BrokerId(id);
                r.host = str_bytes(host);
                r.port = i32::from(port);
            }
            None => {
                r.error_code = code(ResponseError::CoordinatorNotAvailable);
                r.node_id = BrokerId(-1);
                r.port = -1;
            }
        }
        r
    }

    // -------------------------------------------------------------------------------
    // JoinGroup / SyncGroup (may wait)

    /// JoinGroup: waits until the coordinator answers (the rebalance completes), or
    /// answers NOT_COORDINATOR if the broker stops first.
    pub async fn join_group(
        &self,
        header: &RequestHeader,
        peer: Option<SocketAddr>,
        req: JoinGroupRequest,
        stop: &watch::Receiver<bool>,
    ) -> JoinGroupResponse {
        let version = header.api_version;
        let member_id = req.member_id.as_str().to_owned();
        let rx = {
            let mut inner = self.lock();
            if let Some(e) = self.refusal(&inner, req.group_id.0.as_str()) {
                return JoinGroupResponse::default()
                    .with_error_code(code(e))
                    .with_generation_id(-1)
                    .with_member_id(req.member_id.clone());
            }
            inner.next_request += 1;
            let request = inner.next_request;
            let (tx, rx) = oneshot::channel();
            inner.joins.insert(request, tx);
            let event = klog_coordinator::JoinGroup {
                request,
                version,
                group_id: req.group_id.0.as_str().to_owned(),
                member_id: member_id.clone(),
                group_instance_id: req
                    .group_instance_id
                    .as_ref()
                    .map(|s| s.as_str().to_owned()),
                client_id: header.client_id.clone().unwrap_or_default(),
                client_host: peer.map_or_else(|| "/unknown".to_owned(), |p| format!("/{}", p.ip())),
                session_timeout_ms: req.session_timeout_ms,
                // v0 has no rebalance timeout: Kafka uses the session timeout.
                rebalance_timeout_ms: if version >= 1 {
                    req.rebalance_timeout_ms
                } else {
                    req.session_timeout_ms
                },
                protocol_type: req.protocol_type.as_str().to_owned(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| Protocol {
                        name: p.name.as_str().to_owned(),
                        metadata: p.metadata.clone(),
                    })
                    .collect(),
            };
            inner.coordinator.join(event, now_ms());
            let actions = inner.coordinator.take_actions();
            self.perform(&mut inner, actions);
            rx
        };
        let response = wait(rx, stop).await.unwrap_or_else(|| JoinResponse {
            error: code(ResponseError::NotCoordinator),
            generation_id: -1,
            protocol_name: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
        });
        let mut r = JoinGroupResponse::default()
            .with_error_code(response.error)
            .with_generation_id(response.generation_id)
            // Non-nullable before v7.
            .with_protocol_name(Some(str_bytes(response.protocol_name.unwrap_or_default())))
            .with_leader(str_bytes(response.leader))
            .with_member_id(str_bytes(response.member_id));
        r.members = response
            .members
            .into_iter()
            .map(|m| {
                let mut jm = JoinGroupResponseMember::default()
                    .with_member_id(str_bytes(m.member_id))
                    .with_metadata(m.metadata);
                if version >= 5 {
                    jm.group_instance_id = m.group_instance_id.map(str_bytes);
                }
                jm
            })
            .collect();
        r
    }

    /// SyncGroup: waits for the leader's assignment. While the group's partition
    /// loads, REBALANCE_IN_PROGRESS, as Kafka answers: the rebalance the member
    /// was in is lost with the old coordinator's memory, the member rejoins, and
    /// older clients do not expect COORDINATOR_LOAD_IN_PROGRESS here.
    pub async fn sync_group(
        &self,
        req: SyncGroupRequest,
        stop: &watch::Receiver<bool>,
    ) -> SyncGroupResponse {
        let rx = {
            let mut inner = self.lock();
            match self.refusal(&inner, req.group_id.0.as_str()) {
                None => {}
                Some(ResponseError::CoordinatorLoadInProgress) => {
                    return SyncGroupResponse::default()
                        .with_error_code(code(ResponseError::RebalanceInProgress));
                }
                Some(e) => return SyncGroupResponse::default().with_error_code(code(e)),
            }
            inner.next_request += 1;
            let request = inner.next_request;
            let (tx, rx) = oneshot::channel();
            inner.syncs.insert(request, tx);
            let event = klog_coordinator::SyncGroup {
                request,
                group_id: req.group_id.0.as_str().to_owned(),
                generation_id: req.generation_id,
                member_id: req.member_id.as_str().to_owned(),
                group_instance_id: req
                    .group_instance_id
                    .as_ref()
                    .map(|s| s.as_str().to_owned()),
                assignments: req
                    .assignments
                    .iter()
                    .map(|a| (a.member_id.as_str().to_owned(), a.assignment.clone()))
                    .collect(),
            };
            inner.coordinator.sync(event, now_ms());
            let actions = inner.coordinator.take_actions();
            self.perform(&mut inner, actions);
            rx
        };
        let mut response = wait(rx, stop).await.unwrap_or(SyncResponse {
            error: code(ResponseError::NotCoordinator),
            assignment: Bytes::new(),
        });
        if response.error == 0 && !self.group_records_replicated(req.group_id.0.as_str()).await {
            // As Kafka's SyncGroup answers only once the group's assignment is
            // written with acks=all: a member must not take up an assignment that a
            // coordinator elected after a failover would not know (it would start
            // the group over, and hand out the same generation and member ids to
            // others). The member rejoins.
            response = SyncResponse {
                error: code(ResponseError::CoordinatorNotAvailable),
                assignment: Bytes::new(),
            };
        }
        SyncGroupResponse::default()
            .with_error_code(response.error)
            .with_assignment(response.assignment)
    }

    /// Waits (at most 5 s) until everything this broker's log holds of the
    /// `__consumer_offsets` partition of `group`, the group's latest records among
    /// it, is on the partition's ISR. False if it is not by then, or if this broker
    /// no longer leads the partition.
    async fn group_records_replicated(&self, group: &str) -> bool {
        let index = self.lock_quiet().coordinator.partition_for(group);
        let Some(p) = self.replicas.partition(OFFSETS_TOPIC, index) else {
            return false;
        };
        let log_end = p.log().log_end_offset();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        p.await_committed(log_end, deadline).await == klog_replication::ProduceOutcome::Committed
    }

    // -------------------------------------------------------------------------------
    // Immediate answers

    /// Heartbeat. While the group's partition loads, no error, as Kafka answers
    /// ("the group is still loading, so respond just blocking the heartbeat"):
    /// the member's session starts once the group is loaded.
    pub fn heartbeat(&self, req: &HeartbeatRequest) -> HeartbeatResponse {
        let mut inner = self.lock();
        match self.refusal(&inner, req.group_id.0.as_str()) {
            None => {}
            Some(ResponseError::CoordinatorLoadInProgress) => return HeartbeatResponse::default(),
            Some(e) => return HeartbeatResponse::default().with_error_code(code(e)),
        }
        let error = inner.coordinator.heartbeat(
            req.group_id.0.as_str(),
            req.generation_id,
            &MemberRef {
                member_id: req.member_id.as_str().to_owned(),
                group_instance_id: req
                    .group_instance_id
                    .as_ref()
                    .map(|s| s.as_str().to_owned()),
            },
            now_ms(),
        );
        HeartbeatResponse::default().with_error_code(error)
    }

    /// LeaveGroup: one member (v0-2) or a batch (v3).
    pub fn leave_group(&self, req: &LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let members: Vec<MemberRef> = if version >= 3 {
            req.members
                .iter()
                .map(|m| MemberRef {
                    member_id: m.member_id.as_str().to_owned(),
                    group_instance_id: m.group_instance_id.as_ref().map(|s| s.as_str().to_owned()),
                })
                .collect()
        } else {
            vec![MemberRef {
                member_id: req.member_id.as_str().to_owned(),
                group_instance_id: None,
            }]
        };
        let result = {
            let mut inner = self.lock();
            if let Some(e) = self.refusal(&inner, req.group_id.0.as_str()) {
                return LeaveGroupResponse::default().with_error_code(code(e));
            }
            let result = inner
                .coordinator
                .leave(req.group_id.0.as_str(), members, now_ms());
            let actions = inner.coordinator.take_actions();
            self.perform(&mut inner, actions);
            result
        };
        if version < 3 {
            let error = result.members.first().map_or(result.error, |(_, e)| *e);
            return LeaveGroupResponse::default().with_error_code(if result.error != 0 {
                result.error
            } else {
                error
            });
        }
        LeaveGroupResponse::default()
            .with_error_code(result.error)
            .with_members(
                result
                    .members
                    .into_iter()
                    .map(|(m, e)| {
                        MemberResponse::default()
                            .with_member_id(str_bytes(m.member_id))
                            .with_group_instance_id(m.group_instance_id.map(str_bytes))
                            .with_error_code(e)
                    })
                    .collect(),
            )
    }

    /// OffsetCommit: accepted offsets are appended to `__consumer_offsets` before the
    /// response; if that append fails they are reported COORDINATOR_NOT_AVAILABLE
    /// (retriable). A partition that does not exist gets UNKNOWN_TOPIC_OR_PARTITION
    /// and nothing is stored for it: as in Kafka, partitions are checked against the
    /// topic metadata before the coordinator sees them, whatever the group's state.
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS, when this broker cannot
    /// answer for the group, goes to every partition.
    pub async fn offset_commit(
        &self,
        req: &OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        // Every requested partition in request order, with whether it exists; the
        // coordinator is given only those that do.
        let mut requested: Vec<(&str, i32, bool)> = Vec::new();
        let mut offsets = Vec::new();
        for t in &req.topics {
            let topic = t.name.0.as_str();
            for p in &t.partitions {
                let exists = self
                    .store
                    .image()
                    .partition(topic, p.partition_index)
                    .is_some();
                requested.push((topic, p.partition_index, exists));
                if exists {
                    offsets.push(CommitPartition {
                        topic: topic.to_owned(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p.committed_metadata.as_ref().map(|m| m.as_str().to_owned()),
                    });
                }
            }
        }
        let event = OffsetCommit {
            group_id: req.group_id.0.as_str().to_owned(),
            generation_id: req.generation_id_or_member_epoch,
            member_id: req.member_id.as_str().to_owned(),
            group_instance_id: req
                .group_instance_id
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            retention_time_ms: if version <= 4 {
                req.retention_time_ms
            } else {
                -1
            },
            offsets,
        };
        let (refused, results, appended, staged) = {
            let mut inner = self.lock();
            let refused = self.refusal(&inner, req.group_id.0.as_str());
            if event.offsets.is_empty() || refused.is_some() {
                // Nothing the coordinator may store: it is not asked at all.
                drop(inner);
                (
                    refused,
                    Vec::new(),
                    Some(Vec::new()),
                    StagedCommits::new(self, Vec::new()),
                )
            } else {
                let results = inner.coordinator.commit_offsets(event, now_ms());
                let actions = inner.coordinator.take_actions();
                let staged: Vec<(String, CommitId)> = actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::PersistOffsets {
                            group,
                            commit: Some(id),
                            ..
                        } => Some((group.clone(), *id)),
                        _ => None,
                    })
                    .collect();
                let appended = self.perform_appends(&mut inner, actions);
                (None, results, appended, StagedCommits::new(self, staged))
            }
        };
        // Committed only once the offsets are on the ISR of their partition
        // (acks=all, as Kafka writes them): a new coordinator must find them.
        // Until then OffsetFetch answers the offsets committed before.
        let mut persisted = appended.is_some();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        for (p, offset) in appended.unwrap_or_default() {
            persisted &= p.await_committed(offset, deadline).await
                == klog_replication::ProduceOutcome::Committed;
        }
        staged.complete(persisted);
        // The coordinator answers each offset it was given, in order.
        let mut results = results.into_iter();
        let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
        for (topic, partition, exists) in requested {
            let error = if let Some(e) = refused {
                code(e)
            } else if !exists {
                code(ResponseError::UnknownTopicOrPartition)
            } else {
                match results.next() {
                    Some((_, _, 0)) if !persisted => code(ResponseError::CoordinatorNotAvailable),
                    Some((_, _, error)) => error,
                    None => code(ResponseError::UnknownServerError),
                }
            };
            let p = OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(error);
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == topic => t.partitions.push(p),
                _ => topics.push(
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// OffsetFetch: `topics = null` (v2+) fetches every committed partition.
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS as the top-level error
    /// (and, before v2, which has none, on every requested partition, as Kafka's
    /// `OffsetFetchRequest.getErrorResponse`: an empty answer would read as "no
    /// offsets committed" and reset the consumer).
    pub fn offset_fetch(&self, req: &OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let wanted: Option<Vec<(String, i32)>> = req.topics.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(|p| (t.name.0.as_str().to_owned(), *p))
                })
                .collect()
        });
        let fetched = {
            let inner = self.lock();
            if let Some(e) = self.refusal(&inner, req.group_id.0.as_str()) {
                drop(inner);
                return offset_fetch_error(req, version, e);
            }
            inner
                .coordinator
                .fetch_offsets(req.group_id.0.as_str(), wanted.as_deref())
        };
        let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
        for f in fetched {
            let mut p = OffsetFetchResponsePartition::default()
                .with_partition_index(f.partition)
                .with_committed_offset(f.offset)
                .with_metadata(Some(str_bytes(f.metadata)));
            if version >= 5 {
                p.committed_leader_epoch = f.leader_epoch;
            }
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == f.topic => t.partitions.push(p),
                _ => topics.push(
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(f.topic)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        OffsetFetchResponse::default().with_topics(topics)
    }

    /// A topic was deleted: committed offsets for it disappear from every group (and
    /// from `__consumer_offsets`, by tombstones).
    /// Loads in flight remove them once they install.
    pub fn topic_deleted(&self, topic: &str) {
        let mut inner = self.lock();
        for l in inner.loading.values_mut() {
            l.deleted_topics.push(topic.to_owned());
        }
        inner.coordinator.remove_topic_offsets(topic);
        let actions = inner.coordinator.take_actions();
        if !self.perform(&mut inner, actions) {
            tracing::error!(
                topic,
                "could not persist the removal of a deleted topic's offsets"
            );
        }
    }

    /// ListGroups.
    pub fn list_groups(&self, _req: &ListGroupsRequest) -> ListGroupsResponse {
        let groups = self
            .lock()
            .coordinator
            .list_groups()
            .into_iter()
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(g.group_id)))
                    .with_protocol_type(str_bytes(g.protocol_type))
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    /// DescribeGroups. A group this broker cannot answer for gets
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS.
    pub fn describe_groups(
        &self,
        req: &DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let inner = self.lock();
        let groups = req
            .groups
            .iter()
            .map(|id| {
                if let Some(e) = self.refusal(&inner, id.0.as_str()) {
                    return DescribedGroup::default()
                        .with_group_id(id.clone())
                        .with_error_code(code(e));
                }
                let d = inner.coordinator.describe_group(id.0.as_str());
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_group_state(str_bytes(d.state.name()))
                    .with_protocol_type(str_bytes(d.protocol_type))
                    .with_protocol_data(str_bytes(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                let mut dm = DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment);
                                if version >= 4 {
                                    dm.group_instance_id = m.group_instance_id.map(str_bytes);
                                }
                                dm
                            })
                            .collect(),
                    )
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups. A group this broker cannot answer for gets NOT_COORDINATOR
    /// or COORDINATOR_LOAD_IN_PROGRESS; the others are deleted if empty.
    pub fn delete_groups(&self, req: &DeleteGroupsRequest) -> DeleteGroupsResponse {
        let results = {
            let mut inner = self.lock();
            let refused: Vec<(String, Option<ResponseError>)> = req
                .groups_names
                .iter()
                .map(|g| (g.0.as_str().to_owned(), self.refusal(&inner, g.0.as_str())))
                .collect();
            let ids: Vec<String> = refused
                .iter()
                .filter(|(_, e)| e.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            let mut deleted = inner.coordinator.delete_groups(&ids, now_ms()).into_iter();
            let actions = inner.coordinator.take_actions();
            self.perform(&mut inner, actions);
            // The coordinator answers each group it was given, in order.
            refused
                .into_iter()
                .map(|(id, e)| match e {
                    Some(e) => (id, code(e)),
                    None => deleted
                        .next()
                        .unwrap_or((id, code(ResponseError::UnknownServerError))),
                })
                .collect::<Vec<_>>()
        };
        DeleteGroupsResponse::default().with_results(
            results
                .into_iter()
                .map(|(g, e)| {
                    DeletableGroupResult::default()
                        .with_group_id(GroupId(str_bytes(g)))
                        .with_error_code(e)
                })
                .collect(),
        )
    }

    /// OffsetDelete. NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS as the
    /// top-level error when this broker cannot answer for the group.
    pub fn offset_delete(&self, req: &OffsetDeleteRequest) -> OffsetDeleteResponse {
        let partitions: Vec<(String, i32)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.as_str().to_owned(), p.partition_index))
            })
            .collect();
        let (error, results) = {
            let mut inner = self.lock();
            if let Some(e) = self.refusal(&inner, req.group_id.0.as_str()) {
                return OffsetDeleteResponse::default().with_error_code(code(e));
            }
            let r = inner
                .coordinator
                .delete_offsets(req.group_id.0.as_str(), &partitions);
            let actions = inner.coordinator.take_actions();
            self.perform(&mut inner, actions);
            r
        };
        let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
        for (topic, partition, e) in results {
            let p = OffsetDeleteResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(e);
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == topic => t.partitions.push(p),
                _ => topics.push(
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        OffsetDeleteResponse::default()
            .with_error_code(error)
            .with_topics(topics)
    }
}

/// The OffsetFetch answer when this broker cannot answer for the group: `error` at
/// the top level, and before v2 (which has no top-level error) on every requested
/// partition, with no offset (Kafka's `OffsetFetchRequest.getErrorResponse`).
fn offset_fetch_error(
    req: &OffsetFetchRequest,
    version: i16,
    error: ResponseError,
) -> OffsetFetchResponse {
    let mut r = OffsetFetchResponse::default().with_error_code(code(error));
    if version < 2 {
        r.topics = req
            .topics
            .iter()
            .flatten()
            .map(|t| {
                OffsetFetchResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|&p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_metadata(Some(str_bytes("")))
                                    .with_error_code(code(error))
                            })
                            .collect(),
                    )
            })
            .collect();
    }
    r
}

/// Whether creating `__consumer_offsets` with fewer replicas than
/// `offsets.topic.replication.factor` is worth a warning: when the operator set the
/// factor, or the cluster has more than one node (brokers may be missing). A single
/// node left at Kafka's default of 3 gets one replica as expected.
fn capped_rf_deserves_warning(cluster: &crate::config::ClusterConfig) -> bool {
    cluster.offsets_topic_replication_factor_set || !cluster.is_single_node()
}

/// Waits for a delayed response; `None` if the broker stops first.
async fn wait<T>(rx: oneshot::Receiver<T>, stop: &watch::Receiver<bool>) -> Option<T> {
    let mut stop = stop.clone();
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        r = rx => r.ok(),
        _ = stop.changed() => None,
    }
}

/// The seed the coordinator mixes into the member ids it hands out: random, from
/// std's randomly keyed hasher (the C library's `getrandom`), so that ids from
/// brokers started in the same millisecond, or from one broker's restarts, do not
/// collide. Two coordinators in turn handing one id to two clients (after a
/// failover the new one counts from 1 again) would make them one member.
fn member_id_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}

/// Reads and decodes `partition` (index `index` of `__consumer_offsets`) from its
/// log start to its log end as of now: blocking file work, for the blocking pool.
/// The log's lock is taken per chunk, not for the whole read. An unreadable
/// record is skipped, a damaged batch ends the read (what came before it is
/// loaded), as Kafka's loader does.
fn read_partition(index: i32, partition: &Partition) -> Vec<LoadRecord> {
    let mut records = Vec::new();
    let (mut offset, end) = {
        let log = partition.log();
        (log.log_start_offset(), log.log_end_offset())
    };
    while offset < end {
        let read = partition.log().read_to_vec(offset, 1 << 20, end);
        let bytes = match read {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(partition = index, error = %e, "cannot read an offsets partition");
                break;
            }
        };
        let mut next = offset;
        for batch in klog_codec::RecordBatches::new(&bytes) {
            match batch {
                Ok((_, b)) => next = b.next_offset(),
                Err(_) => break,
            }
        }
        let replayed = klog_coordinator::schema::for_each_record(&bytes, |at, k, v| {
            match LoadRecord::decode(k, v) {
                Ok(r) => records.push(r),
                Err(e) => {
                    tracing::warn!(partition = index, offset = at, error = %e, "skipping unreadable group record");
                }
            }
            Ok(())
        });
        if let Err(e) = replayed {
            tracing::error!(partition = index, error = %e, "stopped replaying a damaged partition");
            break;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    records
}

/// Appends records for `group` to its `__consumer_offsets` partition through the
/// normal partition append path.
fn append(
    replicas: &ReplicaManager,
    partition: i32,
    group: &str,
    records: &[klog_coordinator::OffsetsRecord],
) -> Option<(Arc<crate::replica::partition::Partition>, i64)> {
    let now = now_ms();
    let Some(p) = replicas
        .topic(OFFSETS_TOPIC)
        .and_then(|t| t.partition(partition).cloned())
    else {
        tracing::error!(partition, group, "{OFFSETS_TOPIC} partition missing");
        return None;
    };
    let mut batch = match build_batch(records, now) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(group, error = %e, "cannot encode group records");
            return None;
        }
    };
    match p.append(&mut batch, now) {
        Ok(a) => Some((p, a.next_offset)),
        Err(error_code) => {
            tracing::error!(
                partition,
                group,
                error_code,
                "appending group records failed"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use klog_codec::protocol::messages::create_topics_request::CreatableTopic;
    use klog_codec::protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use klog_codec::protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use klog_codec::protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use klog_codec::protocol::messages::{CreateTopicsRequest, join_group_request};
    use tokio::sync::Semaphore;

    use crate::node::Node;

    /// Issue 33: the zero-config single node gets one offsets replica without a
    /// warning; a factor the operator set, or a cluster, still warns when capped.
    #[test]
    fn a_capped_offsets_replication_factor_warns_only_when_asked_for() {
        let parse = |pairs: &[(&str, &str)]| {
            crate::config::BrokerConfig::from_pairs(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>(),
            )
            .expect("config")
            .0
        };
        assert!(!capped_rf_deserves_warning(&parse(&[]).cluster));
        let set = parse(&[("offsets.topic.replication.factor", "3")]);
        assert!(capped_rf_deserves_warning(&set.cluster));
        let cluster = parse(&[
            ("node.id", "1"),
            ("process.roles", "broker,controller"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:19093,2@127.0.0.1:19094",
            ),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
            ),
            ("controller.listener.names", "CONTROLLER"),
        ]);
        assert!(!cluster.cluster.is_single_node());
        assert!(capped_rf_deserves_warning(&cluster.cluster));
    }

    /// A test's hold on the background loads started while it is in place: each
    /// reads its records, counts itself in `read` and waits for a permit of
    /// `release` before it installs them (or finds itself superseded), then counts
    /// itself in `tried`. Tests wait on these counts, never on time.
    pub(super) struct LoadHold {
        read: watch::Sender<usize>,
        release: Semaphore,
        pub(super) tried: watch::Sender<usize>,
    }

    impl LoadHold {
        /// Called by a held load between its read and its install.
        pub(super) async fn wait(&self) {
            self.read.send_modify(|n| *n += 1);
            if let Ok(permit) = self.release.acquire().await {
                permit.forget();
            }
        }

        async fn reads(&self, n: usize) {
            let _ = self.read.subscribe().wait_for(|r| *r >= n).await;
        }

        async fn release_one_and_wait(&self, tried: usize) {
            self.release.add_permits(1);
            let _ = self.tried.subscribe().wait_for(|t| *t >= tried).await;
        }
    }

    impl Groups {
        /// Holds every load started from now on (see [`LoadHold`]).
        fn hold_loads(&self) -> Arc<LoadHold> {
            let hold = Arc::new(LoadHold {
                read: watch::Sender::new(0),
                release: Semaphore::new(0),
                tried: watch::Sender::new(0),
            });
            *self.hold.lock().expect("hold") = Some(hold.clone());
            hold
        }
    }

    const GROUP: &str = "g";

    /// A one-node cluster with topic `t` (1 partition) and one `__consumer_offsets`
    /// partition, loaded.
    async fn node(dir: &std::path::Path) -> (Arc<Node>, Arc<Groups>) {
        let pairs = [
            ("log.dirs".to_owned(), dir.display().to_string()),
            ("offsets.topic.num.partitions".to_owned(), "1".to_owned()),
        ];
        let config = BrokerConfig::from_pairs(pairs).expect("config").0;
        let n = Node::start(config).await.expect("node");
        let created = n
            .broker()
            .create_topics(&CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]))
            .await;
        assert_eq!(created.topics[0].error_code, 0);
        let groups = n.broker().groups().clone();
        groups.loaded().await;
        (n, groups)
    }

    fn group() -> GroupId {
        GroupId(str_bytes(GROUP))
    }

    /// Commits `offset` for `t-0` as a standalone consumer; the error code.
    async fn commit(groups: &Groups, offset: i64) -> i16 {
        let req = OffsetCommitRequest::default()
            .with_group_id(group())
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ]);
        groups.offset_commit(&req, 7).await.topics[0].partitions[0].error_code
    }

    /// OffsetFetch v`version` of `t-0`: (top-level error, partition error, offset).
    fn fetch(groups: &Groups, version: i16) -> (i16, i16, i64) {
        let req = OffsetFetchRequest::default()
            .with_group_id(group())
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partition_indexes(vec![0]),
            ]));
        let r = groups.offset_fetch(&req, version);
        let p = r.topics.first().and_then(|t| t.partitions.first());
        (
            r.error_code,
            p.map_or(-99, |p| p.error_code),
            p.map_or(-99, |p| p.committed_offset),
        )
    }

    const LOADING: i16 = 14;

    /// While a `__consumer_offsets` partition loads, its groups' requests are
    /// answered at once, as Kafka's GroupCoordinator answers them
    /// (`validateGroupStatus`): COORDINATOR_LOAD_IN_PROGRESS, except SyncGroup
    /// (REBALANCE_IN_PROGRESS) and Heartbeat (no error); FindCoordinator as usual.
    /// Once loaded, the offsets committed before are there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loading_partition_answers_load_in_progress_then_serves_its_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_n, groups) = node(dir.path()).await;
        assert_eq!(commit(&groups, 5).await, 0);
        assert_eq!(fetch(&groups, 7), (0, 0, 5));

        let hold = groups.hold_loads();
        // A new leader epoch of the partition, as the publisher reports it.
        groups.load_partition(0);
        hold.reads(1).await;

        assert_eq!(fetch(&groups, 7).0, LOADING);
        assert_eq!(
            fetch(&groups, 1),
            (LOADING, LOADING, -1),
            "v1: on the partition"
        );
        assert_eq!(commit(&groups, 9).await, LOADING);
        let (_stop_tx, stop) = watch::channel(false);
        let header = RequestHeader {
            api_key: 11,
            api_version: 5,
            correlation_id: 1,
            client_id: None,
        };
        let join = JoinGroupRequest::default()
            .with_group_id(group())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(str_bytes("range")),
            ]);
        let joined = groups.join_group(&header, None, join, &stop).await;
        assert_eq!(joined.error_code, LOADING);
        let sync = SyncGroupRequest::default()
            .with_group_id(group())
            .with_generation_id(1)
            .with_member_id(str_bytes("m"));
        assert_eq!(
            groups.sync_group(sync, &stop).await.error_code,
            code(ResponseError::RebalanceInProgress)
        );
        let heartbeat = HeartbeatRequest::default()
            .with_group_id(group())
            .with_generation_id(1)
            .with_member_id(str_bytes("m"));
        assert_eq!(groups.heartbeat(&heartbeat).error_code, 0);
        let leave = LeaveGroupRequest::default()
            .with_group_id(group())
            .with_member_id(str_bytes("m"));
        assert_eq!(groups.leave_group(&leave, 1).error_code, LOADING);
        let describe = DescribeGroupsRequest::default().with_groups(vec![group()]);
        assert_eq!(
            groups.describe_groups(&describe, 5).groups[0].error_code,
            LOADING
        );
        let delete = DeleteGroupsRequest::default().with_groups_names(vec![group()]);
        assert_eq!(groups.delete_groups(&delete).results[0].error_code, LOADING);
        let offset_delete = OffsetDeleteRequest::default()
            .with_group_id(group())
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0),
                    ]),
            ]);
        assert_eq!(groups.offset_delete(&offset_delete).error_code, LOADING);
        let find = FindCoordinatorRequest::default().with_key(str_bytes(GROUP));
        let found = groups.find_coordinator(&find, 2).await;
        assert_eq!(found.error_code, 0);
        assert!(found.node_id.0 >= 0 && found.port > 0, "{found:?}");

        hold.release_one_and_wait(1).await;
        groups.loaded().await;
        assert_eq!(fetch(&groups, 7), (0, 0, 5));
        assert_eq!(commit(&groups, 9).await, 0);
        assert_eq!(fetch(&groups, 7), (0, 0, 9));
    }

    /// A load overtaken by a newer one (a new leader epoch) or by an unload
    /// installs nothing when it finishes: it neither ends the newer load's
    /// loading state nor brings back what it read (here an offset committed
    /// since, which would go backwards).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_superseded_load_installs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_n, groups) = node(dir.path()).await;
        assert_eq!(commit(&groups, 5).await, 0);

        let hold = groups.hold_loads();
        groups.load_partition(0);
        hold.reads(1).await;
        groups.load_partition(0);
        hold.reads(2).await;
        // The first load goes on: superseded, the partition is still loading.
        hold.release_one_and_wait(1).await;
        assert_eq!(fetch(&groups, 7).0, LOADING);
        hold.release_one_and_wait(2).await;
        groups.loaded().await;
        assert_eq!(fetch(&groups, 7), (0, 0, 5));

        // A load read `5`; the partition is unloaded, and 7 committed after.
        groups.load_partition(0);
        hold.reads(3).await;
        groups.unload_partition(0);
        assert_eq!(commit(&groups, 7).await, 0);
        hold.release_one_and_wait(3).await;
        assert_eq!(fetch(&groups, 7), (0, 0, 7), "the stale read was dropped");

        // The log has 7: a fresh load finds it.
        *groups.hold.lock().expect("hold") = None;
        groups.load_partition(0);
        groups.loaded().await;
        assert_eq!(fetch(&groups, 7), (0, 0, 7));
    }
}
