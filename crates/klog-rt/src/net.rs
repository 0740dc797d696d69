//! The network seam: every connection klog opens (the client's, and the broker's
//! to its peers) and every listener the broker binds goes through here.
//!
//! By default that is tokio's TCP ([`Stream::Tcp`], [`Listener`] from a
//! [`tokio::net::TcpListener`]), with nothing in between. A simulator installs its
//! own [`Network`] once per process with [`install`]; from then on [`connect`] and
//! [`bind`] use it, and its streams arrive as [`Stream::Other`]. That is the whole
//! seam: code above it sees byte streams and addresses, not sockets (except the
//! broker's `sendfile` path, which uses [`Stream::tcp`] when the stream is one).
//!
//! ```text
//!   klog-client Connection ─┐                       ┌─► tokio TcpStream (default)
//!   broker fetchers, forward├─► net::connect(addr) ─┤
//!   quorum peers ───────────┘                       └─► installed Network (simulation)
//!   broker listeners ─────────► net::bind(addr) ──── same choice
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte stream that is not a tokio TCP stream (a simulator's).
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> ByteStream for T {}

/// A connection: a TCP stream, or another [`Network`]'s stream.
pub enum Stream {
    /// A tokio TCP stream (`TCP_NODELAY` set by whoever opened it).
    Tcp(tokio::net::TcpStream),
    /// Another network's stream.
    Other(Box<dyn ByteStream>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            Self::Other(_) => f.write_str("Other"),
        }
    }
}

impl Stream {
    /// The TCP stream, if this is one.
    pub fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        match self {
            Self::Tcp(s) => Some(s),
            Self::Other(_) => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Other(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Other(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Other(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Other(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A boxed future, as the [`Network`] and [`OtherListener`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A listener that is not a tokio TCP listener (a simulator's).
pub trait OtherListener: Send + Sync + 'static {
    /// Waits for the next connection.
    fn accept(&self) -> BoxFuture<'_, io::Result<(Box<dyn ByteStream>, SocketAddr)>>;
    /// The address it is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

enum ListenerKind {
    Tcp(tokio::net::TcpListener),
    Other(Box<dyn OtherListener>),
}

/// A bound listener: TCP, or another [`Network`]'s.
pub struct Listener(ListenerKind);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Listener")
            .field(&self.local_addr().ok())
            .finish()
    }
}

impl From<tokio::net::TcpListener> for Listener {
    fn from(l: tokio::net::TcpListener) -> Self {
        Self(ListenerKind::Tcp(l))
    }
}

impl Listener {
    /// Wraps another network's listener.
    pub fn other(l: Box<dyn OtherListener>) -> Self {
        Self(ListenerKind::Other(l))
    }

    /// Waits for the next connection (a TCP one with `TCP_NODELAY` set).
    pub async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        match &self.0 {
            ListenerKind::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), peer))
            }
            ListenerKind::Other(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Stream::Other(s), peer))
            }
        }
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.0 {
            ListenerKind::Tcp(l) => l.local_addr(),
            ListenerKind::Other(l) => l.local_addr(),
        }
    }
}

/// A network other than the host's TCP stack: what a simulator installs.
pub trait Network: Send + Sync + 'static {
    /// Connects to `addr` (`host:port`).
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn ByteStream>>>;
    /// Binds a listener on `addr`.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn OtherListener>>>;
}

static INSTALLED: OnceLock<Arc<dyn Network>> = OnceLock::new();

/// Makes `network` the one [`connect`] and [`bind`] use in this process, from now
/// on. Only the first call has an effect (it returns `false` after that): a
/// process has one network.
pub fn install(network: Arc<dyn Network>) -> bool {
    INSTALLED.set(network).is_ok()
}

/// Connects to `addr` (`host:port`): over TCP with `TCP_NODELAY`, or through the
/// installed network.
pub async fn connect(addr: &str) -> io::Result<Stream> {
    match INSTALLED.get() {
        Some(n) => Ok(Stream::Other(n.connect(addr).await?)),
        None => {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Stream::Tcp(s))
        }
    }
}

/// Binds a listener on `addr`: TCP, or the installed network's.
pub async fn bind(addr: SocketAddr) -> io::Result<Listener> {
    match INSTALLED.get() {
        Some(n) => Ok(Listener::other(n.bind(addr).await?)),
        None => Ok(tokio::net::TcpListener::bind(addr).await?.into()),
    }
}
