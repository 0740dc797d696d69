//! One group's state: members, generation, selected protocol, committed offsets.
//!
//! The transitions live in [`crate::coordinator`]; this module holds the data and the
//! pure helpers the transitions use (protocol selection, the join-completion test,
//! subscription parsing).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::schema::{GroupValue, MemberValue, OffsetValue};

/// Identifies a JoinGroup or SyncGroup request whose response may be delayed; chosen
/// by the runtime, echoed in [`Action::RespondJoin`] / [`Action::RespondSync`]. It is
/// defined with the group's data (a member holds the one it waits on), so that this
/// module needs nothing from [`crate::coordinator`], which re-exports it.
///
/// [`Action::RespondJoin`]: crate::coordinator::Action::RespondJoin
/// [`Action::RespondSync`]: crate::coordinator::Action::RespondSync
pub type RequestId = u64;

/// Identifies one OffsetCommit's append, from [`Action::PersistOffsets`] to
/// [`GroupCoordinator::complete_commit`]; increasing in the order of the appends. A
/// group keys its staged offsets by it.
///
/// [`Action::PersistOffsets`]: crate::coordinator::Action::PersistOffsets
/// [`GroupCoordinator::complete_commit`]: crate::coordinator::GroupCoordinator::complete_commit
pub type CommitId = u64;

/// The states of a classic group (Kafka's `GroupState`).
///
/// ```text
///            join                 all joined / deadline         leader's SyncGroup
///  Empty ──────────► Preparing ───────────────────► Completing ──────────────► Stable
///    ▲               Rebalance ◄──────────────────  Rebalance  ◄───────────────  │
///    │                 │   member leaves / expires / changes protocols          │
///    │ no member left  │                                                        │
///    └─────────────────┘    DeleteGroups, or offsets expired while Empty: Dead  │
///                           ◄──────────── join, leave, expiry ──────────────────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join before a new generation starts.
    PreparingRebalance,
    /// The generation started; waiting for the leader's assignment (SyncGroup).
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted; kept only while requests still refer to it.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// A protocol a member supports: name (the assignor, for consumers) and metadata
/// (its subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// Protocol name, e.g. `range`.
    pub name: String,
    /// Opaque metadata, e.g. a `ConsumerProtocolSubscription`.
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// The JoinGroup waiting for this rebalance to complete.
    pub awaiting_join: Option<RequestId>,
    /// The SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<RequestId>,
    /// When the member is considered dead unless it heartbeats (or is waiting on
    /// a join or sync, which keeps it alive).
    pub session_deadline: i64,
    /// Order of arrival, to pick a new leader deterministically.
    pub join_order: u64,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Same protocols, same metadata, same order (Kafka's `MemberMetadata.matches`).
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    pub fn keep_alive(&self) -> bool {
        self.awaiting_join.is_some() || self.awaiting_sync.is_some()
    }
}

/// Follow-up timer of the initial rebalance delay (`group.initial.rebalance.delay.ms`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct InitialDelay {
    /// Rebalance timeout left to spend on further delays.
    pub remaining_ms: i64,
}

/// A (topic, partition) key.
pub(crate) type TopicPartition = (String, i32);

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    /// When the group entered its current state; `None` for a group that only
    /// holds offsets committed outside group management.
    pub state_timestamp: Option<i64>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Members told MEMBER_ID_REQUIRED, with the deadline to rejoin by.
    pub pending: BTreeMap<String, i64>,
    /// `group.instance.id` -> member id.
    pub static_members: BTreeMap<String, String>,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// The commit each entry of `offsets` came from; absent for offsets loaded
    /// from the log, which are older than any commit made since.
    pub committed_by: BTreeMap<(String, i32), CommitId>,
    /// Offsets OffsetCommit accepted whose append has not completed, by commit
    /// (Kafka's `pendingOffsetCommits`); OffsetFetch does not see them.
    pub staged: BTreeMap<CommitId, Vec<(TopicPartition, OffsetValue)>>,
    /// The newest staged commit of each partition.
    pub pending_offsets: BTreeMap<(String, i32), CommitId>,
    /// PreparingRebalance: when the join phase ends at the latest.
    pub join_deadline: Option<i64>,
    pub initial_delay: Option<InitialDelay>,
    pub new_member_added: bool,
}

impl Group {
    pub fn new(id: String, now: Option<i64>) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            state_timestamp: now,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            static_members: BTreeMap::new(),
            offsets: BTreeMap::new(),
            committed_by: BTreeMap::new(),
            staged: BTreeMap::new(),
            pending_offsets: BTreeMap::new(),
            join_deadline: None,
            initial_delay: None,
            new_member_added: false,
        }
    }

    /// Whether the group holds offsets, committed or still being appended (an
    /// Empty group without any is deleted).
    pub fn has_offsets(&self) -> bool {
        !self.offsets.is_empty() || !self.pending_offsets.is_empty()
    }

    /// Forgets `key`'s offset, committed or pending (a commit of it that completes
    /// later is not applied); returns whether one was committed.
    pub fn remove_offset(&mut self, key: &(String, i32)) -> bool {
        self.committed_by.remove(key);
        self.pending_offsets.remove(key);
        self.offsets.remove(key).is_some()
    }

    pub fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp = Some(now);
    }

    /// Whether a member with `instance` but a different `member_id` holds the
    /// static slot (Kafka's `isStaticMemberFenced`).
    pub fn is_fenced(&self, member_id: &str, instance: Option<&str>) -> bool {
        instance
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|owner| owner != member_id)
    }

    /// Protocols every member supports.
    pub fn candidate_protocols(&self) -> BTreeSet<String> {
        let mut iter = self.members.values();
        let Some(first) = iter.next() else {
            return BTreeSet::new();
        };
        let mut set: BTreeSet<String> = first.protocols.iter().map(|p| p.name.clone()).collect();
        for m in iter {
            set.retain(|name| m.protocols.iter().any(|p| &p.name == name));
        }
        set
    }

    /// Kafka's `supportsProtocols`: a first member needs a protocol type and at least
    /// one protocol; later ones the group's type and one protocol in common.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let candidates = self.candidate_protocols();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| candidates.contains(&p.name))
    }

    /// Kafka's `selectProtocol`: among the protocols all members support, each member
    /// votes for the first of them in its own preference order, and the protocol
    /// with the most votes wins. Ties go to the one the longest-standing member
    /// prefers (Kafka leaves ties to hash-map order).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_age: Vec<&Member> = self.members.values().collect();
        by_age.sort_by_key(|m| m.join_order);
        let mut first_choice = Vec::new();
        for m in &by_age {
            if let Some(p) = m.protocols.iter().find(|p| candidates.contains(&p.name)) {
                *votes.entry(p.name.as_str()).or_default() += 1;
                first_choice.push(p.name.as_str());
            }
        }
        let best = votes.values().copied().max()?;
        first_choice
            .into_iter()
            .find(|name| votes.get(name) == Some(&best))
            .map(str::to_owned)
    }

    /// Every member has rejoined and no MEMBER_ID_REQUIRED member is outstanding.
    pub fn all_joined(&self) -> bool {
        self.members.values().all(|m| m.awaiting_join.is_some()) && self.pending.is_empty()
    }

    pub fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// The member that has been in the group longest, preferring those that rejoined.
    pub fn next_leader(&self) -> Option<String> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| (m.awaiting_join.is_none(), m.join_order));
        members.first().map(|m| m.member_id.clone())
    }

    /// Topics the members subscribe to, when the group is a consumer group whose
    /// subscriptions parse; `None` when it cannot be known.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(parse_subscription_topics(&m.metadata_for(protocol))?);
        }
        Some(topics)
    }

    /// `GroupMetadataValue` for the current generation.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// The topics of a `ConsumerProtocolSubscription` (every version starts with
/// `version: i16, topics: [string]`).
pub fn parse_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut at = 2usize;
    let count = i32::from_be_bytes(metadata.get(at..at + 4)?.try_into().ok()?);
    at += 4;
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        let len = i16::from_be_bytes(metadata.get(at..at + 2)?.try_into().ok()?);
        at += 2;
        let len = usize::try_from(len).ok()?;
        let name = std::str::from_utf8(metadata.get(at..at + len)?).ok()?;
        at += len;
        topics.push(name.to_owned());
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, order: u64, protocols: &[&str]) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 1000,
            session_timeout_ms: 1000,
            protocols: protocols
                .iter()
                .map(|p| Protocol {
                    name: (*p).into(),
                    metadata: Bytes::new(),
                })
                .collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            session_deadline: 0,
            join_order: order,
        }
    }

    fn group(members: &[Member]) -> Group {
        let mut g = Group::new("g".into(), Some(0));
        g.protocol_type = Some("consumer".into());
        for m in members {
            g.members.insert(m.member_id.clone(), m.clone());
        }
        g
    }

    /// Kafka's selectProtocol: only common protocols count; the most-voted wins.
    #[test]
    fn protocol_selection_by_votes_among_common_protocols() {
        let g = group(&[
            member("a", 0, &["roundrobin", "range", "sticky"]),
            member("b", 1, &["range", "roundrobin"]),
            member("c", 2, &["range", "roundrobin"]),
        ]);
        assert_eq!(
            g.candidate_protocols().into_iter().collect::<Vec<_>>(),
            ["range", "roundrobin"]
        );
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
        let g = group(&[
            member("a", 0, &["roundrobin", "range"]),
            member("b", 1, &["range", "roundrobin"]),
        ]);
        // One vote each: the longest-standing member's choice.
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        assert!(!g.supports_protocols("consumer", &member("x", 9, &["sticky"]).protocols));
        assert!(g.supports_protocols("consumer", &member("x", 9, &["sticky", "range"]).protocols));
        assert!(!g.supports_protocols("connect", &member("x", 9, &["range"]).protocols));
    }

    #[test]
    fn subscription_topics_parse() {
        // version 1, topics ["a", "bc"], then user data etc. (ignored)
        let md = [
            0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(
            parse_subscription_topics(&md),
            Some(vec!["a".to_owned(), "bc".to_owned()])
        );
        assert_eq!(parse_subscription_topics(&md[..9]), None);
    }
}
