//! klog-storage throughput and latency, with a plain buffered file write of the same
//! bytes as the baseline append is judged against.
//!
//! Run: `cargo bench -p klog-storage -- --warm-up-time 1 --measurement-time 3`.
#![allow(missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::{self, File};
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use klog_codec::RecordBatches;
use klog_storage::{Log, LogConfig};

/// Files rotate at this size in both the log and the baseline, so a long run does not
/// fill the disk; the deletion cost is paid by both.
const ROTATE: u64 = 256 << 20;

fn bench_config() -> LogConfig {
    LogConfig {
        segment_bytes: ROTATE,
        retention_bytes: Some(2 * ROTATE),
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Pre-built batches: `total` bytes in batches of about `batch_bytes` holding records
/// of `record` bytes.
fn input(batch_bytes: usize, record: usize) -> Vec<u8> {
    // One append call carries 1 MiB, as one Produce request partition would.
    support::batches(1 << 20, batch_bytes, record, 1_700_000_000_000)
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    for (batch_bytes, batch_name) in [(16 << 10, "16KiB"), (1 << 20, "1MiB")] {
        // A 1 MiB batch must fit max.message.bytes with its header.
        let batch_bytes = batch_bytes.min(1_048_588 - 100);
        for record in [1024usize, 100] {
            let mut records = input(batch_bytes, record);
            let name = format!("{batch_name}/{record}B");
            g.throughput(Throughput::Bytes(records.len() as u64));

            g.bench_function(BenchmarkId::new("validate_only", &name), |b| {
                b.iter(|| {
                    for r in RecordBatches::new(black_box(&records)) {
                        let (_, batch) = r.expect("batch");
                        batch.validate().expect("valid");
                    }
                })
            });

            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = Log::open(dir.path(), bench_config(), 0).expect("open");
            g.bench_function(BenchmarkId::new("log_append", &name), |b| {
                b.iter(|| {
                    log.append(black_box(&mut records), 0, 0).expect("append");
                    log.apply_retention(0).expect("retention");
                })
            });
            drop(log);

            let dir = tempfile::tempdir().expect("tempdir");
            let mut plain = Plain::new(dir.path());
            g.bench_function(BenchmarkId::new("plain_buffered_write", &name), |b| {
                b.iter(|| plain.write(black_box(&records)))
            });
        }
    }
    g.finish();
}

/// The baseline: `BufWriter<File>::write_all`, rotating files like the log does.
struct Plain {
    dir: std::path::PathBuf,
    n: u64,
    written: u64,
    out: BufWriter<File>,
}

impl Plain {
    fn new(dir: &Path) -> Self {
        let out = BufWriter::with_capacity(1 << 16, File::create(dir.join("0")).expect("create"));
        Self {
            dir: dir.to_path_buf(),
            n: 0,
            written: 0,
            out,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.written + bytes.len() as u64 > ROTATE {
            self.out.flush().expect("flush");
            self.n += 1;
            let file = File::create(self.dir.join(self.n.to_string())).expect("create");
            self.out = BufWriter::with_capacity(1 << 16, file);
            self.written = 0;
            if self.n >= 2 {
                fs::remove_file(self.dir.join((self.n - 2).to_string())).expect("rotate");
            }
        }
        self.out.write_all(bytes).expect("write");
        self.written += bytes.len() as u64;
    }
}

/// Timestamp of the first chunk of [`filled_log`]; each 1 MiB chunk is 1 s later.
const T0: i64 = 1_700_000_000_000;

/// A log of 64 MiB in 16 KiB batches of 1 KiB records.
fn filled_log(dir: &Path) -> (Log, i64) {
    let config = LogConfig {
        retention_ms: None,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir, config, 0).expect("open");
    for i in 0..64 {
        let mut chunk = support::batches(1 << 20, 16 << 10, 1024, T0 + i * 1000);
        log.append(&mut chunk, 0, 0).expect("append");
    }
    let leo = log.log_end_offset();
    (log, leo)
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, leo) = filled_log(dir.path());
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes(1 << 20));
    // Consecutive 1 MiB fetches walking through the log, as a consumer does.
    let mut next = 0;
    g.bench_function("read_to_vec/1MiB", |b| {
        b.iter(|| {
            let bytes = log.read_to_vec(next, 1 << 20, i64::MAX).expect("read");
            next = (next + 1000) % leo;
            black_box(bytes)
        })
    });
    let mut next = 0;
    g.bench_function("regions_only/1MiB", |b| {
        b.iter(|| {
            let r = log.read(next, 1 << 20, i64::MAX).expect("read");
            next = (next + 1000) % leo;
            black_box(r)
        })
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, leo) = filled_log(dir.path());
    let mut g = c.benchmark_group("lookup");
    // A multiplicative walk over offsets defeats any locality.
    let mut x: i64 = 1;
    g.bench_function("offset", |b| {
        b.iter(|| {
            x = (x * 48271) % 2_147_483_647;
            let r = log.read(x % leo, 1, i64::MAX).expect("read");
            black_box(r.first_offset)
        })
    });
    g.bench_function("timestamp", |b| {
        b.iter(|| {
            x = (x * 48271) % 2_147_483_647;
            let target = T0 + x % 64_000;
            black_box(log.offset_for_timestamp(target).expect("lookup"))
        })
    });
    g.finish();
}

criterion_group!(benches, append, read, lookup);
criterion_main!(benches);
