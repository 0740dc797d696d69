//! Kafka wire codec for klog.
//!
//! This crate turns bytes into typed values and back. It does no I/O, spawns no
//! threads and reads no clock: callers hand it byte slices and get views, values or
//! errors back.
//!
//! ```text
//!   wire bytes ──► RecordBatch::parse ──► validate() ──► header accessors
//!                                           │
//!                                           └─► rewrite base offset / leader epoch
//!                                               in place (outside the CRC range)
//!
//!   RecordBatch ──records()──► BatchRecords ──iter()──► Record (absolute offset, ts)
//!   BatchBuilder::push(..) ──finish()──► wire bytes (header, CRC-32C, compression)
//! ```
//!
//! * [`batch`]: record batch v2 as a borrowed view over wire bytes, validated without
//!   decoding records (what the broker's produce path needs).
//! * [`records`]: decoded [`Record`]s, kept apart from the wire type, and the
//!   decoder that iterates a batch's records (decompressing with a size cap).
//! * [`builder`]: [`BatchBuilder`], which writes a batch in place into a buffer.
//! * [`compression`]: gzip, snappy (raw and xerial), LZ4 frame and zstd.
//! * [`varint`]: Kafka's zigzag and unsigned variable-length integers.
//! * [`error`]: the typed [`DecodeError`] and [`EncodeError`].
//! * [`protocol`]: frames, request headers, the supported-version table, typed
//!   requests (message structs from `kafka-protocol`) and zero-copy Fetch responses.
// Untrusted bytes are parsed here: no unwrap, no unchecked indexing outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod batch;
mod buf;
pub mod builder;
pub mod compression;
pub mod error;
pub mod protocol;
pub mod records;
pub mod varint;

pub use batch::{BatchHeader, Compression, RecordBatch, RecordBatchMut, RecordBatches};
pub use buf::BatchBuf;
pub use builder::BatchBuilder;
pub use error::{DecodeError, EncodeError};
pub use records::{BatchRecords, Header, OwnedHeader, OwnedRecord, Record};
