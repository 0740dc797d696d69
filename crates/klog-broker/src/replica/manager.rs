//! The replica manager (Kafka's `ReplicaManager`): the partitions this broker
//! hosts, kept in step with the metadata image.
//!
//! For every partition the image lists this broker as a replica of, it opens (or
//! creates) the log and hands the partition its registration, which makes it lead
//! or follow ([`Partition::apply_registration`]). Deleted topics lose their
//! partitions and folders; topic config changes reach the logs and the replication
//! state. It reacts to [`ImageChange`]s in log order and never decides anything
//! itself: the controller decided, the image says.
//!
//! Folders are only deleted for a `RemoveTopic` (or a partition moved off this
//! broker) seen in the log: a whole-image reset never deletes data it does not
//! find in the image, it only stops serving it (as a start-up does for a folder no
//! topic claims).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use klog_coordinator::metadata::{ConfigResource, MetadataImage};
use klog_storage::{DetachedPartition, LogManager, TopicPartition};

use crate::config::BrokerConfig;
use crate::config::topic::TopicConfig;
use crate::metadata::store::ImageChange;
use crate::replica::fetcher::ReplicaFetchers;
use crate::replica::partition::{IsrOutbox, Partition};
use crate::topics::TopicMeta;
use klog_rt::clock::now_ms;

/// A topic as this broker hosts it: its configuration and the partitions of it
/// that have a replica here.
#[derive(Debug)]
pub struct Topic {
    /// Name, partition count (in the whole cluster) and overrides.
    pub meta: TopicMeta,
    /// The partitions with a replica on this broker, by index.
    pub partitions: BTreeMap<i32, Arc<Partition>>,
    /// The effective configuration (broker defaults and the topic's overrides).
    pub config: TopicConfig,
}

impl Topic {
    /// The hosted partition `index`, if any.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.partitions.get(&index)
    }
}

/// What the broker must do after the replica manager applied a change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaEvent {
    /// A topic was deleted (its groups' offsets go too).
    TopicDeleted(String),
    /// This broker became the leader of a partition.
    BecameLeader(String, i32),
    /// This broker stopped leading a partition (or no longer hosts it).
    StoppedLeading(String, i32),
}

/// The hosted partitions. See the module docs.
#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    config: BrokerConfig,
    logs: LogManager,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Copy followed partitions from their leaders.
    fetchers: Option<Arc<ReplicaFetchers>>,
    /// Where leaders send ISR changes for the controller.
    isr_outbox: Option<IsrOutbox>,
}

fn overrides(image: &MetadataImage, topic: &str) -> BTreeMap<String, String> {
    image
        .configs
        .get(&ConfigResource::Topic(topic.to_owned()))
        .cloned()
        .unwrap_or_default()
}

impl ReplicaManager {
    /// Takes over the opened `logs`; hosts nothing until [`ReplicaManager::apply`].
    /// Followed partitions are copied by `fetchers`; leaders' ISR changes go to
    /// `isr_outbox`.
    pub fn new(
        config: BrokerConfig,
        logs: LogManager,
        fetchers: Option<Arc<ReplicaFetchers>>,
        isr_outbox: Option<IsrOutbox>,
    ) -> Self {
        Self {
            node_id: config.node_id,
            config,
            logs,
            topics: RwLock::new(BTreeMap::new()),
            fetchers,
            isr_outbox,
        }
    }

    /// Ticks every partition led here: ISR shrink for lagging followers, expiry
    /// of delayed produces (Kafka's ISR expiration task).
    pub fn tick(&self, now: i64) {
        for t in self.topic_list() {
            for p in t.partitions.values() {
                p.tick(now);
            }
        }
    }

    /// Runs retention, time-based flushes and checkpoints once (the node's
    /// maintenance task calls this on its intervals, on the blocking pool).
    pub fn maintenance(&self, now: i64, retention: bool, checkpoint: bool) {
        self.logs.flush_due(now);
        if retention {
            self.logs.run_retention(now);
        }
        if checkpoint && let Err(e) = self.logs.checkpoint() {
            tracing::error!(error = %e, "writing checkpoints failed");
        }
    }

    /// The partition logs.
    pub fn logs(&self) -> &LogManager {
        &self.logs
    }

    /// A hosted topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every hosted topic.
    pub fn topic_list(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// A hosted partition.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic)?.partition(index).cloned()
    }

    /// Brings the hosted partitions in line with `image` after `change`. Returns
    /// what the broker must do besides (groups, leadership).
    pub fn apply(&self, image: &MetadataImage, change: &ImageChange) -> Vec<ReplicaEvent> {
        let mut events = Vec::new();
        match change {
            ImageChange::Reset => {
                let hosted: Vec<String> = self
                    .topic_list()
                    .iter()
                    .map(|t| t.meta.name.clone())
                    .collect();
                for name in hosted {
                    if image.topic(&name).is_none() {
                        tracing::warn!(
                            topic = name,
                            "hosted topic not in the metadata image; no longer served, folders kept"
                        );
                        self.unload_topic(&name, false, &mut events);
                    }
                }
                let all: Vec<(String, i32)> = image
                    .partitions()
                    .map(|(t, i, _)| (t.name.clone(), i))
                    .collect();
                for (topic, index) in all {
                    self.reconcile(image, &topic, index, &mut events);
                }
                for t in image.topics.keys() {
                    self.reconfigure(image, t);
                }
            }
            ImageChange::Delta(delta) => {
                for (name, _) in &delta.removed_topics {
                    self.unload_topic(name, true, &mut events);
                    events.push(ReplicaEvent::TopicDeleted(name.clone()));
                }
                for (topic, index) in &delta.partitions {
                    self.reconcile(image, topic, *index, &mut events);
                }
                for resource in &delta.configs {
                    if let ConfigResource::Topic(t) = resource {
                        self.reconfigure(image, t);
                    }
                }
                if !delta.brokers.is_empty() {
                    self.update_eligibility(image);
                }
            }
        }
        events
    }

    /// Opens, updates or drops one partition as its registration says.
    fn reconcile(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        events: &mut Vec<ReplicaEvent>,
    ) {
        let Some(reg) = image.partition(topic, index) else {
            return;
        };
        let hosted = self.partition(topic, index);
        if !reg.replicas.contains(&self.node_id) {
            if hosted.is_some() {
                self.drop_partition(topic, index, events);
            }
            return;
        }
        let partition = match hosted {
            Some(p) => p,
            None => match self.open_partition(image, topic, index) {
                Some(p) => p,
                None => return,
            },
        };
        let was_leader = partition.is_leader() && partition_registered(&partition);
        let old_epoch = partition.leader_epoch();
        partition.apply_registration(self.node_id, reg, now_ms());
        let leads = reg.leader == self.node_id;
        if let Some(f) = &self.fetchers {
            if leads || reg.leader < 0 {
                f.unfollow(topic, index);
            } else {
                f.follow(reg.leader, partition.clone());
            }
        }
        if leads {
            let now = now_ms();
            for r in reg.replicas.iter().filter(|&&r| r != self.node_id) {
                partition.set_replica_eligible(*r, image.is_active(*r), now);
            }
        }
        if leads && (!was_leader || old_epoch != reg.leader_epoch) {
            events.push(ReplicaEvent::BecameLeader(topic.to_owned(), index));
        } else if !leads && was_leader {
            events.push(ReplicaEvent::StoppedLeading(topic.to_owned(), index));
        }
        let count = image.topic(topic).map_or(0, |t| t.partitions.len() as i32);
        self.with_topic(image, topic, |t| t.meta.partitions = count);
    }

    /// Creates (or reopens) the log of a partition this broker now hosts.
    fn open_partition(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
    ) -> Option<Arc<Partition>> {
        let config = TopicConfig::lenient(&self.config, &overrides(image, topic));
        let tp = TopicPartition::new(topic.to_owned(), index);
        let log = match self.logs.get(&tp) {
            Some(log) => log,
            None => match self
                .logs
                .create(tp.clone(), config.storage_log_config(), now_ms())
            {
                Ok(log) => log,
                Err(e) => {
                    tracing::error!(partition = %tp, error = %e, "could not create the partition's log");
                    return None;
                }
            },
        };
        // A lone replica has everything it holds committed; a replicated one keeps
        // the checkpointed high watermark until its replication state moves it.
        let alone = image
            .partition(topic, index)
            .is_some_and(|r| r.replicas == [self.node_id]);
        let p = Arc::new(Partition::open(
            topic.to_owned(),
            index,
            log,
            self.node_id,
            config.leader_config(&self.config),
            alone,
            self.isr_outbox.clone(),
        ));
        self.with_topic(image, topic, |t| {
            t.partitions.insert(index, p.clone());
        });
        Some(p)
    }

    /// Replaces the topic's entry with a changed copy (created if missing).
    fn with_topic(&self, image: &MetadataImage, topic: &str, change: impl FnOnce(&mut Topic)) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let mut t = match topics.get(topic) {
            Some(t) => Topic {
                meta: t.meta.clone(),
                partitions: t.partitions.clone(),
                config: t.config.clone(),
            },
            None => {
                let overrides = overrides(image, topic);
                Topic {
                    meta: TopicMeta {
                        name: topic.to_owned(),
                        partitions: image.topic(topic).map_or(0, |t| t.partitions.len() as i32),
                        overrides: overrides.clone(),
                    },
                    partitions: BTreeMap::new(),
                    config: TopicConfig::lenient(&self.config, &overrides),
                }
            }
        };
        change(&mut t);
        topics.insert(topic.to_owned(), Arc::new(t));
    }

    /// A topic's configuration changed in the image: logs and leaders take it.
    fn reconfigure(&self, image: &MetadataImage, topic: &str) {
        let Some(current) = self.topic(topic) else {
            return;
        };
        let overrides = overrides(image, topic);
        if overrides == current.meta.overrides {
            return;
        }
        let config = TopicConfig::lenient(&self.config, &overrides);
        let log_config = config.storage_log_config();
        let leader_config = config.leader_config(&self.config);
        let now = now_ms();
        for p in current.partitions.values() {
            p.log().set_config(log_config.clone());
            p.set_leader_config(leader_config, now);
        }
        self.with_topic(image, topic, |t| {
            t.meta.overrides = overrides;
            t.config = config;
        });
        tracing::info!(topic, "topic configs changed");
    }

    /// This broker is no longer a replica of the partition: stop and delete it.
    fn drop_partition(&self, topic: &str, index: i32, events: &mut Vec<ReplicaEvent>) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let Some(t) = topics.get(topic) else {
            return;
        };
        let mut partitions = t.partitions.clone();
        let removed = partitions.remove(&index);
        let rest = Topic {
            meta: t.meta.clone(),
            partitions,
            config: t.config.clone(),
        };
        if rest.partitions.is_empty() {
            topics.remove(topic);
        } else {
            topics.insert(topic.to_owned(), Arc::new(rest));
        }
        drop(topics);
        if let Some(p) = removed {
            remove_in_background(self.stop(&p, true, events).into_iter().collect());
        }
    }

    /// Stops serving every partition of `topic`; deletes their folders when
    /// `delete`.
    fn unload_topic(&self, topic: &str, delete: bool, events: &mut Vec<ReplicaEvent>) {
        let removed = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(topic);
        if let Some(t) = removed {
            let detached = t
                .partitions
                .values()
                .filter_map(|p| self.stop(p, delete, events))
                .collect();
            remove_in_background(detached);
            if delete {
                tracing::info!(topic, "deleted topic");
            }
        }
    }

    /// Stops serving `p`; with `delete`, takes its folder out of service and
    /// returns it for [`remove_in_background`].
    fn stop(
        &self,
        p: &Partition,
        delete: bool,
        events: &mut Vec<ReplicaEvent>,
    ) -> Option<DetachedPartition> {
        if p.is_leader() {
            events.push(ReplicaEvent::StoppedLeading(p.topic.clone(), p.index));
        }
        if let Some(f) = &self.fetchers {
            f.unfollow(&p.topic, p.index);
        }
        p.resign();
        if !delete {
            return None;
        }
        let tp = TopicPartition::new(p.topic.clone(), p.index);
        self.logs
            .detach(&tp)
            .inspect_err(|e| {
                tracing::error!(partition = %tp, error = %e, "could not delete partition folder");
            })
            .ok()
    }

    /// Brokers were fenced, unfenced or began shutting down: leaders learn which
    /// followers may join their ISR (and stop waiting for ineligible ones).
    fn update_eligibility(&self, image: &MetadataImage) {
        let now = now_ms();
        for t in self.topic_list() {
            for (index, p) in &t.partitions {
                if !p.is_leader() {
                    continue;
                }
                if let Some(reg) = image.partition(&t.meta.name, *index) {
                    for r in reg.replicas.iter().filter(|&&r| r != self.node_id) {
                        p.set_replica_eligible(*r, image.is_active(*r), now);
                    }
                }
            }
        }
    }

    /// Log folders on disk that no hosted partition uses.
    pub fn unclaimed_logs(&self) -> Vec<TopicPartition> {
        let hosted: BTreeSet<TopicPartition> = self
            .topic_list()
            .iter()
            .flat_map(|t| {
                t.partitions
                    .values()
                    .map(|p| TopicPartition::new(p.topic.clone(), p.index))
            })
            .collect();
        self.logs
            .partitions()
            .into_iter()
            .filter(|tp| !hosted.contains(tp))
            .collect()
    }
}

/// Whether the partition has taken a registration from the image already (a new
/// partition starts as the leader of its only replica until it does).
fn partition_registered(p: &Partition) -> bool {
    p.registration().is_some()
}

/// Removes detached partition folders off the thread applying metadata:
/// unlinking large logs (freeing their page cache, the journal commit) must not
/// stall it. On a tokio runtime that is [`klog_client::task::blocking`] (tokio's
/// blocking pool; under a simulator's gate, the node's own simulated disk, so
/// the removal stops with the node as it would with its process), otherwise a
/// thread of its own. A folder left behind (the work could not start, or the
/// process stopped first) is removed at the next start.
fn remove_in_background(detached: Vec<DetachedPartition>) {
    if detached.is_empty() {
        return;
    }
    let remove = move || {
        for d in detached {
            let path = d.path().display().to_string();
            if let Err(e) = d.remove() {
                tracing::error!(%path, error = %e, "could not delete partition folder");
            }
        }
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        klog_client::task::spawn(async move {
            if klog_client::task::blocking(remove).await.is_err() {
                tracing::error!("deleting partition folders panicked");
            }
        });
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("klog-delete".to_owned())
        .spawn(remove);
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start a thread to delete partition folders");
    }
}
