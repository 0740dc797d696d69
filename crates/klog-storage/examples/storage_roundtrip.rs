//! klog-storage on its own, no broker: build record batches with klog-codec, append
//! them to a partition log, close it, reopen it and read the records back.
//!
//! Run: `cargo run -p klog-storage --example storage_roundtrip [dir]` (a temporary
//! folder by default).

use std::time::{SystemTime, UNIX_EPOCH};

use klog_codec::{BatchBuilder, Compression, RecordBatches};
use klog_storage::{Log, LogConfig};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| tmp.path().join("example-0"), Into::into);
    let config = LogConfig {
        segment_bytes: 4 * 1024, // small segments, to show several files
        ..LogConfig::default()
    };

    // 1. Append: each call takes one or more batches exactly as a producer sends them.
    let mut log = Log::open(&dir, config.clone(), now_ms())?;
    for b in 0..50 {
        let mut builder = BatchBuilder::new(Vec::new(), Compression::Lz4);
        for r in 0..20 {
            let value = format!("batch {b} record {r}");
            builder.push(now_ms(), Some(b"key"), Some(value.as_bytes()), &[])?;
        }
        let mut batch = builder.finish()?;
        let info = log.append(&mut batch, 0, now_ms())?;
        if b % 10 == 0 {
            println!(
                "appended offsets {}..={}",
                info.first_offset, info.last_offset
            );
        }
    }
    log.set_high_watermark(log.log_end_offset());
    let leo = log.log_end_offset();
    println!(
        "log end offset {leo}, {} bytes in {} segments under {}",
        log.size_bytes(),
        log.segments().len(),
        dir.display()
    );
    log.close()?;

    // 2. Reopen as after a clean shutdown (no recovery needed) and read everything
    //    back: whole batches, as a Fetch response would carry them.
    let mut log = Log::open_with_recovery_point(&dir, config, leo, true, now_ms())?;
    // The high watermark is replication state: `LogManager` checkpoints it, a bare
    // `Log` starts it at the log start offset.
    log.set_high_watermark(leo);
    let mut offset = log.log_start_offset();
    let mut records = 0;
    while offset < log.high_watermark() {
        let bytes = log.read_to_vec(offset, 16 * 1024, log.high_watermark())?;
        anyhow::ensure!(!bytes.is_empty(), "nothing to read at offset {offset}");
        for item in RecordBatches::new(&bytes) {
            let (_, batch) = item?;
            batch.validate()?;
            for record in batch.records()?.iter() {
                let record = record?;
                if record.offset == 0 || record.offset == leo - 1 {
                    println!(
                        "offset {}: {}",
                        record.offset,
                        String::from_utf8_lossy(record.value.unwrap_or_default())
                    );
                }
                records += 1;
            }
            offset = batch.next_offset();
        }
    }
    assert_eq!(records, leo);
    println!("read back {records} records");
    Ok(())
}
