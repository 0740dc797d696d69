//! [`LogManager`]: the logs of many partitions over one or more log directories.

use std::collections::HashMap;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use crate::checkpoint::{self, sync_dir};
use crate::config::{LogConfig, TopicPartition};
use crate::error::OpenError;
use crate::log::Log;

/// A log shared between threads. The lock is held for one operation at a time
/// (an append, a read); never call [`LogManager`] methods while holding it.
pub type SharedLog = Arc<Mutex<Log>>;

/// Identity of the node and cluster a log directory belongs to.
pub const META_PROPERTIES: &str = "meta.properties";
/// Per log directory: for each partition, the offset below which it is flushed.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Per log directory: for each partition, its high watermark.
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Per log directory: for each partition, its log start offset (moved by
/// `DeleteRecords`; Kafka keeps the same file).
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Present in a log directory only after a clean shutdown.
pub const CLEAN_SHUTDOWN: &str = ".clean-shutdown";

/// Suffix of a partition folder being deleted.
const DELETE_SUFFIX: &str = "-delete";

/// The folder of the cluster metadata log (the Raft log of the controller quorum) in
/// the first log dir, as Kafka names it. It is owned by the quorum, not by a
/// [`LogManager`]: opening log dirs skips it.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// The contents of `meta.properties` (Java properties format, as Kafka writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// Format version (1).
    pub version: u32,
    /// The broker's `node.id`.
    pub node_id: i32,
    /// The cluster id (22 characters of URL-safe base64 when generated here).
    pub cluster_id: String,
}

impl MetaProperties {
    /// Properties for a new node with a freshly generated cluster id.
    pub fn generate(node_id: i32) -> Self {
        Self {
            version: 1,
            node_id,
            cluster_id: random_cluster_id(),
        }
    }

    /// The identity of node `node_id` in the cluster `cluster_id`, for
    /// [`LogManager::claim`] and [`LogManager::open_with_identity`].
    pub fn new(node_id: i32, cluster_id: impl Into<String>) -> Self {
        Self {
            version: 1,
            node_id,
            cluster_id: cluster_id.into(),
        }
    }

    /// Whether this is the identity [`LogManager::open`] writes when it is given
    /// none: node id 0 and a generated cluster id (22 characters of URL-safe base64).
    /// Every klog broker before identities were checked wrote exactly this, whatever
    /// its node id, so such a file says nothing about which node or cluster the
    /// directory belongs to, and [`LogManager::claim`] takes it over.
    pub fn is_unclaimed(&self) -> bool {
        self.node_id == 0 && is_generated_cluster_id(&self.cluster_id)
    }

    fn render(&self) -> String {
        format!(
            "#klog log directory identity\nversion={}\nnode.id={}\ncluster.id={}\n",
            self.version, self.node_id, self.cluster_id
        )
    }

    fn read(path: &Path) -> Result<Option<Self>, OpenError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OpenError::io(path)(e)),
        };
        let bad = |line, reason| OpenError::MalformedFile {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let (mut version, mut node_id, mut cluster_id) = (None, None, None);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(i + 1, "expected key=value"))?;
            match k.trim() {
                "version" => {
                    version = Some(v.trim().parse().map_err(|_| bad(i + 1, "bad version"))?)
                }
                "node.id" | "broker.id" => {
                    node_id = Some(v.trim().parse().map_err(|_| bad(i + 1, "bad node.id"))?)
                }
                "cluster.id" => cluster_id = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        Ok(Some(Self {
            version: version.ok_or_else(|| bad(0, "no version"))?,
            node_id: node_id.ok_or_else(|| bad(0, "no node.id"))?,
            cluster_id: cluster_id.ok_or_else(|| bad(0, "no cluster.id"))?,
        }))
    }
}

/// Whether `id` has the form [`random_cluster_id`] gives.
fn is_generated_cluster_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// 16 random bytes as 22 characters of URL-safe base64, like Kafka's `Uuid`.
fn random_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // std's RandomState is seeded from the OS; mixing in the time and pid only makes
    // two ids generated at once in two processes differ further.
    let state = std::collections::hash_map::RandomState::new();
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        h.write_u32(std::process::id());
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    let mut bits = u128::from_le_bytes(bytes);
    (0..22)
        .map(|_| {
            let c = ALPHABET[(bits & 63) as usize] as char;
            bits >>= 6;
            c
        })
        .collect()
}

#[derive(Debug)]
struct Entry {
    log: SharedLog,
    dir: usize,
}

/// The logs of every partition on this node: `<log dir>/<topic>-<partition>/`,
/// spread over one or more log directories.
///
/// Opening runs recovery where the last stop was unclean and restores each log's
/// recovery point, high watermark and log start offset from the checkpoints of its
/// directory; [`LogManager::shutdown`] writes them back with a `.clean-shutdown`
/// marker. `LogManager` is `Send + Sync`; each log has its own lock.
#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<PathBuf>,
    meta: MetaProperties,
    logs: RwLock<HashMap<TopicPartition, Entry>>,
    /// Serialises checkpoint writers.
    checkpoint_lock: Mutex<()>,
}

fn lock(log: &SharedLog) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogManager {
    /// Opens every partition in `log_dirs`, creating the directories and their
    /// `meta.properties` (node id 0, a new cluster id) if missing. Brokers with a
    /// configured node id use [`LogManager::open_with_node_id`].
    pub fn open(
        log_dirs: &[PathBuf],
        config_for: impl Fn(&TopicPartition) -> LogConfig,
        now_ms: i64,
    ) -> Result<LogManager, OpenError> {
        Self::open_inner(log_dirs, None, config_for, now_ms)
    }

    /// As [`LogManager::open`], checking that existing `meta.properties` files carry
    /// `node_id` (and writing it into new ones).
    pub fn open_with_node_id(
        log_dirs: &[PathBuf],
        node_id: i32,
        config_for: impl Fn(&TopicPartition) -> LogConfig,
        now_ms: i64,
    ) -> Result<LogManager, OpenError> {
        Self::open_inner(log_dirs, Some(node_id), config_for, now_ms)
    }

    /// As [`LogManager::open`] for the node and cluster of `identity`: the log
    /// directories are first claimed with [`LogManager::claim`], so a directory of
    /// another node or cluster is refused.
    pub fn open_with_identity(
        log_dirs: &[PathBuf],
        identity: &MetaProperties,
        config_for: impl Fn(&TopicPartition) -> LogConfig,
        now_ms: i64,
    ) -> Result<LogManager, OpenError> {
        let meta = Self::claim(log_dirs, identity)?;
        Self::open_inner(log_dirs, Some(meta.node_id), config_for, now_ms)
    }

    /// Makes `log_dirs` (created if missing) those of `identity`'s node and cluster,
    /// opening no log, as Kafka checks `meta.properties` before it touches anything
    /// else in a log directory.
    ///
    /// A `meta.properties` with another `node.id` or `cluster.id` is refused with
    /// [`OpenError::ForeignLogDir`], and nothing is written. A missing one, or an
    /// unclaimed one ([`MetaProperties::is_unclaimed`]: written by
    /// [`LogManager::open`], as every broker did before identities were checked), is
    /// written with `identity`; from then on the directory is this node's. Unclaimed
    /// files must still agree with each other, as [`LogManager::open`] required:
    /// directories with two generated cluster ids were never one node's.
    pub fn claim(
        log_dirs: &[PathBuf],
        identity: &MetaProperties,
    ) -> Result<MetaProperties, OpenError> {
        if log_dirs.is_empty() {
            return Err(OpenError::NoLogDirs);
        }
        let mut rewrite = Vec::new();
        let mut unclaimed: Option<String> = None;
        for dir in log_dirs {
            fs::create_dir_all(dir).map_err(OpenError::io(dir))?;
            let path = dir.join(META_PROPERTIES);
            let Some(meta) = MetaProperties::read(&path)? else {
                rewrite.push((path, None));
                continue;
            };
            if meta.node_id == identity.node_id && meta.cluster_id == identity.cluster_id {
                continue;
            }
            if meta.is_unclaimed() {
                match &unclaimed {
                    Some(first) if *first != meta.cluster_id => {
                        return Err(OpenError::InconsistentMeta {
                            path,
                            field: "cluster.id",
                            expected: first.clone(),
                            found: meta.cluster_id,
                        });
                    }
                    Some(_) => {}
                    None => unclaimed = Some(meta.cluster_id.clone()),
                }
                rewrite.push((path, Some(meta)));
                continue;
            }
            let (field, expected, found) = if meta.node_id != identity.node_id {
                (
                    "node.id",
                    identity.node_id.to_string(),
                    meta.node_id.to_string(),
                )
            } else {
                ("cluster.id", identity.cluster_id.clone(), meta.cluster_id)
            };
            return Err(OpenError::ForeignLogDir {
                path,
                field,
                expected,
                found,
            });
        }
        let meta = MetaProperties::new(identity.node_id, identity.cluster_id.clone());
        for (path, old) in rewrite {
            if let Some(old) = old {
                tracing::info!(
                    path = %path.display(),
                    old_cluster_id = %old.cluster_id,
                    node_id = meta.node_id,
                    cluster_id = %meta.cluster_id,
                    "claiming a log directory written before node and cluster ids were checked"
                );
            }
            checkpoint::write_atomic(&path, meta.render().as_bytes())
                .map_err(OpenError::io(&path))?;
        }
        Ok(meta)
    }

    fn open_inner(
        log_dirs: &[PathBuf],
        node_id: Option<i32>,
        config_for: impl Fn(&TopicPartition) -> LogConfig,
        now_ms: i64,
    ) -> Result<LogManager, OpenError> {
        if log_dirs.is_empty() {
            return Err(OpenError::NoLogDirs);
        }
        let meta = Self::load_meta(log_dirs, node_id)?;
        let mut logs: HashMap<TopicPartition, Entry> = HashMap::new();
        for (di, dir) in log_dirs.iter().enumerate() {
            let clean = dir.join(CLEAN_SHUTDOWN).exists();
            let rps = checkpoint::read_offsets(&dir.join(RECOVERY_POINT_CHECKPOINT))?;
            let hws = checkpoint::read_offsets(&dir.join(REPLICATION_OFFSET_CHECKPOINT))?;
            let starts = checkpoint::read_offsets(&dir.join(LOG_START_OFFSET_CHECKPOINT))?;
            let mut entries: Vec<(TopicPartition, PathBuf)> = Vec::new();
            for entry in fs::read_dir(dir).map_err(OpenError::io(dir))? {
                let entry = entry.map_err(OpenError::io(dir))?;
                let path = entry.path();
                if !entry.file_type().map_err(OpenError::io(&path))?.is_dir() {
                    continue;
                }
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name == METADATA_LOG_DIR {
                    continue;
                }
                if name.ends_with(DELETE_SUFFIX) {
                    // A deletion interrupted by a crash: finish it.
                    fs::remove_dir_all(&path).map_err(OpenError::io(&path))?;
                    continue;
                }
                match TopicPartition::from_dir_name(&name) {
                    Some(tp) => entries.push((tp, path)),
                    None => {
                        tracing::warn!(path = %path.display(), "ignoring a folder that is not <topic>-<partition>")
                    }
                }
            }
            entries.sort();
            for (tp, path) in entries {
                if let Some(other) = logs.get(&tp) {
                    return Err(OpenError::DuplicatePartition {
                        first: log_dirs[other.dir].join(tp.to_string()),
                        second: path,
                        tp,
                    });
                }
                let rp = rps.get(&tp).copied().unwrap_or(0);
                let mut log =
                    Log::open_with_recovery_point(&path, config_for(&tp), rp, clean, now_ms)?;
                if let Some(&start) = starts.get(&tp) {
                    log.advance_log_start(start).map_err(OpenError::io(&path))?;
                }
                if let Some(&hw) = hws.get(&tp) {
                    log.set_high_watermark(hw);
                }
                logs.insert(
                    tp,
                    Entry {
                        log: Arc::new(Mutex::new(log)),
                        dir: di,
                    },
                );
            }
        }
        let manager = LogManager {
            dirs: log_dirs.to_vec(),
            meta,
            logs: RwLock::new(logs),
            checkpoint_lock: Mutex::new(()),
        };
        // Recovery moved recovery points: record them before the marker goes, so a
        // crash from now on does not recover the same segments again.
        manager.checkpoint().map_err(OpenError::io(&log_dirs[0]))?;
        for dir in log_dirs {
            let marker = dir.join(CLEAN_SHUTDOWN);
            match fs::remove_file(&marker) {
                Ok(()) => sync_dir(dir).map_err(OpenError::io(dir))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(OpenError::io(&marker)(e)),
            }
        }
        Ok(manager)
    }

    fn load_meta(log_dirs: &[PathBuf], node_id: Option<i32>) -> Result<MetaProperties, OpenError> {
        let mut agreed: Option<(MetaProperties, PathBuf)> = None;
        let mut missing = Vec::new();
        for dir in log_dirs {
            fs::create_dir_all(dir).map_err(OpenError::io(dir))?;
            let path = dir.join(META_PROPERTIES);
            let Some(meta) = MetaProperties::read(&path)? else {
                missing.push(path);
                continue;
            };
            let mismatch = |field, expected: String, found: String| OpenError::InconsistentMeta {
                path: path.clone(),
                field,
                expected,
                found,
            };
            if let Some(id) = node_id
                && meta.node_id != id
            {
                return Err(mismatch(
                    "node.id",
                    id.to_string(),
                    meta.node_id.to_string(),
                ));
            }
            match &agreed {
                Some((a, _)) if a.cluster_id != meta.cluster_id => {
                    return Err(mismatch(
                        "cluster.id",
                        a.cluster_id.clone(),
                        meta.cluster_id,
                    ));
                }
                Some((a, _)) if a.node_id != meta.node_id => {
                    return Err(mismatch(
                        "node.id",
                        a.node_id.to_string(),
                        meta.node_id.to_string(),
                    ));
                }
                Some(_) => {}
                None => agreed = Some((meta, path.clone())),
            }
        }
        let meta = match agreed {
            Some((m, _)) => m,
            None => MetaProperties::generate(node_id.unwrap_or(0)),
        };
        for path in missing {
            checkpoint::write_atomic(&path, meta.render().as_bytes())
                .map_err(OpenError::io(&path))?;
        }
        Ok(meta)
    }

    /// The node and cluster identity from `meta.properties`.
    pub fn meta(&self) -> &MetaProperties {
        &self.meta
    }

    /// The log directories, in the order given.
    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    fn snapshot(&self) -> Vec<(TopicPartition, usize, SharedLog)> {
        let logs = self.logs.read().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<_> = logs
            .iter()
            .map(|(tp, e)| (tp.clone(), e.dir, Arc::clone(&e.log)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The log of a partition, if it exists here.
    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        let logs = self.logs.read().unwrap_or_else(PoisonError::into_inner);
        logs.get(tp).map(|e| Arc::clone(&e.log))
    }

    /// Creates the log of a new partition in the log directory holding the fewest
    /// partitions. Fails with [`OpenError::AlreadyExists`] if it is already open.
    pub fn create(
        &self,
        tp: TopicPartition,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<SharedLog, OpenError> {
        if !TopicPartition::is_valid_topic(&tp.topic) || tp.partition < 0 {
            return Err(OpenError::InvalidTopicPartition(tp));
        }
        let mut logs = self.logs.write().unwrap_or_else(PoisonError::into_inner);
        if logs.contains_key(&tp) {
            return Err(OpenError::AlreadyExists(tp));
        }
        let mut counts = vec![0usize; self.dirs.len()];
        for e in logs.values() {
            counts[e.dir] += 1;
        }
        let dir = (0..self.dirs.len())
            .min_by_key(|&i| (counts[i], i))
            .unwrap_or(0);
        let path = self.dirs[dir].join(tp.to_string());
        // A leftover folder (not opened at start) is checked in full.
        let fresh = !path.exists();
        let log = Log::open_with_recovery_point(&path, config, 0, fresh, now_ms)?;
        sync_dir(&self.dirs[dir]).map_err(OpenError::io(&self.dirs[dir]))?;
        let shared = Arc::new(Mutex::new(log));
        logs.insert(
            tp,
            Entry {
                log: Arc::clone(&shared),
                dir,
            },
        );
        Ok(shared)
    }

    /// Removes a partition: its log is closed (other holders of it get
    /// [`crate::AppendError::Closed`]) and its folder deleted. The folder is first
    /// renamed to `<topic>-<partition>.<n>-delete` so a crash midway cannot bring a
    /// half-deleted partition back; such folders are removed at the next open.
    /// [`LogManager::detach`] and [`DetachedPartition::remove`] are the same in
    /// two steps, for callers that remove the files on another thread.
    pub fn delete(&self, tp: &TopicPartition) -> io::Result<()> {
        self.detach(tp)?.remove()
    }

    /// The quick half of [`LogManager::delete`]: closes the log, forgets it (the
    /// same partition may be opened again at once, afresh) and renames its folder
    /// to a `-delete` name. The returned [`DetachedPartition`] removes the files;
    /// dropped without [`DetachedPartition::remove`], they are removed at the next
    /// open.
    pub fn detach(&self, tp: &TopicPartition) -> io::Result<DetachedPartition> {
        let entry = {
            let mut logs = self.logs.write().unwrap_or_else(PoisonError::into_inner);
            logs.remove(tp)
        };
        let Some(entry) = entry else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no partition {tp}"),
            ));
        };
        let path = {
            let mut log = lock(&entry.log);
            log.mark_closed();
            log.dir().to_path_buf()
        };
        let parent = self.dirs[entry.dir].clone();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let doomed = parent.join(format!("{tp}.{nanos}{DELETE_SUFFIX}"));
        fs::rename(&path, &doomed)?;
        Ok(DetachedPartition { parent, doomed })
    }

    /// Every partition, sorted.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.snapshot().into_iter().map(|(tp, _, _)| tp).collect()
    }

    /// Writes each log directory's recovery-point, replication-offset (high
    /// watermark) and log-start-offset checkpoints, each atomically (temporary file,
    /// fsync, rename, fsync of the directory).
    pub fn checkpoint(&self) -> io::Result<()> {
        let _guard = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = self.dirs.len();
        let mut rps = vec![Vec::new(); n];
        let mut hws = vec![Vec::new(); n];
        let mut starts = vec![Vec::new(); n];
        for (tp, dir, log) in self.snapshot() {
            let log = lock(&log);
            if log.is_closed() && !log.dir().exists() {
                continue; // deleted meanwhile
            }
            rps[dir].push((tp.clone(), log.recovery_point()));
            hws[dir].push((tp.clone(), log.high_watermark()));
            starts[dir].push((tp, log.log_start_offset()));
        }
        for (i, dir) in self.dirs.iter().enumerate() {
            checkpoint::write_offsets(&dir.join(RECOVERY_POINT_CHECKPOINT), &rps[i])?;
            checkpoint::write_offsets(&dir.join(REPLICATION_OFFSET_CHECKPOINT), &hws[i])?;
            checkpoint::write_offsets(&dir.join(LOG_START_OFFSET_CHECKPOINT), &starts[i])?;
        }
        Ok(())
    }

    /// Applies each log's `flush.ms` policy ([`Log::maybe_flush`]). Failures are
    /// logged with `tracing::error!` and returned with their partition.
    pub fn flush_due(&self, now_ms: i64) -> Vec<(TopicPartition, io::Error)> {
        let mut failed = Vec::new();
        for (tp, _, log) in self.snapshot() {
            if let Err(e) = lock(&log).maybe_flush(now_ms) {
                tracing::error!(partition = %tp, error = %e, "flush failed");
                failed.push((tp, e));
            }
        }
        failed
    }

    /// Applies each log's retention ([`Log::apply_retention`]). Returns the number of
    /// segments deleted; failures are logged with `tracing::error!`.
    pub fn run_retention(&self, now_ms: i64) -> usize {
        let mut deleted = 0;
        for (tp, _, log) in self.snapshot() {
            match lock(&log).apply_retention(now_ms) {
                Ok(n) => deleted += n,
                Err(e) => tracing::error!(partition = %tp, error = %e, "retention failed"),
            }
        }
        deleted
    }

    /// Clean shutdown: flushes and closes every log, writes the checkpoints, then a
    /// `.clean-shutdown` marker in each directory whose logs all closed cleanly.
    /// Returns the first error met, after doing everything else it could.
    pub fn shutdown(&self) -> io::Result<()> {
        let mut first_err: Option<io::Error> = None;
        let mut dir_ok = vec![true; self.dirs.len()];
        for (tp, dir, log) in self.snapshot() {
            if let Err(e) = lock(&log).close_in_place() {
                tracing::error!(partition = %tp, error = %e, "closing the log failed");
                dir_ok[dir] = false;
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = self.checkpoint() {
            dir_ok.iter_mut().for_each(|ok| *ok = false);
            first_err.get_or_insert(e);
        }
        for (i, dir) in self.dirs.iter().enumerate() {
            if !dir_ok[i] {
                continue;
            }
            let marker = dir.join(CLEAN_SHUTDOWN);
            let written = fs::File::create(&marker)
                .and_then(|f| f.sync_all())
                .and_then(|()| sync_dir(dir));
            if let Err(e) = written {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A partition folder that [`LogManager::detach`] took out of service and renamed
/// for deletion; [`DetachedPartition::remove`] deletes it. Removing large files
/// frees their page cache and makes the file system commit its journal, which can
/// take long enough (hundreds of ms under write load) that a server does it off
/// its request threads.
#[derive(Debug)]
#[must_use = "the folder stays on disk until removed (or the next open)"]
pub struct DetachedPartition {
    parent: PathBuf,
    doomed: PathBuf,
}

impl DetachedPartition {
    /// The renamed folder.
    pub fn path(&self) -> &Path {
        &self.doomed
    }

    /// Makes the rename durable, deletes the folder, and makes that durable.
    pub fn remove(self) -> io::Result<()> {
        sync_dir(&self.parent)?;
        fs::remove_dir_all(&self.doomed)?;
        sync_dir(&self.parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafka_uuids() {
        let a = random_cluster_id();
        let b = random_cluster_id();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(is_generated_cluster_id(&a));
    }

    #[test]
    fn only_node_zero_with_a_generated_cluster_id_is_unclaimed() {
        assert!(MetaProperties::generate(0).is_unclaimed());
        // Another node id, or a cluster id a broker serves, is a claim.
        assert!(!MetaProperties::generate(2).is_unclaimed());
        assert!(!MetaProperties::new(0, "klog-0").is_unclaimed());
        assert!(!MetaProperties::new(0, "klog-0a1b2c3d").is_unclaimed());
        assert!(!MetaProperties::new(0, "AAAAAAAAAAAAAAAAAAAAA!").is_unclaimed());
    }

    #[test]
    fn meta_properties_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(META_PROPERTIES);
        let meta = MetaProperties::generate(7);
        fs::write(&path, meta.render()).expect("write");
        assert_eq!(MetaProperties::read(&path).expect("read"), Some(meta));
        fs::write(&path, "version=1\nnode.id=x\ncluster.id=c\n").expect("write");
        assert!(matches!(
            MetaProperties::read(&path),
            Err(OpenError::MalformedFile { line: 2, .. })
        ));
    }
}
