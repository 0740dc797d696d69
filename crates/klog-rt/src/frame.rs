//! Kafka framing over a byte stream, shared by the broker's client listener and its
//! controller listener (the quorum's RPCs, in `klog-quorum`): a 4-byte size prefix
//! checked before anything is allocated, then the frame; and the accept loop both
//! listeners run.
//!
//! The size check is the one of `klog_codec::protocol::check_frame_size` (protocol
//! guide: "Protocol Primitives"), kept here so that this crate depends on tokio and
//! not on the codec and its compression libraries; a test holds the two to the
//! same answers.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

use crate::net::{Listener, Stream};

/// The smallest frame that can carry a request header: api key, api version and
/// correlation id (`klog_codec::protocol::MIN_REQUEST_SIZE`).
pub const MIN_FRAME_SIZE: usize = 8;

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
    let size = check_frame_size(i32::from_be_bytes(prefix), max)?;
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

/// Checks an untrusted size prefix against `max` (and [`MIN_FRAME_SIZE`]) and
/// returns it as a `usize`; a refused size is an [`io::ErrorKind::InvalidData`]
/// error, after which the caller closes the connection.
fn check_frame_size(raw: i32, max: usize) -> io::Result<usize> {
    let refuse = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidData, msg));
    let Ok(size) = usize::try_from(raw) else {
        return refuse(format!("negative frame size {raw}"));
    };
    if size < MIN_FRAME_SIZE {
        return refuse(format!("frame size {raw} is smaller than a request header"));
    }
    if size > max {
        return refuse(format!(
            "frame size {size} exceeds the maximum of {max} bytes"
        ));
    }
    Ok(size)
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
                    connections.spawn(crate::task::inherit(serve(stream, peer)));
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
