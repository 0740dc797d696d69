//! klog's storage embedded in an application, no broker and no network: a
//! `LogManager` holding three partitions of an `orders` log, records routed to a
//! partition by key with the Java client's murmur2 partitioner (klog-assign), batches
//! built with klog-codec. The program then stops without a clean shutdown, as a
//! crash would, reopens the logs (recovery checks every batch past the recovery
//! point) and reads each partition back from the checkpointed high watermark.
//!
//! ```text
//! cargo run --example embedded_storage [dir]
//! ```
//!
//! (A temporary folder by default. `cargo run -p klog-storage --example
//! storage_roundtrip` shows a single `Log` on its own.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use klog_codec::{BatchBuilder, Compression, RecordBatches};
use klog_storage::{LogConfig, LogManager, TopicPartition};

const PARTITIONS: i32 = 3;

fn main() -> anyhow::Result<()> {
    // The time the logs are given: the records' create time and the segments' clock.
    let now_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    let scratch = tempfile::tempdir()?;
    let dir: PathBuf = match std::env::args().nth(1) {
        Some(dir) => dir.into(),
        None => scratch.path().to_owned(),
    };
    let dirs = [dir.clone()];
    let config = |_: &TopicPartition| LogConfig {
        segment_bytes: 16 * 1024,
        ..LogConfig::default()
    };
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("orders".to_owned(), p))
        .collect();

    // 1. Route 300 keyed records to partitions, one compressed batch per partition
    //    per round, and append them.
    let logs = LogManager::open(&dirs, config, now_ms())?;
    for tp in &tps {
        if logs.get(tp).is_none() {
            logs.create(tp.clone(), config(tp), now_ms())?;
        }
    }
    for round in 0..10 {
        let mut batches: BTreeMap<i32, BatchBuilder<Vec<u8>>> = BTreeMap::new();
        for i in 0..30 {
            let key = format!("customer-{}", (round * 30 + i) % 17);
            let p = klog_assign::partition_for_key(key.as_bytes(), PARTITIONS);
            let value = format!("order {} for {key}", round * 30 + i);
            batches
                .entry(p)
                .or_insert_with(|| BatchBuilder::new(Vec::new(), Compression::Zstd))
                .push(now_ms(), Some(key.as_bytes()), Some(value.as_bytes()), &[])?;
        }
        for (p, builder) in batches {
            let log = logs.get(&tps[p as usize]).expect("created above");
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.append(&mut builder.finish()?, 0, now_ms())?;
            // One replica: everything appended is committed.
            let end = log.log_end_offset();
            log.set_high_watermark(end);
        }
    }
    // Checkpoints record each partition's high watermark and recovery point. Then
    // stop without `shutdown()`: no clean-shutdown marker, as after a crash.
    logs.checkpoint()?;
    drop(logs);

    // 2. Reopen: recovery validates what was not yet known to be flushed.
    let logs = LogManager::open(&dirs, config, now_ms())?;
    let mut total = 0;
    for tp in &tps {
        let log = logs.get(tp).expect("recovered");
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(report) = log.recovery_report() {
            println!(
                "{tp}: recovery checked {} segments",
                report.segments_checked.len()
            );
        }
        let (mut offset, hw) = (log.log_start_offset(), log.high_watermark());
        let mut keys = std::collections::BTreeSet::new();
        while offset < hw {
            let bytes = log.read_to_vec(offset, 64 * 1024, hw)?;
            for item in RecordBatches::new(&bytes) {
                let (_, batch) = item?;
                for record in batch.records()?.iter() {
                    keys.insert(
                        String::from_utf8_lossy(record?.key.unwrap_or_default()).into_owned(),
                    );
                }
                offset = batch.next_offset();
            }
        }
        println!("{tp}: {hw} records, keys {keys:?}");
        total += hw;
    }
    anyhow::ensure!(total == 300, "read back {total} records, wrote 300");
    logs.shutdown()?;
    println!("all 300 records read back from {}", dir.display());
    Ok(())
}
