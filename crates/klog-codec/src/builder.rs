//! Building record batches in place.
//!
//! [`BatchBuilder`] appends one batch to a caller's buffer (a `Vec<u8>`, a
//! [`bytes::BytesMut`], or `&mut` either), so a producer can write several batches
//! back to back into the `records` field of a Produce request without copying them
//! again:
//!
//! ```text
//!  new(buf)          push(..) × n                          finish()
//!  ┌──────────┐      ┌──────────┬───┬───┬───┐              ┌──────────┬───────────┐
//!  │ 61 zero  │ ───► │ reserved │ r │ r │ r │ ──────────►  │ header + │ records   │
//!  │ bytes    │      │ header   │   │   │   │  (none)      │ CRC-32C  │ as pushed │
//!  └──────────┘      └──────────┴───┴───┴───┘              └──────────┴───────────┘
//!
//!  compressed: records go to a scratch buffer, finish() compresses it straight after
//!  the reserved header, then fills the header in.
//! ```
//!
//! Uncompressed records are encoded once, directly at their final place; the header
//! (lengths, last offset delta, max timestamp, count, CRC-32C) is written last.
//! Offsets are assigned as deltas 0, 1, 2, …; the base timestamp is the first record's
//! timestamp, as the Java producer does.
//!
//! ```
//! use klog_codec::{BatchBuilder, Compression, Header, RecordBatch};
//!
//! let mut b = BatchBuilder::new(Vec::new(), Compression::Lz4);
//! b.set_producer(7, 0, 42);
//! b.push(1_700_000_000_000, Some(b"key"), Some(b"value"), &[Header::new("trace", Some(b"1"))])?;
//! b.push(1_700_000_000_005, None, None, &[])?;
//! let bytes = b.finish()?;
//!
//! let batch = RecordBatch::new(&bytes)?;
//! batch.validate()?;
//! let records = batch.records()?.to_owned_records()?;
//! assert_eq!(records[1].timestamp, 1_700_000_000_005);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::BufMut;

use crate::batch::{
    ATTR_CONTROL, ATTR_TRANSACTIONAL, ATTRIBUTES_OFFSET, CRC_OFFSET, Compression, HEADER_LEN,
    LOG_OVERHEAD, MAGIC_V2,
};
pub use crate::buf::BatchBuf;
use crate::compression::compress_into;
use crate::error::EncodeError;
use crate::records::{Header, Record};
use crate::varint::{put_varint, put_varlong, varint_len, varlong_len};

/// Length as the `i32` the wire stores, or [`EncodeError::TooLarge`].
fn wire_len(len: usize, what: &'static str) -> Result<i32, EncodeError> {
    i32::try_from(len).map_err(|_| EncodeError::TooLarge { what, len })
}

fn nullable_len(field: Option<&[u8]>, what: &'static str) -> Result<usize, EncodeError> {
    Ok(match field {
        None => 1,
        Some(b) => varint_len(wire_len(b.len(), what)?) + b.len(),
    })
}

/// Size of a record's body (everything after its length varint).
fn body_len(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> Result<usize, EncodeError> {
    let mut len = 1 // attributes
        + varlong_len(timestamp_delta)
        + varint_len(offset_delta)
        + nullable_len(key, "key")?
        + nullable_len(value, "value")?
        + varint_len(wire_len(headers.len(), "header count")?);
    for h in headers {
        len += varint_len(wire_len(h.key.len(), "header key")?) + h.key.len();
        len += nullable_len(h.value, "header value")?;
    }
    Ok(len)
}

/// Encoded size of one record, its length prefix included (protocol guide: "Record").
///
/// A producer can use it to decide whether a record still fits a batch of
/// `batch.size` bytes before pushing it.
pub fn encoded_record_size(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> Result<usize, EncodeError> {
    let body = body_len(timestamp_delta, offset_delta, key, value, headers)?;
    Ok(varint_len(wire_len(body, "record")?) + body)
}

#[inline]
fn put_nullable<B: BufMut + ?Sized>(out: &mut B, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(b) => {
            // Lengths were checked by `body_len`.
            put_varint(out, b.len() as i32);
            out.put_slice(b);
        }
    }
}

/// Writes one record whose body size `body` was computed by `body_len`.
#[inline]
fn write_record<B: BatchBuf + ?Sized>(
    out: &mut B,
    body: usize,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) {
    out.reserve(body + crate::varint::MAX_VARINT_LEN);
    put_varint(out, body as i32);
    out.put_u8(0); // attributes: unused
    put_varlong(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_nullable(out, key);
    put_nullable(out, value);
    put_varint(out, headers.len() as i32);
    for h in headers {
        put_varint(out, h.key.len() as i32);
        out.put_slice(h.key);
        put_nullable(out, h.value);
    }
}

/// Builds one record batch v2 at the end of a buffer; see the [module docs](self).
///
/// Defaults: base offset 0 (the broker assigns offsets), partition leader epoch -1,
/// no producer id/epoch/sequence (-1), not transactional, CreateTime timestamps.
///
/// End every builder with [`BatchBuilder::finish`] or [`BatchBuilder::abandon`]:
/// merely dropping one that borrows its buffer leaves the reserved header and any
/// pushed records in that buffer.
#[derive(Debug)]
pub struct BatchBuilder<B: BatchBuf = Vec<u8>> {
    buf: B,
    /// Where this batch's header starts in `buf`.
    start: usize,
    compression: Compression,
    level: Option<i32>,
    /// Uncompressed records when `compression` is not `None`.
    scratch: Vec<u8>,
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl<B: BatchBuf> BatchBuilder<B> {
    /// Starts a batch at the end of `buf`, reserving its header.
    pub fn new(mut buf: B, compression: Compression) -> Self {
        let start = buf.len();
        buf.resize(start + HEADER_LEN, 0);
        Self {
            buf,
            start,
            compression,
            level: None,
            scratch: Vec::new(),
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
        }
    }

    /// Sets `baseOffset` (a producer leaves it 0; the broker rewrites it).
    pub fn set_base_offset(&mut self, base_offset: i64) -> &mut Self {
        self.base_offset = base_offset;
        self
    }

    /// Sets `partitionLeaderEpoch` (-1 from producers).
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) -> &mut Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Sets the idempotent-producer fields: `producerId`, `producerEpoch` and the
    /// `baseSequence` of the first record.
    pub fn set_producer(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> &mut Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction (attribute bit 4).
    pub fn set_transactional(&mut self, transactional: bool) -> &mut Self {
        self.set_attribute(ATTR_TRANSACTIONAL, transactional)
    }

    /// Marks the batch as a control batch (attribute bit 5), as used for
    /// transaction markers.
    pub fn set_control(&mut self, control: bool) -> &mut Self {
        self.set_attribute(ATTR_CONTROL, control)
    }

    fn set_attribute(&mut self, bit: i16, on: bool) -> &mut Self {
        if on {
            self.attributes |= bit;
        } else {
            self.attributes &= !bit;
        }
        self
    }

    /// Sets the compression level: gzip 0-9 (default 6), zstd 1-22 (default 3).
    /// Ignored by snappy and LZ4; `None` restores the default.
    pub fn set_compression_level(&mut self, level: Option<i32>) -> &mut Self {
        self.level = level;
        self
    }

    /// The codec the batch will be written with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch so far before compression: header plus encoded records.
    pub fn uncompressed_size(&self) -> usize {
        HEADER_LEN + self.records_len()
    }

    fn records_len(&self) -> usize {
        match self.compression {
            Compression::None => self.buf.len() - self.start - HEADER_LEN,
            _ => self.scratch.len(),
        }
    }

    /// Appends a record with the next offset delta.
    ///
    /// `timestamp` is absolute (ms since the epoch); it may be smaller than earlier
    /// ones. Fails, leaving the batch unchanged, if a length does not fit the format
    /// or the records would exceed `i32::MAX` bytes.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<(), EncodeError> {
        let offset_delta = self.count;
        if offset_delta == i32::MAX {
            return Err(EncodeError::TooManyRecords);
        }
        let base = if offset_delta == 0 {
            timestamp
        } else {
            self.base_timestamp
        };
        // Wrapping keeps extreme timestamps exact: decoding adds the delta back with
        // wrapping arithmetic, as Kafka's Java code does with plain `long`s.
        let timestamp_delta = timestamp.wrapping_sub(base);
        let body = body_len(timestamp_delta, offset_delta, key, value, headers)?;
        let size = varint_len(wire_len(body, "record")?) + body;
        let total = self.uncompressed_size() + size - LOG_OVERHEAD;
        wire_len(total, "batch")?;

        match self.compression {
            Compression::None => write_record(
                &mut self.buf,
                body,
                timestamp_delta,
                offset_delta,
                key,
                value,
                headers,
            ),
            _ => write_record(
                &mut self.scratch,
                body,
                timestamp_delta,
                offset_delta,
                key,
                value,
                headers,
            ),
        }
        if offset_delta == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        } else {
            self.max_timestamp = self.max_timestamp.max(timestamp);
        }
        self.count += 1;
        Ok(())
    }

    /// Appends a decoded record's timestamp, key, value and headers (its offset is not
    /// kept: the record gets the next offset delta).
    pub fn push_record(&mut self, record: &Record<'_>) -> Result<(), EncodeError> {
        self.push(record.timestamp, record.key, record.value, &record.headers)
    }

    /// Compresses the records if asked, writes the header and CRC-32C, and returns the
    /// buffer with the finished batch at its end.
    ///
    /// Fails with [`EncodeError::Empty`] if no record was pushed (use
    /// [`BatchBuilder::abandon`] to get the buffer back instead). On any error a
    /// borrowed buffer (`&mut Vec<u8>`, `&mut BytesMut`) is left as it was before
    /// [`BatchBuilder::new`].
    pub fn finish(mut self) -> Result<B, EncodeError> {
        match self.write_header() {
            Ok(()) => Ok(self.buf),
            Err(e) => {
                self.buf.truncate(self.start);
                Err(e)
            }
        }
    }

    /// Compresses if needed and fills in the reserved header.
    fn write_header(&mut self) -> Result<(), EncodeError> {
        if self.count == 0 {
            return Err(EncodeError::Empty);
        }
        if self.compression != Compression::None {
            compress_into(self.compression, self.level, &self.scratch, &mut self.buf)?;
        }
        let batch_len = self.buf.len() - self.start;
        let length_field = wire_len(batch_len - LOG_OVERHEAD, "batch")?;

        let mut header = [0u8; HEADER_LEN];
        {
            // `&mut [u8]` as BufMut writes big-endian and advances; the header is
            // exactly HEADER_LEN bytes, so these puts always fit.
            let mut w: &mut [u8] = &mut header;
            w.put_i64(self.base_offset);
            w.put_i32(length_field);
            w.put_i32(self.partition_leader_epoch);
            w.put_i8(MAGIC_V2);
            w.put_u32(0); // CRC, filled below
            w.put_i16(self.attributes | i16::from(self.compression.id()));
            w.put_i32(self.count - 1);
            w.put_i64(self.base_timestamp);
            w.put_i64(self.max_timestamp);
            w.put_i64(self.producer_id);
            w.put_i16(self.producer_epoch);
            w.put_i32(self.base_sequence);
            w.put_i32(self.count);
        }
        let records = self
            .buf
            .as_ref()
            .get(self.start + HEADER_LEN..)
            .unwrap_or(&[]);
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(header.get(ATTRIBUTES_OFFSET..).unwrap_or(&[])),
            records,
        );
        if let Some(dst) = header.get_mut(CRC_OFFSET..CRC_OFFSET + 4) {
            dst.copy_from_slice(&crc.to_be_bytes());
        }
        if let Some(dst) = self
            .buf
            .as_mut()
            .get_mut(self.start..self.start + HEADER_LEN)
        {
            dst.copy_from_slice(&header);
        }
        Ok(())
    }

    /// Drops the batch under construction and returns the buffer as it was before
    /// [`BatchBuilder::new`].
    pub fn abandon(mut self) -> B {
        self.buf.truncate(self.start);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    use crate::batch::{RecordBatch, RecordBatches};
    use crate::error::DecodeError;

    #[test]
    fn header_fields_are_written() {
        let mut b = BatchBuilder::new(Vec::new(), Compression::None);
        b.set_base_offset(1000)
            .set_partition_leader_epoch(4)
            .set_producer(77, 3, 500)
            .set_transactional(true);
        b.push(200, Some(b"a"), Some(b"1"), &[]).expect("push");
        b.push(150, None, Some(b"2"), &[]).expect("push");
        b.push(300, Some(b"c"), None, &[]).expect("push");
        assert_eq!(b.len(), 3);
        let bytes = b.finish().expect("finish");
        let batch = RecordBatch::new(&bytes).expect("parse");
        batch.validate().expect("valid");
        let h = batch.header();
        assert_eq!(h.base_offset, 1000);
        assert_eq!(h.batch_length as usize, bytes.len() - LOG_OVERHEAD);
        assert_eq!(h.partition_leader_epoch, 4);
        assert_eq!(h.magic, 2);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 200);
        assert_eq!(h.max_timestamp, 300);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (77, 3, 500)
        );
        assert_eq!(h.records_count, 3);
        assert!(batch.is_transactional());
        assert!(!batch.is_control());
        assert_eq!(batch.last_sequence(), 502);
        let recs = batch
            .records()
            .expect("records")
            .to_owned_records()
            .expect("ok");
        let offsets: Vec<_> = recs.iter().map(|r| (r.offset, r.timestamp)).collect();
        assert_eq!(offsets, [(1000, 200), (1001, 150), (1002, 300)]);
    }

    #[test]
    fn defaults_match_a_plain_producer() {
        let mut b = BatchBuilder::new(Vec::new(), Compression::Gzip);
        b.push(5, None, Some(b"v"), &[]).expect("push");
        let bytes = b.finish().expect("finish");
        let h = RecordBatch::new(&bytes).expect("parse").header();
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        assert_eq!(h.attributes, 1); // gzip, CreateTime, not transactional
    }

    /// The uncompressed record bytes are byte-for-byte the protocol guide's layout.
    #[test]
    fn uncompressed_record_layout() {
        let mut b = BatchBuilder::new(Vec::new(), Compression::None);
        b.push(10, Some(b"k"), Some(b"vv"), &[Header::new("h", None)])
            .expect("push");
        let bytes = b.finish().expect("finish");
        assert_eq!(
            &bytes[HEADER_LEN..],
            &[
                0x18, // length 12, zigzag
                0x00, // attributes
                0x00, // timestamp delta 0
                0x00, // offset delta 0
                0x02, b'k', // key length 1
                0x04, b'v', b'v', // value length 2
                0x02, // 1 header
                0x02, b'h', // header key length 1
                0x01, // null header value
            ][..]
        );
        assert_eq!(
            encoded_record_size(0, 0, Some(b"k"), Some(b"vv"), &[Header::new("h", None)]),
            Ok(bytes.len() - HEADER_LEN)
        );
    }

    #[test]
    fn appends_after_existing_bytes_in_any_buffer() {
        let mut buf = BytesMut::new();
        for (i, codec) in [Compression::None, Compression::Zstd, Compression::Snappy]
            .into_iter()
            .enumerate()
        {
            let mut b = BatchBuilder::new(&mut buf, codec);
            b.set_base_offset(i as i64 * 10);
            b.push(i as i64, Some(b"key"), Some(b"value"), &[])
                .expect("push");
            b.finish().expect("finish");
        }
        let batches: Vec<_> = RecordBatches::new(&buf)
            .map(|r| r.expect("parse").1)
            .collect();
        assert_eq!(batches.len(), 3);
        for (i, batch) in batches.iter().enumerate() {
            batch.validate().expect("valid");
            assert_eq!(batch.base_offset(), i as i64 * 10);
        }
    }

    #[test]
    fn empty_and_abandoned() {
        let b = BatchBuilder::new(vec![1, 2, 3], Compression::None);
        assert_eq!(b.finish().expect_err("empty"), EncodeError::Empty);
        let mut b = BatchBuilder::new(vec![1, 2, 3], Compression::Lz4);
        b.push(0, None, None, &[]).expect("push");
        assert_eq!(b.abandon(), vec![1, 2, 3]);
        // A borrowed buffer is restored when finish fails.
        let mut buf = vec![9u8; 5];
        let b = BatchBuilder::new(&mut buf, Compression::None);
        assert_eq!(b.finish().expect_err("empty"), EncodeError::Empty);
        assert_eq!(buf, vec![9u8; 5]);
        let mut b = BatchBuilder::new(&mut buf, Compression::None);
        b.push(0, None, Some(b"v"), &[]).expect("push");
        b.abandon();
        assert_eq!(buf, vec![9u8; 5]);
    }

    #[test]
    fn control_flag_and_extreme_timestamps() {
        let mut b = BatchBuilder::new(Vec::new(), Compression::None);
        b.set_control(true)
            .set_transactional(true)
            .set_control(false);
        b.push(i64::MAX, None, None, &[]).expect("push");
        b.push(i64::MIN, None, None, &[]).expect("push");
        let bytes = b.finish().expect("finish");
        let batch = RecordBatch::new(&bytes).expect("parse");
        assert!(!batch.is_control());
        assert!(batch.is_transactional());
        let ts: Vec<_> = batch
            .records()
            .expect("records")
            .iter()
            .map(|r| r.map(|r| r.timestamp))
            .collect::<Result<_, DecodeError>>()
            .expect("decode");
        assert_eq!(ts, [i64::MAX, i64::MIN]);
    }
}
