//! DescribeLogDirs: the partitions of each log dir and their sizes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use klog_codec::protocol::StrBytes;
use klog_codec::protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use klog_codec::protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use klog_codec::protocol::ResponseError;

use super::{Handlers, RequestContext, code};
use crate::security::{Operation, Resource};

impl Handlers {
    /// DescribeLogDirs: every configured log dir with the size in bytes of each
    /// partition it holds (all topics when `topics` is null). Offset lag is 0: there
    /// are no future replicas being moved between dirs. Needs DESCRIBE on the
    /// cluster: without it the answer is CLUSTER_AUTHORIZATION_FAILED (v3+) or
    /// empty, as Kafka's.
    pub fn describe_log_dirs(
        &self,
        ctx: &RequestContext<'_>,
        req: &DescribeLogDirsRequest,
    ) -> DescribeLogDirsResponse {
        if !ctx.allowed(Operation::Describe, Resource::cluster()) {
            let mut resp = DescribeLogDirsResponse::default();
            if ctx.version() >= 3 {
                resp.error_code = code(ResponseError::ClusterAuthorizationFailed);
            }
            return resp;
        }
        let wanted = |topic: &str, partition: i32| match &req.topics {
            None => true,
            Some(list) => list
                .iter()
                .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
        };
        // log dir -> topic -> partitions
        let mut by_dir: BTreeMap<PathBuf, BTreeMap<String, Vec<DescribeLogDirsPartition>>> = self
            .config
            .log_dirs
            .iter()
            .map(|d| (d.clone(), BTreeMap::new()))
            .collect();
        for t in self.topic_list() {
            for p in t.partitions.values() {
                if !wanted(&t.meta.name, p.index) {
                    continue;
                }
                let (dir, size) = {
                    let log = p.log();
                    (log.dir().parent().map(PathBuf::from), log.size_bytes())
                };
                let Some(topics) = dir.and_then(|d| by_dir.get_mut(&d)) else {
                    continue;
                };
                topics.entry(t.meta.name.clone()).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                        .with_offset_lag(0),
                );
            }
        }
        let results = by_dir
            .into_iter()
            .map(|(dir, topics)| {
                DescribeLogDirsResult::default()
                    .with_log_dir(StrBytes::from_string(dir.display().to_string()))
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(name, partitions)| {
                                DescribeLogDirsTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(name)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    )
            })
            .collect();
        DescribeLogDirsResponse::default().with_results(results)
    }
}
