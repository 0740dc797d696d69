//! Offsets of a partition: ListOffsets, OffsetForLeaderEpoch (KIP-101/279/320) and DeleteRecords.

use klog_codec::protocol::ResponseError;
use klog_codec::protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use klog_codec::protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use klog_codec::protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use klog_storage::ReadError;

use klog_codec::protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{Handlers, RequestContext, code};
use crate::security::{Operation, Resource};

impl Handlers {
    /// OffsetForLeaderEpoch (KIP-101, KIP-279): for each partition led here, the
    /// largest epoch at or below the one asked and where it ends in this log (the
    /// start of the next epoch, or the log end for the current one); a
    /// `current_leader_epoch` other than this leader's is refused (KIP-320).
    ///
    /// A follower (`replica_id` >= 0) needs CLUSTER_ACTION on the cluster, a client
    /// DESCRIBE on each topic.
    pub fn offset_for_leader_epoch(
        &self,
        ctx: &RequestContext<'_>,
        req: &OffsetForLeaderEpochRequest,
    ) -> OffsetForLeaderEpochResponse {
        let replica_denied =
            req.replica_id.0 >= 0 && !ctx.allowed(Operation::ClusterAction, Resource::cluster());
        use klog_codec::protocol::messages::offset_for_leader_epoch_response::{
            EpochEndOffset, OffsetForLeaderTopicResult,
        };
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.topic.0.as_str();
                let denied = if replica_denied {
                    Some(code(ResponseError::ClusterAuthorizationFailed))
                } else if req.replica_id.0 < 0
                    && !ctx.allowed(Operation::Describe, Resource::topic(name))
                {
                    Some(code(ResponseError::TopicAuthorizationFailed))
                } else {
                    None
                };
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut r = EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                        if let Some(e) = denied {
                            return r.with_error_code(e);
                        }
                        let partition = match self.leader_partition(name, p.partition) {
                            Ok(x) => x,
                            Err(e) => return r.with_error_code(e),
                        };
                        let current = partition.leader_epoch();
                        if p.current_leader_epoch >= 0 && p.current_leader_epoch != current {
                            r.error_code = code(if p.current_leader_epoch < current {
                                ResponseError::FencedLeaderEpoch
                            } else {
                                ResponseError::UnknownLeaderEpoch
                            });
                            return r;
                        }
                        if let Some((epoch, end)) =
                            partition.log().end_offset_for_epoch(p.leader_epoch)
                        {
                            r.leader_epoch = epoch;
                            r.end_offset = end;
                        }
                        r
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic.clone())
                    .with_partitions(partitions)
            })
            .collect();
        OffsetForLeaderEpochResponse::default().with_topics(topics)
    }

    /// ListOffsets: earliest (-2), latest (-1), the record with the largest
    /// timestamp (-3, KIP-734, v7+) or the first offset with a timestamp at or after
    /// the one given. Each topic needs DESCRIBE (TOPIC_AUTHORIZATION_FAILED).
    pub fn list_offsets(
        &self,
        ctx: &RequestContext<'_>,
        req: &ListOffsetsRequest,
    ) -> ListOffsetsResponse {
        let version = ctx.version();
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.as_str();
                let describable = ctx.allowed(Operation::Describe, Resource::topic(name));
                let partitions = t
                    .partitions
                    .iter()
                    .map(|lp| {
                        let mut r = ListOffsetsPartitionResponse::default()
                            .with_partition_index(lp.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1);
                        let found = if describable {
                            self.leader_partition(name, lp.partition_index)
                        } else {
                            Err(code(ResponseError::TopicAuthorizationFailed))
                        };
                        match found {
                            Err(e) => r.error_code = e,
                            Ok(p) => {
                                if version >= 4 {
                                    r.leader_epoch = p.leader_epoch();
                                }
                                let log = p.log();
                                let by_time = match lp.timestamp {
                                    -2 => {
                                        r.offset = log.log_start_offset();
                                        None
                                    }
                                    -1 => {
                                        r.offset = log.high_watermark();
                                        None
                                    }
                                    // KIP-734, from ListOffsets v7.
                                    -3 if version < 7 => {
                                        r.error_code = code(ResponseError::UnsupportedVersion);
                                        None
                                    }
                                    -3 => Some(offset_of_max_timestamp(&log)),
                                    ts if ts >= 0 => Some(offset_for_timestamp(&log, ts)),
                                    _ => {
                                        r.error_code = code(ResponseError::InvalidRequest);
                                        None
                                    }
                                };
                                match by_time {
                                    Some(Ok(Some((offset, found)))) => {
                                        r.offset = offset;
                                        r.timestamp = found;
                                    }
                                    Some(Err(e)) => {
                                        tracing::error!(topic = name, error = %e, "time index lookup failed");
                                        r.error_code = code(ResponseError::KafkaStorageError);
                                    }
                                    Some(Ok(None)) | None => {}
                                }
                            }
                        }
                        r
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }

    /// DeleteRecords: moves each partition's log start offset up to the offset given
    /// (-1: the high watermark), deleting the segments wholly below it. An offset
    /// above the high watermark is OFFSET_OUT_OF_RANGE. The new log start offsets are
    /// checkpointed before the answer, so they survive a crash (on the blocking
    /// pool: the checkpoint files are fsynced). Each topic needs DELETE
    /// (TOPIC_AUTHORIZATION_FAILED).
    pub async fn delete_records(
        &self,
        ctx: &RequestContext<'_>,
        req: &DeleteRecordsRequest,
    ) -> DeleteRecordsResponse {
        let mut changed = false;
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.as_str();
                let deletable = ctx.allowed(Operation::Delete, Resource::topic(name));
                let partitions = t
                    .partitions
                    .iter()
                    .map(|dp| {
                        let mut r = DeleteRecordsPartitionResult::default()
                            .with_partition_index(dp.partition_index)
                            .with_low_watermark(-1);
                        let found = if deletable {
                            self.leader_partition(name, dp.partition_index)
                        } else {
                            Err(code(ResponseError::TopicAuthorizationFailed))
                        };
                        match found {
                            Err(e) => r.error_code = e,
                            Ok(p) => {
                                let mut log = p.log();
                                let offset = match dp.offset {
                                    -1 => log.high_watermark(),
                                    o => o,
                                };
                                let before = log.log_start_offset();
                                let result = if offset < 0 {
                                    Err(klog_storage::StorageError::OffsetOutOfRange {
                                        offset,
                                        low: before,
                                        high: log.high_watermark(),
                                    })
                                } else {
                                    log.delete_records_before(offset)
                                };
                                match result {
                                    Ok(()) => {
                                        r.low_watermark = log.log_start_offset();
                                        changed |= r.low_watermark != before;
                                    }
                                    Err(klog_storage::StorageError::OffsetOutOfRange { .. }) => {
                                        r.error_code = code(ResponseError::OffsetOutOfRange)
                                    }
                                    Err(e) => {
                                        tracing::error!(topic = name, partition = dp.partition_index, error = %e, "delete records failed");
                                        r.error_code = code(ResponseError::KafkaStorageError);
                                    }
                                }
                            }
                        }
                        r
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        if changed {
            let replicas = self.replicas.clone();
            match klog_client::task::blocking(move || replicas.logs().checkpoint()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "writing checkpoints after DeleteRecords failed")
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing checkpoints after DeleteRecords failed")
                }
            }
        }
        DeleteRecordsResponse::default().with_topics(topics)
    }
}

/// ListOffsets by time: the earliest committed offset whose record timestamp is at
/// or after `ts`, with that timestamp. The time index finds the first batch whose
/// max timestamp qualifies; that one batch is then read and decoded to find the
/// exact record (off the produce and fetch paths: ListOffsets is rare). `None` when
/// no committed record is that recent.
fn offset_for_timestamp(log: &klog_storage::Log, ts: i64) -> Result<Option<(i64, i64)>, ReadError> {
    let Some((base, max_ts)) = log.offset_for_timestamp(ts)? else {
        return Ok(None);
    };
    committed_record(log, base, max_ts, |records| {
        records.into_iter().find(|&(_, t)| t >= ts)
    })
}

/// ListOffsets -3 (KIP-734): the committed record with the largest timestamp, the
/// earliest one on ties, as (offset, timestamp). Storage finds the batch from the
/// maximum each segment keeps; that batch is decoded for the exact record. `None`
/// when no committed record has a timestamp.
fn offset_of_max_timestamp(log: &klog_storage::Log) -> Result<Option<(i64, i64)>, ReadError> {
    let Some((base, max_ts)) = log.max_timestamp_batch(log.high_watermark())? else {
        return Ok(None);
    };
    committed_record(log, base, max_ts, |records| {
        records
            .into_iter()
            .fold(None, |best: Option<(i64, i64)>, (offset, t)| match best {
                Some((_, bt)) if bt >= t => best,
                _ => Some((offset, t)),
            })
    })
}

/// Reads and decodes the batch at `base` and lets `pick` choose among its committed
/// records (log start offset to below the high watermark), given as (offset,
/// timestamp) in offset order. `None` when the batch is not below the high
/// watermark or `pick` finds nothing. A batch that cannot be decoded (it passed its
/// CRC check at append, so only a codec klog cannot read) answers with the batch's
/// own offset and max timestamp.
fn committed_record(
    log: &klog_storage::Log,
    base: i64,
    max_ts: i64,
    pick: impl FnOnce(Vec<(i64, i64)>) -> Option<(i64, i64)>,
) -> Result<Option<(i64, i64)>, ReadError> {
    let hw = log.high_watermark();
    let start = log.log_start_offset();
    if base >= hw {
        return Ok(None);
    }
    let bytes = log.read_to_vec(base, 1, hw)?;
    let records = klog_codec::RecordBatch::parse(&bytes)
        .ok()
        .and_then(|(batch, _)| batch.records().ok())
        .map(|records| {
            records
                .iter()
                .filter_map(Result::ok)
                .filter(|r| r.offset >= start && r.offset < hw)
                .map(|r| (r.offset, r.timestamp))
                .collect::<Vec<_>>()
        });
    Ok(match records {
        Some(records) => pick(records),
        None => Some((base.max(start), max_ts)),
    })
}
