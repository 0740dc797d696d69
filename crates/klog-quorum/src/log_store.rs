//! The raft log, kept as a klog-storage [`Log`] in `__cluster_metadata-0/`, and the
//! `quorum-state` file beside it.
//!
//! One raft entry is one record batch of one record whose offset is the entry's
//! raft index (appended with [`Log::append_as_follower`], which keeps the offsets it
//! is given). The record's key is the JSON of the entry's log id and kind; its value
//! is the payload bytes as written (a normal entry), the JSON of the membership (a
//! membership entry) or null (a blank entry a new leader commits). Segment files,
//! CRCs and cutting a torn tail at start-up come from the storage engine.
//!
//! `quorum-state` is JSON: the vote, the last committed log id (a hint that lets a
//! restarted node re-apply its committed entries before it hears from a leader) and
//! the last purged log id. It is replaced atomically (temporary file, fsync, rename,
//! folder fsync) whenever one of them changes.
//!
//! What is durable when:
//! * an append is fdatasynced before openraft's [`LogFlushed`] callback runs, so a
//!   node acknowledges only entries that survive a crash;
//! * a truncation is fsynced before it returns;
//! * a vote or committed id is on disk before `save_vote`/`save_committed` returns;
//! * a purge records its log id in `quorum-state` first, then deletes segments: a
//!   crash in between leaves entries that are ignored (and deleted) at the next
//!   start, never a log that begins after what is known to be purged.

use std::fmt::Debug;
use std::fs;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use klog_codec::{BatchBuilder, Compression, RecordBatches};
use klog_storage::{Log, LogConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, LogState, RaftLogReader, StorageIOError,
};
use serde::{Deserialize, Serialize};

use super::error::{LogStoreError, QuorumError};
use super::types::{Entry, LogId, Membership, StorageError, TypeConfig, Vote};

/// The file holding the vote, the committed hint and the purged log id.
pub const STATE_FILE: &str = "quorum-state";

/// Largest record batch the metadata log accepts: a payload of
/// [`MAX_PAYLOAD_BYTES`](super::MAX_PAYLOAD_BYTES) plus its key and batch header.
const MAX_BATCH_BYTES: u32 = 8 * 1024 * 1024 + 64 * 1024;

/// Segment size of the metadata log: small, so that purging after a snapshot frees
/// space in reasonable steps.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// How many bytes of batches one read of the storage engine returns at most.
const READ_CHUNK: usize = 1024 * 1024;

/// The storage engine's configuration for the metadata log: no retention (raft
/// purges), no time-based roll, no flush policy (every append is synced here).
fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        segment_ms: None,
        retention_ms: None,
        retention_bytes: None,
        flush_interval_messages: None,
        flush_interval_ms: None,
        max_message_bytes: MAX_BATCH_BYTES,
        ..LogConfig::default()
    }
}

/// The contents of `quorum-state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct QuorumState {
    /// Format version, 0.
    version: u32,
    /// The last vote saved.
    vote: Option<Vote>,
    /// The last committed log id saved (a hint: never above what is committed).
    committed: Option<LogId>,
    /// The last purged log id: every entry up to it is gone.
    purged: Option<LogId>,
}

/// What a record's key says about its entry.
#[derive(Debug, Serialize, Deserialize)]
struct EntryKey {
    log_id: LogId,
    kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EntryKind {
    Blank,
    Normal,
    Membership,
}

struct Inner {
    dir: PathBuf,
    log: Log,
    state: QuorumState,
    /// Log id of the last entry, or the purged log id when the log is empty.
    last: Option<LogId>,
    /// Set by [`LogStore::close`]: writes fail.
    closed: bool,
}

/// The raft log storage of one node: a shared handle, cloned as the log reader that
/// openraft's replication tasks use.
#[derive(Clone)]
pub(crate) struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves the log as the storage engine left it,
    // which its own invariants keep consistent.
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    klog_rt::clock::now_ms()
}

fn offset(index: u64) -> Result<i64, LogStoreError> {
    i64::try_from(index).map_err(|_| LogStoreError::IndexOutOfRange(index))
}

/// Offsets of a log are never negative.
fn index(offset: i64) -> u64 {
    u64::try_from(offset).unwrap_or(0)
}

/// Runs a blocking storage operation (writes and fsyncs) off the async threads and
/// waits for it: openraft's storage calls are serialized, so waiting keeps them in
/// order. A failure becomes openraft's error about `subject`.
pub(crate) async fn blocking<T, E>(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, StorageError>
where
    T: Send + 'static,
    E: std::error::Error + Send + 'static,
{
    let io_error = |e: &dyn std::error::Error| StorageError::IO {
        source: StorageIOError::new(subject.clone(), verb, AnyError::error(e)),
    };
    match klog_rt::task::blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(io_error(&e)),
        Err(e) => Err(io_error(&e)),
    }
}

/// Appends `entry` to `buf` as one record batch at offset `entry.log_id.index`.
fn encode_entry(entry: &Entry, buf: &mut Vec<u8>, now_ms: i64) -> Result<(), LogStoreError> {
    let (kind, membership_json);
    let value: Option<&[u8]> = match &entry.payload {
        EntryPayload::Blank => {
            kind = EntryKind::Blank;
            None
        }
        EntryPayload::Normal(payload) => {
            kind = EntryKind::Normal;
            Some(&payload.0)
        }
        EntryPayload::Membership(m) => {
            kind = EntryKind::Membership;
            membership_json = serde_json::to_vec(m).map_err(LogStoreError::State)?;
            Some(&membership_json)
        }
    };
    let key = serde_json::to_vec(&EntryKey {
        log_id: entry.log_id,
        kind,
    })
    .map_err(LogStoreError::State)?;
    let mut batch = BatchBuilder::new(&mut *buf, Compression::None);
    batch.set_base_offset(offset(entry.log_id.index)?);
    if let Err(e) = batch.push(now_ms, Some(&key), value, &[]) {
        batch.abandon();
        return Err(e.into());
    }
    batch.finish()?;
    Ok(())
}

/// Decodes the entries in `bytes` (whole batches as read from the log), which must
/// start at index `next`; returns the index after the last one.
fn decode_entries(bytes: &[u8], mut next: u64, out: &mut Vec<Entry>) -> Result<u64, LogStoreError> {
    for item in RecordBatches::new(bytes) {
        let (_, batch) = item?;
        let records = batch.records()?;
        for record in records.iter() {
            let record = record?;
            let key: EntryKey =
                serde_json::from_slice(record.key.unwrap_or_default()).map_err(|source| {
                    LogStoreError::NotAnEntry {
                        offset: record.offset,
                        source,
                    }
                })?;
            if key.log_id.index != next || offset(next)? != record.offset {
                return Err(LogStoreError::IndexMismatch {
                    offset: record.offset,
                    index: key.log_id.index,
                });
            }
            let payload = match key.kind {
                EntryKind::Blank => EntryPayload::Blank,
                EntryKind::Normal => EntryPayload::Normal(super::types::Payload(
                    record.value.unwrap_or_default().to_vec(),
                )),
                EntryKind::Membership => {
                    let m: Membership = serde_json::from_slice(record.value.unwrap_or_default())
                        .map_err(|source| LogStoreError::NotAnEntry {
                            offset: record.offset,
                            source,
                        })?;
                    EntryPayload::Membership(m)
                }
            };
            out.push(Entry {
                log_id: key.log_id,
                payload,
            });
            next += 1;
        }
    }
    Ok(next)
}

impl Inner {
    fn log_start(&self) -> u64 {
        index(self.log.log_start_offset())
    }

    fn log_end(&self) -> u64 {
        index(self.log.log_end_offset())
    }

    /// Entries with index in `[start, end)` that the log holds.
    fn read(&self, start: u64, end: u64) -> Result<Vec<Entry>, LogStoreError> {
        let start = start.max(self.log_start());
        let end = end.min(self.log_end());
        let wanted = usize::try_from(end.saturating_sub(start)).unwrap_or(0);
        let mut out = Vec::with_capacity(wanted.min(1024));
        let mut next = start;
        while next < end {
            let bytes = self
                .log
                .read_to_vec(offset(next)?, READ_CHUNK, offset(end)?)?;
            if bytes.is_empty() {
                break;
            }
            next = decode_entries(&bytes, next, &mut out)?;
        }
        Ok(out)
    }

    fn entry_log_id(&self, index: u64) -> Result<Option<LogId>, LogStoreError> {
        Ok(self.read(index, index + 1)?.first().map(|e| e.log_id))
    }

    /// The log id of the last entry, or the purged one if the log is empty.
    fn find_last(&self) -> Result<Option<LogId>, LogStoreError> {
        let (start, end) = (self.log_start(), self.log_end());
        if end > start {
            return self.entry_log_id(end - 1);
        }
        Ok(self.state.purged)
    }

    fn check_open(&self) -> Result<(), LogStoreError> {
        if self.closed {
            return Err(LogStoreError::Storage(klog_storage::StorageError::Closed));
        }
        Ok(())
    }

    fn save_state(&self) -> Result<(), LogStoreError> {
        self.check_open()?;
        let json = serde_json::to_vec_pretty(&self.state).map_err(LogStoreError::State)?;
        klog_storage::write_atomic(&self.dir.join(STATE_FILE), &json)?;
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), LogStoreError> {
        self.check_open()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let first = first.log_id.index;
        let end = self.log_end();
        if first != end {
            // An empty log may start anywhere (openraft's storage test suite starts
            // logs at index 1); otherwise entries must continue the log exactly.
            if self.log_start() == end && first > end {
                self.log.truncate_fully_and_start_at(offset(first)?)?;
            } else {
                return Err(LogStoreError::NotContiguous {
                    index: first,
                    log_end: end,
                });
            }
        }
        let now = now_ms();
        let mut buf = Vec::new();
        for e in entries {
            encode_entry(e, &mut buf, now)?;
        }
        self.log.append_as_follower(&buf, now)?;
        let job = self.log.sync_job()?;
        job.run()?;
        self.log.sync_done(job.upto);
        self.last = entries.last().map(|e| e.log_id);
        Ok(())
    }

    /// Removes the entries from `log_id.index` on.
    fn truncate(&mut self, log_id: LogId) -> Result<(), LogStoreError> {
        self.check_open()?;
        let at = log_id.index.max(self.log_start());
        self.log.truncate_to(offset(at)?)?;
        self.last = self.find_last()?;
        Ok(())
    }

    /// Removes the entries up to and including `log_id.index`.
    fn purge(&mut self, log_id: LogId) -> Result<(), LogStoreError> {
        if self.state.purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        self.state.purged = Some(log_id);
        self.save_state()?;
        self.apply_purge()?;
        if self.last.is_none_or(|l| l.index < log_id.index) {
            self.last = Some(log_id);
        }
        Ok(())
    }

    /// Makes the log start after the purged log id (again, after a crash).
    fn apply_purge(&mut self) -> Result<(), LogStoreError> {
        let Some(purged) = self.state.purged else {
            return Ok(());
        };
        let next = purged.index + 1;
        let end = self.log_end();
        if next > end {
            self.log.truncate_fully_and_start_at(offset(next)?)?;
        } else if next > self.log_start() {
            self.log.set_high_watermark(offset(end)?);
            self.log.delete_records_before(offset(next)?)?;
        }
        Ok(())
    }
}

impl LogStore {
    /// Opens (creating if needed) the metadata log in `dir`
    /// (`<log dir>/__cluster_metadata-0`), recovering a torn tail, and reads
    /// `quorum-state`.
    pub(crate) fn open(dir: &Path) -> Result<LogStore, QuorumError> {
        fs::create_dir_all(dir).map_err(|source| QuorumError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let state_path = dir.join(STATE_FILE);
        let state = match fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| QuorumError::Corrupt {
                path: state_path.clone(),
                source,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => QuorumState::default(),
            Err(source) => {
                return Err(QuorumError::Io {
                    path: state_path,
                    source,
                });
            }
        };
        let log = Log::open(dir, log_config(), now_ms()).map_err(|source| QuorumError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            log,
            state,
            last: None,
            closed: false,
        };
        inner.apply_purge()?;
        inner.last = inner.find_last()?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// The first index the log holds (or would hold next, if empty).
    pub(crate) fn log_start(&self) -> u64 {
        lock(&self.inner).log_start()
    }

    /// The index the next entry gets.
    pub(crate) fn log_end(&self) -> u64 {
        lock(&self.inner).log_end()
    }

    /// The last purged log id.
    pub(crate) fn purged(&self) -> Option<LogId> {
        lock(&self.inner).state.purged
    }

    /// The saved vote.
    pub(crate) fn vote(&self) -> Option<Vote> {
        lock(&self.inner).state.vote
    }

    /// Flushes the log and refuses every later write: for a clean stop, once
    /// openraft no longer runs (a replication task may still hold a reader).
    pub(crate) fn close(&self) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        inner.closed = true;
        inner.log.flush()
    }

    async fn update_state(
        &self,
        subject: ErrorSubject<u64>,
        f: impl FnOnce(&mut QuorumState) + Send + 'static,
    ) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        blocking(subject, ErrorVerb::Write, move || {
            let mut inner = lock(&inner);
            let mut state = inner.state.clone();
            f(&mut state);
            if state == inner.state {
                return Ok(());
            }
            let old = std::mem::replace(&mut inner.state, state);
            inner.save_state().inspect_err(|_| inner.state = old)
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        let inner = self.inner.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Read, move || {
            lock(&inner).read(start, end)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = lock(&self.inner);
        Ok(LogState {
            last_purged_log_id: inner.state.purged,
            last_log_id: inner.last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.update_state(ErrorSubject::Vote, move |s| s.vote = Some(vote))
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.inner).state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.update_state(ErrorSubject::Store, move |s| s.committed = committed)
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(lock(&self.inner).state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let inner = self.inner.clone();
        let res = blocking(ErrorSubject::Logs, ErrorVerb::Write, move || {
            lock(&inner).append(&entries)
        })
        .await;
        match &res {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(io::Error::other(e.to_string()))),
        }
        res
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        blocking(ErrorSubject::Log(log_id), ErrorVerb::Delete, move || {
            lock(&inner).truncate(log_id)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        blocking(ErrorSubject::Log(log_id), ErrorVerb::Delete, move || {
            lock(&inner).purge(log_id)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Write;

    use openraft::storage::RaftLogStorageExt;
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, RaftLogReader};

    use super::*;
    use crate::state_machine::{MetadataStateMachine, StateMachineStore};
    use crate::types::Payload;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn normal(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Payload(format!("record {index}").into_bytes())),
        }
    }

    fn membership(index: u64) -> Entry {
        Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Membership(Membership::new(
                vec![BTreeSet::from([1, 2, 3])],
                None,
            )),
        }
    }

    async fn all(store: &mut LogStore) -> Vec<Entry> {
        store.try_get_log_entries(0..).await.expect("read")
    }

    /// A state machine that keeps nothing: openraft's suite only checks what the
    /// adapter itself records (applied id, membership, snapshot metadata).
    struct Nothing;

    impl MetadataStateMachine for Nothing {
        fn apply(&mut self, _: u64, _: &[u8]) {}
        fn snapshot(&self) -> Vec<u8> {
            Vec::new()
        }
        fn restore(&mut self, _: u64, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
    }

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore<Nothing>, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore<Nothing>), StorageError>
        {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = LogStore::open(dir.path()).expect("open log");
            let sm = StateMachineStore::open(dir.path(), Arc::new(Mutex::new(Nothing)))
                .expect("open state machine")
                .store;
            Ok((dir, store, sm))
        }
    }

    type S = Suite<TypeConfig, LogStore, StateMachineStore<Nothing>, Builder, tempfile::TempDir>;

    /// openraft's storage conformance suite, every case but one:
    /// `get_initial_state_membership_from_log_and_sm` appends entry 1 to a log purged
    /// up to 2, then entry 3, leaving a hole. A log with dense offsets cannot hold
    /// that, and openraft itself never appends at or below the purged id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_openraft_storage_suite() {
        let mut failed = Vec::new();
        macro_rules! run {
            ($($name:ident)*) => {$(
                let (_dir, store, sm) = Builder.build().await.expect("build");
                if let Err(e) = S::$name(store, sm).await {
                    failed.push((stringify!($name), e.to_string()));
                }
            )*};
        }
        run!(last_membership_in_log_initial last_membership_in_log last_membership_in_log_multi_step get_membership_initial get_membership_from_log_and_empty_sm get_membership_from_empty_log_and_sm get_membership_from_log_le_sm_last_applied get_membership_from_log_gt_sm_last_applied_1 get_membership_from_log_gt_sm_last_applied_2 get_initial_state_without_init get_initial_state_with_state get_initial_state_last_log_gt_sm get_initial_state_last_log_lt_sm get_initial_state_log_ids get_initial_state_re_apply_committed save_vote get_log_entries limited_get_log_entries try_get_log_entry initial_logs get_log_state get_log_id last_id_in_log last_applied_state purge_logs_upto_0 purge_logs_upto_5 purge_logs_upto_20 delete_logs_since_11 delete_logs_since_0 append_to_log snapshot_meta apply_single apply_multiple);
        if let Err(e) = S::transfer_snapshot(&Builder).await {
            failed.push(("transfer_snapshot", e.to_string()));
        }
        assert!(failed.is_empty(), "{failed:#?}");
    }

    #[tokio::test]
    async fn gives_back_what_was_synced_after_truncate_purge_and_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path()).expect("open");
        let mut entries = vec![membership(0)];
        entries.extend((1..10).map(|i| normal(1, i)));
        store
            .blocking_append(entries.clone())
            .await
            .expect("append");
        assert_eq!(all(&mut store).await, entries);

        // A new leader's entries replace a conflicting suffix (raft §5.3).
        store.truncate(log_id(1, 7)).await.expect("truncate");
        entries.truncate(7);
        assert_eq!(all(&mut store).await, entries);
        let more: Vec<Entry> = (7..12).map(|i| normal(2, i)).collect();
        store.blocking_append(more.clone()).await.expect("append");
        entries.extend(more);

        store.purge(log_id(1, 3)).await.expect("purge");
        entries.drain(..4);
        let vote = Vote::new_committed(2, 1);
        store.save_vote(&vote).await.expect("vote");
        store
            .save_committed(Some(log_id(2, 9)))
            .await
            .expect("committed");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(2, 11)));
        assert_eq!(all(&mut store).await, entries);

        // Killed without a clean close, and a half-written batch at the tail (an
        // append that never reached its fsync).
        drop(store);
        let segment = dir.path().join("00000000000000000000.log");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .expect("segment");
        f.write_all(&[0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 200, 1, 2, 3])
            .expect("torn write");
        drop(f);

        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(all(&mut store).await, entries);
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(2, 11)));
        assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
        assert_eq!(
            store.read_committed().await.expect("committed"),
            Some(log_id(2, 9))
        );
        // The log continues where it ended.
        store
            .blocking_append([normal(2, 12)])
            .await
            .expect("append after reopen");
        assert_eq!(store.log_end(), 13);
    }

    #[tokio::test]
    async fn purge_past_the_end_restarts_the_log_after_the_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path()).expect("open");
        store
            .blocking_append((0..5).map(|i| normal(1, i)))
            .await
            .expect("append");
        // A follower installing a snapshot at 20 purges everything up to it.
        store.purge(log_id(3, 20)).await.expect("purge");
        assert!(all(&mut store).await.is_empty());
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(log_id(3, 20)));
        drop(store);

        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!((store.log_start(), store.log_end()), (21, 21));
        store
            .blocking_append([normal(3, 21)])
            .await
            .expect("append");
        assert_eq!(all(&mut store).await, vec![normal(3, 21)]);
        // Entries must continue the log: a hole is refused.
        assert!(store.blocking_append([normal(3, 30)]).await.is_err());
    }

    #[tokio::test]
    async fn refuses_a_corrupt_quorum_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(STATE_FILE), b"{\"vote\": [").expect("write");
        match LogStore::open(dir.path()) {
            Err(QuorumError::Corrupt { path, .. }) => {
                assert_eq!(path, dir.path().join(STATE_FILE));
            }
            other => panic!("expected a corrupt-file error, got {:?}", other.err()),
        }
    }
}
