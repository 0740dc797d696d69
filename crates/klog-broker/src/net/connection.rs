//! The tokio side of the broker: accepts connections, reads frames, hands decoded
//! requests to [`Broker`] and writes the replies; fetched records go out as file
//! regions, copied through a buffer or with `sendfile` (`klog.fetch.mode`).
//!
//! Each connection is served by one task that handles its requests one at a time,
//! in order, and a writer task that sends the replies in that same order. The one
//! overlap: a Produce request is appended by the reading task and then waits for
//! its fsync (group commit) or high watermark in the writer's queue, so the
//! connection's next requests are read and appended meanwhile and share that fsync
//! (Kafka instead mutes a connection until its response is sent; its durability
//! comes from replication, not fsync). Connections are independent; there is no
//! lock shared by all connections on the produce or fetch path.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use klog_client::net::{Listener, Stream};
use klog_codec::protocol::fetch::FetchPart;
use klog_codec::protocol::parse_request_header;
use klog_storage::FileRegion;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::FetchMode;
use crate::handlers::{Handlers as Broker, RequestContext, Route};
use crate::net::dispatch::{Queued, Reply, dispatch, frame};
use crate::security::Session;
use klog_rt::frame::{KEEP_READ_BUFFER, accept_until, read_frame};

/// How long shutdown waits for connections to finish their in-flight request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `listener` until `shutdown` completes, then stops accepting, lets every
/// connection finish the request it is handling, and returns. Background duties
/// (time-based flush, retention, checkpoints, the group timer) are the node's
/// ([`crate::node::Node::start`] starts them), not the listener's.
///
/// The caller then calls [`Handlers::shutdown`](crate::handlers::Handlers::shutdown) to flush and mark a clean stop.
pub async fn run(
    broker: Arc<Broker>,
    listener: impl Into<Listener>,
    shutdown: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let listener = listener.into();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    accept_until(&listener, &mut connections, shutdown, |stream, peer| {
        tracing::debug!(%peer, "connection accepted");
        let broker = broker.clone();
        let stop = stop_rx.clone();
        async move {
            if let Err(e) = serve_connection(broker, stream, peer, stop).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        }
    })
    .await;
    tracing::info!("shutting down: no longer accepting connections");
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still busy after the grace period; closing them");
        connections.abort_all();
    }
    Ok(())
}

/// Requests of one connection read ahead of their replies, at most (Kafka clients
/// keep up to five in flight).
const MAX_QUEUED_REPLIES: usize = 16;

async fn serve_connection(
    broker: Arc<Broker>,
    stream: Stream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let fetch_mode = broker.config().fetch_mode;
    match stream {
        Stream::Tcp(s) => {
            let (reader, writer) = s.into_split();
            serve_split(broker, reader, Writer::Tcp(writer), fetch_mode, peer, stop).await
        }
        // Not a socket (a simulator's stream): no sendfile, regions are copied.
        other => {
            let (reader, writer) = tokio::io::split(other);
            let writer = Writer::Other(writer);
            serve_split(broker, reader, writer, FetchMode::Buffered, peer, stop).await
        }
    }
}

/// Where a connection's replies go: a TCP socket's write half (which `sendfile`
/// can write to), or another stream's.
enum Writer {
    Tcp(OwnedWriteHalf),
    Other(tokio::io::WriteHalf<Stream>),
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(w) => std::pin::Pin::new(w).poll_write(cx, buf),
            Self::Other(w) => std::pin::Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(w) => std::pin::Pin::new(w).poll_flush(cx),
            Self::Other(w) => std::pin::Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(w) => std::pin::Pin::new(w).poll_shutdown(cx),
            Self::Other(w) => std::pin::Pin::new(w).poll_shutdown(cx),
        }
    }
}

async fn serve_split(
    broker: Arc<Broker>,
    mut reader: impl AsyncRead + Unpin,
    writer: Writer,
    fetch_mode: FetchMode,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let peer = Some(peer);
    let max = broker.config().socket_request_max_bytes;
    // Who this connection is: no TLS or SASL yet, so every connection is
    // anonymous, on the client listener.
    let session = Session::anonymous(
        &broker.config().cluster.inter_broker_listener_name,
        peer.map(|p| p.ip()),
    );
    // Requests are handled one at a time, in order, by this task; replies leave in
    // the same order from the writer task. A Produce request is appended here and
    // then waits (fsync, high watermark) in the writer's queue, so the next request
    // of the connection is read and appended meanwhile: a producer's pipelined
    // requests share one group commit.
    let (tx, rx) = mpsc::channel::<Queued>(MAX_QUEUED_REPLIES);
    let writer = klog_client::task::spawn(write_replies(writer, rx, fetch_mode));
    let mut buf = BytesMut::new();
    let read_result: io::Result<()> = async {
        loop {
            let frame = tokio::select! {
                frame = read_frame(&mut reader, &mut buf, max) => frame,
                _ = stop.changed() => return Ok(()),
                // The writer failed: the connection is done.
                () = tx.closed() => return Ok(()),
            };
            let Some(mut frame) = frame? else {
                return Ok(());
            };
            let (header, body_at) = parse_request_header(&frame)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let frame_len = frame.len();
            let forwarded = crate::handlers::route(header.api_key) == Some(Route::Forwarded)
                && klog_codec::protocol::versions::is_served(header.api_key, header.api_version);
            let queued = if forwarded {
                // Admin requests go to the active controller as the client sent
                // them (KIP-590): the whole frame, header included.
                let whole = frame.split().freeze();
                let peer_host = peer.map(|p| p.ip().to_string()).unwrap_or_default();
                match broker.admin_request(&header, whole, &peer_host).await {
                    Some(reply) => Queued::Ready(Reply::Frame(reply)),
                    None => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "admin request refused",
                        ));
                    }
                }
            } else {
                frame.advance(body_at);
                let ctx = RequestContext::new(&header, &session, peer, broker.authorizer(), &stop);
                dispatch(&broker, &ctx, frame).await?
            };
            if tx.send(queued).await.is_err() {
                return Ok(());
            }
            if frame_len > KEEP_READ_BUFFER {
                // The frame is gone (a queued reply holds none of it): copying what
                // was read ahead drops the last reference to the large allocation.
                buf = BytesMut::from(&buf[..]);
            }
            if *stop.borrow() {
                return Ok(());
            }
        }
    }
    .await;
    // The writer sends what is queued, then ends.
    drop(tx);
    let write_result = writer
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
    read_result.and(write_result)
}

/// Writes the replies of one connection in order, waiting for each pending Produce.
async fn write_replies(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Queued>,
    fetch_mode: FetchMode,
) -> io::Result<()> {
    // The buffered fetch path's read buffer, reused for every fetch of the
    // connection (at most 1 MiB).
    let mut scratch = Vec::new();
    while let Some(queued) = rx.recv().await {
        let reply = match queued {
            Queued::Ready(reply) => reply,
            Queued::Produce(header, pending) => match pending.finish().await {
                Some(resp) => frame(&header, &resp)?,
                None => Reply::None,
            },
        };
        match reply {
            Reply::None => {}
            Reply::Frame(bytes) => writer.write_all(&bytes).await?,
            Reply::Fetch(parts) => {
                write_fetch(&mut writer, parts, fetch_mode, &mut scratch).await?
            }
        }
    }
    Ok(())
}

async fn write_fetch(
    writer: &mut Writer,
    parts: Vec<FetchPart<FileRegion>>,
    mode: FetchMode,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    for part in parts {
        match part {
            FetchPart::Bytes(b) => writer.write_all(&b).await?,
            FetchPart::Region(region, len) => match (mode, &mut *writer) {
                (FetchMode::Sendfile, Writer::Tcp(tcp)) => {
                    send_region(tcp, &region.file, region.position, len).await?
                }
                _ => copy_region(writer, &region.file, region.position, len, scratch).await?,
            },
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` from `position` with `sendfile(2)`: page cache to
/// socket without a copy through user space.
async fn send_region(
    writer: &mut OwnedWriteHalf,
    file: &File,
    mut position: u64,
    mut len: u64,
) -> io::Result<()> {
    let stream: &tokio::net::TcpStream = writer.as_ref();
    while len > 0 {
        stream.writable().await?;
        let result = stream.try_io(Interest::WRITABLE, || {
            let mut offset = position as libc::off_t;
            let count = len.min(0x7fff_f000) as usize;
            // SAFETY: both descriptors are open for the duration of the call (the
            // socket is borrowed, the file is kept alive by the region's Arc), and
            // `offset` is a valid, exclusively borrowed off_t.
            let n =
                unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut offset, count) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match result {
            Ok(0) => {
                // The file is shorter than the region: it was truncated after the
                // read. The frame cannot be completed; the client will retry.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shrank while being sent",
                ));
            }
            Ok(n) => {
                position += n;
                len -= n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends a region by reading it into memory first (the buffered fetch path).
async fn copy_region(
    writer: &mut Writer,
    file: &File,
    mut position: u64,
    mut len: u64,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let want = len.min(CHUNK) as usize;
    if buf.len() < want {
        buf.resize(want, 0);
    }
    while len > 0 {
        let n = len.min(CHUNK) as usize;
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(chunk, position)?;
        writer.write_all(chunk).await?;
        position += n as u64;
        len -= n as u64;
    }
    Ok(())
}
