//! Errors, one enum per failure domain, and the typed description of corruption.

use std::io;
use std::path::PathBuf;

use klog_codec::DecodeError;

use crate::config::TopicPartition;

/// What is wrong with the bytes of a segment file.
///
/// Positions are byte offsets inside the segment's `.log` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// The file ends inside a batch: a torn (partial) write.
    #[error("batch at byte {position} is cut short by the end of the file")]
    Truncated {
        /// Start of the partial batch.
        position: u64,
    },
    /// The batch framing or header is invalid (length, magic, header fields).
    #[error("invalid batch at byte {position}: {source}")]
    InvalidBatch {
        /// Start of the batch.
        position: u64,
        /// What the codec found wrong.
        #[source]
        source: DecodeError,
    },
    /// The stored CRC-32C does not match the batch's bytes.
    #[error(
        "CRC-32C mismatch in batch at byte {position}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    ChecksumMismatch {
        /// Start of the batch.
        position: u64,
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// A batch does not start at the offset following the previous batch.
    #[error("batch at byte {position} starts at offset {found}, expected {expected}")]
    OffsetNotContiguous {
        /// Start of the batch.
        position: u64,
        /// The offset the batch should have started at.
        expected: i64,
        /// The batch's base offset.
        found: i64,
    },
    /// A batch's offsets do not fit the segment (relative offset beyond `u32`).
    #[error("batch at byte {position} has offset {offset} out of the segment's range")]
    OffsetOutOfSegment {
        /// Start of the batch.
        position: u64,
        /// The offending offset.
        offset: i64,
    },
}

impl Corruption {
    /// Where in the segment file the problem starts (the valid prefix ends here).
    pub fn position(&self) -> u64 {
        match self {
            Self::Truncated { position }
            | Self::InvalidBatch { position, .. }
            | Self::ChecksumMismatch { position, .. }
            | Self::OffsetNotContiguous { position, .. }
            | Self::OffsetOutOfSegment { position, .. } => *position,
        }
    }
}

/// Why recovery could not bring a log back to a valid prefix.
///
/// Corrupt data is not an error: recovery cuts it off and reports it in a
/// [`crate::RecoveryReport`]. What remains are failures of the disk itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// Reading, truncating or deleting a file failed.
    #[error("I/O error recovering {path}: {source}")]
    Io {
        /// The file being recovered.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Failure to open a log, a log directory or a set of log directories.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A file or directory could not be created, read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Recovery after an unclean shutdown failed.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// A checkpoint or properties file does not follow its format.
    #[error("malformed {path} at line {line}: {reason}")]
    MalformedFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The partition is already open in this log manager.
    #[error("partition {0} already exists")]
    AlreadyExists(TopicPartition),
    /// The same partition has a folder in two log directories.
    #[error("partition {tp} found in both {first} and {second}")]
    DuplicatePartition {
        /// The partition.
        tp: TopicPartition,
        /// One folder.
        first: PathBuf,
        /// The other folder.
        second: PathBuf,
    },
    /// `meta.properties` files disagree with each other or with the caller.
    #[error("{path}: {field} is {found:?}, expected {expected:?}")]
    InconsistentMeta {
        /// The `meta.properties` file.
        path: PathBuf,
        /// The property (`node.id`, `cluster.id`, `version`).
        field: &'static str,
        /// What the caller or another directory says.
        expected: String,
        /// What this file says.
        found: String,
    },
    /// A log directory's `meta.properties` names another node or cluster than the
    /// one opening it (see [`crate::LogManager::claim`]).
    #[error(
        "{path}: {field} is {found}, but this node's {field} is {expected}; the log directory belongs to another node or cluster"
    )]
    ForeignLogDir {
        /// The `meta.properties` file.
        path: PathBuf,
        /// The property (`node.id` or `cluster.id`).
        field: &'static str,
        /// This node's value.
        expected: String,
        /// What the file says.
        found: String,
    },
    /// A topic-partition name that Kafka would not accept.
    #[error("invalid topic-partition {0}")]
    InvalidTopicPartition(TopicPartition),
    /// No log directory was given.
    #[error("no log directory given")]
    NoLogDirs,
}

impl OpenError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// Why an append was refused. Unless the variant is [`AppendError::Io`], nothing was
/// written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The records buffer is empty.
    #[error("no record batches to append")]
    EmptyRecords,
    /// A batch is malformed or corrupt: bad framing, magic, header or CRC-32C (the
    /// codec error's offset is the batch's position in the appended buffer). A broker
    /// answers `CORRUPT_MESSAGE`.
    #[error("corrupt record batch: {0}")]
    Corrupt(#[from] DecodeError),
    /// A batch is larger than `max.message.bytes` (`MESSAGE_TOO_LARGE`).
    #[error("batch at byte {position} is {size} bytes, more than max.message.bytes {max}")]
    BatchTooLarge {
        /// Position of the batch in the appended buffer.
        position: usize,
        /// Its size.
        size: usize,
        /// The configured limit.
        max: u32,
    },
    /// The whole buffer is larger than one segment can address (`i32::MAX` bytes).
    #[error("{size} bytes of records in one append is more than a segment can hold")]
    RecordsTooLarge {
        /// Size of the buffer.
        size: usize,
    },
    /// A leader append contains a batch without records (`INVALID_RECORD`).
    #[error("batch at byte {position} has no records")]
    EmptyBatch {
        /// Position of the batch in the appended buffer.
        position: usize,
    },
    /// A leader append contains a batch whose `lastOffsetDelta` is not
    /// `recordsCount - 1`, as every producer writes it (`INVALID_RECORD`).
    #[error(
        "batch at byte {position}: last offset delta {last_offset_delta} with {records_count} records"
    )]
    InvalidLastOffsetDelta {
        /// Position of the batch in the appended buffer.
        position: usize,
        /// The batch's `recordsCount`.
        records_count: i32,
        /// The batch's `lastOffsetDelta`.
        last_offset_delta: i32,
    },
    /// A follower append does not continue the log exactly where it ends.
    #[error("batch at byte {position} starts at offset {found}, expected {expected}")]
    UnexpectedOffset {
        /// Position of the batch in the appended buffer.
        position: usize,
        /// The offset the batch had to start at.
        expected: i64,
        /// Its base offset.
        found: i64,
    },
    /// A leader append with an epoch older than the latest one in the log.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleLeaderEpoch {
        /// The epoch given.
        epoch: i32,
        /// The log's latest epoch.
        latest: i32,
    },
    /// Offsets would overflow `i64` or a segment's 32-bit relative offsets.
    #[error("offsets of the appended batches overflow")]
    OffsetOverflow,
    /// The log was closed or deleted.
    #[error("the log is closed")]
    Closed,
    /// Writing failed. The log truncates back to where it was; the bytes may or may
    /// not have been partly written to disk before that.
    #[error("I/O error while appending: {0}")]
    Io(#[from] io::Error),
}

impl AppendError {
    /// Whether the error is the caller's input (the same request would fail again)
    /// rather than a problem of the log or the disk.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::EmptyRecords
                | Self::Corrupt(_)
                | Self::BatchTooLarge { .. }
                | Self::RecordsTooLarge { .. }
                | Self::EmptyBatch { .. }
                | Self::InvalidLastOffsetDelta { .. }
                | Self::UnexpectedOffset { .. }
                | Self::StaleLeaderEpoch { .. }
                | Self::OffsetOverflow
        )
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The offset is below the log start offset or past the log end offset
    /// (`OFFSET_OUT_OF_RANGE`).
    #[error("offset {offset} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The log start offset.
        log_start: i64,
        /// The log end offset.
        log_end: i64,
    },
    /// A segment's bytes do not hold valid batch headers where the log expects them.
    #[error("segment {segment} is corrupt: {corruption}")]
    Corrupt {
        /// Base offset of the segment.
        segment: i64,
        /// What is wrong.
        #[source]
        corruption: Corruption,
    },
    /// Reading a file failed.
    #[error("I/O error while reading: {0}")]
    Io(#[from] io::Error),
}

/// Failure of a log maintenance operation (truncation, record deletion).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The offset is outside what the operation accepts (for `DeleteRecords`: above
    /// the high watermark).
    #[error("offset {offset} out of range [{low}, {high}]")]
    OffsetOutOfRange {
        /// The offset given.
        offset: i64,
        /// The smallest accepted offset.
        low: i64,
        /// The largest accepted offset.
        high: i64,
    },
    /// The log was closed or deleted.
    #[error("the log is closed")]
    Closed,
    /// A file operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}
