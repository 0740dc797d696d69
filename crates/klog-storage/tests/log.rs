//! Behaviour of a single partition log: append, read, roll, indexes, truncation,
//! retention, flush policy, epochs.

mod support;

use std::path::Path;

use klog_codec::{DecodeError, RecordBatch, RecordBatches};
use klog_storage::{AppendError, Log, LogConfig, ReadError, StorageError, TimestampType};
use support::{Spec, batch, fix_crc};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, 0).expect("open")
}

/// Base offsets and record counts of the batches in `bytes`.
fn batch_offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    RecordBatches::new(bytes)
        .map(|r| {
            let (_, b) = r.expect("valid batch");
            b.validate().expect("crc");
            (b.base_offset(), b.last_offset())
        })
        .collect()
}

#[test]
fn append_assigns_offsets_by_rewriting_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_config());
    let mut records = batch(3, 30, 1000);
    records.extend(batch(2, 20, 1005));
    records.extend(batch(1, 10, 999));
    let info = log.append(&mut records, 4, 5000).expect("append");
    assert_eq!(info.first_offset, 0);
    assert_eq!(info.last_offset, 5);
    assert_eq!(info.batches, 3);
    assert_eq!(info.records, 6);
    assert_eq!(info.bytes, records.len());
    assert_eq!(info.max_timestamp, 1005);
    assert_eq!(info.log_append_time, None);
    assert_eq!(log.log_end_offset(), 6);
    // The caller's buffer now holds exactly what was written.
    assert_eq!(batch_offsets(&records), vec![(0, 2), (3, 4), (5, 5)]);
    for r in RecordBatches::new(&records) {
        assert_eq!(r.expect("batch").1.partition_leader_epoch(), 4);
    }
    let read = log.read_to_vec(0, usize::MAX, i64::MAX).expect("read");
    assert_eq!(read, records);
    assert_eq!(log.latest_epoch(), Some(4));

    let mut more = batch(4, 5, 2000);
    let info = log.append(&mut more, 4, 5001).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (6, 9));
    assert_eq!(log.size_bytes(), (records.len() + more.len()) as u64);
}

#[test]
fn log_append_time_overwrites_max_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    let mut records = batch(2, 10, 1);
    records.extend(batch(1, 10, 2));
    let info = log.append(&mut records, 0, 777).expect("append");
    assert_eq!(info.log_append_time, Some(777));
    assert_eq!(info.max_timestamp, 777);
    let stored = log.read_to_vec(0, usize::MAX, i64::MAX).expect("read");
    for r in RecordBatches::new(&stored) {
        let b = r.expect("batch").1;
        b.validate().expect("CRC recomputed");
        assert!(b.is_log_append_time());
        assert_eq!(b.max_timestamp(), 777);
    }
}

#[test]
fn invalid_appends_are_typed_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        max_message_bytes: 200,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    let mut first = batch(1, 10, 0);
    log.append(&mut first, 0, 0).expect("append");
    let size_before = log.size_bytes();

    let good = batch(2, 10, 0);
    let mut crc = good.clone();
    let last = crc.len() - 1;
    crc[last] ^= 0xff;
    let mut magic = good.clone();
    magic[16] = 1;
    let mut torn = good.clone();
    torn.truncate(good.len() - 3);
    let mut empty = Spec::new(0, vec![], 0).build();
    let mut delta = good.clone();
    delta[23..27].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut delta);

    let with_good_first = |bad: &[u8]| {
        let mut v = good.clone();
        v.extend_from_slice(bad);
        v
    };
    type Check = fn(&AppendError) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (
            with_good_first(&crc),
            |e| matches!(e, AppendError::Corrupt(DecodeError::ChecksumMismatch { offset, .. }) if *offset == 71),
        ),
        (with_good_first(&magic), |e| {
            matches!(
                e,
                AppendError::Corrupt(DecodeError::UnsupportedMagic { magic: 1, .. })
            )
        }),
        (with_good_first(&torn), |e| {
            matches!(e, AppendError::Corrupt(DecodeError::Truncated { .. }))
        }),
        (with_good_first(&batch(1, 300, 0)), |e| {
            matches!(
                e,
                AppendError::BatchTooLarge {
                    position: 71,
                    size: 361,
                    max: 200
                }
            )
        }),
        (std::mem::take(&mut empty), |e| {
            matches!(e, AppendError::EmptyBatch { position: 0 })
        }),
        (delta, |e| {
            matches!(
                e,
                AppendError::InvalidLastOffsetDelta {
                    records_count: 2,
                    last_offset_delta: 5,
                    ..
                }
            )
        }),
        (Vec::new(), |e| matches!(e, AppendError::EmptyRecords)),
    ];
    for (i, (mut records, check)) in cases.into_iter().enumerate() {
        let err = log.append(&mut records, 0, 0).expect_err("must fail");
        assert!(check(&err), "case {i}: {err:?}");
        assert!(err.is_invalid_input());
        assert_eq!(log.log_end_offset(), 1, "case {i}");
        assert_eq!(log.size_bytes(), size_before, "case {i}");
    }
    let mut stale = batch(1, 1, 0);
    log.append(&mut stale, 3, 0).expect("epoch 3");
    let err = log.append(&mut batch(1, 1, 0), 2, 0).expect_err("stale");
    assert!(matches!(
        err,
        AppendError::StaleLeaderEpoch {
            epoch: 2,
            latest: 3
        }
    ));
    // Still appendable, and the file holds exactly the accepted batches.
    let all = log.read_to_vec(0, usize::MAX, i64::MAX).expect("read");
    assert_eq!(batch_offsets(&all), vec![(0, 0), (1, 1)]);
}

#[test]
fn reads_return_whole_batches_within_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    let mut sizes = Vec::new();
    for i in 0..10 {
        let mut b = batch(3, 40 + i, 1000 + i as i64);
        sizes.push(b.len() as u64);
        log.append(&mut b, 0, 0).expect("append");
    }
    // Offsets 0..30, 3 per batch.
    let r = log.read(4, usize::MAX, i64::MAX).expect("read");
    assert_eq!(r.first_offset, Some(3), "the batch containing offset 4");
    assert_eq!(r.total_bytes, sizes[1..].iter().sum::<u64>());
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 30));

    // KIP-74: the first batch comes whole even when larger than max_bytes.
    let r = log.read(0, 1, i64::MAX).expect("read");
    assert_eq!(r.total_bytes, sizes[0]);
    // max_bytes cuts at a batch boundary.
    let r = log
        .read(0, (sizes[0] + sizes[1] + 5) as usize, i64::MAX)
        .expect("read");
    assert_eq!(r.total_bytes, sizes[0] + sizes[1]);
    // max_offset (the high watermark) is exclusive.
    let got = log.read_to_vec(0, usize::MAX, 9).expect("read");
    assert_eq!(batch_offsets(&got), vec![(0, 2), (3, 5), (6, 8)]);
    let got = log.read_to_vec(0, usize::MAX, 8).expect("read");
    assert_eq!(batch_offsets(&got), vec![(0, 2), (3, 5)]);
    assert_eq!(log.read(9, 100, 9).expect("read").total_bytes, 0);
    // The end of the log reads nothing; beyond it is out of range.
    assert_eq!(log.read(30, 100, i64::MAX).expect("read").regions.len(), 0);
    assert!(matches!(
        log.read(31, 100, i64::MAX),
        Err(ReadError::OffsetOutOfRange {
            offset: 31,
            log_start: 0,
            log_end: 30
        })
    ));
    assert!(matches!(
        log.read(-1, 100, i64::MAX),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn every_offset_is_found_through_the_sparse_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 4000,
        index_interval_bytes: 150,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    let mut expected = Vec::new();
    for i in 0..120 {
        let n = 1 + (i % 4);
        let info = log
            .append(&mut batch(n, 20 + (i as usize * 7) % 90, i as i64), 0, 0)
            .expect("append");
        expected.push((info.first_offset, info.last_offset));
    }
    let segs = log.segments();
    assert!(segs.len() > 3, "rolled by size: {segs:?}");
    assert!(segs.iter().all(|s| s.offset_index_entries > 0), "{segs:?}");
    for &(first, last) in &expected {
        for off in first..=last {
            let r = log.read(off, 1, i64::MAX).expect("read");
            assert_eq!(r.first_offset, Some(first), "offset {off}");
            let bytes = log.read_to_vec(off, 1, i64::MAX).expect("read");
            assert_eq!(batch_offsets(&bytes), vec![(first, last)]);
        }
    }
    // A read spanning every segment returns the whole log.
    let all = log.read_to_vec(0, usize::MAX, i64::MAX).expect("read");
    assert_eq!(batch_offsets(&all), expected);
    assert_eq!(all.len() as u64, log.size_bytes());
}

#[test]
fn segments_roll_by_size_time_and_full_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_config());
    for _ in 0..10 {
        log.append(&mut batch(1, 200, 0), 0, 0).expect("append");
    }
    let segs = log.segments();
    assert!(segs.len() >= 3, "{segs:?}");
    for s in &segs {
        assert!(s.size <= 1024, "{s:?}");
        let name = format!("{:020}.log", s.base_offset);
        assert!(dir.path().join(&name).exists(), "{name}");
        assert!(
            dir.path()
                .join(format!("{:020}.index", s.base_offset))
                .exists()
        );
        assert!(
            dir.path()
                .join(format!("{:020}.timeindex", s.base_offset))
                .exists()
        );
    }
    for w in segs.windows(2) {
        assert_eq!(
            w[0].next_offset, w[1].base_offset,
            "segments are contiguous"
        );
    }
    // Rolled segments have trimmed indexes; the active one is preallocated.
    let first = &segs[0];
    let idx_len = std::fs::metadata(dir.path().join(format!("{:020}.index", first.base_offset)))
        .expect("meta")
        .len();
    assert_eq!(idx_len, 8 * first.offset_index_entries as u64);
    let active = segs.last().expect("active");
    let active_len =
        std::fs::metadata(dir.path().join(format!("{:020}.index", active.base_offset)))
            .expect("meta")
            .len();
    assert_eq!(active_len, 4096);

    // segment.ms: measured from the segment's first append.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: Some(100),
        ..LogConfig::default()
    };
    let mut log = open(dir2.path(), config);
    log.append(&mut batch(1, 10, 0), 0, 1000).expect("append");
    log.append(&mut batch(1, 10, 0), 0, 1100).expect("append");
    assert_eq!(log.segments().len(), 1);
    log.append(&mut batch(1, 10, 0), 0, 1101).expect("append");
    assert_eq!(log.segments().len(), 2);
    assert_eq!(log.segments()[1].base_offset, 2);

    // A full index rolls too: room for 2 offset entries (and 1 time entry).
    let dir3 = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        index_interval_bytes: 1,
        segment_index_bytes: 16,
        ..LogConfig::default()
    };
    let mut log = open(dir3.path(), config);
    for i in 0..6 {
        log.append(&mut batch(1, 10, i), 0, 0).expect("append");
    }
    assert!(log.segments().len() >= 3, "{:?}", log.segments());
    let all = log.read_to_vec(0, usize::MAX, i64::MAX).expect("read");
    assert_eq!(batch_offsets(&all).len(), 6);
}

#[test]
fn clean_reopen_keeps_everything_and_skips_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let mut log = open(dir.path(), config.clone());
    for i in 0..20 {
        log.append(&mut batch(2, 50, i), 1, 0).expect("append");
    }
    let before = log.read_to_vec(0, usize::MAX, i64::MAX).expect("read");
    let segs = log.segments();
    let leo = log.log_end_offset();
    log.close().expect("close");
    let active_idx = dir.path().join(format!(
        "{:020}.index",
        segs.last().expect("seg").base_offset
    ));
    let trimmed = std::fs::metadata(&active_idx).expect("meta").len();
    assert!(trimmed < 4096, "trimmed on close: {trimmed}");

    let mut log = Log::open_with_recovery_point(dir.path(), config, leo, true, 0).expect("reopen");
    assert!(log.recovery_report().is_none());
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(log.recovery_point(), leo);
    assert_eq!(log.segments(), segs);
    assert_eq!(
        log.read_to_vec(0, usize::MAX, i64::MAX).expect("read"),
        before
    );
    assert_eq!(
        std::fs::metadata(&active_idx).expect("meta").len(),
        4096,
        "re-extended"
    );
    assert_eq!(log.latest_epoch(), Some(1));
    log.append(&mut batch(1, 1, 0), 1, 0)
        .expect("append after reopen");
    assert_eq!(log.log_end_offset(), leo + 1);
}

/// An idle log (empty active segment, everything flushed) takes the close path
/// that skips the fsyncs (not observable here). What this checks: reopening it,
/// cleanly or after its preallocated index came back (a trim that never reached the
/// disk), finds the same log, and appends continue.
#[test]
fn idle_logs_close_and_reopen_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let mut log = open(dir.path(), config.clone());
    for i in 0..12 {
        log.append(&mut batch(2, 50, i), 1, 0).expect("append");
    }
    log.roll().expect("roll");
    log.flush().expect("flush");
    let leo = log.log_end_offset();
    let segs = log.segments();
    log.close().expect("close");
    for lost_trim in [false, true] {
        let log = Log::open_with_recovery_point(dir.path(), config.clone(), leo, true, 0)
            .expect("reopen");
        assert!(log.recovery_report().is_none());
        assert_eq!(log.log_end_offset(), leo);
        assert_eq!(log.segments(), segs);
        // Idle: closed by the path that skips the flush.
        log.close().expect("close idle");
        let idx = dir.path().join(format!("{leo:020}.index"));
        assert_eq!(std::fs::metadata(&idx).expect("meta").len(), 0, "trimmed");
        if lost_trim {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&idx)
                .and_then(|f| f.set_len(4096))
                .expect("untrim");
        }
    }
    let mut log = Log::open_with_recovery_point(dir.path(), config, leo, true, 0).expect("reopen");
    assert_eq!(log.log_end_offset(), leo);
    log.append(&mut batch(1, 1, 0), 1, 0).expect("append");
    assert_eq!(log.log_end_offset(), leo + 1);
    let read = log.read_to_vec(leo, usize::MAX, i64::MAX).expect("read");
    assert!(!read.is_empty());
}

/// Small segments and a dense time index, for the lookups by timestamp.
fn timestamp_config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 50,
        ..LogConfig::default()
    }
}

#[test]
fn offset_for_timestamp_uses_batch_max_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = timestamp_config();
    let mut log = open(dir.path(), config.clone());
    // Timestamps 100, 110, ..., with one out-of-order batch.
    let mut ts = Vec::new();
    for i in 0..40i64 {
        let t = if i == 17 { 5 } else { 100 + 10 * i };
        let info = log.append(&mut batch(2, 60, t), 0, 0).expect("append");
        ts.push((info.first_offset, t));
    }
    assert!(log.segments().len() > 2);
    let check = |log: &Log| {
        for target in [0, 5, 6, 100, 101, 150, 265, 270, 271, 490, 491, 10_000] {
            let want = ts.iter().find(|(_, t)| *t >= target).copied();
            assert_eq!(
                log.offset_for_timestamp(target).expect("lookup"),
                want,
                "target {target}"
            );
        }
    };
    check(&log);
    log.close().expect("close");
    let log = Log::open(dir.path(), config, 0).expect("reopen with recovery");
    check(&log);
}

/// KIP-734 (ListOffsets -3): the batch with the largest timestamp, the earliest on
/// ties, only among batches from the log start to below the given offset.
#[test]
fn max_timestamp_batch_finds_the_largest_timestamp_in_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = timestamp_config();
    let mut log = open(dir.path(), config.clone());
    assert_eq!(log.max_timestamp_batch(i64::MAX).expect("empty"), None);
    // Rising timestamps with two equal peaks (batches 12 and 25) and a lower rise
    // after them.
    let mut batches = Vec::new();
    for i in 0..40i64 {
        let t = match i {
            12 | 25 => 9_000,
            i if i > 25 => 1_000 + i,
            i => 100 + 10 * i,
        };
        let info = log.append(&mut batch(2, 60, t), 0, 0).expect("append");
        batches.push((info.first_offset, t));
    }
    assert!(log.segments().len() > 3);
    // The largest timestamp among batches starting below `below`, first on ties.
    let want = |from: i64, below: i64| {
        batches
            .iter()
            .filter(|(base, _)| *base + 1 >= from && *base < below)
            .fold(None, |best: Option<(i64, i64)>, &(base, t)| match best {
                Some((_, bt)) if bt >= t => best,
                _ => Some((base, t)),
            })
    };
    let check = |log: &Log, from: i64| {
        for below in [0, 1, 10, 24, 25, 26, 50, 51, 52, 79, 80, i64::MAX] {
            assert_eq!(
                log.max_timestamp_batch(below).expect("lookup"),
                want(from, below),
                "below {below}"
            );
        }
    };
    check(&log, 0);
    assert_eq!(
        log.max_timestamp_batch(i64::MAX).expect("max"),
        Some((24, 9_000))
    );
    let end = log.log_end_offset();
    log.set_high_watermark(end);
    // Once the log start passes the first peak, the second one is the answer.
    log.delete_records_before(30).expect("delete records");
    check(&log, 30);
    assert_eq!(
        log.max_timestamp_batch(i64::MAX).expect("max"),
        Some((50, 9_000))
    );
    log.delete_records_before(52).expect("delete records");
    check(&log, 52);
    log.close().expect("close");
    let log = Log::open(dir.path(), config, 0).expect("reopen with recovery");
    check(&log, log.log_start_offset());
}

#[test]
fn truncate_to_drops_whole_batches_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_config());
    for i in 0..30 {
        log.append(&mut batch(2, 60, i), (i / 10) as i32, 0)
            .expect("append");
    }
    assert_eq!(log.latest_epoch(), Some(2));
    log.set_high_watermark(60);
    let segs = log.segments().len();
    assert!(segs > 3);
    // Offset 25 is inside batch [24, 25]: that batch goes too.
    log.truncate_to(25).expect("truncate");
    assert_eq!(log.log_end_offset(), 24);
    assert_eq!(log.high_watermark(), 24);
    assert!(log.segments().len() < segs);
    assert_eq!(log.latest_epoch(), Some(1), "epoch 2 started at 40");
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 24)));
    let all = log.read_to_vec(0, usize::MAX, i64::MAX).expect("read");
    assert_eq!(batch_offsets(&all).last(), Some(&(22, 23)));
    // Appends continue from the new end, and survive a reopen.
    let info = log.append(&mut batch(1, 5, 0), 3, 0).expect("append");
    assert_eq!(info.first_offset, 24);
    log.close().expect("close");
    let log = Log::open(dir.path(), small_config(), 0).expect("reopen");
    assert_eq!(log.log_end_offset(), 25);
    assert!(log.recovery_report().expect("ran").cut.is_none());
    // Truncating at or past the end does nothing.
    let mut log = log;
    log.truncate_to(100).expect("noop");
    assert_eq!(log.log_end_offset(), 25);
    // Below the first segment: the log restarts there.
    log.delete_records_before(0).expect("noop");
    log.truncate_fully_and_start_at(500).expect("restart");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(
        log.append(&mut batch(1, 5, 0), 0, 0)
            .expect("append")
            .first_offset,
        500
    );
    assert!(matches!(
        log.truncate_to(-1),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn delete_records_and_retention_delete_whole_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_config());
    for i in 0..30 {
        log.append(&mut batch(2, 60, 1000 + i), 0, 0)
            .expect("append");
    }
    let segs = log.segments();
    assert!(matches!(
        log.delete_records_before(10),
        Err(StorageError::OffsetOutOfRange {
            offset: 10,
            low: 0,
            high: 0
        })
    ));
    log.set_high_watermark(40);
    let cut = segs[1].base_offset + 1;
    log.delete_records_before(cut).expect("delete records");
    assert_eq!(log.log_start_offset(), cut);
    assert_eq!(log.segments()[0].base_offset, segs[1].base_offset);
    assert!(
        !dir.path()
            .join(format!("{:020}.log", segs[0].base_offset))
            .exists()
    );
    assert!(matches!(
        log.read(cut - 1, 10, i64::MAX),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    // Reading at the log start returns the batch containing it.
    let r = log.read(cut, 1, i64::MAX).expect("read");
    assert_eq!(r.first_offset, Some(segs[1].base_offset));
    assert_eq!(
        log.offset_for_timestamp(0).expect("ts").map(|x| x.0),
        Some(cut),
        "never below the log start"
    );

    // Retention by size (Kafka's rule): delete the oldest segments while the log
    // stays at or above retention.bytes without them.
    let mut config = small_config();
    config.retention_bytes = Some(1500);
    config.retention_ms = None;
    log.set_config(config);
    let before = log.size_bytes();
    assert!(before > 1500 + log.segments()[0].size);
    let deleted = log.apply_retention(0).expect("retention");
    assert!(deleted > 0);
    let segs = log.segments();
    let after = log.size_bytes();
    assert!(after >= 1500, "never more than the excess: {after}");
    assert!(after - segs[0].size < 1500, "stopped only when needed");
    assert_eq!(log.log_start_offset(), segs[0].base_offset);
    assert_eq!(log.apply_retention(0).expect("retention"), 0, "idempotent");

    // Retention by time: segments whose newest batch is older than retention.ms.
    let mut config = small_config();
    config.retention_ms = Some(100);
    log.set_config(config);
    assert_eq!(log.apply_retention(1000 + 10).expect("retention"), 0);
    let deleted = log.apply_retention(1000 + 30 + 100 + 1).expect("retention");
    assert!(deleted > 0);
    assert_eq!(log.segments().len(), 1, "everything but the active segment");
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.high_watermark(), 40.max(log.log_start_offset()));
    log.append(&mut batch(1, 1, 0), 0, 0)
        .expect("still appendable");
}

#[test]
fn flush_policies_move_the_recovery_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        flush_interval_messages: Some(5),
        flush_interval_ms: Some(1000),
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).expect("open");
    log.append(&mut batch(3, 10, 0), 0, 0).expect("append");
    assert_eq!(log.recovery_point(), 0);
    assert_eq!(log.unflushed_messages(), 3);
    log.append(&mut batch(2, 10, 0), 0, 0).expect("append");
    assert_eq!(log.recovery_point(), 5, "flushed after 5 messages");
    log.append(&mut batch(1, 10, 0), 0, 0).expect("append");
    assert!(!log.maybe_flush(999).expect("not yet"));
    assert_eq!(log.recovery_point(), 5);
    assert!(log.maybe_flush(1000).expect("due"));
    assert_eq!(log.recovery_point(), 6);
    assert!(!log.maybe_flush(2000).expect("nothing to flush"));
    log.append(&mut batch(1, 10, 0), 0, 0).expect("append");
    log.flush().expect("explicit");
    assert_eq!(log.recovery_point(), 7);
}

#[test]
fn follower_appends_keep_offsets_and_learn_epochs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let mut leader = open(leader_dir.path(), LogConfig::default());
    leader.append(&mut batch(2, 10, 0), 1, 0).expect("append");
    leader.append(&mut batch(3, 10, 0), 2, 0).expect("append");
    leader.append(&mut batch(1, 10, 0), 2, 0).expect("append");
    let fetched = leader.read_to_vec(0, usize::MAX, i64::MAX).expect("read");

    let mut follower = open(dir.path(), LogConfig::default());
    let info = follower.append_as_follower(&fetched, 0).expect("follow");
    assert_eq!(
        (info.first_offset, info.last_offset, info.records),
        (0, 5, 6)
    );
    assert_eq!(
        follower.read_to_vec(0, usize::MAX, i64::MAX).expect("read"),
        fetched
    );
    assert_eq!(
        follower.leader_epoch_cache().entries(),
        leader.leader_epoch_cache().entries()
    );
    assert_eq!(follower.end_offset_for_epoch(1), Some((1, 2)));
    // Replaying the same batches does not continue the log: refused, nothing written.
    let err = follower.append_as_follower(&fetched, 0).expect_err("gap");
    assert!(matches!(
        err,
        AppendError::UnexpectedOffset {
            expected: 6,
            found: 0,
            ..
        }
    ));
    assert_eq!(follower.log_end_offset(), 6);

    // scan_batches gives every header from the batch holding the offset.
    let mut seen = Vec::new();
    follower
        .scan_batches(3, |h| seen.push((h.base_offset, h.partition_leader_epoch)))
        .expect("scan");
    assert_eq!(seen, vec![(2, 2), (5, 2)]);
}

#[test]
fn closed_logs_refuse_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    log.append(&mut batch(1, 1, 0), 0, 0).expect("append");
    let header = RecordBatch::new(&log.read_to_vec(0, 100, 1).expect("read"))
        .expect("batch")
        .header();
    assert_eq!(header.base_offset, 0);
    log.close().expect("close");
}
