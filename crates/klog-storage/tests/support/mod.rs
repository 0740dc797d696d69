//! Test-only record batch v2 builder.
//!
//! Storage never decodes records, so the records section here is opaque bytes; the
//! header and CRC-32C are exactly what a producer writes (protocol guide, "Message
//! format": RecordBatch). Shared by the integration tests, the benches and the
//! example through `#[path]`.
#![allow(dead_code)]

use klog_codec::batch::{
    ATTRIBUTES_OFFSET, BASE_SEQUENCE_OFFSET, BASE_TIMESTAMP_OFFSET, CRC_OFFSET, HEADER_LEN,
    LAST_OFFSET_DELTA_OFFSET, LENGTH_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAX_TIMESTAMP_OFFSET,
    PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET, RECORDS_COUNT_OFFSET,
};

/// Fields of a test batch.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `baseOffset` as the producer sends it (brokers overwrite it).
    pub base_offset: i64,
    /// `partitionLeaderEpoch`.
    pub leader_epoch: i32,
    /// Number of records claimed by the header.
    pub records: i32,
    /// First record timestamp.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Opaque records section.
    pub payload: Vec<u8>,
}

impl Spec {
    /// `records` records carrying `payload` bytes, all at `timestamp`.
    pub fn new(records: i32, payload: Vec<u8>, timestamp: i64) -> Self {
        Self {
            base_offset: 0,
            leader_epoch: -1,
            records,
            base_timestamp: timestamp,
            max_timestamp: timestamp,
            payload,
        }
    }

    /// Encodes the batch with a valid CRC-32C.
    pub fn build(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(&self.payload);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        put(&mut b, 0, &self.base_offset.to_be_bytes());
        put(&mut b, LENGTH_OFFSET, &len.to_be_bytes());
        put(&mut b, 12, &self.leader_epoch.to_be_bytes());
        b[MAGIC_OFFSET] = 2;
        put(&mut b, ATTRIBUTES_OFFSET, &0i16.to_be_bytes());
        put(
            &mut b,
            LAST_OFFSET_DELTA_OFFSET,
            &(self.records - 1).max(0).to_be_bytes(),
        );
        put(
            &mut b,
            BASE_TIMESTAMP_OFFSET,
            &self.base_timestamp.to_be_bytes(),
        );
        put(
            &mut b,
            MAX_TIMESTAMP_OFFSET,
            &self.max_timestamp.to_be_bytes(),
        );
        put(&mut b, PRODUCER_ID_OFFSET, &(-1i64).to_be_bytes());
        put(&mut b, PRODUCER_EPOCH_OFFSET, &(-1i16).to_be_bytes());
        put(&mut b, BASE_SEQUENCE_OFFSET, &(-1i32).to_be_bytes());
        put(&mut b, RECORDS_COUNT_OFFSET, &self.records.to_be_bytes());
        fix_crc(&mut b);
        b
    }
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// Recomputes the CRC-32C of the single batch in `b` (after a test edits a field).
pub fn fix_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    put(b, CRC_OFFSET, &crc.to_be_bytes());
}

/// A batch of `records` records with `payload_len` bytes of deterministic filler.
pub fn batch(records: i32, payload_len: usize, timestamp: i64) -> Vec<u8> {
    let payload = (0..payload_len).map(|i| (i * 31 + 7) as u8).collect();
    Spec::new(records, payload, timestamp).build()
}

/// Concatenated batches of `records_per_batch` records of `record_size` bytes each
/// until `total_bytes` is reached (the last batch may be smaller).
pub fn batches(
    total_bytes: usize,
    batch_bytes: usize,
    record_size: usize,
    timestamp: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(total_bytes + batch_bytes);
    let per_batch = ((batch_bytes.saturating_sub(HEADER_LEN)) / record_size.max(1)).max(1);
    while out.len() < total_bytes {
        out.extend(batch(per_batch as i32, per_batch * record_size, timestamp));
    }
    out
}
