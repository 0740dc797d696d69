//! Broker configuration with Kafka's names (`server.properties`).
//!
//! Values come from a properties file and `--set key=value` overrides. Unknown keys
//! are reported as warnings (Kafka has hundreds; a file written for Kafka should
//! still start klog), an invalid value for a known key is an error naming the key.
//! Defaults are Kafka's; where klog differs, `docs/protocol.md` says why.

pub mod topic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use klog_storage::{LogConfig, TimestampType};

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {key}: {reason}")]
pub struct ConfigError {
    /// The configuration key.
    pub key: String,
    /// The offending value.
    pub value: String,
    /// Why it is invalid.
    pub reason: String,
}

/// How fetched record bytes reach the socket. `Buffered` is the default: over
/// loopback on the machine in docs/PERFORMANCE.md ("Issue 6") it served the same
/// consumer 1.3-1.5x faster than `Sendfile`; `sendfile` usually wins on real NICs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchMode {
    /// `sendfile(2)` from the segment file: zero copy.
    Sendfile,
    /// Read into a buffer, then write (what a TLS listener would need).
    Buffered,
}

/// Everything the broker reads from its configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// Address to bind, from `listeners` (`PLAINTEXT://host:port`).
    pub listener: SocketAddr,
    /// Host and port announced in Metadata, from `advertised.listeners` (defaults to
    /// the listener).
    pub advertised: (String, u16),
    /// `log.dirs` (or `log.dir`).
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `min.insync.replicas` (broker default for topics).
    pub min_insync_replicas: i32,
    /// `replica.lag.time.max.ms`: how long an ISR follower may go without catching
    /// up before its leader proposes it out of the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `log.flush.scheduler.interval.ms`: how often time-based flush is checked.
    pub flush_scheduler_interval_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub checkpoint_interval_ms: u64,
    /// `klog.fetch.mode`: `buffered` (default) or `sendfile`.
    pub fetch_mode: FetchMode,
    /// Defaults for every partition log (segment, retention, flush, message size).
    pub log: LogConfig,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when it is
    /// created.
    pub offsets_topic_partitions: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `log.cleanup.policy`: default `cleanup.policy` of topics.
    pub log_cleanup_policy: CleanupPolicy,
    /// The cluster settings: roles, the quorum, heartbeats, replication.
    pub cluster: ClusterConfig,
    /// Every key that was set explicitly, as given (for DescribeConfigs).
    pub explicit: BTreeMap<String, String>,
}

/// What a node runs (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves clients and hosts partitions.
    pub broker: bool,
    /// Votes in the metadata quorum and may be the active controller.
    pub controller: bool,
}

/// A voter of the metadata quorum (`controller.quorum.voters`: `id@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// Its `node.id`.
    pub id: i32,
    /// Host of its controller listener.
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

/// The cluster settings (Kafka's names; CLUSTER.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `process.roles` (default `broker,controller`: a combined node).
    pub roles: Roles,
    /// `controller.quorum.voters`; empty: a one-node quorum of this node.
    pub voters: Vec<Voter>,
    /// The controller listener's bind address (the listener named by
    /// `controller.listener.names`), if there is one.
    pub controller_listener: Option<SocketAddr>,
    /// `controller.listener.names` (default `CONTROLLER`).
    pub controller_listener_name: String,
    /// `inter.broker.listener.name` (default `PLAINTEXT`): the client listener,
    /// which brokers also use to reach each other.
    pub inter_broker_listener_name: String,
    /// `broker.session.timeout.ms` (default 2500, Kafka's is 9000): how long the
    /// active controller waits for a broker's heartbeat before fencing it and
    /// electing new leaders for what it led. It bounds the time from a broker's
    /// crash to its partitions' new leaders; a broker that cannot heartbeat for
    /// this long (a stalled process, a saturated network) loses its leaderships
    /// though it is alive, and takes them back through the ISR and preferred
    /// leader election once it heartbeats again. See docs/PERFORMANCE.md.
    pub session_timeout_ms: i64,
    /// `broker.heartbeat.interval.ms` (default 500, Kafka's is 2000): five
    /// heartbeats per session, so that one delayed or lost heartbeat never fences.
    pub heartbeat_interval_ms: i64,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max_ms: i32,
    /// `num.replica.fetchers`.
    pub num_replica_fetchers: usize,
    /// `offsets.topic.replication.factor` (capped at the live brokers when the
    /// topic is created).
    pub offsets_topic_replication_factor: i16,
    /// Whether `offsets.topic.replication.factor` was given: capping a value the
    /// operator asked for is warned about, capping Kafka's default of 3 on a
    /// single node (the zero-config broker) is not.
    pub offsets_topic_replication_factor_set: bool,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub leader_imbalance_check_interval_ms: i64,
    /// `klog.boot.id.file` (default `/proc/sys/kernel/random/boot_id`; empty:
    /// none): where the kernel's boot id is read. A broker that stopped without a
    /// clean shutdown but finds the boot id it ran under lost only its process,
    /// not the page cache that holds its unsynced writes, so it registers as after
    /// a clean stop and stays an eligible leader (KIP-966 counts every unclean
    /// stop as a possible loss; this tells a `kill -9` from a power loss). With
    /// no boot id every unclean stop counts as a loss.
    pub boot_id_file: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            roles: Roles {
                broker: true,
                controller: true,
            },
            voters: Vec::new(),
            controller_listener: None,
            controller_listener_name: "CONTROLLER".to_owned(),
            inter_broker_listener_name: "PLAINTEXT".to_owned(),
            session_timeout_ms: 2_500,
            heartbeat_interval_ms: 500,
            replica_fetch_max_bytes: 1_048_576,
            replica_fetch_wait_max_ms: 500,
            num_replica_fetchers: 1,
            offsets_topic_replication_factor: 3,
            offsets_topic_replication_factor_set: false,
            unclean_leader_election: false,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            boot_id_file: Some(PathBuf::from(BOOT_ID_FILE)),
        }
    }
}

impl ClusterConfig {
    /// A one-node quorum of this node alone (no voters configured).
    pub fn is_single_node(&self) -> bool {
        self.voters.is_empty()
    }
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for BrokerConfig {
    fn default() -> Self {
        let log = LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * DAY_MS),
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            flush_interval_messages: None,
            flush_interval_ms: None,
            max_message_bytes: 1_048_588,
            ..LogConfig::default()
        };
        Self {
            node_id: 1,
            listener: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised: ("127.0.0.1".to_owned(), 9092),
            log_dirs: vec![PathBuf::from("./klog-data")],
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            socket_request_max_bytes: klog_codec::protocol::frame::DEFAULT_MAX_REQUEST_SIZE,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            retention_check_interval_ms: 300_000,
            flush_scheduler_interval_ms: 1_000,
            checkpoint_interval_ms: 60_000,
            fetch_mode: FetchMode::Buffered,
            log,
            offsets_topic_partitions: 50,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * DAY_MS,
            offsets_retention_check_interval_ms: 600_000,
            log_cleanup_policy: CleanupPolicy::default(),
            cluster: ClusterConfig::default(),
            explicit: BTreeMap::new(),
        }
    }
}

/// Parses the text of a Java properties file: `key=value` or `key: value` lines,
/// `#`/`!` comments, surrounding whitespace trimmed. (Line continuations and escapes
/// are not supported; `server.properties` files do not use them.)
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':'])?;
            let (k, v) = l.split_at(at);
            Some((
                k.trim().to_owned(),
                v.get(1..).unwrap_or("").trim().to_owned(),
            ))
        })
        .collect()
}

fn err(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| err(key, value, "not a number in range"))
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    key: &str,
    value: &str,
) -> Result<T, ConfigError> {
    let v: T = num(key, value)?;
    if v <= T::default() {
        return Err(err(key, value, "must be positive"));
    }
    Ok(v)
}

fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(err(key, value, "must be true or false")),
    }
}

/// `-1` means "unlimited" for Kafka's retention settings.
fn optional_ms(key: &str, value: &str) -> Result<Option<i64>, ConfigError> {
    let v: i64 = num(key, value)?;
    match v {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v)),
        _ => Err(err(key, value, "must be -1 or non-negative")),
    }
}

/// One entry of `listeners`: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listener {
    name: String,
    host: String,
    port: u16,
}

/// Parses a comma-separated `NAME://host:port` list (a bare `host:port` is
/// `PLAINTEXT`). Every listener name must map to `PLAINTEXT` in `protocols`
/// (`listener.security.protocol.map`): klog has no TLS or SASL.
fn listeners(
    key: &str,
    value: &str,
    protocols: &BTreeMap<String, String>,
) -> Result<Vec<Listener>, ConfigError> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = match entry.split_once("://") {
            Some((name, rest)) => (name.to_ascii_uppercase(), rest),
            None => ("PLAINTEXT".to_owned(), entry),
        };
        let protocol = protocols.get(&name).map_or(name.as_str(), String::as_str);
        if !protocol.eq_ignore_ascii_case("PLAINTEXT") {
            return Err(err(
                key,
                value,
                format!("listener {name} is {protocol}: only PLAINTEXT listeners are supported"),
            ));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| err(key, value, "expected NAME://host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| err(key, value, "port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        if out.iter().any(|l: &Listener| l.name == name) {
            return Err(err(key, value, format!("listener {name} is named twice")));
        }
        out.push(Listener {
            name,
            host: host.to_owned(),
            port,
        });
    }
    if out.is_empty() {
        return Err(err(key, value, "no listener given"));
    }
    Ok(out)
}

/// A bind address from a listener's host (an IP address or `localhost`).
fn bind_address(key: &str, value: &str, l: &Listener) -> Result<SocketAddr, ConfigError> {
    let ip = if l.host == "localhost" {
        "127.0.0.1"
    } else {
        l.host.as_str()
    };
    format!("{ip}:{}", l.port)
        .parse()
        .or_else(|_| format!("[{ip}]:{}", l.port).parse())
        .map_err(|_| err(key, value, "host must be an IP address or localhost"))
}

/// Parses `controller.quorum.voters`: `id@host:port,...`.
fn voters(key: &str, value: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut out: Vec<Voter> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || err(key, value, format!("{entry:?} is not id@host:port"));
        let (id, addr) = entry.split_once('@').ok_or_else(bad)?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let id: i32 = id.trim().parse().map_err(|_| bad())?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if id < 0 {
            return Err(err(key, value, format!("voter id {id} is negative")));
        }
        if out.iter().any(|v| v.id == id) {
            return Err(err(key, value, format!("voter {id} is named twice")));
        }
        out.push(Voter {
            id,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        });
    }
    Ok(out)
}

impl BrokerConfig {
    /// Builds a configuration from `key=value` pairs applied in order over the
    /// defaults. Returns it with the keys klog does not know (to be warned about).
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let mut c = Self::default();
        let mut unknown = Vec::new();
        let mut listeners_value: Option<String> = None;
        let mut advertised_value: Option<String> = None;
        let mut protocols: BTreeMap<String, String> =
            [("PLAINTEXT", "PLAINTEXT"), ("CONTROLLER", "PLAINTEXT")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect();
        for (key, value) in pairs {
            let k = key.as_str();
            let v = value.as_str();
            match k {
                "node.id" | "broker.id" => c.node_id = num(k, v)?,
                "listeners" => listeners_value = Some(value.clone()),
                "advertised.listeners" => advertised_value = Some(value.clone()),
                "listener.security.protocol.map" => {
                    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let (name, proto) = pair
                            .split_once(':')
                            .ok_or_else(|| err(k, v, "expected NAME:PROTOCOL,..."))?;
                        protocols.insert(name.trim().to_ascii_uppercase(), proto.trim().to_owned());
                    }
                }
                "process.roles" => {
                    let mut roles = Roles {
                        broker: false,
                        controller: false,
                    };
                    for r in v.split(',').map(str::trim) {
                        match r {
                            "broker" => roles.broker = true,
                            "controller" => roles.controller = true,
                            _ => return Err(err(k, v, "roles are broker and controller")),
                        }
                    }
                    if !roles.broker && !roles.controller {
                        return Err(err(k, v, "no role given"));
                    }
                    c.cluster.roles = roles;
                }
                "controller.quorum.voters" => c.cluster.voters = voters(k, v)?,
                "controller.listener.names" => {
                    let first = v.split(',').next().unwrap_or("").trim();
                    if first.is_empty() {
                        return Err(err(k, v, "no listener name given"));
                    }
                    c.cluster.controller_listener_name = first.to_ascii_uppercase();
                }
                "inter.broker.listener.name" => {
                    c.cluster.inter_broker_listener_name = v.trim().to_ascii_uppercase()
                }
                "broker.session.timeout.ms" => c.cluster.session_timeout_ms = positive(k, v)?,
                "broker.heartbeat.interval.ms" => c.cluster.heartbeat_interval_ms = positive(k, v)?,
                "replica.fetch.max.bytes" => c.cluster.replica_fetch_max_bytes = positive(k, v)?,
                "replica.fetch.wait.max.ms" => {
                    c.cluster.replica_fetch_wait_max_ms = positive(k, v)?
                }
                "num.replica.fetchers" => c.cluster.num_replica_fetchers = positive(k, v)?,
                "offsets.topic.replication.factor" => {
                    c.cluster.offsets_topic_replication_factor = positive(k, v)?;
                    c.cluster.offsets_topic_replication_factor_set = true;
                }
                "unclean.leader.election.enable" => {
                    c.cluster.unclean_leader_election = boolean(k, v)?
                }
                "auto.leader.rebalance.enable" => c.cluster.auto_leader_rebalance = boolean(k, v)?,
                "leader.imbalance.check.interval.seconds" => {
                    c.cluster.leader_imbalance_check_interval_ms =
                        positive::<i64>(k, v)?.saturating_mul(1000)
                }
                "log.dirs" | "log.dir" => {
                    let dirs: Vec<PathBuf> = v
                        .split(',')
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from)
                        .collect();
                    if dirs.is_empty() {
                        return Err(err(k, v, "no directory given"));
                    }
                    c.log_dirs = dirs;
                }
                "num.partitions" => c.num_partitions = positive(k, v)?,
                "default.replication.factor" => c.default_replication_factor = positive(k, v)?,
                "auto.create.topics.enable" => c.auto_create_topics = boolean(k, v)?,
                "socket.request.max.bytes" => c.socket_request_max_bytes = positive(k, v)?,
                "min.insync.replicas" => c.min_insync_replicas = positive(k, v)?,
                "replica.lag.time.max.ms" => c.replica_lag_time_max_ms = positive(k, v)?,
                "log.retention.check.interval.ms" => {
                    c.retention_check_interval_ms = positive(k, v)?
                }
                "log.flush.scheduler.interval.ms" => {
                    c.flush_scheduler_interval_ms = positive(k, v)?
                }
                "log.flush.offset.checkpoint.interval.ms" => {
                    c.checkpoint_interval_ms = positive(k, v)?
                }
                "offsets.topic.num.partitions" => c.offsets_topic_partitions = positive(k, v)?,
                "group.initial.rebalance.delay.ms" => {
                    c.group_initial_rebalance_delay_ms = num::<u32>(k, v)?.into()
                }
                "group.min.session.timeout.ms" => c.group_min_session_timeout_ms = positive(k, v)?,
                "group.max.session.timeout.ms" => c.group_max_session_timeout_ms = positive(k, v)?,
                "offsets.retention.minutes" => {
                    c.offsets_retention_ms = positive::<i64>(k, v)?.saturating_mul(60_000)
                }
                "offsets.retention.check.interval.ms" => {
                    c.offsets_retention_check_interval_ms = positive(k, v)?
                }
                "klog.boot.id.file" => {
                    c.cluster.boot_id_file = (!v.is_empty()).then(|| PathBuf::from(v))
                }
                "klog.fetch.mode" => {
                    c.fetch_mode = match v {
                        "sendfile" => FetchMode::Sendfile,
                        "buffered" => FetchMode::Buffered,
                        _ => return Err(err(k, v, "must be sendfile or buffered")),
                    }
                }
                "log.segment.bytes" => {
                    let b: u64 = num(k, v)?;
                    if b < 14 {
                        return Err(err(k, v, "must be at least 14"));
                    }
                    c.log.segment_bytes = b;
                }
                "log.roll.ms" => c.log.segment_ms = Some(positive(k, v)?),
                "log.roll.hours" => c.log.segment_ms = Some(positive::<i64>(k, v)? * 3_600_000),
                "log.retention.ms" => c.log.retention_ms = optional_ms(k, v)?,
                "log.retention.minutes" => {
                    c.log.retention_ms = optional_ms(k, v)?.map(|m| m * 60_000)
                }
                "log.retention.hours" => {
                    c.log.retention_ms = optional_ms(k, v)?.map(|h| h * 3_600_000)
                }
                "log.retention.bytes" => {
                    c.log.retention_bytes = optional_ms(k, v)?.map(|b| b as u64)
                }
                "log.flush.interval.messages" => {
                    c.log.flush_interval_messages = Some(positive(k, v)?)
                }
                "log.flush.interval.ms" => c.log.flush_interval_ms = Some(positive(k, v)?),
                "message.max.bytes" => c.log.max_message_bytes = positive(k, v)?,
                "log.index.interval.bytes" => c.log.index_interval_bytes = positive(k, v)?,
                "log.index.size.max.bytes" => c.log.segment_index_bytes = positive(k, v)?,
                "log.cleanup.policy" => {
                    c.log_cleanup_policy = CleanupPolicy::parse(v).map_err(|e| err(k, v, e))?
                }
                "compression.type" => {
                    if v != "producer" {
                        return Err(err(
                            k,
                            v,
                            "only producer is supported (batches are stored as sent)",
                        ));
                    }
                }
                "log.message.timestamp.type" => {
                    c.log.timestamp_type = match v {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => return Err(err(k, v, "must be CreateTime or LogAppendTime")),
                    }
                }
                _ => {
                    unknown.push(key.clone());
                    continue;
                }
            }
            c.explicit.insert(key, value);
        }
        if c.group_min_session_timeout_ms > c.group_max_session_timeout_ms {
            return Err(err(
                "group.min.session.timeout.ms",
                &c.group_min_session_timeout_ms.to_string(),
                "must not exceed group.max.session.timeout.ms",
            ));
        }
        c.resolve_listeners(
            listeners_value.as_deref(),
            advertised_value.as_deref(),
            &protocols,
        )?;
        c.check_cluster()?;
        Ok((c, unknown))
    }

    /// Sets the client and controller listeners and the advertised address from
    /// `listeners` and `advertised.listeners` (parsed once all keys are read, since
    /// they depend on the listener names).
    fn resolve_listeners(
        &mut self,
        listeners_value: Option<&str>,
        advertised_value: Option<&str>,
        protocols: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        const KEY: &str = "listeners";
        let controller_name = self.cluster.controller_listener_name.clone();
        let broker_name = self.cluster.inter_broker_listener_name.clone();
        let mut advertised: Option<(String, u16)> = None;
        if let Some(v) = advertised_value {
            let list = listeners("advertised.listeners", v, protocols)?;
            advertised = list
                .iter()
                .find(|l| l.name == broker_name)
                .or(list.first())
                .map(|l| (l.host.clone(), l.port));
        }
        if let Some(v) = listeners_value {
            let list = listeners(KEY, v, protocols)?;
            let mut ports = BTreeMap::new();
            for l in &list {
                if l.port != 0
                    && let Some(other) = ports.insert(l.port, l.name.clone())
                {
                    return Err(err(
                        KEY,
                        v,
                        format!("listeners {other} and {} share port {}", l.name, l.port),
                    ));
                }
            }
            if let Some(l) = list.iter().find(|l| l.name == controller_name) {
                self.cluster.controller_listener = Some(bind_address(KEY, v, l)?);
            }
            let broker = list
                .iter()
                .find(|l| l.name == broker_name)
                .or_else(|| list.iter().find(|l| l.name != controller_name));
            match broker {
                Some(l) => self.listener = bind_address(KEY, v, l)?,
                None if self.cluster.roles.broker => {
                    return Err(err(
                        KEY,
                        v,
                        format!("a broker needs a {broker_name} listener"),
                    ));
                }
                None => {}
            }
        }
        self.advertised = match advertised {
            Some(a) => a,
            None => {
                let ip = self.listener.ip();
                let host = if ip.is_unspecified() {
                    "127.0.0.1".to_owned()
                } else {
                    ip.to_string()
                };
                (host, self.listener.port())
            }
        };
        Ok(())
    }

    /// Refuses contradictory cluster settings at start (CLUSTER.md).
    fn check_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let voters_text = || {
            c.voters
                .iter()
                .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
                .collect::<Vec<_>>()
                .join(",")
        };
        if self.node_id < 0 {
            return Err(err(
                "node.id",
                &self.node_id.to_string(),
                "must not be negative",
            ));
        }
        if c.voters.is_empty() {
            if !c.roles.controller {
                return Err(err(
                    "controller.quorum.voters",
                    "",
                    "a node without the controller role needs the quorum's voters",
                ));
            }
            return Ok(());
        }
        let me = c.voters.iter().find(|v| v.id == self.node_id);
        if c.roles.controller {
            let Some(me) = me else {
                return Err(err(
                    "controller.quorum.voters",
                    &voters_text(),
                    format!(
                        "this node (node.id {}) is a controller but not a voter",
                        self.node_id
                    ),
                ));
            };
            let Some(addr) = c.controller_listener else {
                return Err(err(
                    "listeners",
                    &self.explicit.get("listeners").cloned().unwrap_or_default(),
                    format!(
                        "a controller with voters needs a {} listener",
                        c.controller_listener_name
                    ),
                ));
            };
            if addr.port() != me.port {
                return Err(err(
                    "controller.quorum.voters",
                    &voters_text(),
                    format!(
                        "voter {} is at port {} but this node's {} listener is on port {}",
                        me.id,
                        me.port,
                        c.controller_listener_name,
                        addr.port()
                    ),
                ));
            }
        } else if me.is_some() {
            return Err(err(
                "process.roles",
                "broker",
                format!(
                    "node {} is a voter, so it must have the controller role",
                    self.node_id
                ),
            ));
        } else if c.controller_listener.is_none() {
            return Err(err(
                "listeners",
                &self.explicit.get("listeners").cloned().unwrap_or_default(),
                format!(
                    "a broker-only node receives the metadata log on a {} listener",
                    c.controller_listener_name
                ),
            ));
        }
        let controller_port = c.controller_listener.map_or(0, |a| a.port());
        if c.roles.broker && controller_port != 0 && controller_port == self.listener.port() {
            return Err(err(
                "listeners",
                "",
                "the broker and controller listeners share a port",
            ));
        }
        Ok(())
    }
}

/// Where Linux gives the id of the current boot.
pub const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";

/// `cleanup.policy`: which cleanups a topic asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `delete`: time and size retention apply.
    pub delete: bool,
    /// `compact`: records must have keys. (klog does not compact; see
    /// [`crate::config::topic::TopicConfig::storage_log_config`].)
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        Self {
            delete: true,
            compact: false,
        }
    }
}

impl CleanupPolicy {
    /// Parses Kafka's list syntax: `delete`, `compact`, `compact,delete` (any order,
    /// spaces allowed). An empty list is refused.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut p = Self {
            delete: false,
            compact: false,
        };
        for item in value.split(',').map(str::trim) {
            match item {
                "delete" => p.delete = true,
                "compact" => p.compact = true,
                _ => {
                    return Err(format!(
                        "{item:?} is not a cleanup policy (delete or compact)"
                    ));
                }
            }
        }
        Ok(p)
    }

    /// The value as Kafka spells it.
    pub fn name(self) -> &'static str {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        }
    }
}

/// The cluster id every node of a cluster derives alike: from the node id on a
/// single node (as before the quorum), from the voters otherwise.
pub fn cluster_id(config: &BrokerConfig) -> String {
    if config.cluster.voters.is_empty() {
        return format!("klog-{}", config.node_id);
    }
    let voters: String = config
        .cluster
        .voters
        .iter()
        .map(|v| format!("{}@{}:{},", v.id, v.host, v.port))
        .collect();
    format!("klog-{:08x}", crc32c::crc32c(voters.as_bytes()))
}

/// The identity a node writes into, and requires of, the `meta.properties` of its
/// log dirs: its node id and the cluster id it serves, as Kafka does (see
/// [`klog_storage::LogManager::claim`]). A served cluster id is `klog-` and at most
/// 11 more characters, never the 22 of the generated id in a dir written before
/// identities were checked, so a claimed dir is never taken for an unclaimed one.
pub fn log_dir_identity(config: &BrokerConfig) -> klog_storage::MetaProperties {
    klog_storage::MetaProperties::new(config.node_id, cluster_id(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_a_working_single_node_broker() {
        let (c, unknown) = BrokerConfig::from_pairs(Vec::new()).expect("defaults");
        assert!(unknown.is_empty());
        assert_eq!(c.node_id, 1);
        assert_eq!(c.listener, "127.0.0.1:9092".parse().expect("addr"));
        assert_eq!(c.log_dirs, vec![PathBuf::from("./klog-data")]);
        assert_eq!(c.log.segment_bytes, 1 << 30);
    }

    #[test]
    fn properties_file_and_overrides() {
        let text = "# comment\nlisteners=PLAINTEXT://127.0.0.1:19092\nlog.dirs = /tmp/a,/tmp/b\n\
                    log.retention.ms=-1\nmystery.key=1\nauto.create.topics.enable=false\n";
        let mut p = parse_properties(text);
        p.extend(pairs(&[("node.id", "7")]));
        let (c, unknown) = BrokerConfig::from_pairs(p).expect("parse");
        assert_eq!(c.listener.port(), 19092);
        assert_eq!(c.advertised, ("127.0.0.1".to_owned(), 19092));
        assert_eq!(c.log_dirs.len(), 2);
        assert_eq!(c.log.retention_ms, None);
        assert!(!c.auto_create_topics);
        assert_eq!(c.node_id, 7);
        assert_eq!(unknown, vec!["mystery.key".to_owned()]);
    }

    #[test]
    fn group_coordinator_keys() {
        let (c, _) = BrokerConfig::from_pairs(Vec::new()).expect("defaults");
        assert_eq!(c.offsets_topic_partitions, 50);
        assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
        assert_eq!(c.offsets_retention_ms, 7 * DAY_MS);
        let (c, unknown) = BrokerConfig::from_pairs(pairs(&[
            ("offsets.topic.num.partitions", "3"),
            ("group.initial.rebalance.delay.ms", "0"),
            ("group.min.session.timeout.ms", "100"),
            ("group.max.session.timeout.ms", "200"),
            ("offsets.retention.minutes", "2"),
        ]))
        .expect("parse");
        assert!(unknown.is_empty());
        assert_eq!(c.offsets_topic_partitions, 3);
        assert_eq!(c.group_initial_rebalance_delay_ms, 0);
        assert_eq!(
            (
                c.group_min_session_timeout_ms,
                c.group_max_session_timeout_ms
            ),
            (100, 200)
        );
        assert_eq!(c.offsets_retention_ms, 120_000);
        let e = BrokerConfig::from_pairs(pairs(&[("group.min.session.timeout.ms", "999999999")]))
            .expect_err("min above max");
        assert_eq!(e.key, "group.min.session.timeout.ms");
        let e = BrokerConfig::from_pairs(pairs(&[("offsets.topic.num.partitions", "0")]))
            .expect_err("zero");
        assert_eq!(e.key, "offsets.topic.num.partitions");
    }

    /// CLUSTER.md's configuration names, and the contradictions refused at start.
    #[test]
    fn cluster_settings() {
        let (c, unknown) = BrokerConfig::from_pairs(Vec::new()).expect("defaults");
        assert!(unknown.is_empty());
        assert!(c.cluster.is_single_node());
        assert_eq!(
            c.cluster.roles,
            Roles {
                broker: true,
                controller: true
            }
        );
        let three = |node: &str| {
            pairs(&[
                ("node.id", node),
                ("process.roles", "broker,controller"),
                (
                    "controller.quorum.voters",
                    "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293",
                ),
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
                ),
                ("broker.session.timeout.ms", "3000"),
                ("broker.heartbeat.interval.ms", "500"),
                ("replica.lag.time.max.ms", "2000"),
                ("num.replica.fetchers", "1"),
                ("unclean.leader.election.enable", "false"),
                ("leader.imbalance.check.interval.seconds", "10"),
            ])
        };
        let (c, unknown) = BrokerConfig::from_pairs(three("1")).expect("node 1");
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(c.listener.port(), 9092);
        assert_eq!(c.cluster.controller_listener.map(|a| a.port()), Some(9093));
        assert_eq!(c.cluster.voters.len(), 3);
        assert_eq!(c.cluster.session_timeout_ms, 3000);
        assert_eq!(c.cluster.heartbeat_interval_ms, 500);
        assert_eq!(c.cluster.leader_imbalance_check_interval_ms, 10_000);
        assert_eq!(c.replica_lag_time_max_ms, 2000);
        // Node 2's voter entry is at 9193, but this listener is on 9093.
        let e = BrokerConfig::from_pairs(three("2")).expect_err("port mismatch");
        assert_eq!(e.key, "controller.quorum.voters");
        // A controller that is not a voter.
        let e = BrokerConfig::from_pairs(three("4")).expect_err("not a voter");
        assert_eq!(e.key, "controller.quorum.voters");
        // A broker-only node may be outside the voters; a voter may not be broker-only.
        let mut p = three("4");
        p.push(("process.roles".into(), "broker".into()));
        p.push(("listeners".into(), "PLAINTEXT://127.0.0.1:9392".into()));
        let e = BrokerConfig::from_pairs(p.clone())
            .expect_err("broker-only without a controller listener");
        assert_eq!(e.key, "listeners");
        p.push((
            "listeners".into(),
            "PLAINTEXT://127.0.0.1:9392,CONTROLLER://127.0.0.1:9393".into(),
        ));
        let (c, _) = BrokerConfig::from_pairs(p).expect("broker-only node");
        assert!(!c.cluster.roles.controller);
        assert_eq!(c.cluster.controller_listener.map(|a| a.port()), Some(9393));
        let mut p = three("1");
        p.push(("process.roles".into(), "broker".into()));
        let e = BrokerConfig::from_pairs(p).expect_err("voter without controller role");
        assert_eq!(e.key, "process.roles");
        // A controller listener missing.
        let mut p = three("1");
        p.push(("listeners".into(), "PLAINTEXT://127.0.0.1:9092".into()));
        let e = BrokerConfig::from_pairs(p).expect_err("no controller listener");
        assert_eq!(e.key, "listeners");
        // Two listeners on one port.
        let mut p = three("1");
        p.push((
            "listeners".into(),
            "PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:9093".into(),
        ));
        let e = BrokerConfig::from_pairs(p).expect_err("shared port");
        assert_eq!(e.key, "listeners");
        // A broker-only node needs voters to reach.
        let e =
            BrokerConfig::from_pairs(pairs(&[("process.roles", "broker")])).expect_err("no voters");
        assert_eq!(e.key, "controller.quorum.voters");
        let e = BrokerConfig::from_pairs(pairs(&[("controller.quorum.voters", "1@host")]))
            .expect_err("bad voter");
        assert_eq!(e.key, "controller.quorum.voters");
        let e =
            BrokerConfig::from_pairs(pairs(&[("process.roles", "leader")])).expect_err("bad role");
        assert_eq!(e.key, "process.roles");
        // Listener names map to PLAINTEXT only.
        let e = BrokerConfig::from_pairs(pairs(&[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,INTERNAL://127.0.0.1:9094",
            ),
            (
                "listener.security.protocol.map",
                "INTERNAL:SSL,PLAINTEXT:PLAINTEXT",
            ),
        ]))
        .expect_err("SSL");
        assert_eq!(e.key, "listeners");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = BrokerConfig::from_pairs(pairs(&[("num.partitions", "zero")])).expect_err("bad");
        assert_eq!(e.key, "num.partitions");
        let e = BrokerConfig::from_pairs(pairs(&[("listeners", "SSL://x:1")])).expect_err("bad");
        assert_eq!(e.key, "listeners");
        let e = BrokerConfig::from_pairs(pairs(&[("log.segment.bytes", "-5")])).expect_err("bad");
        assert_eq!(e.key, "log.segment.bytes");
    }
}
