//! Zero-copy Fetch response encoding (protocol guide: Fetch Response, v4-v11).
//!
//! A Fetch response is mostly record batches copied from segment files. Instead of
//! materialising them, the writer produces a list of [`FetchPart`]s: small encoded
//! byte chunks (headers, partition fields, length prefixes) interleaved with opaque
//! regions `R` that the I/O layer sends itself (with `sendfile`, or by reading the
//! file). This crate never learns what `R` is.
//!
//! ```text
//! v4-v6 : throttle_time_ms [topic]
//! v7-v11: throttle_time_ms error_code session_id [topic]
//! topic : name [partition]
//! partition: index error_code high_watermark last_stable_offset
//!            log_start_offset(v5+) aborted_transactions preferred_read_replica(v11+)
//!            records(i32 length + bytes)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::header::RequestHeader;
use super::request::begin_response;

/// One piece of an encoded Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchPart<R> {
    /// Bytes to write as they are.
    Bytes(Bytes),
    /// A region of stored records, `len` bytes long, for the I/O layer to send.
    Region(R, u64),
}

/// Per-partition fields of a Fetch response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPartitionHeader {
    /// Partition index.
    pub partition_index: i32,
    /// Kafka error code, 0 for none.
    pub error_code: i16,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// Last stable offset (equal to the high watermark without transactions).
    pub last_stable_offset: i64,
    /// Log start offset (v5+).
    pub log_start_offset: i64,
    /// Whether the request asked for read_committed (then the aborted transaction
    /// list is an empty array rather than null).
    pub read_committed: bool,
}

/// Builds a Fetch response as a list of byte chunks and file regions.
#[derive(Debug)]
pub struct FetchResponseWriter<R> {
    version: i16,
    buf: BytesMut,
    /// Split points in `buf` where a region follows, with the region.
    regions: Vec<(usize, R, u64)>,
}

impl<R> FetchResponseWriter<R> {
    /// Starts a response to `header` (Fetch v4-v11) with `topic_count` topics.
    pub fn new(header: &RequestHeader, error_code: i16, session_id: i32, topic_count: i32) -> Self {
        let mut buf = BytesMut::with_capacity(256);
        begin_response(&mut buf, header);
        let version = header.api_version;
        buf.put_i32(0); // throttle_time_ms
        if version >= 7 {
            buf.put_i16(error_code);
            buf.put_i32(session_id);
        }
        buf.put_i32(topic_count);
        Self {
            version,
            buf,
            regions: Vec::new(),
        }
    }

    /// Starts a topic with `partition_count` partitions to follow.
    pub fn topic(&mut self, name: &str, partition_count: i32) {
        let name = name.as_bytes();
        let len = name.len().min(i16::MAX as usize);
        self.buf.put_i16(len as i16);
        self.buf.put_slice(name.get(..len).unwrap_or(name));
        self.buf.put_i32(partition_count);
    }

    /// Adds a partition whose records are the given regions, in order.
    pub fn partition(
        &mut self,
        header: &FetchPartitionHeader,
        records: impl IntoIterator<Item = (R, u64)>,
    ) where
        R: Clone,
    {
        let b = &mut self.buf;
        b.put_i32(header.partition_index);
        b.put_i16(header.error_code);
        b.put_i64(header.high_watermark);
        b.put_i64(header.last_stable_offset);
        if self.version >= 5 {
            b.put_i64(header.log_start_offset);
        }
        b.put_i32(if header.read_committed { 0 } else { -1 });
        if self.version >= 11 {
            b.put_i32(-1); // preferred_read_replica
        }
        let len_at = b.len();
        b.put_i32(0);
        let mut total: u64 = 0;
        for (region, len) in records {
            total += len;
            self.regions.push((self.buf.len(), region, len));
        }
        let total = total.min(i32::MAX as u64) as i32;
        if let Some(prefix) = self.buf.get_mut(len_at..len_at + 4) {
            prefix.copy_from_slice(&total.to_be_bytes());
        }
    }

    /// Adds a partition with an error and no records.
    pub fn partition_error(&mut self, header: &FetchPartitionHeader)
    where
        R: Clone,
    {
        self.partition(header, std::iter::empty());
    }

    /// Finishes the response: fills the size prefix and returns the parts in order.
    pub fn finish(self) -> Vec<FetchPart<R>> {
        let region_bytes: u64 = self.regions.iter().map(|(_, _, len)| len).sum();
        let mut buf = self.buf;
        let size = (buf.len() as u64 - 4 + region_bytes).min(i32::MAX as u64) as i32;
        if let Some(prefix) = buf.get_mut(0..4) {
            prefix.copy_from_slice(&size.to_be_bytes());
        }
        let mut bytes = buf.freeze();
        let mut parts = Vec::with_capacity(self.regions.len() * 2 + 1);
        let mut consumed = 0;
        for (at, region, len) in self.regions {
            let chunk = bytes.split_to(at - consumed);
            consumed = at;
            if !chunk.is_empty() {
                parts.push(FetchPart::Bytes(chunk));
            }
            parts.push(FetchPart::Region(region, len));
        }
        if !bytes.is_empty() {
            parts.push(FetchPart::Bytes(bytes));
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Decodable;

    /// Materialises the parts with regions replaced by the bytes they stand for and
    /// decodes the result with the generated decoder: the two must agree.
    fn materialise(parts: Vec<FetchPart<&'static [u8]>>) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            match p {
                FetchPart::Bytes(b) => out.extend_from_slice(&b),
                FetchPart::Region(r, len) => {
                    assert_eq!(r.len() as u64, len);
                    out.extend_from_slice(r)
                }
            }
        }
        out
    }

    #[test]
    fn matches_generated_decoder_for_every_version() {
        for version in 4..=11 {
            let header = RequestHeader {
                api_key: 1,
                api_version: version,
                correlation_id: 77,
                client_id: None,
            };
            let mut w = FetchResponseWriter::new(&header, 0, 0, 2);
            w.topic("alpha", 2);
            let ph = FetchPartitionHeader {
                partition_index: 0,
                error_code: 0,
                high_watermark: 10,
                last_stable_offset: 10,
                log_start_offset: 3,
                read_committed: false,
            };
            w.partition(&ph, [(&b"abc"[..], 3), (&b"defg"[..], 4)]);
            w.partition_error(&FetchPartitionHeader {
                partition_index: 1,
                error_code: 1,
                ..ph
            });
            w.topic("beta", 1);
            w.partition(
                &FetchPartitionHeader {
                    read_committed: true,
                    ..ph
                },
                [(&b"z"[..], 1)],
            );
            let bytes = materialise(w.finish());
            let size = i32::from_be_bytes(bytes[..4].try_into().expect("4"));
            assert_eq!(size as usize, bytes.len() - 4, "v{version}");
            assert_eq!(&bytes[4..8], &77i32.to_be_bytes());
            let mut body = Bytes::from(bytes[8..].to_vec());
            let resp = FetchResponse::decode(&mut body, version).expect("decodes");
            assert_eq!(resp.responses.len(), 2);
            let p0 = &resp.responses[0].partitions[0];
            assert_eq!(p0.high_watermark, 10);
            assert_eq!(p0.records.as_deref(), Some(&b"abcdefg"[..]));
            if version >= 5 {
                assert_eq!(p0.log_start_offset, 3);
            }
            assert_eq!(resp.responses[0].partitions[1].error_code, 1);
            assert_eq!(
                resp.responses[1].partitions[0].records.as_deref(),
                Some(&b"z"[..])
            );
        }
    }
}
