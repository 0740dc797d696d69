//! The controller listener's Kafka APIs: what brokers send the active controller.
//!
//! Served beside the quorum's raft RPCs on the controller listener (the quorum's
//! `serve` loop reads the frames and hands every non-raft request here):
//! ApiVersions (18), BrokerRegistration (62), BrokerHeartbeat (63),
//! AlterPartition (56), AllocateProducerIds (67), and Envelope (58) carrying an
//! admin request a broker forwards whole (KIP-590). A node that is not the active
//! controller answers NOT_CONTROLLER, and the sender retries at the leader.

use std::sync::Arc;

use bytes::Bytes;
use klog_codec::protocol::messages::alter_partition_response::{PartitionData, TopicData};
use klog_codec::protocol::messages::api_versions_response::ApiVersion;
use klog_codec::protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, AlterPartitionRequest,
    AlterPartitionResponse, ApiKey, ApiVersionsResponse, BrokerHeartbeatRequest,
    BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest, BrokerRegistrationResponse,
    EnvelopeRequest, EnvelopeResponse, ProducerId,
};
use klog_codec::protocol::{
    Encodable, RequestHeader, ResponseError, decode_message, encode_response, parse_request_header,
};
use klog_coordinator::metadata::{AlterPartition, Endpoint, Heartbeat, RegisterBroker};

use crate::controller::client::{OFFSET_TAG, topic_id};
use crate::controller::runtime::{Answer, ControllerHandle, SubmitError};
use crate::metadata::store::MetadataStore;

/// The versions served on the controller listener.
const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::BrokerRegistration, 0, 3),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (ApiKey::AlterPartition, 2, 2),
    (ApiKey::AllocateProducerIds, 0, 0),
    (ApiKey::Envelope, 0, 0),
];

/// Runs a forwarded admin request (its full frame: header and body) on the active
/// controller's node and returns the response frame.
pub trait AdminHandler: Send + Sync + 'static {
    /// Handles one forwarded request; `None` if it is not an admin request.
    fn handle_forwarded(
        &self,
        header: RequestHeader,
        body: Bytes,
    ) -> impl std::future::Future<Output = Option<Bytes>> + Send;
}

/// Serves the controller APIs with this node's controller runtime.
pub struct ControllerApi<A> {
    controller: ControllerHandle,
    store: Arc<MetadataStore>,
    admin: Arc<A>,
}

/// The reply, or the error code to answer with: the refusal's, or NOT_CONTROLLER
/// when the request did not reach an active controller.
fn reply_of<T>(answer: Result<Answer<T>, SubmitError>) -> Result<T, i16> {
    match answer {
        Ok(a) => a.reply.map_err(|r| r.code),
        Err(_) => Err(ResponseError::NotController.code()),
    }
}

/// The response body after its correlation id, as the quorum's frame loop sends it.
fn body_of<R: Encodable>(header: &RequestHeader, response: &R) -> Option<Vec<u8>> {
    let frame = encode_response(header, response).ok()?;
    frame.get(8..).map(<[u8]>::to_vec)
}

impl<A: AdminHandler> klog_quorum::FrameHandler for ControllerApi<A> {
    fn handle(
        &self,
        header: &RequestHeader,
        body: &[u8],
    ) -> impl std::future::Future<Output = Option<Vec<u8>>> + Send {
        self.answer(header, body)
    }
}

impl<A: AdminHandler> ControllerApi<A> {
    /// The controller APIs of `controller`, forwarded admin requests run by
    /// `admin` (the broker's admin handlers).
    pub fn new(controller: ControllerHandle, store: Arc<MetadataStore>, admin: Arc<A>) -> Self {
        Self {
            controller,
            store,
            admin,
        }
    }

    /// This node's controller runtime if it is the active controller, else
    /// NOT_CONTROLLER (the sender retries at the leader).
    fn active(&self) -> Result<&ControllerHandle, i16> {
        if self.controller.is_active() {
            Ok(&self.controller)
        } else {
            Err(ResponseError::NotController.code())
        }
    }

    /// Answers one request; `None` closes the connection (unknown API, a body that
    /// does not parse).
    pub async fn answer(&self, header: &RequestHeader, body: &[u8]) -> Option<Vec<u8>> {
        let body = Bytes::copy_from_slice(body);
        let key = ApiKey::try_from(header.api_key).ok()?;
        let served = SERVED
            .iter()
            .find(|(k, _, _)| *k == key)
            .is_some_and(|(_, min, max)| (*min..=*max).contains(&header.api_version));
        if !served && key != ApiKey::ApiVersions {
            return None;
        }
        match key {
            ApiKey::ApiVersions => {
                let keys = SERVED
                    .iter()
                    .map(|(k, min, max)| {
                        ApiVersion::default()
                            .with_api_key(*k as i16)
                            .with_min_version(*min)
                            .with_max_version(*max)
                    })
                    .collect();
                let mut resp = ApiVersionsResponse::default().with_api_keys(keys);
                let mut h = header.clone();
                if !served {
                    resp.error_code = ResponseError::UnsupportedVersion.code();
                    h.api_version = 0;
                }
                body_of(&h, &resp)
            }
            ApiKey::BrokerRegistration => {
                let req: BrokerRegistrationRequest = decode_message(header, body).ok()?;
                let request = RegisterBroker {
                    id: req.broker_id.0,
                    incarnation: format!("{:032x}", req.incarnation_id.as_u128()),
                    endpoints: req
                        .listeners
                        .iter()
                        .map(|l| Endpoint {
                            name: l.name.to_string(),
                            host: l.host.to_string(),
                            port: l.port,
                        })
                        .collect(),
                    rack: req.rack.as_ref().map(|r| r.to_string()),
                    previous_epoch: if header.api_version >= 3 {
                        req.previous_broker_epoch
                    } else {
                        -1
                    },
                };
                let mut resp = BrokerRegistrationResponse::default();
                let reply = match self.active() {
                    Ok(c) => reply_of(c.register(request).await),
                    Err(code) => Err(code),
                };
                match reply {
                    Ok(epoch) => resp.broker_epoch = epoch,
                    Err(c) => resp.error_code = c,
                }
                body_of(header, &resp)
            }
            ApiKey::BrokerHeartbeat => {
                let req: BrokerHeartbeatRequest = decode_message(header, body).ok()?;
                let request = Heartbeat {
                    id: req.broker_id.0,
                    epoch: req.broker_epoch,
                    metadata_offset: u64::try_from(req.current_metadata_offset).unwrap_or(0),
                    want_fence: req.want_fence,
                    want_shut_down: req.want_shut_down,
                };
                let mut resp = BrokerHeartbeatResponse::default().with_is_fenced(true);
                let reply = match self.active() {
                    Ok(c) => reply_of(c.heartbeat(request).await),
                    Err(code) => Err(code),
                };
                match reply {
                    Ok(r) => {
                        resp.is_caught_up = r.is_caught_up;
                        resp.is_fenced = r.is_fenced;
                        resp.should_shut_down = r.should_shut_down;
                    }
                    Err(c) => resp.error_code = c,
                }
                body_of(header, &resp)
            }
            ApiKey::AlterPartition => {
                let req: AlterPartitionRequest = decode_message(header, body).ok()?;
                let image = self.store.image();
                let mut partitions = Vec::new();
                let mut unknown = Vec::new();
                for t in &req.topics {
                    match image.topic_by_id(topic_id(t.topic_id)) {
                        Some(topic) => {
                            for p in &t.partitions {
                                partitions.push(AlterPartition {
                                    topic: topic.name.clone(),
                                    partition: p.partition_index,
                                    leader_epoch: p.leader_epoch,
                                    partition_epoch: p.partition_epoch,
                                    isr: p.new_isr.iter().map(|b| b.0).collect(),
                                });
                            }
                        }
                        None => unknown.push(t),
                    }
                }
                let mut resp = AlterPartitionResponse::default();
                let reply = match self.active() {
                    Ok(c) => reply_of(
                        c.alter_partition(req.broker_id.0, req.broker_epoch, partitions.clone())
                            .await,
                    ),
                    Err(code) => Err(code),
                };
                match reply {
                    Ok(results) => {
                        let mut by_topic: Vec<TopicData> = Vec::new();
                        for (p, r) in partitions.iter().zip(results) {
                            let Some(id) = image
                                .topic(&p.topic)
                                .map(|t| crate::controller::client::uuid_of(t.id))
                            else {
                                continue;
                            };
                            let data = match r {
                                Ok(reg) => PartitionData::default()
                                    .with_partition_index(p.partition)
                                    .with_leader_id(BrokerId(reg.leader))
                                    .with_leader_epoch(reg.leader_epoch)
                                    .with_isr(reg.isr.iter().copied().map(BrokerId).collect())
                                    .with_partition_epoch(reg.partition_epoch),
                                Err(code) => PartitionData::default()
                                    .with_partition_index(p.partition)
                                    .with_error_code(code),
                            };
                            match by_topic.iter_mut().find(|t| t.topic_id == id) {
                                Some(t) => t.partitions.push(data),
                                None => by_topic.push(
                                    TopicData::default()
                                        .with_topic_id(id)
                                        .with_partitions(vec![data]),
                                ),
                            }
                        }
                        for t in unknown {
                            by_topic.push(
                                TopicData::default()
                                    .with_topic_id(t.topic_id)
                                    .with_partitions(
                                        t.partitions
                                            .iter()
                                            .map(|p| {
                                                PartitionData::default()
                                                    .with_partition_index(p.partition_index)
                                                    .with_error_code(
                                                        ResponseError::UnknownTopicId.code(),
                                                    )
                                            })
                                            .collect(),
                                    ),
                            );
                        }
                        resp.topics = by_topic;
                    }
                    Err(c) => resp.error_code = c,
                }
                body_of(header, &resp)
            }
            ApiKey::AllocateProducerIds => {
                let req: AllocateProducerIdsRequest = decode_message(header, body).ok()?;
                let mut resp = AllocateProducerIdsResponse::default();
                let reply = match self.active() {
                    Ok(c) => reply_of(
                        c.allocate_producer_ids(req.broker_id.0, req.broker_epoch)
                            .await,
                    ),
                    Err(code) => Err(code),
                };
                match reply {
                    Ok((start, len)) => {
                        resp.producer_id_start = ProducerId(start);
                        resp.producer_id_len = i32::try_from(len).unwrap_or(i32::MAX);
                    }
                    Err(c) => resp.error_code = c,
                }
                body_of(header, &resp)
            }
            ApiKey::Envelope => {
                let req: EnvelopeRequest = decode_message(header, body).ok()?;
                let mut resp = EnvelopeResponse::default();
                if !self.controller.is_active() {
                    resp.error_code = ResponseError::NotController.code();
                    return body_of(header, &resp);
                }
                let Ok((inner, at)) = parse_request_header(&req.request_data) else {
                    resp.error_code = ResponseError::InvalidRequest.code();
                    return body_of(header, &resp);
                };
                let inner_body = req.request_data.slice(at..);
                match self.admin.handle_forwarded(inner, inner_body).await {
                    Some(frame) => {
                        // The inner response without its size prefix: correlation id
                        // onwards, as the forwarding broker passes it on.
                        resp.response_data = frame.get(4..).map(Bytes::copy_from_slice);
                        let offset = self.store.offset();
                        resp.unknown_tagged_fields
                            .insert(OFFSET_TAG, Bytes::copy_from_slice(&offset.to_be_bytes()));
                    }
                    None => resp.error_code = ResponseError::InvalidRequest.code(),
                }
                body_of(header, &resp)
            }
            _ => None,
        }
    }
}
