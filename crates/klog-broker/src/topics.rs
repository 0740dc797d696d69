//! Topic metadata: names, partition counts and per-topic configuration overrides,
//! persisted in `<first log dir>/klog-topics` so they survive restarts.
//!
//! The file has one line per topic, fields separated by tabs:
//! `name  partitions  key=value  key=value ...`. It is rewritten whole (temporary
//! file, fsync, rename) on every change. On one node this file is the cluster
//! metadata; the controller quorum will replace it. What the overrides mean is
//! [`crate::config::topic`]'s business.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

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

pub use klog_coordinator::metadata::is_valid_topic_name;

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
    fn topic_names() {
        assert!(is_valid_topic_name("my.topic-1_x"));
        assert!(!is_valid_topic_name(""));
        assert!(!is_valid_topic_name(".."));
        assert!(!is_valid_topic_name("a/b"));
        assert!(!is_valid_topic_name(&"a".repeat(250)));
    }
}
