//! Record batch v2: the unit Kafka puts on the wire and klog puts on disk.
//!
//! A batch is a 61-byte header followed by its records (protocol guide, "Message
//! format", RecordBatch). All integers are big-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset            ┐ outside the CRC: the broker rewrites these
//!      8     4  batchLength           │ (bytes after this field)
//!     12     4  partitionLeaderEpoch  ┘
//!     16     1  magic (= 2)
//!     17     4  crc (CRC-32C of bytes 21..end)
//!     21     2  attributes
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordsCount
//!     61     …  records (one compressed blob when attributes say so)
//! ```
//!
//! [`RecordBatch`] is a borrowed, read-only view; [`RecordBatchMut`] allows the
//! rewrites a broker performs on append. Neither decodes records: validating a batch
//! costs one CRC-32C pass over its bytes.

use crate::error::DecodeError;

/// Size of the fixed record batch v2 header.
pub const HEADER_LEN: usize = 61;
/// Bytes before (and including) the `batchLength` field: `12 + batchLength` is the
/// whole batch.
pub const LOG_OVERHEAD: usize = 12;
/// The only record batch magic klog accepts.
pub const MAGIC_V2: i8 = 2;

/// Byte offset of `baseOffset`.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Byte offset of `batchLength`.
pub const LENGTH_OFFSET: usize = 8;
/// Byte offset of `partitionLeaderEpoch`.
pub const LEADER_EPOCH_OFFSET: usize = 12;
/// Byte offset of `magic`.
pub const MAGIC_OFFSET: usize = 16;
/// Byte offset of `crc`.
pub const CRC_OFFSET: usize = 17;
/// Byte offset of `attributes`; the CRC covers from here to the end of the batch.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Byte offset of `lastOffsetDelta`.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Byte offset of `baseTimestamp`.
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Byte offset of `maxTimestamp`.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Byte offset of `producerId`.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Byte offset of `producerEpoch`.
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Byte offset of `baseSequence`.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Byte offset of `recordsCount`.
pub const RECORDS_COUNT_OFFSET: usize = 57;

/// Attribute bits 0-2: the compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are LogAppendTime rather than CreateTime.
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
/// Attribute bit 4: the batch is part of a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: the batch is a control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;
/// Attribute bit 6: the batch has a delete horizon (compaction).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Compression codec of a batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Records stored as they are.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy: raw block, or the xerial framing some Java-derived clients send.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The codec for attribute bits 0-2, if one exists.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Self::None),
            1 => Some(Self::Gzip),
            2 => Some(Self::Snappy),
            3 => Some(Self::Lz4),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The id stored in attribute bits 0-2.
    pub fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// The codec's name as Kafka configurations spell it (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// Parses a `compression.type` name (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" | "uncompressed" => Some(Self::None),
            "gzip" => Some(Self::Gzip),
            "snappy" => Some(Self::Snappy),
            "lz4" => Some(Self::Lz4),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a big-endian array of `N` bytes at `at`, or reports truncation.
fn read_array<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], DecodeError> {
    let end = at.checked_add(N).ok_or(DecodeError::Truncated {
        offset: at,
        needed: N,
    })?;
    match buf.get(at..end) {
        Some(slice) => {
            let mut out = [0u8; N];
            out.copy_from_slice(slice);
            Ok(out)
        }
        None => Err(DecodeError::Truncated {
            offset: buf.len(),
            needed: end - buf.len().min(end),
        }),
    }
}

/// Reads a field from a buffer already known to hold a whole header.
///
/// Callers only use offsets below [`HEADER_LEN`] on buffers whose length was checked,
/// so the fallback zero is unreachable; it exists so that no path can panic.
fn field<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    read_array(buf, at).unwrap_or([0u8; N])
}

/// CRC-32C over `bytes[ATTRIBUTES_OFFSET..]` of one whole batch.
fn batch_crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes.get(ATTRIBUTES_OFFSET..).unwrap_or(&[]))
}

/// A borrowed, read-only view of exactly one record batch v2.
///
/// Constructing the view ([`RecordBatch::parse`]) checks the framing: enough bytes,
/// a sane `batchLength` and magic 2. [`RecordBatch::validate`] adds the CRC-32C check
/// and the header consistency checks; it never decodes records.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

impl std::fmt::Debug for RecordBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("len", &self.bytes.len())
            .field("records_count", &self.records_count())
            .field("compression", &self.compression())
            .finish()
    }
}

/// The size of the batch starting at the beginning of `buf`, from its `batchLength`.
///
/// Needs only the first 12 bytes: a reader can use it to learn how much more to read.
/// `at` is the position of `buf` in its container, used in errors.
pub fn batch_size(buf: &[u8], at: usize) -> Result<usize, DecodeError> {
    let raw = i32::from_be_bytes(read_array(buf, LENGTH_OFFSET).map_err(|e| shift(e, at))?);
    let min = (HEADER_LEN - LOG_OVERHEAD) as i32;
    if raw < min {
        return Err(DecodeError::InvalidLength {
            offset: at + LENGTH_OFFSET,
            what: "batch length",
            value: i64::from(raw),
        });
    }
    Ok(LOG_OVERHEAD + raw as usize)
}

fn shift(e: DecodeError, at: usize) -> DecodeError {
    match e {
        DecodeError::Truncated { offset, needed } => DecodeError::Truncated {
            offset: offset + at,
            needed,
        },
        other => other,
    }
}

impl<'a> RecordBatch<'a> {
    /// Parses the batch at the start of `buf` and returns it with the bytes after it.
    ///
    /// Checks that the whole batch is present, its length is at least a header and its
    /// magic is 2. Does not check the CRC: call [`RecordBatch::validate`].
    pub fn parse(buf: &'a [u8]) -> Result<(Self, &'a [u8]), DecodeError> {
        Self::parse_at(buf, 0)
    }

    /// As [`RecordBatch::parse`], with `at` the position of `buf` in its container
    /// (used in error offsets).
    pub fn parse_at(buf: &'a [u8], at: usize) -> Result<(Self, &'a [u8]), DecodeError> {
        let size = batch_size(buf, at)?;
        let magic = i8::from_be_bytes(read_array(buf, MAGIC_OFFSET).map_err(|e| shift(e, at))?);
        if magic != MAGIC_V2 {
            return Err(DecodeError::UnsupportedMagic { offset: at, magic });
        }
        if buf.len() < size {
            return Err(DecodeError::Truncated {
                offset: at + buf.len(),
                needed: size - buf.len(),
            });
        }
        let (bytes, rest) = buf.split_at(size);
        Ok((Self { bytes }, rest))
    }

    /// Wraps bytes that must hold exactly one batch (no trailing bytes).
    pub fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let (batch, rest) = Self::parse(bytes)?;
        if !rest.is_empty() {
            return Err(DecodeError::InvalidLength {
                offset: LENGTH_OFFSET,
                what: "batch length (trailing bytes)",
                value: rest.len() as i64,
            });
        }
        Ok(batch)
    }

    /// Checks the CRC-32C and the consistency of the header fields.
    ///
    /// After this succeeds the header can be trusted: `recordsCount` is positive,
    /// `lastOffsetDelta` is `recordsCount - 1` or more... (records themselves are not
    /// decoded; a producer that lies about them only hurts its own consumers), and the
    /// codec is known.
    pub fn validate(&self) -> Result<(), DecodeError> {
        self.validate_at(0)
    }

    /// As [`RecordBatch::validate`], with `at` the batch's position for errors.
    pub fn validate_at(&self, at: usize) -> Result<(), DecodeError> {
        let stored = self.crc();
        let computed = batch_crc(self.bytes);
        if stored != computed {
            return Err(DecodeError::ChecksumMismatch {
                offset: at,
                stored,
                computed,
            });
        }
        let codec = (self.attributes() & ATTR_COMPRESSION_MASK) as u8;
        if Compression::from_id(codec).is_none() {
            return Err(DecodeError::UnknownCompression { offset: at, codec });
        }
        let count = self.records_count();
        if count < 0 {
            return Err(DecodeError::InvalidLength {
                offset: at + RECORDS_COUNT_OFFSET,
                what: "records count",
                value: i64::from(count),
            });
        }
        let delta = self.last_offset_delta();
        if delta < 0 || (count > 0 && delta < count - 1) {
            return Err(DecodeError::InvalidLength {
                offset: at + LAST_OFFSET_DELTA_OFFSET,
                what: "last offset delta",
                value: i64::from(delta),
            });
        }
        Ok(())
    }

    /// The whole batch as bytes, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Size of the whole batch in bytes.
    #[allow(clippy::len_without_is_empty)] // a batch is never empty: it has a header
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        i64::from_be_bytes(field(self.bytes, BASE_OFFSET_OFFSET))
    }

    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }

    /// Offset after this batch: `last_offset + 1`.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The `batchLength` field (bytes after it).
    pub fn batch_length(&self) -> i32 {
        i32::from_be_bytes(field(self.bytes, LENGTH_OFFSET))
    }

    /// Epoch of the leader that appended the batch.
    pub fn partition_leader_epoch(&self) -> i32 {
        i32::from_be_bytes(field(self.bytes, LEADER_EPOCH_OFFSET))
    }

    /// The magic byte (always 2 for a parsed batch).
    pub fn magic(&self) -> i8 {
        i8::from_be_bytes(field(self.bytes, MAGIC_OFFSET))
    }

    /// The stored CRC-32C.
    pub fn crc(&self) -> u32 {
        u32::from_be_bytes(field(self.bytes, CRC_OFFSET))
    }

    /// The attributes field.
    pub fn attributes(&self) -> i16 {
        i16::from_be_bytes(field(self.bytes, ATTRIBUTES_OFFSET))
    }

    /// The compression codec, if the attributes name a known one.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id((self.attributes() & ATTR_COMPRESSION_MASK) as u8)
    }

    /// Whether timestamps are LogAppendTime (attribute bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTR_TIMESTAMP_TYPE != 0
    }

    /// Whether the batch belongs to a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }

    /// Whether this is a control batch (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }

    /// Offset delta of the last record.
    pub fn last_offset_delta(&self) -> i32 {
        i32::from_be_bytes(field(self.bytes, LAST_OFFSET_DELTA_OFFSET))
    }

    /// Timestamp of the first record.
    pub fn base_timestamp(&self) -> i64 {
        i64::from_be_bytes(field(self.bytes, BASE_TIMESTAMP_OFFSET))
    }

    /// Largest timestamp in the batch.
    pub fn max_timestamp(&self) -> i64 {
        i64::from_be_bytes(field(self.bytes, MAX_TIMESTAMP_OFFSET))
    }

    /// Producer id, or -1 for a non-idempotent producer.
    pub fn producer_id(&self) -> i64 {
        i64::from_be_bytes(field(self.bytes, PRODUCER_ID_OFFSET))
    }

    /// Producer epoch, or -1.
    pub fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes(field(self.bytes, PRODUCER_EPOCH_OFFSET))
    }

    /// Sequence number of the first record, or -1.
    pub fn base_sequence(&self) -> i32 {
        i32::from_be_bytes(field(self.bytes, BASE_SEQUENCE_OFFSET))
    }

    /// Sequence number of the last record (wrapping at `i32::MAX` as Kafka does).
    pub fn last_sequence(&self) -> i32 {
        let base = self.base_sequence();
        if base < 0 {
            return base;
        }
        let last = i64::from(base) + i64::from(self.last_offset_delta());
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }

    /// Number of records in the batch.
    pub fn records_count(&self) -> i32 {
        i32::from_be_bytes(field(self.bytes, RECORDS_COUNT_OFFSET))
    }

    /// The records section (compressed if the attributes say so).
    pub fn records_bytes(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// An owned copy of the header fields.
    pub fn header(&self) -> BatchHeader {
        BatchHeader {
            base_offset: self.base_offset(),
            batch_length: self.batch_length(),
            partition_leader_epoch: self.partition_leader_epoch(),
            magic: self.magic(),
            crc: self.crc(),
            attributes: self.attributes(),
            last_offset_delta: self.last_offset_delta(),
            base_timestamp: self.base_timestamp(),
            max_timestamp: self.max_timestamp(),
            producer_id: self.producer_id(),
            producer_epoch: self.producer_epoch(),
            base_sequence: self.base_sequence(),
            records_count: self.records_count(),
        }
    }
}

/// An owned copy of a record batch v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Magic byte.
    pub magic: i8,
    /// CRC-32C of attributes..end.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: i16,
    /// Offset delta of the last record.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// First sequence number, -1 if none.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

/// A mutable view of one record batch, for the rewrites a broker does on append.
///
/// Only fields outside the CRC range can be changed without recomputing it;
/// [`RecordBatchMut::set_log_append_time`] changes covered fields and so recomputes
/// the CRC.
#[derive(Debug)]
pub struct RecordBatchMut<'a> {
    bytes: &'a mut [u8],
}

impl<'a> RecordBatchMut<'a> {
    /// Wraps bytes holding exactly one batch; checks framing as [`RecordBatch::new`].
    pub fn new(bytes: &'a mut [u8]) -> Result<Self, DecodeError> {
        RecordBatch::new(bytes)?;
        Ok(Self { bytes })
    }

    /// A read-only view of the same bytes.
    pub fn as_batch(&self) -> RecordBatch<'_> {
        RecordBatch { bytes: self.bytes }
    }

    fn put(&mut self, at: usize, value: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(at..at + value.len()) {
            dst.copy_from_slice(value);
        }
    }

    /// Sets `baseOffset` (outside the CRC range).
    pub fn set_base_offset(&mut self, offset: i64) {
        self.put(BASE_OFFSET_OFFSET, &offset.to_be_bytes());
    }

    /// Sets `partitionLeaderEpoch` (outside the CRC range).
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        self.put(LEADER_EPOCH_OFFSET, &epoch.to_be_bytes());
    }

    /// Marks the batch as LogAppendTime with `timestamp` as its max timestamp, as a
    /// broker does for topics with `message.timestamp.type=LogAppendTime`, and
    /// recomputes the CRC.
    pub fn set_log_append_time(&mut self, timestamp: i64) {
        let attributes = self.as_batch().attributes() | ATTR_TIMESTAMP_TYPE;
        self.put(ATTRIBUTES_OFFSET, &attributes.to_be_bytes());
        self.put(MAX_TIMESTAMP_OFFSET, &timestamp.to_be_bytes());
        let crc = batch_crc(self.bytes);
        self.put(CRC_OFFSET, &crc.to_be_bytes());
    }
}

/// Iterates over the batches of a concatenated `records` field (as in a Produce
/// request, a Fetch response or a segment file).
///
/// Yields an error and stops at the first batch that does not parse. A partial batch
/// at the very end is reported as [`DecodeError::Truncated`]; a Fetch response may
/// legitimately end with one, which callers reading fetched data may choose to ignore.
#[derive(Debug, Clone)]
pub struct RecordBatches<'a> {
    rest: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> RecordBatches<'a> {
    /// Iterates over the batches in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            rest: buf,
            position: 0,
            failed: false,
        }
    }

    /// Position (in the original buffer) of the next batch.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for RecordBatches<'a> {
    type Item = Result<(usize, RecordBatch<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match RecordBatch::parse_at(self.rest, self.position) {
            Ok((batch, rest)) => {
                let at = self.position;
                self.position += batch.len();
                self.rest = rest;
                Some(Ok((at, batch)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid batch with `count` empty-ish records section of `payload`.
    fn raw_batch(count: i32, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(payload);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
        b[MAGIC_OFFSET] = 2;
        b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
            .copy_from_slice(&(count - 1).to_be_bytes());
        b[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&(-1i64).to_be_bytes());
        b[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn parse_and_validate() {
        let b = raw_batch(3, b"abc");
        let batch = RecordBatch::new(&b).expect("parse");
        batch.validate().expect("valid");
        assert_eq!(batch.records_count(), 3);
        assert_eq!(batch.last_offset_delta(), 2);
        assert_eq!(batch.records_bytes(), b"abc");
        assert_eq!(batch.compression(), Some(Compression::None));
    }

    #[test]
    fn rewrite_outside_crc_keeps_it_valid() {
        let mut b = raw_batch(2, b"xy");
        let mut m = RecordBatchMut::new(&mut b).expect("parse");
        m.set_base_offset(1234);
        m.set_partition_leader_epoch(7);
        let batch = m.as_batch();
        batch.validate().expect("still valid");
        assert_eq!(batch.base_offset(), 1234);
        assert_eq!(batch.last_offset(), 1235);
        assert_eq!(batch.partition_leader_epoch(), 7);
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut b = raw_batch(1, b"");
        let mut m = RecordBatchMut::new(&mut b).expect("parse");
        m.set_log_append_time(99);
        let batch = m.as_batch();
        batch.validate().expect("valid");
        assert!(batch.is_log_append_time());
        assert_eq!(batch.max_timestamp(), 99);
    }

    #[test]
    fn every_byte_in_crc_range_is_covered() {
        let b = raw_batch(2, b"hello");
        for i in ATTRIBUTES_OFFSET..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x01;
            let batch = RecordBatch::new(&c).expect("framing unchanged");
            assert!(
                matches!(batch.validate(), Err(DecodeError::ChecksumMismatch { .. })),
                "flip at {i} not detected"
            );
        }
    }

    #[test]
    fn framing_errors() {
        let b = raw_batch(1, b"z");
        assert!(matches!(
            RecordBatch::parse(&b[..b.len() - 1]),
            Err(DecodeError::Truncated { needed: 1, .. })
        ));
        assert!(matches!(
            RecordBatch::parse(&b[..5]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut bad = b.clone();
        bad[MAGIC_OFFSET] = 1;
        assert!(matches!(
            RecordBatch::parse(&bad),
            Err(DecodeError::UnsupportedMagic { magic: 1, .. })
        ));
        let mut neg = b.clone();
        neg[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            RecordBatch::parse(&neg),
            Err(DecodeError::InvalidLength { .. })
        ));
    }

    #[test]
    fn iterate_concatenated() {
        let mut all = raw_batch(1, b"a");
        all.extend(raw_batch(2, b"bb"));
        let got: Vec<_> = RecordBatches::new(&all)
            .map(|r| r.expect("ok").1.records_count())
            .collect();
        assert_eq!(got, vec![1, 2]);
        let mut torn = all.clone();
        torn.truncate(all.len() - 1);
        let results: Vec<_> = RecordBatches::new(&torn).collect();
        assert_eq!(results.len(), 2);
        assert!(results[1].is_err());
    }
}
