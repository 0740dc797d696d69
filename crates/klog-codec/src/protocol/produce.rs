//! Produce requests decoded for appending, by hand.
//!
//! The broker assigns offsets by rewriting each batch's header in place (base
//! offset and leader epoch sit outside the CRC). With the message crate a
//! partition's records are a shared [`bytes::Bytes`] slice of the frame, which
//! would have to be copied before it could be written to. Here the frame is a
//! [`BytesMut`] and every partition's records are split off it, so each is a
//! mutable, non-overlapping view of the frame: no copy, whatever the number of
//! partitions in the request.
//!
//! Served versions are v3 (the first with record batches) to v8 (the last before
//! flexible versions); they share one layout:
//!
//! ```text
//! transactional_id NULLABLE_STRING, acks INT16, timeout_ms INT32,
//! topic_data [name STRING, partition_data [index INT32, records NULLABLE_BYTES]]
//! ```
//!
//! Lengths and counts come from the network: each is checked against the bytes
//! that are actually left before anything is allocated or split.

use bytes::{Buf, BytesMut};

/// The Produce versions written and read by hand in this crate
/// ([`decode_produce`], [`super::client::encode_produce_request`]): v3, the first
/// with record batches, to v8, the last before flexible versions; one layout.
pub const PRODUCE_VERSIONS: std::ops::RangeInclusive<i16> = 3..=8;

/// A Produce request whose records can be rewritten in place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProduceData {
    /// Transactional id (`None`: not transactional).
    pub transactional_id: Option<String>,
    /// `acks`: 0, 1 or -1 (other values are the broker's to refuse).
    pub acks: i16,
    /// How long the broker may wait for `acks`, in ms.
    pub timeout_ms: i32,
    /// Per topic, the partitions' records.
    pub topics: Vec<ProduceTopicData>,
}

/// One topic of a [`ProduceData`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProduceTopicData {
    /// Topic name.
    pub name: String,
    /// Per partition, its records.
    pub partitions: Vec<ProducePartitionData>,
}

/// One partition of a [`ProduceTopicData`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducePartitionData {
    /// Partition index.
    pub index: i32,
    /// The record batches as sent (`None` if the client sent null), a part of the
    /// request frame of its own.
    pub records: Option<BytesMut>,
}

/// Why a Produce body did not decode; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProduceDecodeError(pub String);

struct Reader {
    buf: BytesMut,
    /// Bytes consumed so far, for error messages.
    at: usize,
}

impl Reader {
    fn need(&self, n: usize, what: &str) -> Result<(), ProduceDecodeError> {
        if self.buf.remaining() < n {
            return Err(ProduceDecodeError(format!(
                "{what} at byte {} needs {n} bytes, {} left",
                self.at,
                self.buf.remaining()
            )));
        }
        Ok(())
    }

    fn i16(&mut self, what: &str) -> Result<i16, ProduceDecodeError> {
        self.need(2, what)?;
        self.at += 2;
        Ok(self.buf.get_i16())
    }

    fn i32(&mut self, what: &str) -> Result<i32, ProduceDecodeError> {
        self.need(4, what)?;
        self.at += 4;
        Ok(self.buf.get_i32())
    }

    fn string(&mut self, what: &str, nullable: bool) -> Result<Option<String>, ProduceDecodeError> {
        let len = self.i16(what)?;
        if len < 0 {
            if nullable && len == -1 {
                return Ok(None);
            }
            return Err(ProduceDecodeError(format!(
                "{what} has length {len} at byte {}",
                self.at - 2
            )));
        }
        let len = len as usize;
        self.need(len, what)?;
        let bytes = self.buf.split_to(len);
        self.at += len;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| ProduceDecodeError(format!("{what} is not UTF-8")))
    }

    /// An array count, checked against the bytes left (each element takes at least
    /// `min_element` bytes), so a hostile count allocates nothing.
    fn count(&mut self, what: &str, min_element: usize) -> Result<usize, ProduceDecodeError> {
        let n = self.i32(what)?;
        let Ok(n) = usize::try_from(n) else {
            return Err(ProduceDecodeError(format!("{what} count is {n}")));
        };
        if n.saturating_mul(min_element) > self.buf.remaining() {
            return Err(ProduceDecodeError(format!(
                "{what} count {n} does not fit in the {} bytes left",
                self.buf.remaining()
            )));
        }
        Ok(n)
    }

    fn records(&mut self) -> Result<Option<BytesMut>, ProduceDecodeError> {
        let len = self.i32("records length")?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(len) = usize::try_from(len) else {
            return Err(ProduceDecodeError(format!(
                "records length {len} at byte {}",
                self.at - 4
            )));
        };
        self.need(len, "records")?;
        self.at += len;
        Ok(Some(self.buf.split_to(len)))
    }
}

/// Decodes a Produce request body (after the request header) at `version`.
///
/// Each partition's records are split off `body`, so they share its allocation
/// and can each be mutated. Bytes after the last field are ignored, as the message
/// crate does.
pub fn decode_produce(version: i16, body: BytesMut) -> Result<ProduceData, ProduceDecodeError> {
    if !PRODUCE_VERSIONS.contains(&version) {
        return Err(ProduceDecodeError(format!(
            "Produce v{version} is not decoded here (v3 to v8 are)"
        )));
    }
    let mut r = Reader { buf: body, at: 0 };
    let transactional_id = r.string("transactional id", true)?;
    let acks = r.i16("acks")?;
    let timeout_ms = r.i32("timeout")?;
    // A topic is at least a name length and a partition count; a partition an
    // index and a records length.
    let n_topics = r.count("topic", 6)?;
    let mut topics = Vec::with_capacity(n_topics);
    for _ in 0..n_topics {
        let name = r.string("topic name", false)?.unwrap_or_default();
        let n_parts = r.count("partition", 8)?;
        let mut partitions = Vec::with_capacity(n_parts);
        for _ in 0..n_parts {
            let index = r.i32("partition index")?;
            let records = r.records()?;
            partitions.push(ProducePartitionData { index, records });
        }
        topics.push(ProduceTopicData { name, partitions });
    }
    Ok(ProduceData {
        transactional_id,
        acks,
        timeout_ms,
        topics,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    /// Topics of a Produce request: names with `(partition, records)` pairs.
    pub(crate) type Topics = Vec<(String, Vec<(i32, Option<Vec<u8>>)>)>;

    /// Arbitrary topics; with `nulls`, some partitions carry null records.
    pub(crate) fn topics(nulls: bool) -> impl Strategy<Value = Topics> {
        let records = prop::collection::vec(any::<u8>(), 0..200);
        let records = if nulls {
            prop::option::of(records).boxed()
        } else {
            records.prop_map(Some).boxed()
        };
        prop::collection::vec(
            (
                "[a-zA-Z0-9._-]{0,20}",
                prop::collection::vec((any::<i32>(), records), 0..4),
            ),
            0..4,
        )
    }

    /// The message crate's request for these fields.
    pub(crate) fn request(
        tid: Option<&str>,
        acks: i16,
        timeout: i32,
        t: &Topics,
    ) -> ProduceRequest {
        ProduceRequest::default()
            .with_transactional_id(tid.map(|s| TransactionalId(StrBytes::from_string(s.into()))))
            .with_acks(acks)
            .with_timeout_ms(timeout)
            .with_topic_data(
                t.iter()
                    .map(|(name, parts)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(name.clone())))
                            .with_partition_data(
                                parts
                                    .iter()
                                    .map(|(i, d)| {
                                        PartitionProduceData::default()
                                            .with_index(*i)
                                            .with_records(d.clone().map(Bytes::from))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    }

    fn encode(version: i16, tid: Option<&str>, acks: i16, timeout: i32, t: &Topics) -> BytesMut {
        let mut buf = BytesMut::new();
        request(tid, acks, timeout, t)
            .encode(&mut buf, version)
            .expect("encode");
        buf
    }

    proptest! {
        /// Whatever the message crate encodes, this decodes to the same fields.
        #[test]
        fn decodes_what_the_message_crate_encodes(
            version in 3i16..=8,
            tid in prop::option::of("[a-z]{0,10}"),
            acks in any::<i16>(),
            timeout in any::<i32>(),
            t in topics(true),
        ) {
            let body = encode(version, tid.as_deref(), acks, timeout, &t);
            let got = decode_produce(version, body).expect("decode");
            prop_assert_eq!(got.transactional_id, tid);
            prop_assert_eq!(got.acks, acks);
            prop_assert_eq!(got.timeout_ms, timeout);
            let got: Topics = got
                .topics
                .into_iter()
                .map(|t| {
                    (
                        t.name,
                        t.partitions
                            .into_iter()
                            .map(|p| (p.index, p.records.map(|r| r.to_vec())))
                            .collect(),
                    )
                })
                .collect();
            prop_assert_eq!(got, t);
        }

        /// Every truncation of a valid body is an error, never a panic.
        #[test]
        fn truncated_bodies_are_errors(t in topics(true), cut in any::<prop::sample::Index>()) {
            let body = encode(7, None, 1, 100, &t);
            let cut = cut.index(body.len());
            let short = BytesMut::from(&body[..cut]);
            // Every byte of a body belongs to a field, so any strict prefix is short.
            prop_assert!(decode_produce(7, short).is_err());
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn arbitrary_bytes_never_panic(version in 0i16..=10, bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_produce(version, BytesMut::from(&bytes[..]));
        }
    }

    #[test]
    fn every_served_produce_version_is_decoded_here() {
        for v in -1..=20 {
            if crate::protocol::versions::is_served(0, v) {
                assert!(PRODUCE_VERSIONS.contains(&v), "v{v}");
            }
        }
    }

    #[test]
    fn records_are_disjoint_views_of_the_frame() {
        let t: Topics = vec![
            (
                "a".into(),
                vec![(0, Some(vec![1; 64])), (1, Some(vec![2; 64]))],
            ),
            ("b".into(), vec![(0, None), (5, Some(vec![3; 16]))]),
        ];
        let body = encode(8, None, -1, 30_000, &t);
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        let mut d = decode_produce(8, body).expect("decode");
        for p in d.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            if let Some(r) = &mut p.records {
                assert!(range.contains(&(r.as_ptr() as usize)), "not a copy");
                // Each view can be written to without touching the others.
                r[0] = 0xff;
            }
        }
        assert_eq!(
            d.topics[0].partitions[1].records.as_ref().map(|r| r[1]),
            Some(2)
        );
        assert_eq!(d.topics[1].partitions[0].records, None);
    }

    #[test]
    fn hostile_counts_and_lengths_are_refused_before_allocating() {
        // transactional id null, acks 1, timeout 0, then 2^31-1 topics.
        let mut b = BytesMut::new();
        b.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
        let e = decode_produce(8, b).expect_err("count");
        assert!(e.0.contains("does not fit"), "{e}");
        // One topic "t" with one partition whose records claim 2 GiB.
        let mut b = BytesMut::new();
        b.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b't']);
        b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
        let e = decode_produce(8, b).expect_err("length");
        assert!(e.0.contains("records"), "{e}");
        // Negative lengths other than null.
        let mut b = BytesMut::new();
        b.extend_from_slice(&[0xff, 0xfe]);
        assert!(decode_produce(8, b).is_err());
        assert!(decode_produce(2, BytesMut::new()).is_err());
        assert!(decode_produce(9, BytesMut::new()).is_err());
    }
}
