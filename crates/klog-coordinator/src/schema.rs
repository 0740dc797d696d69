//! The records of the internal `__consumer_offsets` topic, in Kafka's own schemas, and
//! the mapping of a group to the partition that holds its records.
//!
//! Kafka stores committed offsets and group metadata as ordinary records in
//! `__consumer_offsets`; the record key says which kind it is by its version field
//! (Kafka's `OffsetCommitKey`, `GroupMetadataKey`, `OffsetCommitValue` and
//! `GroupMetadataValue` message schemas in `group-coordinator/src/main/resources/
//! common/message`):
//!
//! | key version | key | value |
//! |---|---|---|
//! | 0, 1 | OffsetCommitKey: group, topic, partition | OffsetCommitValue v0-v3 (klog writes v3, or v1 when the commit asked for an explicit retention) |
//! | 2 | GroupMetadataKey: group | GroupMetadataValue v0-v3 (klog writes v3) |
//!
//! A null value is a tombstone: the offset was deleted or expired, or the group was
//! deleted. All encodings are the classic (non-flexible) ones: big-endian integers,
//! `i16`-length strings (`-1` for null) and `i32`-length bytes.
//!
//! Values are encoded by hand here; they are small and fixed, and the broker wraps
//! them into record batches with [`klog_codec::BatchBuilder`] (see [`build_batch`]).

use bytes::Bytes;
use klog_codec::{BatchBuilder, Compression, EncodeError};

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Key version of an offset commit written by klog (`OffsetCommitKey` v1).
pub const OFFSET_KEY_VERSION: i16 = 1;
/// Key version of group metadata (`GroupMetadataKey` v2).
pub const GROUP_KEY_VERSION: i16 = 2;

/// Java's `String.hashCode()`: `h = 31 * h + c` over the UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Kafka's `Utils.abs`: the absolute value, except that `i32::MIN` maps to 0 (Java's
/// `Math.abs(Integer.MIN_VALUE)` is negative).
pub fn kafka_abs(n: i32) -> i32 {
    if n == i32::MIN { 0 } else { n.abs() }
}

/// The `__consumer_offsets` partition that holds `group`'s records, as Kafka computes
/// it (`GroupMetadataManager.partitionFor`): `Utils.abs(groupId.hashCode) % partitions`.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    kafka_abs(java_string_hash(group)) % partitions.max(1)
}

/// Why a `__consumer_offsets` record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The bytes end inside a field.
    #[error("record truncated")]
    Truncated,
    /// A length prefix is negative where null is not allowed, or absurd.
    #[error("invalid length {0}")]
    InvalidLength(i32),
    /// A string is not UTF-8.
    #[error("string is not UTF-8")]
    InvalidUtf8,
    /// A schema version klog does not know.
    #[error("unknown {what} version {version}")]
    UnknownVersion {
        /// Which schema.
        what: &'static str,
        /// The version found.
        version: i16,
    },
    /// The record has no key.
    #[error("record without a key")]
    MissingKey,
}

/// A decoded record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// `OffsetCommitKey`: the committed offset of one partition for one group.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// `GroupMetadataKey`: the membership of one group.
    Group {
        /// Group id.
        group: String,
    },
}

/// `OffsetCommitValue`: one committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The committed offset (the next record the group will read).
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1 (v3+).
    pub leader_epoch: i32,
    /// Client-supplied metadata.
    pub metadata: String,
    /// When the commit happened (ms since the epoch).
    pub commit_timestamp: i64,
    /// Explicit expiry from OffsetCommit v2-v4's `retention_time_ms` (v1 only).
    pub expire_timestamp: Option<i64>,
}

/// One member inside `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member (v3+).
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout (v1+).
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment from the leader.
    pub assignment: Bytes,
}

/// `GroupMetadataValue`: the membership of a group after a generation completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type (`consumer` for consumer groups).
    pub protocol_type: String,
    /// Generation id.
    pub generation: i32,
    /// Selected protocol (assignor), if any.
    pub protocol: Option<String>,
    /// Leader member id, if any.
    pub leader: Option<String>,
    /// When the group entered its current state (v2+), or -1.
    pub current_state_timestamp: i64,
    /// Members.
    pub members: Vec<MemberValue>,
}

/// One record for `__consumer_offsets`: a key and a value (`None`: tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsRecord {
    /// Encoded key.
    pub key: Vec<u8>,
    /// Encoded value, or `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

// ---------------------------------------------------------------------------------
// Encoding

fn put_i16(b: &mut Vec<u8>, v: i16) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_str(b: &mut Vec<u8>, s: &str) {
    // Group ids, topics and member ids are bounded far below 32767 bytes by the
    // request decoder (an i16 length on the wire); clamp defensively.
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    put_i16(b, len as i16);
    b.extend_from_slice(bytes.get(..len).unwrap_or_default());
}
fn put_nullable_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => put_i16(b, -1),
    }
}
fn put_bytes(b: &mut Vec<u8>, v: &[u8]) {
    put_i32(b, i32::try_from(v.len()).unwrap_or(i32::MAX));
    b.extend_from_slice(v);
}

/// Encodes `OffsetCommitKey` v1.
pub fn encode_offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + group.len() + topic.len());
    put_i16(&mut b, OFFSET_KEY_VERSION);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    put_i32(&mut b, partition);
    b
}

/// Encodes `GroupMetadataKey` v2.
pub fn encode_group_key(group: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + group.len());
    put_i16(&mut b, GROUP_KEY_VERSION);
    put_str(&mut b, group);
    b
}

/// Encodes `OffsetCommitValue`: v3 (with leader epoch), or v1 when the value carries
/// an explicit expire timestamp (only v1 has that field).
pub fn encode_offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut b = Vec::with_capacity(32 + v.metadata.len());
    match v.expire_timestamp {
        Some(expire) => {
            put_i16(&mut b, 1);
            put_i64(&mut b, v.offset);
            put_str(&mut b, &v.metadata);
            put_i64(&mut b, v.commit_timestamp);
            put_i64(&mut b, expire);
        }
        None => {
            put_i16(&mut b, 3);
            put_i64(&mut b, v.offset);
            put_i32(&mut b, v.leader_epoch);
            put_str(&mut b, &v.metadata);
            put_i64(&mut b, v.commit_timestamp);
        }
    }
    b
}

/// Encodes `GroupMetadataValue` v3.
pub fn encode_group_value(v: &GroupValue) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    put_i16(&mut b, 3);
    put_str(&mut b, &v.protocol_type);
    put_i32(&mut b, v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    put_i64(&mut b, v.current_state_timestamp);
    put_i32(&mut b, i32::try_from(v.members.len()).unwrap_or(i32::MAX));
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        put_i32(&mut b, m.rebalance_timeout_ms);
        put_i32(&mut b, m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b
}

// ---------------------------------------------------------------------------------
// Decoding

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SchemaError> {
        if self.buf.len() < n {
            return Err(SchemaError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SchemaError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16, SchemaError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, SchemaError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, SchemaError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn nullable_str(&mut self) -> Result<Option<String>, SchemaError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        std::str::from_utf8(bytes)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| SchemaError::InvalidUtf8)
    }
    fn str(&mut self) -> Result<String, SchemaError> {
        self.nullable_str()?.ok_or(SchemaError::InvalidLength(-1))
    }
    fn bytes(&mut self) -> Result<Bytes, SchemaError> {
        let len = self.i32()?;
        if len < 0 {
            return Err(SchemaError::InvalidLength(len));
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

/// Decodes a record key (`OffsetCommitKey` v0/v1 or `GroupMetadataKey` v2).
pub fn decode_key(key: &[u8]) -> Result<RecordKey, SchemaError> {
    let mut r = Reader { buf: key };
    match r.i16()? {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::Group { group: r.str()? }),
        version => Err(SchemaError::UnknownVersion {
            what: "key",
            version,
        }),
    }
}

/// Decodes `OffsetCommitValue` v0-v3.
pub fn decode_offset_value(value: &[u8]) -> Result<OffsetValue, SchemaError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    let offset = r.i64()?;
    let mut v = OffsetValue {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: -1,
        expire_timestamp: None,
    };
    match version {
        0 | 2 => {
            v.metadata = r.str()?;
            v.commit_timestamp = r.i64()?;
        }
        1 => {
            v.metadata = r.str()?;
            v.commit_timestamp = r.i64()?;
            v.expire_timestamp = Some(r.i64()?);
        }
        3 => {
            v.leader_epoch = r.i32()?;
            v.metadata = r.str()?;
            v.commit_timestamp = r.i64()?;
        }
        version => {
            return Err(SchemaError::UnknownVersion {
                what: "OffsetCommitValue",
                version,
            });
        }
    }
    Ok(v)
}

/// Decodes `GroupMetadataValue` v0-v3.
pub fn decode_group_value(value: &[u8]) -> Result<GroupValue, SchemaError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(SchemaError::UnknownVersion {
            what: "GroupMetadataValue",
            version,
        });
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    if count < 0 {
        return Err(SchemaError::InvalidLength(count));
    }
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.str()?;
        let group_instance_id = if version >= 3 {
            r.nullable_str()?
        } else {
            None
        };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = if version >= 1 {
            rebalance_timeout_ms
        } else {
            session_timeout_ms
        };
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// Wraps `records` into one uncompressed record batch v2 stamped `now_ms`, ready for
/// a partition append (which assigns the offsets).
pub fn build_batch(records: &[OffsetsRecord], now_ms: i64) -> Result<Vec<u8>, EncodeError> {
    let mut b = BatchBuilder::new(Vec::new(), Compression::None);
    for r in records {
        b.push(now_ms, Some(&r.key), r.value.as_deref(), &[])?;
    }
    b.finish()
}

/// Why a stored batch could not be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The batch framing, CRC or records are damaged.
    #[error("batch: {0}")]
    Batch(#[from] klog_codec::DecodeError),
    /// A record's key or value does not follow the schemas.
    #[error("record at offset {offset}: {source}")]
    Record {
        /// Offset of the record.
        offset: i64,
        /// What was wrong.
        source: SchemaError,
    },
}

/// Decodes every record of the batches in `bytes` (as read from a partition), calling
/// `f(offset, key, value)` in log order. Control batches (transaction markers) are
/// skipped.
pub fn for_each_record(
    bytes: &[u8],
    mut f: impl FnMut(i64, &[u8], Option<&[u8]>) -> Result<(), SchemaError>,
) -> Result<(), ReplayError> {
    for batch in klog_codec::RecordBatches::new(bytes) {
        let (at, batch) = batch?;
        batch.validate_at(at)?;
        if batch.is_control() {
            continue;
        }
        let records = batch.records()?;
        for record in records.iter() {
            let record = record?;
            let key = record.key.ok_or(ReplayError::Record {
                offset: record.offset,
                source: SchemaError::MissingKey,
            })?;
            f(record.offset, key, record.value).map_err(|source| ReplayError::Record {
                offset: record.offset,
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known values of Java's `String.hashCode()` and the resulting partition with
    /// Kafka's default 50 partitions (`offsets.topic.num.partitions`).
    #[test]
    fn group_to_partition_matches_java() {
        let table: &[(&str, i32, i32)] = &[
            // (group id, String.hashCode(), partition of 50)
            ("", 0, 0),
            ("a", 97, 47),
            ("abc", 96354, 4),
            ("hello", 99162322, 22),
            // Different strings, same hash (the classic Java collision).
            ("Aa", 2112, 12),
            ("BB", 2112, 12),
            // Negative hash: the partition uses the absolute value.
            ("analytics-service", -386_506_898, 48),
            ("klog-test-consumers", -1_592_030_954, 4),
            ("consumer-group-1", 147_483_020, 20),
            // hashCode is Integer.MIN_VALUE: Utils.abs maps it to 0.
            ("polygenelubricants", i32::MIN, 0),
            // Outside the BMP: hashed as two UTF-16 surrogates (0xD83D, 0xDE00).
            ("\u{1F600}", 0xD83D * 31 + 0xDE00, 49),
            // Non-ASCII inside the BMP: one code unit, not its UTF-8 bytes.
            ("é", 0xE9, 33),
        ];
        for &(group, hash, partition) in table {
            assert_eq!(java_string_hash(group), hash, "hash of {group:?}");
            assert_eq!(
                partition_for(group, 50),
                partition,
                "partition of {group:?}"
            );
        }
        assert_eq!(partition_for("anything", 1), 0);
        assert_eq!(kafka_abs(-5), 5);
        assert_eq!(kafka_abs(i32::MIN), 0);
    }

    #[test]
    fn keys_round_trip_and_have_kafka_layout() {
        let k = encode_offset_key("g", "t", 3);
        // version 1, "g", "t", partition 3
        assert_eq!(k, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(
            decode_key(&k),
            Ok(RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            })
        );
        let k = encode_group_key("grp");
        assert_eq!(k, [0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(
            decode_key(&k),
            Ok(RecordKey::Group {
                group: "grp".into()
            })
        );
        assert!(matches!(
            decode_key(&[0, 9, 0, 0]),
            Err(SchemaError::UnknownVersion { version: 9, .. })
        ));
        assert_eq!(decode_key(&[0, 1, 0, 5, b'a']), Err(SchemaError::Truncated));
    }

    #[test]
    fn offset_values_round_trip_in_v3_and_v1() {
        let v3 = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp: 1000,
            expire_timestamp: None,
        };
        let bytes = encode_offset_value(&v3);
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(bytes.len(), 2 + 8 + 4 + 3 + 8);
        assert_eq!(decode_offset_value(&bytes), Ok(v3));
        let v1 = OffsetValue {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 5,
            expire_timestamp: Some(99),
        };
        let bytes = encode_offset_value(&v1);
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(decode_offset_value(&bytes), Ok(v1));
    }

    #[test]
    fn group_value_round_trips() {
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 123,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let bytes = encode_group_value(&v);
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_group_value(&bytes), Ok(v));
        assert!(decode_group_value(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn batches_round_trip_with_tombstones() {
        let records = vec![
            OffsetsRecord {
                key: encode_offset_key("g", "t", 0),
                value: Some(encode_offset_value(&OffsetValue {
                    offset: 10,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp: 1,
                    expire_timestamp: None,
                })),
            },
            OffsetsRecord {
                key: encode_group_key("g"),
                value: None,
            },
        ];
        let batch = build_batch(&records, 1_700_000_000_000).expect("build");
        let mut seen = Vec::new();
        for_each_record(&batch, |offset, k, v| {
            seen.push((offset, decode_key(k)?, v.map(<[u8]>::to_vec)));
            Ok(())
        })
        .expect("replay");
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].2, records[0].value);
        assert_eq!(seen[1].1, RecordKey::Group { group: "g".into() });
        assert_eq!(seen[1].2, None);
    }
}
