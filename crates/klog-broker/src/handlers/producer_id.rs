//! InitProducerId: producer ids for idempotent producers, from blocks the controller hands out.

use klog_codec::protocol::ResponseError;
use klog_codec::protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{Handlers, RequestContext, code};
use crate::security::{Operation, Resource};

impl Handlers {
    /// InitProducerId: a fresh producer id at epoch 0 for idempotent producers.
    /// Transactions are not supported. Needs IDEMPOTENT_WRITE on the cluster
    /// (CLUSTER_AUTHORIZATION_FAILED).
    pub async fn init_producer_id(
        &self,
        ctx: &RequestContext<'_>,
        req: &InitProducerIdRequest,
    ) -> InitProducerIdResponse {
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
        if !ctx.allowed(Operation::IdempotentWrite, Resource::cluster()) {
            return r.with_error_code(code(ResponseError::ClusterAuthorizationFailed));
        }
        match self.producer_ids.next().await {
            Ok(id) => r.with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Err(error_code) => r.with_error_code(error_code),
        }
    }
}
