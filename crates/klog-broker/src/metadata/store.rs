//! The broker's copy of the cluster metadata (Kafka's `MetadataCache`): the image
//! the quorum's committed log entries build, shared read-only with every handler.
//!
//! The quorum applies each committed entry through [`MetadataStore::apply`]; the
//! image is replaced whole (copy on write), so a handler holding an
//! `Arc<MetadataImage>` sees one consistent state for as long as it needs it.
//! Every change is also handed, in log order, to whoever subscribed with
//! [`MetadataStore::changes`] (the replica manager), which reports back when it has
//! acted on it ([`MetadataStore::served`]). That offset is published on a watch so
//! that a request can wait until its own write is not only in the image here but
//! served (a created topic's partitions open) ([`MetadataStore::wait_for`]),
//! without polling.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use klog_coordinator::metadata::{ImageDelta, MetadataImage, decode_batch};
use tokio::sync::{mpsc, watch};

use klog_quorum::{MetadataStateMachine, Quorum};

/// A change of the image, for the replica manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageChange {
    /// One log entry applied: what it changed.
    Delta(ImageDelta),
    /// The image was replaced by a snapshot: anything may have changed.
    Reset,
}

/// One change on the feed, with the image it produced (Kafka's
/// `onMetadataUpdate(delta, newImage)`): a subscriber acts on the image the change
/// made, never on a later one it happens to read.
#[derive(Debug, Clone)]
pub struct MetadataUpdate {
    /// The log offset of the entry (or snapshot).
    pub offset: u64,
    /// What changed.
    pub change: ImageChange,
    /// The image right after the change.
    pub image: Arc<MetadataImage>,
}

/// The metadata image and its change feed.
#[derive(Debug)]
pub struct MetadataStore {
    image: RwLock<Arc<MetadataImage>>,
    applied: watch::Sender<u64>,
    served: watch::Sender<u64>,
    changes: Mutex<Option<mpsc::UnboundedSender<MetadataUpdate>>>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

impl Default for MetadataStore {
    fn default() -> Self {
        Self {
            image: RwLock::new(Arc::new(MetadataImage::new())),
            applied: watch::Sender::new(0),
            served: watch::Sender::new(0),
            changes: Mutex::new(None),
        }
    }
}

impl MetadataStore {
    /// An empty image.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        read(&self.image).clone()
    }

    /// The log offset of the last entry applied.
    pub fn offset(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Watches the applied offset.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The change subscriber has acted on every change up to `offset`. Without a
    /// subscriber, applied means served.
    pub fn served(&self, offset: u64) {
        self.served.send_if_modified(|o| {
            let moved = offset > *o;
            *o = (*o).max(offset);
            moved
        });
    }

    /// Waits until the entry at `offset` is applied and served here, at most
    /// `timeout`. Returns whether it was.
    pub async fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        let mut rx = self.served.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|o| *o >= offset))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Subscribes to the changes, in log order, from now on (one subscriber: a
    /// second call replaces the first).
    pub fn changes(&self) -> mpsc::UnboundedReceiver<MetadataUpdate> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.changes.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    fn publish(&self, change: ImageChange, offset: u64, image: Arc<MetadataImage>) {
        self.applied.send_replace(offset);
        let update = MetadataUpdate {
            offset,
            change,
            image,
        };
        let sent = self
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send(update).is_ok());
        if !sent {
            self.served(offset);
        }
    }

    /// Applies the committed entry at `index`. An entry that cannot be decoded or
    /// applied (a controller bug) is logged and skipped: the offset still moves,
    /// so that waiters are not stuck, and every node skips the same entry.
    pub fn apply(&self, index: u64, payload: &[u8]) {
        let records = match decode_batch(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(index, error = %e, "metadata log entry skipped");
                let image = self.image();
                self.publish(ImageChange::Delta(ImageDelta::default()), index, image);
                return;
            }
        };
        let (delta, image) = {
            let mut guard = self.image.write().unwrap_or_else(|e| e.into_inner());
            let mut next = MetadataImage::clone(&guard);
            match next.apply_batch(index, &records) {
                Ok(delta) => {
                    *guard = Arc::new(next);
                    (delta, guard.clone())
                }
                Err(e) => {
                    tracing::error!(index, error = %e, "metadata log entry could not be applied; skipped");
                    let mut next = MetadataImage::clone(&guard);
                    next.offset = index;
                    *guard = Arc::new(next);
                    (ImageDelta::default(), guard.clone())
                }
            }
        };
        self.publish(ImageChange::Delta(delta), index, image);
    }

    /// The image as snapshot bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        read(&self.image).to_snapshot()
    }

    /// Replaces the image with a snapshot taken at `index`.
    pub fn restore(&self, index: u64, bytes: &[u8]) -> Result<(), String> {
        let mut image = MetadataImage::from_snapshot(bytes).map_err(|e| e.to_string())?;
        image.offset = index;
        let image = Arc::new(image);
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = image.clone();
        self.publish(ImageChange::Reset, index, image);
        Ok(())
    }
}

/// The quorum's state machine: the broker's [`MetadataStore`].
#[derive(Debug, Clone)]
pub struct MetadataStateMachineHandle(pub Arc<MetadataStore>);

impl MetadataStateMachine for MetadataStateMachineHandle {
    fn apply(&mut self, index: u64, payload: &[u8]) {
        self.0.apply(index, payload);
    }

    fn snapshot(&self) -> Vec<u8> {
        self.0.snapshot()
    }

    fn restore(&mut self, index: u64, snapshot: &[u8]) -> Result<(), String> {
        self.0.restore(index, snapshot)
    }
}

/// The quorum type the broker runs: openraft over the metadata log, applying into
/// the [`MetadataStore`].
pub type MetadataQuorum = Quorum<MetadataStateMachineHandle>;

#[cfg(test)]
mod tests {
    use super::*;
    use klog_coordinator::metadata::{MetadataRecord, TopicId, encode_batch};

    #[tokio::test]
    async fn entries_change_the_image_in_order_and_wake_waiters() {
        let store = MetadataStore::new();
        let mut changes = store.changes();
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_for(3, Duration::from_secs(5)).await })
        };
        let waiter_done = || waiter.is_finished();
        assert!(!waiter_done());
        let topic = MetadataRecord::Topic {
            name: "t".to_owned(),
            id: TopicId(7),
        };
        store.apply(3, &encode_batch(&[topic]));
        assert_eq!(store.offset(), 3);
        assert!(store.image().topic("t").is_some());
        let update = changes.recv().await.expect("update");
        assert_eq!(
            (update.offset, update.change),
            (3, ImageChange::Delta(ImageDelta::default()))
        );
        // The update carries the image it produced, not whatever is current later.
        assert_eq!(update.image.offset, 3);
        assert!(update.image.topic("t").is_some());
        // Served only once the subscriber says so.
        assert!(!waiter_done());
        store.served(3);
        assert!(waiter.await.expect("task"));
        // An entry that does not decode is skipped, and the offset still moves.
        store.apply(4, b"garbage");
        assert_eq!(store.offset(), 4);
        assert!(store.image().topic("t").is_some());
        // One that does not apply (an unknown topic id) changes nothing.
        let bad = MetadataRecord::RemoveTopic { id: TopicId(9) };
        store.apply(5, &encode_batch(&[bad]));
        assert_eq!(store.image().offset, 5);
        assert!(store.image().topic("t").is_some());
        // A snapshot replaces the image.
        let snap = store.snapshot();
        let other = MetadataStore::new();
        let mut other_changes = other.changes();
        other.restore(5, &snap).expect("restore");
        assert!(other.image().topic("t").is_some());
        let update = other_changes.recv().await.expect("update");
        assert_eq!((update.offset, update.change), (5, ImageChange::Reset));
        assert!(update.image.topic("t").is_some());
        assert!(other.restore(6, b"{").is_err());
        assert!(!store.wait_for(99, Duration::from_millis(10)).await);
    }
}
