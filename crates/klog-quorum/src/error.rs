//! The quorum's error types, one per failure domain: starting ([`QuorumError`]),
//! writing ([`WriteError`]), the metadata log itself ([`LogStoreError`]) and raft
//! RPCs received from peers ([`RpcError`]).

use std::io;
use std::path::PathBuf;

/// Why the quorum could not start (or stop cleanly).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// The configuration contradicts itself (say, a voter missing from the voters).
    #[error("invalid quorum configuration: {0}")]
    Config(String),
    /// openraft refused the timing configuration.
    #[error("invalid raft timing: {0}")]
    RaftConfig(Box<openraft::ConfigError>),
    /// The metadata log could not be opened or recovered.
    #[error("cannot open the metadata log in {}: {source}", path.display())]
    Open {
        /// The `__cluster_metadata-0` folder.
        path: PathBuf,
        /// What the storage engine reported.
        source: klog_storage::OpenError,
    },
    /// A file of the quorum could not be read, written or listed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file of the quorum (the vote file, a snapshot) does not parse.
    #[error("{} is corrupt: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// The metadata log itself is inconsistent (a record that is not a raft entry,
    /// an entry whose index is not its offset).
    #[error("the metadata log is inconsistent: {0}")]
    Log(#[from] LogStoreError),
    /// The log starts after what the newest usable snapshot covers: entries in
    /// between are lost, and the state cannot be rebuilt.
    #[error(
        "the metadata log starts at index {log_start} but {} covers entries below {covered_below} only: entries are missing",
        snapshot.as_ref().map_or_else(|| "no snapshot".to_owned(), |p| p.display().to_string())
    )]
    MissingEntries {
        /// First index still in the log.
        log_start: u64,
        /// Every index below this is in the snapshot (0: no snapshot).
        covered_below: u64,
        /// The snapshot loaded, if any.
        snapshot: Option<PathBuf>,
    },
    /// The state machine refused a snapshot at start-up.
    #[error("the state machine cannot restore {}: {reason}", path.display())]
    Restore {
        /// The snapshot file.
        path: PathBuf,
        /// What the state machine said.
        reason: String,
    },
    /// openraft failed to start or to initialize the quorum.
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a [`Quorum::write`](super::Quorum::write) (or a membership change) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// This node is not the leader: send the write to `leader` (if known).
    #[error("not the leader; the leader is {leader:?}")]
    NotLeader {
        /// The current leader as far as this node knows.
        leader: Option<u64>,
    },
    /// The payload is larger than the quorum accepts.
    #[error("payload of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The payload's size.
        size: usize,
        /// The limit: [`MAX_PAYLOAD_BYTES`](super::MAX_PAYLOAD_BYTES), or less with
        /// small frames.
        max: usize,
    },
    /// A membership change was refused (another one is in progress, say).
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The quorum is shut down or failed (a storage error stops it).
    #[error("the quorum is stopped: {0}")]
    Stopped(String),
}

impl WriteError {
    /// Whether trying again (on the leader named by [`WriteError::NotLeader`], or
    /// later) may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::NotLeader { .. } | Self::Membership(_))
    }
}

/// A failure of the metadata log (`__cluster_metadata-0`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogStoreError {
    /// Reading or writing the files failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The storage engine refused an append.
    #[error(transparent)]
    Append(#[from] klog_storage::AppendError),
    /// The storage engine refused a truncation or purge.
    #[error(transparent)]
    Storage(#[from] klog_storage::StorageError),
    /// The storage engine could not read.
    #[error(transparent)]
    Read(#[from] klog_storage::ReadError),
    /// A stored batch does not decode.
    #[error(transparent)]
    Decode(#[from] klog_codec::DecodeError),
    /// An entry could not be encoded as a batch.
    #[error(transparent)]
    Encode(#[from] klog_codec::EncodeError),
    /// A record's key or value is not a raft entry.
    #[error("record at offset {offset} is not a raft entry: {source}")]
    NotAnEntry {
        /// The record's offset.
        offset: i64,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// A record holds the entry of another index.
    #[error("record at offset {offset} holds the entry of index {index}")]
    IndexMismatch {
        /// The record's offset.
        offset: i64,
        /// The index in its key.
        index: u64,
    },
    /// Entries to append do not continue the log (a hole or an overlap).
    #[error("entry {index} does not continue the log, which ends before {log_end}")]
    NotContiguous {
        /// The first entry's index.
        index: u64,
        /// The log end offset.
        log_end: u64,
    },
    /// An index does not fit the storage engine's `i64` offsets.
    #[error("log index {0} is out of range")]
    IndexOutOfRange(u64),
    /// The quorum-state file could not be encoded.
    #[error("cannot encode the quorum state: {0}")]
    State(serde_json::Error),
}

/// Why a raft RPC received from a peer was not answered; the connection closes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The API key is not a raft RPC.
    #[error("API key {0} is not a raft RPC")]
    UnknownApi(i16),
    /// The body is not the JSON of the RPC's request.
    #[error("malformed raft RPC body: {0}")]
    MalformedBody(serde_json::Error),
    /// The response could not be encoded.
    #[error("cannot encode the raft RPC response: {0}")]
    Encode(serde_json::Error),
}
