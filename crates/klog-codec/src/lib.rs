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
//! ```
//!
//! * [`batch`]: record batch v2 as a borrowed view over wire bytes, validated without
//!   decoding records (what the broker's produce path needs).
//! * [`error`]: the typed [`DecodeError`].
//! * [`protocol`]: frames, request headers, the supported-version table, typed
//!   requests (message structs from `kafka-protocol`) and zero-copy Fetch responses.
// Untrusted bytes are parsed here: no unwrap, no unchecked indexing outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod batch;
pub mod error;
pub mod protocol;

pub use batch::{BatchHeader, Compression, RecordBatch, RecordBatchMut, RecordBatches};
pub use error::DecodeError;
