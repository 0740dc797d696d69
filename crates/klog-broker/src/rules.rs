//! Per-topic rules about records that the produce path enforces beyond the batch
//! checks done by storage. Only topics that have such a rule pay for it: ordinary
//! topics never have their records decoded on the produce path.

use klog_codec::RecordBatch;
use klog_codec::protocol::ResponseError;

/// Checks that every record of the single batch in `records` has a key, as a topic
/// whose `cleanup.policy` includes `compact` requires (Kafka refuses such a batch
/// whole with INVALID_RECORD). This decodes (and decompresses) the records, so the
/// produce path calls it only for compacted topics; ordinary topics never have their
/// records looked at.
pub fn require_keys(records: &[u8]) -> Result<(), i16> {
    let corrupt = ResponseError::CorruptMessage.code();
    let (batch, _) = RecordBatch::parse(records).map_err(|_| corrupt)?;
    // Trust nothing decoded from a batch whose checksum does not hold.
    batch.validate().map_err(|_| corrupt)?;
    if batch.is_control() {
        return Ok(());
    }
    let decoded = batch.records().map_err(|_| corrupt)?;
    for record in decoded.iter() {
        if record.map_err(|_| corrupt)?.key.is_none() {
            return Err(ResponseError::InvalidRecord.code());
        }
    }
    Ok(())
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

    #[test]
    fn compacted_topics_need_a_key_on_every_record() {
        use klog_codec::Compression;
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(require_keys(&batch(&[Some(b"a"), Some(b"b")], c)), Ok(()));
            assert_eq!(
                require_keys(&batch(&[Some(b"a"), None], c)),
                Err(ResponseError::InvalidRecord.code())
            );
        }
        let mut bad = batch(&[Some(b"a")], Compression::None);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(
            require_keys(&bad),
            Err(ResponseError::CorruptMessage.code())
        );
    }
}
