//! klog-replication: the replica state of a partition as deterministic state
//! machines, for the broker's replicated partitions and the controller's elections.
//!
//! It does no I/O, reads no clock, spawns no task and has no randomness: every event
//! carries the current time (`now`, ms), and every effect comes back as a value for
//! the runtime to perform (the broker appends, truncates, answers, and sends ISR
//! changes to the controller). The rules are Kafka's (KRaft, Kafka 4), cited where
//! they come from a KIP; `tests/table.rs` runs the cases in `tests/testdata/` and
//! `tests/properties.rs` checks the invariants over random event sequences.
//!
//! ```text
//!  leader (one per partition led)            actions out (poll_action, in order)
//!  ──────────────────────────────            ─────────────────────────────────────
//!  on_append(log_end, now)          ─┐   ┌─► AdvanceHighWatermark { high_watermark }
//!  on_follower_fetch(id, offset,     │   ├─► CompleteDelayedProduce { id, outcome }
//!                    epoch, now)    ─┤   │     (Committed, NotEnoughReplicasAfterAppend,
//!  register_delayed_produce(id,      ├──►│      TimedOut, NotLeader)
//!       required_offset, deadline)  ─┤   └─► ProposeIsr(IsrProposal { isr, epochs })
//!  tick(now)                        ─┤       answers: check_acks_all() -> NOT_ENOUGH_REPLICAS,
//!  on_partition_state(reg, now)     ─┤       follower fetch refused with its error code
//!  on_isr_change_failed(..)         ─┘
//!
//!  follower (one per partition followed)     steps out
//!  ─────────────────────────────────────     ─────────
//!  FollowerState::new(leader, epoch, ..) ──► AskEpochEnd { epoch } / Fetch { offset }
//!  on_epoch_end(answer, history, leo)    ──► Truncate { offset, then } / Fetch
//!  on_fetch_response(leader_hw, leo)     ──► new high watermark
//!
//!  controller (pure functions on PartitionRegistration)
//!  ───────────────────────────────────────────────────
//!  fence_broker / broker_unfenced / elect / elect_preferred / alter_isr
//!      ──► new leader (ISR first, then ELR, unclean only if allowed), ISR, ELR, epochs
//! ```
//!
//! - [`leader`]: follower progress, the high watermark (the smallest log end offset
//!   in the ISR, never backwards, frozen while the ISR is below
//!   `min.insync.replicas`: KIP-966's strict min ISR), ISR shrink and expand
//!   proposals with their epochs (one in flight, KIP-497), delayed `acks=all`
//!   produces.
//! - [`follower`]: truncation on a new leader epoch through `OffsetForLeaderEpoch`
//!   (KIP-101, KIP-279), and the high watermark taken from the leader.
//! - [`election`]: leader election from the ISR, then the ELR, then (if allowed)
//!   any replica; preferred-leader election; ISR changes with epoch checks.
//! - [`epoch`]: the leader epoch history lookups both sides use.
//!
//! Deliberately not here: reading or writing logs, sending requests, timers (the
//! runtime calls [`LeaderState::tick`] every so often, and when a delayed produce's
//! deadline passes), which broker is fenced (the controller's metadata says, and
//! the functions take it as a predicate), and idempotent-producer state (rebuilt by
//! the storage layer from batch headers).
//!
//! Cost: an append is O(replicas) with no allocation; a delayed produce is one
//! entry in a queue ordered by offset.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]
#![warn(missing_docs)]

pub mod codes;
pub mod election;
pub mod epoch;
pub mod follower;
pub mod leader;

pub use election::{AlterIsrError, ElectionKind, NO_LEADER, PartitionRegistration};
pub use epoch::{EpochEntry, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use follower::{AfterTruncate, EpochEndOffset, FollowerState, FollowerStep, truncation_step};
pub use leader::{
    Action, FetchRejected, FollowerProgress, IsrProposal, LeaderConfig, LeaderState,
    ProduceOutcome, ProduceRejected,
};
