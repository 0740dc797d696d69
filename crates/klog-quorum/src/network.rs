//! The client side of raft RPCs: openraft's [`RaftNetworkFactory`] and
//! [`RaftNetwork`], speaking the framing of [`rpc`](super::rpc) to peers' controller
//! listeners.
//!
//! A [`PeerClient`] connects lazily on its first RPC, keeps the connection for the
//! next ones, and drops it after any error or timeout (openraft cancels an RPC that
//! outlives its TTL; a connection abandoned mid-request is never reused), so the
//! next RPC reconnects. Connections are made by a [`Connector`]: [`TcpConnector`]
//! by default, a simulator's own streams (turmoil's, say) in a simulation.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use openraft::RPCTypes;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::rpc::{APPEND_ENTRIES_API, INSTALL_SNAPSHOT_API, VOTE_API, encode_request};
use super::types::{Node, TypeConfig};

/// A byte stream to a peer.
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> PeerStream for T {}

/// A boxed [`PeerStream`].
pub type BoxStream = Box<dyn PeerStream>;

/// The future [`Connector::connect`] returns.
pub type ConnectFuture<'a> = Pin<Box<dyn Future<Output = io::Result<BoxStream>> + Send + 'a>>;

/// Opens connections to peers' controller listeners; the seam a simulator replaces.
pub trait Connector: Send + Sync + 'static {
    /// Connects to `addr` (a peer's `host:port` as configured in the voters).
    fn connect<'a>(&'a self, addr: &'a str) -> ConnectFuture<'a>;
}

/// Connects through [`klog_rt::net::connect`]: tokio's TCP with
/// `TCP_NODELAY` on, or the network a simulator installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect<'a>(&'a self, addr: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            let stream = klog_rt::net::connect(addr).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// Makes one [`PeerClient`] per target openraft replicates to or asks for votes.
pub(crate) struct NetworkFactory {
    node_id: u64,
    connector: Arc<dyn Connector>,
    max_frame_size: usize,
}

impl NetworkFactory {
    pub(crate) fn new(node_id: u64, connector: Arc<dyn Connector>, max_frame_size: usize) -> Self {
        Self {
            node_id,
            connector,
            max_frame_size,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &Node) -> PeerClient {
        PeerClient {
            node_id: self.node_id,
            target,
            addr: node.addr.clone(),
            client_id: format!("klog-quorum-{}", self.node_id),
            connector: self.connector.clone(),
            max_frame_size: self.max_frame_size,
            conn: None,
            buf: BytesMut::new(),
            next_correlation_id: 0,
        }
    }
}

/// Why one call failed, before it becomes openraft's [`RPCError`].
enum CallError {
    /// Could not connect: openraft backs off before trying again.
    Unreachable(io::Error),
    /// The connection failed or the response made no sense.
    Network(io::Error),
    /// No answer within the RPC's TTL.
    Timeout(Duration),
    /// The request does not fit a frame.
    TooLarge,
}

impl CallError {
    fn into_rpc<E: std::error::Error>(
        self,
        action: RPCTypes,
        node_id: u64,
        target: u64,
        entries: usize,
    ) -> RPCError<u64, Node, E> {
        match self {
            Self::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            Self::Network(e) => RPCError::Network(NetworkError::new(&e)),
            Self::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: node_id,
                target,
                timeout,
            }),
            Self::TooLarge => RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(
                u64::try_from(entries / 2).unwrap_or(1).max(1),
            )),
        }
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// One peer: a lazily opened connection and the RPCs openraft sends on it, one at a
/// time.
pub struct PeerClient {
    node_id: u64,
    target: u64,
    addr: String,
    client_id: String,
    connector: Arc<dyn Connector>,
    max_frame_size: usize,
    conn: Option<BoxStream>,
    buf: BytesMut,
    next_correlation_id: i32,
}

impl PeerClient {
    /// Sends `req` as `api_key` and decodes the response body as `R`. The connection
    /// is taken out for the call and put back only if the call completes, so a call
    /// cancelled or failed midway leaves no half-used connection behind.
    async fn call<Q: Serialize, R: DeserializeOwned>(
        &mut self,
        api_key: i16,
        req: &Q,
        ttl: Duration,
    ) -> Result<R, CallError> {
        let body = serde_json::to_vec(req).map_err(|e| CallError::Network(io::Error::other(e)))?;
        // The frame holds the header (at most 12 bytes plus the client id) and body.
        if body.len() + 12 + self.client_id.len() > self.max_frame_size {
            return Err(CallError::TooLarge);
        }
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(api_key, correlation_id, Some(&self.client_id), &body);
        let conn = self.conn.take();
        let result = tokio::time::timeout(ttl, async {
            let mut conn = match conn {
                Some(c) => c,
                None => self
                    .connector
                    .connect(&self.addr)
                    .await
                    .map_err(CallError::Unreachable)?,
            };
            conn.write_all(&frame).await.map_err(CallError::Network)?;
            self.buf.clear();
            let response =
                klog_rt::frame::read_frame(&mut conn, &mut self.buf, self.max_frame_size)
                    .await
                    .map_err(CallError::Network)?
                    .ok_or_else(|| CallError::Network(invalid("connection closed by the peer")))?;
            let (id, body) = response
                .split_first_chunk::<4>()
                .ok_or_else(|| CallError::Network(invalid("response without a correlation id")))?;
            if i32::from_be_bytes(*id) != correlation_id {
                return Err(CallError::Network(invalid("response to another request")));
            }
            let decoded = serde_json::from_slice(body)
                .map_err(|e| CallError::Network(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            Ok((conn, decoded))
        })
        .await;
        match result {
            Ok(Ok((conn, decoded))) => {
                self.conn = Some(conn);
                Ok(decoded)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError::Timeout(ttl)),
        }
    }

    /// A call whose response is `Result<T, E>` as the peer's openraft returned it.
    async fn rpc<Q: Serialize, T: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &mut self,
        api_key: i16,
        action: RPCTypes,
        req: &Q,
        entries: usize,
        option: &RPCOption,
    ) -> Result<T, RPCError<u64, Node, E>> {
        let (node_id, target) = (self.node_id, self.target);
        match self
            .call::<Q, Result<T, E>>(api_key, req, option.soft_ttl())
            .await
        {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(target, remote))),
            Err(e) => Err(e.into_rpc(action, node_id, target, entries)),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Node, RaftError<u64>>> {
        let entries = rpc.entries.len();
        self.rpc(
            APPEND_ENTRIES_API,
            RPCTypes::AppendEntries,
            &rpc,
            entries,
            &option,
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, Node, RaftError<u64, InstallSnapshotError>>,
    > {
        self.rpc(
            INSTALL_SNAPSHOT_API,
            RPCTypes::InstallSnapshot,
            &rpc,
            0,
            &option,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Node, RaftError<u64>>> {
        self.rpc(VOTE_API, RPCTypes::Vote, &rpc, 0, &option).await
    }
}
