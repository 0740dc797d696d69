//! Golden tests: record batches written by kafka-python's own batch builder
//! (`DefaultRecordBatchBuilder`), one per codec, decoded by klog.
//!
//! The fixtures and the script that made them are in `tests/fixtures/`; the expected
//! records below follow the same recipe as `gen_kafka_python.py` (keep them in sync).
//! This checks klog against a real client's bytes rather than its own builder:
//! protocol guide "Message format" (RecordBatch, Record, Header), and kafka-python's
//! choices of xerial-framed snappy and LZ4 frames.

use klog_codec::{Compression, OwnedRecord, RecordBatch, RecordBatches};

const T0: i64 = 1_700_000_000_000;

struct Expected {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(&'static str, Option<Vec<u8>>)>,
}

fn rep(s: &str, n: usize) -> Option<Vec<u8>> {
    Some(s.repeat(n).into_bytes())
}

/// `RECORDS` in gen_kafka_python.py.
fn small_records() -> Vec<Expected> {
    vec![
        Expected {
            offset: 0,
            timestamp: T0,
            key: Some(b"key-0".to_vec()),
            value: rep("value-0 ", 20),
            headers: vec![("trace-id", Some(b"abc".to_vec())), ("empty", Some(vec![]))],
        },
        Expected {
            offset: 1,
            timestamp: T0 + 1,
            key: None,
            value: rep("value-1 ", 20),
            headers: vec![("null-value", None)],
        },
        Expected {
            offset: 2,
            timestamp: T0 + 2,
            key: Some(vec![]),
            value: None,
            headers: vec![],
        },
        Expected {
            offset: 3,
            timestamp: T0 - 1000,
            key: Some(b"key-3".to_vec()),
            value: Some(vec![]),
            headers: vec![("unicode-ключ", Some(vec![0x00, 0xff]))],
        },
        Expected {
            offset: 4,
            timestamp: T0 + 86_400_000,
            key: Some(b"key-4".to_vec()),
            value: rep("value-4 ", 20),
            headers: vec![],
        },
    ]
}

/// `BIG_RECORDS` in gen_kafka_python.py.
fn big_records() -> Vec<Expected> {
    (0..3)
        .map(|i| Expected {
            offset: i,
            timestamp: T0 + i,
            key: Some(format!("big-{i}").into_bytes()),
            value: rep(&format!("block-{i}-"), 2560),
            headers: vec![],
        })
        .collect()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/kafka-python-{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes the single batch in `bytes` and checks header and records.
fn check(bytes: &[u8], codec: Compression, expected: &[Expected]) {
    let batches: Vec<_> = RecordBatches::new(bytes)
        .collect::<Result<_, _>>()
        .expect("framing");
    assert_eq!(batches.len(), 1, "one batch per fixture");
    let batch: RecordBatch<'_> = batches[0].1;
    batch.validate().expect("CRC-32C and header valid");
    // kafka-python silently sends uncompressed data when compression does not help;
    // make sure the fixture really exercises the codec.
    assert_eq!(batch.compression(), Some(codec));
    assert_eq!(batch.records_count() as usize, expected.len());
    assert_eq!(batch.last_offset_delta() as usize, expected.len() - 1);
    assert_eq!(batch.base_offset(), 0);
    assert_eq!(batch.base_timestamp(), expected[0].timestamp);
    assert_eq!(
        batch.max_timestamp(),
        expected.iter().map(|e| e.timestamp).max().expect("records")
    );
    assert_eq!(batch.producer_id(), 1234);
    assert_eq!(batch.producer_epoch(), 5);
    assert_eq!(batch.base_sequence(), 42);
    assert!(!batch.is_transactional());
    assert!(!batch.is_control());
    assert!(!batch.is_log_append_time());

    let records = batch.records().expect("decompress");
    assert_eq!(records.is_decompressed(), codec != Compression::None);
    let got: Vec<OwnedRecord> = records.to_owned_records().expect("decode records");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g.offset, e.offset);
        assert_eq!(g.offset_delta as i64, e.offset);
        assert_eq!(g.timestamp, e.timestamp);
        assert_eq!(g.timestamp_delta, e.timestamp - expected[0].timestamp);
        assert_eq!(g.attributes, 0);
        assert_eq!(g.key.as_deref(), e.key.as_deref(), "key of {}", e.offset);
        assert_eq!(
            g.value.as_deref(),
            e.value.as_deref(),
            "value of {}",
            e.offset
        );
        let headers: Vec<_> = g
            .headers
            .iter()
            .map(|h| {
                (
                    h.as_header().key_str().expect("utf-8 key").to_owned(),
                    h.value.as_ref().map(|v| v.to_vec()),
                )
            })
            .collect();
        let want: Vec<_> = e
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(headers, want, "headers of {}", e.offset);
    }
}

#[test]
fn kafka_python_uncompressed() {
    check(&fixture("none"), Compression::None, &small_records());
}

#[test]
fn kafka_python_gzip() {
    check(&fixture("gzip"), Compression::Gzip, &small_records());
}

#[test]
fn kafka_python_snappy_xerial() {
    let bytes = fixture("snappy");
    let batch = RecordBatch::new(&bytes).expect("parse");
    assert!(
        batch
            .records_bytes()
            .starts_with(&klog_codec::compression::XERIAL_MAGIC),
        "kafka-python frames snappy the xerial way"
    );
    check(&bytes, Compression::Snappy, &small_records());
}

#[test]
fn kafka_python_snappy_xerial_several_blocks() {
    let bytes = fixture("snappy-multiblock");
    let batch = RecordBatch::new(&bytes).expect("parse");
    let stream = batch.records_bytes();
    assert!(stream.starts_with(&klog_codec::compression::XERIAL_MAGIC));
    // Walk the block lengths after the 16-byte header: more than one block.
    let (mut pos, mut blocks) = (16usize, 0);
    while pos < stream.len() {
        let len = i32::from_be_bytes(stream[pos..pos + 4].try_into().expect("4 bytes"));
        pos += 4 + len as usize;
        blocks += 1;
    }
    assert_eq!(pos, stream.len());
    assert!(blocks > 1, "expected several xerial blocks, got {blocks}");
    check(&bytes, Compression::Snappy, &big_records());
}

#[test]
fn kafka_python_lz4_frame() {
    let bytes = fixture("lz4");
    let batch = RecordBatch::new(&bytes).expect("parse");
    // LZ4 frame magic number 0x184D2204, little-endian.
    assert!(batch.records_bytes().starts_with(&[0x04, 0x22, 0x4d, 0x18]));
    check(&bytes, Compression::Lz4, &small_records());
}

#[test]
fn kafka_python_zstd() {
    check(&fixture("zstd"), Compression::Zstd, &small_records());
}

/// Re-encoding kafka-python's records with klog's builder gives the same bytes for
/// the uncompressed batch: both follow the protocol guide's record layout exactly.
#[test]
fn klog_builder_matches_kafka_python_bytes() {
    let bytes = fixture("none");
    let batch = RecordBatch::new(&bytes).expect("parse");
    let records = batch.records().expect("records");
    let mut b = klog_codec::BatchBuilder::new(Vec::new(), Compression::None);
    b.set_producer(1234, 5, 42);
    // kafka-python leaves the leader epoch 0 where the Java client writes -1.
    b.set_partition_leader_epoch(batch.partition_leader_epoch());
    for r in records.iter() {
        b.push_record(&r.expect("decode")).expect("push");
    }
    assert_eq!(b.finish().expect("finish"), bytes);
}
