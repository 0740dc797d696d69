//! The consumer-group APIs: authorization, then the group runtime
//! ([`crate::group::runtime::Groups`]) answers. Group-level checks are Kafka's
//! (`KafkaApis.handleJoinGroupRequest` and friends): READ on the group to take
//! part in it or commit for it, DESCRIBE to look it up or fetch its offsets,
//! DELETE to delete it or its offsets; topic-level checks filter the partitions of
//! OffsetCommit (READ), OffsetFetch (DESCRIBE) and OffsetDelete (READ).

use klog_codec::protocol::ResponseError;
use klog_codec::protocol::messages::delete_groups_response::DeletableGroupResult;
use klog_codec::protocol::messages::describe_groups_response::DescribedGroup;
use klog_codec::protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use klog_codec::protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use klog_codec::protocol::messages::offset_delete_request::OffsetDeleteRequestTopic;
use klog_codec::protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use klog_codec::protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use klog_codec::protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use klog_codec::protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};

use super::{Handlers, RequestContext, code};
use crate::security::{Operation, Resource};

const GROUP_DENIED: ResponseError = ResponseError::GroupAuthorizationFailed;
const TOPIC_DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;

impl Handlers {
    /// FindCoordinator: DESCRIBE on the group for a group key (transaction keys
    /// are refused by the runtime: klog has no transactions).
    pub async fn find_coordinator(
        &self,
        ctx: &RequestContext<'_>,
        req: &FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
        if req.key_type == 0 && !ctx.allowed(Operation::Describe, Resource::group(&req.key)) {
            return FindCoordinatorResponse::default()
                .with_error_code(code(GROUP_DENIED))
                .with_node_id((-1).into())
                .with_port(-1);
        }
        self.groups.find_coordinator(req, ctx.version()).await
    }

    /// JoinGroup: READ on the group.
    pub async fn join_group(
        &self,
        ctx: &RequestContext<'_>,
        req: JoinGroupRequest,
    ) -> JoinGroupResponse {
        if !ctx.allowed(Operation::Read, Resource::group(&req.group_id)) {
            return JoinGroupResponse::default()
                .with_error_code(code(GROUP_DENIED))
                .with_generation_id(-1);
        }
        self.groups
            .join_group(ctx.header, ctx.peer, req, ctx.stop)
            .await
    }

    /// SyncGroup: READ on the group.
    pub async fn sync_group(
        &self,
        ctx: &RequestContext<'_>,
        req: SyncGroupRequest,
    ) -> SyncGroupResponse {
        if !ctx.allowed(Operation::Read, Resource::group(&req.group_id)) {
            return SyncGroupResponse::default().with_error_code(code(GROUP_DENIED));
        }
        self.groups.sync_group(req, ctx.stop).await
    }

    /// Heartbeat: READ on the group.
    pub fn heartbeat(&self, ctx: &RequestContext<'_>, req: &HeartbeatRequest) -> HeartbeatResponse {
        if !ctx.allowed(Operation::Read, Resource::group(&req.group_id)) {
            return HeartbeatResponse::default().with_error_code(code(GROUP_DENIED));
        }
        self.groups.heartbeat(req)
    }

    /// LeaveGroup: READ on the group.
    pub fn leave_group(
        &self,
        ctx: &RequestContext<'_>,
        req: &LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        if !ctx.allowed(Operation::Read, Resource::group(&req.group_id)) {
            return LeaveGroupResponse::default().with_error_code(code(GROUP_DENIED));
        }
        self.groups.leave_group(req, ctx.version())
    }

    /// OffsetCommit: READ on the group (else every partition is refused), then
    /// READ on each topic (a topic refused gets TOPIC_AUTHORIZATION_FAILED and is
    /// not committed).
    pub async fn offset_commit(
        &self,
        ctx: &RequestContext<'_>,
        req: &OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        let refused = |topics: &[OffsetCommitRequestTopic], error: ResponseError| {
            topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code(error))
                                })
                                .collect(),
                        )
                })
                .collect::<Vec<_>>()
        };
        if !ctx.allowed(Operation::Read, Resource::group(&req.group_id)) {
            return OffsetCommitResponse::default().with_topics(refused(&req.topics, GROUP_DENIED));
        }
        let readable =
            |t: &OffsetCommitRequestTopic| ctx.allowed(Operation::Read, Resource::topic(&t.name));
        let Some((allowed, denied)) = split_refused(&req.topics, readable) else {
            return self.groups.offset_commit(req, ctx.version()).await;
        };
        let mut resp = if allowed.is_empty() {
            OffsetCommitResponse::default()
        } else {
            let mut req = req.clone();
            req.topics = allowed;
            self.groups.offset_commit(&req, ctx.version()).await
        };
        resp.topics.extend(refused(&denied, TOPIC_DENIED));
        resp
    }

    /// OffsetFetch: DESCRIBE on the group (refused: GROUP_AUTHORIZATION_FAILED,
    /// on every partition asked for below v2, which has no top-level error), then
    /// DESCRIBE on each topic (a topic asked for by name and refused gets
    /// TOPIC_AUTHORIZATION_FAILED; with all topics asked for, refused ones are
    /// left out).
    pub fn offset_fetch(
        &self,
        ctx: &RequestContext<'_>,
        req: &OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        let refused = |topics: &[OffsetFetchRequestTopic], error: ResponseError| {
            topics
                .iter()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|&p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_error_code(code(error))
                                })
                                .collect(),
                        )
                })
                .collect::<Vec<_>>()
        };
        if !ctx.allowed(Operation::Describe, Resource::group(&req.group_id)) {
            let resp = OffsetFetchResponse::default();
            return if ctx.version() >= 2 {
                resp.with_error_code(code(GROUP_DENIED))
            } else {
                resp.with_topics(refused(
                    req.topics.as_deref().unwrap_or_default(),
                    GROUP_DENIED,
                ))
            };
        }
        let describable = |name: &str| ctx.allowed(Operation::Describe, Resource::topic(name));
        let Some(topics) = &req.topics else {
            let mut resp = self.groups.offset_fetch(req, ctx.version());
            resp.topics.retain(|t| describable(&t.name));
            return resp;
        };
        let Some((allowed, denied)) = split_refused(topics, |t| describable(&t.name)) else {
            return self.groups.offset_fetch(req, ctx.version());
        };
        let mut resp = if allowed.is_empty() {
            OffsetFetchResponse::default()
        } else {
            let mut req = req.clone();
            req.topics = Some(allowed);
            self.groups.offset_fetch(&req, ctx.version())
        };
        resp.topics.extend(refused(&denied, TOPIC_DENIED));
        resp
    }

    /// ListGroups: every group with DESCRIBE on the cluster, else only the groups
    /// the principal may describe.
    pub fn list_groups(
        &self,
        ctx: &RequestContext<'_>,
        req: &ListGroupsRequest,
    ) -> ListGroupsResponse {
        let mut resp = self.groups.list_groups(req);
        if !ctx.allowed(Operation::Describe, Resource::cluster()) {
            resp.groups
                .retain(|g| ctx.allowed(Operation::Describe, Resource::group(&g.group_id)));
        }
        resp
    }

    /// DescribeGroups: DESCRIBE on each group; a refused group gets
    /// GROUP_AUTHORIZATION_FAILED in its place.
    pub fn describe_groups(
        &self,
        ctx: &RequestContext<'_>,
        req: &DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let describable = |g: &GroupId| ctx.allowed(Operation::Describe, Resource::group(g));
        let Some((allowed, denied)) = split_refused(&req.groups, describable) else {
            return self.groups.describe_groups(req, ctx.version());
        };
        let mut asked = req.clone();
        asked.groups = allowed;
        let mut described = self
            .groups
            .describe_groups(&asked, ctx.version())
            .groups
            .into_iter();
        // In the order asked: the runtime answers the allowed ones in theirs.
        let groups = req
            .groups
            .iter()
            .filter_map(|g| {
                if denied.contains(g) {
                    Some(
                        DescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(code(GROUP_DENIED)),
                    )
                } else {
                    described.next()
                }
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups: DELETE on each group; a refused group gets
    /// GROUP_AUTHORIZATION_FAILED and is not deleted.
    pub fn delete_groups(
        &self,
        ctx: &RequestContext<'_>,
        req: &DeleteGroupsRequest,
    ) -> DeleteGroupsResponse {
        let deletable = |g: &GroupId| ctx.allowed(Operation::Delete, Resource::group(g));
        let Some((allowed, denied)) = split_refused(&req.groups_names, deletable) else {
            return self.groups.delete_groups(req);
        };
        let mut resp = if allowed.is_empty() {
            DeleteGroupsResponse::default()
        } else {
            let mut req = req.clone();
            req.groups_names = allowed;
            self.groups.delete_groups(&req)
        };
        resp.results.extend(denied.into_iter().map(|g| {
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code(GROUP_DENIED))
        }));
        resp
    }

    /// OffsetDelete: DELETE on the group, then READ on each topic.
    pub fn offset_delete(
        &self,
        ctx: &RequestContext<'_>,
        req: &OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        if !ctx.allowed(Operation::Delete, Resource::group(&req.group_id)) {
            return OffsetDeleteResponse::default().with_error_code(code(GROUP_DENIED));
        }
        let readable =
            |t: &OffsetDeleteRequestTopic| ctx.allowed(Operation::Read, Resource::topic(&t.name));
        let Some((allowed, denied)) = split_refused(&req.topics, readable) else {
            return self.groups.offset_delete(req);
        };
        let mut resp = if allowed.is_empty() {
            OffsetDeleteResponse::default()
        } else {
            let mut req = req.clone();
            req.topics = allowed;
            self.groups.offset_delete(&req)
        };
        resp.topics.extend(denied.iter().map(|t| {
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code(TOPIC_DENIED))
                        })
                        .collect(),
                )
        }));
        resp
    }
}

/// `items` split into those `keep` allows and those it refuses, asking once per
/// item; `None` when it allows them all (the usual case, and every case without
/// ACLs), so the request is passed on as it came, nothing copied.
fn split_refused<T: Clone>(
    items: &[T],
    mut keep: impl FnMut(&T) -> bool,
) -> Option<(Vec<T>, Vec<T>)> {
    let first = items.iter().position(|t| !keep(t))?;
    let (head, rest) = items.split_at(first);
    let (refused, tail) = rest.split_first()?;
    let mut allowed = head.to_vec();
    let mut denied = vec![refused.clone()];
    for t in tail {
        if keep(t) {
            allowed.push(t.clone());
        } else {
            denied.push(t.clone());
        }
    }
    Some((allowed, denied))
}
