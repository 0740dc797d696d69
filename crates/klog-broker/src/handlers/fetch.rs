//! Fetch: whole batches as file regions, long polling woken by appends; a follower's fetch also reports its progress to the leader.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use klog_codec::protocol::fetch::{FetchPart, FetchPartitionHeader, FetchResponseWriter};
use klog_codec::protocol::messages::FetchRequest;
use klog_codec::protocol::messages::fetch_request::FetchTopic;
use klog_codec::protocol::{RequestHeader, ResponseError};
use klog_storage::{FileRegion, ReadError};
use tokio::sync::Notify;

use crate::replica::partition::Partition;

use klog_rt::clock::now_ms;

use super::{Handlers, RequestContext, code};
use crate::security::{Operation, Resource};

impl Handlers {
    /// Fetch: whole batches from each partition, never past the high watermark for
    /// consumers; waits up to `max_wait_ms` for `min_bytes`, woken by appends.
    ///
    /// A consumer needs READ on each topic (TOPIC_AUTHORIZATION_FAILED on its
    /// partitions otherwise); a follower's fetch needs CLUSTER_ACTION on the
    /// cluster (CLUSTER_AUTHORIZATION_FAILED). Asked once per request, not per
    /// wake-up.
    pub async fn fetch(
        &self,
        ctx: &RequestContext<'_>,
        req: &FetchRequest,
    ) -> Vec<FetchPart<FileRegion>> {
        let header = ctx.header;
        let denied = refusals(ctx, req);
        let deadline =
            Instant::now() + Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
        let min_bytes = u64::try_from(req.min_bytes).unwrap_or(0);
        let waiter = Arc::new(Notify::new());
        let mut shutdown = ctx.stop.clone();
        loop {
            // Register before reading so that an append between the read and the
            // wait still wakes us.
            let partitions: Vec<Arc<Partition>> = req
                .topics
                .iter()
                .enumerate()
                .filter(|(i, _)| refusal(&denied, *i).is_none())
                .flat_map(|(_, t)| {
                    t.partitions
                        .iter()
                        .filter_map(|p| self.leader_partition(t.topic.0.as_str(), p.partition).ok())
                })
                .collect();
            for p in &partitions {
                p.register_waiter(&waiter);
            }
            let (parts, total) = self.fetch_once(header, req, &denied);
            if total >= min_bytes || Instant::now() >= deadline || *shutdown.borrow() {
                return parts;
            }
            tokio::select! {
                _ = tokio::time::timeout_at(deadline, waiter.notified()) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One pass over the partitions; `denied` holds the authorization errors
    /// ([`refusals`]).
    fn fetch_once(
        &self,
        header: &RequestHeader,
        req: &FetchRequest,
        denied: &[Option<i16>],
    ) -> (Vec<FetchPart<FileRegion>>, u64) {
        let is_replica = req.replica_id.0 >= 0;
        let read_committed = req.isolation_level == 1;
        let mut budget = u64::try_from(req.max_bytes).unwrap_or(0);
        let mut total: u64 = 0;
        let mut w = FetchResponseWriter::new(header, 0, 0, req.topics.len() as i32);
        for (i, t) in req.topics.iter().enumerate() {
            let denied = refusal(denied, i);
            let name = t.topic.0.as_str();
            w.topic(name, t.partitions.len() as i32);
            for fp in &t.partitions {
                let mut ph = FetchPartitionHeader {
                    partition_index: fp.partition,
                    error_code: 0,
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                    read_committed,
                };
                let found = match denied {
                    Some(e) => Err(e),
                    None => self.leader_partition(name, fp.partition),
                };
                let partition = match found {
                    Ok(p) => p,
                    Err(e) => {
                        ph.error_code = e;
                        w.partition_error(&ph);
                        continue;
                    }
                };
                // KIP-320: a fetch naming another leader epoch is refused; a
                // follower's fetch also reports its progress to the leader (which
                // may move the high watermark before the answer carries it).
                let epoch = (fp.current_leader_epoch >= 0).then_some(fp.current_leader_epoch);
                let checked = if is_replica {
                    partition.follower_fetch(req.replica_id.0, fp.fetch_offset, epoch, now_ms())
                } else {
                    match epoch {
                        Some(e) if e < partition.leader_epoch() => {
                            Err(code(ResponseError::FencedLeaderEpoch))
                        }
                        Some(e) if e > partition.leader_epoch() => {
                            Err(code(ResponseError::UnknownLeaderEpoch))
                        }
                        _ => Ok(()),
                    }
                };
                if let Err(e) = checked {
                    ph.error_code = e;
                    w.partition_error(&ph);
                    continue;
                }
                let log = partition.log();
                let hw = log.high_watermark();
                ph.high_watermark = hw;
                ph.last_stable_offset = hw;
                ph.log_start_offset = log.log_start_offset();
                let max_offset = if is_replica { log.log_end_offset() } else { hw };
                let limit = u64::try_from(fp.partition_max_bytes)
                    .unwrap_or(0)
                    .min(budget);
                // KIP-74: the first batch of the response is sent whole even when it
                // is larger than the limits; later partitions get only what fits.
                if limit == 0 && total > 0 {
                    w.partition_error(&ph);
                    continue;
                }
                match log.read(fp.fetch_offset, limit as usize, max_offset) {
                    Ok(read) => {
                        drop(log);
                        total += read.total_bytes;
                        budget = budget.saturating_sub(read.total_bytes);
                        let regions = read.regions.into_iter().map(|r| {
                            let len = r.len;
                            (r, len)
                        });
                        w.partition(&ph, regions);
                    }
                    Err(ReadError::OffsetOutOfRange { .. }) => {
                        ph.error_code = code(ResponseError::OffsetOutOfRange);
                        w.partition_error(&ph);
                    }
                    Err(e) => {
                        tracing::error!(topic = name, partition = fp.partition, error = %e, "read failed");
                        ph.error_code = code(ResponseError::KafkaStorageError);
                        w.partition_error(&ph);
                    }
                }
            }
        }
        (w.finish(), total)
    }
}

/// The authorization error of each topic of a Fetch, by position; empty when
/// every topic is allowed (the usual case: nothing allocated on the fetch path).
/// A consumer needs READ on each topic, a follower CLUSTER_ACTION on the cluster.
fn refusals(ctx: &RequestContext<'_>, req: &FetchRequest) -> Vec<Option<i16>> {
    if req.replica_id.0 >= 0 {
        if ctx.allowed(Operation::ClusterAction, Resource::cluster()) {
            return Vec::new();
        }
        return vec![Some(code(ResponseError::ClusterAuthorizationFailed)); req.topics.len()];
    }
    let readable = |t: &FetchTopic| ctx.allowed(Operation::Read, Resource::topic(&t.topic));
    let Some(first) = req.topics.iter().position(|t| !readable(t)) else {
        return Vec::new();
    };
    let denied = Some(code(ResponseError::TopicAuthorizationFailed));
    let mut out = vec![None; first];
    out.push(denied);
    out.extend(
        req.topics
            .iter()
            .skip(first + 1)
            .map(|t| if readable(t) { None } else { denied }),
    );
    out
}

/// Topic `i`'s entry in [`refusals`]' answer.
fn refusal(denied: &[Option<i16>], i: usize) -> Option<i16> {
    denied.get(i).copied().flatten()
}
