//! Topic metadata: names, partition counts and per-topic configuration overrides,
//! persisted in `<first log dir>/klog-topics` so they survive restarts.
//!
//! The file has one line per topic, fields separated by tabs:
//! `name  partitions  key=value  key=value ...`. It is rewritten whole (temporary
//! file, fsync, rename) on every change. On one node this file is the cluster
//! metadata; the controller quorum will replace it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use klog_storage::{LogConfig, TimestampType};

/// The file holding topic metadata, inside the first log dir.
pub const TOPICS_FILE: &str = "klog-topics";

/// A topic's persistent description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Topic-level configuration overrides (Kafka's topic config names).
    pub overrides: BTreeMap<String, String>,
}

/// Topic-level configuration names klog understands, with the broker key that
/// provides the default (for DescribeConfigs synonyms).
pub const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "log.cleanup.policy"),
    ("compression.type", "compression.type"),
    ("flush.messages", "log.flush.interval.messages"),
    ("flush.ms", "log.flush.interval.ms"),
    ("index.interval.bytes", "log.index.interval.bytes"),
    ("max.message.bytes", "message.max.bytes"),
    ("message.timestamp.type", "log.message.timestamp.type"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("retention.bytes", "log.retention.bytes"),
    ("retention.ms", "log.retention.ms"),
    ("segment.bytes", "log.segment.bytes"),
    ("segment.index.bytes", "log.index.size.max.bytes"),
    ("segment.ms", "log.roll.ms"),
];

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

/// Applies one topic-level override to `config`, or says why it is invalid.
/// `min_insync` receives `min.insync.replicas`, which is not a log setting.
pub fn apply_override(
    config: &mut LogConfig,
    min_insync: &mut i32,
    name: &str,
    value: &str,
) -> Result<(), String> {
    match name {
        "retention.ms" => {
            config.retention_ms = match at_least(value, -1)? {
                -1 => None,
                v => Some(v),
            }
        }
        "retention.bytes" => {
            config.retention_bytes = match at_least(value, -1)? {
                -1 => None,
                v => Some(v as u64),
            }
        }
        "segment.bytes" => config.segment_bytes = at_least(value, 14)? as u64,
        "segment.ms" => config.segment_ms = Some(at_least(value, 1)?),
        "segment.index.bytes" => {
            config.segment_index_bytes = at_least(value, 8)?.min(i64::from(i32::MAX)) as u32
        }
        "index.interval.bytes" => {
            config.index_interval_bytes = at_least(value, 0)?.min(i64::from(i32::MAX)) as u32
        }
        "max.message.bytes" => {
            config.max_message_bytes = at_least(value, 0)?.min(i64::from(i32::MAX)) as u32
        }
        "flush.messages" => config.flush_interval_messages = Some(at_least(value, 1)? as u64),
        "flush.ms" => config.flush_interval_ms = Some(at_least(value, 0)?),
        "message.timestamp.type" => {
            config.timestamp_type = match value {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => return Err("must be CreateTime or LogAppendTime".to_owned()),
            }
        }
        "min.insync.replicas" => *min_insync = at_least(value, 1)?.min(i64::from(i32::MAX)) as i32,
        "cleanup.policy" => {
            if value != "delete" {
                return Err(
                    "only cleanup.policy=delete is supported (no compaction yet)".to_owned(),
                );
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

/// The effective log config and `min.insync.replicas` of a topic.
pub fn effective_config(
    defaults: &LogConfig,
    default_min_insync: i32,
    overrides: &BTreeMap<String, String>,
) -> (LogConfig, i32) {
    let mut config = defaults.clone();
    let mut min_insync = default_min_insync;
    for (k, v) in overrides {
        // Overrides were validated when they were set; a value that no longer parses
        // (a file edited by hand) keeps the default.
        if let Err(e) = apply_override(&mut config, &mut min_insync, k, v) {
            tracing::warn!(config = %k, value = %v, error = %e, "ignoring topic config");
        }
    }
    (config, min_insync)
}

/// Whether `name` is a legal Kafka topic name: 1-249 of `[a-zA-Z0-9._-]`, not `.`
/// or `..`.
pub fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Reads the topics file; a missing file means no topics.
pub fn load(dir: &Path) -> std::io::Result<Vec<TopicMeta>> {
    let path = dir.join(TOPICS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut topics = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let name = fields.next().unwrap_or_default().to_owned();
        let partitions = fields.next().and_then(|p| p.parse::<i32>().ok());
        let (true, Some(partitions)) = (is_valid_topic_name(&name), partitions) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: line {} is not a topic entry", path.display(), n + 1),
            ));
        };
        let overrides = fields
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        topics.push(TopicMeta {
            name,
            partitions,
            overrides,
        });
    }
    Ok(topics)
}

/// Writes the topics file atomically: temporary file, fsync, rename, fsync the dir.
pub fn store<'a>(
    dir: &Path,
    topics: impl IntoIterator<Item = &'a TopicMeta>,
) -> std::io::Result<()> {
    let mut text = String::new();
    for t in topics {
        text.push_str(&t.name);
        text.push('\t');
        text.push_str(&t.partitions.to_string());
        for (k, v) in &t.overrides {
            text.push('\t');
            text.push_str(k);
            text.push('=');
            text.push_str(v);
        }
        text.push('\n');
    }
    let tmp: PathBuf = dir.join(format!("{TOPICS_FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(TOPICS_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Checks that a config value can be stored in the topics file.
pub fn is_storable(value: &str) -> bool {
    !value.contains(['\t', '\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_load_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_owned(), "1000".to_owned());
        let topics = vec![
            TopicMeta {
                name: "a-b.c_d".to_owned(),
                partitions: 3,
                overrides,
            },
            TopicMeta {
                name: "x".to_owned(),
                partitions: 1,
                overrides: BTreeMap::new(),
            },
        ];
        store(dir.path(), &topics).expect("store");
        assert_eq!(load(dir.path()).expect("load"), topics);
    }

    #[test]
    fn overrides_validate_like_kafka() {
        let mut c = LogConfig::default();
        let mut m = 1;
        apply_override(&mut c, &mut m, "retention.ms", "-1").expect("unlimited");
        assert_eq!(c.retention_ms, None);
        apply_override(&mut c, &mut m, "segment.bytes", "1048576").expect("ok");
        assert_eq!(c.segment_bytes, 1 << 20);
        apply_override(&mut c, &mut m, "min.insync.replicas", "2").expect("ok");
        assert_eq!(m, 2);
        assert!(apply_override(&mut c, &mut m, "segment.bytes", "abc").is_err());
        assert!(apply_override(&mut c, &mut m, "retention.ms", "-2").is_err());
        assert!(apply_override(&mut c, &mut m, "no.such.config", "1").is_err());
        assert!(apply_override(&mut c, &mut m, "cleanup.policy", "compact").is_err());
    }

    #[test]
    fn topic_names() {
        assert!(is_valid_topic_name("my.topic-1_x"));
        assert!(!is_valid_topic_name(""));
        assert!(!is_valid_topic_name(".."));
        assert!(!is_valid_topic_name("a/b"));
        assert!(!is_valid_topic_name(&"a".repeat(250)));
    }
}
