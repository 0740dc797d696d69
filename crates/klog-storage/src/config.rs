//! Per-partition configuration and the topic-partition name.

use std::fmt;
use std::str::FromStr;

/// Which timestamp a topic keeps in its batches (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TimestampType {
    /// Keep the producer's timestamps (Kafka's default).
    #[default]
    CreateTime,
    /// Overwrite every appended batch's max timestamp with the broker's clock.
    LogAppendTime,
}

impl TimestampType {
    /// The value as Kafka configurations spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateTime => "CreateTime",
            Self::LogAppendTime => "LogAppendTime",
        }
    }

    /// Parses `CreateTime` or `LogAppendTime`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "CreateTime" => Some(Self::CreateTime),
            "LogAppendTime" => Some(Self::LogAppendTime),
            _ => None,
        }
    }
}

/// Configuration of one partition log, with Kafka's names and defaults.
///
/// Changing it with [`crate::Log::set_config`] takes effect at the next append, roll
/// or retention pass; sizes of existing segments and indexes are not rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it grows past this (1 GiB).
    /// Clamped to `i32::MAX`, as in Kafka, so that file positions fit the index.
    pub segment_bytes: u64,
    /// `segment.ms` / `log.roll.ms`: roll a segment this long after its first append
    /// (7 days). `None` disables time-based rolling.
    pub segment_ms: Option<i64>,
    /// `retention.ms`: delete segments whose largest timestamp is older than this
    /// (7 days). `None` keeps them forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: delete the oldest segments while the log is larger than this.
    /// `None` (Kafka's default, -1) means no size limit.
    pub retention_bytes: Option<u64>,
    /// `flush.messages`: fsync after this many appended records. `None` (the default)
    /// leaves durability to the page cache and replication.
    pub flush_interval_messages: Option<u64>,
    /// `flush.ms`: fsync when this long has passed since the last flush (checked by
    /// [`crate::Log::maybe_flush`]). `None` (the default) never flushes on a timer.
    pub flush_interval_ms: Option<i64>,
    /// `index.interval.bytes`: bytes of batches between two sparse index entries (4096).
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: size each index file is preallocated to (10 MiB). A full
    /// index rolls the segment.
    pub segment_index_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `max.message.bytes`: largest record batch accepted by an append (1048588).
    pub max_message_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        const DAY_MS: i64 = 24 * 60 * 60 * 1000;
        Self {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * DAY_MS),
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            flush_interval_messages: None,
            flush_interval_ms: None,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            timestamp_type: TimestampType::CreateTime,
            max_message_bytes: 1_048_588,
        }
    }
}

impl LogConfig {
    /// `segment_bytes` as actually applied: at most `i32::MAX`, at least one byte.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}

/// A topic name and partition number: the identity of one partition log.
///
/// Its [`Display`](fmt::Display) form, `<topic>-<partition>`, is the name of the
/// partition's folder. Topic names may themselves contain `-`, so parsing splits at
/// the last one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name (`[a-zA-Z0-9._-]{1,249}`).
    pub topic: String,
    /// Partition number (0 or more).
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition from its parts.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }

    /// Whether `topic` is a legal Kafka topic name: 1 to 249 characters from
    /// `[a-zA-Z0-9._-]`, and neither `.` nor `..`.
    pub fn is_valid_topic(topic: &str) -> bool {
        (1..=249).contains(&topic.len())
            && topic != "."
            && topic != ".."
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    /// Parses a folder name `<topic>-<partition>`, splitting at the last `-`.
    ///
    /// Returns `None` unless the topic is valid and the partition is a non-negative
    /// decimal number.
    pub fn from_dir_name(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        if partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
            || (partition.len() > 1 && partition.starts_with('0'))
        {
            // Only the canonical form, so that the name round-trips.
            return None;
        }
        let partition: i32 = partition.parse().ok()?;
        if !Self::is_valid_topic(topic) {
            return None;
        }
        Some(Self::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl FromStr for TopicPartition {
    type Err = InvalidTopicPartition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_dir_name(s).ok_or_else(|| InvalidTopicPartition(s.to_owned()))
    }
}

/// A string that is not `<topic>-<partition>` with a legal topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a topic-partition name: {0:?}")]
pub struct InvalidTopicPartition(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_split_at_last_dash() {
        let tp = TopicPartition::from_dir_name("my-topic-name-12").expect("valid");
        assert_eq!(tp, TopicPartition::new("my-topic-name", 12));
        assert_eq!(tp.to_string(), "my-topic-name-12");
        assert_eq!(
            TopicPartition::from_dir_name("topic--1"),
            Some(TopicPartition::new("topic-", 1))
        );
        assert_eq!(
            "a.b_c-0".parse::<TopicPartition>(),
            Ok(TopicPartition::new("a.b_c", 0))
        );
    }

    #[test]
    fn bad_dir_names_are_refused() {
        for name in [
            "topic",
            "topic-",
            "-3",
            "topic-01",
            "topic-x",
            "top ic-1",
            "..-1",
            "t-99999999999",
            "t-+1",
        ] {
            assert_eq!(TopicPartition::from_dir_name(name), None, "{name}");
        }
        let long = format!("{}-0", "a".repeat(250));
        assert_eq!(TopicPartition::from_dir_name(&long), None);
        let max = format!("{}-0", "a".repeat(249));
        assert!(TopicPartition::from_dir_name(&max).is_some());
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.segment_ms, Some(604_800_000));
        assert_eq!(c.retention_ms, Some(604_800_000));
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.segment_index_bytes, 10_485_760);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.timestamp_type, TimestampType::CreateTime);
        assert_eq!(
            TimestampType::from_name(TimestampType::LogAppendTime.name()),
            Some(TimestampType::LogAppendTime)
        );
        let big = LogConfig {
            segment_bytes: u64::MAX,
            ..c
        };
        assert_eq!(big.effective_segment_bytes(), i32::MAX as u64);
    }
}
