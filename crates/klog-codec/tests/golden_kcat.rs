//! Golden tests: record batches produced by kcat 1.7.1 (librdkafka 2.0.2, the
//! version Debian ships), one per codec, decoded by klog.
//!
//! The fixtures were captured by `tests/fixtures/gen_kcat.sh`: 50 records
//! `key-i` -> `value-i kcat...` with headers `app=klog` and `trace=t-1`, produced with
//! `-z <codec>`. librdkafka writes raw snappy blocks (not xerial framing) and LZ4
//! frames; the broker that captured them set baseOffset and partitionLeaderEpoch,
//! which lie outside the CRC (protocol guide "Message format").

use klog_codec::{Compression, RecordBatch};

fn expected_value(i: usize) -> Vec<u8> {
    format!("value-{i} {}", "kcat".repeat(i % 7 + 1)).into_bytes()
}

fn check(file: &str, codec: Compression) {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).expect("fixture");
    let batch = RecordBatch::new(&bytes).expect("one whole batch");
    batch.validate().expect("CRC-32C and header are valid");
    assert_eq!(batch.compression(), Some(codec), "{file}");
    assert_eq!(batch.records_count(), 50);
    assert_eq!(batch.producer_id(), -1, "kcat is not idempotent by default");
    let records = batch
        .records()
        .expect("decompress")
        .to_owned_records()
        .expect("decode");
    assert_eq!(records.len(), 50);
    let mut last_ts = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.key.as_deref(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(r.value.as_deref(), Some(expected_value(i).as_slice()));
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|h| (h.key.as_ref(), h.value.as_deref()))
            .collect();
        assert_eq!(
            headers,
            vec![
                (&b"app"[..], Some(&b"klog"[..])),
                (&b"trace"[..], Some(&b"t-1"[..]))
            ]
        );
        assert!(
            r.timestamp >= last_ts,
            "CreateTime timestamps never go back"
        );
        last_ts = r.timestamp;
    }
    assert_eq!(batch.max_timestamp(), last_ts);
}

#[test]
fn kcat_uncompressed() {
    check("kcat-none.bin", Compression::None);
}

#[test]
fn kcat_gzip() {
    check("kcat-gzip.bin", Compression::Gzip);
}

#[test]
fn kcat_snappy_raw_blocks() {
    check("kcat-snappy.bin", Compression::Snappy);
}

#[test]
fn kcat_lz4_frame() {
    check("kcat-lz4.bin", Compression::Lz4);
}

#[test]
fn kcat_zstd() {
    check("kcat-zstd.bin", Compression::Zstd);
}
