//! Crash consistency: torn writes, lost unflushed bytes and corrupted bytes, made by
//! editing segment files between a "crash" (dropping the log without closing it) and
//! the next open. After recovery the log must be exactly the valid prefix.

mod support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use klog_codec::RecordBatches;
use klog_storage::{Corruption, Log, LogConfig};
use support::batch;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2000,
        index_interval_bytes: 150,
        segment_index_bytes: 1024,
        ..LogConfig::default()
    }
}

/// One appended batch: its offsets and the exact bytes stored.
#[derive(Debug, Clone)]
struct Stored {
    first: i64,
    last: i64,
    bytes: Vec<u8>,
}

fn fill(log: &mut Log, n: usize) -> Vec<Stored> {
    (0..n)
        .map(|i| {
            let mut b = batch(1 + (i % 3) as i32, 40 + (i * 13) % 100, 1000 + i as i64);
            let info = log.append(&mut b, 0, 0).expect("append");
            Stored {
                first: info.first_offset,
                last: info.last_offset,
                bytes: b,
            }
        })
        .collect()
}

fn concat(batches: &[Stored]) -> Vec<u8> {
    batches
        .iter()
        .flat_map(|b| b.bytes.iter().copied())
        .collect()
}

fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// Asserts the log holds exactly `expected` and still works.
fn assert_exactly(log: &mut Log, expected: &[Stored]) {
    let leo = expected.last().map_or(0, |b| b.last + 1);
    assert_eq!(log.log_end_offset(), leo);
    let all = log.read_to_vec(0, usize::MAX, i64::MAX).expect("read");
    assert!(all == concat(expected), "log differs from the valid prefix");
    // Every offset is found through the rebuilt indexes.
    for b in expected {
        for off in b.first..=b.last {
            assert_eq!(
                log.read_to_vec(off, 1, i64::MAX).expect("read"),
                b.bytes,
                "offset {off}"
            );
        }
    }
    for s in log.segments().windows(2) {
        assert_eq!(s[0].next_offset, s[1].base_offset);
    }
    let info = log
        .append(&mut batch(1, 5, 0), 0, 0)
        .expect("append after recovery");
    assert_eq!(info.first_offset, leo);
}

#[test]
fn torn_last_write_is_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(), 0).expect("open");
    let stored = fill(&mut log, 40);
    let last_seg = log.segments().last().expect("seg").clone();
    drop(log); // crash: indexes stay preallocated, nothing trimmed

    let log_file = seg_path(dir.path(), last_seg.base_offset, "log");
    let full = fs::metadata(&log_file).expect("meta").len();
    let last = stored.last().expect("batch");
    let cut_at = full - last.bytes.len() as u64;
    // Half of the last batch reached the disk.
    OpenOptions::new()
        .write(true)
        .open(&log_file)
        .expect("open")
        .set_len(full - 7)
        .expect("truncate");

    let mut log = Log::open(dir.path(), config(), 0).expect("recover");
    let report = log.recovery_report().expect("recovery ran").clone();
    let cut = report.cut.expect("cut");
    assert_eq!(cut.segment, last_seg.base_offset);
    assert_eq!(cut.corruption, Corruption::Truncated { position: cut_at });
    assert_eq!(cut.bytes_truncated, last.bytes.len() as u64 - 7);
    assert!(cut.segments_deleted.is_empty());
    assert_eq!(fs::metadata(&log_file).expect("meta").len(), cut_at);
    assert_exactly(&mut log, &stored[..stored.len() - 1]);
}

#[test]
fn garbage_after_the_last_batch_is_cut_off() {
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("zeros", vec![0u8; 300]),
        (
            "noise",
            (0..300u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("short", vec![1, 2, 3]),
        // A well-formed batch that does not continue the offsets.
        ("replayed batch", batch(2, 20, 0)),
    ];
    for (name, junk) in garbage {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(dir.path(), config(), 0).expect("open");
        let stored = fill(&mut log, 25);
        let active = log.segments().last().expect("seg").clone();
        drop(log);
        let path = seg_path(dir.path(), active.base_offset, "log");
        OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open")
            .write_all(&junk)
            .expect("write");

        let mut log = Log::open(dir.path(), config(), 0).expect("recover");
        let cut = log
            .recovery_report()
            .and_then(|r| r.cut.clone())
            .unwrap_or_else(|| panic!("{name}: nothing cut"));
        assert_eq!(cut.corruption.position(), active.size, "{name}");
        assert_eq!(cut.bytes_truncated, junk.len() as u64, "{name}");
        if name == "replayed batch" {
            assert!(matches!(
                cut.corruption,
                Corruption::OffsetNotContiguous { found: 0, .. }
            ));
        }
        assert_exactly(&mut log, &stored);
    }
}

#[test]
fn corrupt_byte_mid_log_stops_recovery_at_that_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(), 0).expect("open");
    let stored = fill(&mut log, 60);
    let segs = log.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    drop(log);

    // Flip one payload byte of a batch in the second segment.
    let victim_seg = &segs[1];
    let in_seg: Vec<&Stored> = stored
        .iter()
        .filter(|b| b.first >= victim_seg.base_offset && b.last < victim_seg.next_offset)
        .collect();
    let k = in_seg.len() / 2;
    let position: usize = in_seg[..k].iter().map(|b| b.bytes.len()).sum();
    let path = seg_path(dir.path(), victim_seg.base_offset, "log");
    let mut data = fs::read(&path).expect("read");
    data[position + 61 + 3] ^= 0x40;
    fs::write(&path, &data).expect("write");

    let mut log = Log::open(dir.path(), config(), 0).expect("recover");
    let cut = log
        .recovery_report()
        .and_then(|r| r.cut.clone())
        .expect("cut");
    assert_eq!(cut.segment, victim_seg.base_offset);
    assert!(
        matches!(cut.corruption, Corruption::ChecksumMismatch { position: p, .. } if p == position as u64),
        "{:?}",
        cut.corruption
    );
    let later: Vec<i64> = segs[2..].iter().map(|s| s.base_offset).collect();
    assert_eq!(cut.segments_deleted, later);
    for base in later {
        assert!(!seg_path(dir.path(), base, "log").exists());
        assert!(!seg_path(dir.path(), base, "index").exists());
    }
    let valid = stored
        .iter()
        .position(|b| b.first == in_seg[k].first)
        .expect("victim");
    assert_exactly(&mut log, &stored[..valid]);
}

#[test]
fn lost_unflushed_bytes_leave_the_flushed_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(), 0).expect("open");
    let mut stored = fill(&mut log, 20);
    log.flush().expect("flush");
    let rp = log.recovery_point();
    let flushed_segs = log.segments();
    let flushed_len = flushed_segs.last().expect("seg").size;
    stored.extend(fill(&mut log, 30));
    assert!(
        log.segments().len() > flushed_segs.len(),
        "rolled after the flush"
    );
    drop(log);

    // Power loss: the active segment at flush time loses everything written after
    // the flush; later segments survive partly (their data was not fsynced either,
    // but the file system happened to keep some).
    let flushed_active = flushed_segs.last().expect("seg").base_offset;
    OpenOptions::new()
        .write(true)
        .open(seg_path(dir.path(), flushed_active, "log"))
        .expect("open")
        .set_len(flushed_len)
        .expect("truncate");

    let mut log =
        Log::open_with_recovery_point(dir.path(), config(), rp, false, 0).expect("recover");
    let report = log.recovery_report().expect("ran").clone();
    assert_eq!(report.segments_checked.first(), Some(&flushed_active));
    let cut = report.cut.expect("cut at the gap");
    assert!(matches!(
        cut.corruption,
        Corruption::OffsetNotContiguous { expected, .. } if expected == rp
    ));
    let flushed: Vec<Stored> = stored.iter().filter(|b| b.last < rp).cloned().collect();
    assert_exactly(&mut log, &flushed);
}

#[test]
fn segments_below_the_recovery_point_are_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(), 0).expect("open");
    let stored = fill(&mut log, 60);
    log.flush().expect("flush");
    let segs = log.segments();
    let rp = segs[2].base_offset + 1;
    drop(log);
    let log = Log::open_with_recovery_point(dir.path(), config(), rp, false, 0).expect("open");
    let checked = log.recovery_report().expect("ran").segments_checked.clone();
    let expected: Vec<i64> = segs[2..].iter().map(|s| s.base_offset).collect();
    assert_eq!(checked, expected);
    assert_eq!(log.log_end_offset(), stored.last().expect("b").last + 1);
    assert_eq!(log.recovery_point(), log.log_end_offset());
}

#[test]
fn damaged_or_missing_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(), 0).expect("open");
    let stored = fill(&mut log, 60);
    let segs = log.segments();
    let leo = log.log_end_offset();
    log.close().expect("close");

    // Noise in one offset index, another deleted, a time index zeroed, and an
    // orphan index with no segment.
    let noise: Vec<u8> = (0..64u32).map(|i| (i * 97 + 13) as u8).collect();
    fs::write(seg_path(dir.path(), segs[0].base_offset, "index"), noise).expect("write");
    fs::remove_file(seg_path(dir.path(), segs[1].base_offset, "index")).expect("rm");
    fs::write(
        seg_path(dir.path(), segs[2].base_offset, "timeindex"),
        vec![0u8; 120],
    )
    .expect("write");
    fs::write(seg_path(dir.path(), 999_999, "index"), [0u8; 8]).expect("write");

    let mut log = Log::open_with_recovery_point(dir.path(), config(), leo, true, 0).expect("open");
    assert!(
        !seg_path(dir.path(), 999_999, "index").exists(),
        "orphan removed"
    );
    assert_exactly(&mut log, &stored);
    assert_eq!(
        log.offset_for_timestamp(1030).expect("ts").map(|x| x.0),
        stored
            .iter()
            .find(|b| ts_of(&b.bytes) >= 1030)
            .map(|b| b.first)
    );
}

fn ts_of(bytes: &[u8]) -> i64 {
    let (_, b) = RecordBatches::new(bytes)
        .next()
        .expect("one")
        .expect("valid");
    b.max_timestamp()
}
