//! InitProducerId: producer ids for idempotent producers, from blocks the controller hands out.

use klog_codec::protocol::ResponseError;
use klog_codec::protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::controller::runtime::{ControllerReply, ControllerRequest};

use super::{Handlers, code};

impl Handlers {
    /// InitProducerId: a fresh producer id at epoch 0 for idempotent producers.
    /// Transactions are not supported.
    pub async fn init_producer_id(&self, req: &InitProducerIdRequest) -> InitProducerIdResponse {
        let r = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
            None => {}
            // Kafka answers an empty transactional id with INVALID_REQUEST.
            Some("") => return r.with_error_code(code(ResponseError::InvalidRequest)),
            // Transactions are not supported: refuse as a broker whose ACLs forbid
            // them would, a fatal error clients report rather than retry.
            Some(_) => {
                return r.with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed));
            }
        }
        match self.next_producer_id().await {
            Ok(id) => r.with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Err(error_code) => r.with_error_code(error_code),
        }
    }

    /// The next producer id, from the block the controller last handed this
    /// broker (`AllocateProducerIds`: blocks recorded in the metadata log, so no
    /// two brokers ever give out the same id). COORDINATOR_LOAD_IN_PROGRESS, a
    /// retriable error, while no controller answers.
    async fn next_producer_id(&self) -> Result<i64, i16> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let request = ControllerRequest::AllocateProducerIds {
                broker: self.config.node_id,
                epoch: self.lifecycle.epoch(),
            };
            match self.client.submit(request).await.map(|a| a.reply) {
                Ok(Ok(ControllerReply::ProducerIds(start, len))) => *block = (start, start + len),
                Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                    return Err(code(ResponseError::CoordinatorLoadInProgress));
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
