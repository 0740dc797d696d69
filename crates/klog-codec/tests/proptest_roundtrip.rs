//! Property tests over arbitrary records, for every codec.
//!
//! * build -> validate -> decode gives back exactly what was pushed (protocol guide:
//!   "Record": null vs empty keys and values, headers with null values, signed
//!   timestamp deltas as varlongs);
//! * any single-byte change inside the CRC range (attributes to end of batch) is
//!   caught by `validate()` (protocol guide: RecordBatch, "crc ... CRC-32C ... from the
//!   attributes to the end of the batch");
//! * a batch whose bytes were tampered with (and whose CRC was then fixed up, as a
//!   hostile producer would) decodes to an error or to records, never a panic.

use klog_codec::batch::{ATTRIBUTES_OFFSET, CRC_OFFSET};
use klog_codec::{
    BatchBuilder, BatchRecords, Compression, DecodeError, Header, RecordBatch, RecordBatches,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Rec {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

const T0: i64 = 1_700_000_000_000;

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Compressible runs as well as noise, so codecs take both paths.
        proptest::collection::vec(any::<u8>(), 0..max),
        (any::<u8>(), 0..max).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        prop_oneof![
            // Near a realistic clock, with negative and positive deltas ...
            (T0 - 1_000_000..T0 + 1_000_000),
            // ... and anywhere, so deltas need 10-byte varlongs and wrap.
            any::<i64>(),
        ],
        proptest::option::of(bytes(40)),
        proptest::option::of(bytes(300)),
        proptest::collection::vec((bytes(12), proptest::option::of(bytes(30))), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| Rec {
            timestamp,
            key,
            value,
            headers,
        })
}

#[derive(Debug, Clone)]
struct Params {
    base_offset: i64,
    leader_epoch: i32,
    producer: (i64, i16, i32),
    transactional: bool,
}

fn params() -> impl Strategy<Value = Params> {
    (
        0..i64::MAX / 2,
        -1..i32::MAX,
        (any::<i64>(), any::<i16>(), any::<i32>()),
        any::<bool>(),
    )
        .prop_map(
            |(base_offset, leader_epoch, producer, transactional)| Params {
                base_offset,
                leader_epoch,
                producer,
                transactional,
            },
        )
}

fn build(codec: Compression, p: &Params, recs: &[Rec]) -> Vec<u8> {
    let mut b = BatchBuilder::new(Vec::new(), codec);
    b.set_base_offset(p.base_offset)
        .set_partition_leader_epoch(p.leader_epoch)
        .set_producer(p.producer.0, p.producer.1, p.producer.2)
        .set_transactional(p.transactional);
    for r in recs {
        let headers: Vec<Header<'_>> = r
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k,
                value: v.as_deref(),
            })
            .collect();
        b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)
            .expect("push");
    }
    assert_eq!(b.len(), recs.len());
    b.finish().expect("finish")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn build_then_decode_round_trips(
        codec in codec(),
        p in params(),
        recs in proptest::collection::vec(rec(), 1..20),
    ) {
        let bytes = build(codec, &p, &recs);
        let batch = RecordBatch::new(&bytes).expect("framing");
        batch.validate().expect("valid");
        prop_assert_eq!(batch.compression(), Some(codec));
        prop_assert_eq!(batch.base_offset(), p.base_offset);
        prop_assert_eq!(batch.partition_leader_epoch(), p.leader_epoch);
        prop_assert_eq!(batch.producer_id(), p.producer.0);
        prop_assert_eq!(batch.producer_epoch(), p.producer.1);
        prop_assert_eq!(batch.base_sequence(), p.producer.2);
        prop_assert_eq!(batch.is_transactional(), p.transactional);
        prop_assert_eq!(batch.records_count() as usize, recs.len());
        prop_assert_eq!(batch.last_offset_delta() as usize, recs.len() - 1);
        prop_assert_eq!(batch.base_timestamp(), recs[0].timestamp);
        prop_assert_eq!(
            batch.max_timestamp(),
            recs.iter().map(|r| r.timestamp).max().expect("non-empty")
        );

        let records = batch.records().expect("decompress");
        let mut n = 0;
        for (i, (got, want)) in records.iter().zip(&recs).enumerate() {
            let got = got.expect("record decodes");
            prop_assert_eq!(got.offset, p.base_offset + i as i64);
            prop_assert_eq!(got.offset_delta as usize, i);
            prop_assert_eq!(got.timestamp, want.timestamp);
            prop_assert_eq!(got.key, want.key.as_deref());
            prop_assert_eq!(got.value, want.value.as_deref());
            let headers: Vec<_> = got.headers.iter().map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec))).collect();
            prop_assert_eq!(&headers, &want.headers);
            n += 1;
        }
        prop_assert_eq!(n, recs.len());
        // Nothing after the last record.
        prop_assert_eq!(records.iter().count(), recs.len());
    }

    #[test]
    fn any_byte_change_in_crc_range_is_detected(
        codec in codec(),
        p in params(),
        recs in proptest::collection::vec(rec(), 1..5),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = build(codec, &p, &recs);
        let i = ATTRIBUTES_OFFSET + at.index(bytes.len() - ATTRIBUTES_OFFSET);
        bytes[i] ^= flip;
        let batch = RecordBatch::new(&bytes).expect("framing is outside the CRC range");
        let is_mismatch = matches!(batch.validate(), Err(DecodeError::ChecksumMismatch { .. }));
        prop_assert!(is_mismatch, "change at byte {} not detected", i);
    }

    #[test]
    fn tampered_records_never_panic(
        codec in codec(),
        recs in proptest::collection::vec(rec(), 1..5),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = build(codec, &Params { base_offset: 0, leader_epoch: 0, producer: (-1, -1, -1), transactional: false }, &recs);
        for (at, b) in edits {
            // Only the records section and counts: framing errors are covered elsewhere.
            let i = ATTRIBUTES_OFFSET + at.index(bytes.len() - ATTRIBUTES_OFFSET);
            bytes[i] = b;
        }
        let crc = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let batch = RecordBatch::new(&bytes).expect("framing");
        let _ = batch.validate();
        if let Ok(records) = BatchRecords::new(&batch, 1 << 20) {
            let mut count = 0usize;
            for r in records.iter() {
                count += 1;
                if r.is_err() { break; }
            }
            prop_assert!(count <= records.len() + 1);
        }
    }
}

/// Many batches, mixed codecs, one buffer: the layout of a Produce request's
/// `records` or a segment file (protocol guide: "Message sets").
#[test]
fn concatenated_batches_of_every_codec() {
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut buf = Vec::new();
    let mut next = 0i64;
    for (i, codec) in codecs.into_iter().enumerate() {
        let mut b = BatchBuilder::new(&mut buf, codec);
        b.set_base_offset(next);
        for j in 0..=i {
            b.push(
                T0 + j as i64,
                Some(format!("k{i}-{j}").as_bytes()),
                Some(&[b'x'; 100]),
                &[],
            )
            .expect("push");
        }
        b.finish().expect("finish");
        next += i as i64 + 1;
    }
    let mut offsets = Vec::new();
    for item in RecordBatches::new(&buf) {
        let (_, batch) = item.expect("framing");
        batch.validate().expect("valid");
        for r in batch.records().expect("records").iter() {
            offsets.push(r.expect("record").offset);
        }
    }
    assert_eq!(offsets, (0..15).collect::<Vec<_>>());
}
