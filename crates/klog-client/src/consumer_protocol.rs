//! The consumer protocol: what group members put in JoinGroup's protocol metadata
//! (their subscription) and what the leader puts in SyncGroup (each member's
//! assignment). The broker treats both as opaque bytes; every consumer in a group
//! (klog's, the Java client, librdkafka, kafka-python) must agree on them.
//!
//! ```text
//!  Subscription ──encode_subscription(v)──► i16 version + ConsumerProtocolSubscription
//!  bytes from any member ──decode_subscription──► MemberSubscription (klog-assign)
//!  assignment ──encode_assignment(v)──► i16 version + ConsumerProtocolAssignment
//! ```
//!
//! Versions: 0 (topics, user data) is what eager members send, so that every client
//! can read it; cooperative members send 2, which adds the partitions they own
//! (v1, KIP-429) and the generation they owned them in (v2, KIP-792). A newer version
//! than 3 is decoded with the v3 layout: later versions only append fields.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::Decodable;
use klog_assign::{MemberSubscription, TopicPartition};
use klog_codec::protocol::messages::consumer_protocol_assignment;
use klog_codec::protocol::messages::consumer_protocol_subscription;
use klog_codec::protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use klog_codec::protocol::{Encodable, StrBytes};

/// The highest consumer protocol version this crate reads as such.
const MAX_VERSION: i16 = 3;

/// Consumer protocol bytes that do not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerProtocolError {
    /// Shorter than the version prefix, or a negative version.
    #[error("consumer protocol {what}: bad version header")]
    BadVersion {
        /// Subscription or assignment.
        what: &'static str,
    },
    /// The body does not decode at its version.
    #[error("consumer protocol {what} v{version}: {reason}")]
    Malformed {
        /// Subscription or assignment.
        what: &'static str,
        /// The version announced.
        version: i16,
        /// What the decoder reported.
        reason: String,
    },
}

fn with_version(
    version: i16,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), String>,
) -> Result<Bytes, ConsumerProtocolError> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    encode(&mut buf).map_err(|reason| ConsumerProtocolError::Malformed {
        what: "encoding",
        version,
        reason,
    })?;
    Ok(buf.freeze())
}

fn decode_body<T: Decodable>(
    what: &'static str,
    bytes: &Bytes,
) -> Result<(i16, T), ConsumerProtocolError> {
    if bytes.len() < 2 {
        return Err(ConsumerProtocolError::BadVersion { what });
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version < 0 {
        return Err(ConsumerProtocolError::BadVersion { what });
    }
    let mut body = bytes.slice(2..);
    let read = version.min(MAX_VERSION);
    // The message crate allocates an array's announced length up front: walk the
    // layout first so that a huge count in a short message is an error, not an abort.
    let layout_ok = match what {
        "subscription" => check_subscription(&body, read),
        _ => check_assignment(&body),
    };
    if layout_ok.is_none() {
        return Err(ConsumerProtocolError::Malformed {
            what,
            version,
            reason: "truncated or impossible lengths".to_owned(),
        });
    }
    // These bytes come from other group members; a decoder panic must not take the
    // consumer down.
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::decode(&mut body, read)));
    match decoded {
        Ok(Ok(v)) => Ok((version, v)),
        Ok(Err(e)) => Err(ConsumerProtocolError::Malformed {
            what,
            version,
            reason: e.to_string(),
        }),
        Err(_) => Err(ConsumerProtocolError::Malformed {
            what,
            version,
            reason: "decoder panicked".to_owned(),
        }),
    }
}

/// A bounds-checked reader over the non-flexible consumer protocol layouts.
struct Walk<'a>(&'a [u8]);

impl Walk<'_> {
    fn take(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }

    fn int(&mut self, n: usize) -> Option<i64> {
        let b = self.0.get(..n)?;
        let v = b.iter().fold(0i64, |acc, &x| (acc << 8) | i64::from(x));
        self.take(n)?;
        // Sign-extend.
        let shift = 64 - 8 * n as u32;
        Some((v << shift) >> shift)
    }

    /// A string (i16 length, -1 = null).
    fn string(&mut self) -> Option<()> {
        match self.int(2)? {
            -1 => Some(()),
            n if n >= 0 => self.take(n as usize),
            _ => None,
        }
    }

    /// Nullable bytes (i32 length, -1 = null).
    fn bytes(&mut self) -> Option<()> {
        match self.int(4)? {
            -1 => Some(()),
            n if n >= 0 => self.take(n as usize),
            _ => None,
        }
    }

    /// An array whose elements take at least `min` bytes each.
    fn array(
        &mut self,
        min: usize,
        mut element: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        let n = self.int(4)?;
        if n == -1 {
            return Some(());
        }
        let n = usize::try_from(n).ok()?;
        if n.checked_mul(min)? > self.0.len() {
            return None;
        }
        (0..n).try_for_each(|_| element(self))
    }

    /// `{topic: string, partitions: [i32]}`.
    fn topic_partitions(&mut self) -> Option<()> {
        self.string()?;
        self.array(4, |w| w.take(4))
    }
}

fn check_subscription(body: &[u8], version: i16) -> Option<()> {
    let mut w = Walk(body);
    w.array(2, Walk::string)?;
    w.bytes()?;
    if version >= 1 {
        w.array(6, Walk::topic_partitions)?;
    }
    if version >= 2 {
        w.take(4)?;
    }
    if version >= 3 {
        w.string()?;
    }
    Some(())
}

fn check_assignment(body: &[u8]) -> Option<()> {
    // Assignment v0-v3 share one layout.
    let mut w = Walk(body);
    w.array(6, Walk::topic_partitions)?;
    w.bytes()
}

/// Groups partitions by topic, topics and partitions sorted.
fn by_topic(partitions: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut m: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        m.entry(tp.topic.as_str()).or_default().push(tp.partition);
    }
    for v in m.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    m
}

/// Encodes a member's subscription at `version` (0 to 3). `owned` and `generation`
/// are only carried from v1 and v2 on.
pub fn encode_subscription(
    version: i16,
    topics: &[String],
    owned: &[TopicPartition],
    generation: i32,
) -> Result<Bytes, ConsumerProtocolError> {
    let mut sorted = topics.to_vec();
    sorted.sort();
    sorted.dedup();
    let s = ConsumerProtocolSubscription::default()
        .with_topics(sorted.into_iter().map(StrBytes::from_string).collect())
        .with_owned_partitions(
            by_topic(owned)
                .into_iter()
                .map(|(t, ps)| {
                    consumer_protocol_subscription::TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_owned())))
                        .with_partitions(ps)
                })
                .collect(),
        )
        .with_generation_id(generation);
    with_version(version, |buf| {
        s.encode(buf, version).map_err(|e| e.to_string())
    })
}

/// Decodes one member's JoinGroup metadata into what the assignors take.
pub fn decode_subscription(
    member_id: &str,
    group_instance_id: Option<&str>,
    metadata: &Bytes,
) -> Result<MemberSubscription, ConsumerProtocolError> {
    let (_, s): (i16, ConsumerProtocolSubscription) = decode_body("subscription", metadata)?;
    Ok(MemberSubscription {
        member_id: member_id.to_owned(),
        group_instance_id: group_instance_id.map(str::to_owned),
        topics: s.topics.iter().map(|t| t.to_string()).collect(),
        owned_partitions: s
            .owned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|&p| TopicPartition::new(t.topic.0.to_string(), p))
            })
            .collect(),
        generation: s.generation_id,
    })
}

/// Encodes one member's assignment at `version` (0 to 3).
pub fn encode_assignment(
    version: i16,
    partitions: &[TopicPartition],
) -> Result<Bytes, ConsumerProtocolError> {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic(partitions)
            .into_iter()
            .map(|(t, ps)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_string(t.to_owned())))
                    .with_partitions(ps)
            })
            .collect(),
    );
    with_version(version, |buf| {
        a.encode(buf, version).map_err(|e| e.to_string())
    })
}

/// Decodes the assignment SyncGroup handed back. Empty bytes (what a coordinator
/// sends a member the leader gave nothing, or when the group is rebalancing) mean no
/// partitions.
pub fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>, ConsumerProtocolError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (_, a): (i16, ConsumerProtocolAssignment) = decode_body("assignment", bytes)?;
    let mut out: Vec<TopicPartition> = a
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|&p| TopicPartition::new(t.topic.0.to_string(), p))
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(v: &[(&str, i32)]) -> Vec<TopicPartition> {
        v.iter().map(|&(t, p)| TopicPartition::new(t, p)).collect()
    }

    #[test]
    fn subscription_round_trips_at_every_version() {
        let owned = tps(&[("b", 1), ("a", 2), ("a", 0)]);
        for version in 0..=3 {
            let bytes =
                encode_subscription(version, &["b".into(), "a".into()], &owned, 7).expect("enc");
            assert_eq!(i16::from_be_bytes([bytes[0], bytes[1]]), version);
            let m = decode_subscription("m1", Some("i1"), &bytes).expect("decode");
            assert_eq!(m.topics, vec!["a", "b"]);
            assert_eq!(m.group_instance_id.as_deref(), Some("i1"));
            if version >= 1 {
                assert_eq!(m.owned_partitions, tps(&[("a", 0), ("a", 2), ("b", 1)]));
            } else {
                assert!(m.owned_partitions.is_empty());
            }
            assert_eq!(m.generation, if version >= 2 { 7 } else { -1 });
        }
    }

    /// The Java client's v0 subscription for topics ["t"] with no user data, byte for
    /// byte (ConsumerProtocol: version i16, array of strings, nullable bytes).
    #[test]
    fn v0_subscription_matches_the_java_layout() {
        let bytes = encode_subscription(0, &["t".into()], &[], -1).expect("enc");
        assert_eq!(
            &bytes[..],
            &[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn assignment_round_trips_and_empty_means_nothing() {
        let parts = tps(&[("t", 3), ("s", 0), ("t", 1)]);
        for version in 0..=3 {
            let bytes = encode_assignment(version, &parts).expect("enc");
            assert_eq!(
                decode_assignment(&bytes).expect("dec"),
                tps(&[("s", 0), ("t", 1), ("t", 3)])
            );
        }
        assert!(decode_assignment(&Bytes::new()).expect("empty").is_empty());
    }

    #[test]
    fn newer_versions_decode_with_the_newest_known_layout() {
        let mut bytes =
            BytesMut::from(&encode_subscription(3, &["t".into()], &[], 4).expect("e")[..]);
        bytes[1] = 9; // version 9, with a field we do not know appended
        bytes.put_i32(12345);
        let m = decode_subscription("m", None, &bytes.freeze()).expect("decode");
        assert_eq!(m.topics, vec!["t"]);
        assert_eq!(m.generation, 4);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            &b""[..],
            &b"\x00"[..],
            &b"\xff\xff"[..],
            &b"\x00\x00\x7f\xff\xff\xff"[..],
        ] {
            assert!(decode_subscription("m", None, &Bytes::copy_from_slice(junk)).is_err());
        }
        assert!(decode_assignment(&Bytes::from_static(b"\x00\x00\x00\x00\x00\x09")).is_err());
    }
}
