//! Topic and broker configuration as the admin APIs see it: the topic-level config
//! names klog understands, how overrides are validated and turned into an effective
//! [`TopicConfig`], how AlterConfigs / IncrementalAlterConfigs change a topic's
//! overrides, and the entries DescribeConfigs reports (value, source, synonyms, type,
//! documentation).
//!
//! ```text
//!  overrides (klog-topics file) ──TopicConfig::strict/lenient──► TopicConfig
//!        ▲                                                         │ storage_log_config
//!        └── alter_overrides(ops) ◄── AlterConfigs / Incremental    ▼
//!                                                             Log::set_config
//! ```
//!
//! Everything here is pure: no files, no locks. The broker validates a whole resource
//! with these functions before it changes anything, so a request with one bad entry
//! changes nothing.

use std::collections::BTreeMap;

use klog_storage::{LogConfig, TimestampType};

use crate::config::BrokerConfig;

/// A config's type as DescribeConfigs v3+ reports it (Kafka's `ConfigType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigType {
    /// `true` / `false`.
    Boolean = 1,
    /// Free text or an enumeration.
    String = 2,
    /// 32-bit integer.
    Int = 3,
    /// 64-bit integer.
    Long = 5,
    /// Comma-separated list (the only kind APPEND and SUBTRACT apply to).
    List = 7,
}

/// Where a config value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSource {
    /// A per-topic override (`DYNAMIC_TOPIC_CONFIG`, 1).
    Topic = 1,
    /// Set in `server.properties` or with `--set` (`STATIC_BROKER_CONFIG`, 4).
    StaticBroker = 4,
    /// The built-in default (`DEFAULT_CONFIG`, 5).
    Default = 5,
}

/// One topic-level config klog understands.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    /// The topic-level name (`retention.ms`).
    pub name: &'static str,
    /// The broker config that supplies the default (`log.retention.ms`).
    pub broker_key: &'static str,
    /// Its type.
    pub ty: ConfigType,
    /// One-line documentation (DescribeConfigs v3 `include_documentation`).
    pub doc: &'static str,
    /// For a config Kafka 3.x deprecated but still accepts, and klog accepts without
    /// effect: the value DescribeConfigs shows when the topic has no override
    /// (Kafka 3.x's default). `None` for the configs klog applies.
    pub deprecated_default: Option<&'static str>,
}

const fn def(
    name: &'static str,
    broker_key: &'static str,
    ty: ConfigType,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_key,
        ty,
        doc,
        deprecated_default: None,
    }
}

/// A deprecated config accepted without effect, showing `default` (see
/// [`TopicConfigDef::deprecated_default`]).
const fn deprecated(
    name: &'static str,
    broker_key: &'static str,
    ty: ConfigType,
    default: &'static str,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        deprecated_default: Some(default),
        ..def(name, broker_key, ty, doc)
    }
}

/// Every topic-level config klog understands, in name order: the ones it applies,
/// and the deprecated ones Kafka 3.x still accepts, which klog accepts without
/// effect (with a deprecation warning in the log, see [`warn_deprecated`]). Any
/// other name is refused with INVALID_CONFIG.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        "log.cleanup.policy",
        ConfigType::List,
        "delete and/or compact. klog does not compact: a compact topic keeps every \
         record (no time or size retention unless delete is also listed) and refuses \
         records without a key.",
    ),
    def(
        "compression.type",
        "compression.type",
        ConfigType::String,
        "Only producer: batches are stored as the producer compressed them.",
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        ConfigType::Long,
        "fsync the log after this many appended records (-1: leave it to the page cache).",
    ),
    def(
        "flush.ms",
        "log.flush.interval.ms",
        ConfigType::Long,
        "fsync the log when this long has passed since the last flush (-1: never on a timer).",
    ),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        ConfigType::Int,
        "Bytes of batches between two entries of the sparse offset index.",
    ),
    def(
        "max.message.bytes",
        "message.max.bytes",
        ConfigType::Int,
        "Largest record batch accepted (MESSAGE_TOO_LARGE above it).",
    ),
    deprecated(
        "message.downconversion.enable",
        "log.message.downconversion.enable",
        ConfigType::Boolean,
        "true",
        "Deprecated (removed in Kafka 4, KIP-896); accepted without effect: klog never \
         down-converts, it serves no Fetch version older than the v2 record format.",
    ),
    deprecated(
        "message.format.version",
        "log.message.format.version",
        ConfigType::String,
        "3.0-IV1",
        "Deprecated since Kafka 3.0 (KIP-724); accepted without effect: batches are \
         always stored in record format v2.",
    ),
    def(
        "message.timestamp.type",
        "log.message.timestamp.type",
        ConfigType::String,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch at append.",
    ),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        ConfigType::Int,
        "Replicas that must be in sync for an acks=all write (NOT_ENOUGH_REPLICAS otherwise).",
    ),
    def(
        "retention.bytes",
        "log.retention.bytes",
        ConfigType::Long,
        "Delete the oldest segments while a partition is larger than this (-1: no limit).",
    ),
    def(
        "retention.ms",
        "log.retention.ms",
        ConfigType::Long,
        "Delete segments whose newest record is older than this (-1: keep forever).",
    ),
    def(
        "segment.bytes",
        "log.segment.bytes",
        ConfigType::Int,
        "Roll to a new segment file before the active one grows past this.",
    ),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        ConfigType::Int,
        "Size each segment's index files are preallocated to.",
    ),
    def(
        "segment.ms",
        "log.roll.ms",
        ConfigType::Long,
        "Roll a segment this long after its first append.",
    ),
];

/// Logs a deprecation warning for each of `names` that is a deprecated config klog
/// accepts without effect. The admin handlers call it with the names of the entries
/// of a CreateTopics, AlterConfigs or IncrementalAlterConfigs resource they accept.
pub fn warn_deprecated<'a>(topic: &str, names: impl IntoIterator<Item = &'a str>) {
    for name in names {
        if topic_config_def(name).is_some_and(|d| d.deprecated_default.is_some()) {
            tracing::warn!(
                topic,
                config = name,
                "deprecated topic config, accepted as Kafka 3.x does, with no effect"
            );
        }
    }
}

/// Checks a `message.format.version` value as Kafka 3.x does: one of Kafka's
/// versions from 0.8.0 to 3.9 (`2.8`, `0.10.2`, `3.0-IV1`). As Kafka's
/// `MetadataVersion.fromVersionString`, only the first three parts of a 0.x
/// version and the first two of a later one count, so `0.10.0.0` is `0.10.0` and
/// `2.8.1` is `2.8` (tools and old configs write them so).
fn message_format_version(value: &str) -> Result<(), String> {
    let bad = || format!("{value:?} is not a Kafka version (0.8.0 to 3.9)");
    let (version, iv) = match value.trim().split_once("-IV") {
        Some((v, iv)) => (v, Some(iv)),
        None => (value.trim(), None),
    };
    if iv.is_some_and(|iv| iv.is_empty() || !iv.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    let mut parts: Vec<u32> = version
        .split('.')
        .map(|p| p.parse::<u32>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    parts.truncate(if parts.first() == Some(&0) { 3 } else { 2 });
    let known = match parts.as_slice() {
        [0, minor, _] | [0, minor] => (8..=11).contains(minor),
        [1, minor, ..] => *minor <= 1,
        [2, minor, ..] => *minor <= 8,
        [3, minor, ..] => *minor <= 9,
        _ => false,
    };
    if known && parts.len() <= 3 {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The definition of a topic-level config, if klog knows the name.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

use crate::config::CleanupPolicy;

/// The effective configuration of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Log settings as configured (retention as written, even when the cleanup policy
    /// turns it off: see [`TopicConfig::storage_log_config`]).
    pub log: LogConfig,
    /// `min.insync.replicas`.
    pub min_insync: i32,
    /// `cleanup.policy`.
    pub cleanup: CleanupPolicy,
}

fn parse_i64(value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{value:?} is not a number"))
}

fn at_least(value: &str, min: i64) -> Result<i64, String> {
    let v = parse_i64(value)?;
    if v < min {
        return Err(format!("{v} is below the minimum {min}"));
    }
    Ok(v)
}

fn int_at_least(value: &str, min: i64) -> Result<i64, String> {
    let v = at_least(value, min)?;
    if v > i64::from(i32::MAX) {
        return Err(format!("{v} is above the maximum {}", i32::MAX));
    }
    Ok(v)
}

fn opt(v: Option<i64>) -> String {
    v.unwrap_or(-1).to_string()
}

impl TopicConfig {
    /// The replication settings of the topic's partitions.
    pub fn leader_config(&self, broker: &BrokerConfig) -> klog_replication::LeaderConfig {
        klog_replication::LeaderConfig {
            min_insync_replicas: usize::try_from(self.min_insync).unwrap_or(1),
            replica_lag_time_max_ms: broker.replica_lag_time_max_ms,
            ..klog_replication::LeaderConfig::default()
        }
    }

    /// The configuration a topic without overrides gets from `broker`.
    pub fn defaults(broker: &BrokerConfig) -> Self {
        Self {
            log: broker.log.clone(),
            min_insync: broker.min_insync_replicas,
            cleanup: broker.log_cleanup_policy,
        }
    }

    /// Applies `overrides` over the broker defaults, refusing the first invalid one:
    /// returns its name and why.
    pub fn strict(
        broker: &BrokerConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, (String, String)> {
        let mut c = Self::defaults(broker);
        for (k, v) in overrides {
            if !is_storable(v) {
                return Err((k.clone(), "tabs and line breaks are not allowed".to_owned()));
            }
            c.apply(k, v).map_err(|e| (k.clone(), e))?;
        }
        Ok(c)
    }

    /// Applies `overrides` over the broker defaults, skipping (with a warning) any that
    /// no longer parse: the topics file was validated when written, so this only
    /// matters for a file edited by hand.
    pub fn lenient(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Self {
        let mut c = Self::defaults(broker);
        for (k, v) in overrides {
            if let Err(e) = c.apply(k, v) {
                tracing::warn!(config = %k, value = %v, error = %e, "ignoring topic config");
            }
        }
        c
    }

    /// Applies one topic-level config, or says why it is invalid (unknown name or
    /// bad value). Limits are Kafka's.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let log = &mut self.log;
        match name {
            "retention.ms" => {
                log.retention_ms = match at_least(value, -1)? {
                    -1 => None,
                    v => Some(v),
                }
            }
            "retention.bytes" => {
                log.retention_bytes = match at_least(value, -1)? {
                    -1 => None,
                    v => Some(v as u64),
                }
            }
            "segment.bytes" => log.segment_bytes = int_at_least(value, 14)? as u64,
            "segment.ms" => log.segment_ms = Some(at_least(value, 1)?),
            "segment.index.bytes" => log.segment_index_bytes = int_at_least(value, 8)? as u32,
            "index.interval.bytes" => log.index_interval_bytes = int_at_least(value, 0)? as u32,
            "max.message.bytes" => log.max_message_bytes = int_at_least(value, 0)? as u32,
            "flush.messages" => {
                log.flush_interval_messages = match at_least(value, -1)? {
                    -1 => None,
                    0 => return Err("0 is below the minimum 1 (-1 disables)".to_owned()),
                    v => Some(v as u64),
                }
            }
            "flush.ms" => {
                log.flush_interval_ms = match at_least(value, -1)? {
                    -1 => None,
                    v => Some(v),
                }
            }
            "message.timestamp.type" => {
                log.timestamp_type =
                    TimestampType::from_name(value).ok_or("must be CreateTime or LogAppendTime")?;
            }
            "min.insync.replicas" => self.min_insync = int_at_least(value, 1)? as i32,
            "cleanup.policy" => self.cleanup = CleanupPolicy::parse(value)?,
            // Deprecated, accepted without effect: only the value is checked.
            "message.format.version" => message_format_version(value)?,
            "message.downconversion.enable" => {
                if !["true", "false"].contains(&value.trim().to_ascii_lowercase().as_str()) {
                    return Err(format!("{value:?} is not true or false"));
                }
            }
            "compression.type" => {
                if value != "producer" {
                    return Err(
                        "only compression.type=producer is supported (batches are stored as sent)"
                            .to_owned(),
                    );
                }
            }
            _ => return Err(format!("unknown topic config {name:?}")),
        }
        Ok(())
    }

    /// The value of a topic-level config, as DescribeConfigs reports it.
    pub fn value(&self, name: &str) -> Option<String> {
        let c = &self.log;
        Some(match name {
            "cleanup.policy" => self.cleanup.name().to_owned(),
            "compression.type" => "producer".to_owned(),
            "flush.messages" => opt(c.flush_interval_messages.map(|m| m as i64)),
            "flush.ms" => opt(c.flush_interval_ms),
            "index.interval.bytes" => c.index_interval_bytes.to_string(),
            "max.message.bytes" => c.max_message_bytes.to_string(),
            "message.timestamp.type" => c.timestamp_type.name().to_owned(),
            "min.insync.replicas" => self.min_insync.to_string(),
            "retention.bytes" => opt(c.retention_bytes.map(|b| b as i64)),
            "retention.ms" => opt(c.retention_ms),
            "segment.bytes" => c.segment_bytes.to_string(),
            "segment.index.bytes" => c.segment_index_bytes.to_string(),
            "segment.ms" => opt(c.segment_ms),
            // Deprecated configs have no effect, so nothing here holds them: without
            // an override they show Kafka's default.
            _ => {
                return topic_config_def(name)?
                    .deprecated_default
                    .map(str::to_owned);
            }
        })
    }

    /// The config the partition logs run with. A topic whose cleanup policy does not
    /// include `delete` is not subject to time or size retention (in Kafka it would be
    /// compacted instead; klog does not compact, so it keeps everything).
    pub fn storage_log_config(&self) -> LogConfig {
        let mut log = self.log.clone();
        if !self.cleanup.delete {
            log.retention_ms = None;
            log.retention_bytes = None;
        }
        log
    }
}

fn list_items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Checks that a config value can be stored in the topics file.
pub fn is_storable(value: &str) -> bool {
    !value.contains(['\t', '\n', '\r'])
}

/// An IncrementalAlterConfigs operation (KIP-339).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlterOp {
    /// Set the value (0).
    Set,
    /// Remove the override, back to the default (1).
    Delete,
    /// Add items to a list config (2).
    Append,
    /// Remove items from a list config (3).
    Subtract,
}

impl AlterOp {
    /// From the wire code.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(Self::Set),
            1 => Some(Self::Delete),
            2 => Some(Self::Append),
            3 => Some(Self::Subtract),
            _ => None,
        }
    }
}

/// One IncrementalAlterConfigs entry: config name, operation, value (null for
/// DELETE).
pub type AlterEntry = (String, AlterOp, Option<String>);

/// Why an alteration was refused: the Kafka error and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterError {
    /// INVALID_CONFIG or INVALID_REQUEST.
    pub code: i16,
    /// What was wrong, naming the config.
    pub message: String,
}

fn invalid_config(message: String) -> AlterError {
    AlterError {
        code: klog_codec::protocol::ResponseError::InvalidConfig.code(),
        message,
    }
}

fn invalid_request(message: String) -> AlterError {
    AlterError {
        code: klog_codec::protocol::ResponseError::InvalidRequest.code(),
        message,
    }
}

/// IncrementalAlterConfigs on one topic: applies `ops` (name, operation, value) to
/// `current` overrides and returns the new overrides, validated as a whole against
/// `broker`'s defaults. APPEND and SUBTRACT apply to list configs only and start from
/// the effective value (override or default), as in Kafka. A name given twice is
/// INVALID_REQUEST; an unknown name or bad value INVALID_CONFIG.
pub fn alter_overrides(
    broker: &BrokerConfig,
    current: &BTreeMap<String, String>,
    ops: &[AlterEntry],
) -> Result<(BTreeMap<String, String>, TopicConfig), AlterError> {
    let mut seen = std::collections::BTreeSet::new();
    for (name, _, _) in ops {
        if !seen.insert(name.as_str()) {
            return Err(invalid_request(format!("{name} is given more than once")));
        }
    }
    let effective = TopicConfig::lenient(broker, current);
    let mut next = current.clone();
    for (name, op, value) in ops {
        let Some(def) = topic_config_def(name) else {
            return Err(invalid_config(format!("unknown topic config {name:?}")));
        };
        match op {
            AlterOp::Set => {
                let v = value
                    .clone()
                    .ok_or_else(|| invalid_config(format!("{name}: SET needs a value")))?;
                next.insert(name.clone(), v);
            }
            AlterOp::Delete => {
                next.remove(name);
            }
            AlterOp::Append | AlterOp::Subtract => {
                if def.ty != ConfigType::List {
                    return Err(invalid_config(format!(
                        "{name} is not a list: APPEND and SUBTRACT do not apply"
                    )));
                }
                let v = value.as_deref().unwrap_or("");
                let given = list_items(v);
                let old = match current.get(name.as_str()) {
                    Some(o) => o.clone(),
                    None => effective.value(name).unwrap_or_default(),
                };
                let mut items: Vec<String> =
                    list_items(&old).into_iter().map(str::to_owned).collect();
                if *op == AlterOp::Append {
                    for g in given {
                        if !items.iter().any(|i| i == g) {
                            items.push(g.to_owned());
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(&i.as_str()));
                }
                if items.is_empty() {
                    return Err(invalid_config(format!("{name} cannot be an empty list")));
                }
                next.insert(name.clone(), items.join(","));
            }
        }
    }
    let config =
        TopicConfig::strict(broker, &next).map_err(|(k, e)| invalid_config(format!("{k}: {e}")))?;
    Ok((next, config))
}

/// AlterConfigs (the original, non-incremental API) on one topic: the given entries
/// replace every override; a null value is skipped, as Kafka does. Validated as a
/// whole.
pub fn replace_overrides(
    broker: &BrokerConfig,
    entries: &[(String, Option<String>)],
) -> Result<(BTreeMap<String, String>, TopicConfig), AlterError> {
    let mut next = BTreeMap::new();
    for (name, value) in entries {
        if next.contains_key(name) {
            return Err(invalid_request(format!("{name} is given more than once")));
        }
        if topic_config_def(name).is_none() {
            return Err(invalid_config(format!("unknown topic config {name:?}")));
        }
        if let Some(v) = value {
            next.insert(name.clone(), v.clone());
        }
    }
    let config =
        TopicConfig::strict(broker, &next).map_err(|(k, e)| invalid_config(format!("{k}: {e}")))?;
    Ok((next, config))
}

/// One entry of a DescribeConfigs answer, before it is put in the wire struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name.
    pub name: &'static str,
    /// Effective value.
    pub value: String,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether AlterConfigs can change it (broker configs are static in klog).
    pub read_only: bool,
    /// The config's type.
    pub ty: ConfigType,
    /// One-line documentation.
    pub doc: &'static str,
    /// Synonyms in order of precedence: (name, value, source).
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// Static synonyms of a broker key, as given in the configuration, highest
/// precedence first (`log.retention.ms` before `log.retention.minutes` and `.hours`).
fn static_synonyms(broker: &BrokerConfig, key: &str) -> Vec<(String, String, ConfigSource)> {
    std::iter::once(key)
        .chain(broker_aliases(key).iter().copied())
        .filter_map(|k| {
            broker
                .explicit
                .get(k)
                .map(|v| (k.to_owned(), v.clone(), ConfigSource::StaticBroker))
        })
        .collect()
}

/// Other names that set the same broker config.
fn broker_aliases(key: &str) -> &'static [&'static str] {
    match key {
        "node.id" => &["broker.id"],
        "log.dirs" => &["log.dir"],
        "log.roll.ms" => &["log.roll.hours"],
        "log.retention.ms" => &["log.retention.minutes", "log.retention.hours"],
        _ => &[],
    }
}

/// DescribeConfigs entries of a topic with `overrides`, in name order.
pub fn topic_entries(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let effective = TopicConfig::lenient(broker, overrides);
    let builtin = TopicConfig::defaults(&BrokerConfig::default());
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push((d.name.to_owned(), v.clone(), ConfigSource::Topic));
            }
            let statics = static_synonyms(broker, d.broker_key);
            let has_static = !statics.is_empty();
            synonyms.extend(statics);
            synonyms.push((
                d.broker_key.to_owned(),
                builtin.value(d.name).unwrap_or_default(),
                ConfigSource::Default,
            ));
            let source = if overrides.contains_key(d.name) {
                ConfigSource::Topic
            } else if has_static {
                ConfigSource::StaticBroker
            } else {
                ConfigSource::Default
            };
            // A list keeps the order it was given in (Kafka reports it so).
            let value = match overrides.get(d.name) {
                Some(v) if d.ty == ConfigType::List => list_items(v).join(","),
                // As Kafka shows the parsed value.
                Some(v) if d.deprecated_default.is_some() && d.ty == ConfigType::Boolean => {
                    v.trim().to_ascii_lowercase()
                }
                Some(v) if d.deprecated_default.is_some() => v.trim().to_owned(),
                _ => effective.value(d.name).unwrap_or_default(),
            };
            ConfigEntry {
                name: d.name,
                value,
                source,
                read_only: false,
                ty: d.ty,
                doc: d.doc,
                synonyms,
            }
        })
        .collect()
}

/// The broker configs klog reads, with their current value: (name, value, type, doc).
fn broker_values(c: &BrokerConfig) -> Vec<(&'static str, String, ConfigType, &'static str)> {
    use ConfigType::{Boolean, Int, List, Long, String as Str};
    let log = &c.log;
    let dirs: Vec<String> = c.log_dirs.iter().map(|d| d.display().to_string()).collect();
    vec![
        (
            "advertised.listeners",
            format!("PLAINTEXT://{}:{}", c.advertised.0, c.advertised.1),
            Str,
            "Address announced to clients in Metadata.",
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            Boolean,
            "Create unknown topics on Metadata or Produce.",
        ),
        (
            "compression.type",
            "producer".to_owned(),
            Str,
            "Only producer: batches are stored as sent.",
        ),
        (
            "default.replication.factor",
            c.default_replication_factor.to_string(),
            Int,
            "Replication factor of auto-created topics and of CreateTopics with -1.",
        ),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
            Int,
            "How long a new group waits for more members before its first rebalance.",
        ),
        (
            "group.max.session.timeout.ms",
            c.group_max_session_timeout_ms.to_string(),
            Int,
            "Largest session timeout a group member may ask for.",
        ),
        (
            "group.min.session.timeout.ms",
            c.group_min_session_timeout_ms.to_string(),
            Int,
            "Smallest session timeout a group member may ask for.",
        ),
        (
            "klog.fetch.mode",
            match c.fetch_mode {
                crate::config::FetchMode::Sendfile => "sendfile",
                crate::config::FetchMode::Buffered => "buffered",
            }
            .to_owned(),
            Str,
            "How fetched records reach the socket: sendfile (zero copy) or buffered.",
        ),
        (
            "listeners",
            format!("PLAINTEXT://{}", c.listener),
            Str,
            "Address the broker listens on.",
        ),
        (
            "log.cleanup.policy",
            c.log_cleanup_policy.name().to_owned(),
            List,
            "Default cleanup.policy of topics.",
        ),
        (
            "log.dirs",
            dirs.join(","),
            Str,
            "Directories holding partition logs.",
        ),
        (
            "log.flush.interval.messages",
            opt(log.flush_interval_messages.map(|m| m as i64)),
            Long,
            "Default flush.messages of topics.",
        ),
        (
            "log.flush.interval.ms",
            opt(log.flush_interval_ms),
            Long,
            "Default flush.ms of topics.",
        ),
        (
            "log.flush.offset.checkpoint.interval.ms",
            c.checkpoint_interval_ms.to_string(),
            Int,
            "How often recovery points and high watermarks are checkpointed.",
        ),
        (
            "log.flush.scheduler.interval.ms",
            c.flush_scheduler_interval_ms.to_string(),
            Long,
            "How often time-based flushes are checked.",
        ),
        (
            "log.index.interval.bytes",
            log.index_interval_bytes.to_string(),
            Int,
            "Default index.interval.bytes of topics.",
        ),
        (
            "log.index.size.max.bytes",
            log.segment_index_bytes.to_string(),
            Int,
            "Default segment.index.bytes of topics.",
        ),
        (
            "log.message.timestamp.type",
            log.timestamp_type.name().to_owned(),
            Str,
            "Default message.timestamp.type of topics.",
        ),
        (
            "log.retention.bytes",
            opt(log.retention_bytes.map(|b| b as i64)),
            Long,
            "Default retention.bytes of topics.",
        ),
        (
            "log.retention.check.interval.ms",
            c.retention_check_interval_ms.to_string(),
            Long,
            "How often retention runs.",
        ),
        (
            "log.retention.ms",
            opt(log.retention_ms),
            Long,
            "Default retention.ms of topics.",
        ),
        (
            "log.roll.ms",
            opt(log.segment_ms),
            Long,
            "Default segment.ms of topics.",
        ),
        (
            "log.segment.bytes",
            log.segment_bytes.to_string(),
            Int,
            "Default segment.bytes of topics.",
        ),
        (
            "message.max.bytes",
            log.max_message_bytes.to_string(),
            Int,
            "Default max.message.bytes of topics.",
        ),
        (
            "min.insync.replicas",
            c.min_insync_replicas.to_string(),
            Int,
            "Default min.insync.replicas of topics.",
        ),
        ("node.id", c.node_id.to_string(), Int, "This broker's id."),
        (
            "num.partitions",
            c.num_partitions.to_string(),
            Int,
            "Partitions of auto-created topics and of CreateTopics with -1.",
        ),
        (
            "offsets.retention.check.interval.ms",
            c.offsets_retention_check_interval_ms.to_string(),
            Long,
            "How often expired committed offsets are removed.",
        ),
        (
            "offsets.retention.minutes",
            (c.offsets_retention_ms / 60_000).to_string(),
            Int,
            "How long committed offsets of an empty group are kept.",
        ),
        (
            "offsets.topic.num.partitions",
            c.offsets_topic_partitions.to_string(),
            Int,
            "Partitions of __consumer_offsets when it is created.",
        ),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            Int,
            "Largest request frame accepted.",
        ),
    ]
}

/// DescribeConfigs entries of the broker: every config klog reads, read-only (klog
/// has no dynamic broker configs), in name order.
pub fn broker_entries(c: &BrokerConfig) -> Vec<ConfigEntry> {
    let builtin = broker_values(&BrokerConfig::default());
    broker_values(c)
        .into_iter()
        .zip(builtin)
        .map(|((name, value, ty, doc), (_, default, _, _))| {
            let mut synonyms = static_synonyms(c, name);
            let source = if synonyms.is_empty() {
                ConfigSource::Default
            } else {
                ConfigSource::StaticBroker
            };
            synonyms.push((name.to_owned(), default, ConfigSource::Default));
            ConfigEntry {
                name,
                value,
                source,
                read_only: true,
                ty,
                doc,
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_validate_like_kafka() {
        let b = BrokerConfig::default();
        let c = TopicConfig::strict(
            &b,
            &map(&[
                ("retention.ms", "-1"),
                ("segment.bytes", "1048576"),
                ("min.insync.replicas", "2"),
                ("cleanup.policy", "compact, delete"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.log.retention_ms, None);
        assert_eq!(c.log.segment_bytes, 1 << 20);
        assert_eq!(c.min_insync, 2);
        assert_eq!(c.cleanup.name(), "compact,delete");
        for (k, v) in [
            ("segment.bytes", "abc"),
            ("segment.bytes", "4294967296"),
            ("retention.ms", "-2"),
            ("no.such.config", "1"),
            ("cleanup.policy", "shred"),
            ("cleanup.policy", ""),
            ("message.timestamp.type", "Now"),
            ("retention.ms", "1\t2"),
        ] {
            assert!(TopicConfig::strict(&b, &map(&[(k, v)])).is_err(), "{k}={v}");
        }
    }

    /// Kafka 3.x still accepts `message.format.version` (deprecated by KIP-724) and
    /// `message.downconversion.enable` (removed by KIP-896): klog accepts them with
    /// their values checked, applies nothing, and DescribeConfigs shows them.
    #[test]
    fn deprecated_configs_are_accepted_without_effect() {
        let b = BrokerConfig::default();
        let given = map(&[
            ("message.format.version", "2.8-IV1"),
            ("message.downconversion.enable", "FALSE"),
        ]);
        let c = TopicConfig::strict(&b, &given).expect("accepted");
        assert_eq!(c, TopicConfig::defaults(&b), "no effect");
        // Issue 32: Kafka reads the first three parts of a 0.x version (the first
        // two of a later one), so librdkafka's and old configs' `0.10.0.0` passes.
        for v in [
            "0.10.2", "0.8.0", "1.1", "2.0", "3.0-IV1", "3.9", "0.10.0.0", "0.11.0.2", "2.8.1",
            "2.8.1.1",
        ] {
            assert!(message_format_version(v).is_ok(), "{v}");
        }
        for v in [
            "", "9.9", "4.0", "0.7.0", "0.7.0.0", "2.9", "2.9.0", "3.0-IV", "x", "0.10.0.x",
        ] {
            assert!(message_format_version(v).is_err(), "{v}");
        }
        assert!(
            TopicConfig::strict(&b, &map(&[("message.downconversion.enable", "yes")])).is_err()
        );
        let entry = |entries: Vec<ConfigEntry>, name: &str| {
            entries
                .into_iter()
                .find(|e| e.name == name)
                .map(|e| (e.value, e.source))
        };
        assert_eq!(
            entry(
                topic_entries(&b, &BTreeMap::new()),
                "message.format.version"
            ),
            Some(("3.0-IV1".to_owned(), ConfigSource::Default))
        );
        assert_eq!(
            entry(topic_entries(&b, &given), "message.format.version"),
            Some(("2.8-IV1".to_owned(), ConfigSource::Topic))
        );
        assert_eq!(
            entry(topic_entries(&b, &given), "message.downconversion.enable"),
            Some(("false".to_owned(), ConfigSource::Topic))
        );
        let (next, _) = alter_overrides(
            &b,
            &given,
            &[("message.format.version".to_owned(), AlterOp::Delete, None)],
        )
        .expect("delete");
        assert_eq!(next, map(&[("message.downconversion.enable", "FALSE")]));
    }

    #[test]
    fn compact_only_topics_keep_everything() {
        let b = BrokerConfig::default();
        let c = TopicConfig::strict(&b, &map(&[("cleanup.policy", "compact")])).expect("ok");
        let log = c.storage_log_config();
        assert_eq!((log.retention_ms, log.retention_bytes), (None, None));
        assert_eq!(
            c.value("retention.ms"),
            Some((7 * 86_400_000i64).to_string())
        );
    }

    #[test]
    fn incremental_ops() {
        let b = BrokerConfig::default();
        let cur = map(&[("retention.ms", "1000"), ("segment.ms", "5000")]);
        let ops = vec![
            ("retention.ms".to_owned(), AlterOp::Delete, None),
            (
                "segment.bytes".to_owned(),
                AlterOp::Set,
                Some("2048".to_owned()),
            ),
            (
                "cleanup.policy".to_owned(),
                AlterOp::Append,
                Some("compact".to_owned()),
            ),
        ];
        let (next, c) = alter_overrides(&b, &cur, &ops).expect("valid");
        assert_eq!(
            next,
            map(&[
                ("cleanup.policy", "delete,compact"),
                ("segment.bytes", "2048"),
                ("segment.ms", "5000")
            ])
        );
        assert!(c.cleanup.compact && c.cleanup.delete);
        let sub = vec![(
            "cleanup.policy".to_owned(),
            AlterOp::Subtract,
            Some("delete".to_owned()),
        )];
        let (next, _) = alter_overrides(&b, &next, &sub).expect("valid");
        assert_eq!(
            next.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        // Subtracting the last item, appending to a non-list, a bad value among good
        // ones and a duplicate name are all refused.
        let all_gone = vec![(
            "cleanup.policy".to_owned(),
            AlterOp::Subtract,
            Some("compact".to_owned()),
        )];
        assert!(alter_overrides(&b, &next, &all_gone).is_err());
        let not_list = vec![(
            "retention.ms".to_owned(),
            AlterOp::Append,
            Some("1".to_owned()),
        )];
        assert!(alter_overrides(&b, &cur, &not_list).is_err());
        let mixed = vec![
            ("segment.ms".to_owned(), AlterOp::Set, Some("9".to_owned())),
            (
                "retention.ms".to_owned(),
                AlterOp::Set,
                Some("x".to_owned()),
            ),
        ];
        let e = alter_overrides(&b, &cur, &mixed).expect_err("bad value");
        assert_eq!(
            e.code,
            klog_codec::protocol::ResponseError::InvalidConfig.code()
        );
        let dup = vec![
            ("segment.ms".to_owned(), AlterOp::Set, Some("9".to_owned())),
            ("segment.ms".to_owned(), AlterOp::Delete, None),
        ];
        let e = alter_overrides(&b, &cur, &dup).expect_err("duplicate");
        assert_eq!(
            e.code,
            klog_codec::protocol::ResponseError::InvalidRequest.code()
        );
    }

    #[test]
    fn replace_drops_unlisted_and_null_values() {
        let b = BrokerConfig::default();
        let (next, _) = replace_overrides(
            &b,
            &[
                ("retention.ms".to_owned(), Some("5".to_owned())),
                ("segment.ms".to_owned(), None),
            ],
        )
        .expect("valid");
        assert_eq!(next, map(&[("retention.ms", "5")]));
        assert!(replace_overrides(&b, &[("nope".to_owned(), Some("1".to_owned()))]).is_err());
    }

    #[test]
    fn sources_and_synonyms() {
        let (b, _) =
            BrokerConfig::from_pairs(vec![("log.retention.hours".to_owned(), "1".to_owned())])
                .expect("config");
        let entries = topic_entries(&b, &map(&[("segment.ms", "100")]));
        let get = |n: &str| entries.iter().find(|e| e.name == n).expect(n).clone();
        let seg = get("segment.ms");
        assert_eq!(
            (seg.value.as_str(), seg.source),
            ("100", ConfigSource::Topic)
        );
        assert_eq!(
            seg.synonyms[0],
            (
                "segment.ms".to_owned(),
                "100".to_owned(),
                ConfigSource::Topic
            )
        );
        assert_eq!(
            seg.synonyms.last().map(|s| s.2),
            Some(ConfigSource::Default)
        );
        let ret = get("retention.ms");
        assert_eq!(
            (ret.value.as_str(), ret.source),
            ("3600000", ConfigSource::StaticBroker)
        );
        assert_eq!(
            ret.synonyms,
            vec![
                (
                    "log.retention.hours".to_owned(),
                    "1".to_owned(),
                    ConfigSource::StaticBroker
                ),
                (
                    "log.retention.ms".to_owned(),
                    "604800000".to_owned(),
                    ConfigSource::Default
                ),
            ]
        );
        assert_eq!(get("cleanup.policy").source, ConfigSource::Default);
        let broker = broker_entries(&b);
        let r = broker
            .iter()
            .find(|e| e.name == "log.retention.ms")
            .expect("entry");
        assert_eq!(
            (r.value.as_str(), r.source, r.read_only),
            ("3600000", ConfigSource::StaticBroker, true)
        );
        let names: Vec<&str> = broker.iter().map(|e| e.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
