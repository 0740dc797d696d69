//! The follower side of one partition: where to truncate on a new leader epoch,
//! and the high watermark taken from the leader.
//!
//! On becoming follower at a new leader epoch, a replica may hold records the new
//! leader never had (it led an epoch whose records were not all replicated, or it
//! followed a leader that lost them). It asks the leader, with
//! `OffsetForLeaderEpoch`, where its own latest epoch ends in the leader's log, and
//! cuts its log there before fetching (KIP-101). The leader answers with the largest
//! epoch it has at or below the one asked (KIP-279); when that is an epoch the
//! follower does not have, the follower cuts to the end of its own largest epoch
//! below it and asks again, until both agree on an epoch.
//!
//! ```text
//!  become follower ──► AskEpochEnd { epoch }  (or Fetch { offset } with no history)
//!  epoch end answer ──► Truncate { offset } then AskEpochEnd again, or Fetch
//!  fetch response   ──► high watermark = max(own, min(leader's, local log end))
//! ```

use crate::epoch::{EpochEntry, UNDEFINED_EPOCH, end_offset_for, latest_epoch_below};

/// The leader's answer to `OffsetForLeaderEpoch` for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    /// The largest epoch the leader has at or below the one asked, or
    /// [`UNDEFINED_EPOCH`].
    pub leader_epoch: i32,
    /// Where that epoch ends in the leader's log, or -1 (undefined).
    pub end_offset: i64,
}

impl EpochEndOffset {
    /// The answer a leader with this epoch history and log end gives for `epoch`.
    pub fn answer(leader_history: &[EpochEntry], leader_log_end: i64, epoch: i32) -> Self {
        match end_offset_for(leader_history, leader_log_end, epoch) {
            Some((leader_epoch, end_offset)) => Self {
                leader_epoch,
                end_offset,
            },
            None => Self {
                leader_epoch: UNDEFINED_EPOCH,
                end_offset: -1,
            },
        }
    }
}

/// The next step of a follower.
///
/// Not `#[non_exhaustive]`: klog's own runtime matches it without a wildcard arm,
/// so a new variant is a compile error there instead of a silent default (an
/// unknown follower step taken as "fetch" would be the unsafe default of a
/// truncation protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerStep {
    /// Send `OffsetForLeaderEpoch` for this epoch (the follower's latest).
    AskEpochEnd {
        /// The epoch to ask for.
        epoch: i32,
    },
    /// Cut the local log to end at `offset` (records at and after it go), then
    /// take the next step.
    Truncate {
        /// The new log end offset.
        offset: i64,
        /// What comes after the cut.
        then: AfterTruncate,
    },
    /// Fetch from the leader starting at `offset` (the local log end).
    Fetch {
        /// The fetch offset.
        offset: i64,
    },
}

/// What follows a truncation.
///
/// Not `#[non_exhaustive]`: klog's own runtime matches it without a wildcard arm,
/// so a new variant is a compile error there instead of a silent default (an
/// unknown follower step taken as "fetch" would be the unsafe default of a
/// truncation protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterTruncate {
    /// Ask again, for this epoch (the latest left after the cut).
    AskEpochEnd {
        /// The epoch to ask for.
        epoch: i32,
    },
    /// Start fetching at the new log end.
    Fetch,
}

/// Where a follower is in becoming a replica of the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the leader's answer for this epoch.
    Truncating { asked: i32 },
    /// Copying the leader's log.
    Fetching,
}

/// The follower of one partition at one leader epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    leader: i32,
    leader_epoch: i32,
    high_watermark: i64,
    phase: Phase,
}

/// The truncation step for the leader's `answer` to the follower's question for
/// `asked`, given the follower's epoch history and log end (Kafka's
/// `getOffsetTruncationState`, KIP-101 and KIP-279). `local_high_watermark` is the
/// fallback when the leader knows nothing of epochs.
pub fn truncation_step(
    asked: i32,
    answer: EpochEndOffset,
    local_history: &[EpochEntry],
    local_log_end: i64,
    local_high_watermark: i64,
) -> FollowerStep {
    let cut = |offset: i64, then| {
        if offset < local_log_end {
            FollowerStep::Truncate { offset, then }
        } else {
            match then {
                AfterTruncate::AskEpochEnd { epoch } => FollowerStep::AskEpochEnd { epoch },
                AfterTruncate::Fetch => FollowerStep::Fetch {
                    offset: local_log_end,
                },
            }
        }
    };
    if answer.end_offset < 0 {
        // The leader has no epoch history: only what we know was committed is safe.
        return cut(
            local_high_watermark.min(local_log_end),
            AfterTruncate::Fetch,
        );
    }
    if answer.leader_epoch == UNDEFINED_EPOCH {
        return cut(answer.end_offset.min(local_log_end), AfterTruncate::Fetch);
    }
    match end_offset_for(local_history, local_log_end, answer.leader_epoch) {
        Some((own_epoch, own_end)) if own_epoch != answer.leader_epoch => {
            // We never had the epoch the leader answered with: cut to the end of our
            // largest epoch below it and ask again for what is then our latest.
            let offset = own_end.min(local_log_end);
            match latest_epoch_below(local_history, offset) {
                Some(epoch) if epoch < asked => cut(offset, AfterTruncate::AskEpochEnd { epoch }),
                _ => cut(offset, AfterTruncate::Fetch),
            }
        }
        Some((_, own_end)) => cut(
            own_end.min(answer.end_offset).min(local_log_end),
            AfterTruncate::Fetch,
        ),
        // No epoch of ours at or below the leader's: safe to follow the leader's end.
        None => cut(answer.end_offset.min(local_log_end), AfterTruncate::Fetch),
    }
}

impl FollowerState {
    /// Becomes follower of `leader` at `leader_epoch`, with the local log's epoch
    /// history, log end and high watermark. The first step is to ask for the end
    /// of the latest local epoch, or, with no history, to fetch after cutting to the
    /// high watermark (nothing above it is known to be committed).
    pub fn new(
        leader: i32,
        leader_epoch: i32,
        local_history: &[EpochEntry],
        local_log_end: i64,
        local_high_watermark: i64,
    ) -> (Self, FollowerStep) {
        let hw = local_high_watermark.min(local_log_end);
        let (phase, step) = match local_history.last() {
            Some(e) => (
                Phase::Truncating { asked: e.epoch },
                FollowerStep::AskEpochEnd { epoch: e.epoch },
            ),
            None if hw < local_log_end => (
                Phase::Fetching,
                FollowerStep::Truncate {
                    offset: hw,
                    then: AfterTruncate::Fetch,
                },
            ),
            None => (
                Phase::Fetching,
                FollowerStep::Fetch {
                    offset: local_log_end,
                },
            ),
        };
        let s = Self {
            leader,
            leader_epoch,
            high_watermark: hw,
            phase,
        };
        (s, step)
    }

    /// The leader followed.
    pub fn leader(&self) -> i32 {
        self.leader
    }

    /// The leader epoch followed (sent in fetches as `current_leader_epoch`).
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The high watermark as known here.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Whether truncation is done and the follower fetches.
    pub fn is_fetching(&self) -> bool {
        self.phase == Phase::Fetching
    }

    /// The epoch asked for and not yet answered, if any.
    pub fn awaiting_epoch_end(&self) -> Option<i32> {
        match self.phase {
            Phase::Truncating { asked } => Some(asked),
            Phase::Fetching => None,
        }
    }

    /// The leader's answer for the epoch asked. Returns the next step; after a
    /// [`FollowerStep::Truncate`] the runtime cuts its log and takes `then`.
    /// An answer when none is awaited is ignored (`None`).
    pub fn on_epoch_end(
        &mut self,
        answer: EpochEndOffset,
        local_history: &[EpochEntry],
        local_log_end: i64,
    ) -> Option<FollowerStep> {
        let Phase::Truncating { asked } = self.phase else {
            return None;
        };
        let step = truncation_step(
            asked,
            answer,
            local_history,
            local_log_end,
            self.high_watermark,
        );
        self.phase = match step {
            FollowerStep::AskEpochEnd { epoch }
            | FollowerStep::Truncate {
                then: AfterTruncate::AskEpochEnd { epoch },
                ..
            } => Phase::Truncating { asked: epoch },
            _ => Phase::Fetching,
        };
        if let FollowerStep::Truncate { offset, .. } = step {
            self.high_watermark = self.high_watermark.min(offset);
        }
        Some(step)
    }

    /// A fetch response carried the leader's high watermark; the local log ends at
    /// `local_log_end` after appending its records. Returns the new high watermark
    /// when it moved: the leader's, but never above the local log end and never
    /// backwards.
    pub fn on_fetch_response(
        &mut self,
        leader_high_watermark: i64,
        local_log_end: i64,
    ) -> Option<i64> {
        let hw = leader_high_watermark.min(local_log_end);
        if hw > self.high_watermark {
            self.high_watermark = hw;
            return Some(hw);
        }
        None
    }

    /// The log was cut below the high watermark (the leader's log start moved past
    /// ours, or an unclean leader had less): the high watermark follows it down.
    pub fn on_truncated(&mut self, local_log_end: i64) {
        self.high_watermark = self.high_watermark.min(local_log_end);
    }
}
