//! Criterion benches for record batches: CRC validation, building and decoding per
//! codec. Numbers and the command that produced them are in `docs/PERFORMANCE.md`.
//!
//! Record payloads are text-like (words from a small vocabulary, seeded), so codecs
//! see data that compresses about as well as typical JSON/log lines, not all-zero
//! runs nor incompressible noise.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use klog_codec::{BatchBuilder, Compression, Header, RecordBatch};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Uncompressed payload bytes per built batch (keys + values), about what a
/// producer with `batch.size=65536` sends.
const BATCH_PAYLOAD: usize = 64 * 1024;

/// Deterministic text-like bytes.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "user",
        "id",
        "event",
        "click",
        "view",
        "timestamp",
        "session",
        "page",
        "true",
        "false",
        "null",
        "price",
        "amount",
        "EUR",
        "region",
        "eu-west-1",
    ];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
        out.push(if x & 0x100 == 0 {
            b' '
        } else {
            b'0' + (x >> 9) as u8 % 10
        });
    }
    out.truncate(len);
    out
}

struct Input {
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
}

fn input(value_len: usize) -> Input {
    let n = BATCH_PAYLOAD / (value_len + 8);
    Input {
        keys: (0..n).map(|i| format!("key-{i:04}").into_bytes()).collect(),
        values: (0..n).map(|i| payload(i as u64, value_len)).collect(),
    }
}

fn build(codec: Compression, input: &Input) -> Vec<u8> {
    let mut b = BatchBuilder::new(Vec::with_capacity(BATCH_PAYLOAD + 8192), codec);
    b.set_producer(1, 0, 0);
    let header = [Header::new("source", Some(b"bench"))];
    for (i, (k, v)) in input.keys.iter().zip(&input.values).enumerate() {
        b.push(1_700_000_000_000 + i as i64, Some(k), Some(v), &header)
            .expect("push");
    }
    b.finish().expect("finish")
}

fn bench_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    for (name, value_len, count) in [("16KiB", 1000, 16), ("1MiB", 1000, 1040)] {
        let mut b = BatchBuilder::new(Vec::new(), Compression::None);
        for i in 0..count {
            b.push(i, None, Some(&payload(i as u64, value_len)), &[])
                .expect("push");
        }
        let bytes = b.finish().expect("finish");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("crc32c", name), &bytes, |bench, bytes| {
            bench.iter(|| {
                let batch = RecordBatch::new(black_box(bytes)).expect("parse");
                batch.validate().expect("valid");
            })
        });
    }
    group.finish();
}

fn bench_build_and_decode(c: &mut Criterion) {
    for (size_name, value_len) in [("100B", 100), ("1KiB", 1024)] {
        let input = input(value_len);
        let payload_bytes: usize = input.keys.iter().chain(&input.values).map(Vec::len).sum();

        let mut group = c.benchmark_group(format!("build/{size_name}"));
        group.throughput(Throughput::Bytes(payload_bytes as u64));
        for codec in CODECS {
            group.bench_function(codec.name(), |bench| {
                bench.iter(|| black_box(build(codec, black_box(&input))))
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("decode/{size_name}"));
        group.throughput(Throughput::Bytes(payload_bytes as u64));
        for codec in CODECS {
            let bytes = build(codec, &input);
            group.bench_function(codec.name(), |bench| {
                bench.iter(|| {
                    let batch = RecordBatch::new(black_box(&bytes)).expect("parse");
                    let records = batch.records().expect("records");
                    let mut total = 0usize;
                    for r in records.iter() {
                        let r = r.expect("record");
                        total += r.value.map_or(0, <[u8]>::len) + r.headers.len();
                    }
                    black_box(total)
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_validate, bench_build_and_decode);
criterion_main!(benches);
