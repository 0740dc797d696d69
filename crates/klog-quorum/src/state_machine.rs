//! The state-machine seam ([`MetadataStateMachine`]) and its openraft adapter, which
//! also keeps the snapshot files.
//!
//! The state machine is in memory (the metadata image). What makes it durable is
//! the log plus the newest snapshot: `<index>-<term>.checkpoint` in
//! `__cluster_metadata-0/`, JSON holding openraft's snapshot metadata (last included
//! log id, membership, snapshot id) and the bytes [`MetadataStateMachine::snapshot`]
//! returned. A snapshot file is written atomically (temporary file, fsync, rename,
//! folder fsync) before openraft learns it exists, and older ones are deleted after.
//! At start-up the newest snapshot that parses is restored, and openraft re-applies
//! the log entries after it (up to the committed id saved in `quorum-state`, then
//! whatever the leader commits).

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, StorageIOError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::error::QuorumError;
use super::log_store::blocking;
use super::types::{
    Applied, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// What the quorum applies committed entries to: the metadata image, written by the
/// controller's owner. It sees only the payloads of normal entries, in log order;
/// indexes increase but are not dense (raft's own blank and membership entries are
/// skipped).
///
/// The quorum holds it behind an `Arc<Mutex<S>>` (see
/// [`Quorum::state_machine`](super::Quorum::state_machine)); methods run with that
/// lock held, so they should not block for long.
pub trait MetadataStateMachine: Send + Sync + 'static {
    /// Applies one committed payload at `index` (raft log index).
    fn apply(&mut self, index: u64, payload: &[u8]);
    /// A snapshot of everything applied so far.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot taken at `index`.
    fn restore(&mut self, index: u64, snapshot: &[u8]) -> Result<(), String>;
}

/// Suffix of snapshot files.
const SNAPSHOT_EXT: &str = "checkpoint";

/// A snapshot file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// `<index>-<term>.checkpoint`, zero-padded as Kafka names its metadata snapshots.
fn snapshot_file_name(log_id: &LogId) -> String {
    format!(
        "{:020}-{:010}.{SNAPSHOT_EXT}",
        log_id.index, log_id.leader_id.term
    )
}

/// Parses `<index>-<term>.checkpoint`.
fn parse_snapshot_file_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SNAPSHOT_EXT)?.strip_suffix('.')?;
    let (index, term) = stem.split_once('-')?;
    Some((index.parse().ok()?, term.parse().ok()?))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn snapshot_error(meta: Option<&SnapshotMeta>, verb: ErrorVerb, e: &io::Error) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(
            ErrorSubject::Snapshot(meta.map(SnapshotMeta::signature)),
            verb,
            AnyError::new(e),
        ),
    }
}

/// The snapshot folder and the newest snapshot, shared by the state machine and
/// the snapshot builders openraft runs beside it.
struct Snapshots {
    dir: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
}

impl Snapshots {
    /// Makes `snap` the current snapshot unless a newer one already is: writes its
    /// file, then deletes the others.
    fn save(&self, snap: StoredSnapshot) -> io::Result<()> {
        let Some(log_id) = snap.meta.last_log_id else {
            // Nothing applied: nothing worth keeping.
            return Ok(());
        };
        let mut current = lock(&self.current);
        if current
            .as_ref()
            .is_some_and(|c| c.meta.last_log_id > snap.meta.last_log_id)
        {
            return Ok(());
        }
        let name = snapshot_file_name(&log_id);
        let json = serde_json::to_vec(&snap).map_err(io::Error::other)?;
        klog_storage::write_atomic(&self.dir.join(&name), &json)?;
        *current = Some(snap);
        let mut deleted = false;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let file = entry.file_name();
            let Some(other) = file.to_str() else { continue };
            if other != name && parse_snapshot_file_name(other).is_some() {
                fs::remove_file(entry.path())?;
                deleted = true;
            }
        }
        if deleted {
            klog_storage::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// The snapshot files in `dir`, newest first.
    fn list(dir: &Path) -> Result<Vec<(u64, u64, PathBuf)>, QuorumError> {
        let io_err = |source| QuorumError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let file = entry.file_name();
            if let Some((index, term)) = file.to_str().and_then(parse_snapshot_file_name) {
                found.push((index, term, entry.path()));
            }
        }
        found.sort_by_key(|&(index, term, _)| std::cmp::Reverse((index, term)));
        Ok(found)
    }

    /// Reads one snapshot file; `None` (with a warning) if it does not parse or does
    /// not match its name.
    fn load(path: &Path, index: u64, term: u64) -> Result<Option<StoredSnapshot>, QuorumError> {
        let bytes = fs::read(path).map_err(|source| QuorumError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        match serde_json::from_slice::<StoredSnapshot>(&bytes) {
            Ok(s)
                if s.meta
                    .last_log_id
                    .is_some_and(|l| (l.index, l.leader_id.term) == (index, term)) =>
            {
                Ok(Some(s))
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "snapshot file does not match its name; skipping it");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "snapshot file does not parse; skipping it");
                Ok(None)
            }
        }
    }
}

/// The openraft state machine: applies entries to the [`MetadataStateMachine`],
/// keeps the last applied log id and membership, publishes the applied index, and
/// keeps the snapshots.
pub(crate) struct StateMachineStore<S> {
    sm: Arc<Mutex<S>>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    applied_tx: watch::Sender<Option<u64>>,
    snapshots: Arc<Snapshots>,
}

/// What [`StateMachineStore::open`] found.
pub(crate) struct OpenedStateMachine<S> {
    /// The adapter to hand to openraft.
    pub(crate) store: StateMachineStore<S>,
    /// The snapshot restored, if any, and its file.
    pub(crate) snapshot: Option<(LogId, PathBuf)>,
    /// Receives the last applied index.
    pub(crate) applied_rx: watch::Receiver<Option<u64>>,
}

impl<S: MetadataStateMachine> StateMachineStore<S> {
    /// Restores the newest snapshot in `dir` that parses into `sm` and removes
    /// leftover temporary files. A snapshot that parses but that the state machine
    /// refuses fails the start.
    pub(crate) fn open(
        dir: &Path,
        sm: Arc<Mutex<S>>,
    ) -> Result<OpenedStateMachine<S>, QuorumError> {
        fs::create_dir_all(dir).map_err(|source| QuorumError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        remove_temporary_files(dir).map_err(|source| QuorumError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut loaded = None;
        for (index, term, path) in Snapshots::list(dir)? {
            if let Some(snap) = Snapshots::load(&path, index, term)? {
                loaded = Some((snap, path));
                break;
            }
        }
        let mut last_applied = None;
        let mut membership = StoredMembership::default();
        let mut snapshot = None;
        if let Some((snap, path)) = &loaded
            && let Some(log_id) = snap.meta.last_log_id
        {
            lock(&sm)
                .restore(log_id.index, &snap.data)
                .map_err(|reason| QuorumError::Restore {
                    path: path.clone(),
                    reason,
                })?;
            last_applied = Some(log_id);
            membership = snap.meta.last_membership.clone();
            snapshot = Some((log_id, path.clone()));
        }
        let (applied_tx, applied_rx) = watch::channel(last_applied.map(|l| l.index));
        Ok(OpenedStateMachine {
            store: StateMachineStore {
                sm,
                last_applied,
                membership,
                applied_tx,
                snapshots: Arc::new(Snapshots {
                    dir: dir.to_path_buf(),
                    current: Mutex::new(loaded.map(|(s, _)| s)),
                }),
            },
            snapshot,
            applied_rx,
        })
    }

    fn publish_applied(&self) {
        if let Some(l) = self.last_applied {
            self.applied_tx.send_replace(Some(l.index));
        }
    }
}

/// Removes `*.tmp` files an interrupted atomic write left behind.
fn remove_temporary_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension() == Some(OsStr::new("tmp")) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Builds one snapshot from the state captured when openraft asked for a builder.
pub(crate) struct SnapshotBuilder {
    data: Vec<u8>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshots: Arc<Snapshots>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let built_ms = klog_rt::clock::now_ms();
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{built_ms}", l.index, l.leader_id.term),
            None => format!("none-{built_ms}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: std::mem::take(&mut self.data),
        };
        let snapshots = self.snapshots.clone();
        let data = stored.data.clone();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        blocking(subject, ErrorVerb::Write, move || snapshots.save(stored)).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<S: MetadataStateMachine> RaftStateMachine<TypeConfig> for StateMachineStore<S> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        {
            let mut sm = lock(&self.sm);
            for entry in entries {
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(payload) => sm.apply(entry.log_id.index, &payload.0),
                    EntryPayload::Membership(m) => {
                        self.membership = StoredMembership::new(Some(entry.log_id), m);
                    }
                }
                self.last_applied = Some(entry.log_id);
                out.push(Applied {
                    index: entry.log_id.index,
                });
            }
        }
        self.publish_applied();
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // Captured here, in line with `apply`, so the bytes, the applied id and the
        // membership agree; the builder then writes the file concurrently.
        SnapshotBuilder {
            data: lock(&self.sm).snapshot(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let index = meta.last_log_id.map_or(0, |l| l.index);
        lock(&self.sm).restore(index, &data).map_err(|reason| {
            let e = io::Error::new(io::ErrorKind::InvalidData, reason);
            snapshot_error(Some(meta), ErrorVerb::Read, &e)
        })?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let snapshots = self.snapshots.clone();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        blocking(subject, ErrorVerb::Write, move || snapshots.save(stored)).await?;
        self.publish_applied();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(lock(&self.snapshots.current).as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
