//! Idempotent-producer state for one partition: a sans-IO table, no clock, no I/O.
//!
//! Kafka's idempotence (KIP-98): every batch from an idempotent producer carries a
//! producer id, an epoch and the sequence number of its first record. Per producer
//! and partition the broker remembers the last five batches it appended, so that
//!
//! * a retried batch that was already appended is acknowledged again with its
//!   original offset, without a second append (`Duplicate`);
//! * a batch whose first sequence is not the last one plus one is refused with
//!   OUT_OF_ORDER_SEQUENCE_NUMBER (a gap: an earlier batch was lost);
//! * a batch from an older epoch is refused with INVALID_PRODUCER_EPOCH (a zombie).
//!
//! Sequence numbers wrap from `i32::MAX` to 0.

use std::collections::{HashMap, VecDeque};

use klog_codec::BatchHeader;

/// How many batches per producer are remembered for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_REMEMBERED: usize = 5;

/// Kafka error code OUT_OF_ORDER_SEQUENCE_NUMBER.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// Kafka error code INVALID_PRODUCER_EPOCH.
pub const INVALID_PRODUCER_EPOCH: i16 = 47;

/// What the table remembers of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Largest timestamp of the batch, as appended.
    pub max_timestamp: i64,
}

/// The verdict on an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or next in sequence: append it.
    Append,
    /// Already appended: acknowledge with this batch's original offset.
    Duplicate(BatchMeta),
    /// Refuse with this Kafka error code.
    Reject(i16),
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// Per-partition idempotent-producer state.
#[derive(Debug, Clone, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

/// Sequence number of a batch's last record, wrapping at `i32::MAX` as Kafka does;
/// -1 for batches without sequence numbers.
pub fn last_sequence(h: &BatchHeader) -> i32 {
    if h.base_sequence < 0 {
        return h.base_sequence;
    }
    let last = i64::from(h.base_sequence) + i64::from(h.last_offset_delta);
    (last % (i64::from(i32::MAX) + 1)) as i32
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerStateTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a batch header against the table, without changing it.
    pub fn check(&self, h: &BatchHeader, last_seq: i32) -> SequenceCheck {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // Unknown producer: its state may have been lost with retention; accept
            // any starting sequence (KIP-360).
            return SequenceCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::Reject(INVALID_PRODUCER_EPOCH);
        }
        if h.producer_epoch > entry.epoch {
            // A bumped epoch starts its sequences again at 0.
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate(*dup);
        }
        match entry.batches.back() {
            Some(last) if next_seq(last.last_seq) != h.base_sequence => {
                SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records an appended batch (also used when replaying the log at start-up).
    pub fn record(
        &mut self,
        h: &BatchHeader,
        last_seq: i32,
        first_offset: i64,
        max_timestamp: i64,
    ) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq,
            first_offset,
            max_timestamp,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> (BatchHeader, i32) {
        let h = BatchHeader {
            base_offset: 0,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        };
        let last = last_sequence(&h);
        (h, last)
    }

    #[test]
    fn in_order_duplicates_and_gaps() {
        let mut t = ProducerStateTable::new();
        let (h0, l0) = header(7, 0, 0, 3);
        assert_eq!(t.check(&h0, l0), SequenceCheck::Append);
        t.record(&h0, l0, 100, 5);
        let (h1, l1) = header(7, 0, 3, 2);
        assert_eq!(t.check(&h1, l1), SequenceCheck::Append);
        t.record(&h1, l1, 103, 6);
        // A retry of the first batch is a duplicate with its original offset.
        match t.check(&h0, l0) {
            SequenceCheck::Duplicate(meta) => assert_eq!(meta.first_offset, 100),
            other => panic!("{other:?}"),
        }
        // A gap: sequence 6 when 5 is expected.
        let (gap, lg) = header(7, 0, 6, 1);
        assert_eq!(
            t.check(&gap, lg),
            SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut t = ProducerStateTable::new();
        for i in 0..6 {
            let (h, l) = header(1, 0, i, 1);
            t.record(&h, l, i64::from(i), 0);
        }
        let (first, l) = header(1, 0, 0, 1);
        // Batch 0 fell out of the window: it is no longer recognised as a duplicate.
        assert_eq!(
            t.check(&first, l),
            SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        let (recent, l) = header(1, 0, 2, 1);
        assert!(matches!(t.check(&recent, l), SequenceCheck::Duplicate(_)));
    }

    #[test]
    fn epochs_fence_zombies_and_restart_sequences() {
        let mut t = ProducerStateTable::new();
        let (h, l) = header(9, 3, 0, 1);
        t.record(&h, l, 0, 0);
        let (old, l) = header(9, 2, 1, 1);
        assert_eq!(
            t.check(&old, l),
            SequenceCheck::Reject(INVALID_PRODUCER_EPOCH)
        );
        let (bumped, l) = header(9, 4, 0, 1);
        assert_eq!(t.check(&bumped, l), SequenceCheck::Append);
        let (bumped_bad, l) = header(9, 4, 5, 1);
        assert_eq!(
            t.check(&bumped_bad, l),
            SequenceCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
    }

    #[test]
    fn non_idempotent_and_unknown_producers_append() {
        let t = ProducerStateTable::new();
        let (h, l) = header(-1, -1, -1, 4);
        assert_eq!(t.check(&h, l), SequenceCheck::Append);
        let (h, l) = header(5, 0, 42, 1);
        assert_eq!(t.check(&h, l), SequenceCheck::Append);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut t = ProducerStateTable::new();
        let (h, _) = header(3, 0, i32::MAX, 1);
        t.record(&h, i32::MAX, 0, 0);
        let (next, l) = header(3, 0, 0, 1);
        assert_eq!(t.check(&next, l), SequenceCheck::Append);
    }
}
