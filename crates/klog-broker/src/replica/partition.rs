//! One partition as the broker serves it: the log, the leader's replication state,
//! idempotent-producer state, and the waiters woken when the high watermark moves.
//!
//! The replication rules live in `klog-replication`'s [`LeaderState`]: an append
//! reports the new log end offset to it, and its actions move the high watermark
//! (recorded in the log, waking long-polling fetches) and answer delayed `acks=all`
//! produces; fetches from consumers never read at or past the high watermark. With
//! a single replica the ISR is the leader alone, so the high watermark follows the
//! log end offset at once and an `acks=all` produce is answered without waiting.
//!
//! Locks: `state` (producer table and replication state) is always taken before the
//! storage log's own mutex, and neither is held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use klog_codec::RecordBatch;
use klog_codec::protocol::ResponseError;
use klog_replication::{
    Action, AfterTruncate, EpochEndOffset, FetchRejected, FollowerState, FollowerStep,
    LeaderConfig, LeaderState, PartitionRegistration, ProduceOutcome,
};
use klog_storage::{AppendError, Log, SharedLog};
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use crate::replica::producer_state::{ProducerStateTable, SequenceCheck, last_sequence};
use klog_rt::clock::now_ms;

/// What this broker is for the partition, as the metadata image says.
// The leader is the common case and on the produce path: kept inline, not boxed.
#[allow(clippy::large_enum_variant)]
enum Role {
    /// It leads: appends go through the replication state.
    Leader(LeaderState),
    /// Another broker leads (or nobody: `leader` -1); appends are refused, and
    /// the replica fetcher copies the leader's log.
    Follower {
        /// The leader followed.
        leader: i32,
        /// Its leader epoch.
        leader_epoch: i32,
        /// Truncation and high watermark state (none without a leader).
        follow: Option<FollowerState>,
        /// What the fetcher does next for this partition.
        next: FollowNext,
    },
}

struct State {
    role: Role,
    /// The replication settings, kept for the next time this broker leads.
    config: LeaderConfig,
    /// The partition's registration in the metadata image, once it has one.
    registration: Option<PartitionRegistration>,
    producers: ProducerStateTable,
    /// Delayed `acks=all` produces waiting for the high watermark, by id.
    delayed: HashMap<u64, oneshot::Sender<ProduceOutcome>>,
    next_delayed_id: u64,
}

/// What the replica fetcher does next for a followed partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowNext {
    /// Nothing: there is no leader to follow.
    Idle,
    /// Ask the leader where this epoch ends (`OffsetForLeaderEpoch`), then cut.
    AskEpochEnd {
        /// The local epoch asked about.
        epoch: i32,
    },
    /// Fetch from the local log end.
    Fetch,
}

/// A followed partition as the replica fetcher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowWork {
    /// The leader to fetch from.
    pub leader: i32,
    /// The leader epoch followed (sent as `current_leader_epoch`).
    pub leader_epoch: i32,
    /// What to do.
    pub next: FollowNext,
    /// The local log end (the fetch offset).
    pub log_end_offset: i64,
    /// The local log start.
    pub log_start_offset: i64,
}

/// ISR proposals a leader sends to the controller: topic, partition, proposal.
pub type IsrOutbox =
    tokio::sync::mpsc::UnboundedSender<(String, i32, klog_replication::IsrProposal)>;

/// How an `acks=all` produce waits for the high watermark to pass its records.
#[derive(Debug)]
pub enum CommitWait {
    /// Already decided.
    Done(ProduceOutcome),
    /// Answered later; on its deadline call [`Partition::expire_commit_wait`].
    Waiting {
        /// The delayed produce's id.
        id: u64,
        /// Receives the outcome.
        outcome: oneshot::Receiver<ProduceOutcome>,
    },
}

/// Outcome of a successful produce to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first record (the original one for a duplicate).
    pub base_offset: i64,
    /// Offset after the batch: `acks=all` waits for the high watermark to reach it.
    pub next_offset: i64,
    /// The append time stamped into the batch, for LogAppendTime topics.
    pub log_append_time: Option<i64>,
    /// The log start offset after the append.
    pub log_start_offset: i64,
    /// The flush policy (`flush.messages`) requires the batch on disk before it is
    /// acknowledged: await [`Partition::sync_to`] with this offset.
    pub sync_to: Option<i64>,
}

/// A partition served by this broker.
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub index: i32,
    log: SharedLog,
    state: Mutex<State>,
    waiters: Mutex<Vec<Weak<Notify>>>,
    /// Where this partition's ISR proposals go (none: no controller to tell).
    isr_outbox: Option<IsrOutbox>,
    /// Group commit: whether a sync loop is running now...
    sync_running: Arc<AtomicBool>,
    /// ...the highest offset a caller of [`Partition::sync_to`] waits for...
    sync_wanted: Arc<AtomicI64>,
    /// ...and how far record data is on disk (and how far a sync failed).
    synced: watch::Sender<Synced>,
}

/// Progress of group commit.
#[derive(Clone, Copy, Debug)]
struct Synced {
    /// Record data below this offset is on disk.
    upto: i64,
    /// A sync covering the data below this offset failed.
    failed: i64,
}

/// Clears `sync_running` and wakes the waiters when a sync loop ends (also by a
/// panic), so that one of them starts the next one if it still needs it.
struct SyncLoopEnd {
    running: Arc<AtomicBool>,
    synced: watch::Sender<Synced>,
}

impl Drop for SyncLoopEnd {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        self.synced.send_modify(|_| {});
    }
}

/// What a sync loop works on.
struct SyncTarget {
    topic: String,
    index: i32,
    log: SharedLog,
    wanted: Arc<AtomicI64>,
}

/// The sync loop (blocking): fdatasyncs everything appended so far, publishes it,
/// and goes on at once while a caller waits for data appended during the last
/// sync, so that back-to-back group commits do not wait for a task hand-off.
fn sync_loop(p: &SyncTarget, synced: &watch::Sender<Synced>) {
    let SyncTarget {
        topic,
        index,
        log,
        wanted,
    } = p;
    loop {
        let job = lock(log).sync_job();
        let upto = match &job {
            Ok(job) => job.upto,
            Err(_) => lock(log).log_end_offset(),
        };
        let appended_since = match job.and_then(|job| job.run()) {
            Ok(()) => {
                let mut l = lock(log);
                l.sync_done(upto);
                l.log_end_offset() > upto
            }
            Err(e) => {
                tracing::error!(topic, partition = index, error = %e, "fdatasync failed");
                synced.send_modify(|s| s.failed = s.failed.max(upto));
                return;
            }
        };
        synced.send_modify(|s| s.upto = s.upto.max(upto));
        // Go on only for data that is there: a caller may wait for offsets a
        // truncation removed, and syncing nothing again would spin.
        if !appended_since || wanted.load(Ordering::SeqCst) <= upto {
            return;
        }
    }
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partition({}-{})", self.topic, self.index)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic in another request; the data it guards is still
    // consistent at every await-free step, so serving continues.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Rebuilds idempotent-producer state by scanning the log's batch headers
/// (records are not decoded).
fn rebuild_producers(topic: &str, index: i32, log: &Log, producers: &mut ProducerStateTable) {
    let start = log.log_start_offset();
    let scanned = log.scan_batches(start, |h| {
        producers.record(h, last_sequence(h), h.base_offset, h.max_timestamp);
    });
    if let Err(e) = scanned {
        tracing::warn!(topic, index, error = %e, "could not rebuild producer state");
    }
}

/// Maps a storage append error to the Kafka error code the client gets.
fn append_error_code(e: &AppendError) -> i16 {
    match e {
        AppendError::Corrupt(_) | AppendError::EmptyRecords => ResponseError::CorruptMessage.code(),
        AppendError::BatchTooLarge { .. } | AppendError::RecordsTooLarge { .. } => {
            ResponseError::MessageTooLarge.code()
        }
        AppendError::EmptyBatch { .. } | AppendError::InvalidLastOffsetDelta { .. } => {
            ResponseError::InvalidRecord.code()
        }
        AppendError::StaleLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch.code(),
        AppendError::Closed => ResponseError::NotLeaderOrFollower.code(),
        _ => ResponseError::KafkaStorageError.code(),
    }
}

impl Partition {
    /// Wraps an open log as its only replica's leader, with `config` for the
    /// replication rules; rebuilds idempotent-producer state by scanning its batch
    /// headers (records are not decoded).
    pub fn new(
        topic: String,
        index: i32,
        log: SharedLog,
        node_id: i32,
        config: LeaderConfig,
    ) -> Self {
        Self::open(topic, index, log, node_id, config, true, None)
    }

    /// Wraps an open log. With `assume_committed` (a single replica) everything
    /// in the log counts as committed; otherwise the high watermark recovered
    /// from the checkpoint stands until the replication state moves it. ISR
    /// proposals go to `isr_outbox`.
    pub fn open(
        topic: String,
        index: i32,
        log: SharedLog,
        node_id: i32,
        config: LeaderConfig,
        assume_committed: bool,
        isr_outbox: Option<IsrOutbox>,
    ) -> Self {
        let mut producers = ProducerStateTable::new();
        let leader;
        let synced;
        {
            let mut l = lock(&log);
            // The message-count flush policy is applied here, by group commit.
            l.set_external_sync(true);
            synced = l.synced_offset();
            let leader_epoch = l.latest_epoch().unwrap_or(0);
            rebuild_producers(&topic, index, &l, &mut producers);
            // Single node: the ISR is the leader alone, so everything in the log is
            // committed once it has been recovered.
            leader = LeaderState::single_replica(node_id, leader_epoch, config, l.log_end_offset());
            if assume_committed {
                l.set_high_watermark(leader.high_watermark());
            }
        }
        Self {
            topic,
            index,
            log,
            state: Mutex::new(State {
                role: Role::Leader(leader),
                config,
                registration: None,
                producers,
                delayed: HashMap::new(),
                next_delayed_id: 0,
            }),
            waiters: Mutex::new(Vec::new()),
            isr_outbox,
            sync_running: Arc::new(AtomicBool::new(false)),
            sync_wanted: Arc::new(AtomicI64::new(synced)),
            synced: watch::Sender::new(Synced {
                upto: synced,
                failed: -1,
            }),
        }
    }

    /// The storage log (for reads; appends go through [`Partition::append`]).
    pub fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        match &lock(&self.state).role {
            Role::Leader(l) => l.leader_epoch(),
            Role::Follower { leader_epoch, .. } => *leader_epoch,
        }
    }

    /// The leader: this broker's id while it leads, else the one followed (-1:
    /// none).
    pub fn leader(&self) -> i32 {
        match &lock(&self.state).role {
            Role::Leader(l) => l.node_id(),
            Role::Follower { leader, .. } => *leader,
        }
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        matches!(lock(&self.state).role, Role::Leader(_))
    }

    /// The in-sync replicas, in replica order.
    pub fn isr(&self) -> Vec<i32> {
        let state = lock(&self.state);
        match (&state.role, &state.registration) {
            (Role::Leader(l), _) => l.isr().to_vec(),
            (Role::Follower { .. }, Some(r)) => r.isr.clone(),
            (Role::Follower { .. }, None) => Vec::new(),
        }
    }

    /// The produce-time check of `acks=all`: the Kafka error code
    /// (NOT_ENOUGH_REPLICAS) when the ISR is smaller than `min.insync.replicas`,
    /// NOT_LEADER_OR_FOLLOWER when this broker does not lead.
    pub fn check_acks_all(&self) -> Result<(), i16> {
        match &lock(&self.state).role {
            Role::Leader(l) => l.check_acks_all().map_err(|e| e.code()),
            Role::Follower { .. } => Err(ResponseError::NotLeaderOrFollower.code()),
        }
    }

    /// New replication settings (a topic's `min.insync.replicas` changed).
    pub fn set_leader_config(&self, config: LeaderConfig, now_ms: i64) {
        let mut state = lock(&self.state);
        if state.config == config {
            return;
        }
        state.config = config;
        if let Role::Leader(l) = &mut state.role {
            l.set_config(config, now_ms);
        }
        self.apply_actions(&mut state);
    }

    /// Takes the partition's registration from the metadata image as
    /// `node_id`: leads when it names this broker (a new leader epoch makes a new
    /// leader state, starting the epoch at the log's end), follows otherwise. A
    /// change of leader epoch is the only change of role (CLUSTER.md); the same
    /// epoch only updates the ISR. Stopping to lead ends every waiting `acks=all`
    /// produce with NOT_LEADER_OR_FOLLOWER.
    pub fn apply_registration(
        &self,
        node_id: i32,
        registration: &PartitionRegistration,
        now_ms: i64,
    ) {
        let mut state = lock(&self.state);
        // A partition's first registration always sets up its role: until then it
        // is the leader of its only replica.
        let first = state.registration.is_none();
        let same_epoch_leader = !first
            && matches!(&state.role, Role::Leader(l) if l.leader_epoch() == registration.leader_epoch);
        let same_epoch_follower = !first
            && matches!(&state.role, Role::Follower { leader, leader_epoch, .. }
                if *leader == registration.leader && *leader_epoch == registration.leader_epoch);
        if registration.leader == node_id && same_epoch_leader {
            if let Role::Leader(l) = &mut state.role {
                l.on_partition_state(registration, now_ms);
            }
        } else if registration.leader == node_id {
            if let Role::Leader(old) = &mut state.role {
                old.resign();
            }
            self.apply_actions(&mut state);
            let leader = {
                let mut log = lock(&self.log);
                let leo = log.log_end_offset();
                if let Err(e) = log.assign_leader_epoch(registration.leader_epoch, leo) {
                    tracing::error!(topic = %self.topic, partition = self.index, error = %e, "could not record the leader epoch");
                }
                LeaderState::new(
                    node_id,
                    registration,
                    state.config,
                    leo,
                    log.high_watermark(),
                    now_ms,
                )
            };
            tracing::info!(topic = %self.topic, partition = self.index, leader_epoch = registration.leader_epoch, "leading");
            state.role = Role::Leader(leader);
        } else if !same_epoch_follower {
            if let Role::Leader(old) = &mut state.role {
                old.resign();
                if !first {
                    tracing::info!(topic = %self.topic, partition = self.index, leader = registration.leader, leader_epoch = registration.leader_epoch, "no longer leading");
                }
            }
            self.apply_actions(&mut state);
            let role =
                self.become_follower(&mut state, registration.leader, registration.leader_epoch);
            state.role = role;
        }
        state.registration = Some(registration.clone());
        self.apply_actions(&mut state);
    }

    /// The follower role for `leader` at `leader_epoch` (KIP-101): with an epoch
    /// history, first ask the leader where the latest local epoch ends; without
    /// one, cut to the high watermark.
    fn become_follower(&self, state: &mut State, leader: i32, leader_epoch: i32) -> Role {
        if leader < 0 {
            return Role::Follower {
                leader,
                leader_epoch,
                follow: None,
                next: FollowNext::Idle,
            };
        }
        let mut log = lock(&self.log);
        let history = log.leader_epoch_cache().entries().to_vec();
        let (follow, step) = FollowerState::new(
            leader,
            leader_epoch,
            &history,
            log.log_end_offset(),
            log.high_watermark(),
        );
        let next = self.take_step(state, &mut log, step);
        tracing::info!(topic = %self.topic, partition = self.index, leader, leader_epoch, "following");
        Role::Follower {
            leader,
            leader_epoch,
            follow: Some(follow),
            next,
        }
    }

    /// Performs a follower step (a cut of the log) and returns what comes next.
    fn take_step(&self, state: &mut State, log: &mut Log, step: FollowerStep) -> FollowNext {
        match step {
            FollowerStep::AskEpochEnd { epoch } => FollowNext::AskEpochEnd { epoch },
            FollowerStep::Fetch { .. } => FollowNext::Fetch,
            FollowerStep::Truncate { offset, then } => {
                tracing::info!(topic = %self.topic, partition = self.index, from = log.log_end_offset(), to = offset, "truncating to the leader's log (KIP-101)");
                if let Err(e) = log.truncate_to(offset) {
                    tracing::error!(topic = %self.topic, partition = self.index, error = %e, "truncation failed");
                }
                state.producers = ProducerStateTable::new();
                rebuild_producers(&self.topic, self.index, log, &mut state.producers);
                match then {
                    AfterTruncate::AskEpochEnd { epoch } => FollowNext::AskEpochEnd { epoch },
                    AfterTruncate::Fetch => FollowNext::Fetch,
                }
            }
        }
    }

    /// What the replica fetcher should do for this partition, if it follows a
    /// leader.
    pub fn follow_work(&self) -> Option<FollowWork> {
        let state = lock(&self.state);
        let Role::Follower {
            leader,
            leader_epoch,
            follow: Some(_),
            next,
        } = &state.role
        else {
            return None;
        };
        let log = lock(&self.log);
        Some(FollowWork {
            leader: *leader,
            leader_epoch: *leader_epoch,
            next: *next,
            log_end_offset: log.log_end_offset(),
            log_start_offset: log.log_start_offset(),
        })
    }

    /// The leader's `OffsetForLeaderEpoch` answer, for the work the fetcher took at
    /// `leader_epoch` (ignored if the role changed since): cuts the log where it
    /// diverged from the leader's (KIP-101, KIP-279).
    pub fn on_epoch_end(&self, leader_epoch: i32, answer: EpochEndOffset) {
        let mut state = lock(&self.state);
        let step = {
            let Role::Follower {
                leader_epoch: followed,
                follow: Some(follow),
                ..
            } = &mut state.role
            else {
                return;
            };
            if *followed != leader_epoch {
                return;
            }
            let log = lock(&self.log);
            let history = log.leader_epoch_cache().entries().to_vec();
            follow.on_epoch_end(answer, &history, log.log_end_offset())
        };
        let Some(step) = step else {
            return;
        };
        let next = {
            let mut log = lock(&self.log);
            self.take_step(&mut state, &mut log, step)
        };
        if let Role::Follower { next: n, .. } = &mut state.role {
            *n = next;
        }
    }

    /// Appends batches fetched from the leader byte for byte (their offsets and
    /// epochs are the leader's), rebuilds idempotent-producer state from their
    /// headers, and takes the leader's high watermark, never above the local log
    /// end. Ignored (Ok) if the role changed since the fetch was sent at
    /// `leader_epoch`.
    pub fn append_replica(
        &self,
        leader_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        now_ms: i64,
    ) -> Result<(), AppendError> {
        let mut state = lock(&self.state);
        let State {
            role, producers, ..
        } = &mut *state;
        let Role::Follower {
            leader_epoch: followed,
            follow: Some(follow),
            next: FollowNext::Fetch,
            ..
        } = role
        else {
            return Ok(());
        };
        if *followed != leader_epoch {
            return Ok(());
        }
        let mut log = lock(&self.log);
        if !records.is_empty() {
            log.append_as_follower(records, now_ms)?;
            for (_, batch) in klog_codec::RecordBatches::new(records).flatten() {
                let h = batch.header();
                producers.record(&h, last_sequence(&h), h.base_offset, h.max_timestamp);
            }
        }
        if let Some(hw) = follow.on_fetch_response(leader_high_watermark, log.log_end_offset()) {
            log.set_high_watermark(hw);
        }
        Ok(())
    }

    /// The leader no longer has the fetch offset (its log start moved past it):
    /// start the local log over at `offset`, the leader's log start.
    pub fn restart_at(&self, leader_epoch: i32, offset: i64) {
        let mut state = lock(&self.state);
        if !matches!(&state.role, Role::Follower { leader_epoch: e, follow: Some(_), .. } if *e == leader_epoch)
        {
            return;
        }
        let mut log = lock(&self.log);
        tracing::warn!(topic = %self.topic, partition = self.index, from = log.log_end_offset(), to = offset, "the leader's log starts after ours: starting over there");
        if let Err(e) = log.truncate_fully_and_start_at(offset) {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "could not restart the log");
        }
        state.producers = ProducerStateTable::new();
        if let Role::Follower {
            follow: Some(f), ..
        } = &mut state.role
        {
            f.on_truncated(offset);
        }
    }

    /// A follower's fetch at `fetch_offset` (Fetch with `replica_id`), on the
    /// leader: updates the replication state (may move the high watermark, propose
    /// an expansion, answer delayed produces). The Kafka error code when refused.
    pub fn follower_fetch(
        &self,
        follower: i32,
        fetch_offset: i64,
        leader_epoch: Option<i32>,
        now_ms: i64,
    ) -> Result<(), i16> {
        let mut state = lock(&self.state);
        let Role::Leader(l) = &mut state.role else {
            return Err(ResponseError::NotLeaderOrFollower.code());
        };
        l.on_follower_fetch(follower, fetch_offset, leader_epoch, now_ms)
            .map_err(FetchRejected::code)?;
        self.apply_actions(&mut state);
        Ok(())
    }

    /// Time passes for the leader: ISR shrink for followers that lag, expiry of
    /// delayed produces past their deadline.
    pub fn tick(&self, now_ms: i64) {
        let mut state = lock(&self.state);
        if let Role::Leader(l) = &mut state.role {
            l.tick(now_ms);
            self.apply_actions(&mut state);
        }
    }

    /// Whether `follower`'s broker may join the ISR (unfenced, not shutting down).
    pub fn set_replica_eligible(&self, follower: i32, eligible: bool, now_ms: i64) {
        let mut state = lock(&self.state);
        if let Role::Leader(l) = &mut state.role
            && l.followers()
                .iter()
                .any(|f| f.id == follower && f.eligible != eligible)
        {
            l.set_replica_eligible(follower, eligible, now_ms);
            self.apply_actions(&mut state);
        }
    }

    /// The controller refused the ISR proposal computed from `partition_epoch`.
    pub fn on_isr_change_failed(&self, partition_epoch: i32, error_code: i16, now_ms: i64) {
        let mut state = lock(&self.state);
        if let Role::Leader(l) = &mut state.role {
            l.on_isr_change_failed(partition_epoch, error_code, now_ms);
            self.apply_actions(&mut state);
        }
    }

    /// Whether the ISR is smaller than the replicas (`--under-replicated-partitions`).
    pub fn is_under_replicated(&self) -> bool {
        let state = lock(&self.state);
        match &state.role {
            Role::Leader(l) => l.isr().len() < l.replicas().len(),
            Role::Follower { .. } => state
                .registration
                .as_ref()
                .is_some_and(|r| r.isr.len() < r.replicas.len()),
        }
    }

    /// The registration last taken from the metadata image, if any.
    pub fn registration(&self) -> Option<PartitionRegistration> {
        lock(&self.state).registration.clone()
    }

    /// Stops serving (the partition is deleted or moved away): a leader resigns,
    /// ending every waiting `acks=all` produce with NOT_LEADER_OR_FOLLOWER, and
    /// appends are refused from now on.
    pub fn resign(&self) {
        let mut state = lock(&self.state);
        let Role::Leader(l) = &mut state.role else {
            return;
        };
        l.resign();
        let leader_epoch = l.leader_epoch();
        self.apply_actions(&mut state);
        state.role = Role::Follower {
            leader: -1,
            leader_epoch,
            follow: None,
            next: FollowNext::Idle,
        };
    }

    /// Waits for the high watermark to pass `offset` (an `acks=all` produce whose
    /// records end there), until `deadline_ms`.
    pub fn wait_committed(&self, offset: i64, deadline_ms: i64) -> CommitWait {
        let mut state = lock(&self.state);
        let id = state.next_delayed_id;
        state.next_delayed_id += 1;
        let Role::Leader(leader) = &mut state.role else {
            return CommitWait::Done(ProduceOutcome::NotLeader);
        };
        match leader.register_delayed_produce(id, offset, deadline_ms) {
            Some(outcome) => CommitWait::Done(outcome),
            None => {
                let (tx, rx) = oneshot::channel();
                state.delayed.insert(id, tx);
                CommitWait::Waiting { id, outcome: rx }
            }
        }
    }

    /// Waits until the high watermark passes `offset` (an `acks=all` produce whose
    /// records end there), the replication state decides otherwise, or `deadline`
    /// passes. Woken by the replication state's answer, not by a timer; the
    /// deadline's own timer expires it.
    pub async fn await_committed(&self, offset: i64, deadline: Instant) -> ProduceOutcome {
        let left = deadline.saturating_duration_since(Instant::now());
        let deadline_ms =
            now_ms().saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX));
        match self.wait_committed(offset, deadline_ms) {
            CommitWait::Done(outcome) => outcome,
            CommitWait::Waiting { id, mut outcome } => {
                match tokio::time::timeout_at(deadline, &mut outcome).await {
                    Ok(Ok(o)) => o,
                    // The partition went away with the wait unanswered.
                    Ok(Err(_)) => ProduceOutcome::NotLeader,
                    Err(_) => self.expire_commit_wait(id, outcome),
                }
            }
        }
    }

    /// The delayed produce `id` reached its deadline: it times out, unless it was
    /// answered meanwhile. Returns its outcome.
    pub fn expire_commit_wait(
        &self,
        id: u64,
        outcome: oneshot::Receiver<ProduceOutcome>,
    ) -> ProduceOutcome {
        let mut state = lock(&self.state);
        let mut outcome = outcome;
        if let Ok(o) = outcome.try_recv() {
            return o;
        }
        if let Role::Leader(l) = &mut state.role {
            l.cancel_delayed_produce(id);
        }
        state.delayed.remove(&id);
        ProduceOutcome::TimedOut
    }

    /// Performs what the replication state asks for. Called with `state` held; takes
    /// the log's lock for the high watermark.
    fn apply_actions(&self, state: &mut State) {
        let moved = Self::perform(
            &self.topic,
            self.index,
            self.isr_outbox.as_ref(),
            state,
            &mut lock(&self.log),
        );
        if moved {
            self.wake();
        }
    }

    /// [`Partition::apply_actions`] with the log's lock already held; returns
    /// whether the high watermark moved (the caller wakes the waiters once the
    /// locks are released).
    fn perform(
        topic: &str,
        index: i32,
        outbox: Option<&IsrOutbox>,
        state: &mut State,
        log: &mut Log,
    ) -> bool {
        let mut moved = false;
        while let Role::Leader(leader) = &mut state.role
            && let Some(action) = leader.poll_action()
        {
            match action {
                Action::AdvanceHighWatermark { high_watermark } => {
                    log.set_high_watermark(high_watermark);
                    moved = true;
                }
                Action::CompleteDelayedProduce { id, outcome } => {
                    if let Some(tx) = state.delayed.remove(&id) {
                        // The waiter may have gone (connection closed): nothing to tell.
                        let _ = tx.send(outcome);
                    }
                }
                Action::ProposeIsr(proposal) => match outbox {
                    Some(tx) => {
                        tracing::info!(topic, partition = index, isr = ?proposal.isr, "proposing an ISR change");
                        // The receiver is gone only at shutdown.
                        let _ = tx.send((topic.to_owned(), index, proposal));
                    }
                    None => tracing::warn!(
                        topic,
                        partition = index,
                        ?proposal,
                        "ISR proposal without a controller"
                    ),
                },
            }
        }
        moved
    }

    /// Appends one record batch as leader. `records` must hold exactly one batch
    /// (Produce v3+). Returns the Kafka error code on refusal; nothing is appended
    /// then.
    pub fn append(&self, records: &mut [u8], now_ms: i64) -> Result<Appended, i16> {
        let header = {
            let (batch, rest) =
                RecordBatch::parse(records).map_err(|_| ResponseError::CorruptMessage.code())?;
            if !rest.is_empty() {
                // Produce v3+ carries exactly one batch per partition.
                return Err(ResponseError::InvalidRecord.code());
            }
            batch.header()
        };
        // The sequence check reads header fields before the CRC is checked. On the
        // usual path (Append) the log validates the batch once, in `Log::append`;
        // only when the check would answer without appending is the CRC checked
        // here, so that a corrupt batch gets CORRUPT_MESSAGE rather than being
        // acknowledged as a duplicate or refused for its sequence.
        let verified = |records: &[u8]| {
            RecordBatch::new(records)
                .and_then(|b| b.validate())
                .map_err(|_| ResponseError::CorruptMessage.code())
        };
        let last_seq = last_sequence(&header);
        let mut state = lock(&self.state);
        let epoch = match &state.role {
            Role::Leader(l) => l.leader_epoch(),
            Role::Follower { .. } => return Err(ResponseError::NotLeaderOrFollower.code()),
        };
        match state.producers.check(&header, last_seq) {
            SequenceCheck::Append => {}
            SequenceCheck::Reject(code) => {
                verified(records)?;
                return Err(code);
            }
            SequenceCheck::Duplicate(meta) => {
                verified(records)?;
                let log = lock(&self.log);
                let next = meta.first_offset + i64::from(header.last_offset_delta) + 1;
                return Ok(Appended {
                    base_offset: meta.first_offset,
                    next_offset: next,
                    log_append_time: None,
                    log_start_offset: log.log_start_offset(),
                    sync_to: (log.config().flush_interval_messages.is_some()
                        && log.synced_offset() < next)
                        .then_some(next),
                });
            }
        }
        let mut log = lock(&self.log);
        let info = log.append(records, epoch, now_ms).map_err(|e| {
            if !e.is_invalid_input() {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "append failed");
            }
            append_error_code(&e)
        })?;
        state
            .producers
            .record(&header, last_seq, info.first_offset, info.max_timestamp);
        let appended = Appended {
            base_offset: info.first_offset,
            next_offset: info.last_offset + 1,
            log_append_time: info.log_append_time,
            log_start_offset: log.log_start_offset(),
            sync_to: log.flush_due().then_some(info.last_offset + 1),
        };
        if let Role::Leader(l) = &mut state.role {
            l.on_append(log.log_end_offset(), now_ms);
        }
        // Fetches wait for new data, not only for the high watermark: followers
        // long-poll for the next batch.
        Self::perform(
            &self.topic,
            self.index,
            self.isr_outbox.as_ref(),
            &mut state,
            &mut log,
        );
        drop(log);
        drop(state);
        self.wake();
        Ok(appended)
    }

    /// Group commit: returns once record data below `offset` is on disk. Concurrent
    /// callers share fdatasyncs: the first to find no sync running starts a sync
    /// loop (on a blocking thread, without the log's lock), which covers everything
    /// appended so far and repeats at once while callers wait for more; callers
    /// return as soon as their data is covered. Returns the Kafka error code if a
    /// sync covering `offset` fails.
    pub async fn sync_to(&self, offset: i64) -> Result<(), i16> {
        self.sync_wanted.fetch_max(offset, Ordering::SeqCst);
        let mut synced = self.synced.subscribe();
        loop {
            let state = *synced.borrow_and_update();
            if state.upto >= offset {
                return Ok(());
            }
            if state.failed >= offset {
                return Err(ResponseError::KafkaStorageError.code());
            }
            let lead = self
                .sync_running
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if lead {
                let end = SyncLoopEnd {
                    running: self.sync_running.clone(),
                    synced: self.synced.clone(),
                };
                let target = SyncTarget {
                    topic: self.topic.clone(),
                    index: self.index,
                    log: self.log.clone(),
                    wanted: self.sync_wanted.clone(),
                };
                // Not awaited: this caller returns when its own data is covered,
                // while the loop may go on for later appends.
                drop(klog_client::task::spawn(klog_client::task::blocking(
                    move || {
                        sync_loop(&target, &end.synced);
                        drop(end);
                    },
                )));
            }
            // A loop is running: it publishes every sync and its own end.
            if synced.changed().await.is_err() {
                return Err(ResponseError::KafkaStorageError.code());
            }
        }
    }

    /// Registers `waiter` to be notified the next time the high watermark moves.
    pub fn register_waiter(&self, waiter: &Arc<Notify>) {
        let mut w = lock(&self.waiters);
        w.retain(|x| x.strong_count() > 0);
        w.push(Arc::downgrade(waiter));
    }

    fn wake(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for w in waiters {
            if let Some(n) = w.upgrade() {
                n.notify_one();
            }
        }
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> i64 {
        lock(&self.log).high_watermark()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(flush_messages: Option<u64>) -> (tempfile::TempDir, Arc<Partition>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = klog_storage::LogConfig {
            flush_interval_messages: flush_messages,
            ..klog_storage::LogConfig::default()
        };
        let log = Log::open(dir.path(), config, 0).expect("open");
        let p = Partition::new(
            "t".to_owned(),
            0,
            Arc::new(Mutex::new(log)),
            1,
            LeaderConfig::default(),
        );
        (dir, Arc::new(p))
    }

    fn batch(value: &[u8]) -> Vec<u8> {
        let mut b = klog_codec::BatchBuilder::new(Vec::new(), klog_codec::Compression::None);
        b.push(1, None, Some(value), &[]).expect("push");
        b.finish().expect("finish")
    }

    fn idempotent_batch(seq: i32, value: &[u8]) -> Vec<u8> {
        let mut b = klog_codec::BatchBuilder::new(Vec::new(), klog_codec::Compression::None);
        b.set_producer(7, 0, seq);
        b.push(1, None, Some(value), &[]).expect("push");
        b.finish().expect("finish")
    }

    /// KIP-98 duplicates are acknowledged with their original offset, but only when
    /// the retried batch is intact: a corrupt retry or a corrupt out-of-order batch
    /// gets CORRUPT_MESSAGE, and nothing is appended either way.
    #[test]
    fn idempotent_retries_are_checked_for_corruption_before_answering() {
        let (_dir, p) = partition(None);
        let first = idempotent_batch(0, b"a");
        let a = p.append(&mut first.clone(), 1).expect("append");
        assert_eq!(a.base_offset, 0);
        let dup = p.append(&mut first.clone(), 1).expect("duplicate");
        assert_eq!(dup.base_offset, 0);
        let corrupt = ResponseError::CorruptMessage.code();
        let mut bad_retry = first.clone();
        if let Some(last) = bad_retry.last_mut() {
            *last ^= 0xff;
        }
        assert_eq!(p.append(&mut bad_retry, 1), Err(corrupt));
        let mut gap = idempotent_batch(5, b"b");
        assert_eq!(
            p.append(&mut gap.clone(), 1),
            Err(crate::replica::producer_state::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        if let Some(last) = gap.last_mut() {
            *last ^= 0xff;
        }
        assert_eq!(p.append(&mut gap, 1), Err(corrupt));
        let mut bad_next = idempotent_batch(1, b"c");
        if let Some(last) = bad_next.last_mut() {
            *last ^= 0xff;
        }
        assert_eq!(p.append(&mut bad_next, 1), Err(corrupt));
        assert_eq!(p.log().log_end_offset(), 1);
        let next = p
            .append(&mut idempotent_batch(1, b"c"), 1)
            .expect("next in sequence");
        assert_eq!(next.base_offset, 1);
    }

    /// The image's registration decides the role: a follower refuses appends and
    /// acks=all waits; a new leader epoch is recorded in the log's epoch cache and
    /// stamped into the batches appended after it.
    #[test]
    fn registrations_change_the_role_only_with_the_leader_epoch() {
        let (_dir, p) = partition(None);
        p.append(&mut batch(b"a"), 1)
            .expect("single-replica leader");
        let mut reg = PartitionRegistration::new(vec![2, 1]);
        reg.leader_epoch = 3;
        p.apply_registration(1, &reg, 5);
        assert!(!p.is_leader());
        assert_eq!((p.leader(), p.leader_epoch()), (2, 3));
        let not_leader = ResponseError::NotLeaderOrFollower.code();
        assert_eq!(p.append(&mut batch(b"b"), 6), Err(not_leader));
        assert_eq!(p.append(&mut idempotent_batch(0, b"b"), 6), Err(not_leader));
        assert_eq!(p.check_acks_all(), Err(not_leader));
        assert!(matches!(
            p.wait_committed(1, 100),
            CommitWait::Done(ProduceOutcome::NotLeader)
        ));
        reg.leader = 1;
        reg.leader_epoch = 4;
        reg.isr = vec![1];
        p.apply_registration(1, &reg, 7);
        assert!(p.is_leader());
        assert_eq!(p.leader_epoch(), 4);
        assert_eq!(p.isr(), vec![1]);
        assert_eq!(p.log().latest_epoch(), Some(4));
        let a = p.append(&mut batch(b"c"), 8).expect("leader again");
        assert_eq!(a.base_offset, 1);
        let read = p.log().read_to_vec(1, 1 << 20, 2).expect("read");
        let (b, _) = RecordBatch::parse(&read).expect("batch");
        assert_eq!(b.partition_leader_epoch(), 4);
        // With follower 2 outside the ISR the high watermark follows the leader.
        assert_eq!(p.high_watermark(), 2);
        // Same epoch, a bigger ISR: no new leader state, the ISR follows.
        reg.isr = vec![2, 1];
        reg.partition_epoch += 1;
        p.apply_registration(1, &reg, 9);
        assert_eq!(p.isr(), vec![2, 1]);
        assert_eq!(p.leader_epoch(), 4);
    }

    #[test]
    fn no_flush_policy_asks_for_no_sync() {
        let (_dir, p) = partition(None);
        let a = p.append(&mut batch(b"v"), 1).expect("append");
        assert_eq!(a.sync_to, None);
    }

    /// Appends `value` and waits until it is on disk, as a durable produce does.
    async fn append_and_sync(p: &Partition, value: &[u8]) {
        let a = p.append(&mut batch(value), 1).expect("append");
        let to = a.sync_to.expect("flush.messages=1 asks for a sync");
        assert_eq!(to, a.next_offset);
        p.sync_to(to).await.expect("sync");
        assert!(p.log().synced_offset() >= to);
    }

    /// Waits (at most 5 s: the loop is a blocking task) for the sync loop to end.
    async fn assert_sync_loop_ends(p: &Partition) {
        for _ in 0..500 {
            if !p.sync_running.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            !p.sync_running.load(Ordering::SeqCst),
            "sync loop still running"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_produces_share_syncs_that_cover_every_append() {
        let (_dir, p) = partition(Some(1));
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                append_and_sync(&p, &[i; 100]).await;
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(p.log().synced_offset(), 16);
        // A later call for what is already durable returns at once.
        p.sync_to(16).await.expect("sync");
        // Group commit syncs record data only; the recovery point moves on a full flush.
        assert_eq!(p.log().recovery_point(), 0);
        p.log().flush().expect("flush");
        assert_eq!(p.log().recovery_point(), 16);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_loop_covers_appends_made_while_it_runs_then_stops() {
        let (_dir, p) = partition(Some(1));
        // Producers that append and wait, over and over, keep one loop busy; every
        // acknowledged offset must be on disk when sync_to returns.
        let mut tasks = Vec::new();
        for i in 0..4u8 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    append_and_sync(&p, &[i; 200]).await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(p.log().synced_offset(), 200);
        // With nobody waiting, the loop ends.
        assert_sync_loop_ends(&p).await;
        // A new append after the loop ended starts a new one.
        let a = p.append(&mut batch(b"late"), 1).expect("append");
        p.sync_to(a.sync_to.expect("sync wanted"))
            .await
            .expect("sync");
        assert_eq!(p.log().synced_offset(), 201);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_loop_stops_when_the_offset_waited_for_is_not_in_the_log() {
        let (_dir, p) = partition(Some(1));
        let a = p.append(&mut batch(b"v"), 1).expect("append");
        // Someone waits for offsets past the log's end (as after a truncation):
        // the loop must not spin on syncs of nothing.
        p.sync_wanted
            .fetch_max(a.next_offset + 10, Ordering::SeqCst);
        p.sync_to(a.next_offset).await.expect("sync");
        assert_sync_loop_ends(&p).await;
    }
}
