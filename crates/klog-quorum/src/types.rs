//! The openraft type configuration of the metadata quorum, and short names for the
//! openraft types instantiated with it.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// One opaque metadata record as the quorum replicates it: the quorum never looks
/// inside; the [`MetadataStateMachine`](super::MetadataStateMachine) decodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload(pub Vec<u8>);

/// What applying one entry answers: the entry's raft log index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Raft log index of the applied entry.
    pub index: u64,
}

openraft::declare_raft_types!(
    /// The openraft type configuration of klog's metadata quorum: node ids are
    /// klog's `node.id`, a node is known by its controller listener address, entries
    /// carry opaque [`Payload`]s, snapshots are byte buffers, openraft runs on tokio
    /// ([`KlogRuntime`](super::KlogRuntime): seedable election timeouts).
    pub TypeConfig:
        D = Payload,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = super::runtime::KlogRuntime,
);

/// A node of the quorum: its controller listener address (`host:port`).
pub type Node = openraft::BasicNode;
/// A running openraft node of the metadata quorum.
pub type Raft = openraft::Raft<TypeConfig>;
/// A raft log id: the term of the leader that proposed the entry, and its index.
pub type LogId = openraft::LogId<u64>;
/// A raft vote (term, candidate, whether a quorum granted it).
pub type Vote = openraft::Vote<u64>;
/// A raft log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// The voters and learners as of a membership entry.
pub type Membership = openraft::Membership<u64, Node>;
/// A membership with the log id of the entry that set it.
pub type StoredMembership = openraft::StoredMembership<u64, Node>;
/// What a snapshot covers: last included log id, membership, snapshot id.
pub type SnapshotMeta = openraft::SnapshotMeta<u64, Node>;
/// The error openraft's storage traits return.
pub type StorageError = openraft::StorageError<u64>;
