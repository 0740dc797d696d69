//! The metadata quorum: klog's cluster metadata log replicated with openraft 0.9
//! among the controllers, and to broker-only nodes as learners; the log stored with
//! `klog-storage`, the RPCs framed as Kafka requests on the controller listener.
//!
//! The quorum knows nothing of metadata records: entries carry opaque payloads, and
//! a [`MetadataStateMachine`] (the metadata image, `klog-broker`'s) applies them.
//!
//! What it does not do: decide anything about the cluster (the controller in
//! `klog-coordinator` does, and writes its decisions here), serve Kafka's
//! controller APIs (the broker plugs them in with [`RaftRpc::with_fallback`]),
//! pick its own sockets, clock or task spawner (those go through `klog-rt`'s seams),
//! or run a runtime of its own: everything runs on the caller's tokio runtime.
//!
//! ```text
//!            Quorum::write(payload)             peers' RPCs (controller listener)
//!                   │                                     │ serve / FrameHandler
//!                   ▼                                     ▼
//!   ┌──────────────────────── openraft (tokio) ─────────────────────────┐
//!   │ elections, replication, commit; PeerClient ─► Connector ─► peers  │
//!   └──────┬───────────────────────────────┬────────────────────────────┘
//!          │ append/truncate/purge, vote   │ apply, snapshot, install
//!          ▼                               ▼
//!   LogStore: klog-storage Log +     StateMachineStore: Arc<Mutex<S>> + applied
//!   quorum-state (vote, committed,   watch + <index>-<term>.checkpoint files
//!   purged)                                      __cluster_metadata-0/
//! ```
//!
//! # On disk (`<first log dir>/__cluster_metadata-0/`)
//!
//! * `00000000000000000000.log` (and `.index`, `.timeindex`, more segments as it
//!   grows): the raft log as record batches, one batch of one record per entry, the
//!   record's offset being the raft index, its key the JSON of the entry's log id and
//!   kind, its value the payload as written (or the membership's JSON);
//! * `quorum-state`: JSON of the vote, the committed hint and the purged log id;
//! * `<index>-<term>.checkpoint`: the newest snapshot (JSON: openraft's snapshot
//!   metadata and the state machine's bytes).
//!
//! # What is durable when
//!
//! An entry is fdatasynced before openraft counts it as written (so a follower
//! acknowledges, and a leader counts itself, only for entries on disk); a vote is on
//! disk before it is granted; a snapshot file is on disk before openraft uses it,
//! and a purge is recorded before segments are deleted. The state machine itself is
//! in memory: at start the newest snapshot is restored and the log after it
//! re-applied (up to the committed id saved in `quorum-state`, then as the leader
//! commits). A start finds a torn log tail cut by the storage engine's recovery; a
//! corrupt `quorum-state`, or a log starting after what the snapshot covers, fails
//! the start with a [`QuorumError`] naming the file.
//!
//! # Ready for simulation
//!
//! Connections to peers go through the [`Connector`] trait ([`TcpConnector`] by
//! default, which opens them with [`klog_rt::net::connect`]: TCP, or the
//! network a simulator installed), and [`serve`] accepts on a
//! [`klog_rt::net::Listener`], so a simulator (turmoil) substitutes its own
//! network. openraft runs on [`KlogRuntime`]: tokio's timers, which a simulator
//! driving a tokio runtime with paused time controls, and election timeouts drawn
//! from a generator [`seed_election_rng`] seeds. Storage writes run on tokio's
//! blocking pool against real files (`std::fs`).
//!
//! # Wiring (for the broker)
//!
//! Start with [`Quorum::start`] (a [`QuorumConfig`] and the state machine); if there
//! are voters, serve the controller listener with [`serve`] and
//! [`Quorum::rpc`] (or plug [`RaftRpc::with_fallback`] / [`is_raft_api`] +
//! [`Quorum::handle_raft_request`] into the broker's own dispatcher); write with
//! [`Quorum::write`] on the leader (forward to [`WriteError::NotLeader`]'s leader
//! otherwise); react to [`Quorum::leader_watch`] and [`Quorum::applied`]; add
//! broker-only nodes with [`Quorum::add_learner`]; stop with [`Quorum::shutdown`].

/// The metadata log's topic name, as Kafka's KRaft names it (DescribeQuorum).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

mod error;
mod log_store;
mod network;
mod node;
mod rpc;
mod runtime;
mod state_machine;
mod types;

pub use error::{LogStoreError, QuorumError, RpcError, WriteError};
pub use log_store::STATE_FILE;
pub use network::{BoxStream, ConnectFuture, Connector, PeerClient, PeerStream, TcpConnector};
pub use node::{
    MAX_PAYLOAD_BYTES, MemberDescription, Quorum, QuorumConfig, QuorumDescription, QuorumRole,
};
pub use rpc::{
    APPEND_ENTRIES_API, FrameHandler, INSTALL_SNAPSHOT_API, RaftRpc, VOTE_API, WithFallback,
    encode_request, is_raft_api, serve, serve_connection,
};
pub use runtime::{ElectionRng, KlogRuntime, seed_election_rng};
pub use state_machine::MetadataStateMachine;
pub use types::{
    Applied, Entry, LogId, Membership, Node, Payload, Raft, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig, Vote,
};
