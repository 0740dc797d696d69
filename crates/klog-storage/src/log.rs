//! [`Log`]: one partition's log, a sequence of segments.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use klog_codec::batch::batch_size;
use klog_codec::{BatchHeader, RecordBatch, RecordBatchMut};

use crate::checkpoint::sync_dir;
use crate::config::{LogConfig, TimestampType};
use crate::epoch::LeaderEpochCache;
use crate::error::{AppendError, Corruption, OpenError, ReadError, RecoveryError, StorageError};
use crate::segment::{self, INDEX_EXT, LOG_EXT, Segment, TIME_INDEX_EXT, header_size};

/// What an append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Largest timestamp among the appended batches (the append time for
    /// `LogAppendTime` topics).
    pub max_timestamp: i64,
    /// The time written into the batches, for `LogAppendTime` topics.
    pub log_append_time: Option<i64>,
    /// Number of batches.
    pub batches: usize,
    /// Number of records (sum of the batches' `recordsCount`).
    pub records: i64,
    /// Bytes written.
    pub bytes: usize,
}

/// A byte range of a segment file: what `sendfile` needs to send it.
///
/// The `Arc<File>` keeps the file open, so a segment deleted by retention meanwhile
/// stays readable until the region is dropped. A region is only valid as long as the
/// log is not truncated below it (`truncate_to`, which replication uses for data above
/// the high watermark).
#[derive(Debug, Clone)]
pub struct FileRegion {
    /// The segment's `.log` file.
    pub file: Arc<File>,
    /// Start of the range in the file.
    pub position: u64,
    /// Length of the range.
    pub len: u64,
}

impl FileRegion {
    /// Reads the range into `buf` (appending to it).
    pub fn read_into(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        let start = buf.len();
        let len = usize::try_from(self.len).map_err(io::Error::other)?;
        buf.resize(start + len, 0);
        self.file.read_exact_at(&mut buf[start..], self.position)
    }
}

/// The result of [`Log::read`]: whole batches as file ranges, and the log's offsets
/// at the time of the read (what a Fetch response reports).
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// File ranges to send in order; their concatenation is whole batches.
    pub regions: Vec<FileRegion>,
    /// Sum of the regions' lengths.
    pub total_bytes: u64,
    /// Base offset of the first batch returned; it may be below the offset asked for
    /// when that offset is inside a batch. `None` when nothing was returned.
    pub first_offset: Option<i64>,
    /// The log start offset.
    pub log_start_offset: i64,
    /// The high watermark.
    pub high_watermark: i64,
    /// The log end offset.
    pub log_end_offset: i64,
}

/// Summary of one segment, for monitoring and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's base offset (its file name).
    pub base_offset: i64,
    /// Offset after its last batch.
    pub next_offset: i64,
    /// Bytes of batches.
    pub size: u64,
    /// Largest batch timestamp, or -1.
    pub largest_timestamp: i64,
    /// Entries in its offset index.
    pub offset_index_entries: usize,
    /// Entries in its time index.
    pub time_index_entries: usize,
}

/// What recovery did when opening a log after an unclean stop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Base offsets of the segments whose batches were all checked.
    pub segments_checked: Vec<i64>,
    /// Where the valid prefix ended, if recovery cut anything.
    pub cut: Option<RecoveryCut>,
    /// Index files found without their `.log` file and deleted.
    pub orphan_files_deleted: usize,
}

/// The point where recovery found invalid data and what it removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCut {
    /// Base offset of the segment where the valid prefix ends.
    pub segment: i64,
    /// What was found there (its position is where the file was truncated).
    pub corruption: Corruption,
    /// Bytes removed from that segment.
    pub bytes_truncated: u64,
    /// Later segments deleted whole.
    pub segments_deleted: Vec<i64>,
    /// The log end offset after recovery.
    pub log_end_offset: i64,
}

/// The log of one partition: an ordered sequence of segments in one folder.
///
/// `Log` is not internally synchronised: callers serialise access (the
/// [`crate::LogManager`] wraps each in a `Mutex`). Every method takes the current
/// time as a parameter and none reads a clock, so tests control time fully.
///
/// Invariants kept by every method:
/// * `log_start_offset <= high_watermark <= log_end_offset`;
/// * `recovery_point <= log_end_offset`, and everything below it is fsynced;
/// * offsets are dense: each batch starts where the previous one ended, across
///   segments too; each segment's base offset is its first batch's base offset;
/// * the last segment is the active one, the only one appended to and the only one
///   whose index files are preallocated.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Never empty; keyed by base offset.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    high_watermark: i64,
    recovery_point: i64,
    /// Record data below this offset has been fdatasynced (`>= recovery_point`):
    /// a [`Log::sync_job`] covers only what lies at or above it.
    synced: i64,
    /// The caller applies the message-count flush policy (group commit): appends
    /// never flush; see [`Log::set_external_sync`].
    external_sync: bool,
    unflushed_messages: u64,
    last_flush_ms: i64,
    epochs: LeaderEpochCache,
    closed: bool,
    /// Segment files were created or deleted since the folder was last fsynced.
    dir_dirty: bool,
    recovery: Option<RecoveryReport>,
}

/// The fdatasyncs of one group commit, returned by [`Log::sync_job`] to run
/// outside the log's lock.
#[derive(Debug)]
pub struct SyncJob {
    files: Vec<Arc<File>>,
    /// Everything below this offset is durable once [`SyncJob::run`] succeeds.
    pub upto: i64,
}

impl SyncJob {
    /// fdatasyncs the files (blocking).
    pub fn run(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        Ok(())
    }
}

/// Header totals of a buffer of batches, gathered while validating it.
struct Summary {
    batches: usize,
    records: i64,
    /// Offsets the batches span (sum of `lastOffsetDelta + 1`).
    offsets: i64,
    max_timestamp: i64,
}

impl Log {
    /// Opens the log in `dir`, creating the folder and a first segment if needed.
    ///
    /// With no checkpoint to go by, this treats the last stop as unclean and checks
    /// every batch of every segment (see [`Log::open_with_recovery_point`] to skip
    /// what is known to be flushed).
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, OpenError> {
        Self::open_with_recovery_point(dir, config, 0, false, now_ms)
    }

    /// Opens the log in `dir`, creating the folder and a first segment if needed.
    ///
    /// After a clean shutdown (`clean_shutdown`) segments are trusted: only their
    /// tails after the last index entry are read. Otherwise every segment from the
    /// one containing `recovery_point` on is recovered: each batch's framing,
    /// CRC-32C and offsets are checked, indexes are rebuilt, the segment is truncated
    /// at the first invalid byte and every later segment is deleted (logged with
    /// `tracing::warn!` and reported by [`Log::recovery_report`]). Recovered data is
    /// then fsynced, so the recovery point becomes the log end offset.
    pub fn open_with_recovery_point(
        dir: &Path,
        config: LogConfig,
        recovery_point: i64,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Log, OpenError> {
        fs::create_dir_all(dir).map_err(OpenError::io(dir))?;
        let mut report = RecoveryReport::default();
        let bases = scan_dir(dir, &mut report)?;
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecoveryError::Io { path, source }
        };
        let mut segments = BTreeMap::new();
        let mut dir_dirty = false;
        if bases.is_empty() {
            let seg = Segment::create(dir, 0, &config).map_err(OpenError::io(dir))?;
            segments.insert(0, seg);
            dir_dirty = true;
        } else {
            let last = bases.len() - 1;
            for (i, &base) in bases.iter().enumerate() {
                let seg = Segment::open_files(dir, base, i == last, &config)
                    .map_err(OpenError::io(dir.join(segment::file_name(base, LOG_EXT))))?;
                segments.insert(base, seg);
            }
        }

        // Which segments to recover: none after a clean stop, else from the one
        // holding the recovery point. A trusted segment that fails its cheap checks
        // is recovered too, and so is everything after it.
        let first_recovered = if clean_shutdown {
            usize::MAX
        } else {
            bases
                .iter()
                .rposition(|&b| b <= recovery_point)
                .unwrap_or(0)
        };
        let mut recovering = false;
        let mut expected_next: Option<i64> = None;
        let mut cut: Option<(i64, Corruption, u64)> = None;
        let keys: Vec<i64> = segments.keys().copied().collect();
        for (i, base) in keys.iter().copied().enumerate() {
            let Some(seg) = segments.get_mut(&base) else {
                continue;
            };
            if !recovering && i >= first_recovered {
                recovering = true;
            }
            if !recovering && let Err(c) = seg.load_tail() {
                tracing::warn!(dir = %dir.display(), segment = base, corruption = %c, "segment failed its consistency check; recovering it");
                recovering = true;
            }
            if recovering {
                if let Some(expected) = expected_next
                    && base != expected
                {
                    // A gap: the previous segment lost its unflushed tail, so this
                    // one's data cannot follow it.
                    let prev = keys[i - 1];
                    let position = segments.get(&prev).map_or(0, Segment::size);
                    cut = Some((
                        prev,
                        Corruption::OffsetNotContiguous {
                            position,
                            expected,
                            found: base,
                        },
                        0,
                    ));
                    break;
                }
                let seg = segments.get_mut(&base).expect("present");
                let r = seg.recover(&config).map_err(io_err(seg.log_path()))?;
                report.segments_checked.push(base);
                if let Some(c) = r.corruption {
                    cut = Some((base, c, r.bytes_truncated));
                    break;
                }
            }
            expected_next = segments.get(&base).map(Segment::next_offset);
        }

        if let Some((segment, corruption, bytes_truncated)) = cut {
            let later: Vec<i64> = segments
                .range((Bound::Excluded(segment), Bound::Unbounded))
                .map(|(b, _)| *b)
                .collect();
            for b in &later {
                if let Some(seg) = segments.remove(b) {
                    let path = seg.log_path().to_path_buf();
                    seg.delete().map_err(io_err(&path))?;
                }
            }
            dir_dirty = true;
            let leo = segments
                .values()
                .next_back()
                .map_or(0, Segment::next_offset);
            tracing::warn!(
                dir = %dir.display(),
                segment,
                %corruption,
                bytes_truncated,
                segments_deleted = ?later,
                log_end_offset = leo,
                "recovery cut the log at the first invalid batch"
            );
            report.cut = Some(RecoveryCut {
                segment,
                corruption,
                bytes_truncated,
                segments_deleted: later,
                log_end_offset: leo,
            });
        }

        if let Some(active) = segments.values_mut().next_back() {
            active
                .make_active(&config)
                .map_err(OpenError::io(active.log_path()))?;
        }
        // Recovered bytes may only be in the page cache (a process crash): make them
        // durable so the recovery point can move to the log end. An empty segment
        // has nothing to make durable (and is recovered again after any crash, since
        // its base is at or below every recovery point): skipping it saves three
        // fsyncs per empty partition, ~10 s for 10,000 of them.
        for base in &report.segments_checked {
            if let Some(seg) = segments.get(base)
                && seg.size() > 0
            {
                seg.flush().map_err(io_err(seg.log_path()))?;
            }
        }
        if dir_dirty || report.orphan_files_deleted > 0 {
            sync_dir(dir).map_err(OpenError::io(dir))?;
        }

        let log_start_offset = segments.keys().next().copied().unwrap_or(0);
        let leo = segments
            .values()
            .next_back()
            .map_or(0, Segment::next_offset);
        let mut epochs = LeaderEpochCache::load(dir)?;
        let cp = dir.join(crate::epoch::LEADER_EPOCH_CHECKPOINT);
        epochs.truncate_from_end(leo).map_err(OpenError::io(&cp))?;
        epochs.truncate_from_start(log_start_offset);

        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            high_watermark: log_start_offset,
            recovery_point: leo,
            synced: leo,
            external_sync: false,
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            epochs,
            closed: false,
            dir_dirty: false,
            recovery: (!clean_shutdown || !report.segments_checked.is_empty()).then_some(report),
        })
    }

    /// The partition folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery did when this log was opened, if it ran.
    pub fn recovery_report(&self) -> Option<&RecoveryReport> {
        self.recovery.as_ref()
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    /// Leader append: `records` holds one or more concatenated v2 batches exactly as
    /// in a Produce request.
    ///
    /// Every batch is validated (framing, magic, CRC-32C, `max.message.bytes`,
    /// `lastOffsetDelta = recordsCount - 1`) before anything is written; on any error
    /// nothing is appended. Offsets are then assigned by rewriting each batch's
    /// `baseOffset` and `partitionLeaderEpoch` in place (outside the CRC), and for
    /// `LogAppendTime` topics the max timestamp (which recomputes that batch's CRC).
    /// The segment is rolled first if needed, then all batches go to the file in one
    /// write. No record is decoded and nothing is allocated per record.
    pub fn append(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        self.check_appendable(records)?;
        if let Some(latest) = self.epochs.latest_epoch()
            && leader_epoch < latest
        {
            return Err(AppendError::StaleLeaderEpoch {
                epoch: leader_epoch,
                latest,
            });
        }
        let summary = self.validate(records, None)?;
        let first_offset = self.log_end_offset();
        let last_offset = first_offset
            .checked_add(summary.offsets - 1)
            .ok_or(AppendError::OffsetOverflow)?;

        let log_append_time =
            (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let mut next = first_offset;
        let mut pos = 0;
        while pos < records.len() {
            // Validated above: framing cannot fail here.
            let size = batch_size(&records[pos..], pos)?;
            let mut batch = RecordBatchMut::new(&mut records[pos..pos + size])?;
            batch.set_base_offset(next);
            batch.set_partition_leader_epoch(leader_epoch);
            if let Some(t) = log_append_time {
                batch.set_log_append_time(t);
            }
            next += i64::from(batch.as_batch().last_offset_delta()) + 1;
            pos += size;
        }

        if leader_epoch >= 0 {
            self.epochs.assign(leader_epoch, first_offset)?;
        }
        self.write(records, last_offset, summary.records, now_ms)?;
        Ok(AppendInfo {
            first_offset,
            last_offset,
            max_timestamp: log_append_time.unwrap_or(summary.max_timestamp),
            log_append_time,
            batches: summary.batches,
            records: summary.records,
            bytes: records.len(),
        })
    }

    /// Follower append: batches keep the offsets and epochs the leader gave them and
    /// must continue the log exactly at its end offset.
    ///
    /// Validated as a leader append (except that batches without records are
    /// accepted), before anything is written. New leader epochs found in the batches
    /// are added to the leader epoch cache.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        self.check_appendable(records)?;
        let first_offset = self.log_end_offset();
        let summary = self.validate(records, Some(first_offset))?;
        let last_offset = first_offset + summary.offsets - 1;
        for item in klog_codec::RecordBatches::new(records) {
            let (_, batch) = item?;
            let epoch = batch.partition_leader_epoch();
            if epoch >= 0 && self.epochs.latest_epoch().is_none_or(|l| epoch > l) {
                self.epochs.assign(epoch, batch.base_offset())?;
            }
        }
        self.write(records, last_offset, summary.records, now_ms)?;
        Ok(AppendInfo {
            first_offset,
            last_offset,
            max_timestamp: summary.max_timestamp,
            log_append_time: None,
            batches: summary.batches,
            records: summary.records,
            bytes: records.len(),
        })
    }

    fn check_appendable(&self, records: &[u8]) -> Result<(), AppendError> {
        if self.closed {
            return Err(AppendError::Closed);
        }
        if records.is_empty() {
            return Err(AppendError::EmptyRecords);
        }
        if records.len() > i32::MAX as usize {
            return Err(AppendError::RecordsTooLarge {
                size: records.len(),
            });
        }
        Ok(())
    }

    /// One pass over the batches: framing, size, CRC and header checks. For a
    /// follower (`follower_start`), offsets must also be contiguous from there.
    fn validate(
        &self,
        records: &[u8],
        follower_start: Option<i64>,
    ) -> Result<Summary, AppendError> {
        let mut s = Summary {
            batches: 0,
            records: 0,
            offsets: 0,
            max_timestamp: -1,
        };
        let mut expected = follower_start;
        let mut rest = records;
        let mut pos = 0usize;
        while !rest.is_empty() {
            let (batch, tail) = RecordBatch::parse_at(rest, pos)?;
            if batch.len() > self.config.max_message_bytes as usize {
                return Err(AppendError::BatchTooLarge {
                    position: pos,
                    size: batch.len(),
                    max: self.config.max_message_bytes,
                });
            }
            batch.validate_at(pos)?;
            let count = batch.records_count();
            match expected {
                None => {
                    if count == 0 {
                        return Err(AppendError::EmptyBatch { position: pos });
                    }
                    if batch.last_offset_delta() != count - 1 {
                        return Err(AppendError::InvalidLastOffsetDelta {
                            position: pos,
                            records_count: count,
                            last_offset_delta: batch.last_offset_delta(),
                        });
                    }
                }
                Some(e) => {
                    if batch.base_offset() != e {
                        return Err(AppendError::UnexpectedOffset {
                            position: pos,
                            expected: e,
                            found: batch.base_offset(),
                        });
                    }
                    expected = Some(
                        batch
                            .last_offset()
                            .checked_add(1)
                            .ok_or(AppendError::OffsetOverflow)?,
                    );
                }
            }
            s.batches += 1;
            s.records += i64::from(count);
            s.offsets += i64::from(batch.last_offset_delta()) + 1;
            s.max_timestamp = s.max_timestamp.max(batch.max_timestamp());
            pos += batch.len();
            rest = tail;
        }
        Ok(s)
    }

    /// Rolls if needed, writes validated batches ending at `last_offset`, applies the
    /// message-count flush policy.
    fn write(
        &mut self,
        records: &[u8],
        last_offset: i64,
        record_count: i64,
        now_ms: i64,
    ) -> Result<(), AppendError> {
        if self.should_roll(records.len() as u64, last_offset, now_ms) {
            self.roll()?;
        }
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        if last_offset - active.base_offset() > i64::from(u32::MAX) {
            return Err(AppendError::OffsetOverflow);
        }
        active.append(records, now_ms, interval)?;
        self.unflushed_messages = self
            .unflushed_messages
            .saturating_add(record_count.max(0) as u64);
        if !self.external_sync && self.flush_due() {
            self.flush()?;
        }
        Ok(())
    }

    fn should_roll(&self, len: u64, last_offset: i64, now_ms: i64) -> bool {
        let a = self.active();
        if a.size() == 0 {
            return false;
        }
        let full = a.size() + len > self.config.effective_segment_bytes();
        let aged = self
            .config
            .segment_ms
            .zip(a.rolling_base_ms())
            .is_some_and(|(ms, base)| now_ms.saturating_sub(base) > ms);
        let rel_overflow = last_offset - a.base_offset() > i64::from(u32::MAX);
        full || aged || a.indexes_full() || rel_overflow
    }

    /// Starts a new active segment at the log end offset. The old one keeps its data
    /// and gets its indexes trimmed. Does nothing if the active segment is empty.
    pub fn roll(&mut self) -> io::Result<()> {
        let leo = self.log_end_offset();
        if self.active().size() == 0 {
            return Ok(());
        }
        self.active_mut().make_inactive()?;
        match Segment::create(&self.dir, leo, &self.config) {
            Ok(seg) => {
                self.segments.insert(leo, seg);
                self.dir_dirty = true;
                Ok(())
            }
            Err(e) => {
                let config = self.config.clone();
                self.active_mut().make_active(&config)?;
                Err(e)
            }
        }
    }

    /// Whole batches, as file ranges, from the batch containing `offset`.
    ///
    /// Returns batches while their total stays within `max_bytes`, except that the
    /// first batch is always returned whole even if larger (KIP-74), and never a batch
    /// whose last offset is at or past `max_offset` (the broker passes the high
    /// watermark for consumers and the log end offset for replicas). May span
    /// segments. An offset equal to the log end offset reads nothing;
    /// [`ReadError::OffsetOutOfRange`] when `offset` is below the log start offset
    /// or above the log end offset.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadResult, ReadError> {
        let (log_start, log_end) = (self.log_start_offset, self.log_end_offset());
        if offset < log_start || offset > log_end {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let mut res = ReadResult {
            regions: Vec::new(),
            total_bytes: 0,
            first_offset: None,
            log_start_offset: log_start,
            high_watermark: self.high_watermark,
            log_end_offset: log_end,
        };
        let limit = max_offset.min(log_end);
        if offset >= limit {
            return Ok(res);
        }
        let mut remaining = max_bytes as u64;
        let mut target = offset;
        let from = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(log_start, |(b, _)| *b);
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            if seg.base_offset() >= limit {
                break;
            }
            let Some((start, h)) = seg.find_batch(target)? else {
                continue;
            };
            if segment::header_last_offset(&h) >= limit {
                break;
            }
            let first_size = header_size(&h);
            if !res.regions.is_empty() && first_size > remaining {
                break;
            }
            let mut byte_limit = start.saturating_add(remaining.max(first_size));
            if limit < seg.next_offset()
                && let Some((stop, _)) = seg.find_batch(limit)?
            {
                byte_limit = byte_limit.min(stop);
            }
            let end = seg.boundary_before(start + first_size, byte_limit, i64::MAX)?;
            let len = end - start;
            res.regions.push(FileRegion {
                file: Arc::clone(seg.file()),
                position: start,
                len,
            });
            res.total_bytes += len;
            res.first_offset.get_or_insert(h.base_offset);
            remaining = remaining.saturating_sub(len);
            if end < seg.size() || remaining == 0 {
                break;
            }
            target = seg.next_offset();
        }
        Ok(res)
    }

    /// As [`Log::read`], copying the batches into one buffer.
    pub fn read_to_vec(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Vec<u8>, ReadError> {
        let res = self.read(offset, max_bytes, max_offset)?;
        let mut out = Vec::with_capacity(res.total_bytes as usize);
        for r in &res.regions {
            r.read_into(&mut out)?;
        }
        Ok(out)
    }

    /// Calls `f` with the header of every batch from the one containing
    /// `from_offset` (or the log start) to the log end. Reads headers only.
    pub fn scan_batches(
        &self,
        from_offset: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<(), ReadError> {
        let target = from_offset.max(self.log_start_offset);
        let from = self
            .segments
            .range(..=target)
            .next_back()
            .map_or(self.log_start_offset, |(b, _)| *b);
        let mut first = true;
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            let mut pos = if first {
                match seg.find_batch(target)? {
                    Some((p, _)) => p,
                    None => continue,
                }
            } else {
                0
            };
            first = false;
            while let Some(h) = seg.read_header(pos)? {
                f(&h);
                pos += header_size(&h);
            }
        }
        Ok(())
    }

    /// The earliest batch with a timestamp at or above `timestamp` (ListOffsets by
    /// time): the time index narrows the search, then batch headers' max timestamps
    /// are compared. Returns (base offset of that batch, but not below the log start
    /// offset; the batch's max timestamp), or `None` if no batch is that recent.
    /// Records are not decoded, so the offset is the batch's, not the exact record's.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, ReadError> {
        for seg in self.segments.values() {
            if seg.next_offset() <= self.log_start_offset {
                continue;
            }
            if let Some((offset, ts)) = seg.find_timestamp(timestamp, self.log_start_offset)? {
                return Ok(Some((offset.max(self.log_start_offset), ts)));
            }
        }
        Ok(None)
    }

    /// The batch holding the largest timestamp of the log (ListOffsets with
    /// timestamp -3, KIP-734), among the batches with an offset from the log start
    /// offset to below `below` (the high watermark, for consumers): (base offset of
    /// that batch, its max timestamp), the earliest batch on ties, `None` when no
    /// batch has a timestamp. Segments wholly in range answer from the maximum they
    /// keep; only a segment cut by the log start or by `below` has its batch headers
    /// read. Records are not decoded: the exact record is the caller's to find.
    pub fn max_timestamp_batch(&self, below: i64) -> Result<Option<(i64, i64)>, ReadError> {
        let mut best: Option<(i64, i64)> = None;
        for seg in self.segments.values() {
            if seg.next_offset() <= self.log_start_offset {
                continue;
            }
            if seg.base_offset() >= below {
                break;
            }
            if let Some((ts, base)) = seg.max_timestamp_between(self.log_start_offset, below)?
                && ts > best.map_or(-1, |(t, _)| t)
            {
                best = Some((ts, base));
            }
        }
        Ok(best.map(|(ts, base)| (base, ts)))
    }

    /// Removes every batch whose last offset is at or above `offset` (a follower
    /// truncating to its leader's log, KIP-101). Truncation happens at batch
    /// boundaries, so the new log end offset is at most `offset` (less when `offset`
    /// falls inside a batch). An offset below the first segment empties the log and
    /// restarts it at `offset`. The truncated file is fsynced before returning.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if self.closed {
            return Err(StorageError::Closed);
        }
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                low: 0,
                high: self.log_end_offset(),
            });
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let first_base = self.segments.keys().next().copied().unwrap_or(0);
        if offset < first_base {
            return Ok(self.truncate_fully_and_start_at(offset)?);
        }
        let later: Vec<i64> = self
            .segments
            .range((Bound::Excluded(offset), Bound::Unbounded))
            .map(|(b, _)| *b)
            .collect();
        for b in later {
            if let Some(seg) = self.segments.remove(&b) {
                seg.delete()?;
                self.dir_dirty = true;
            }
        }
        let config = self.config.clone();
        let active = self.active_mut();
        active.truncate_to(offset)?;
        active.make_active(&config)?;
        let leo = self.log_end_offset();
        self.after_truncation(leo)?;
        Ok(())
    }

    /// Deletes every segment and starts an empty log at `offset` (a follower whose
    /// fetch offset is below the leader's log start).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> io::Result<()> {
        let all: Vec<i64> = self.segments.keys().copied().collect();
        let mut deleted = Vec::new();
        for b in all {
            if let Some(seg) = self.segments.remove(&b) {
                deleted.push(seg);
            }
        }
        for seg in deleted {
            seg.delete()?;
        }
        let seg = Segment::create(&self.dir, offset, &self.config)?;
        self.segments.insert(offset, seg);
        self.dir_dirty = true;
        self.log_start_offset = offset;
        self.high_watermark = offset;
        self.recovery_point = offset;
        self.synced = offset;
        self.unflushed_messages = 0;
        self.epochs.clear()?;
        sync_dir(&self.dir)?;
        self.dir_dirty = false;
        Ok(())
    }

    fn after_truncation(&mut self, leo: i64) -> io::Result<()> {
        self.epochs.truncate_from_end(leo)?;
        self.log_start_offset = self.log_start_offset.min(leo);
        self.high_watermark = self.high_watermark.min(leo);
        self.recovery_point = self.recovery_point.min(leo);
        self.synced = self.synced.min(leo);
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// `DeleteRecords`: moves the log start offset up to `offset` and deletes the
    /// segments wholly below it (never the active one). `offset` may not exceed the
    /// high watermark; a lower offset than the current start does nothing.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<(), StorageError> {
        if self.closed {
            return Err(StorageError::Closed);
        }
        if offset > self.high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                low: self.log_start_offset,
                high: self.high_watermark,
            });
        }
        self.advance_log_start(offset)?;
        Ok(())
    }

    /// Moves the log start offset to `offset` (clamped to the log end) and deletes
    /// segments wholly below it. Used for `DeleteRecords` and to restore a
    /// checkpointed log start offset.
    pub(crate) fn advance_log_start(&mut self, offset: i64) -> io::Result<()> {
        let offset = offset.min(self.log_end_offset());
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = offset;
        self.high_watermark = self.high_watermark.max(offset);
        self.recovery_point = self.recovery_point.max(offset);
        self.synced = self.synced.max(offset);
        while self.segments.len() > 1 {
            let Some(first) = self.segments.values().next() else {
                break;
            };
            if first.next_offset() > offset {
                break;
            }
            if let Some((_, seg)) = self.segments.pop_first() {
                seg.delete()?;
                self.dir_dirty = true;
            }
        }
        self.epochs.truncate_from_start(offset);
        Ok(())
    }

    /// Retention: deletes the oldest segments whose largest timestamp is more than
    /// `retention.ms` before `now_ms`, then the oldest while the log is larger than
    /// `retention.bytes`. Never the active segment, and only a prefix of the log.
    /// Returns how many segments were deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<usize> {
        let mut deleted = 0;
        if let Some(ms) = self.config.retention_ms {
            while self.segments.len() > 1 {
                let Some(first) = self.segments.values().next() else {
                    break;
                };
                if now_ms.saturating_sub(first.largest_timestamp()) <= ms {
                    break;
                }
                self.delete_first_segment()?;
                deleted += 1;
            }
        }
        if let Some(limit) = self.config.retention_bytes {
            let mut excess = self.size_bytes().saturating_sub(limit);
            while self.segments.len() > 1 {
                let Some(first) = self.segments.values().next() else {
                    break;
                };
                if first.size() > excess {
                    break;
                }
                excess -= first.size();
                self.delete_first_segment()?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            let start = self.segments.keys().next().copied().unwrap_or(0);
            if start > self.log_start_offset {
                self.log_start_offset = start;
                self.high_watermark = self.high_watermark.max(start);
                self.recovery_point = self.recovery_point.max(start);
                self.synced = self.synced.max(start);
                self.epochs.truncate_from_start(start);
            }
        }
        Ok(deleted)
    }

    fn delete_first_segment(&mut self) -> io::Result<()> {
        if let Some((base, seg)) = self.segments.pop_first() {
            tracing::debug!(dir = %self.dir.display(), segment = base, "retention deletes segment");
            seg.delete()?;
            self.dir_dirty = true;
        }
        Ok(())
    }

    /// Fsyncs every segment holding data at or above the recovery point (data and
    /// both indexes) and the folder if files were created or deleted; the recovery
    /// point becomes the log end offset.
    pub fn flush(&mut self) -> io::Result<()> {
        let rp = self.recovery_point;
        let from = self
            .segments
            .range(..=rp)
            .next_back()
            .map_or(rp, |(b, _)| *b);
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            seg.flush()?;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        self.epochs.persist_if_dirty()?;
        self.recovery_point = self.log_end_offset();
        self.synced = self.recovery_point;
        self.unflushed_messages = 0;
        Ok(())
    }

    /// With `on`, appends no longer apply the message-count flush policy
    /// (`flush.messages`): the caller checks [`Log::flush_due`] after appending and
    /// makes the data durable with [`Log::sync_job`] outside its lock, so that
    /// concurrent appenders share one fdatasync (group commit).
    pub fn set_external_sync(&mut self, on: bool) {
        self.external_sync = on;
    }

    /// Whether the message-count flush policy (`flush.messages`) asks for a flush:
    /// that many records were appended since the last flush or sync job.
    pub fn flush_due(&self) -> bool {
        self.config
            .flush_interval_messages
            .is_some_and(|n| self.unflushed_messages >= n)
    }

    /// Starts a group commit: returns the data files that hold records not yet
    /// fdatasynced and the offset below which everything is durable once
    /// [`SyncJob::run`] has succeeded. Run it without holding the log's lock, so
    /// appends continue meanwhile; appends made during it are covered by the next
    /// job. If segment files were created or deleted, the folder is fsynced here
    /// first (only after a roll). The recovery point does not move: indexes are not
    /// synced, recovery rebuilds them from the synced data after a crash; the next
    /// [`Log::flush`] advances it.
    pub fn sync_job(&mut self) -> io::Result<SyncJob> {
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        let upto = self.log_end_offset();
        let from = self
            .segments
            .range(..=self.synced)
            .next_back()
            .map_or(self.synced, |(b, _)| *b);
        let files = if upto > self.synced {
            self.segments
                .range(from..)
                .map(|(_, s)| s.file().clone())
                .collect()
        } else {
            Vec::new()
        };
        self.unflushed_messages = 0;
        Ok(SyncJob { files, upto })
    }

    /// Records that a [`SyncJob`] ending at `upto` succeeded.
    pub fn sync_done(&mut self, upto: i64) {
        self.synced = self.synced.max(upto.min(self.log_end_offset()));
    }

    /// Record data below this offset is on disk (fdatasynced).
    pub fn synced_offset(&self) -> i64 {
        self.synced
    }

    /// Applies `flush.ms`: flushes if that long has passed since the last timed flush
    /// and there is something to flush. Returns whether it flushed.
    pub fn maybe_flush(&mut self, now_ms: i64) -> io::Result<bool> {
        let Some(ms) = self.config.flush_interval_ms else {
            return Ok(false);
        };
        if self.closed || now_ms.saturating_sub(self.last_flush_ms) < ms {
            return Ok(false);
        }
        self.last_flush_ms = now_ms;
        if self.recovery_point >= self.log_end_offset() && !self.dir_dirty {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// Flushes everything and trims the active segment's indexes, as for a clean
    /// shutdown. Later appends fail with [`AppendError::Closed`]; reads still work.
    pub(crate) fn close_in_place(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.active_mut().make_inactive()?;
        if self.active().size() == 0
            && self.recovery_point >= self.log_end_offset()
            && !self.dir_dirty
        {
            // Nothing unflushed and an empty active segment: its trimmed indexes hold
            // no entry, and a reopen counts none in them whether or not the trim
            // reached the disk. Skipping the three fsyncs makes a clean stop of
            // 10,000 idle partitions take a fraction of a second, not ~5 s.
            self.epochs.persist_if_dirty()?;
            self.closed = true;
            return Ok(());
        }
        // Flush from the start of the active segment at least: its trimmed indexes
        // and final time index entry must reach the disk.
        let active_base = self.active().base_offset();
        self.recovery_point = self.recovery_point.min(active_base);
        self.flush()?;
        self.closed = true;
        Ok(())
    }

    /// Flushes and trims the active segment's indexes, then drops the log. Reopen
    /// with `clean_shutdown = true` and the log end offset as recovery point to skip
    /// recovery.
    pub fn close(mut self) -> io::Result<()> {
        self.close_in_place()
    }

    /// Marks the log deleted: later appends fail with [`AppendError::Closed`].
    pub(crate) fn mark_closed(&mut self) {
        self.closed = true;
    }

    /// Whether the log was closed or deleted.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// The high watermark: offsets below it are committed and visible to consumers.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Sets the high watermark, clamped to `[log_start_offset, log_end_offset]`.
    pub fn set_high_watermark(&mut self, hw: i64) {
        self.high_watermark = hw.clamp(self.log_start_offset, self.log_end_offset());
    }

    /// Everything below this offset has been fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// The leader epoch cache (epoch to start offset).
    pub fn leader_epoch_cache(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Records that `epoch` starts at `start_offset` (a new leader does this before
    /// its first append); ignored unless `epoch` is newer than the latest.
    pub fn assign_leader_epoch(&mut self, epoch: i32, start_offset: i64) -> io::Result<bool> {
        self.epochs.assign(epoch, start_offset)
    }

    /// `OffsetsForLeaderEpoch`: see [`LeaderEpochCache::end_offset_for`].
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The latest leader epoch in the log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// Replaces the configuration; takes effect at the next append, roll, flush or
    /// retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Bytes of batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// Records appended since the last flush.
    pub fn unflushed_messages(&self) -> u64 {
        self.unflushed_messages
    }

    /// A summary of every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .values()
            .map(|s| SegmentInfo {
                base_offset: s.base_offset(),
                next_offset: s.next_offset(),
                size: s.size(),
                largest_timestamp: s.largest_timestamp(),
                offset_index_entries: s.offset_index_len(),
                time_index_entries: s.time_index_len(),
            })
            .collect()
    }
}

/// Lists segment base offsets in `dir`, deleting index files whose `.log` is gone
/// (a crash between deleting a segment's files).
fn scan_dir(dir: &Path, report: &mut RecoveryReport) -> Result<Vec<i64>, OpenError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).map_err(OpenError::io(dir))? {
        let entry = entry.map_err(OpenError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match segment::parse_file_name(name) {
            Some((base, LOG_EXT)) => logs.push(base),
            Some((base, INDEX_EXT | TIME_INDEX_EXT)) => indexes.push((base, entry.path())),
            _ => {}
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            fs::remove_file(&path).map_err(OpenError::io(&path))?;
            report.orphan_files_deleted += 1;
        }
    }
    Ok(logs)
}
