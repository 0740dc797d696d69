//! Replica fetchers (Kafka's `ReplicaFetcherManager`): the follower side of
//! replication, moving bytes only; the rules are `klog-replication`'s, applied by
//! each [`Partition`].
//!
//! One fetcher task per leader broker (and per `num.replica.fetchers` slot) copies
//! every partition this broker follows from that leader with one request at a
//! time:
//!
//! ```text
//!  partitions awaiting truncation ──► OffsetForLeaderEpoch ──► Partition::on_epoch_end (cut)
//!  partitions fetching            ──► Fetch (replica_id, long poll) ──► Partition::append_replica
//! ```
//!
//! A partition refused with NOT_LEADER_OR_FOLLOWER or a stale epoch waits for the
//! metadata image to say who leads now: the replica manager then moves it to
//! another fetcher. Connections go to the leader's inter-broker listener as the
//! image names it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use klog_client::conn::Connection;
use klog_codec::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use klog_codec::protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use klog_codec::protocol::messages::{
    BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName,
};
use klog_codec::protocol::{ResponseError, StrBytes};
use klog_replication::EpochEndOffset;
use tokio::sync::{Notify, watch};

use crate::config::BrokerConfig;
use crate::metadata::store::MetadataStore;
use crate::replica::partition::{FollowNext, Partition};
use klog_rt::clock::now_ms;

type Key = (String, i32);

/// One fetcher: the partitions it copies from one leader.
struct Fetcher {
    partitions: Arc<Mutex<BTreeMap<Key, Arc<Partition>>>>,
    wake: Arc<Notify>,
}

/// The fetchers of this broker.
pub struct ReplicaFetchers {
    node_id: i32,
    config: BrokerConfig,
    store: Arc<MetadataStore>,
    fetchers: Mutex<HashMap<(i32, usize), Fetcher>>,
    /// Which fetcher follows each partition.
    assigned: Mutex<HashMap<Key, (i32, usize)>>,
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for ReplicaFetchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaFetchers")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReplicaFetchers {
    /// Fetchers for node `node_id`; they stop when `stop` turns true.
    pub fn new(
        config: BrokerConfig,
        store: Arc<MetadataStore>,
        stop: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_id: config.node_id,
            config,
            store,
            fetchers: Mutex::new(HashMap::new()),
            assigned: Mutex::new(HashMap::new()),
            stop,
        })
    }

    /// Copies `partition` from `leader` from now on (moving it off the fetcher
    /// of a previous leader).
    pub fn follow(&self, leader: i32, partition: Arc<Partition>) {
        let key = (partition.topic.clone(), partition.index);
        let slots = self.config.cluster.num_replica_fetchers.max(1);
        let slot = (crc32c::crc32c(partition.topic.as_bytes()) as usize + partition.index as usize)
            % slots;
        let target = (leader, slot);
        let previous = lock(&self.assigned).insert(key.clone(), target);
        if previous == Some(target) {
            return;
        }
        if let Some(old) = previous {
            self.remove_from(old, &key);
        }
        let mut fetchers = lock(&self.fetchers);
        let fetcher = fetchers.entry(target).or_insert_with(|| self.spawn(leader));
        lock(&fetcher.partitions).insert(key, partition);
        fetcher.wake.notify_one();
    }

    /// Stops copying the partition (this broker leads it now, or no longer hosts
    /// it, or it has no leader).
    pub fn unfollow(&self, topic: &str, index: i32) {
        let key = (topic.to_owned(), index);
        if let Some(old) = lock(&self.assigned).remove(&key) {
            self.remove_from(old, &key);
        }
    }

    fn remove_from(&self, at: (i32, usize), key: &Key) {
        if let Some(f) = lock(&self.fetchers).get(&at) {
            lock(&f.partitions).remove(key);
        }
    }

    fn spawn(&self, leader: i32) -> Fetcher {
        let partitions = Arc::new(Mutex::new(BTreeMap::new()));
        let wake = Arc::new(Notify::new());
        let task = FetcherTask {
            node_id: self.node_id,
            leader,
            max_wait_ms: self.config.cluster.replica_fetch_wait_max_ms,
            max_bytes: self.config.cluster.replica_fetch_max_bytes,
            listener: self.config.cluster.inter_broker_listener_name.clone(),
            store: self.store.clone(),
            partitions: partitions.clone(),
            wake: wake.clone(),
            connection: None,
        };
        klog_client::task::spawn(task.run(self.stop.clone()));
        Fetcher { partitions, wake }
    }
}

/// How long a fetcher waits before trying again after an error.
const BACKOFF: Duration = Duration::from_millis(100);

struct FetcherTask {
    node_id: i32,
    leader: i32,
    max_wait_ms: i32,
    max_bytes: i32,
    listener: String,
    store: Arc<MetadataStore>,
    partitions: Arc<Mutex<BTreeMap<Key, Arc<Partition>>>>,
    wake: Arc<Notify>,
    connection: Option<Arc<Connection>>,
}

impl FetcherTask {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let parts: Vec<Arc<Partition>> = lock(&self.partitions).values().cloned().collect();
            let busy = if parts.is_empty() {
                false
            } else {
                tokio::select! {
                    r = self.round(&parts) => r,
                    _ = stop.changed() => return,
                }
            };
            if !busy {
                // Nothing to copy, or an error: wait for a partition or a moment.
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(BACKOFF) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// The leader's address, from the image.
    fn leader_addr(&self) -> Option<String> {
        let image = self.store.image();
        let b = image.brokers.get(&self.leader)?;
        let e = b
            .registration
            .endpoints
            .iter()
            .find(|e| e.name == self.listener)
            .or(b.registration.endpoints.first())?;
        Some(format!("{}:{}", e.host, e.port))
    }

    async fn connection(&mut self) -> Option<Arc<Connection>> {
        if let Some(c) = self.connection.as_ref().filter(|c| !c.is_closed()) {
            return Some(c.clone());
        }
        let addr = self.leader_addr()?;
        let client_id = StrBytes::from_string(format!("klog-replica-{}", self.node_id));
        let timeout = Duration::from_millis(u64::try_from(self.max_wait_ms).unwrap_or(500))
            + Duration::from_secs(30);
        match Connection::connect(&addr, Some(client_id), Duration::from_secs(2), timeout).await {
            Ok(c) => {
                self.connection = Some(c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::debug!(leader = self.leader, %addr, error = %e, "cannot reach the leader");
                None
            }
        }
    }

    /// One round: truncation questions, then one fetch. Returns whether it made
    /// progress (false: back off).
    async fn round(&mut self, parts: &[Arc<Partition>]) -> bool {
        let work: Vec<(Arc<Partition>, crate::replica::partition::FollowWork)> = parts
            .iter()
            .filter_map(|p| {
                p.follow_work()
                    .filter(|w| w.leader == self.leader)
                    .map(|w| (p.clone(), w))
            })
            .collect();
        if work.is_empty() {
            return false;
        }
        let Some(conn) = self.connection().await else {
            return false;
        };
        let asks: Vec<_> = work
            .iter()
            .filter_map(|(p, w)| match w.next {
                FollowNext::AskEpochEnd { epoch } => Some((p.clone(), w.leader_epoch, epoch)),
                _ => None,
            })
            .collect();
        if !asks.is_empty() {
            return self.ask_epoch_ends(&conn, &asks).await;
        }
        let fetching: Vec<_> = work
            .into_iter()
            .filter(|(_, w)| w.next == FollowNext::Fetch)
            .collect();
        if fetching.is_empty() {
            return false;
        }
        self.fetch(&conn, &fetching).await
    }

    /// Sends `req` to the leader; on a failure the connection is dropped (the next
    /// round makes a new one).
    async fn call<R>(&mut self, conn: &Connection, req: &R) -> Option<R::Response>
    where
        R: klog_codec::protocol::client::Request,
        R::Response: Send + 'static,
    {
        let resp = match conn.send(req) {
            Ok(f) => f.await,
            Err(e) => Err(e),
        };
        match resp {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::debug!(leader = self.leader, api_key = R::KEY, error = %e, "request to the leader failed");
                self.connection = None;
                None
            }
        }
    }

    /// Per topic, the partition requests (topic names from the grouping).
    fn by_topic<P, T>(
        grouped: BTreeMap<String, Vec<P>>,
        make: impl Fn(TopicName, Vec<P>) -> T,
    ) -> Vec<T> {
        grouped
            .into_iter()
            .map(|(t, partitions)| make(TopicName(StrBytes::from_string(t)), partitions))
            .collect()
    }

    async fn ask_epoch_ends(
        &mut self,
        conn: &Connection,
        asks: &[(Arc<Partition>, i32, i32)],
    ) -> bool {
        let mut topics: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
        for (p, current, epoch) in asks {
            topics.entry(p.topic.clone()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(p.index)
                    .with_current_leader_epoch(*current)
                    .with_leader_epoch(*epoch),
            );
        }
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(self.node_id))
            .with_topics(Self::by_topic(topics, |t, p| {
                OffsetForLeaderTopic::default()
                    .with_topic(t)
                    .with_partitions(p)
            }));
        let Some(resp) = self.call(conn, &req).await else {
            return false;
        };
        let mut progressed = false;
        for t in &resp.topics {
            for r in &t.partitions {
                let Some((p, current, _)) = asks
                    .iter()
                    .find(|(p, _, _)| p.topic == t.topic.0.as_str() && p.index == r.partition)
                else {
                    continue;
                };
                if r.error_code != 0 {
                    tracing::debug!(topic = %p.topic, partition = p.index, error = r.error_code, "the leader refused OffsetForLeaderEpoch");
                    continue;
                }
                p.on_epoch_end(
                    *current,
                    EpochEndOffset {
                        leader_epoch: r.leader_epoch,
                        end_offset: r.end_offset,
                    },
                );
                progressed = true;
            }
        }
        progressed
    }

    async fn fetch(
        &mut self,
        conn: &Connection,
        fetching: &[(Arc<Partition>, crate::replica::partition::FollowWork)],
    ) -> bool {
        let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
        for (p, w) in fetching {
            topics.entry(p.topic.clone()).or_default().push(
                FetchPartition::default()
                    .with_partition(p.index)
                    .with_current_leader_epoch(w.leader_epoch)
                    .with_fetch_offset(w.log_end_offset)
                    .with_log_start_offset(w.log_start_offset)
                    .with_partition_max_bytes(self.max_bytes),
            );
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(self.node_id))
            .with_max_wait_ms(self.max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(self.max_bytes.saturating_mul(4))
            .with_isolation_level(0)
            .with_session_epoch(-1)
            .with_topics(Self::by_topic(topics, |t, p| {
                FetchTopic::default().with_topic(t).with_partitions(p)
            }));
        let Some(resp) = self.call(conn, &req).await else {
            return false;
        };
        let now = now_ms();
        let mut progressed = false;
        for t in &resp.responses {
            for r in &t.partitions {
                let Some((p, w)) = fetching
                    .iter()
                    .find(|(p, _)| p.topic == t.topic.0.as_str() && p.index == r.partition_index)
                else {
                    continue;
                };
                match ResponseError::try_from_code(r.error_code) {
                    None => {
                        let records = r.records.as_deref().unwrap_or(&[]);
                        match p.append_replica(w.leader_epoch, records, r.high_watermark, now) {
                            Ok(()) => progressed = true,
                            Err(e) => {
                                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "could not append fetched records");
                            }
                        }
                    }
                    Some(ResponseError::OffsetOutOfRange)
                        if w.log_end_offset < r.log_start_offset =>
                    {
                        // The leader deleted what we would fetch next (retention).
                        p.restart_at(w.leader_epoch, r.log_start_offset);
                        progressed = true;
                    }
                    Some(e) => {
                        tracing::debug!(topic = %p.topic, partition = p.index, error = ?e, "the leader refused a replica fetch");
                    }
                }
            }
        }
        progressed
    }
}
