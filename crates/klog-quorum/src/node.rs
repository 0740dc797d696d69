//! [`Quorum`]: one node of the metadata quorum, started from a [`QuorumConfig`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{Config, SnapshotPolicy};
use tokio::sync::watch;

use super::error::{QuorumError, RpcError, WriteError};
use super::log_store::LogStore;
use super::network::{Connector, NetworkFactory, TcpConnector};
use super::rpc::RaftRpc;
use super::state_machine::{MetadataStateMachine, StateMachineStore};
use super::types::{Node, Payload, Raft};

/// Largest payload [`Quorum::write`] accepts (less with a small
/// [`QuorumConfig::max_frame_size`]: an entry must fit one AppendEntries frame).
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024 * 1024;

/// Room in a frame for an entry's JSON besides its payload, and for the request.
const FRAME_OVERHEAD: usize = 64 * 1024;

/// The largest payload whose JSON (up to 4 bytes per byte: `[255,...]`) still fits
/// one frame of `max_frame_size` bytes.
fn max_payload(max_frame_size: usize) -> usize {
    MAX_PAYLOAD_BYTES.min(max_frame_size.saturating_sub(FRAME_OVERHEAD) / 4)
}

/// Largest snapshot chunk sent in one InstallSnapshot RPC.
const MAX_SNAPSHOT_CHUNK: u64 = 1024 * 1024;

/// Whether a node votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuorumRole {
    /// A controller: one of the voters.
    Voter,
    /// A broker-only node: it receives the log once the active controller adds it
    /// ([`Quorum::add_learner`]) and never votes.
    Learner,
}

/// How to start a [`Quorum`] node.
#[derive(Clone)]
pub struct QuorumConfig {
    /// This node's id (`node.id`).
    pub node_id: u64,
    /// The voters (`controller.quorum.voters`): node id to controller listener
    /// address. Empty: a one-node quorum of this node alone, with no network.
    /// Only used to form a fresh quorum: once the log holds a membership, the log
    /// decides.
    pub voters: BTreeMap<u64, String>,
    /// Whether this node is a voter or a learner.
    pub role: QuorumRole,
    /// The broker's first log dir; the quorum keeps everything in
    /// `<dir>/__cluster_metadata-0/`.
    pub dir: PathBuf,
    /// How often the leader sends heartbeats.
    pub heartbeat_interval: Duration,
    /// A follower that hears nothing from a leader for a random time between these
    /// two starts an election.
    pub election_timeout_min: Duration,
    /// See [`QuorumConfig::election_timeout_min`].
    pub election_timeout_max: Duration,
    /// A snapshot is taken after this many entries were applied since the last one.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log below the newest snapshot (the rest are purged), so
    /// a follower slightly behind catches up from the log rather than a snapshot.
    pub entries_kept_after_snapshot: u64,
    /// Largest RPC frame sent or accepted (the size prefix is checked before any
    /// allocation).
    pub max_frame_size: usize,
    /// How connections to peers are made.
    pub connector: Arc<dyn Connector>,
}

impl QuorumConfig {
    /// A one-node quorum of `node_id` keeping its data under `dir`, with the default
    /// timing: heartbeats every 250 ms, elections after 1 to 2 s of silence, a
    /// snapshot every 1000 entries keeping 100 entries below it, 100 MiB frames.
    pub fn new(node_id: u64, dir: impl Into<PathBuf>) -> Self {
        Self {
            node_id,
            voters: BTreeMap::new(),
            role: QuorumRole::Voter,
            dir: dir.into(),
            heartbeat_interval: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            snapshot_after_entries: 1000,
            entries_kept_after_snapshot: 100,
            max_frame_size: klog_codec::protocol::frame::DEFAULT_MAX_REQUEST_SIZE,
            connector: Arc::new(TcpConnector),
        }
    }

    /// Checks the configuration and builds openraft's.
    fn raft_config(&self) -> Result<Config, QuorumError> {
        let member = self.voters.contains_key(&self.node_id);
        match self.role {
            QuorumRole::Voter if !self.voters.is_empty() && !member => {
                return Err(QuorumError::Config(format!(
                    "node {} is a voter but not in the voters {:?}",
                    self.node_id,
                    self.voters.keys().collect::<Vec<_>>()
                )));
            }
            QuorumRole::Learner if self.voters.is_empty() || member => {
                return Err(QuorumError::Config(format!(
                    "node {} is a learner: it needs voters, and must not be one of them",
                    self.node_id
                )));
            }
            _ => {}
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: "klog-metadata".to_owned(),
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            // One chunk is sent and installed within this (JSON of up to 1 MiB).
            install_snapshot_timeout: ms(self.election_timeout_max).max(2000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries.max(1)),
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            // A chunk's bytes are a JSON array: up to 4 bytes per byte.
            snapshot_max_chunk_size: MAX_SNAPSHOT_CHUNK
                .min(u64::try_from(self.max_frame_size / 8).unwrap_or(u64::MAX))
                .max(1),
            ..Config::default()
        };
        config
            .validate()
            .map_err(|e| QuorumError::RaftConfig(Box::new(e)))
    }
}

impl fmt::Debug for QuorumConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuorumConfig")
            .field("node_id", &self.node_id)
            .field("voters", &self.voters)
            .field("role", &self.role)
            .field("dir", &self.dir)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("election_timeout_min", &self.election_timeout_min)
            .field("election_timeout_max", &self.election_timeout_max)
            .field("snapshot_after_entries", &self.snapshot_after_entries)
            .field(
                "entries_kept_after_snapshot",
                &self.entries_kept_after_snapshot,
            )
            .field("max_frame_size", &self.max_frame_size)
            .finish_non_exhaustive()
    }
}

/// One member (voter or learner) as [`Quorum::describe`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Its node id.
    pub node_id: u64,
    /// Its controller listener address.
    pub addr: String,
    /// The last log index this node knows it holds: the leader knows it for every
    /// member (from replication); any other node only for itself.
    pub last_log_index: Option<u64>,
}

/// The state of the quorum as this node sees it (DescribeQuorum's content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The leader (the active controller), if known.
    pub leader: Option<u64>,
    /// The current term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    /// The index of the last entry in this node's log.
    pub last_log_index: Option<u64>,
    /// The index of the last entry applied here.
    pub last_applied: Option<u64>,
    /// The voters, by node id.
    pub voters: Vec<MemberDescription>,
    /// The learners, by node id.
    pub learners: Vec<MemberDescription>,
}

/// One running node of the metadata quorum. Dropping it does not stop openraft's
/// tasks: call [`Quorum::shutdown`].
///
/// ```text
///  write(payload) ──► openraft (leader) ──► log (fsync) ──► replicate ──► commit
///                                                                     │
///   state_machine() ◄── MetadataStateMachine::apply ◄─────────────────┘
///   applied() watch ◄── index applied            leader() watch ◄── metrics
/// ```
pub struct Quorum<S> {
    node_id: u64,
    raft: Raft,
    state_machine: Arc<Mutex<S>>,
    applied: watch::Receiver<Option<u64>>,
    leader: watch::Receiver<Option<u64>>,
    log: LogStore,
    /// `<dir>/__cluster_metadata-0`.
    dir: PathBuf,
    /// Largest payload accepted, from [`max_payload`].
    max_payload: usize,
}

impl<S: MetadataStateMachine> Quorum<S> {
    /// Opens `<dir>/__cluster_metadata-0/` (creating it if needed), restores the
    /// newest snapshot into `state_machine`, and starts openraft, which re-applies
    /// the committed entries after the snapshot before this returns. A voter of a
    /// fresh quorum (no vote, no log, no snapshot) then initializes it with the
    /// voters (every voter may; the later ones are refused harmlessly).
    ///
    /// Fails, never panics, on a corrupt `quorum-state`, a log that starts after
    /// what the snapshot covers, a snapshot the state machine refuses, or an
    /// invalid configuration.
    pub async fn start(config: QuorumConfig, state_machine: S) -> Result<Self, QuorumError> {
        let raft_config = config.raft_config()?;
        let dir = config.dir.join(klog_storage::METADATA_LOG_DIR);
        let state_machine = Arc::new(Mutex::new(state_machine));
        let (log, opened) = {
            let dir = dir.clone();
            let sm = state_machine.clone();
            klog_rt::task::blocking(move || {
                let log = LogStore::open(&dir)?;
                let opened = StateMachineStore::open(&dir, sm)?;
                Ok::<_, QuorumError>((log, opened))
            })
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))??
        };

        // Every entry below the log's start must be in the snapshot.
        let covered_below = opened.snapshot.as_ref().map_or(0, |(l, _)| l.index + 1);
        let log_start = log.log_start();
        let has_entries = log.log_end() > log_start;
        let purged_uncovered = log.purged().is_some_and(|p| p.index + 1 > covered_below);
        if (has_entries && log_start > covered_below) || purged_uncovered {
            return Err(QuorumError::MissingEntries {
                log_start,
                covered_below,
                snapshot: opened.snapshot.map(|(_, p)| p),
            });
        }
        let fresh = log.vote().is_none()
            && log.log_end() == 0
            && log.purged().is_none()
            && opened.snapshot.is_none();

        let network = NetworkFactory::new(
            config.node_id,
            config.connector.clone(),
            config.max_frame_size,
        );
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log.clone(),
            opened.store,
        )
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;

        if fresh && config.role == QuorumRole::Voter {
            let members: BTreeMap<u64, Node> = if config.voters.is_empty() {
                BTreeMap::from([(config.node_id, Node::default())])
            } else {
                config
                    .voters
                    .iter()
                    .map(|(id, addr)| (*id, Node::new(addr)))
                    .collect()
            };
            match raft.initialize(members).await {
                Ok(()) => {}
                // Another voter reached this node first: the quorum is formed.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    let _ = raft.shutdown().await;
                    return Err(QuorumError::Raft(e.to_string()));
                }
            }
        }

        let leader = watch_leader(&raft);
        Ok(Quorum {
            node_id: config.node_id,
            raft,
            state_machine,
            applied: opened.applied_rx,
            leader,
            log,
            dir,
            max_payload: max_payload(config.max_frame_size),
        })
    }
}

/// Follows openraft's metrics and publishes the leader when it changes. The task
/// ends when openraft stops or every receiver is gone.
fn watch_leader(raft: &Raft) -> watch::Receiver<Option<u64>> {
    let mut metrics = raft.metrics();
    let (tx, rx) = watch::channel(metrics.borrow().current_leader);
    klog_rt::task::spawn(async move {
        loop {
            let leader = metrics.borrow_and_update().current_leader;
            tx.send_if_modified(|current| {
                let changed = *current != leader;
                *current = leader;
                changed
            });
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
        }
    });
    rx
}

fn write_error(e: RaftError<u64, ClientWriteError<u64, Node>>) -> WriteError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => WriteError::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            WriteError::Membership(e.to_string())
        }
        RaftError::Fatal(f) => WriteError::Stopped(f.to_string()),
    }
}

impl<S> Quorum<S> {
    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Appends `payload` to the metadata log. Returns its raft index once it is
    /// committed (on a majority of voters' disks) and applied to this node's state
    /// machine. On a node that is not the leader: [`WriteError::NotLeader`] with the
    /// leader to forward to. A write whose leader loses its leadership midway may
    /// still be committed by the next leader: wrap the call in a timeout if needed,
    /// and treat a timeout as "unknown".
    pub async fn write(&self, payload: Vec<u8>) -> Result<u64, WriteError> {
        if payload.len() > self.max_payload {
            return Err(WriteError::TooLarge {
                size: payload.len(),
                max: self.max_payload,
            });
        }
        let resp = self
            .raft
            .client_write(Payload(payload))
            .await
            .map_err(write_error)?;
        Ok(resp.log_id.index)
    }

    /// The leader (active controller), as far as this node knows.
    pub fn leader(&self) -> Option<u64> {
        *self.leader.borrow()
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.node_id)
    }

    /// A watch of the leader id: changes when leadership moves or is lost.
    pub fn leader_watch(&self) -> watch::Receiver<Option<u64>> {
        self.leader.clone()
    }

    /// A watch of the index of the last entry applied to the state machine.
    pub fn applied(&self) -> watch::Receiver<Option<u64>> {
        self.applied.clone()
    }

    /// The state machine, for reading the applied state (the quorum locks it while
    /// applying).
    pub fn state_machine(&self) -> Arc<Mutex<S>> {
        self.state_machine.clone()
    }

    /// Adds `node_id` (reachable at `addr`) as a learner: the leader replicates the
    /// log (or a snapshot) to it; it never votes. Returns the index of the
    /// membership entry once it is committed. Only the leader can.
    pub async fn add_learner(
        &self,
        node_id: u64,
        addr: impl Into<String>,
    ) -> Result<u64, WriteError> {
        let resp = self
            .raft
            .add_learner(node_id, Node::new(addr.into()), false)
            .await
            .map_err(write_error)?;
        Ok(resp.log_id.index)
    }

    /// The leader, the term and every member's last log index as this node knows
    /// them.
    pub fn describe(&self) -> QuorumDescription {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voter_ids: BTreeSet<u64> = membership.voter_ids().collect();
        let describe = |id: u64| MemberDescription {
            node_id: id,
            addr: membership
                .get_node(&id)
                .map(|n| n.addr.clone())
                .unwrap_or_default(),
            last_log_index: if id == self.node_id {
                m.last_log_index
            } else {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map(|l| l.index)
            },
        };
        QuorumDescription {
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            voters: voter_ids.iter().map(|&id| describe(id)).collect(),
            learners: membership.learner_ids().map(describe).collect(),
        }
    }

    /// A handler for raft RPCs received from peers, to plug into
    /// [`serve`](super::serve) or the broker's own dispatcher.
    pub fn rpc(&self) -> RaftRpc {
        RaftRpc::new(self.raft.clone())
    }

    /// Decodes and answers one raft RPC (see [`RaftRpc::handle_raft_request`]).
    pub async fn handle_raft_request(
        &self,
        api_key: i16,
        body: &[u8],
    ) -> Result<Vec<u8>, RpcError> {
        self.rpc().handle_raft_request(api_key, body).await
    }

    /// The openraft node, for what this facade does not offer (membership changes,
    /// metrics).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Stops openraft and flushes the log. Later writes fail with
    /// [`WriteError::Stopped`]; the state machine stays readable.
    pub async fn shutdown(&self) -> Result<(), QuorumError> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let log = self.log.clone();
        let dir = self.dir.clone();
        klog_rt::task::blocking(move || log.close())
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?
            .map_err(|source| QuorumError::Io { path: dir, source })
    }
}

impl<S> fmt::Debug for Quorum<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.node_id)
            .field("leader", &self.leader())
            .field("applied", &*self.applied.borrow())
            .finish_non_exhaustive()
    }
}
