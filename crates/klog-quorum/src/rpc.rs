//! Raft RPCs on the controller listener, in Kafka's framing, so that one listener
//! can serve raft and (later) Kafka's controller APIs.
//!
//! ```text
//! request:  i32 size | i16 api_key | i16 api_version (0) | i32 correlation_id
//!           | i16 client_id length (-1: null) + bytes | body
//! response: i32 size | i32 correlation_id | body
//! ```
//!
//! Raft RPCs use private API keys ([`APPEND_ENTRIES_API`], [`VOTE_API`],
//! [`INSTALL_SNAPSHOT_API`]); their bodies are the JSON of openraft's request types,
//! and the response body is the JSON of `Result<response, RaftError>`. Frame sizes
//! are checked before anything is allocated ([`klog_rt::frame::read_frame`], the
//! same reader as the broker's client listener); a frame that does not parse, a body
//! that is not the RPC's JSON or an unknown API key closes that connection only.
//!
//! [`serve`] is the accept loop; [`serve_connection`] serves one stream of any type
//! (a simulator's, say); both take a [`FrameHandler`], so the broker can answer its
//! controller APIs on the same listener through [`RaftRpc::with_fallback`].

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use klog_codec::protocol::{RequestHeader, parse_request_header};
use klog_rt::net::Listener;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;

use super::error::RpcError;
use super::types::Raft;

/// API key of raft's AppendEntries (private: outside Kafka's range).
pub const APPEND_ENTRIES_API: i16 = 32001;
/// API key of raft's RequestVote.
pub const VOTE_API: i16 = 32002;
/// API key of raft's InstallSnapshot (one chunk of a snapshot).
pub const INSTALL_SNAPSHOT_API: i16 = 32003;

/// Whether `api_key` is one of the raft RPCs served by [`RaftRpc`].
pub fn is_raft_api(api_key: i16) -> bool {
    matches!(
        api_key,
        APPEND_ENTRIES_API | VOTE_API | INSTALL_SNAPSHOT_API
    )
}

/// Encodes a request frame (version 0) with a nullable client id (sent as null if
/// longer than a Kafka string allows).
pub fn encode_request(
    api_key: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let client_id = client_id
        .map(str::as_bytes)
        .and_then(|c| Some((i16::try_from(c.len()).ok()?, c)));
    let size = 2 + 2 + 4 + 2 + client_id.map_or(0, |(_, c)| c.len()) + body.len();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&i32::try_from(size).unwrap_or(i32::MAX).to_be_bytes());
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    match client_id {
        Some((len, c)) => {
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(c);
        }
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
    out.extend_from_slice(body);
    out
}

/// Answers one request frame.
///
/// Implemented by [`RaftRpc`] (raft RPCs) and [`WithFallback`] (raft RPCs, then
/// another handler); the broker implements it for its controller APIs.
pub trait FrameHandler: Send + Sync + 'static {
    /// Handles one request. Returns what follows the correlation id in the response
    /// (a flexible-version Kafka response starts with its tagged-fields byte), or
    /// `None` to close the connection (unknown API, malformed body).
    fn handle(
        &self,
        header: &RequestHeader,
        body: &[u8],
    ) -> impl Future<Output = Option<Vec<u8>>> + Send;
}

/// Serves raft RPCs received from peers: a cheap clone of the raft handle.
#[derive(Clone)]
pub struct RaftRpc {
    raft: Raft,
}

impl RaftRpc {
    pub(crate) fn new(raft: Raft) -> Self {
        Self { raft }
    }

    /// Decodes a raft RPC body for `api_key`, hands it to openraft and returns the
    /// JSON response body. Fails (and the caller closes the connection) on an API
    /// key that is not raft's or a body that does not parse.
    pub async fn handle_raft_request(
        &self,
        api_key: i16,
        body: &[u8],
    ) -> Result<Vec<u8>, RpcError> {
        fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
            serde_json::from_slice(body).map_err(RpcError::MalformedBody)
        }
        fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, RpcError> {
            serde_json::to_vec(value).map_err(RpcError::Encode)
        }
        match api_key {
            APPEND_ENTRIES_API => encode(&self.raft.append_entries(parse(body)?).await),
            VOTE_API => encode(&self.raft.vote(parse(body)?).await),
            INSTALL_SNAPSHOT_API => encode(&self.raft.install_snapshot(parse(body)?).await),
            other => Err(RpcError::UnknownApi(other)),
        }
    }

    /// A handler that serves raft RPCs and hands every other API key to `fallback`.
    pub fn with_fallback<H: FrameHandler>(self, fallback: H) -> WithFallback<H> {
        WithFallback {
            raft: self,
            fallback,
        }
    }
}

impl FrameHandler for RaftRpc {
    async fn handle(&self, header: &RequestHeader, body: &[u8]) -> Option<Vec<u8>> {
        match self.handle_raft_request(header.api_key, body).await {
            Ok(response) => Some(response),
            Err(e) => {
                tracing::debug!(api_key = header.api_key, error = %e, "closing a controller connection");
                None
            }
        }
    }
}

/// Raft RPCs first, then another handler: see [`RaftRpc::with_fallback`].
pub struct WithFallback<H> {
    raft: RaftRpc,
    fallback: H,
}

impl<H: FrameHandler> FrameHandler for WithFallback<H> {
    async fn handle(&self, header: &RequestHeader, body: &[u8]) -> Option<Vec<u8>> {
        if is_raft_api(header.api_key) {
            self.raft.handle(header, body).await
        } else {
            self.fallback.handle(header, body).await
        }
    }
}

/// How long [`serve`] waits, after shutdown, for connections to finish the request
/// they are handling before it aborts them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts connections on `listener` and serves each with [`serve_connection`]
/// until `shutdown` completes; then stops accepting and ends the connections.
pub async fn serve<H: FrameHandler>(
    listener: impl Into<Listener>,
    handler: Arc<H>,
    max_frame_size: usize,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let listener = listener.into();
    let mut connections = JoinSet::new();
    klog_rt::frame::accept_until(&listener, &mut connections, shutdown, |stream, peer| {
        let handler = handler.clone();
        async move {
            if let Err(e) = serve_connection(stream, &*handler, max_frame_size).await {
                tracing::debug!(%peer, error = %e, "controller connection closed");
            }
        }
    })
    .await;
    drop(listener);
    connections.abort_all();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Serves one connection: reads request frames, hands each to `handler` in order
/// and writes its response. Returns `Ok` at a clean end of stream, an error (and
/// the caller drops the stream) on a bad frame, an unparsable header or a request
/// the handler refuses.
pub async fn serve_connection<S, H>(
    mut stream: S,
    handler: &H,
    max_frame_size: usize,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FrameHandler + ?Sized,
{
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    loop {
        let Some(frame) = klog_rt::frame::read_frame(&mut stream, &mut buf, max_frame_size).await?
        else {
            return Ok(());
        };
        let (header, body_at) = parse_request_header(&frame)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let body = frame.get(body_at..).unwrap_or_default();
        let Some(response) = handler.handle(&header, body).await else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("request with API key {} refused", header.api_key),
            ));
        };
        let size = i32::try_from(4 + response.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response too large"))?;
        out.clear();
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&header.correlation_id.to_be_bytes());
        out.extend_from_slice(&response);
        stream.write_all(&out).await?;
    }
}
