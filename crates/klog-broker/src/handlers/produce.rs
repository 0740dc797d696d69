//! Produce: validates and appends whole batches without decoding records; `acks=all` waits on the high watermark.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::BytesMut;
use klog_codec::protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use klog_codec::protocol::messages::{ProduceResponse, TopicName};
use klog_codec::protocol::produce::ProduceData;
use klog_codec::protocol::{ResponseError, StrBytes};

use crate::replica::partition::Partition;
use crate::replica::rules::Refusal;
use crate::topics::{self};
use klog_replication::ProduceOutcome;

use klog_rt::clock::now_ms;

use super::{Handlers, RequestContext, code};
use crate::security::{Operation, Resource};

impl Handlers {
    /// Produce: validates and appends one batch per partition; `acks=-1` waits for
    /// the high watermark. Returns `None` for `acks=0` (no response is sent).
    pub async fn produce(
        &self,
        ctx: &RequestContext<'_>,
        req: ProduceData,
    ) -> Option<ProduceResponse> {
        self.start_produce(ctx, req).finish().await
    }

    /// The first half of [`Handlers::produce`]: validates and appends every
    /// partition's batches now, and returns what is left before the response can go:
    /// the fsyncs the flush policy wants (group commit) and, for `acks=-1`, the high
    /// watermark. A connection can read and append its next request while this one
    /// waits, so a producer's pipelined requests share fsyncs.
    ///
    /// Each topic needs WRITE (TOPIC_AUTHORIZATION_FAILED on its partitions
    /// otherwise, nothing appended), asked once per topic of the request.
    pub fn start_produce(&self, ctx: &RequestContext<'_>, req: ProduceData) -> PendingProduce {
        let version = ctx.version();
        let acks = req.acks;
        let now = now_ms();
        let mut pending = PendingProduce {
            acks,
            deadline: Instant::now()
                + Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0)),
            responses: Vec::with_capacity(req.topics.len()),
            waits: Vec::new(),
            syncs: Vec::new(),
        };
        for topic_data in req.topics {
            let name = topic_data.name;
            let writable = ctx.allowed(Operation::Write, Resource::topic(&name));
            let mut parts = Vec::with_capacity(topic_data.partitions.len());
            for pd in topic_data.partitions {
                let mut resp = PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                let result = if writable {
                    self.produce_partition(&name, pd.index, pd.records, acks, now)
                } else {
                    Err(code(ResponseError::TopicAuthorizationFailed).into())
                };
                let at = (pending.responses.len(), parts.len());
                match result {
                    Ok((partition, appended)) => {
                        resp.base_offset = appended.base_offset;
                        resp.log_append_time_ms = appended.log_append_time.unwrap_or(-1);
                        if version >= 5 {
                            resp.log_start_offset = appended.log_start_offset;
                        }
                        if let Some(offset) = appended.sync_to {
                            pending.syncs.push((at, partition.clone(), offset));
                        }
                        if acks == -1 {
                            pending.waits.push((at, partition, appended.next_offset));
                        }
                    }
                    Err(refusal) => {
                        resp.error_code = refusal.code;
                        // KIP-467 fields, Produce v8+.
                        if version >= 8 {
                            resp.error_message = refusal.message().map(StrBytes::from_string);
                            resp.record_errors = refusal
                                .record_errors
                                .into_iter()
                                .map(|(index, message)| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(index)
                                        .with_batch_index_error_message(Some(
                                            StrBytes::from_string(message),
                                        ))
                                })
                                .collect();
                        }
                    }
                }
                parts.push(resp);
            }
            pending.responses.push(
                TopicProduceResponse::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partition_responses(parts),
            );
        }
        pending
    }

    fn produce_partition(
        &self,
        topic: &str,
        index: i32,
        records: Option<BytesMut>,
        acks: i16,
        now: i64,
    ) -> Result<(Arc<Partition>, crate::replica::partition::Appended), Refusal> {
        if !matches!(acks, -1..=1) {
            return Err(code(ResponseError::InvalidRequiredAcks).into());
        }
        if !topics::is_valid_topic_name(topic) {
            return Err(code(ResponseError::InvalidTopicException).into());
        }
        // Hosted here: the partition refuses appends unless it leads.
        let hosted = self
            .topic(topic)
            .and_then(|t| t.partition(index).cloned().map(|p| (t, p)));
        let Some((t, partition)) = hosted else {
            return Err(self
                .leader_partition(topic, index)
                .err()
                .unwrap_or(code(ResponseError::NotLeaderOrFollower))
                .into());
        };
        if acks == -1 {
            partition.check_acks_all()?;
        }
        let mut records = records.ok_or(code(ResponseError::CorruptMessage))?;
        if t.config.cleanup.compact {
            let name = format!("{topic}-{index}");
            crate::replica::rules::require_keys(&records, &name)?;
        }
        // The records are this partition's own part of the request frame: batch
        // headers are rewritten in place (base offset, leader epoch), no copy.
        let appended = partition.append(&mut records, now)?;
        Ok((partition, appended))
    }

    /// The topics of a Produce request that do not exist in the cluster (with
    /// `auto.create.topics.enable`, for [`Handlers::auto_create`]) and that the
    /// principal may create (CREATE on the cluster or the topic).
    pub fn produce_topics_to_create(
        &self,
        ctx: &RequestContext<'_>,
        req: &ProduceData,
    ) -> Vec<String> {
        if !self.config.auto_create_topics {
            return Vec::new();
        }
        let mut missing = Vec::new();
        for t in &req.topics {
            if self.replicas.topic(&t.name).is_none()
                && topics::is_valid_topic_name(&t.name)
                && self.store.image().topic(&t.name).is_none()
                && (ctx.allowed(Operation::Create, Resource::cluster())
                    || ctx.allowed(Operation::Create, Resource::topic(&t.name)))
            {
                missing.push(t.name.clone());
            }
        }
        missing
    }
}

/// A Produce request whose batches are appended and whose response waits for
/// fsyncs and the high watermark; see [`Handlers::start_produce`].
#[derive(Debug)]
pub struct PendingProduce {
    acks: i16,
    /// When `acks=-1` stops waiting for the high watermark.
    deadline: Instant,
    responses: Vec<TopicProduceResponse>,
    /// `((topic, partition) index in responses, partition, offset)` to wait for.
    waits: Vec<((usize, usize), Arc<Partition>, i64)>,
    /// Same, for batches the flush policy wants on disk first.
    syncs: Vec<((usize, usize), Arc<Partition>, i64)>,
}

impl PendingProduce {
    /// Waits for what the request needs and returns its response (`None` for
    /// `acks=0`).
    pub async fn finish(mut self) -> Option<ProduceResponse> {
        for ((t, p), partition, offset) in std::mem::take(&mut self.syncs) {
            if let Err(error_code) = partition.sync_to(offset).await
                && let Some(resp) = self.partition_response(t, p)
            {
                resp.error_code = error_code;
            }
        }
        if self.acks == 0 {
            return None;
        }
        for ((t, p), partition, offset) in std::mem::take(&mut self.waits) {
            let outcome = partition.await_committed(offset, self.deadline).await;
            if outcome != ProduceOutcome::Committed
                && let Some(resp) = self.partition_response(t, p)
            {
                resp.error_code = outcome.code();
            }
        }
        Some(ProduceResponse::default().with_responses(self.responses))
    }

    fn partition_response(&mut self, t: usize, p: usize) -> Option<&mut PartitionProduceResponse> {
        self.responses
            .get_mut(t)
            .and_then(|t| t.partition_responses.get_mut(p))
    }
}
