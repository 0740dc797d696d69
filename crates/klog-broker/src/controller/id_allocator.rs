//! Producer ids for idempotent producers (Kafka's `ProducerIdManager`): blocks
//! handed out by the active controller (`AllocateProducerIds`, recorded in the
//! metadata log, so no two brokers ever give out the same id), used up one id at a
//! time.

use std::sync::Arc;

use klog_codec::protocol::ResponseError;

use crate::controller::client::ControllerClient;
use crate::controller::lifecycle::Lifecycle;

/// The producer-id block this broker uses.
#[derive(Debug)]
pub struct ProducerIdAllocator {
    node_id: i32,
    lifecycle: Arc<Lifecycle>,
    client: Arc<ControllerClient>,
    /// Ids left from the last block the controller handed out: (next, end).
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    /// An allocator for broker `node_id` (its broker epoch from `lifecycle`) that
    /// asks the controller through `client`; it holds no block until the first id.
    pub fn new(node_id: i32, lifecycle: Arc<Lifecycle>, client: Arc<ControllerClient>) -> Self {
        Self {
            node_id,
            lifecycle,
            client,
            block: tokio::sync::Mutex::new((0, 0)),
        }
    }

    /// The next producer id, from the block the controller last handed this
    /// broker (`AllocateProducerIds`: blocks recorded in the metadata log, so no
    /// two brokers ever give out the same id). COORDINATOR_LOAD_IN_PROGRESS, a
    /// retriable error, while no controller answers.
    pub async fn next(&self) -> Result<i64, i16> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let ids = self
                .client
                .allocate_producer_ids(self.node_id, self.lifecycle.epoch())
                .await;
            match ids {
                Ok(Ok((start, len))) => *block = (start, start + len),
                Ok(Err(_)) | Err(_) => {
                    return Err(ResponseError::CoordinatorLoadInProgress.code());
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
