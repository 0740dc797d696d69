//! Broker configuration with Kafka's names (`server.properties`).
//!
//! Values come from a properties file and `--set key=value` overrides. Unknown keys
//! are reported as warnings (Kafka has hundreds; a file written for Kafka should
//! still start klog), an invalid value for a known key is an error naming the key.
//! Defaults are Kafka's; where klog differs, `docs/protocol.md` says why.

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
    pub log_cleanup_policy: crate::configs::CleanupPolicy,
    /// Every key that was set explicitly, as given (for DescribeConfigs).
    pub explicit: BTreeMap<String, String>,
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
            log_cleanup_policy: crate::configs::CleanupPolicy::default(),
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

/// Parses `PLAINTEXT://host:port` (first entry of a comma-separated list).
fn listener(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let first = value.split(',').next().unwrap_or("").trim();
    let rest = match first.split_once("://") {
        Some((proto, rest)) if proto.eq_ignore_ascii_case("PLAINTEXT") => rest,
        Some(_) => return Err(err(key, value, "only PLAINTEXT listeners are supported")),
        None => first,
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| err(key, value, "expected PLAINTEXT://host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| err(key, value, "port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_owned(), port))
}

impl BrokerConfig {
    /// Builds a configuration from `key=value` pairs applied in order over the
    /// defaults. Returns it with the keys klog does not know (to be warned about).
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let mut c = Self::default();
        let mut unknown = Vec::new();
        let mut advertised: Option<(String, u16)> = None;
        for (key, value) in pairs {
            let k = key.as_str();
            let v = value.as_str();
            match k {
                "node.id" | "broker.id" => c.node_id = num(k, v)?,
                "listeners" => {
                    let (host, port) = listener(k, v)?;
                    let ip = if host == "localhost" {
                        "127.0.0.1".to_owned()
                    } else {
                        host
                    };
                    c.listener = format!("{ip}:{port}")
                        .parse()
                        .or_else(|_| format!("[{ip}]:{port}").parse())
                        .map_err(|_| err(k, v, "host must be an IP address or localhost"))?;
                }
                "advertised.listeners" => advertised = Some(listener(k, v)?),
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
                    c.log_cleanup_policy =
                        crate::configs::CleanupPolicy::parse(v).map_err(|e| err(k, v, e))?
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
        c.advertised = match advertised {
            Some(a) => a,
            None => {
                let ip = c.listener.ip();
                let host = if ip.is_unspecified() {
                    "127.0.0.1".to_owned()
                } else {
                    ip.to_string()
                };
                (host, c.listener.port())
            }
        };
        Ok((c, unknown))
    }
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
