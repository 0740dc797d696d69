//! Fuzz target: arbitrary bytes as a concatenation of record batches (a Produce
//! request's `records`, a Fetch response, a segment file).
//!
//! Parses every batch, validates it, decodes its records (decompressing with a small
//! cap), and for batches that decode cleanly re-encodes the records with
//! `BatchBuilder` and checks they decode to the same values. Any panic, or a round
//! trip that changes a record, is a bug.
#![no_main]

use klog_codec::{BatchBuilder, Compression, OwnedRecord, RecordBatches};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for item in RecordBatches::new(data) {
        let Ok((_, batch)) = item else { break };
        // Decode even when the CRC is wrong: the decoder must not trust it.
        let _ = batch.validate();
        let Ok(records) = batch.records_with_limit(1 << 20) else {
            continue;
        };
        let Ok(decoded) = records.to_owned_records() else {
            continue;
        };
        if decoded.is_empty() {
            continue;
        }
        let codec = batch.compression().unwrap_or(Compression::None);
        let mut builder = BatchBuilder::new(Vec::new(), codec);
        builder.set_base_offset(batch.base_offset());
        for r in &decoded {
            let headers: Vec<_> = r.headers.iter().map(|h| h.as_header()).collect();
            builder
                .push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)
                .expect("decoded records fit a batch");
        }
        let bytes = builder.finish().expect("non-empty batch");
        let again = klog_codec::RecordBatch::new(&bytes).expect("own batch parses");
        again.validate().expect("own batch is valid");
        let back: Vec<OwnedRecord> = again
            .records()
            .and_then(|r| r.to_owned_records())
            .expect("own batch decodes");
        assert_eq!(back.len(), decoded.len());
        for (a, b) in back.iter().zip(&decoded) {
            assert_eq!((&a.key, &a.value, &a.headers), (&b.key, &b.value, &b.headers));
            // Timestamps survive unless the batch was LogAppendTime (then every
            // record reports maxTimestamp, which the rebuilt batch keeps as-is).
            assert_eq!(a.timestamp, b.timestamp);
        }
    }
});
