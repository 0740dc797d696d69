//! Leader epoch history: which leader epoch started at which offset (KIP-101).
//!
//! The leader answers `OffsetForLeaderEpoch` from its history with
//! [`end_offset_for`]; a follower uses the same function on its own history to
//! find where it diverged ([`crate::follower`]). Persisting the history is the
//! storage layer's job (`leader-epoch-checkpoint`); this module only reads it.

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// Offset of the first record appended by that leader.
    pub start_offset: i64,
}

/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// The answer to `OffsetForLeaderEpoch` for `epoch` (KIP-101, KIP-279): the largest
/// epoch at or below `epoch` in `entries` and the offset where it ended, that is the
/// start offset of the next epoch, or `log_end_offset` for the latest epoch.
///
/// `entries` are oldest first, epochs and start offsets strictly increasing. When
/// `epoch` is older than every entry, the answer is `epoch` itself with the start
/// offset of the first entry (its data was removed, and the follower must start no
/// later than the leader's first epoch). `None` when the history is empty or `epoch`
/// is above the latest one (Kafka's `UNDEFINED_EPOCH_OFFSET`).
pub fn end_offset_for(
    entries: &[EpochEntry],
    log_end_offset: i64,
    epoch: i32,
) -> Option<(i32, i64)> {
    let latest = entries.last()?;
    if epoch == latest.epoch {
        return Some((latest.epoch, log_end_offset));
    }
    let higher = entries.partition_point(|e| e.epoch <= epoch);
    let next = entries.get(higher)?;
    match higher.checked_sub(1).and_then(|i| entries.get(i)) {
        Some(floor) => Some((floor.epoch, next.start_offset)),
        None => Some((epoch, next.start_offset)),
    }
}

/// The latest epoch of `entries` whose first offset is below `end_offset`: the
/// latest epoch of a log truncated to `end_offset`.
pub fn latest_epoch_below(entries: &[EpochEntry], end_offset: i64) -> Option<i32> {
    let n = entries.partition_point(|e| e.start_offset < end_offset);
    n.checked_sub(1)
        .and_then(|i| entries.get(i))
        .map(|e| e.epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
        pairs
            .iter()
            .map(|&(epoch, start_offset)| EpochEntry {
                epoch,
                start_offset,
            })
            .collect()
    }

    #[test]
    fn answers_follow_kafkas_leader_epoch_cache() {
        let e = h(&[(1, 0), (3, 10), (4, 15)]);
        // The latest epoch ends at the log end.
        assert_eq!(end_offset_for(&e, 20, 4), Some((4, 20)));
        // An epoch the leader had ends where the next one starts.
        assert_eq!(end_offset_for(&e, 20, 1), Some((1, 10)));
        // An epoch the leader never had: the largest one below it (KIP-279).
        assert_eq!(end_offset_for(&e, 20, 2), Some((1, 10)));
        // Older than all: the requested epoch with the first start offset.
        assert_eq!(end_offset_for(&e, 20, 0), Some((0, 0)));
        // Newer than all, or no history: undefined.
        assert_eq!(end_offset_for(&e, 20, 5), None);
        assert_eq!(end_offset_for(&[], 20, 0), None);
    }

    #[test]
    fn latest_epoch_after_a_truncation() {
        let e = h(&[(1, 0), (3, 10)]);
        assert_eq!(latest_epoch_below(&e, 11), Some(3));
        assert_eq!(latest_epoch_below(&e, 10), Some(1));
        assert_eq!(latest_epoch_below(&e, 0), None);
    }
}
