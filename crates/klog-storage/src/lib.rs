//! The klog partition log.
//!
//! A [`Log`] is one partition: a folder of segment files holding record batches
//! exactly as they travel on the wire, each with a sparse, memory-mapped offset index
//! and time index. A [`LogManager`] owns the logs of many partitions spread over one
//! or more log directories, with the checkpoints and clean-shutdown marker Kafka keeps
//! there. `docs/storage.md` describes the files byte by byte.
//!
//! ```text
//!  append(records, epoch, now) ──► validate every batch (framing, CRC-32C, size)
//!                                   │ any error: nothing written
//!                                   ▼
//!                                 rewrite baseOffset / leader epoch in place
//!                                   ▼
//!                                 roll? ──► one write of all batches ──► index entries
//!
//!  read(offset, max_bytes, max_offset) ──► index lookup + header scan
//!                                   └──► Vec<FileRegion { file, position, len }>
//!                                        (what sendfile sends; no bytes copied)
//!
//!  open(dir) after a crash ──► CRC-check segments past the recovery point,
//!                              rebuild indexes, cut at the first invalid byte
//! ```
//!
//! What it does not do, deliberately:
//! * No async and no threads: synchronous `std::fs` I/O, called from whatever thread
//!   or blocking task the caller chooses. No clock either: every method that needs
//!   the time takes `now_ms`.
//! * No record decoding: batches are validated by their header and CRC-32C only
//!   (through `klog-codec`) and stored as they came. No compression, no compaction,
//!   no transactions index, no producer-state snapshots (the broker rebuilds those
//!   with [`Log::scan_batches`]).
//! * No replication decisions: the caller says when to truncate, what the high
//!   watermark is and which leader epoch appends.
//! * Unix only (positioned I/O through `std::os::unix::fs::FileExt`). Files in a log
//!   directory must not be modified by anything else while a log is open: indexes are
//!   memory-mapped.

mod checkpoint;
pub mod config;
pub mod epoch;
pub mod error;
mod index;
pub mod log;
pub mod manager;
mod segment;

pub use checkpoint::{sync_dir, write_atomic};
pub use config::{InvalidTopicPartition, LogConfig, TimestampType, TopicPartition};
pub use epoch::{EpochEntry, LeaderEpochCache};
pub use error::{AppendError, Corruption, OpenError, ReadError, RecoveryError, StorageError};
pub use log::{
    AppendInfo, FileRegion, Log, ReadResult, RecoveryCut, RecoveryReport, SegmentInfo, SyncJob,
};
pub use manager::{DetachedPartition, LogManager, METADATA_LOG_DIR, MetaProperties, SharedLog};
