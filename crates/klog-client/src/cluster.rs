//! What the client knows about the cluster: brokers, topic metadata, and one
//! connection per broker.
//!
//! The metadata cache is refreshed on demand: when a topic is first used, when a
//! request fails with an error that means the cache is stale (NOT_LEADER_OR_FOLLOWER,
//! UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, a closed connection, ...), and
//! when it is older than `metadata.max.age.ms`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use klog_codec::protocol::StrBytes;
use klog_codec::protocol::messages::metadata_request::MetadataRequestTopic;
use klog_codec::protocol::messages::{MetadataRequest, MetadataResponse, TopicName};

use crate::conn::Connection;
use crate::error::{ClientError, ConnectionError};

/// Settings shared by the producer, consumer and admin client (Kafka's names).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` addresses to fetch the first metadata from.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`, sent in every request header.
    pub client_id: String,
    /// `request.timeout.ms`: how long to wait for one response.
    pub request_timeout: Duration,
    /// `socket.connection.setup.timeout.ms`.
    pub connect_timeout: Duration,
    /// `retry.backoff.ms`: first wait before retrying a retriable failure; doubles
    /// up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`.
    pub retry_backoff_max: Duration,
    /// `metadata.max.age.ms`: refresh metadata at least this often.
    pub metadata_max_age: Duration,
    /// `allow.auto.create.topics`: let Metadata requests create missing topics (if
    /// the broker allows it).
    pub allow_auto_create_topics: bool,
}

impl ClientConfig {
    /// Defaults as Kafka's, with these bootstrap servers (comma-separated list).
    pub fn new(bootstrap_servers: &str) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            client_id: "klog-client".to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            metadata_max_age: Duration::from_secs(300),
            allow_auto_create_topics: true,
        }
    }

    /// The backoff before retry number `attempt` (1-based): doubling from
    /// `retry.backoff.ms`, capped at `retry.backoff.max.ms`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(16);
        self.retry_backoff
            .saturating_mul(1 << shift)
            .min(self.retry_backoff_max)
    }
}

/// Metadata of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader broker id (-1 when there is none).
    pub leader: i32,
    /// Leader epoch (-1 if the broker does not report it).
    pub leader_epoch: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
    /// Kafka error code for this partition (0 = none).
    pub error_code: i16,
}

/// Metadata of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Kafka error code for this topic (0 = none).
    pub error_code: i16,
    /// Whether this is an internal topic (`__consumer_offsets`).
    pub is_internal: bool,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionInfo>,
}

/// A broker as listed in Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Broker id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

#[derive(Debug, Default)]
struct Snapshot {
    brokers: HashMap<i32, BrokerInfo>,
    topics: HashMap<String, Arc<TopicInfo>>,
    controller: i32,
    refreshed: Option<Instant>,
}

/// The shared cluster view and connection pool; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) config: ClientConfig,
    client_id: StrBytes,
    meta: RwLock<Snapshot>,
    /// Connections by broker id; bootstrap connections use negative ids.
    conns: tokio::sync::Mutex<HashMap<i32, Arc<Connection>>>,
}

impl Cluster {
    pub(crate) fn new(config: ClientConfig) -> Result<Arc<Self>, ClientError> {
        if config.bootstrap_servers.is_empty() {
            return Err(ClientError::InvalidConfig(
                "bootstrap.servers is empty".to_owned(),
            ));
        }
        Ok(Arc::new(Self {
            client_id: StrBytes::from_string(config.client_id.clone()),
            config,
            meta: RwLock::new(Snapshot::default()),
            conns: tokio::sync::Mutex::new(HashMap::new()),
        }))
    }

    async fn connect(&self, addr: &str) -> Result<Arc<Connection>, ConnectionError> {
        self.dedicated_connection(addr, self.config.request_timeout)
            .await
    }

    /// A new connection outside the pool, with its own request timeout: the group
    /// coordinator gets one, so that a JoinGroup held by the broker for a whole
    /// rebalance does not stall fetches queued behind it on a shared connection.
    pub(crate) async fn dedicated_connection(
        &self,
        addr: &str,
        request_timeout: Duration,
    ) -> Result<Arc<Connection>, ConnectionError> {
        Connection::connect(
            addr,
            Some(self.client_id.clone()),
            self.config.connect_timeout,
            request_timeout,
        )
        .await
    }

    /// The connection to broker `node_id`, opened if needed.
    pub(crate) async fn connection(&self, node_id: i32) -> Result<Arc<Connection>, ClientError> {
        let addr = {
            let meta = self.meta.read().map_err(|_| poisoned())?;
            meta.brokers
                .get(&node_id)
                .map(|b| format!("{}:{}", b.host, b.port))
        };
        let Some(addr) = addr else {
            return Err(ClientError::NoBrokerAvailable {
                tried: format!("unknown broker id {node_id}"),
            });
        };
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(&node_id)
            && !c.is_closed()
            && c.addr() == addr
        {
            return Ok(c.clone());
        }
        conns.remove(&node_id);
        let conn = self.connect(&addr).await?;
        conns.insert(node_id, conn.clone());
        Ok(conn)
    }

    /// A connection to any reachable broker: a known one first, then the bootstrap
    /// servers in order.
    pub(crate) async fn any_connection(&self) -> Result<Arc<Connection>, ClientError> {
        {
            let conns = self.conns.lock().await;
            if let Some(c) = conns.values().find(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
        }
        let known: Vec<i32> = {
            let meta = self.meta.read().map_err(|_| poisoned())?;
            let mut ids: Vec<i32> = meta.brokers.keys().copied().collect();
            ids.sort_unstable();
            ids
        };
        let mut tried = Vec::new();
        for id in known {
            match self.connection(id).await {
                Ok(c) => return Ok(c),
                Err(e) => tried.push(e.to_string()),
            }
        }
        for (i, addr) in self.config.bootstrap_servers.iter().enumerate() {
            match self.connect(addr).await {
                Ok(c) => {
                    self.conns.lock().await.insert(-1 - i as i32, c.clone());
                    return Ok(c);
                }
                Err(e) => tried.push(e.to_string()),
            }
        }
        Err(ClientError::NoBrokerAvailable {
            tried: tried.join("; "),
        })
    }

    /// Fetches metadata for `topics` (all topics when `None`) and updates the cache.
    pub(crate) async fn refresh(
        &self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, ClientError> {
        self.refresh_with(topics, self.config.allow_auto_create_topics)
            .await
    }

    /// As [`Cluster::refresh`], never asking the broker to create topics.
    pub(crate) async fn refresh_no_create(
        &self,
        topics: &[String],
    ) -> Result<MetadataResponse, ClientError> {
        self.refresh_with(Some(topics), false).await
    }

    async fn refresh_with(
        &self,
        topics: Option<&[String]>,
        auto_create: bool,
    ) -> Result<MetadataResponse, ClientError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        let conn = self.any_connection().await?;
        let response = conn.send(&request)?.await?;
        self.update(&response, topics.is_none())?;
        Ok(response)
    }

    fn update(&self, response: &MetadataResponse, all_topics: bool) -> Result<(), ClientError> {
        let mut meta = self.meta.write().map_err(|_| poisoned())?;
        if !response.brokers.is_empty() {
            meta.brokers = response
                .brokers
                .iter()
                .map(|b| {
                    (
                        b.node_id.0,
                        BrokerInfo {
                            node_id: b.node_id.0,
                            host: b.host.to_string(),
                            port: b.port,
                            rack: b.rack.as_ref().map(|r| r.to_string()),
                        },
                    )
                })
                .collect();
        }
        meta.controller = response.controller_id.0;
        if all_topics {
            meta.topics.clear();
        }
        for t in &response.topics {
            let Some(name) = &t.name else { continue };
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let info = TopicInfo {
                name: name.to_string(),
                error_code: t.error_code,
                is_internal: t.is_internal,
                partitions,
            };
            if info.error_code != 0 && info.partitions.is_empty() {
                meta.topics.remove(info.name.as_str());
            } else {
                meta.topics.insert(info.name.clone(), Arc::new(info));
            }
        }
        meta.refreshed = Some(Instant::now());
        Ok(())
    }

    /// The cached metadata of `topic`, if known.
    pub(crate) fn topic(&self, topic: &str) -> Option<Arc<TopicInfo>> {
        self.meta.read().ok()?.topics.get(topic).cloned()
    }

    /// The cached leader of a partition, if known and alive.
    pub(crate) fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let meta = self.meta.read().ok()?;
        let p = meta
            .topics
            .get(topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)?;
        (p.leader >= 0 && meta.brokers.contains_key(&p.leader)).then_some(p.leader)
    }

    /// The controller broker id from the last metadata (-1 if unknown).
    pub(crate) fn controller(&self) -> i32 {
        self.meta.read().map_or(-1, |m| m.controller)
    }

    /// Whether the cache was refreshed less than `age` ago.
    pub(crate) fn refreshed_within(&self, age: Duration) -> bool {
        self.meta
            .read()
            .is_ok_and(|m| m.refreshed.is_some_and(|t| t.elapsed() < age))
    }

    /// Whether the cache is older than `metadata.max.age.ms` (or empty).
    pub(crate) fn is_stale(&self) -> bool {
        self.meta.read().map_or(true, |m| {
            m.refreshed
                .is_none_or(|t| t.elapsed() >= self.config.metadata_max_age)
        })
    }

    /// The brokers from the last metadata, sorted by id.
    pub(crate) fn brokers(&self) -> Vec<BrokerInfo> {
        let mut v: Vec<BrokerInfo> = self
            .meta
            .read()
            .map(|m| m.brokers.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|b| b.node_id);
        v
    }

    /// Fetches metadata for `topic` until it has partitions, or `deadline` passes.
    ///
    /// Retries (with backoff) while the topic is unknown or leaderless: it may be
    /// being created.
    pub(crate) async fn wait_for_topic(
        &self,
        topic: &str,
        deadline: Instant,
    ) -> Result<Arc<TopicInfo>, ClientError> {
        let topics = [topic.to_owned()];
        let mut attempt = 0;
        loop {
            let last = match self.refresh(Some(&topics)).await {
                Ok(response) => {
                    if let Some(t) = self.topic(topic) {
                        return Ok(t);
                    }
                    let code = response
                        .topics
                        .iter()
                        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
                        .map_or(3, |t| t.error_code);
                    let error = ClientError::broker("Metadata", code, None).unwrap_or(
                        ClientError::broker("Metadata", 3, None)
                            .unwrap_or(ClientError::Timeout { what: "metadata" }),
                    );
                    if !error.is_retriable() {
                        return Err(error);
                    }
                    error
                }
                Err(e) if e.is_retriable() => e,
                Err(e) => return Err(e),
            };
            attempt += 1;
            let wait = self.config.backoff(attempt);
            if Instant::now() + wait >= deadline {
                return Err(last);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn poisoned() -> ClientError {
    ClientError::InvalidConfig("metadata lock poisoned by a panic".to_owned())
}
