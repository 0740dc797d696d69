//! The consumer with group membership: subscribe to topics and let the group share
//! their partitions; committed offsets are kept by the group coordinator.
//!
//! ```text
//!  poll() ──► lost membership? ──► on_partitions_lost, forget partitions
//!         ──► rejoin needed? ──► (eager: commit, on_partitions_revoked(all))
//!                 FindCoordinator ──► JoinGroup (MEMBER_ID_REQUIRED: again with the
//!                 id) ──► leader: run the assignor on every member's subscription
//!                 ──► SyncGroup ──► (cooperative: commit, revoke what moved away,
//!                 rejoin) ──► OffsetFetch for new partitions ──► on_partitions_assigned
//!         ──► auto-commit due? ──► OffsetCommit of what earlier polls returned
//!         ──► fetch records of the assigned partitions (the plain [`Consumer`])
//!
//!  heartbeat task (per generation): Heartbeat every heartbeat.interval.ms;
//!      REBALANCE_IN_PROGRESS ──► rejoin on the next poll
//!      UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / FENCED_INSTANCE_ID ──► membership lost
//!      no poll for max.poll.interval.ms ──► LeaveGroup (dynamic members), lost
//! ```
//!
//! The rebalance protocol follows the assignors configured: cooperative (KIP-429)
//! when every one of them is cooperative, eager otherwise (Kafka's rule). Eager
//! members give up all partitions before rejoining; cooperative ones keep
//! fetching while the group rebalances and give up only the partitions that move.
//!
//! Delivery is at least once: a commit covers the records earlier polls returned,
//! and auto-commit runs in `poll`, before a rebalance revokes partitions, and in
//! [`GroupConsumer::close`]. Records returned after the last commit are read again
//! by whoever owns the partition next.
//!
//! The coordinator gets its own connection, so that a JoinGroup the broker holds
//! for a whole rebalance does not stall fetches on the shared one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use klog_assign::{Assignor, MemberSubscription, RebalanceProtocol};
use klog_codec::protocol::messages::join_group_request::JoinGroupRequestProtocol;
use klog_codec::protocol::messages::leave_group_request::MemberIdentity;
use klog_codec::protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use klog_codec::protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use klog_codec::protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use klog_codec::protocol::messages::{
    ApiKey, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use klog_codec::protocol::{ResponseError, StrBytes};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::conn::Connection;
use crate::consumer::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, Offset, TopicPartition, list_offset,
};
use crate::consumer_protocol;
use crate::error::{ClientError, ConsumeError, GroupError};

/// Settings of a group member (Kafka's names), on top of [`ConsumerConfig`].
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Fetch, connection and `auto.offset.reset` settings. `auto.offset.reset`
    /// applies to partitions the group has no committed offset for.
    pub consumer: ConsumerConfig,
    /// `group.id`.
    pub group_id: String,
    /// `group.instance.id`: makes this a static member (KIP-345), which keeps its
    /// partitions across restarts within `session.timeout.ms` without a rebalance,
    /// and does not leave the group on close.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms`: the coordinator drops a member it has not heard a
    /// heartbeat from for this long (default 45 s).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3 s).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: a member that does not call poll for this long
    /// leaves the group; also the rebalance timeout sent in JoinGroup (default
    /// 5 min).
    pub max_poll_interval: Duration,
    /// `enable.auto.commit` (default true).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5 s).
    pub auto_commit_interval: Duration,
    /// `partition.assignment.strategy`, in order of preference (default range,
    /// cooperative-sticky, like Kafka 3).
    pub assignors: Vec<Assignor>,
}

impl GroupConfig {
    /// Kafka's defaults for group `group_id`, with these bootstrap servers.
    pub fn new(bootstrap_servers: &str, group_id: &str) -> Self {
        Self {
            consumer: ConsumerConfig::new(bootstrap_servers),
            group_id: group_id.to_owned(),
            group_instance_id: None,
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            assignors: vec![Assignor::Range, Assignor::CooperativeSticky],
        }
    }

    /// Sets a group setting by its Kafka name (`group.instance.id`,
    /// `session.timeout.ms`, `heartbeat.interval.ms`, `max.poll.interval.ms`,
    /// `enable.auto.commit`, `auto.commit.interval.ms`,
    /// `partition.assignment.strategy` as a comma-separated list, `auto.offset.reset`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), GroupError> {
        let bad = || GroupError::InvalidConfig(format!("{key}={value}"));
        let ms = || {
            value
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| bad())
        };
        match key {
            "group.id" => self.group_id = value.to_owned(),
            "group.instance.id" => {
                self.group_instance_id = (!value.is_empty()).then(|| value.to_owned())
            }
            "session.timeout.ms" => self.session_timeout = ms()?,
            "heartbeat.interval.ms" => self.heartbeat_interval = ms()?,
            "max.poll.interval.ms" => self.max_poll_interval = ms()?,
            "auto.commit.interval.ms" => self.auto_commit_interval = ms()?,
            "enable.auto.commit" => self.enable_auto_commit = value.parse().map_err(|_| bad())?,
            "partition.assignment.strategy" => {
                self.assignors = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Assignor::from_name(s).ok_or_else(bad))
                    .collect::<Result<_, _>>()?;
            }
            "auto.offset.reset" => {
                self.consumer.auto_offset_reset = match value {
                    "earliest" => crate::AutoOffsetReset::Earliest,
                    "latest" => crate::AutoOffsetReset::Latest,
                    "none" => crate::AutoOffsetReset::None,
                    _ => return Err(bad()),
                }
            }
            _ => {
                return Err(GroupError::InvalidConfig(format!(
                    "unknown group setting {key}"
                )));
            }
        }
        Ok(())
    }

    /// Cooperative when every configured assignor is (Kafka's rule).
    fn protocol(&self) -> RebalanceProtocol {
        if !self.assignors.is_empty()
            && self
                .assignors
                .iter()
                .all(|a| a.protocol() == RebalanceProtocol::Cooperative)
        {
            RebalanceProtocol::Cooperative
        } else {
            RebalanceProtocol::Eager
        }
    }
}

/// Called by [`GroupConsumer`] when its assignment changes, on the task that
/// called [`GroupConsumer::poll`] (or [`GroupConsumer::close`]).
///
/// With `enable.auto.commit` the consumer has committed the revoked partitions'
/// offsets before `on_partitions_revoked` runs.
pub trait RebalanceListener: Send {
    /// These partitions are no longer this member's (eager: all of them, before
    /// every rebalance; cooperative: only those that move to another member).
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// These partitions are now this member's (eager: the whole new assignment;
    /// cooperative: only the added ones, possibly none).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Membership was lost (session timeout, fenced, `max.poll.interval.ms`
    /// exceeded): these partitions may already be owned by another member, so
    /// nothing was committed. Defaults to [`Self::on_partitions_revoked`], as in Kafka.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions);
    }
}

/// What the heartbeat task tells the polling side.
#[derive(Debug, Default)]
struct Signals {
    /// Rejoin on the next poll.
    rejoin: AtomicBool,
    /// Membership is gone: why, and whether the member id is still valid.
    lost: Mutex<Option<(ResponseError, bool)>>,
    /// The coordinator connection failed; find it again.
    coordinator_failed: AtomicBool,
    /// When poll was last called.
    last_poll: Mutex<Option<Instant>>,
    /// Wakes a waiting poll.
    wake: Notify,
}

impl Signals {
    fn request_rejoin(&self) {
        self.rejoin.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn lose(&self, error: ResponseError, keep_member_id: bool) {
        if let Ok(mut l) = self.lost.lock() {
            l.get_or_insert((error, keep_member_id));
        }
        self.request_rejoin();
    }
}

/// A member's identity in the current generation.
#[derive(Debug, Clone)]
struct Membership {
    group_id: String,
    member_id: String,
    instance_id: Option<String>,
    generation: i32,
}

/// Handle of an [`GroupConsumer::commit_async`] in flight; await it for the result.
#[derive(Debug)]
pub struct CommitHandle(JoinHandle<Result<(), GroupError>>);

impl std::future::Future for CommitHandle {
    type Output = Result<(), GroupError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(GroupError::Closed)))
    }
}

/// A consumer that is a member of a group; see the [module docs](self).
pub struct GroupConsumer {
    consumer: Consumer,
    cluster: Arc<Cluster>,
    config: GroupConfig,
    protocol: RebalanceProtocol,
    topics: Vec<String>,
    listener: Option<Box<dyn RebalanceListener>>,
    member: Membership,
    coordinator: Option<Arc<Connection>>,
    /// The assignment of the current generation, sorted.
    owned: Vec<TopicPartition>,
    /// Per partition: the offset after the last record poll returned (or the
    /// committed offset it resumed from). What a commit writes.
    consumed: HashMap<TopicPartition, i64>,
    signals: Arc<Signals>,
    heartbeat: Option<JoinHandle<()>>,
    next_auto_commit: Instant,
    closed: bool,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group", &self.member.group_id)
            .field("member", &self.member.member_id)
            .field("generation", &self.member.generation)
            .field("assigned", &self.owned)
            .finish_non_exhaustive()
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        // Dropped without close: leave the group on the way out (dynamic members),
        // so the others need not wait for the session timeout.
        if !self.closed
            && self.member.instance_id.is_none()
            && !self.member.member_id.is_empty()
            && let (Some(conn), Ok(rt)) = (
                self.coordinator.clone(),
                tokio::runtime::Handle::try_current(),
            )
        {
            let member = self.member.clone();
            rt.spawn(crate::task::inherit(async move {
                let _ = leave_group(&conn, &member).await;
            }));
        }
    }
}

impl GroupConsumer {
    /// A member of `config.group_id` that has not subscribed to anything yet.
    /// Connects lazily.
    pub fn new(config: GroupConfig) -> Result<Self, GroupError> {
        if config.group_id.is_empty() {
            return Err(GroupError::InvalidConfig("group.id is empty".to_owned()));
        }
        if config.assignors.is_empty() {
            return Err(GroupError::InvalidConfig(
                "partition.assignment.strategy is empty".to_owned(),
            ));
        }
        if config.heartbeat_interval >= config.session_timeout {
            return Err(GroupError::InvalidConfig(
                "heartbeat.interval.ms must be lower than session.timeout.ms".to_owned(),
            ));
        }
        let consumer = Consumer::new(config.consumer.clone())?;
        let cluster = consumer.cluster().clone();
        Ok(Self {
            consumer,
            cluster,
            protocol: config.protocol(),
            topics: Vec::new(),
            listener: None,
            member: Membership {
                group_id: config.group_id.clone(),
                member_id: String::new(),
                instance_id: config.group_instance_id.clone(),
                generation: -1,
            },
            coordinator: None,
            owned: Vec::new(),
            consumed: HashMap::new(),
            signals: Arc::new(Signals::default()),
            heartbeat: None,
            next_auto_commit: Instant::now() + config.auto_commit_interval,
            closed: false,
            config,
        })
    }

    /// Subscribes to these topics (replacing any earlier subscription); the group
    /// rebalances on the next poll.
    pub fn subscribe<S: Into<String>>(&mut self, topics: impl IntoIterator<Item = S>) {
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        topics.sort();
        topics.dedup();
        self.topics = topics;
        self.signals.request_rejoin();
    }

    /// Like [`Self::subscribe`], with a listener told about assignment changes.
    pub fn subscribe_with<S: Into<String>>(
        &mut self,
        topics: impl IntoIterator<Item = S>,
        listener: Box<dyn RebalanceListener>,
    ) {
        self.listener = Some(listener);
        self.subscribe(topics);
    }

    /// The partitions assigned in the current generation.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.owned.clone()
    }

    /// The member id the coordinator gave this member (empty before joining).
    pub fn member_id(&self) -> &str {
        &self.member.member_id
    }

    /// The current generation (-1 before joining).
    pub fn generation(&self) -> i32 {
        self.member.generation
    }

    /// The rebalance protocol this member uses (from its assignors).
    pub fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.protocol
    }

    /// The next offset a commit would write for `tp`: after the last record poll
    /// returned, or the committed offset it resumed from.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.consumed.get(tp).copied()
    }

    /// Moves the position of an assigned partition (see [`Consumer::seek`]).
    pub fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<(), GroupError> {
        self.consumer.seek(tp, offset)?;
        match offset {
            Offset::At(o) if o >= 0 => {
                self.consumed.insert(tp.clone(), o);
            }
            _ => {
                self.consumed.remove(tp);
            }
        }
        Ok(())
    }

    /// Returns up to `max.poll.records` records of the assigned partitions, waiting
    /// up to `timeout`; joins or rejoins the group first when needed (a join waits
    /// for the rebalance to complete, which can take longer than `timeout`), and
    /// commits when auto-commit is due. An empty vector means nothing arrived in
    /// time.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, GroupError> {
        if self.closed {
            return Err(GroupError::Closed);
        }
        let deadline = Instant::now() + timeout;
        if let Ok(mut t) = self.signals.last_poll.lock() {
            *t = Some(Instant::now());
        }
        loop {
            if !self.ensure_active(deadline).await? {
                return Ok(Vec::new());
            }
            self.maybe_auto_commit().await;
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let signals = self.signals.clone();
            let wake = signals.wake.notified();
            if self.signals.rejoin.load(Ordering::Acquire) {
                continue;
            }
            let records = if self.owned.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
                    _ = wake => continue,
                }
            } else {
                tokio::select! {
                    r = self.consumer.poll(deadline - now) => r?,
                    _ = wake => continue,
                }
            };
            self.note_consumed(&records);
            return Ok(records);
        }
    }

    fn note_consumed(&mut self, records: &[ConsumerRecord]) {
        let mut last: Option<(&ConsumerRecord, i64)> = None;
        for r in records {
            if let Some((prev, next)) = last
                && (prev.partition != r.partition || prev.topic != r.topic)
            {
                self.consumed.insert(
                    TopicPartition::new(prev.topic.to_string(), prev.partition),
                    next,
                );
            }
            last = Some((r, r.offset + 1));
        }
        if let Some((prev, next)) = last {
            self.consumed.insert(
                TopicPartition::new(prev.topic.to_string(), prev.partition),
                next,
            );
        }
    }

    async fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || Instant::now() < self.next_auto_commit {
            return;
        }
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        if let Err(e) = self.commit_sync().await {
            tracing::warn!(group = %self.member.group_id, error = %e, "auto-commit failed");
        }
    }

    /// The offsets a commit of everything consumed would write, sorted.
    fn consumed_offsets(&self, of: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let mut v: Vec<(TopicPartition, i64)> = of
            .iter()
            .filter_map(|tp| self.consumed.get(tp).map(|&o| (tp.clone(), o)))
            .collect();
        v.sort();
        v
    }

    /// Commits, for every assigned partition, the offset after the last record
    /// poll returned; retries retriable failures up to `request.timeout.ms`.
    pub async fn commit_sync(&mut self) -> Result<(), GroupError> {
        let offsets = self.consumed_offsets(&self.owned);
        self.commit_offsets_sync(&offsets).await
    }

    /// Commits these offsets (the next offset to read, per partition); retries
    /// retriable failures up to `request.timeout.ms`.
    pub async fn commit_offsets_sync(
        &mut self,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<(), GroupError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.consumer.client.request_timeout;
        let mut attempt = 0;
        loop {
            let result = match self.coordinator().await {
                Ok(conn) => commit(&conn, &self.member, offsets).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.after_commit_error(&e);
                    if !is_coordinator_failure(&e) || Instant::now() >= deadline {
                        return Err(e);
                    }
                }
            }
            attempt += 1;
            tokio::time::sleep(self.cluster.config.backoff(attempt)).await;
        }
    }

    /// Commits what [`Self::commit_sync`] would, without waiting: the returned
    /// handle resolves to the result (one attempt, no retries). Dropping it does not
    /// cancel the commit.
    pub async fn commit_async(&mut self) -> Result<CommitHandle, GroupError> {
        let offsets = self.consumed_offsets(&self.owned);
        let conn = self.coordinator().await?;
        let member = self.member.clone();
        let signals = self.signals.clone();
        Ok(CommitHandle(crate::task::spawn(async move {
            if offsets.is_empty() {
                return Ok(());
            }
            let r = commit(&conn, &member, &offsets).await;
            if let Err(e) = &r {
                signal_commit_error(&signals, e);
            }
            r
        })))
    }

    fn after_commit_error(&mut self, e: &GroupError) {
        if is_coordinator_failure(e) {
            self.coordinator = None;
        }
        signal_commit_error(&self.signals, e);
    }

    /// The committed offsets of these partitions (`None`: nothing committed).
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, GroupError> {
        let deadline = Instant::now() + self.config.consumer.client.request_timeout;
        let mut attempt = 0;
        loop {
            let result = match self.coordinator().await {
                Ok(conn) => fetch_committed(&conn, &self.member.group_id, partitions).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if is_coordinator_failure(&e) && Instant::now() < deadline => {
                    self.coordinator = None;
                    attempt += 1;
                    tokio::time::sleep(self.cluster.config.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Leaves the group: commits (with auto-commit), revokes the assignment
    /// (telling the listener), and sends LeaveGroup unless this is a static member
    /// (a static member's partitions wait for it for `session.timeout.ms`).
    pub async fn close(mut self) -> Result<(), GroupError> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let mut result = Ok(());
        if self.config.enable_auto_commit && self.member.generation >= 0 {
            result = self.commit_sync().await;
        }
        let owned = std::mem::take(&mut self.owned);
        if !owned.is_empty()
            && let Some(l) = self.listener.as_mut()
        {
            l.on_partitions_revoked(&owned);
        }
        if self.member.instance_id.is_none()
            && !self.member.member_id.is_empty()
            && let Some(conn) = self.coordinator.clone()
        {
            let left = leave_group(&conn, &self.member).await;
            result = result.and(left);
        }
        self.closed = true;
        result
    }

    /// The coordinator connection, found (FindCoordinator) and opened if needed.
    async fn coordinator(&mut self) -> Result<Arc<Connection>, GroupError> {
        if self
            .signals
            .coordinator_failed
            .swap(false, Ordering::AcqRel)
        {
            self.coordinator = None;
        }
        if let Some(c) = &self.coordinator
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(self.member.group_id.clone()))
            .with_key_type(0);
        let conn = self.cluster.any_connection().await?;
        let response = conn
            .send(&request)
            .map_err(ClientError::from)?
            .await
            .map_err(ClientError::from)?;
        if let Some(e) = ClientError::broker("FindCoordinator", response.error_code, None) {
            return Err(e.into());
        }
        let addr = format!("{}:{}", response.host, response.port);
        // JoinGroup may be held for a whole rebalance (up to the rebalance timeout).
        let timeout = self
            .cluster
            .config
            .request_timeout
            .max(self.config.max_poll_interval + Duration::from_secs(5));
        let conn = self
            .cluster
            .dedicated_connection(&addr, timeout)
            .await
            .map_err(ClientError::from)?;
        self.coordinator = Some(conn.clone());
        Ok(conn)
    }

    /// Makes sure the member is in a stable generation. `Ok(false)`: not yet, and
    /// `deadline` passed while retrying retriable failures.
    async fn ensure_active(&mut self, deadline: Instant) -> Result<bool, GroupError> {
        let lost = self.signals.lost.lock().ok().and_then(|mut l| l.take());
        if let Some((error, keep_member_id)) = lost {
            self.stop_heartbeat();
            if error == ResponseError::FencedInstanceId {
                return Err(GroupError::Coordinator {
                    api: "Heartbeat",
                    group: self.member.group_id.clone(),
                    error,
                });
            }
            tracing::info!(group = %self.member.group_id, %error, "group membership lost");
            let owned = std::mem::take(&mut self.owned);
            self.consumer.assign(Vec::new());
            if !owned.is_empty()
                && let Some(l) = self.listener.as_mut()
            {
                l.on_partitions_lost(&owned);
            }
            if !keep_member_id {
                self.member.member_id.clear();
            }
            self.member.generation = -1;
        }
        if !self.signals.rejoin.load(Ordering::Acquire) {
            return Ok(true);
        }
        if self.topics.is_empty() {
            return Ok(true);
        }
        self.stop_heartbeat();
        if self.protocol == RebalanceProtocol::Eager && !self.owned.is_empty() {
            if self.config.enable_auto_commit
                && let Err(e) = self.commit_sync().await
            {
                tracing::warn!(group = %self.member.group_id, error = %e, "commit before rebalance failed");
            }
            let owned = std::mem::take(&mut self.owned);
            self.consumer.assign(Vec::new());
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_revoked(&owned);
            }
        }
        let mut attempt = 0;
        loop {
            self.signals.rejoin.store(false, Ordering::Release);
            let result = self.join_and_sync().await;
            let error = match result {
                Ok(assignment) => {
                    self.install(assignment).await?;
                    return Ok(true);
                }
                Err(e) => e,
            };
            self.signals.rejoin.store(true, Ordering::Release);
            if !error.is_retriable() && !is_rejoin_error(&error) {
                return Err(error);
            }
            if is_coordinator_failure(&error) {
                self.coordinator = None;
            }
            tracing::debug!(group = %self.member.group_id, %error, "join failed, retrying");
            if Instant::now() >= deadline {
                return Ok(false);
            }
            attempt += 1;
            if !is_rejoin_error(&error) {
                tokio::time::sleep(self.cluster.config.backoff(attempt)).await;
            }
        }
    }

    fn stop_heartbeat(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }

    /// One JoinGroup + SyncGroup round; returns the new assignment.
    async fn join_and_sync(&mut self) -> Result<Vec<TopicPartition>, GroupError> {
        let conn = self.coordinator().await?;
        let (version, generation) = match self.protocol {
            RebalanceProtocol::Eager => (0, -1),
            _ => (2, self.member.generation),
        };
        let owned: &[TopicPartition] = match self.protocol {
            RebalanceProtocol::Eager => &[],
            _ => &self.owned,
        };
        let metadata =
            consumer_protocol::encode_subscription(version, &self.topics, owned, generation)?;
        let protocols: Vec<JoinGroupRequestProtocol> = self
            .config
            .assignors
            .iter()
            .map(|a| {
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(a.name()))
                    .with_metadata(metadata.clone())
            })
            .collect();
        let group = self.member.group_id.clone();
        let coordinator_error = |api: &'static str, error: ResponseError| GroupError::Coordinator {
            api,
            group: group.clone(),
            error,
        };
        let response = loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_session_timeout_ms(millis(self.config.session_timeout))
                .with_rebalance_timeout_ms(millis(self.config.max_poll_interval))
                .with_member_id(StrBytes::from_string(self.member.member_id.clone()))
                .with_group_instance_id(self.member.instance_id.clone().map(StrBytes::from_string))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(protocols.clone());
            let response = conn
                .send(&request)
                .map_err(ClientError::from)?
                .await
                .map_err(ClientError::from)?;
            match ResponseError::try_from_code(response.error_code) {
                None => break response,
                // KIP-394: the coordinator hands out the id; join again with it.
                Some(ResponseError::MemberIdRequired) => {
                    self.member.member_id = response.member_id.to_string();
                }
                Some(e @ ResponseError::UnknownMemberId) => {
                    self.member.member_id.clear();
                    return Err(coordinator_error("JoinGroup", e));
                }
                Some(e) => return Err(coordinator_error("JoinGroup", e)),
            }
        };
        self.member.member_id = response.member_id.to_string();
        self.member.generation = response.generation_id;
        let protocol_name = response
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let assignor = Assignor::from_name(&protocol_name)
            .filter(|a| self.config.assignors.contains(a))
            .ok_or_else(|| GroupError::UnknownAssignor(protocol_name.clone()))?;
        let assignments = if response.leader == response.member_id {
            lead(
                &self.cluster,
                &self.member.group_id,
                assignor,
                &response.members,
            )
            .await?
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_generation_id(self.member.generation)
            .with_member_id(StrBytes::from_string(self.member.member_id.clone()))
            .with_group_instance_id(self.member.instance_id.clone().map(StrBytes::from_string))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_string(protocol_name)))
            .with_assignments(assignments);
        let response = conn
            .send(&request)
            .map_err(ClientError::from)?
            .await
            .map_err(ClientError::from)?;
        match ResponseError::try_from_code(response.error_code) {
            None => Ok(consumer_protocol::decode_assignment(&response.assignment)?),
            Some(e) => {
                if e == ResponseError::UnknownMemberId {
                    self.member.member_id.clear();
                }
                Err(coordinator_error("SyncGroup", e))
            }
        }
    }

    /// Applies a new assignment: revokes what moved away (cooperative), resumes the
    /// new partitions from their committed offsets, tells the listener, and starts
    /// heartbeating in this generation.
    async fn install(&mut self, assignment: Vec<TopicPartition>) -> Result<(), GroupError> {
        let new: HashSet<&TopicPartition> = assignment.iter().collect();
        let old: HashSet<&TopicPartition> = self.owned.iter().collect();
        let revoked: Vec<TopicPartition> = self
            .owned
            .iter()
            .filter(|tp| !new.contains(tp))
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = assignment
            .iter()
            .filter(|tp| !old.contains(tp))
            .cloned()
            .collect();
        self.start_heartbeat();
        if !revoked.is_empty() {
            if self.config.enable_auto_commit {
                let offsets = self.consumed_offsets(&revoked);
                if let Err(e) = self.commit_offsets_sync(&offsets).await {
                    tracing::warn!(group = %self.member.group_id, error = %e, "commit of revoked partitions failed");
                }
            }
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_revoked(&revoked);
            }
            // KIP-429: whoever gets them next can only do so in another rebalance.
            self.signals.request_rejoin();
        }
        for tp in &revoked {
            self.consumed.remove(tp);
        }
        self.owned = assignment;
        self.consumer.assign(self.owned.clone());
        if !added.is_empty() {
            let committed = self.committed(&added).await?;
            for (tp, offset) in committed {
                match offset {
                    Some(o) => {
                        self.consumer.seek(&tp, Offset::At(o))?;
                        self.consumed.insert(tp, o);
                    }
                    // No commit: auto.offset.reset decides now, so that the position
                    // is known (and committed) even before any record arrives, as in
                    // Kafka.
                    None => {
                        let spec = match self.config.consumer.auto_offset_reset {
                            AutoOffsetReset::Earliest => Offset::Beginning,
                            AutoOffsetReset::Latest => Offset::End,
                            AutoOffsetReset::None => {
                                return Err(ConsumeError::Broker {
                                    topic: tp.topic.clone(),
                                    partition: tp.partition,
                                    error: ResponseError::OffsetOutOfRange,
                                }
                                .into());
                            }
                        };
                        let o = list_offset(&self.cluster, &tp, spec).await?;
                        self.consumer.seek(&tp, Offset::At(o))?;
                        self.consumed.insert(tp, o);
                    }
                }
            }
        }
        tracing::info!(
            group = %self.member.group_id,
            member = %self.member.member_id,
            generation = self.member.generation,
            assigned = ?self.owned,
            "joined group"
        );
        if let Some(l) = self.listener.as_mut() {
            let added_or_all = match self.protocol {
                RebalanceProtocol::Eager => &self.owned,
                _ => &added,
            };
            l.on_partitions_assigned(added_or_all);
        }
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        Ok(())
    }

    fn start_heartbeat(&mut self) {
        self.stop_heartbeat();
        let Some(conn) = self.coordinator.clone() else {
            return;
        };
        if let Ok(mut t) = self.signals.last_poll.lock() {
            *t = Some(Instant::now());
        }
        self.heartbeat = Some(crate::task::spawn(heartbeat(
            conn,
            self.member.clone(),
            self.config.heartbeat_interval,
            self.config.max_poll_interval,
            self.config.consumer.client.request_timeout,
            self.signals.clone(),
        )));
    }
}

/// The leader's part: run the assignor over every member's subscription.
async fn lead(
    cluster: &Cluster,
    group_id: &str,
    assignor: Assignor,
    members: &[klog_codec::protocol::messages::join_group_response::JoinGroupResponseMember],
) -> Result<Vec<SyncGroupRequestAssignment>, GroupError> {
    let subscriptions: Vec<MemberSubscription> = members
        .iter()
        .map(|m| {
            consumer_protocol::decode_subscription(
                m.member_id.as_str(),
                m.group_instance_id.as_ref().map(|i| i.as_str()),
                &m.metadata,
            )
        })
        .collect::<Result<_, _>>()?;
    let mut topics: Vec<String> = subscriptions
        .iter()
        .flat_map(|s| s.topics.iter().cloned())
        .collect();
    topics.sort();
    topics.dedup();
    cluster.refresh(Some(&topics)).await?;
    let partitions: BTreeMap<String, i32> = topics
        .iter()
        .filter_map(|t| {
            let info = cluster.topic(t)?;
            (!info.partitions.is_empty()).then(|| (t.clone(), info.partitions.len() as i32))
        })
        .collect();
    let assignment = assignor.assign(&partitions, &subscriptions);
    tracing::debug!(group = %group_id, assignor = assignor.name(), ?assignment, "leader assigned");
    let version = match assignor.protocol() {
        RebalanceProtocol::Eager => 0,
        _ => 1,
    };
    assignment
        .iter()
        .map(|(member, tps)| {
            Ok(SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member.clone()))
                .with_assignment(consumer_protocol::encode_assignment(version, tps)?))
        })
        .collect()
}

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

/// Failures after which the coordinator must be looked up again.
fn is_coordinator_failure(e: &GroupError) -> bool {
    match e {
        GroupError::Client(ClientError::Connection(_) | ClientError::NoBrokerAvailable { .. }) => {
            true
        }
        GroupError::Client(ClientError::Broker { error, .. })
        | GroupError::Coordinator { error, .. }
        | GroupError::CommitFailed { error, .. } => matches!(
            error,
            ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
        ),
        _ => false,
    }
}

/// Group errors that a new JoinGroup resolves.
fn is_rejoin_error(e: &GroupError) -> bool {
    matches!(
        e,
        GroupError::Coordinator {
            error: ResponseError::UnknownMemberId
                | ResponseError::IllegalGeneration
                | ResponseError::RebalanceInProgress,
            ..
        }
    )
}

fn signal_commit_error(signals: &Signals, e: &GroupError) {
    match e {
        GroupError::CommitFailed {
            error: ResponseError::RebalanceInProgress,
            ..
        } => signals.request_rejoin(),
        GroupError::CommitFailed {
            error: error @ (ResponseError::UnknownMemberId | ResponseError::IllegalGeneration),
            ..
        } => signals.lose(*error, *error == ResponseError::IllegalGeneration),
        e if is_coordinator_failure(e) => {
            signals.coordinator_failed.store(true, Ordering::Release);
        }
        _ => {}
    }
}

async fn commit(
    conn: &Connection,
    member: &Membership,
    offsets: &[(TopicPartition, i64)],
) -> Result<(), GroupError> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (tp, offset) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(tp.partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(-1);
        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let static_ok = conn
        .version(ApiKey::OffsetCommit)
        .map_err(ClientError::from)?
        >= 7;
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(member.group_id.clone())))
        .with_generation_id_or_member_epoch(member.generation)
        .with_member_id(StrBytes::from_string(member.member_id.clone()))
        .with_group_instance_id(
            member
                .instance_id
                .clone()
                .filter(|_| static_ok)
                .map(StrBytes::from_string),
        )
        .with_retention_time_ms(-1)
        .with_topics(topics);
    let response = conn
        .send(&request)
        .map_err(ClientError::from)?
        .await
        .map_err(ClientError::from)?;
    let error = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find_map(|p| ResponseError::try_from_code(p.error_code));
    match error {
        None => Ok(()),
        Some(error) => Err(GroupError::CommitFailed {
            group: member.group_id.clone(),
            error,
        }),
    }
}

pub(crate) async fn fetch_committed(
    conn: &Connection,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<Vec<(TopicPartition, Option<i64>)>, GroupError> {
    let mut topics: Vec<OffsetFetchRequestTopic> = Vec::new();
    for tp in partitions {
        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(t) => t.partition_indexes.push(tp.partition),
            None => topics.push(
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partition_indexes(vec![tp.partition]),
            ),
        }
    }
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(Some(topics));
    let response = conn
        .send(&request)
        .map_err(ClientError::from)?
        .await
        .map_err(ClientError::from)?;
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        return Err(GroupError::Coordinator {
            api: "OffsetFetch",
            group: group.to_owned(),
            error,
        });
    }
    let mut found: HashMap<(String, i32), i64> = HashMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            if let Some(error) = ResponseError::try_from_code(p.error_code) {
                return Err(GroupError::Coordinator {
                    api: "OffsetFetch",
                    group: group.to_owned(),
                    error,
                });
            }
            found.insert(
                (t.name.0.to_string(), p.partition_index),
                p.committed_offset,
            );
        }
    }
    Ok(partitions
        .iter()
        .map(|tp| {
            let o = found
                .get(&(tp.topic.clone(), tp.partition))
                .copied()
                .filter(|&o| o >= 0);
            (tp.clone(), o)
        })
        .collect())
}

async fn leave_group(conn: &Connection, member: &Membership) -> Result<(), GroupError> {
    let version = conn
        .version(ApiKey::LeaveGroup)
        .map_err(ClientError::from)?;
    let group = GroupId(StrBytes::from_string(member.group_id.clone()));
    let request = if version >= 3 {
        LeaveGroupRequest::default()
            .with_group_id(group)
            .with_members(vec![
                MemberIdentity::default()
                    .with_member_id(StrBytes::from_string(member.member_id.clone()))
                    .with_group_instance_id(member.instance_id.clone().map(StrBytes::from_string)),
            ])
    } else {
        LeaveGroupRequest::default()
            .with_group_id(group)
            .with_member_id(StrBytes::from_string(member.member_id.clone()))
    };
    let response = conn
        .send(&request)
        .map_err(ClientError::from)?
        .await
        .map_err(ClientError::from)?;
    let error = ResponseError::try_from_code(response.error_code).or_else(|| {
        response
            .members
            .iter()
            .find_map(|m| ResponseError::try_from_code(m.error_code))
    });
    match error {
        // Already gone (session expired): nothing to leave.
        None | Some(ResponseError::UnknownMemberId) => Ok(()),
        Some(error) => Err(GroupError::Coordinator {
            api: "LeaveGroup",
            group: member.group_id.clone(),
            error,
        }),
    }
}

/// The heartbeat task of one generation; see the [module docs](self).
async fn heartbeat(
    conn: Arc<Connection>,
    member: Membership,
    interval: Duration,
    max_poll_interval: Duration,
    request_timeout: Duration,
    signals: Arc<Signals>,
) {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(member.group_id.clone())))
        .with_generation_id(member.generation)
        .with_member_id(StrBytes::from_string(member.member_id.clone()))
        .with_group_instance_id(member.instance_id.clone().map(StrBytes::from_string));
    loop {
        tokio::time::sleep(interval).await;
        let idle = signals
            .last_poll
            .lock()
            .ok()
            .and_then(|t| *t)
            .map_or(Duration::ZERO, |t| t.elapsed());
        if idle > max_poll_interval {
            tracing::warn!(
                group = %member.group_id,
                "no poll for max.poll.interval.ms; leaving the group"
            );
            if member.instance_id.is_none() {
                let _ = leave_group(&conn, &member).await;
            }
            signals.lose(ResponseError::UnknownMemberId, member.instance_id.is_some());
            return;
        }
        let sent = match conn.send(&request) {
            Ok(f) => tokio::time::timeout(request_timeout, f).await,
            Err(_) => Ok(Err(crate::error::ConnectionError::Closed {
                addr: conn.addr().to_owned(),
            })),
        };
        let response = match sent {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "heartbeat failed");
                signals.coordinator_failed.store(true, Ordering::Release);
                signals.request_rejoin();
                return;
            }
            Err(_) => {
                signals.coordinator_failed.store(true, Ordering::Release);
                signals.request_rejoin();
                return;
            }
        };
        match ResponseError::try_from_code(response.error_code) {
            None => {}
            // Keep heartbeating until the next poll rejoins: the coordinator waits
            // for this member up to the rebalance timeout.
            Some(ResponseError::RebalanceInProgress) => signals.request_rejoin(),
            Some(e @ ResponseError::UnknownMemberId) => {
                signals.lose(e, false);
                return;
            }
            Some(e @ (ResponseError::IllegalGeneration | ResponseError::FencedInstanceId)) => {
                signals.lose(e, true);
                return;
            }
            Some(
                ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress,
            ) => {
                signals.coordinator_failed.store(true, Ordering::Release);
                signals.request_rejoin();
                return;
            }
            Some(e) => tracing::warn!(group = %member.group_id, error = %e, "heartbeat error"),
        }
    }
}
