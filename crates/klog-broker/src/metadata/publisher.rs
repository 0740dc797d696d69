//! The one place that turns metadata changes into calls on the broker's services
//! (Kafka's `BrokerMetadataPublisher`, Redpanda's `controller_backend`).
//!
//! ```text
//!  MetadataStore ──(offset, change, the image it produced)──► MetadataPublisher
//!                                                                 │
//!                      ReplicaManager::apply (open, lead, follow, delete; on the
//!                      blocking pool) ──► ReplicaEvents           │
//!                                                                 ▼
//!           Groups: load / unload `__consumer_offsets` partitions, forget a
//!           deleted topic's offsets
//!                                                                 │
//!                      MetadataStore::served(offset) ◄────────────┘
//! ```
//!
//! Changes are applied one at a time, in log order, each with the image it
//! produced; only then is the offset marked served, which is what forwarded admin
//! requests wait for before they answer (as Kafka's do).
//!
//! Loading a `__consumer_offsets` partition is only started here: the group
//! runtime reads it in the background ([`Groups::load_partition`]), its groups
//! answering COORDINATOR_LOAD_IN_PROGRESS meanwhile, so neither this loop nor the
//! group requests of other partitions wait for the replay. Starts and unloads are
//! still made here in log order, which is what lets a load overtaken by a later
//! leadership change know it is stale.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::group::runtime::Groups;
use crate::metadata::store::{ImageChange, MetadataStore, MetadataUpdate};
use crate::replica::manager::{ReplicaEvent, ReplicaManager};

/// Applies metadata changes to the replica manager and the group runtime.
#[derive(Debug)]
pub struct MetadataPublisher {
    replicas: Arc<ReplicaManager>,
    groups: Arc<Groups>,
    store: Arc<MetadataStore>,
}

impl MetadataPublisher {
    /// A publisher over the services it feeds.
    pub fn new(
        replicas: Arc<ReplicaManager>,
        groups: Arc<Groups>,
        store: Arc<MetadataStore>,
    ) -> Self {
        Self {
            replicas,
            groups,
            store,
        }
    }

    /// Applies the changes from `changes`, in log order, until `stop`. Whatever
    /// was replayed into the image before the publisher started is applied first,
    /// as one reset.
    pub async fn run(
        self,
        mut changes: mpsc::UnboundedReceiver<MetadataUpdate>,
        mut stop: watch::Receiver<bool>,
    ) {
        let image = self.store.image();
        let events = self.replicas.apply(&image, &ImageChange::Reset);
        self.publish(events);
        self.store.served(image.offset);
        loop {
            let update = tokio::select! {
                c = changes.recv() => match c {
                    Some(c) => c,
                    None => return,
                },
                _ = stop.changed() => return,
            };
            let MetadataUpdate {
                offset,
                change,
                image,
            } = update;
            let replicas = self.replicas.clone();
            // Opening and deleting logs blocks: off the runtime's threads.
            let events = klog_client::task::blocking(move || replicas.apply(&image, &change))
                .await
                .unwrap_or_default();
            self.publish(events);
            self.store.served(offset);
        }
    }

    /// Hands the group runtime what the replica manager did: deleted topics lose
    /// their group offsets; `__consumer_offsets` partitions led here start loading
    /// in the background, and are unloaded when no longer led.
    fn publish(&self, events: Vec<ReplicaEvent>) {
        for e in events {
            match e {
                ReplicaEvent::TopicDeleted(name) => self.groups.topic_deleted(&name),
                ReplicaEvent::BecameLeader(topic, index)
                    if topic == klog_coordinator::OFFSETS_TOPIC =>
                {
                    self.groups.load_partition(index);
                }
                ReplicaEvent::StoppedLeading(topic, index)
                    if topic == klog_coordinator::OFFSETS_TOPIC =>
                {
                    self.groups.unload_partition(index);
                }
                ReplicaEvent::BecameLeader(..) | ReplicaEvent::StoppedLeading(..) => {}
            }
        }
    }
}
