//! The leader epoch cache: which leader epoch started at which offset (KIP-101).
//!
//! Persisted in the partition folder as `leader-epoch-checkpoint`, in Kafka's format
//! (version line, count line, then `epoch start_offset` lines), rewritten atomically
//! whenever it changes. Followers use it to find where their log diverged from a new
//! leader's (`OffsetsForLeaderEpoch`) and truncate there.

use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::OpenError;

/// File name of the checkpoint inside a partition folder.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

pub use klog_replication::EpochEntry;

/// Epoch to start offset, ordered by both (each strictly increasing).
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
    /// Changed in memory only (see [`LeaderEpochCache::truncate_from_start`]).
    dirty: bool,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir` (none yet means an empty cache).
    pub(crate) fn load(dir: &Path) -> Result<Self, OpenError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let mut entries: Vec<EpochEntry> = Vec::new();
        for (i, parts) in checkpoint::read_lines(&path, 2)?.into_iter().enumerate() {
            let bad = |reason| OpenError::MalformedFile {
                path: path.clone(),
                line: i + 3,
                reason,
            };
            let epoch: i32 = parts[0].parse().map_err(|_| bad("bad epoch"))?;
            let start_offset: i64 = parts[1].parse().map_err(|_| bad("bad offset"))?;
            if let Some(last) = entries.last()
                && (epoch <= last.epoch || start_offset < last.start_offset)
            {
                return Err(bad("epochs and offsets must increase"));
            }
            entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        Ok(Self {
            path,
            entries,
            dirty: false,
        })
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any batch was ever appended with one.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The epoch of the leader that wrote `offset`, if the cache knows.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let n = self.entries.partition_point(|e| e.start_offset <= offset);
        n.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// `OffsetsForLeaderEpoch` (KIP-101, KIP-279): the largest epoch at or below
    /// `epoch` and the offset where it ended, i.e. the start offset of the next epoch,
    /// or `log_end_offset` for the latest epoch. `None` when `epoch` is above the
    /// latest epoch or the cache is empty (Kafka's `UNDEFINED_EPOCH_OFFSET`).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        klog_replication::epoch::end_offset_for(&self.entries, log_end_offset, epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Ignored if `epoch` is not newer
    /// than the latest. Entries starting at or after `start_offset` are replaced (an
    /// epoch that never appended anything). Returns whether the cache changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<bool> {
        if let Some(latest) = self.latest_epoch()
            && epoch <= latest
        {
            return Ok(false);
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()?;
        Ok(true)
    }

    /// Forgets epochs that start at or after `end_offset` (after truncation).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Forgets epochs wholly below `start_offset` (after retention or
    /// `DeleteRecords`); the epoch containing it now starts there.
    ///
    /// Only in memory: the file is rewritten at the next change or flush. Losing this
    /// change in a crash is harmless, because opening a log applies it again from the
    /// log start offset, and it saves an fsync on every retention pass.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) {
        let n = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if n == 0 {
            return;
        }
        let keep = n - 1;
        let changed = keep > 0 || self.entries[keep].start_offset != start_offset;
        if changed {
            self.entries.drain(..keep);
            self.entries[0].start_offset = start_offset;
            self.dirty = true;
        }
    }

    /// Writes the file if it lags behind memory.
    pub(crate) fn persist_if_dirty(&mut self) -> io::Result<()> {
        if self.dirty {
            self.persist()?;
        }
        Ok(())
    }

    /// Forgets everything (the log was emptied and restarted elsewhere).
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        if !self.entries.is_empty() {
            self.entries.clear();
            self.persist()?;
        }
        Ok(())
    }

    fn persist(&mut self) -> io::Result<()> {
        let lines = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset));
        checkpoint::write_atomic(&self.path, &checkpoint::render(lines))?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = LeaderEpochCache::load(dir.path()).expect("load");
        (dir, c)
    }

    #[test]
    fn assign_persist_reload() {
        let (dir, mut c) = cache();
        assert!(c.assign(1, 0).expect("assign"));
        assert!(!c.assign(1, 5).expect("same epoch"));
        assert!(!c.assign(0, 5).expect("older epoch"));
        assert!(c.assign(3, 10).expect("assign"));
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("file");
        assert_eq!(text, "0\n2\n1 0\n3 10\n");
        let again = LeaderEpochCache::load(dir.path()).expect("reload");
        assert_eq!(again.entries(), c.entries());
        assert_eq!(again.latest_epoch(), Some(3));
    }

    #[test]
    fn end_offset_for_follows_kip_101() {
        let (_dir, mut c) = cache();
        assert_eq!(c.end_offset_for(0, 0), None);
        c.assign(1, 0).expect("assign");
        c.assign(3, 10).expect("assign");
        c.assign(5, 20).expect("assign");
        assert_eq!(c.end_offset_for(5, 25), Some((5, 25)));
        assert_eq!(c.end_offset_for(3, 25), Some((3, 20)));
        // Epoch 4 never led: answer with the largest epoch below it.
        assert_eq!(c.end_offset_for(4, 25), Some((3, 20)));
        assert_eq!(c.end_offset_for(0, 25), Some((0, 0)));
        assert_eq!(c.end_offset_for(6, 25), None);
        assert_eq!(c.epoch_for_offset(9), Some(1));
        assert_eq!(c.epoch_for_offset(10), Some(3));
    }

    #[test]
    fn truncation_from_both_ends() {
        let (dir, mut c) = cache();
        c.assign(1, 0).expect("assign");
        c.assign(2, 10).expect("assign");
        c.assign(3, 20).expect("assign");
        c.truncate_from_end(20).expect("truncate");
        assert_eq!(c.latest_epoch(), Some(2));
        c.truncate_from_start(15);
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 2,
                start_offset: 15
            }]
        );
        let stale = LeaderEpochCache::load(dir.path()).expect("reload");
        assert_eq!(stale.entries().len(), 2, "not written yet");
        c.persist_if_dirty().expect("persist");
        let again = LeaderEpochCache::load(dir.path()).expect("reload");
        assert_eq!(again.entries(), c.entries());
        // A newer epoch at the same start offset replaces an epoch that wrote nothing.
        c.assign(4, 15).expect("assign");
        assert_eq!(c.entries().len(), 1);
        assert_eq!(c.latest_epoch(), Some(4));
    }

    #[test]
    fn corrupt_checkpoint_is_refused() {
        let (dir, _c) = cache();
        std::fs::write(
            dir.path().join(LEADER_EPOCH_CHECKPOINT),
            "0\n2\n3 10\n1 0\n",
        )
        .expect("write");
        assert!(matches!(
            LeaderEpochCache::load(dir.path()),
            Err(OpenError::MalformedFile { line: 4, .. })
        ));
    }
}
