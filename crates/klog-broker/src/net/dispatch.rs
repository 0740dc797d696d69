//! From a decoded request to the handler that answers it: one match over the
//! codec's request enum, with the context the connection built. Which APIs exist
//! and where they go is [`crate::handlers::APIS`]; forwarded admin requests never
//! reach this point (the connection sends them whole to the active controller).

use std::io;

use bytes::BytesMut;
use klog_codec::protocol::messages::ApiKey;
use klog_codec::protocol::{
    Encodable, Request, RequestError, RequestHeader, decode_request_mut, encode_response,
};

use bytes::Bytes;
use klog_codec::protocol::fetch::FetchPart;
use klog_storage::FileRegion;

use crate::handlers::{Handlers, PendingProduce, RequestContext};

/// What a request produces for the connection.
#[derive(Debug)]
pub enum Reply {
    /// Nothing to send (Produce with acks=0).
    None,
    /// A whole encoded response frame.
    Frame(Bytes),
    /// A Fetch response: bytes and file regions, in order.
    Fetch(Vec<FetchPart<FileRegion>>),
}

/// A reply on its way to the connection's writer, in request order.
pub(crate) enum Queued {
    Ready(Reply),
    /// A Produce request already appended, waiting for fsyncs or the high
    /// watermark before its response.
    Produce(RequestHeader, PendingProduce),
}

/// Turns one request into a reply. An error closes the connection.
pub(crate) async fn dispatch(
    handlers: &Handlers,
    ctx: &RequestContext<'_>,
    body: BytesMut,
) -> io::Result<Queued> {
    let header = ctx.header;
    let request = match decode_request_mut(header, body) {
        Ok(r) => r,
        Err(RequestError::UnsupportedVersion { api_key, version })
            if api_key == ApiKey::ApiVersions as i16 =>
        {
            // KAFKA-COMPAT.md trap 1: answer in the v0 body layout so any client can
            // read it, with error 35 and the versions we do have.
            tracing::debug!(version, "ApiVersions at an unsupported version");
            let v0 = RequestHeader {
                api_version: 0,
                ..header.clone()
            };
            let resp = handlers.api_versions(
                klog_codec::protocol::ResponseError::UnsupportedVersion.code(),
                0,
            );
            return frame(&v0, &resp).map(Queued::Ready);
        }
        Err(e) => {
            tracing::warn!(
                api_key = header.api_key,
                api_version = header.api_version,
                client_id = ctx.client_id(),
                error = %e,
                "closing connection"
            );
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    };
    let h = handlers;
    let reply = match request {
        Request::ApiVersions(_) => frame(header, &h.api_versions(0, ctx.version())),
        Request::Metadata(r) => frame(header, &h.metadata(ctx, &r).await),
        Request::Produce(r) => {
            // A topic not hosted here may not exist: auto-create it first, as a
            // single node always did (the usual path, every topic hosted, costs one
            // lookup per topic).
            let missing = h.produce_topics_to_create(ctx, &r);
            if !missing.is_empty() {
                h.auto_create(&missing).await;
            }
            let pending = h.start_produce(ctx, r);
            return Ok(Queued::Produce(header.clone(), pending));
        }
        Request::Fetch(r) => Ok(Reply::Fetch(h.fetch(ctx, &r).await)),
        Request::ListOffsets(r) => frame(header, &h.list_offsets(ctx, &r)),
        Request::InitProducerId(r) => frame(header, &h.init_producer_id(ctx, &r).await),
        Request::DescribeConfigs(r) => frame(header, &h.describe_configs(ctx, &r)),
        Request::DeleteRecords(r) => frame(header, &h.delete_records(ctx, &r).await),
        Request::DescribeCluster(r) => frame(header, &h.describe_cluster(ctx, &r)),
        Request::DescribeLogDirs(r) => frame(header, &h.describe_log_dirs(ctx, &r)),
        Request::OffsetForLeaderEpoch(r) => frame(header, &h.offset_for_leader_epoch(ctx, &r)),

        // Consumer groups (handlers/groups.rs over the group runtime).
        Request::FindCoordinator(r) => frame(header, &h.find_coordinator(ctx, &r).await),
        Request::JoinGroup(r) => frame(header, &h.join_group(ctx, r).await),
        Request::SyncGroup(r) => frame(header, &h.sync_group(ctx, r).await),
        Request::Heartbeat(r) => frame(header, &h.heartbeat(ctx, &r)),
        Request::LeaveGroup(r) => frame(header, &h.leave_group(ctx, &r)),
        Request::OffsetCommit(r) => frame(header, &h.offset_commit(ctx, &r).await),
        Request::OffsetFetch(r) => frame(header, &h.offset_fetch(ctx, &r)),
        Request::ListGroups(r) => frame(header, &h.list_groups(ctx, &r)),
        Request::DescribeGroups(r) => frame(header, &h.describe_groups(ctx, &r)),
        Request::DeleteGroups(r) => frame(header, &h.delete_groups(ctx, &r)),
        Request::OffsetDelete(r) => frame(header, &h.offset_delete(ctx, &r)),
        other => {
            tracing::warn!(?other, "request decoded but not handled");
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unhandled request",
            ))
        }
    };
    reply.map(Queued::Ready)
}

/// One encoded response frame.
pub(crate) fn frame<R: Encodable>(header: &RequestHeader, resp: &R) -> io::Result<Reply> {
    encode_response(header, resp)
        .map(Reply::Frame)
        .map_err(|e| io::Error::other(e.to_string()))
}
