//! The klog coordinators: consumer-group membership, rebalances and committed
//! offsets, and the cluster controller, as deterministic state machines.
//!
//! It does no I/O, reads no clock, spawns no task and has no randomness: every event
//! carries the current time (`now`, ms since the epoch) and every effect comes back
//! as an [`Action`] for the runtime (the broker's `groups` module) to perform. That
//! makes join storms, session expiry and rebalance timeouts testable step by step
//! (see `tests/table.rs` and its `testdata/`).
//!
//! ```text
//!  events in (with now)                       actions out (drained in order)
//!  ─────────────────────                      ─────────────────────────────────
//!  join(JoinGroup)        ─┐              ┌─► RespondJoin { request, response }
//!  sync(SyncGroup)        ─┤              ├─► RespondSync { request, response }
//!  heartbeat(..) -> code  ─┤  ┌────────┐  ├─► PersistGroupMetadata { partition, record }
//!  leave(..) -> result    ─┼─►│ groups │──┤   PersistOffsets { partition, records,
//!  commit_offsets(..)     ─┤  └────────┘  │                    commit }
//!  complete_commit(id,ok) ─┤              │     (records for __consumer_offsets,
//!  delete_offsets/groups  ─┤              │      built into batches by build_batch)
//!  tick(now)              ─┤              │
//!  load_partition(records)─┘              └── immediate answers: heartbeat, leave,
//!                                             commit, fetch, list, describe, delete
//! ```
//!
//! Committed offsets are staged, as Kafka's `pendingOffsetCommits`: an OffsetCommit's
//! `PersistOffsets` carries a commit id, and OffsetFetch sees its offsets only once
//! the runtime reports with `complete_commit` that the append reached the ISR. A
//! failed append leaves the offsets committed before.
//!
//! Group states follow Kafka's classic protocol ([`GroupState`]): Empty →
//! PreparingRebalance → CompletingRebalance → Stable, and Dead. Implemented as Kafka
//! does: `group.initial.rebalance.delay.ms`, session and rebalance timeouts,
//! generation ids, protocol selection by vote among the protocols all members
//! support, MEMBER_ID_REQUIRED from JoinGroup v4 (KIP-394), static membership
//! (KIP-345: a static member rejoining with a new member id replaces the old one
//! without a rebalance), ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID /
//! REBALANCE_IN_PROGRESS / FENCED_INSTANCE_ID, offset expiry (KIP-211).
//!
//! Offsets and group metadata are stored as records of the internal topic
//! `__consumer_offsets` in Kafka's own key/value schemas ([`schema`]); the group to
//! partition mapping is Kafka's (`abs(String.hashCode) % partitions`), so a client
//! or tool that reads that topic sees what it would see on Kafka.
//!
//! Cluster metadata lives in [`metadata`]: the records of the metadata log, the
//! [`metadata::MetadataImage`] they build (a pure function of the records), and
//! the active [`metadata::Controller`] as a state machine of the same kind, time
//! passed in and records out (its own diagram is in that module). The openraft
//! quorum that stores the records and the timers that drive the controller are the
//! broker's.
//!
//! Not here: the new consumer protocol (KIP-848), transactional offset commits,
//! and which node coordinates which partition (the runtime decides that).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod coordinator;
pub mod group;
pub mod metadata;
pub mod schema;

pub use coordinator::{
    Action, CommitId, CommitPartition, CoordinatorConfig, DescribedMember, FetchedOffset,
    GroupCoordinator, GroupDescription, JoinGroup, JoinResponse, JoinedMember, LeaveResponse,
    ListedGroup, LoadRecord, MemberRef, OffsetCommit, RequestId, SyncGroup, SyncResponse,
};
pub use group::{GroupState, Protocol};
pub use schema::{OFFSETS_TOPIC, OffsetsRecord, build_batch, partition_for};
