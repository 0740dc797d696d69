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

#[cfg(test)]
mod tests {
    use super::*;

    /// The local check refuses exactly what the codec's does, with the same words.
    #[test]
    fn size_check_agrees_with_the_codec() {
        use klog_codec::protocol::frame::{DEFAULT_MAX_REQUEST_SIZE, MIN_REQUEST_SIZE};
        assert_eq!(MIN_FRAME_SIZE, MIN_REQUEST_SIZE);
        for max in [100, DEFAULT_MAX_REQUEST_SIZE] {
            for raw in [i32::MIN, -1, 0, 3, 7, 8, 99, 100, 101, i32::MAX] {
                let ours = check_frame_size(raw, max).map_err(|e| e.to_string());
                let codec =
                    klog_codec::protocol::check_frame_size(raw, max).map_err(|e| e.to_string());
                assert_eq!(ours, codec, "size {raw}, max {max}");
            }
        }
    }

    #[tokio::test]
    async fn reads_frames_and_keeps_the_next_one_buffered() {
        let mut wire = Vec::new();
        for body in [&b"12345678"[..], b"abcdefghij"] {
            wire.extend_from_slice(&u32::try_from(body.len()).expect("len").to_be_bytes());
            wire.extend_from_slice(body);
        }
        let mut reader = &wire[..];
        let mut buf = BytesMut::new();
        let first = read_frame(&mut reader, &mut buf, 100).await.expect("read");
        assert_eq!(first.as_deref(), Some(&b"12345678"[..]));
        let second = read_frame(&mut reader, &mut buf, 100).await.expect("read");
        assert_eq!(second.as_deref(), Some(&b"abcdefghij"[..]));
        assert!(
            read_frame(&mut reader, &mut buf, 100)
                .await
                .expect("end")
                .is_none()
        );

        let mut torn = &wire[..6];
        let err = read_frame(&mut torn, &mut BytesMut::new(), 100).await;
        assert_eq!(
            err.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::UnexpectedEof)
        );
        // The first frame (8 bytes) is over a limit of 7: refused before its body.
        let mut big = &wire[..];
        let err = read_frame(&mut big, &mut BytesMut::new(), 7).await;
        assert_eq!(
            err.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::InvalidData)
        );
    }
}
