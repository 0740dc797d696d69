//! Records: the decoded contents of a record batch, kept apart from the wire type.
//!
//! A [`RecordBatch`] is bytes; a [`Record`] is one decoded entry of it. Decoding goes in
//! two steps so that records can borrow from whatever holds their bytes:
//!
//! ```text
//!   RecordBatch ──records()──► BatchRecords ──iter()──► Record<'_> ──into_owned()──► OwnedRecord
//!                 (decompress     (owns the                (borrows keys,
//!                  if needed,      decompressed             values and headers
//!                  capped)         bytes, or borrows        from BatchRecords)
//!                                  the batch's)
//! ```
//!
//! Each record on the wire is (protocol guide: "Record"):
//!
//! ```text
//! length: varint           bytes after this field
//! attributes: int8         unused, 0
//! timestampDelta: varlong  relative to the batch's baseTimestamp
//! offsetDelta: varint      relative to the batch's baseOffset
//! keyLength: varint        -1 = null key
//! key: byte[]
//! valueLength: varint      -1 = null value
//! value: byte[]
//! headers count: varint
//! headers: [headerKeyLength: varint, headerKey: byte[],
//!           headerValueLength: varint (-1 = null), headerValue: byte[]]
//! ```
//!
//! Decoding is strict where Kafka's Java decoder is lenient only by accident: the only
//! negative length meaning null is -1, header keys cannot be null, each record must
//! use exactly its declared length, the batch must hold exactly `recordsCount`
//! records and nothing after them.

use std::borrow::Cow;

use bytes::Bytes;

use crate::batch::{Compression, HEADER_LEN, RecordBatch};
use crate::compression::decompress;
use crate::error::DecodeError;
use crate::varint::{read_varint, read_varlong};

/// Default cap on the decompressed size of one batch's records: 64 MiB.
///
/// Kafka's own limits on a batch (`message.max.bytes`, 1 MiB by default) apply to the
/// compressed form; 64 MiB leaves room for highly compressible data while keeping a
/// hostile batch from exhausting memory. Pick another with
/// [`RecordBatch::records_with_limit`].
pub const DEFAULT_MAX_DECOMPRESSED_LEN: usize = 64 << 20;

/// A header of a record, borrowed from the bytes it was decoded from (or handed to
/// [`crate::BatchBuilder::push`]).
///
/// Kafka header keys are strings, but the wire does not enforce UTF-8 and the Java
/// client decodes invalid sequences leniently, so the key is kept as bytes; use
/// [`Header::key_str`] for the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    /// The header key (never null on the wire).
    pub key: &'a [u8],
    /// The header value; `None` is a null value (length -1).
    pub value: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    /// A header with a string key.
    pub fn new(key: &'a str, value: Option<&'a [u8]>) -> Self {
        Self {
            key: key.as_bytes(),
            value,
        }
    }

    /// The key as UTF-8, as Kafka clients expect it to be.
    pub fn key_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.key)
    }

    /// Copies the header into an [`OwnedHeader`].
    pub fn into_owned(self) -> OwnedHeader {
        OwnedHeader {
            key: Bytes::copy_from_slice(self.key),
            value: self.value.map(Bytes::copy_from_slice),
        }
    }
}

/// A header that owns its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnedHeader {
    /// The header key.
    pub key: Bytes,
    /// The header value; `None` is a null value.
    pub value: Option<Bytes>,
}

impl OwnedHeader {
    /// Borrows the header, e.g. to hand it to [`crate::BatchBuilder::push`].
    pub fn as_header(&self) -> Header<'_> {
        Header {
            key: &self.key,
            value: self.value.as_deref(),
        }
    }
}

/// One decoded record, borrowing its key, value and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Absolute offset: the batch's base offset plus [`Record::offset_delta`].
    pub offset: i64,
    /// Absolute timestamp in ms: base timestamp plus [`Record::timestamp_delta`], or
    /// the batch's max timestamp when the batch is LogAppendTime (as Kafka reports).
    pub timestamp: i64,
    /// Offset relative to the batch's base offset, as stored.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp, as stored.
    pub timestamp_delta: i64,
    /// Record attributes byte (unused by Kafka today, written as 0).
    pub attributes: i8,
    /// The key; `None` is a null key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a null value (a tombstone in compacted topics).
    pub value: Option<&'a [u8]>,
    /// The headers, in wire order.
    pub headers: Vec<Header<'a>>,
}

impl Record<'_> {
    /// Copies the record into an [`OwnedRecord`].
    pub fn into_owned(self) -> OwnedRecord {
        OwnedRecord {
            offset: self.offset,
            timestamp: self.timestamp,
            offset_delta: self.offset_delta,
            timestamp_delta: self.timestamp_delta,
            attributes: self.attributes,
            key: self.key.map(Bytes::copy_from_slice),
            value: self.value.map(Bytes::copy_from_slice),
            headers: self.headers.into_iter().map(Header::into_owned).collect(),
        }
    }
}

/// A decoded record that owns its bytes; see [`Record`] for the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp in ms.
    pub timestamp: i64,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Record attributes byte.
    pub attributes: i8,
    /// The key; `None` is a null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a null value.
    pub value: Option<Bytes>,
    /// The headers, in wire order.
    pub headers: Vec<OwnedHeader>,
}

/// The records section of one batch, decompressed if it was compressed.
///
/// Holds the bytes records borrow from: the batch's own bytes when uncompressed (no
/// copy), or the decompressed buffer.
#[derive(Debug, Clone)]
pub struct BatchRecords<'a> {
    data: Cow<'a, [u8]>,
    /// Position of `data[0]` for error offsets: inside the batch when uncompressed,
    /// inside the decompressed buffer (0) otherwise.
    error_base: usize,
    count: usize,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
}

impl<'a> RecordBatch<'a> {
    /// Decompresses (if needed) the records of this batch, with the default cap
    /// [`DEFAULT_MAX_DECOMPRESSED_LEN`]. Iterate them with [`BatchRecords::iter`].
    ///
    /// Does not check the CRC: call [`RecordBatch::validate`] first on bytes from the
    /// network or disk.
    pub fn records(&self) -> Result<BatchRecords<'a>, DecodeError> {
        BatchRecords::new(self, DEFAULT_MAX_DECOMPRESSED_LEN)
    }

    /// As [`RecordBatch::records`], failing with
    /// [`DecodeError::DecompressedTooLarge`] if the records decompress to more than
    /// `max_decompressed_len` bytes.
    pub fn records_with_limit(
        &self,
        max_decompressed_len: usize,
    ) -> Result<BatchRecords<'a>, DecodeError> {
        BatchRecords::new(self, max_decompressed_len)
    }
}

impl<'a> BatchRecords<'a> {
    /// Prepares the records of `batch` for iteration, decompressing them into a new
    /// buffer of at most `max_decompressed_len` bytes if the batch is compressed.
    ///
    /// Error offsets are relative to the start of the batch.
    pub fn new(batch: &RecordBatch<'a>, max_decompressed_len: usize) -> Result<Self, DecodeError> {
        let codec_id = (batch.attributes() & crate::batch::ATTR_COMPRESSION_MASK) as u8;
        let codec = Compression::from_id(codec_id).ok_or(DecodeError::UnknownCompression {
            offset: 0,
            codec: codec_id,
        })?;
        let count = batch.records_count();
        let count = usize::try_from(count).map_err(|_| DecodeError::InvalidLength {
            offset: crate::batch::RECORDS_COUNT_OFFSET,
            what: "records count",
            value: i64::from(count),
        })?;
        let raw = batch.records_bytes();
        let (data, error_base) = match codec {
            Compression::None => (Cow::Borrowed(raw), HEADER_LEN),
            _ => (
                Cow::Owned(decompress(codec, raw, max_decompressed_len, 0)?),
                0,
            ),
        };
        Ok(Self {
            data,
            error_base,
            count,
            base_offset: batch.base_offset(),
            base_timestamp: batch.base_timestamp(),
            log_append_time: batch.is_log_append_time().then(|| batch.max_timestamp()),
        })
    }

    /// The number of records the batch header declares.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch declares no records.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the records were decompressed into a buffer of their own.
    pub fn is_decompressed(&self) -> bool {
        matches!(self.data, Cow::Owned(_))
    }

    /// The (decompressed) records section.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Iterates over the records in order.
    ///
    /// Yields an error and stops at the first record that does not decode, if the
    /// bytes end before `recordsCount` records, or if bytes follow the last one.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            data: &self.data,
            pos: 0,
            remaining: self.count,
            error_base: self.error_base,
            base_offset: self.base_offset,
            base_timestamp: self.base_timestamp,
            log_append_time: self.log_append_time,
            done: false,
        }
    }

    /// Decodes every record into owned values.
    pub fn to_owned_records(&self) -> Result<Vec<OwnedRecord>, DecodeError> {
        // The declared count is untrusted: a record takes at least 7 bytes, so never
        // reserve more than the data could hold.
        let mut out = Vec::with_capacity(self.count.min(self.data.len() / 7 + 1));
        for record in self.iter() {
            out.push(record?.into_owned());
        }
        Ok(out)
    }
}

impl<'b> IntoIterator for &'b BatchRecords<'_> {
    type Item = Result<Record<'b>, DecodeError>;
    type IntoIter = RecordIter<'b>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the records of a [`BatchRecords`]; see [`BatchRecords::iter`].
#[derive(Debug, Clone)]
pub struct RecordIter<'b> {
    data: &'b [u8],
    pos: usize,
    remaining: usize,
    error_base: usize,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    done: bool,
}

impl<'b> Iterator for RecordIter<'b> {
    type Item = Result<Record<'b>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining == 0 {
            self.done = true;
            if self.pos < self.data.len() {
                return Some(Err(DecodeError::InvalidRecord {
                    offset: self.error_base + self.pos,
                    reason: "bytes after the last record",
                }));
            }
            return None;
        }
        match decode_record(self.data, &mut self.pos) {
            Ok(mut record) => {
                self.remaining -= 1;
                record.offset = self
                    .base_offset
                    .wrapping_add(i64::from(record.offset_delta));
                record.timestamp = match self.log_append_time {
                    Some(t) => t,
                    None => self.base_timestamp.wrapping_add(record.timestamp_delta),
                };
                Some(Ok(record))
            }
            Err(e) => {
                self.done = true;
                Some(Err(rebase(e, self.error_base)))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            // Every remaining record, plus possibly one trailing error.
            (0, Some(self.remaining.saturating_add(1)))
        }
    }
}

/// Moves an error's offset from "within data" to "within the batch".
fn rebase(e: DecodeError, base: usize) -> DecodeError {
    match e {
        DecodeError::Truncated { offset, needed } => DecodeError::Truncated {
            offset: offset + base,
            needed,
        },
        DecodeError::InvalidVarint { offset } => DecodeError::InvalidVarint {
            offset: offset + base,
        },
        DecodeError::InvalidLength {
            offset,
            what,
            value,
        } => DecodeError::InvalidLength {
            offset: offset + base,
            what,
            value,
        },
        DecodeError::InvalidRecord { offset, reason } => DecodeError::InvalidRecord {
            offset: offset + base,
            reason,
        },
        other => other,
    }
}

/// Takes `len` bytes at `*pos`.
fn take<'b>(buf: &'b [u8], pos: &mut usize, len: usize) -> Result<&'b [u8], DecodeError> {
    let start = *pos;
    let end = start.saturating_add(len);
    match buf.get(start..end) {
        Some(s) => {
            *pos = end;
            Ok(s)
        }
        None => Err(DecodeError::Truncated {
            offset: buf.len().max(start),
            needed: end - buf.len().max(start),
        }),
    }
}

/// Reads a varint length and that many bytes; length -1 is `None`.
fn nullable_bytes<'b>(
    buf: &'b [u8],
    pos: &mut usize,
    what: &'static str,
) -> Result<Option<&'b [u8]>, DecodeError> {
    let at = *pos;
    let len = read_varint(buf, pos)?;
    match len {
        -1 => Ok(None),
        n if n < 0 => Err(DecodeError::InvalidLength {
            offset: at,
            what,
            value: i64::from(n),
        }),
        n => take(buf, pos, n as usize).map(Some),
    }
}

/// Decodes one record at `*pos` of `data`, leaving `offset` and `timestamp` as the
/// raw deltas for the caller to make absolute.
fn decode_record<'b>(data: &'b [u8], pos: &mut usize) -> Result<Record<'b>, DecodeError> {
    let start = *pos;
    let len = read_varint(data, pos)?;
    if len < 0 {
        return Err(DecodeError::InvalidLength {
            offset: start,
            what: "record length",
            value: i64::from(len),
        });
    }
    let body_start = *pos;
    let end = body_start.saturating_add(len as usize);
    if end > data.len() {
        return Err(DecodeError::Truncated {
            offset: data.len(),
            needed: end - data.len(),
        });
    }
    // Fields are read from the record's own bytes, so none can run into the next one.
    let body = data.get(..end).unwrap_or(&[]);
    let attributes = take(body, pos, 1)?.first().map_or(0, |&b| b as i8);
    let timestamp_delta = read_varlong(body, pos)?;
    let offset_delta = read_varint(body, pos)?;
    let key = nullable_bytes(body, pos, "key length")?;
    let value = nullable_bytes(body, pos, "value length")?;
    let count_at = *pos;
    let count = read_varint(body, pos)?;
    if count < 0 {
        return Err(DecodeError::InvalidLength {
            offset: count_at,
            what: "header count",
            value: i64::from(count),
        });
    }
    // Untrusted count: a header takes at least 2 bytes.
    let mut headers = Vec::with_capacity((count as usize).min((end - *pos) / 2));
    for _ in 0..count {
        let key_at = *pos;
        let key_len = read_varint(body, pos)?;
        if key_len < 0 {
            return Err(DecodeError::InvalidLength {
                offset: key_at,
                what: "header key length",
                value: i64::from(key_len),
            });
        }
        let key = take(body, pos, key_len as usize)?;
        let value = nullable_bytes(body, pos, "header value length")?;
        headers.push(Header { key, value });
    }
    if *pos != end {
        return Err(DecodeError::InvalidRecord {
            offset: start,
            reason: "record length does not match its fields",
        });
    }
    Ok(Record {
        offset: 0,
        timestamp: 0,
        offset_delta,
        timestamp_delta,
        attributes,
        key,
        value,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{ATTR_TIMESTAMP_TYPE, RecordBatchMut};
    use crate::varint::{put_varint, put_varlong};

    /// Hand-assembled record (protocol guide: "Record"), so decoding is checked
    /// against the spec rather than against our own builder.
    fn record_bytes(
        ts_delta: i64,
        off_delta: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Vec<u8> {
        let mut body = vec![0u8];
        put_varlong(&mut body, ts_delta);
        put_varint(&mut body, off_delta);
        for field in [key, value] {
            match field {
                None => put_varint(&mut body, -1),
                Some(b) => {
                    put_varint(&mut body, b.len() as i32);
                    body.extend_from_slice(b);
                }
            }
        }
        put_varint(&mut body, headers.len() as i32);
        for (k, v) in headers {
            put_varint(&mut body, k.len() as i32);
            body.extend_from_slice(k);
            match v {
                None => put_varint(&mut body, -1),
                Some(b) => {
                    put_varint(&mut body, b.len() as i32);
                    body.extend_from_slice(b);
                }
            }
        }
        let mut out = Vec::new();
        put_varint(&mut out, body.len() as i32);
        out.extend(body);
        out
    }

    /// An uncompressed batch around `records`, with a correct CRC.
    fn batch(base_offset: i64, base_ts: i64, count: i32, records: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(records);
        let len = (b.len() - 12) as i32;
        b[0..8].copy_from_slice(&base_offset.to_be_bytes());
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(count - 1).max(0).to_be_bytes());
        b[27..35].copy_from_slice(&base_ts.to_be_bytes());
        b[35..43].copy_from_slice(&base_ts.to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn decodes_hand_built_records() {
        let mut recs = record_bytes(0, 0, Some(b"k1"), Some(b"v1"), &[]);
        recs.extend(record_bytes(
            -5,
            1,
            None,
            Some(b""),
            &[(b"h", Some(b"x")), (b"n", None)],
        ));
        recs.extend(record_bytes(7, 3, Some(b""), None, &[]));
        let bytes = batch(100, 1_000, 3, &recs);
        let batch = RecordBatch::new(&bytes).expect("parse");
        batch.validate().expect("valid");
        let records = batch.records().expect("records");
        assert!(!records.is_decompressed());
        let got: Vec<_> = records.iter().collect::<Result<_, _>>().expect("decode");
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].offset, got[0].timestamp), (100, 1_000));
        assert_eq!(
            (got[0].key, got[0].value),
            (Some(&b"k1"[..]), Some(&b"v1"[..]))
        );
        assert_eq!((got[1].offset, got[1].timestamp), (101, 995));
        assert_eq!(got[1].key, None);
        assert_eq!(got[1].value, Some(&b""[..]));
        assert_eq!(
            got[1].headers,
            vec![Header::new("h", Some(b"x")), Header::new("n", None)]
        );
        // Offset deltas may skip (compacted batches): offsets follow the deltas.
        assert_eq!((got[2].offset, got[2].timestamp), (103, 1_007));
        assert_eq!((got[2].key, got[2].value), (Some(&b""[..]), None));
    }

    #[test]
    fn log_append_time_overrides_record_timestamps() {
        let recs = record_bytes(3, 0, None, Some(b"v"), &[]);
        let mut bytes = batch(0, 50, 1, &recs);
        RecordBatchMut::new(&mut bytes)
            .expect("parse")
            .set_log_append_time(9_999);
        let batch = RecordBatch::new(&bytes).expect("parse");
        assert_ne!(batch.attributes() & ATTR_TIMESTAMP_TYPE, 0);
        let r = batch
            .records()
            .expect("records")
            .to_owned_records()
            .expect("ok");
        assert_eq!(r[0].timestamp, 9_999);
        assert_eq!(r[0].timestamp_delta, 3);
    }

    #[test]
    fn count_mismatches_are_errors() {
        let one = record_bytes(0, 0, None, Some(b"v"), &[]);
        // Declares two, holds one.
        let bytes = batch(0, 0, 2, &one);
        let b = RecordBatch::new(&bytes).expect("parse");
        let records = b.records().expect("records");
        let results: Vec<_> = records.iter().collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert!(matches!(
            results[1],
            Err(DecodeError::Truncated { offset, .. }) if offset == bytes.len()
        ));
        // Declares one, holds two.
        let mut two = one.clone();
        two.extend_from_slice(&one);
        let bytes = batch(0, 0, 1, &two);
        let b = RecordBatch::new(&bytes).expect("parse");
        let err = b
            .records()
            .expect("records")
            .to_owned_records()
            .expect_err("extra");
        assert_eq!(
            err,
            DecodeError::InvalidRecord {
                offset: HEADER_LEN + one.len(),
                reason: "bytes after the last record"
            }
        );
    }

    #[test]
    fn malformed_records_are_typed_errors() {
        // Record length larger than the fields it holds.
        let mut r = record_bytes(0, 0, None, Some(b"v"), &[]);
        r[0] += 2; // zigzag: +1 in length
        r.push(0);
        let bytes = batch(0, 0, 1, &r);
        let err = RecordBatch::new(&bytes)
            .expect("parse")
            .records()
            .expect("records")
            .to_owned_records()
            .expect_err("length mismatch");
        assert_eq!(
            err,
            DecodeError::InvalidRecord {
                offset: HEADER_LEN,
                reason: "record length does not match its fields"
            }
        );

        // Key length -2: only -1 means null.
        let mut body = vec![0u8, 0, 0];
        put_varint(&mut body, -2);
        let mut r = Vec::new();
        put_varint(&mut r, body.len() as i32);
        r.extend(body);
        let bytes = batch(0, 0, 1, &r);
        let err = RecordBatch::new(&bytes)
            .expect("parse")
            .records()
            .expect("records")
            .to_owned_records()
            .expect_err("bad key length");
        assert_eq!(
            err,
            DecodeError::InvalidLength {
                offset: HEADER_LEN + 4,
                what: "key length",
                value: -2
            }
        );

        // A huge header count in a tiny record must fail, not allocate.
        let mut body = vec![0u8, 0, 0, 1, 1];
        put_varint(&mut body, i32::MAX);
        let mut r = Vec::new();
        put_varint(&mut r, body.len() as i32);
        r.extend(body);
        let bytes = batch(0, 0, 1, &r);
        assert!(matches!(
            RecordBatch::new(&bytes)
                .expect("parse")
                .records()
                .expect("records")
                .to_owned_records(),
            Err(DecodeError::Truncated { .. })
        ));

        // Negative record count in the header.
        let bytes = batch(0, 0, -3, &[]);
        assert!(matches!(
            RecordBatch::new(&bytes).expect("parse").records(),
            Err(DecodeError::InvalidLength {
                what: "records count",
                ..
            })
        ));
    }
}
