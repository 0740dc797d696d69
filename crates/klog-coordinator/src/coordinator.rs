//! The group coordinator: every group this node coordinates, driven by events with
//! the time passed in, handing back [`Action`]s.
//!
//! Call order for a runtime:
//!
//! 1. When this node becomes the coordinator of a `__consumer_offsets` partition,
//!    read and decode its records ([`LoadRecord::decode`]) and hand them over in
//!    log order with [`GroupCoordinator::load_partition`] (or, for a whole log at
//!    start, [`GroupCoordinator::load_record`] for each record, then
//!    [`GroupCoordinator::finish_loading`]); when it stops, call
//!    [`GroupCoordinator::unload_partition`]. The coordinator has no "loading"
//!    state: until `load_partition` it simply holds no groups of that partition,
//!    and it is the runtime, which routes requests to it, that answers
//!    COORDINATOR_LOAD_IN_PROGRESS for them meanwhile (as it answers
//!    NOT_COORDINATOR for partitions it does not lead).
//! 2. For each request, call the matching method with `now` (ms since the epoch).
//!    Methods whose answer never waits (heartbeat, commit, fetch, leave, ...)
//!    return it; JoinGroup and SyncGroup may have to wait for other members, so
//!    their answers come out later as [`Action::RespondJoin`] / [`Action::RespondSync`]
//!    carrying the [`RequestId`] the runtime chose.
//! 3. Call [`GroupCoordinator::tick`] periodically (every few tens of ms, or at
//!    [`GroupCoordinator::next_deadline`]): it expires sessions, ends join phases and
//!    expires old offsets.
//! 4. After every call, drain [`GroupCoordinator::take_actions`] and perform them in
//!    order: persist records first, then send the responses that follow them.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use klog_codec::protocol::ResponseError;

pub use crate::group::{CommitId, RequestId};
use crate::group::{Group, GroupState, InitialDelay, Member, Protocol};
use crate::schema::{
    self, OffsetValue, OffsetsRecord, RecordKey, SchemaError, encode_group_key, encode_group_value,
    encode_offset_key, encode_offset_value,
};

const NONE: i16 = 0;

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// Coordinator settings (Kafka's broker configuration names in the field docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `offsets.topic.num.partitions` (default 50).
    pub offsets_topic_partitions: i32,
    /// `group.initial.rebalance.delay.ms` (default 3000): how long the first rebalance
    /// of an empty group waits for more members.
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` (default 6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (default 1800000).
    pub max_session_timeout_ms: i32,
    /// `offsets.retention.minutes` in ms (default 7 days).
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (default 600000).
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (default 4096).
    pub max_metadata_size: usize,
    /// Mixed into generated member ids so that ids stay unique across
    /// coordinators and their restarts (the runtime passes a random number;
    /// tests pass a constant).
    pub member_id_seed: u64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            offsets_topic_partitions: 50,
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            max_metadata_size: 4096,
            member_id_seed: 0,
        }
    }
}

/// A JoinGroup request (any version 0-5; the runtime fills in what older versions
/// lack: `rebalance_timeout_ms = session_timeout_ms` for v0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroup {
    /// Runtime's id for the delayed response.
    pub request: RequestId,
    /// Request version: from v4 a member without an id gets MEMBER_ID_REQUIRED.
    pub version: i16,
    /// Group id.
    pub group_id: String,
    /// Member id, empty for a new member.
    pub member_id: String,
    /// `group.instance.id` for static membership (v5).
    pub group_instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol type, `consumer` for consumers.
    pub protocol_type: String,
    /// Supported protocols, in preference order.
    pub protocols: Vec<Protocol>,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// Kafka error code (0 = none).
    pub error: i16,
    /// Generation, or -1 on error.
    pub generation_id: i32,
    /// Selected protocol.
    pub protocol_name: Option<String>,
    /// Leader's member id (empty on error).
    pub leader: String,
    /// The member's id (newly assigned for a new member).
    pub member_id: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    fn error(error: ResponseError, member_id: &str) -> Self {
        Self {
            error: error.code(),
            generation_id: -1,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    /// Runtime's id for the delayed response.
    pub request: RequestId,
    /// Group id.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` (v3).
    pub group_instance_id: Option<String>,
    /// From the leader: each member's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// Kafka error code.
    pub error: i16,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// Who a Heartbeat or LeaveGroup is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// Member id (may be empty in LeaveGroup v3 with an instance id).
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
}

/// The answer to a LeaveGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResponse {
    /// Top-level error code.
    pub error: i16,
    /// Per member (LeaveGroup v3 batches members).
    pub members: Vec<(MemberRef, i16)>,
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset to commit.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
}

/// An OffsetCommit request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// Group id.
    pub group_id: String,
    /// Generation, or -1 for a commit outside group management.
    pub generation_id: i32,
    /// Member id (empty outside group management).
    pub member_id: String,
    /// `group.instance.id` (v7).
    pub group_instance_id: Option<String>,
    /// v2-4 `retention_time_ms`: -1 for the broker default.
    pub retention_time_ms: i64,
    /// The offsets.
    pub offsets: Vec<CommitPartition>,
}

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset, or -1 if none.
    pub offset: i64,
    /// Leader epoch, or -1.
    pub leader_epoch: i32,
    /// Metadata (empty if none).
    pub metadata: String,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type (empty for groups that only hold offsets).
    pub protocol_type: String,
    /// State.
    pub state: GroupState,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the selected protocol (Stable groups only, as Kafka).
    pub metadata: Bytes,
    /// Assignment (Stable groups only).
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it; an unknown group is `Dead` with no members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// State.
    pub state: GroupState,
    /// Protocol type.
    pub protocol_type: String,
    /// Selected protocol (Stable groups only).
    pub protocol: String,
    /// Members.
    pub members: Vec<DescribedMember>,
}

/// What the runtime must do, in order.
///
/// Not `#[non_exhaustive]`: klog's own runtime matches it without a wildcard arm,
/// so a new variant is a compile error there instead of a silent default (an
/// unknown follower step taken as "fetch" would be the unsafe default of a
/// truncation protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a delayed JoinGroup response.
    RespondJoin {
        /// The request it answers.
        request: RequestId,
        /// The response.
        response: JoinResponse,
    },
    /// Send a delayed SyncGroup response.
    RespondSync {
        /// The request it answers.
        request: RequestId,
        /// The response.
        response: SyncResponse,
    },
    /// Append the group's metadata record (or its tombstone) to `__consumer_offsets`.
    PersistGroupMetadata {
        /// `__consumer_offsets` partition.
        partition: i32,
        /// Group id.
        group: String,
        /// The record.
        record: OffsetsRecord,
    },
    /// Append committed offsets (or tombstones) to `__consumer_offsets`.
    PersistOffsets {
        /// `__consumer_offsets` partition.
        partition: i32,
        /// Group id.
        group: String,
        /// The records.
        records: Vec<OffsetsRecord>,
        /// For an OffsetCommit's offsets: they are staged, not yet visible to
        /// OffsetFetch, until the runtime reports with
        /// [`GroupCoordinator::complete_commit`] whether the append reached the
        /// partition's ISR. `None` for tombstones, which apply at once.
        commit: Option<CommitId>,
    },
}

/// The group coordinator for every group whose `__consumer_offsets` partition this
/// node leads (on one node: all of them).
#[derive(Debug)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    groups: BTreeMap<String, Group>,
    actions: Vec<Action>,
    counter: u64,
    order: u64,
    commits: CommitId,
    last_retention_check: Option<i64>,
}

/// What group-level handlers need besides the group: config, the outbox, counters.
struct Ctx<'a> {
    config: &'a CoordinatorConfig,
    out: &'a mut Vec<Action>,
    counter: &'a mut u64,
    order: &'a mut u64,
}

impl Ctx<'_> {
    fn next(&mut self) -> u64 {
        *self.counter += 1;
        *self.counter
    }

    fn next_order(&mut self) -> u64 {
        *self.order += 1;
        *self.order
    }

    fn partition(&self, group: &str) -> i32 {
        schema::partition_for(group, self.config.offsets_topic_partitions)
    }

    fn respond_join(&mut self, request: RequestId, response: JoinResponse) {
        self.out.push(Action::RespondJoin { request, response });
    }

    fn respond_sync(&mut self, request: RequestId, error: i16, assignment: Bytes) {
        self.out.push(Action::RespondSync {
            request,
            response: SyncResponse { error, assignment },
        });
    }

    fn persist_group(&mut self, group: &Group) {
        self.out.push(Action::PersistGroupMetadata {
            partition: self.partition(&group.id),
            group: group.id.clone(),
            record: OffsetsRecord {
                key: encode_group_key(&group.id),
                value: Some(encode_group_value(&group.to_value())),
            },
        });
    }
}

/// One `__consumer_offsets` record, decoded, for [`GroupCoordinator::load_partition`]
/// or [`GroupCoordinator::apply_load_record`]. Decoding is separate from applying
/// so that a runtime can read and decode a whole partition without holding the
/// coordinator, then hand it the result in one short step.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadRecord {
    /// `OffsetCommitKey` with its value, or `None` for a tombstone.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The committed offset; `None`: deleted.
        value: Option<OffsetValue>,
    },
    /// `GroupMetadataKey` with its value, or `None` for a tombstone.
    Group {
        /// Group id.
        group: String,
        /// The group's membership; `None`: the group was deleted.
        value: Option<schema::GroupValue>,
    },
}

impl LoadRecord {
    /// Decodes a record's key and value (Kafka's schemas, [`schema`]).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, SchemaError> {
        Ok(match schema::decode_key(key)? {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => LoadRecord::Offset {
                group,
                topic,
                partition,
                value: value.map(schema::decode_offset_value).transpose()?,
            },
            RecordKey::Group { group } => LoadRecord::Group {
                group,
                value: value.map(schema::decode_group_value).transpose()?,
            },
        })
    }
}

impl GroupCoordinator {
    /// An empty coordinator.
    pub fn new(config: CoordinatorConfig) -> Self {
        Self {
            config,
            groups: BTreeMap::new(),
            actions: Vec::new(),
            counter: 0,
            order: 0,
            commits: 0,
            last_retention_check: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition holding `group`.
    pub fn partition_for(&self, group: &str) -> i32 {
        schema::partition_for(group, self.config.offsets_topic_partitions)
    }

    /// Drains the actions produced so far, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The state of a group, if it exists.
    pub fn group_state(&self, group: &str) -> Option<GroupState> {
        self.groups.get(group).map(|g| g.state)
    }

    /// The generation of a group, if it exists.
    pub fn generation(&self, group: &str) -> Option<i32> {
        self.groups.get(group).map(|g| g.generation)
    }

    /// The earliest time at which [`GroupCoordinator::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut next: Option<i64> = self
            .last_retention_check
            .map(|t| t + self.config.offsets_retention_check_interval_ms);
        let mut consider = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        for g in self.groups.values() {
            // Only a rebalance in progress waits for its join deadline; `tick`
            // ignores it in every other state, so reporting it would wake the timer
            // for nothing.
            if g.state == GroupState::PreparingRebalance
                && let Some(t) = g.join_deadline
            {
                consider(t);
            }
            for &t in g.pending.values() {
                consider(t);
            }
            for m in g.members.values().filter(|m| !m.keep_alive()) {
                consider(m.session_deadline);
            }
        }
        next
    }

    fn split(&mut self) -> (&mut BTreeMap<String, Group>, Ctx<'_>) {
        (
            &mut self.groups,
            Ctx {
                config: &self.config,
                out: &mut self.actions,
                counter: &mut self.counter,
                order: &mut self.order,
            },
        )
    }

    // -----------------------------------------------------------------------------
    // JoinGroup

    /// JoinGroup. The response comes out as [`Action::RespondJoin`], now or later.
    pub fn join(&mut self, req: JoinGroup, now: i64) {
        let min = self.config.min_session_timeout_ms;
        let max = self.config.max_session_timeout_ms;
        let (groups, mut ctx) = self.split();
        let fail = |ctx: &mut Ctx<'_>, e: ResponseError| {
            ctx.respond_join(req.request, JoinResponse::error(e, &req.member_id))
        };
        if req.group_id.is_empty() {
            return fail(&mut ctx, ResponseError::InvalidGroupId);
        }
        if req.session_timeout_ms < min || req.session_timeout_ms > max {
            return fail(&mut ctx, ResponseError::InvalidSessionTimeout);
        }
        let is_new = req.member_id.is_empty();
        if !groups.contains_key(&req.group_id) {
            if !is_new {
                return fail(&mut ctx, ResponseError::UnknownMemberId);
            }
            groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), Some(now)),
            );
        }
        let Some(group) = groups.get_mut(&req.group_id) else {
            return;
        };
        if group.state == GroupState::Dead {
            // Being deleted: the client rediscovers the coordinator and retries.
            return fail(&mut ctx, ResponseError::CoordinatorNotAvailable);
        }
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(&mut ctx, ResponseError::InconsistentGroupProtocol);
        }
        if is_new {
            join_new_member(group, &mut ctx, req, now);
        } else {
            join_known_member(group, &mut ctx, req, now);
        }
    }

    // -----------------------------------------------------------------------------
    // SyncGroup

    /// SyncGroup. The response comes out as [`Action::RespondSync`]: at once, or when
    /// the leader sends the assignment.
    pub fn sync(&mut self, req: SyncGroup, now: i64) {
        let (groups, mut ctx) = self.split();
        let fail = |ctx: &mut Ctx<'_>, e: ResponseError| {
            ctx.respond_sync(req.request, e.code(), Bytes::new())
        };
        if req.group_id.is_empty() {
            return fail(&mut ctx, ResponseError::InvalidGroupId);
        }
        let Some(group) = groups.get_mut(&req.group_id) else {
            return fail(&mut ctx, ResponseError::UnknownMemberId);
        };
        if group.state == GroupState::Dead {
            return fail(&mut ctx, ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(&req.member_id, req.group_instance_id.as_deref()) {
            return fail(&mut ctx, ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(&req.member_id) {
            return fail(&mut ctx, ResponseError::UnknownMemberId);
        }
        if req.generation_id != group.generation {
            return fail(&mut ctx, ResponseError::IllegalGeneration);
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => fail(&mut ctx, ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(&mut ctx, ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                if let Some(m) = group.members.get_mut(&req.member_id) {
                    m.session_deadline = now + i64::from(m.session_timeout_ms);
                    let assignment = m.assignment.clone();
                    ctx.respond_sync(req.request, NONE, assignment);
                }
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = group.members.get_mut(&req.member_id) {
                    m.awaiting_sync = Some(req.request);
                    m.session_deadline = now + i64::from(m.session_timeout_ms);
                }
                if group.leader.as_deref() != Some(req.member_id.as_str()) {
                    return;
                }
                let assignments: BTreeMap<String, Bytes> = req.assignments.into_iter().collect();
                for (id, m) in group.members.iter_mut() {
                    m.assignment = assignments.get(id).cloned().unwrap_or_default();
                }
                group.transition(GroupState::Stable, now);
                ctx.persist_group(group);
                for m in group.members.values_mut() {
                    if let Some(request) = m.awaiting_sync.take() {
                        m.session_deadline = now + i64::from(m.session_timeout_ms);
                        ctx.respond_sync(request, NONE, m.assignment.clone());
                    }
                }
            }
        }
    }

    // -----------------------------------------------------------------------------
    // Heartbeat and LeaveGroup

    /// Heartbeat: returns the error code (REBALANCE_IN_PROGRESS tells the member to
    /// rejoin).
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member: &MemberRef,
        now: i64,
    ) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        if group.state == GroupState::Dead {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(&member.member_id, member.group_instance_id.as_deref()) {
            return code(ResponseError::FencedInstanceId);
        }
        let state = group.state;
        let generation = group.generation;
        let Some(m) = group.members.get_mut(&member.member_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        if generation_id != generation {
            return code(ResponseError::IllegalGeneration);
        }
        m.session_deadline = now + i64::from(m.session_timeout_ms);
        match state {
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
            GroupState::Empty | GroupState::Dead => code(ResponseError::UnknownMemberId),
        }
    }

    /// LeaveGroup for one member (v0-2) or a batch (v3).
    pub fn leave(&mut self, group_id: &str, members: Vec<MemberRef>, now: i64) -> LeaveResponse {
        let (groups, mut ctx) = self.split();
        let Some(group) = groups.get_mut(group_id) else {
            let err = code(ResponseError::UnknownMemberId);
            return LeaveResponse {
                error: NONE,
                members: members.into_iter().map(|m| (m, err)).collect(),
            };
        };
        if group.state == GroupState::Dead {
            let err = code(ResponseError::CoordinatorNotAvailable);
            return LeaveResponse {
                error: err,
                members: members.into_iter().map(|m| (m, err)).collect(),
            };
        }
        let mut results = Vec::with_capacity(members.len());
        for m in members {
            let error = leave_one(group, &mut ctx, &m, now);
            results.push((m, error));
        }
        LeaveResponse {
            error: NONE,
            members: results,
        }
    }

    // -----------------------------------------------------------------------------
    // Offsets

    /// OffsetCommit: returns an error code per partition, in request order, and emits
    /// [`Action::PersistOffsets`] for what was accepted. The accepted offsets are
    /// staged: OffsetFetch shows them once [`GroupCoordinator::complete_commit`]
    /// reports their append done, and never if it failed.
    pub fn commit_offsets(&mut self, req: OffsetCommit, now: i64) -> Vec<(String, i32, i16)> {
        self.commits += 1;
        let commit = self.commits;
        let (groups, ctx) = self.split();
        let all = |e: i16| {
            req.offsets
                .iter()
                .map(|p| (p.topic.clone(), p.partition, e))
                .collect::<Vec<_>>()
        };
        if !groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                // A member of a group this coordinator does not know: an old
                // generation, or a group that moved.
                return all(code(ResponseError::IllegalGeneration));
            }
            groups.insert(req.group_id.clone(), Group::new(req.group_id.clone(), None));
        }
        let Some(group) = groups.get_mut(&req.group_id) else {
            return all(code(ResponseError::UnknownServerError));
        };
        let check = if group.state == GroupState::Dead {
            code(ResponseError::CoordinatorNotAvailable)
        } else if group.is_fenced(&req.member_id, req.group_instance_id.as_deref()) {
            code(ResponseError::FencedInstanceId)
        } else if req.generation_id < 0 && group.state == GroupState::Empty {
            NONE
        } else if group.state == GroupState::CompletingRebalance {
            code(ResponseError::RebalanceInProgress)
        } else if !group.members.contains_key(&req.member_id) {
            code(ResponseError::UnknownMemberId)
        } else if req.generation_id != group.generation {
            code(ResponseError::IllegalGeneration)
        } else {
            NONE
        };
        if check != NONE {
            return all(check);
        }
        if let Some(m) = group.members.get_mut(&req.member_id) {
            m.session_deadline = now + i64::from(m.session_timeout_ms);
        }
        let expire = (req.retention_time_ms > 0).then(|| now.saturating_add(req.retention_time_ms));
        let mut records = Vec::new();
        let mut staged = Vec::new();
        let mut results = Vec::with_capacity(req.offsets.len());
        for p in req.offsets {
            let metadata = p.metadata.unwrap_or_default();
            if metadata.len() > ctx.config.max_metadata_size {
                results.push((
                    p.topic,
                    p.partition,
                    code(ResponseError::OffsetMetadataTooLarge),
                ));
                continue;
            }
            let value = OffsetValue {
                offset: p.offset,
                leader_epoch: p.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: expire,
            };
            records.push(OffsetsRecord {
                key: encode_offset_key(&group.id, &p.topic, p.partition),
                value: Some(encode_offset_value(&value)),
            });
            let key = (p.topic.clone(), p.partition);
            group.pending_offsets.insert(key.clone(), commit);
            staged.push((key, value));
            results.push((p.topic, p.partition, NONE));
        }
        if !records.is_empty() {
            group.staged.insert(commit, staged);
            ctx.out.push(Action::PersistOffsets {
                partition: ctx.partition(&group.id),
                group: group.id.clone(),
                records,
                commit: Some(commit),
            });
        }
        results
    }

    /// The append of an OffsetCommit's offsets finished: `ok` if the records are on
    /// the ISR of their partition. On success each offset becomes the committed one,
    /// unless a later commit of the same partition completed first or the offset was
    /// deleted meanwhile; on failure the offsets are dropped and OffsetFetch keeps
    /// answering what was committed before (Kafka's `onOffsetCommitAppend` and
    /// `failPendingOffsetWrite`). A group this coordinator no longer holds (its
    /// partition moved) is ignored: whoever loads it reads the log.
    pub fn complete_commit(&mut self, group_id: &str, commit: CommitId, ok: bool) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some(staged) = group.staged.remove(&commit) else {
            return;
        };
        for (key, value) in staged {
            let Some(&newest) = group.pending_offsets.get(&key) else {
                // Deleted while it was being appended.
                continue;
            };
            if ok && group.committed_by.get(&key).is_none_or(|&by| by < commit) {
                group.committed_by.insert(key.clone(), commit);
                group.offsets.insert(key.clone(), value);
            }
            if newest == commit {
                group.pending_offsets.remove(&key);
            }
        }
    }

    /// OffsetFetch: the committed offsets of `partitions`, or of every partition the
    /// group has committed when `None` (v2+ with `topics = null`). Partitions without
    /// a committed offset get -1.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<FetchedOffset> {
        let group = self.groups.get(group_id);
        let lookup = |topic: &str, partition: i32| {
            let v = group.and_then(|g| g.offsets.get(&(topic.to_owned(), partition)));
            FetchedOffset {
                topic: topic.to_owned(),
                partition,
                offset: v.map_or(-1, |v| v.offset),
                leader_epoch: v.map_or(-1, |v| v.leader_epoch),
                metadata: v.map(|v| v.metadata.clone()).unwrap_or_default(),
            }
        };
        match partitions {
            Some(list) => list.iter().map(|(t, p)| lookup(t, *p)).collect(),
            None => group
                .map(|g| g.offsets.keys().map(|(t, p)| lookup(t, *p)).collect())
                .unwrap_or_default(),
        }
    }

    /// OffsetDelete: removes committed offsets of topics the group no longer
    /// consumes. Returns the top-level error and one error per partition.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> (i16, Vec<(String, i32, i16)>) {
        let (groups, ctx) = self.split();
        let Some(group) = groups
            .get_mut(group_id)
            .filter(|g| g.state != GroupState::Dead)
        else {
            return (code(ResponseError::GroupIdNotFound), Vec::new());
        };
        let subscribed = if group.state == GroupState::Empty {
            Default::default()
        } else {
            match group.subscribed_topics() {
                Some(topics) => topics,
                None => return (code(ResponseError::NonEmptyGroup), Vec::new()),
            }
        };
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                results.push((
                    topic.clone(),
                    *partition,
                    code(ResponseError::GroupSubscribedToTopic),
                ));
                continue;
            }
            if group.remove_offset(&(topic.clone(), *partition)) {
                records.push(OffsetsRecord {
                    key: encode_offset_key(&group.id, topic, *partition),
                    value: None,
                });
            }
            results.push((topic.clone(), *partition, NONE));
        }
        if !records.is_empty() {
            ctx.out.push(Action::PersistOffsets {
                partition: ctx.partition(&group.id),
                group: group.id.clone(),
                records,
                commit: None,
            });
        }
        (NONE, results)
    }

    /// A topic was deleted: every group forgets its committed offsets for it, with
    /// tombstones, as Kafka's coordinator does on topic deletion (so a topic created
    /// again under the same name does not inherit stale offsets). Emits one
    /// `PersistOffsets` per group that had any.
    pub fn remove_topic_offsets(&mut self, topic: &str) {
        let (groups, ctx) = self.split();
        for group in groups.values_mut() {
            let keys: Vec<(String, i32)> = group
                .offsets
                .keys()
                .chain(group.pending_offsets.keys())
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if keys.is_empty() {
                continue;
            }
            let records = keys
                .into_iter()
                .map(|(t, p)| {
                    group.remove_offset(&(t.clone(), p));
                    OffsetsRecord {
                        key: encode_offset_key(&group.id, &t, p),
                        value: None,
                    }
                })
                .collect();
            ctx.out.push(Action::PersistOffsets {
                partition: ctx.partition(&group.id),
                group: group.id.clone(),
                records,
                commit: None,
            });
        }
    }

    /// DeleteGroups: deletes empty groups with their offsets (tombstones).
    pub fn delete_groups(&mut self, group_ids: &[String], now: i64) -> Vec<(String, i16)> {
        let mut results = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            let error = match self.groups.get(id).map(|g| g.state) {
                None | Some(GroupState::Dead) => code(ResponseError::GroupIdNotFound),
                Some(GroupState::Empty) => {
                    self.remove_group(id, now);
                    NONE
                }
                Some(_) => code(ResponseError::NonEmptyGroup),
            };
            results.push((id.clone(), error));
        }
        results
    }

    /// Marks a group Dead, writes tombstones for its offsets and metadata, forgets it.
    fn remove_group(&mut self, id: &str, now: i64) {
        let (groups, ctx) = self.split();
        let Some(mut group) = groups.remove(id) else {
            return;
        };
        group.transition(GroupState::Dead, now);
        let partition = ctx.partition(id);
        // Offsets still being appended get tombstones too: the append lands first.
        let keys: BTreeSet<&(String, i32)> = group
            .offsets
            .keys()
            .chain(group.pending_offsets.keys())
            .collect();
        let mut records: Vec<OffsetsRecord> = keys
            .into_iter()
            .map(|(t, p)| OffsetsRecord {
                key: encode_offset_key(id, t, *p),
                value: None,
            })
            .collect();
        if !records.is_empty() {
            ctx.out.push(Action::PersistOffsets {
                partition,
                group: id.to_owned(),
                records: std::mem::take(&mut records),
                commit: None,
            });
        }
        ctx.out.push(Action::PersistGroupMetadata {
            partition,
            group: id.to_owned(),
            record: OffsetsRecord {
                key: encode_group_key(id),
                value: None,
            },
        });
    }

    // -----------------------------------------------------------------------------
    // ListGroups / DescribeGroups

    /// ListGroups: every group that is not Dead.
    pub fn list_groups(&self) -> Vec<ListedGroup> {
        self.groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// DescribeGroups for one group. Metadata and assignments are shown only for
    /// Stable groups, as Kafka does.
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        let Some(g) = self.groups.get(group_id) else {
            return GroupDescription {
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol.clone().unwrap_or_default()
        } else {
            String::new()
        };
        GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        }
    }

    // -----------------------------------------------------------------------------
    // Time

    /// Advances time to `now`: expires MEMBER_ID_REQUIRED members and sessions, ends
    /// join phases whose deadline passed, and every
    /// `offsets_retention_check_interval_ms` expires old offsets.
    pub fn tick(&mut self, now: i64) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        {
            let (groups, mut ctx) = self.split();
            for id in &ids {
                if let Some(group) = groups.get_mut(id) {
                    tick_group(group, &mut ctx, now);
                }
            }
        }
        let due = match self.last_retention_check {
            None => {
                self.last_retention_check = Some(now);
                false
            }
            Some(t) => now - t >= self.config.offsets_retention_check_interval_ms,
        };
        if due {
            self.last_retention_check = Some(now);
            self.expire_offsets(now);
        }
    }

    /// Expires offsets older than `offsets.retention.minutes` (KIP-211): for an Empty
    /// group counted from when it became empty (or from the commit, if later); for a
    /// consumer group with members, only offsets of topics it no longer subscribes
    /// to, counted from the commit. An explicit expiry from OffsetCommit v2-4 wins.
    /// An Empty group left without offsets is deleted.
    pub fn expire_offsets(&mut self, now: i64) {
        let retention = self.config.offsets_retention_ms;
        let mut dead = Vec::new();
        {
            let (groups, ctx) = self.split();
            for group in groups.values_mut() {
                let subscribed = match group.state {
                    GroupState::Empty => None,
                    _ => match group.subscribed_topics() {
                        Some(t) => Some(t),
                        None => continue,
                    },
                };
                let base_of = |v: &OffsetValue| match (&subscribed, group.state_timestamp) {
                    (None, Some(empty_since)) => empty_since.max(v.commit_timestamp),
                    _ => v.commit_timestamp,
                };
                let expired: Vec<(String, i32)> = group
                    .offsets
                    .iter()
                    // An offset being committed again does not expire (Kafka).
                    .filter(|(key, _)| !group.pending_offsets.contains_key(*key))
                    .filter(|((topic, _), v)| match v.expire_timestamp {
                        Some(at) => now >= at,
                        None => {
                            subscribed.as_ref().is_none_or(|s| !s.contains(topic))
                                && now - base_of(v) >= retention
                        }
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                if !expired.is_empty() {
                    let records = expired
                        .iter()
                        .map(|(t, p)| {
                            group.remove_offset(&(t.clone(), *p));
                            OffsetsRecord {
                                key: encode_offset_key(&group.id, t, *p),
                                value: None,
                            }
                        })
                        .collect();
                    ctx.out.push(Action::PersistOffsets {
                        partition: ctx.partition(&group.id),
                        group: group.id.clone(),
                        records,
                        commit: None,
                    });
                }
                if group.state == GroupState::Empty && !group.has_offsets() {
                    dead.push(group.id.clone());
                }
            }
        }
        for id in dead {
            self.remove_group(&id, now);
        }
    }

    // -----------------------------------------------------------------------------
    // Loading from __consumer_offsets

    /// Applies one `__consumer_offsets` record (in log order) while loading:
    /// [`LoadRecord::decode`] then [`GroupCoordinator::apply_load_record`].
    pub fn load_record(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), SchemaError> {
        self.apply_load_record(LoadRecord::decode(key, value)?);
        Ok(())
    }

    /// Loads one `__consumer_offsets` partition this node now coordinates, from
    /// its records (decoded beforehand, in log order, off whatever lock guards
    /// the coordinator): whatever the coordinator still held of the partition is
    /// unloaded first ([`GroupCoordinator::unload_partition`]: a JoinGroup or
    /// SyncGroup waiting in one of its groups is answered NOT_COORDINATOR), so
    /// the groups are the log's alone; then the records are applied and loading
    /// ends for this partition ([`GroupCoordinator::finish_loading_partition`]).
    ///
    /// Loading over live groups instead left a group Stable with a member still
    /// waiting in a JoinGroup nobody would answer (found by the broker's cluster
    /// simulation, seed 183), hence the unload.
    pub fn load_partition(
        &mut self,
        partition: i32,
        records: impl IntoIterator<Item = LoadRecord>,
        now: i64,
    ) {
        self.unload_partition(partition);
        for r in records {
            self.apply_load_record(r);
        }
        self.finish_loading_partition(Some(partition), now);
    }

    /// Applies one decoded `__consumer_offsets` record (in log order) while
    /// loading.
    pub fn apply_load_record(&mut self, record: LoadRecord) {
        match record {
            LoadRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => {
                    self.groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(group, None))
                        .offsets
                        .insert((topic, partition), v);
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            LoadRecord::Group { group, value } => match value {
                Some(v) => {
                    let g = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(group, None));
                    g.generation = v.generation;
                    g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                    g.protocol = v.protocol.clone();
                    g.leader = v.leader;
                    g.state_timestamp =
                        (v.current_state_timestamp >= 0).then_some(v.current_state_timestamp);
                    g.members.clear();
                    g.static_members.clear();
                    for m in v.members {
                        self.order += 1;
                        if let Some(i) = &m.group_instance_id {
                            g.static_members.insert(i.clone(), m.member_id.clone());
                        }
                        g.members.insert(
                            m.member_id.clone(),
                            Member {
                                member_id: m.member_id,
                                group_instance_id: m.group_instance_id,
                                client_id: m.client_id,
                                client_host: m.client_host,
                                rebalance_timeout_ms: m.rebalance_timeout_ms,
                                session_timeout_ms: m.session_timeout_ms,
                                protocols: vec![Protocol {
                                    name: v.protocol.clone().unwrap_or_default(),
                                    metadata: m.subscription,
                                }],
                                assignment: m.assignment,
                                awaiting_join: None,
                                awaiting_sync: None,
                                session_deadline: 0,
                                join_order: self.order,
                            },
                        );
                    }
                }
                None => {
                    let empty = self
                        .groups
                        .get(&group)
                        .is_some_and(|g| g.offsets.is_empty());
                    if empty {
                        self.groups.remove(&group);
                    } else if let Some(g) = self.groups.get_mut(&group) {
                        let offsets = std::mem::take(&mut g.offsets);
                        *g = Group::new(group, None);
                        g.offsets = offsets;
                    }
                }
            },
        }
    }

    /// Ends loading: groups with members are Stable (their sessions start now), the
    /// others Empty.
    pub fn finish_loading(&mut self, now: i64) {
        self.finish_loading_partition(None, now);
    }

    /// As [`GroupCoordinator::finish_loading`], for the groups of one
    /// `__consumer_offsets` partition only (`None`: every group): the others are
    /// live and keep their state.
    pub fn finish_loading_partition(&mut self, partition: Option<i32>, now: i64) {
        let n = self.config.offsets_topic_partitions;
        for g in self
            .groups
            .values_mut()
            .filter(|g| partition.is_none_or(|p| schema::partition_for(&g.id, n) == p))
        {
            if g.members.is_empty() {
                g.state = GroupState::Empty;
            } else {
                g.state = GroupState::Stable;
                for m in g.members.values_mut() {
                    m.session_deadline = now + i64::from(m.session_timeout_ms);
                }
            }
        }
    }
}

impl GroupCoordinator {
    /// This node stopped coordinating `partition` of `__consumer_offsets` (another
    /// broker leads it now): its groups are dropped from memory, and every
    /// JoinGroup or SyncGroup waiting in them is answered NOT_COORDINATOR, so the
    /// members find the new coordinator. Their records stay in the log, where the
    /// new coordinator loads them from.
    pub fn unload_partition(&mut self, partition: i32) {
        let n = self.config.offsets_topic_partitions;
        let gone: Vec<String> = self
            .groups
            .keys()
            .filter(|g| schema::partition_for(g, n) == partition)
            .cloned()
            .collect();
        for id in gone {
            let Some(group) = self.groups.remove(&id) else {
                continue;
            };
            for m in group.members.values() {
                if let Some(request) = m.awaiting_join {
                    self.actions.push(Action::RespondJoin {
                        request,
                        response: JoinResponse::error(ResponseError::NotCoordinator, &m.member_id),
                    });
                }
                if let Some(request) = m.awaiting_sync {
                    self.actions.push(Action::RespondSync {
                        request,
                        response: SyncResponse {
                            error: ResponseError::NotCoordinator.code(),
                            assignment: Bytes::new(),
                        },
                    });
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Group-level transitions (Kafka's GroupCoordinator.scala, classic protocol)

fn new_member_id(ctx: &mut Ctx<'_>, prefix: &str) -> String {
    let n = ctx.next();
    format!("{prefix}-{:x}-{n}", ctx.config.member_id_seed)
}

fn join_new_member(group: &mut Group, ctx: &mut Ctx<'_>, req: JoinGroup, now: i64) {
    let prefix = req
        .group_instance_id
        .clone()
        .unwrap_or_else(|| req.client_id.clone());
    let member_id = new_member_id(ctx, &prefix);
    if let Some(instance) = req.group_instance_id.as_deref()
        && let Some(old) = group.static_members.get(instance).cloned()
    {
        return replace_static_member(group, ctx, &old, member_id, req, now);
    }
    if req.version >= 4 && req.group_instance_id.is_none() {
        // KIP-394: hand out the id first; the member counts as pending until it
        // rejoins with it, so a client that never does cannot inflate the group.
        group
            .pending
            .insert(member_id.clone(), now + i64::from(req.session_timeout_ms));
        ctx.respond_join(
            req.request,
            JoinResponse::error(ResponseError::MemberIdRequired, &member_id),
        );
        return;
    }
    add_member_and_rebalance(group, ctx, member_id, req, now);
}

fn join_known_member(group: &mut Group, ctx: &mut Ctx<'_>, req: JoinGroup, now: i64) {
    if group.pending.remove(&req.member_id).is_some() {
        let id = req.member_id.clone();
        return add_member_and_rebalance(group, ctx, id, req, now);
    }
    if group.is_fenced(&req.member_id, req.group_instance_id.as_deref()) {
        return ctx.respond_join(
            req.request,
            JoinResponse::error(ResponseError::FencedInstanceId, &req.member_id),
        );
    }
    let Some(member) = group.members.get(&req.member_id) else {
        return ctx.respond_join(
            req.request,
            JoinResponse::error(ResponseError::UnknownMemberId, &req.member_id),
        );
    };
    let same = member.matches(&req.protocols);
    let is_leader = group.leader.as_deref() == Some(req.member_id.as_str());
    match group.state {
        GroupState::PreparingRebalance => update_member_and_rebalance(group, ctx, req, now),
        GroupState::CompletingRebalance if same => {
            // It missed the JoinGroup response: send the current generation again.
            respond_current(group, ctx, &req.member_id, req.request, now)
        }
        GroupState::Stable if same && !is_leader => {
            respond_current(group, ctx, &req.member_id, req.request, now)
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            update_member_and_rebalance(group, ctx, req, now)
        }
        GroupState::Empty | GroupState::Dead => ctx.respond_join(
            req.request,
            JoinResponse::error(ResponseError::UnknownMemberId, &req.member_id),
        ),
    }
}

/// A static member came back with a new member id (a restarted process): it takes
/// over the old member's place. In a Stable group with unchanged protocols that is
/// all, no rebalance (KIP-345); otherwise it rejoins like any member.
fn replace_static_member(
    group: &mut Group,
    ctx: &mut Ctx<'_>,
    old_id: &str,
    new_id: String,
    req: JoinGroup,
    now: i64,
) {
    let Some(mut member) = group.members.remove(old_id) else {
        return;
    };
    if let Some(r) = member.awaiting_join.take() {
        ctx.respond_join(
            r,
            JoinResponse::error(ResponseError::FencedInstanceId, old_id),
        );
    }
    if let Some(r) = member.awaiting_sync.take() {
        ctx.respond_sync(r, code(ResponseError::FencedInstanceId), Bytes::new());
    }
    let same = member.matches(&req.protocols);
    member.member_id = new_id.clone();
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.session_deadline = now + i64::from(req.session_timeout_ms);
    if let Some(instance) = &req.group_instance_id {
        group
            .static_members
            .insert(instance.clone(), new_id.clone());
    }
    if group.leader.as_deref() == Some(old_id) {
        group.leader = Some(new_id.clone());
    }
    group.members.insert(new_id.clone(), member);
    if group.state == GroupState::Stable && same {
        ctx.persist_group(group);
        ctx.respond_join(
            req.request,
            JoinResponse {
                error: NONE,
                generation_id: group.generation,
                protocol_name: group.protocol.clone(),
                leader: group.leader.clone().unwrap_or_default(),
                member_id: new_id,
                // As Kafka: even a leader gets no member list, so it does not
                // recompute an assignment nobody asked for.
                members: Vec::new(),
            },
        );
        return;
    }
    let req = JoinGroup {
        member_id: new_id,
        ..req
    };
    update_member_and_rebalance(group, ctx, req, now);
}

fn add_member_and_rebalance(
    group: &mut Group,
    ctx: &mut Ctx<'_>,
    member_id: String,
    req: JoinGroup,
    now: i64,
) {
    let order = ctx.next_order();
    if let Some(instance) = &req.group_instance_id {
        group
            .static_members
            .insert(instance.clone(), member_id.clone());
    }
    if group.leader.is_none() {
        group.leader = Some(member_id.clone());
    }
    if group.protocol_type.is_none() {
        group.protocol_type = Some(req.protocol_type.clone());
    }
    group.members.insert(
        member_id.clone(),
        Member {
            member_id,
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(req.request),
            awaiting_sync: None,
            session_deadline: now + i64::from(req.session_timeout_ms),
            join_order: order,
        },
    );
    if group.state == GroupState::PreparingRebalance && group.initial_delay.is_some() {
        group.new_member_added = true;
    }
    maybe_prepare_rebalance(group, ctx, now);
    try_complete_join(group, ctx, now);
}

fn update_member_and_rebalance(group: &mut Group, ctx: &mut Ctx<'_>, req: JoinGroup, now: i64) {
    if let Some(m) = group.members.get_mut(&req.member_id) {
        if let Some(old) = m.awaiting_join.replace(req.request) {
            // A second JoinGroup while the first waits: the newer one wins.
            ctx.respond_join(
                old,
                JoinResponse::error(ResponseError::RebalanceInProgress, &req.member_id),
            );
        }
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_deadline = now + i64::from(m.session_timeout_ms);
    }
    maybe_prepare_rebalance(group, ctx, now);
    try_complete_join(group, ctx, now);
}

fn maybe_prepare_rebalance(group: &mut Group, ctx: &mut Ctx<'_>, now: i64) {
    if matches!(
        group.state,
        GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
    ) {
        prepare_rebalance(group, ctx, now);
    }
}

fn prepare_rebalance(group: &mut Group, ctx: &mut Ctx<'_>, now: i64) {
    if group.state == GroupState::CompletingRebalance {
        // Members waiting for the leader's assignment must rejoin instead.
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(r) = m.awaiting_sync.take() {
                ctx.respond_sync(r, code(ResponseError::RebalanceInProgress), Bytes::new());
            }
        }
    }
    let rebalance_timeout = group.max_rebalance_timeout();
    let delay = ctx.config.initial_rebalance_delay_ms;
    if group.state == GroupState::Empty && delay > 0 {
        group.join_deadline = Some(now + delay);
        group.initial_delay = Some(InitialDelay {
            remaining_ms: (rebalance_timeout - delay).max(0),
        });
        group.new_member_added = false;
    } else {
        group.join_deadline = Some(now + rebalance_timeout);
        group.initial_delay = None;
    }
    group.transition(GroupState::PreparingRebalance, now);
}

/// Completes the join phase early once everyone has rejoined (never during the
/// initial delay, which always runs its course, as Kafka's InitialDelayedJoin).
fn try_complete_join(group: &mut Group, ctx: &mut Ctx<'_>, now: i64) {
    if group.state == GroupState::PreparingRebalance
        && group.initial_delay.is_none()
        && group.all_joined()
    {
        complete_join(group, ctx, now);
    }
}

fn complete_join(group: &mut Group, ctx: &mut Ctx<'_>, now: i64) {
    let missing: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for id in missing {
        if let Some(m) = group.members.remove(&id) {
            forget_member(group, ctx, m);
        }
    }
    group.join_deadline = None;
    group.initial_delay = None;
    group.new_member_added = false;
    group.generation += 1;
    if group.members.is_empty() {
        group.protocol = None;
        group.leader = None;
        group.transition(GroupState::Empty, now);
        ctx.persist_group(group);
        return;
    }
    group.protocol = group.select_protocol();
    if !group
        .leader
        .as_ref()
        .is_some_and(|l| group.members.contains_key(l))
    {
        group.leader = group.next_leader();
    }
    group.transition(GroupState::CompletingRebalance, now);
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let request = group
            .members
            .get_mut(&id)
            .and_then(|m| m.awaiting_join.take());
        if let Some(request) = request {
            respond_current(group, ctx, &id, request, now);
        }
    }
}

/// Sends `member_id` the current generation's JoinGroup response (with the member
/// list if it leads) and restarts its session.
fn respond_current(
    group: &mut Group,
    ctx: &mut Ctx<'_>,
    member_id: &str,
    request: RequestId,
    now: i64,
) {
    let protocol = group.protocol.clone().unwrap_or_default();
    let is_leader = group.leader.as_deref() == Some(member_id);
    let members = if is_leader {
        let mut list: Vec<&Member> = group.members.values().collect();
        list.sort_by_key(|m| m.join_order);
        list.into_iter()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    } else {
        Vec::new()
    };
    if let Some(m) = group.members.get_mut(member_id) {
        m.session_deadline = now + i64::from(m.session_timeout_ms);
    }
    ctx.respond_join(
        request,
        JoinResponse {
            error: NONE,
            generation_id: group.generation,
            protocol_name: group.protocol.clone(),
            leader: group.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            members,
        },
    );
}

/// Answers a removed member's waiting requests and clears its static slot and
/// leadership.
fn forget_member(group: &mut Group, ctx: &mut Ctx<'_>, member: Member) {
    if let Some(r) = member.awaiting_join {
        ctx.respond_join(
            r,
            JoinResponse::error(ResponseError::UnknownMemberId, &member.member_id),
        );
    }
    if let Some(r) = member.awaiting_sync {
        ctx.respond_sync(r, code(ResponseError::UnknownMemberId), Bytes::new());
    }
    if let Some(i) = &member.group_instance_id
        && group.static_members.get(i) == Some(&member.member_id)
    {
        group.static_members.remove(i);
    }
    if group.leader.as_deref() == Some(member.member_id.as_str()) {
        group.leader = group.next_leader();
    }
}

/// Removes a member that left or whose session expired, and rebalances the rest.
fn remove_member_and_update_group(group: &mut Group, ctx: &mut Ctx<'_>, id: &str, now: i64) {
    let Some(member) = group.members.remove(id) else {
        return;
    };
    forget_member(group, ctx, member);
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(group, ctx, now);
            // With no member left the join phase is over at once.
            try_complete_join(group, ctx, now);
        }
        GroupState::PreparingRebalance => try_complete_join(group, ctx, now),
        GroupState::Empty | GroupState::Dead => {}
    }
}

fn leave_one(group: &mut Group, ctx: &mut Ctx<'_>, m: &MemberRef, now: i64) -> i16 {
    let id = if m.member_id.is_empty() {
        // LeaveGroup v3 from an admin (or a static member): by instance id.
        match m
            .group_instance_id
            .as_ref()
            .and_then(|i| group.static_members.get(i))
        {
            Some(id) => id.clone(),
            None => return code(ResponseError::UnknownMemberId),
        }
    } else {
        if group.is_fenced(&m.member_id, m.group_instance_id.as_deref()) {
            return code(ResponseError::FencedInstanceId);
        }
        m.member_id.clone()
    };
    if group.pending.remove(&id).is_some() {
        try_complete_join(group, ctx, now);
        return NONE;
    }
    if !group.members.contains_key(&id) {
        return code(ResponseError::UnknownMemberId);
    }
    remove_member_and_update_group(group, ctx, &id, now);
    NONE
}

fn tick_group(group: &mut Group, ctx: &mut Ctx<'_>, now: i64) {
    let before = group.pending.len();
    group.pending.retain(|_, deadline| *deadline > now);
    if group.pending.len() != before {
        try_complete_join(group, ctx, now);
    }
    let expired: Vec<String> = group
        .members
        .values()
        .filter(|m| !m.keep_alive() && m.session_deadline <= now)
        .map(|m| m.member_id.clone())
        .collect();
    for id in expired {
        remove_member_and_update_group(group, ctx, &id, now);
    }
    if group.state == GroupState::PreparingRebalance
        && group.join_deadline.is_some_and(|d| d <= now)
    {
        if let Some(delay) = group.initial_delay
            && group.new_member_added
            && delay.remaining_ms > 0
        {
            // Kafka's InitialDelayedJoin: members keep arriving, wait a bit more.
            let configured = ctx.config.initial_rebalance_delay_ms;
            group.new_member_added = false;
            group.join_deadline = Some(now + configured.min(delay.remaining_ms));
            group.initial_delay = Some(InitialDelay {
                remaining_ms: (delay.remaining_ms - configured).max(0),
            });
            return;
        }
        complete_join(group, ctx, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CoordinatorConfig {
        CoordinatorConfig {
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 10,
            ..CoordinatorConfig::default()
        }
    }

    fn join(
        request: RequestId,
        member: &str,
        instance: Option<&str>,
        metadata: &[u8],
    ) -> JoinGroup {
        JoinGroup {
            request,
            version: 3,
            group_id: "g".into(),
            member_id: member.into(),
            group_instance_id: instance.map(str::to_owned),
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 1000,
            rebalance_timeout_ms: 2000,
            protocol_type: "consumer".into(),
            protocols: vec![Protocol {
                name: "range".into(),
                metadata: Bytes::copy_from_slice(metadata),
            }],
        }
    }

    /// Every record the coordinator persisted, in order, as the log would hold them.
    fn persisted(actions: &[Action]) -> Vec<OffsetsRecord> {
        let mut out = Vec::new();
        for a in actions {
            match a {
                Action::PersistGroupMetadata { record, .. } => out.push(record.clone()),
                Action::PersistOffsets { records, .. } => out.extend(records.iter().cloned()),
                _ => {}
            }
        }
        out
    }

    /// A one-member group, Stable at generation 1, with a committed offset.
    fn stable_group(c: &mut GroupCoordinator) -> (String, Vec<Action>) {
        c.join(join(1, "", None, b"sub"), 0);
        let actions = c.take_actions();
        let Some(Action::RespondJoin { response, .. }) = actions.first() else {
            panic!("{actions:?}");
        };
        let id = response.member_id.clone();
        c.sync(
            SyncGroup {
                request: 2,
                group_id: "g".into(),
                generation_id: 1,
                member_id: id.clone(),
                group_instance_id: None,
                assignments: vec![(id.clone(), Bytes::from_static(b"asg"))],
            },
            1,
        );
        let mut all = actions;
        all.extend(c.take_actions());
        let r = c.commit_offsets(
            OffsetCommit {
                group_id: "g".into(),
                generation_id: 1,
                member_id: id.clone(),
                group_instance_id: None,
                retention_time_ms: -1,
                offsets: vec![CommitPartition {
                    topic: "t".into(),
                    partition: 0,
                    offset: 42,
                    leader_epoch: 3,
                    metadata: Some("md".into()),
                }],
            },
            2,
        );
        assert_eq!(r, vec![("t".into(), 0, NONE)]);
        let commit = c.take_actions();
        let Some(Action::PersistOffsets {
            commit: Some(commit_id),
            ..
        }) = commit.first()
        else {
            panic!("{commit:?}");
        };
        assert_eq!(c.fetch_offsets("g", None), vec![], "staged, not committed");
        c.complete_commit("g", *commit_id, true);
        all.extend(commit);
        (id, all)
    }

    #[test]
    fn leader_sync_persists_before_answering() {
        let mut c = GroupCoordinator::new(config());
        let (id, actions) = stable_group(&mut c);
        // join response, then the metadata record, then the sync response, then the
        // offset commit record: the runtime performs them in this order.
        let kinds: Vec<&str> = actions
            .iter()
            .map(|a| match a {
                Action::RespondJoin { .. } => "join",
                Action::RespondSync { .. } => "sync",
                Action::PersistGroupMetadata { .. } => "group",
                Action::PersistOffsets { .. } => "offsets",
            })
            .collect();
        assert_eq!(kinds, ["join", "group", "sync", "offsets"]);
        let Some(Action::PersistOffsets {
            partition, records, ..
        }) = actions.last()
        else {
            panic!()
        };
        assert_eq!(*partition, schema::partition_for("g", 50));
        assert_eq!(records[0].key, encode_offset_key("g", "t", 0));
        assert_eq!(
            actions.get(2),
            Some(&Action::RespondSync {
                request: 2,
                response: SyncResponse {
                    error: NONE,
                    assignment: Bytes::from_static(b"asg")
                }
            })
        );
        assert_eq!(c.group_state("g"), Some(GroupState::Stable));
        assert!(id.starts_with("c-"));
    }

    /// Restart: replaying what was persisted gives back the generation, members,
    /// assignments and offsets, and the member can carry on heartbeating.
    #[test]
    fn replay_rebuilds_groups_and_offsets() {
        let mut c = GroupCoordinator::new(config());
        let (id, actions) = stable_group(&mut c);
        let mut restarted = GroupCoordinator::new(CoordinatorConfig {
            member_id_seed: 7,
            ..config()
        });
        for r in persisted(&actions) {
            restarted
                .load_record(&r.key, r.value.as_deref())
                .expect("load");
        }
        restarted.finish_loading(10_000);
        assert_eq!(restarted.group_state("g"), Some(GroupState::Stable));
        assert_eq!(restarted.generation("g"), Some(1));
        let fetched = restarted.fetch_offsets("g", None);
        assert_eq!(fetched.len(), 1);
        assert_eq!(
            (
                fetched[0].offset,
                fetched[0].leader_epoch,
                fetched[0].metadata.as_str()
            ),
            (42, 3, "md")
        );
        let member = MemberRef {
            member_id: id.clone(),
            group_instance_id: None,
        };
        assert_eq!(restarted.heartbeat("g", 1, &member, 10_500), NONE);
        let d = restarted.describe_group("g");
        assert_eq!(d.members[0].assignment, Bytes::from_static(b"asg"));
        assert_eq!(d.members[0].metadata, Bytes::from_static(b"sub"));
        // Its session started at load time: silent for a session timeout, it is gone.
        restarted.tick(11_500);
        assert_eq!(restarted.group_state("g"), Some(GroupState::Empty));
        assert_eq!(
            restarted.heartbeat("g", 1, &member, 11_501),
            code(ResponseError::UnknownMemberId)
        );
    }

    /// Loading a partition over groups still in memory (this node led it at an
    /// earlier epoch and a new one began) rebuilds them from the records alone, and
    /// the member left waiting in a JoinGroup hears NOT_COORDINATOR rather than
    /// waiting for ever (the cluster simulation's seed 183). Groups of other
    /// partitions are left alone.
    #[test]
    fn load_partition_replaces_what_was_held() {
        let mut c = GroupCoordinator::new(config());
        let (id, actions) = stable_group(&mut c);
        let records: Vec<LoadRecord> = persisted(&actions)
            .iter()
            .map(|r| LoadRecord::decode(&r.key, r.value.as_deref()).expect("decode"))
            .collect();
        // A second member's JoinGroup starts a rebalance and waits.
        c.join(join(7, "", None, b"sub2"), 10);
        c.take_actions();
        let mut other = join(9, "", None, b"x");
        other.group_id = "elsewhere".into();
        c.join(other, 12);
        c.take_actions();
        let p = c.partition_for("g");
        assert_ne!(c.partition_for("elsewhere"), p, "test needs two partitions");
        let elsewhere = c.group_state("elsewhere");
        assert!(elsewhere.is_some());
        c.load_partition(p, records, 1_000);
        let answered = c.take_actions();
        assert!(
            answered.iter().any(|a| matches!(
                a,
                Action::RespondJoin { response, .. }
                    if response.error == code(ResponseError::NotCoordinator)
            )),
            "{answered:?}"
        );
        assert_eq!(c.group_state("g"), Some(GroupState::Stable));
        assert_eq!(c.generation("g"), Some(1));
        assert_eq!(c.describe_group("g").members.len(), 1);
        assert_eq!(c.describe_group("g").members[0].member_id, id);
        assert_eq!(c.fetch_offsets("g", None)[0].offset, 42);
        assert_eq!(c.group_state("elsewhere"), elsewhere);
    }

    #[test]
    fn tombstones_replay_to_nothing() {
        let mut c = GroupCoordinator::new(config());
        let (id, mut actions) = stable_group(&mut c);
        c.leave(
            "g",
            vec![MemberRef {
                member_id: id,
                group_instance_id: None,
            }],
            3,
        );
        assert_eq!(
            c.delete_groups(&["g".to_owned()], 4),
            vec![("g".into(), NONE)]
        );
        actions.extend(c.take_actions());
        let mut restarted = GroupCoordinator::new(config());
        for r in persisted(&actions) {
            restarted
                .load_record(&r.key, r.value.as_deref())
                .expect("load");
        }
        restarted.finish_loading(5);
        assert_eq!(restarted.group_state("g"), None);
        assert!(restarted.list_groups().is_empty());
    }

    /// OffsetDelete refuses topics the group still subscribes to (KIP-496).
    #[test]
    fn offset_delete_respects_subscriptions() {
        let mut c = GroupCoordinator::new(config());
        // ConsumerProtocolSubscription v0: topics ["t"], user data null.
        let sub = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        c.join(join(1, "", None, &sub), 0);
        c.take_actions();
        c.commit_offsets(
            OffsetCommit {
                group_id: "g".into(),
                generation_id: -1,
                member_id: String::new(),
                group_instance_id: None,
                retention_time_ms: -1,
                offsets: vec![],
            },
            1,
        );
        let (top, per) = c.delete_offsets("g", &[("t".into(), 0), ("u".into(), 0)]);
        assert_eq!(top, NONE);
        assert_eq!(
            per,
            vec![
                ("t".into(), 0, code(ResponseError::GroupSubscribedToTopic)),
                ("u".into(), 0, NONE)
            ]
        );
        assert_eq!(
            c.delete_offsets("nope", &[]).0,
            code(ResponseError::GroupIdNotFound)
        );
    }

    /// Deleting a topic removes every group's offsets for it, durably.
    #[test]
    fn deleted_topic_offsets_disappear() {
        let mut c = GroupCoordinator::new(config());
        let (_, mut actions) = stable_group(&mut c);
        assert_eq!(c.fetch_offsets("g", None).len(), 1);
        c.remove_topic_offsets("other");
        assert!(c.take_actions().is_empty());
        c.remove_topic_offsets("t");
        let removed = c.take_actions();
        assert_eq!(removed.len(), 1);
        assert!(c.fetch_offsets("g", None).is_empty());
        actions.extend(removed);
        let mut restarted = GroupCoordinator::new(config());
        for r in persisted(&actions) {
            restarted
                .load_record(&r.key, r.value.as_deref())
                .expect("load");
        }
        restarted.finish_loading(5);
        assert_eq!(
            restarted.fetch_offsets("g", Some(&[("t".into(), 0)]))[0].offset,
            -1
        );
    }

    #[test]
    fn next_deadline_tracks_sessions_and_join_phases() {
        let mut c = GroupCoordinator::new(CoordinatorConfig {
            initial_rebalance_delay_ms: 300,
            ..config()
        });
        assert_eq!(c.next_deadline(), None);
        c.join(join(1, "", None, b""), 100);
        // The member waits in JoinGroup (kept alive); the initial delay ends at 400.
        assert_eq!(c.next_deadline(), Some(400));
        c.tick(400);
        c.take_actions();
        // Generation 1 started; the member's session runs from 400.
        assert_eq!(c.next_deadline(), Some(1400));
    }
}
