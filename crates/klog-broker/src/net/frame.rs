//! Kafka framing over a byte stream, shared by the client listener
//! ([`crate::net::connection`]) and the controller listener (the quorum's RPCs): a 4-byte
//! size prefix checked before anything is allocated, then the frame; and the accept
//! loop both listeners run.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use klog_client::net::{Listener, Stream};
use klog_codec::protocol::check_frame_size;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

/// A connection's read buffer keeps its allocation between requests unless a frame
/// was larger than this (a rare huge request): that allocation is given back once
/// the request is done.
pub const KEEP_READ_BUFFER: usize = 4 * 1024 * 1024;

/// Reads one frame into the connection's buffer `buf` and splits it off: the size
/// prefix is checked before anything is allocated, then the body is read as it
/// arrives, the buffer growing with the bytes received (a peer that announces a
/// large frame and sends nothing costs no memory). Reads may take in bytes of the
/// next frame; they stay in `buf`. Returns `None` on a clean end of stream.
///
/// The frame shares `buf`'s allocation; once the request is handled and the frame
/// dropped, the next frame reuses it, so the steady state allocates nothing and
/// touches no fresh pages.
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<Option<BytesMut>> {
    const CHUNK: usize = 64 * 1024;
    while buf.len() < 4 {
        if buf.capacity() - buf.len() < 4 {
            buf.reserve(CHUNK);
        }
        if reader.read_buf(buf).await? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a frame",
            ));
        }
    }
    let prefix: [u8; 4] = buf
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default();
    let size = check_frame_size(i32::from_be_bytes(prefix), max)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let total = 4 + size;
    while buf.len() < total {
        if buf.capacity() == buf.len() {
            buf.reserve((total - buf.len()).min(buf.len().max(CHUNK)));
        }
        if reader.read_buf(buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a frame",
            ));
        }
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size)))
}

/// Accepts connections on `listener` until `shutdown` completes, running `serve`'s
/// future for each in `connections` and reaping the finished ones. A failed accept
/// (out of file descriptors and the like) is logged and retried after a short pause.
pub async fn accept_until<F, Fut>(
    listener: &Listener,
    connections: &mut JoinSet<()>,
    shutdown: impl std::future::Future<Output = ()>,
    mut serve: F,
) where
    F: FnMut(Stream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(klog_client::task::inherit(serve(stream, peer)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
}
