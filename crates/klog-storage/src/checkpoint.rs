//! Kafka's small text checkpoint files, written atomically.
//!
//! ```text
//! 0                  version
//! 2                  number of entries
//! my-topic 0 1234    one entry per line, space-separated fields
//! my-topic 1 99
//! ```
//!
//! Used for `recovery-point-offset-checkpoint`, `replication-offset-checkpoint` and
//! `log-start-offset-checkpoint` (fields: topic, partition, offset) and for each
//! partition's `leader-epoch-checkpoint` (fields: epoch, start offset).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::TopicPartition;
use crate::error::OpenError;

/// Version written in the first line.
const VERSION: &str = "0";

/// Replaces `path` with `contents`: write a temporary file (`<name>.tmp`), fsync it,
/// rename it over the old one and fsync the folder, so a crash leaves either the old
/// or the new file, never a mix.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Fsyncs a directory, making created, renamed and deleted entries durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renders a checkpoint with the given entry lines.
pub(crate) fn render<I, S>(lines: I) -> Vec<u8>
where
    I: ExactSizeIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = format!("{VERSION}\n{}\n", lines.len());
    for line in lines {
        out.push_str(line.as_ref());
        out.push('\n');
    }
    out.into_bytes()
}

/// Reads a checkpoint's entry lines, each split into `fields` fields. A missing file
/// reads as no entries.
pub(crate) fn read_lines(path: &Path, fields: usize) -> Result<Vec<Vec<String>>, OpenError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(OpenError::io(path)(e)),
    };
    let bad = |line: usize, reason: &'static str| OpenError::MalformedFile {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(VERSION) {
        return Err(bad(1, "unsupported version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad(2, "bad entry count"))?;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parts: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if parts.len() != fields {
            return Err(bad(i + 3, "wrong number of fields"));
        }
        out.push(parts);
    }
    if out.len() != count {
        return Err(bad(2, "entry count does not match the entries"));
    }
    Ok(out)
}

/// Reads a per-log-dir offsets checkpoint (`topic partition offset`).
pub(crate) fn read_offsets(path: &Path) -> Result<HashMap<TopicPartition, i64>, OpenError> {
    let mut map = HashMap::new();
    for (i, parts) in read_lines(path, 3)?.into_iter().enumerate() {
        let bad = |reason| OpenError::MalformedFile {
            path: path.to_path_buf(),
            line: i + 3,
            reason,
        };
        let partition: i32 = parts[1].parse().map_err(|_| bad("bad partition"))?;
        let offset: i64 = parts[2].parse().map_err(|_| bad("bad offset"))?;
        map.insert(TopicPartition::new(parts[0].clone(), partition), offset);
    }
    Ok(map)
}

/// Writes a per-log-dir offsets checkpoint atomically.
pub(crate) fn write_offsets(path: &Path, offsets: &[(TopicPartition, i64)]) -> io::Result<()> {
    let lines = offsets
        .iter()
        .map(|(tp, off)| format!("{} {} {}", tp.topic, tp.partition, off));
    write_atomic(path, &render(lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_in_kafka_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("recovery-point-offset-checkpoint");
        let entries = vec![
            (TopicPartition::new("a-b", 0), 10),
            (TopicPartition::new("c", 3), 0),
        ];
        write_offsets(&path, &entries).expect("write");
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text, "0\n2\na-b 0 10\nc 3 0\n");
        let map = read_offsets(&path).expect("parse");
        assert_eq!(map.len(), 2);
        assert_eq!(map[&TopicPartition::new("a-b", 0)], 10);
        assert!(!tmp_path(&path).exists());
        assert!(
            read_offsets(&dir.path().join("missing"))
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn malformed_checkpoints_are_typed_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cp");
        for (text, line) in [
            ("1\n0\n", 1),
            ("0\nx\n", 2),
            ("0\n2\nt 0 1\n", 2),
            ("0\n1\nt 0\n", 3),
            ("0\n1\nt zero 1\n", 3),
        ] {
            fs::write(&path, text).expect("write");
            match read_offsets(&path) {
                Err(OpenError::MalformedFile { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
