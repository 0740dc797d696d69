//! One segment: a `.log` file of record batches and its two sparse indexes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use klog_codec::batch::{HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, batch_size};
use klog_codec::{BatchHeader, DecodeError, RecordBatch, RecordBatches};

use crate::config::LogConfig;
use crate::error::{Corruption, ReadError};
use crate::index::{OffsetIndex, TimeIndex};

/// Extension of segment data files.
pub(crate) const LOG_EXT: &str = "log";
/// Extension of offset index files.
pub(crate) const INDEX_EXT: &str = "index";
/// Extension of time index files.
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";

/// `<base offset, 20 digits>.<ext>`, as Kafka names segment files.
pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Parses a segment file name into its base offset and extension.
pub(crate) fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// Decodes the fixed header at the start of `b` (at least [`HEADER_LEN`] bytes).
pub(crate) fn parse_header(b: &[u8; HEADER_LEN]) -> BatchHeader {
    fn arr<const N: usize>(b: &[u8; HEADER_LEN], at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&b[at..at + N]);
        a
    }
    use klog_codec::batch::*;
    BatchHeader {
        base_offset: i64::from_be_bytes(arr(b, BASE_OFFSET_OFFSET)),
        batch_length: i32::from_be_bytes(arr(b, LENGTH_OFFSET)),
        partition_leader_epoch: i32::from_be_bytes(arr(b, LEADER_EPOCH_OFFSET)),
        magic: i8::from_be_bytes(arr(b, MAGIC_OFFSET)),
        crc: u32::from_be_bytes(arr(b, CRC_OFFSET)),
        attributes: i16::from_be_bytes(arr(b, ATTRIBUTES_OFFSET)),
        last_offset_delta: i32::from_be_bytes(arr(b, LAST_OFFSET_DELTA_OFFSET)),
        base_timestamp: i64::from_be_bytes(arr(b, BASE_TIMESTAMP_OFFSET)),
        max_timestamp: i64::from_be_bytes(arr(b, MAX_TIMESTAMP_OFFSET)),
        producer_id: i64::from_be_bytes(arr(b, PRODUCER_ID_OFFSET)),
        producer_epoch: i16::from_be_bytes(arr(b, PRODUCER_EPOCH_OFFSET)),
        base_sequence: i32::from_be_bytes(arr(b, BASE_SEQUENCE_OFFSET)),
        records_count: i32::from_be_bytes(arr(b, RECORDS_COUNT_OFFSET)),
    }
}

/// Size of the whole batch a header describes.
pub(crate) fn header_size(h: &BatchHeader) -> u64 {
    LOG_OVERHEAD as u64 + h.batch_length.max(0) as u64
}

/// Offset of the last record of the batch a header describes.
pub(crate) fn header_last_offset(h: &BatchHeader) -> i64 {
    h.base_offset.saturating_add(i64::from(h.last_offset_delta))
}

/// What a recovery scan of one segment found.
#[derive(Debug)]
pub(crate) struct SegmentRecovery {
    /// Where the valid prefix ended and why, if it did not reach the end of the file.
    pub(crate) corruption: Option<Corruption>,
    /// Bytes removed from the end of the file.
    pub(crate) bytes_truncated: u64,
}

/// A segment: batches with offsets in `[base_offset, next_offset)`.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    file: Arc<File>,
    /// Bytes of valid batches; the file is never longer once the segment is open.
    size: u64,
    next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Largest batch max timestamp in the segment, or -1.
    max_timestamp: i64,
    /// Base offset of the first batch carrying `max_timestamp`.
    offset_of_max_timestamp: i64,
    bytes_since_last_index_entry: u64,
    /// When the segment's first batch was appended, for `segment.ms`.
    rolling_base_ms: Option<i64>,
}

impl Segment {
    /// Creates a new, empty, active segment (replacing any files of that name).
    pub(crate) fn create(dir: &Path, base_offset: i64, config: &LogConfig) -> io::Result<Self> {
        let log_path = dir.join(file_name(base_offset, LOG_EXT));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        let index_path = dir.join(file_name(base_offset, INDEX_EXT));
        let time_path = dir.join(file_name(base_offset, TIME_INDEX_EXT));
        for p in [&index_path, &time_path] {
            // Stale indexes of a segment deleted earlier must not leak into this one.
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            base_offset,
            log_path,
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::open(
                &index_path,
                base_offset,
                true,
                config.segment_index_bytes,
            )?,
            time_index: TimeIndex::open(&time_path, base_offset, true, config.segment_index_bytes)?,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index_entry: 0,
            rolling_base_ms: None,
        })
    }

    /// Opens an existing segment's files without checking its batches.
    ///
    /// The caller then either trusts it ([`Segment::load_tail`]) or recovers it
    /// ([`Segment::recover`]).
    pub(crate) fn open_files(
        dir: &Path,
        base_offset: i64,
        active: bool,
        config: &LogConfig,
    ) -> io::Result<Self> {
        let log_path = dir.join(file_name(base_offset, LOG_EXT));
        let file = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let size = file.metadata()?.len();
        let offset_index = OffsetIndex::open(
            &dir.join(file_name(base_offset, INDEX_EXT)),
            base_offset,
            active,
            config.segment_index_bytes,
        )?;
        let time_index = TimeIndex::open(
            &dir.join(file_name(base_offset, TIME_INDEX_EXT)),
            base_offset,
            active,
            config.segment_index_bytes,
        )?;
        Ok(Self {
            base_offset,
            log_path,
            file: Arc::new(file),
            size,
            next_offset: base_offset,
            offset_index,
            time_index,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index_entry: 0,
            rolling_base_ms: None,
        })
    }

    /// Finishes opening a trusted segment: checks its indexes cheaply (last entries
    /// inside the file, Kafka's sanity check) and reads the batch headers after the
    /// last offset index entry to learn the next offset and the largest timestamp.
    ///
    /// An error means the segment cannot be trusted and must be recovered.
    pub(crate) fn load_tail(&mut self) -> Result<(), Corruption> {
        let index_ok = match self.offset_index.last() {
            Some((off, pos)) => u64::from(pos) < self.size && off >= self.base_offset,
            None => true,
        };
        if !index_ok {
            return Err(Corruption::OffsetOutOfSegment {
                position: 0,
                offset: self.offset_index.last().map_or(self.base_offset, |e| e.0),
            });
        }
        let (mut expected, pos) = self
            .offset_index
            .last()
            .map_or((self.base_offset, 0), |(o, p)| (o, u64::from(p)));
        let (mut max_ts, mut max_off) = self.time_index.last().unwrap_or((-1, self.base_offset));
        let mut pos = pos;
        while pos < self.size {
            let h = self.read_header(pos).map_err(|e| match e {
                ReadError::Corrupt { corruption, .. } => corruption,
                _ => Corruption::Truncated { position: pos },
            })?;
            let Some(h) = h else { break };
            if h.base_offset != expected {
                return Err(Corruption::OffsetNotContiguous {
                    position: pos,
                    expected,
                    found: h.base_offset,
                });
            }
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                max_off = h.base_offset;
            }
            expected = header_last_offset(&h) + 1;
            pos += header_size(&h);
        }
        if let Some((_, t_off)) = self.time_index.last()
            && t_off >= expected.max(self.base_offset + 1)
        {
            return Err(Corruption::OffsetOutOfSegment {
                position: 0,
                offset: t_off,
            });
        }
        self.next_offset = expected;
        self.max_timestamp = max_ts;
        self.offset_of_max_timestamp = max_off;
        let last_entry_pos = self.offset_index.last().map_or(0, |(_, p)| u64::from(p));
        self.bytes_since_last_index_entry = self.size - last_entry_pos;
        if self.size > 0
            && self.rolling_base_ms.is_none()
            && let Ok(Some(first)) = self.read_header(0)
        {
            self.rolling_base_ms = Some(first.max_timestamp);
        }
        Ok(())
    }

    /// Scans every batch from the start, checking framing, CRC-32C and that offsets
    /// continue from `base_offset`; rebuilds both indexes; truncates the file at the
    /// first invalid byte.
    pub(crate) fn recover(&mut self, config: &LogConfig) -> io::Result<SegmentRecovery> {
        self.offset_index.clear();
        self.time_index.clear();
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.next_offset = self.base_offset;
        self.rolling_base_ms = None;
        let file_len = self.file.metadata()?.len();
        let file = Arc::clone(&self.file);
        let mut reader = BufReader::with_capacity(1 << 20, &*file);
        reader.seek(SeekFrom::Start(0))?;
        let mut buf: Vec<u8> = Vec::new();
        let mut pos = 0u64;
        let corruption = loop {
            if pos == file_len {
                break None;
            }
            let remaining = file_len - pos;
            if remaining < LOG_OVERHEAD as u64 {
                break Some(Corruption::Truncated { position: pos });
            }
            buf.resize(LOG_OVERHEAD, 0);
            reader.read_exact(&mut buf)?;
            let size = match batch_size(&buf, 0) {
                Ok(s) => s as u64,
                Err(source) => {
                    break Some(Corruption::InvalidBatch {
                        position: pos,
                        source,
                    });
                }
            };
            if size > remaining {
                break Some(Corruption::Truncated { position: pos });
            }
            buf.resize(size as usize, 0);
            reader.read_exact(&mut buf[LOG_OVERHEAD..])?;
            let batch = match RecordBatch::new(&buf) {
                Ok(b) => b,
                Err(source) => {
                    break Some(Corruption::InvalidBatch {
                        position: pos,
                        source,
                    });
                }
            };
            match batch.validate() {
                Ok(()) => {}
                Err(DecodeError::ChecksumMismatch {
                    stored, computed, ..
                }) => {
                    break Some(Corruption::ChecksumMismatch {
                        position: pos,
                        stored,
                        computed,
                    });
                }
                Err(source) => {
                    break Some(Corruption::InvalidBatch {
                        position: pos,
                        source,
                    });
                }
            }
            if batch.base_offset() != self.next_offset {
                break Some(Corruption::OffsetNotContiguous {
                    position: pos,
                    expected: self.next_offset,
                    found: batch.base_offset(),
                });
            }
            if batch.last_offset() - self.base_offset > i64::from(u32::MAX)
                || pos + size > u64::from(u32::MAX)
            {
                break Some(Corruption::OffsetOutOfSegment {
                    position: pos,
                    offset: batch.last_offset(),
                });
            }
            if self.rolling_base_ms.is_none() {
                self.rolling_base_ms = Some(batch.max_timestamp());
            }
            self.index_batch(
                pos,
                size,
                batch.base_offset(),
                batch.last_offset(),
                batch.max_timestamp(),
                config.index_interval_bytes,
            );
            pos += size;
        };
        drop(reader);
        let bytes_truncated = file_len - pos;
        if bytes_truncated > 0 {
            self.file.set_len(pos)?;
            self.file.sync_all()?;
        }
        self.size = pos;
        Ok(SegmentRecovery {
            corruption,
            bytes_truncated,
        })
    }

    /// Records a batch just placed at `position` in the indexes and counters.
    fn index_batch(
        &mut self,
        position: u64,
        size: u64,
        base_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
        interval: u32,
    ) {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = base_offset;
        }
        // Kafka's rule: an entry for the first batch after more than
        // `index.interval.bytes` since the last one. Entries of both indexes are added
        // together (or not at all) so that the last time entry always covers every
        // batch before the last offset entry; `load_tail` relies on it.
        if self.bytes_since_last_index_entry > u64::from(interval)
            && !self.offset_index.file().is_full()
            && !self.time_index.file().is_full()
        {
            self.offset_index.append(base_offset, position as u32);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += size;
        self.next_offset = last_offset + 1;
    }

    /// Appends already validated batches with one positioned write, then indexes them.
    ///
    /// On a write error the file is cut back to its previous size.
    pub(crate) fn append(&mut self, records: &[u8], now_ms: i64, interval: u32) -> io::Result<()> {
        let start = self.size;
        if let Err(e) = self.file.write_all_at(records, start) {
            if let Err(e2) = self.file.set_len(start) {
                tracing::error!(path = %self.log_path.display(), error = %e2, "could not undo a failed append");
            }
            return Err(e);
        }
        for (pos, batch) in RecordBatches::new(records).map_while(Result::ok) {
            self.index_batch(
                start + pos as u64,
                batch.len() as u64,
                batch.base_offset(),
                batch.last_offset(),
                batch.max_timestamp(),
                interval,
            );
        }
        self.size = start + records.len() as u64;
        if self.rolling_base_ms.is_none() {
            self.rolling_base_ms = Some(now_ms);
        }
        Ok(())
    }

    /// Reads and checks the framing of the batch header at `position`; `None` at the
    /// end of the segment.
    pub(crate) fn read_header(&self, position: u64) -> Result<Option<BatchHeader>, ReadError> {
        if position >= self.size {
            return Ok(None);
        }
        let corrupt = |corruption| ReadError::Corrupt {
            segment: self.base_offset,
            corruption,
        };
        if self.size - position < HEADER_LEN as u64 {
            return Err(corrupt(Corruption::Truncated { position }));
        }
        let mut buf = [0u8; HEADER_LEN];
        self.file.read_exact_at(&mut buf, position)?;
        let h = parse_header(&buf);
        if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(corrupt(Corruption::InvalidBatch {
                position,
                source: DecodeError::InvalidLength {
                    offset: LOG_OVERHEAD - 4,
                    what: "batch length",
                    value: i64::from(h.batch_length),
                },
            }));
        }
        if h.magic != MAGIC_V2 {
            return Err(corrupt(Corruption::InvalidBatch {
                position,
                source: DecodeError::UnsupportedMagic {
                    offset: 0,
                    magic: h.magic,
                },
            }));
        }
        if position + header_size(&h) > self.size {
            return Err(corrupt(Corruption::Truncated { position }));
        }
        Ok(Some(h))
    }

    /// The first batch whose last offset is at or above `offset`, with its position.
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, ReadError> {
        let (entry_offset, entry_pos) = self.offset_index.lookup(offset);
        let mut pos = u64::from(entry_pos);
        if pos > 0 {
            // The index is a hint: confirm it points at the batch it names.
            match self.read_header(pos) {
                Ok(Some(h)) if h.base_offset == entry_offset => {}
                _ => {
                    tracing::warn!(segment = %self.log_path.display(), pos, "offset index entry does not match the log; scanning from the start");
                    pos = 0;
                }
            }
        }
        while let Some(h) = self.read_header(pos)? {
            if header_last_offset(&h) >= offset {
                return Ok(Some((pos, h)));
            }
            pos += header_size(&h);
        }
        Ok(None)
    }

    /// The batch boundary closest to, and not after, `limit`, searching from the batch
    /// at `from` (a boundary itself). Stops early before any batch whose last offset
    /// is at or past `max_offset`.
    pub(crate) fn boundary_before(
        &self,
        from: u64,
        limit: u64,
        max_offset: i64,
    ) -> Result<u64, ReadError> {
        let limit = limit.min(self.size);
        let mut pos = from;
        // Skip ahead with the index when the range is long.
        let (entry_offset, entry_pos) = self.offset_index.lookup_position(limit);
        if u64::from(entry_pos) > from && entry_offset < max_offset {
            pos = u64::from(entry_pos);
        }
        while let Some(h) = self.read_header(pos)? {
            let end = pos + header_size(&h);
            if end > limit || header_last_offset(&h) >= max_offset {
                break;
            }
            pos = end;
        }
        Ok(pos)
    }

    /// Removes every batch whose last offset is at or above `offset`. Returns the
    /// bytes removed.
    pub(crate) fn truncate_to(&mut self, offset: i64) -> io::Result<u64> {
        let found = match self.find_batch(offset) {
            Ok(found) => found,
            Err(ReadError::Io(e)) => return Err(e),
            Err(e) => return Err(io::Error::other(e)),
        };
        let Some((pos, h)) = found else {
            return Ok(0);
        };
        let removed = self.size - pos;
        self.file.set_len(pos)?;
        // Durable now: a crash must not resurrect batches a follower was told to drop.
        self.file.sync_all()?;
        self.size = pos;
        self.next_offset = if pos == 0 {
            self.base_offset
        } else {
            h.base_offset
        };
        self.offset_index.truncate_to_offset(self.next_offset);
        self.time_index.truncate_to_offset(self.next_offset);
        if pos == 0 {
            self.rolling_base_ms = None;
        }
        match self.load_tail() {
            Ok(()) => Ok(removed),
            Err(c) => Err(io::Error::other(format!(
                "segment {} inconsistent after truncation: {c}",
                self.log_path.display()
            ))),
        }
    }

    /// Makes the segment the active one: indexes preallocated again.
    pub(crate) fn make_active(&mut self, config: &LogConfig) -> io::Result<()> {
        use crate::index::{OFFSET_ENTRY, TIME_ENTRY, capacity};
        self.offset_index
            .inner()
            .resize(capacity(config.segment_index_bytes, OFFSET_ENTRY))?;
        self.time_index
            .inner()
            .resize(capacity(config.segment_index_bytes, TIME_ENTRY))
    }

    /// Stops being the active segment: a final time index entry for the largest
    /// timestamp, and both indexes trimmed to their entries.
    pub(crate) fn make_inactive(&mut self) -> io::Result<()> {
        if self.max_timestamp >= 0 && !self.time_index.file().is_full() {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
        }
        self.offset_index.inner().trim()?;
        self.time_index.inner().trim()
    }

    /// Fsyncs the data file and both indexes.
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.file.sync_data()?;
        self.offset_index.file().flush()?;
        self.time_index.file().flush()
    }

    /// Deletes the segment's files. Readers holding its `Arc<File>` can finish.
    pub(crate) fn delete(self) -> io::Result<()> {
        let paths = [
            self.log_path.clone(),
            self.offset_index.file().path().to_path_buf(),
            self.time_index.file().path().to_path_buf(),
        ];
        drop(self);
        for p in paths {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The earliest batch in the segment whose max timestamp is at or above
    /// `timestamp`, as (base offset, max timestamp).
    /// Batches ending before `from_offset` are skipped.
    pub(crate) fn find_timestamp(
        &self,
        timestamp: i64,
        from_offset: i64,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start_offset = self
            .time_index
            .lookup_below(timestamp)
            .map_or(self.base_offset, |(_, o)| o)
            .max(from_offset);
        let Some((mut pos, _)) = self.find_batch(start_offset)? else {
            return Ok(None);
        };
        while let Some(h) = self.read_header(pos)? {
            if h.max_timestamp >= timestamp {
                return Ok(Some((h.base_offset, h.max_timestamp)));
            }
            pos += header_size(&h);
        }
        Ok(None)
    }

    /// The batch with the largest max timestamp among those holding an offset in
    /// `from..below`, as (max timestamp, base offset); the earliest such batch on
    /// ties. `None` when none of them has a timestamp (all -1). Reads batch headers
    /// only; when the whole segment is in range its own maximum answers at once.
    pub(crate) fn max_timestamp_between(
        &self,
        from: i64,
        below: i64,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        if self.max_timestamp < 0 || from >= below {
            return Ok(None);
        }
        if from <= self.base_offset && below >= self.next_offset {
            return Ok(Some((self.max_timestamp, self.offset_of_max_timestamp)));
        }
        let Some((mut pos, _)) = self.find_batch(from)? else {
            return Ok(None);
        };
        let mut best: Option<(i64, i64)> = None;
        while let Some(h) = self.read_header(pos)? {
            if h.base_offset >= below {
                break;
            }
            if h.max_timestamp > best.map_or(-1, |(ts, _)| ts) {
                best = Some((h.max_timestamp, h.base_offset));
            }
            pos += header_size(&h);
        }
        Ok(best)
    }

    /// The timestamp retention judges the segment by: its largest batch timestamp,
    /// or the file's modification time when no batch has one.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_millis() as i64)
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub(crate) fn rolling_base_ms(&self) -> Option<i64> {
        self.rolling_base_ms
    }

    pub(crate) fn indexes_full(&self) -> bool {
        self.offset_index.file().is_full() || self.time_index.file().is_full()
    }

    pub(crate) fn offset_index_len(&self) -> usize {
        self.offset_index.file().len()
    }

    pub(crate) fn time_index_len(&self) -> usize {
        self.time_index.file().len()
    }
}
