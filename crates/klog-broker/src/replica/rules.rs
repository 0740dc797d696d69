//! Per-topic rules about records that the produce path enforces beyond the batch
//! checks done by storage. Only topics that have such a rule pay for it: ordinary
//! topics never have their records decoded on the produce path.

use klog_codec::RecordBatch;
use klog_codec::protocol::ResponseError;

/// Why a topic rule refused a batch: the Kafka error code for the whole batch and,
/// when particular records caused it, each of them by index in the batch with why
/// (Produce v8 `record_errors`, KIP-467). Clients fail exactly those records with
/// that error and the others of the batch with a retriable one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error of the whole batch (nothing of it is appended).
    pub code: i16,
    /// `(batch index, message)` of every record that caused the refusal.
    pub record_errors: Vec<(i32, String)>,
}

/// A refusal of the whole batch, naming no record.
impl From<i16> for Refusal {
    fn from(code: i16) -> Self {
        Self {
            code,
            record_errors: Vec::new(),
        }
    }
}

impl Refusal {
    /// The response's `error_message` for the batch, as Kafka words it: how many
    /// records were refused, and the first three of them.
    pub fn message(&self) -> Option<String> {
        if self.record_errors.is_empty() {
            return None;
        }
        let shown: Vec<String> = self
            .record_errors
            .iter()
            .take(3)
            .map(|(index, message)| format!("record {index}: {message}"))
            .collect();
        Some(format!(
            "One or more records have been rejected due to {} record errors in total, \
             and only showing the first three errors at most: [{}]",
            self.record_errors.len(),
            shown.join("; ")
        ))
    }
}

/// Checks that every record of the single batch in `records` has a key, as a topic
/// whose `cleanup.policy` includes `compact` requires: Kafka refuses such a batch
/// whole with INVALID_RECORD and names each keyless record (`partition` is the
/// topic-partition, for the message). This decodes (and decompresses) the records,
/// so the produce path calls it only for compacted topics; ordinary topics never
/// have their records looked at.
pub fn require_keys(records: &[u8], partition: &str) -> Result<(), Refusal> {
    let corrupt = || Refusal::from(ResponseError::CorruptMessage.code());
    let (batch, _) = RecordBatch::parse(records).map_err(|_| corrupt())?;
    // Trust nothing decoded from a batch whose checksum does not hold.
    batch.validate().map_err(|_| corrupt())?;
    if batch.is_control() {
        return Ok(());
    }
    let decoded = batch.records().map_err(|_| corrupt())?;
    let mut record_errors = Vec::new();
    for (index, record) in decoded.iter().enumerate() {
        if record.map_err(|_| corrupt())?.key.is_none() {
            record_errors.push((
                i32::try_from(index).unwrap_or(i32::MAX),
                format!("Compacted topic cannot accept message without key in topic partition {partition}."),
            ));
        }
    }
    if record_errors.is_empty() {
        Ok(())
    } else {
        Err(Refusal {
            code: ResponseError::InvalidRecord.code(),
            record_errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(keys: &[Option<&[u8]>], compression: klog_codec::Compression) -> Vec<u8> {
        let mut b = klog_codec::BatchBuilder::new(Vec::new(), compression);
        for (i, k) in keys.iter().enumerate() {
            b.push(i as i64, *k, Some(b"v".as_slice()), &[])
                .expect("push");
        }
        b.finish().expect("finish")
    }

    /// KIP-467: the batch is refused whole with INVALID_RECORD, and every keyless
    /// record is named by its index in the batch.
    #[test]
    fn compacted_topics_need_a_key_on_every_record() {
        use klog_codec::Compression;
        let invalid = ResponseError::InvalidRecord.code();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(
                require_keys(&batch(&[Some(b"a"), Some(b"b")], c), "t-0"),
                Ok(())
            );
            let refused = require_keys(&batch(&[Some(b"a"), None, Some(b"c"), None], c), "t-0")
                .expect_err("keyless records");
            assert_eq!(refused.code, invalid);
            let indexes: Vec<i32> = refused.record_errors.iter().map(|(i, _)| *i).collect();
            assert_eq!(indexes, vec![1, 3]);
            assert!(
                refused.record_errors[0]
                    .1
                    .contains("without key in topic partition t-0")
            );
            let message = refused.message().expect("message");
            assert!(message.contains("2 record errors"), "{message}");
        }
        let mut bad = batch(&[Some(b"a")], Compression::None);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let refused = require_keys(&bad, "t-0").expect_err("corrupt");
        assert_eq!(refused.code, ResponseError::CorruptMessage.code());
        assert!(refused.record_errors.is_empty() && refused.message().is_none());
    }
}
