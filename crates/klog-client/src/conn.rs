//! One TCP connection to one broker, with pipelined requests.
//!
//! ```text
//!  send(req) ──encode──► writer task ──► socket ──► broker
//!     │                       │ pushes (corr id, reply slot) first
//!     ▼                       ▼
//!  response future ◄── reader task ◄── socket: frames come back in request order,
//!                                      matched against the oldest pending slot
//! ```
//!
//! Kafka answers the requests of one connection in the order they were sent, so the
//! pending replies are a FIFO queue; a response whose correlation id is not the
//! oldest pending one is a protocol error and closes the connection. Any error closes
//! the connection and fails every pending request with a retriable
//! [`ConnectionError`]; callers open a new connection.
//!
//! Public for programs that speak to brokers below the producer, consumer and
//! admin clients (klog's brokers use it between themselves): [`Connection::send`]
//! takes any request of `klog_codec::protocol::client::Request`.
//!
//! On connect the client sends ApiVersions (v3, or lower if the broker answers
//! UNSUPPORTED_VERSION in the v0 layout) and afterwards uses, per API,
//! `min(client max, broker max)`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use klog_codec::protocol::ResponseError;
use klog_codec::protocol::StrBytes;
use klog_codec::protocol::client::{
    ProduceHeader, ProduceTopic, decode_api_versions_response, decode_response,
    encode_produce_request, encode_request, response_correlation_id,
};
use klog_codec::protocol::messages::{ApiKey, ApiVersionsRequest, ProduceRequest, ProduceResponse};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::error::ConnectionError;

/// Largest response frame accepted (Kafka's fetch.max.bytes default is 50 MiB; a
/// response may exceed it by one batch).
const MAX_RESPONSE_SIZE: i64 = 256 * 1024 * 1024;

/// Versions the client speaks, per API. Non-flexible where the API has such versions
/// (ApiVersions v3, DescribeCluster and DescribeLogDirs v2+ are flexible), so every
/// broker since Kafka 1.0 (and klog) is served; Kafka 4's minimums are inside.
pub(crate) fn client_versions(key: ApiKey) -> Option<RangeInclusive<i16>> {
    Some(match key {
        // What encode_produce_request writes.
        ApiKey::Produce => klog_codec::protocol::produce::PRODUCE_VERSIONS,
        ApiKey::Fetch => 4..=11,
        ApiKey::ListOffsets => 1..=5,
        ApiKey::Metadata => 1..=8,
        ApiKey::ApiVersions => 0..=3,
        ApiKey::CreateTopics => 2..=4,
        ApiKey::DeleteTopics => 1..=3,
        ApiKey::InitProducerId => 0..=1,
        ApiKey::DescribeConfigs => 1..=3,
        // Admin (issue 7). DescribeCluster is flexible from v0 and has no older form;
        // DescribeLogDirs starts at v1 in the message crate.
        ApiKey::CreatePartitions => 0..=1,
        ApiKey::IncrementalAlterConfigs => 0..=0,
        ApiKey::DeleteRecords => 0..=1,
        ApiKey::DescribeLogDirs => 1..=4,
        ApiKey::DescribeCluster => 0..=1,
        // Consumer groups, non-flexible versions (KAFKA-COMPAT.md). JoinGroup v4 adds
        // MEMBER_ID_REQUIRED, v5 (and SyncGroup/Heartbeat/LeaveGroup v3, OffsetCommit
        // v7) static membership.
        ApiKey::FindCoordinator => 0..=2,
        ApiKey::JoinGroup => 0..=5,
        ApiKey::SyncGroup => 0..=3,
        ApiKey::Heartbeat => 0..=3,
        ApiKey::LeaveGroup => 0..=3,
        ApiKey::OffsetCommit => 2..=7,
        ApiKey::OffsetFetch => 1..=5,
        ApiKey::ListGroups => 0..=2,
        ApiKey::DescribeGroups => 0..=4,
        // Between klog's own brokers and controllers (issue 13, 14): both ends are
        // klog, so any version that carries the fields works.
        ApiKey::BrokerRegistration => 0..=3,
        ApiKey::BrokerHeartbeat => 0..=1,
        ApiKey::AlterPartition => 2..=2,
        ApiKey::AllocateProducerIds => 0..=0,
        ApiKey::Envelope => 0..=0,
        ApiKey::DescribeQuorum => 0..=2,
        ApiKey::ElectLeaders => 0..=2,
        ApiKey::OffsetForLeaderEpoch => 2..=4,
        _ => return None,
    })
}

type Reply = oneshot::Sender<Result<Bytes, ConnectionError>>;

struct Outgoing {
    /// The frame, possibly in pieces (a Produce request's records are not copied
    /// into it): written back to back.
    frame: Pieces,
    reply: Option<(i32, Reply)>,
}

/// A frame as one buffer or as pieces.
enum Pieces {
    One(Bytes),
    Many(Vec<Bytes>),
}

#[derive(Default)]
struct Pending {
    queue: VecDeque<(i32, Reply)>,
    closed: Option<ConnectionError>,
}

impl Pending {
    fn close(&mut self, error: ConnectionError) {
        if self.closed.is_none() {
            self.closed = Some(error.clone());
        }
        for (_, reply) in self.queue.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

struct Shared {
    addr: String,
    pending: Mutex<Pending>,
    closed: AtomicBool,
}

impl Shared {
    fn close(&self, error: ConnectionError) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut p) = self.pending.lock() {
            p.close(error);
        }
    }
}

/// A connection to one broker; see the [module docs](self).
pub struct Connection {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outgoing>,
    next_correlation_id: AtomicI32,
    client_id: Option<StrBytes>,
    request_timeout: Duration,
    /// The broker's (min, max) per API key, from ApiVersions.
    versions: HashMap<i16, (i16, i16)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr`, starts the reader and writer tasks and negotiates versions.
    pub async fn connect(
        addr: &str,
        client_id: Option<StrBytes>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Arc<Self>, ConnectionError> {
        let connect_error = |source: std::io::Error| ConnectionError::Connect {
            addr: addr.to_owned(),
            source: Arc::new(source),
        };
        let stream = match tokio::time::timeout(connect_timeout, crate::net::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_error(e)),
            Err(_) => {
                return Err(connect_error(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )));
            }
        };
        let shared = Arc::new(Shared {
            addr: addr.to_owned(),
            pending: Mutex::new(Pending::default()),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        match stream {
            crate::net::Stream::Tcp(s) => {
                let (read, write) = s.into_split();
                crate::task::spawn(writer(shared.clone(), write, rx));
                crate::task::spawn(reader(shared.clone(), read));
            }
            other => {
                let (read, write) = tokio::io::split(other);
                crate::task::spawn(writer(shared.clone(), write, rx));
                crate::task::spawn(reader(shared.clone(), read));
            }
        }
        let mut conn = Self {
            shared,
            tx,
            next_correlation_id: AtomicI32::new(1),
            client_id,
            request_timeout,
            versions: HashMap::new(),
        };
        conn.versions = conn.negotiate().await?;
        Ok(Arc::new(conn))
    }

    async fn negotiate(&self) -> Result<HashMap<i16, (i16, i16)>, ConnectionError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("klog-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = 3;
        loop {
            let (corr, rx) = self.enqueue(|buf, corr| {
                encode_request(buf, corr, self.client_id.as_ref(), version, &request)
            })?;
            let frame = self.await_reply(rx, ApiKey::ApiVersions as i16).await?;
            let (got, response) = decode_api_versions_response(frame, version)?;
            debug_assert_eq!(got, corr);
            let versions: HashMap<i16, (i16, i16)> = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            match ResponseError::try_from_code(response.error_code) {
                None => return Ok(versions),
                Some(ResponseError::UnsupportedVersion) if version > 0 => {
                    // The broker lists its own ApiVersions range (KIP-511).
                    let broker_max = versions
                        .get(&(ApiKey::ApiVersions as i16))
                        .map_or(0, |&(_, max)| max);
                    version = broker_max.clamp(0, version - 1);
                }
                Some(error) => {
                    return Err(ConnectionError::Handshake {
                        addr: self.shared.addr.clone(),
                        error,
                    });
                }
            }
        }
    }

    /// The broker address.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Whether the connection has failed or been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// The version to use for `key`: `min(client max, broker max)`, if that is at
    /// least both minimums.
    pub fn version(&self, key: ApiKey) -> Result<i16, ConnectionError> {
        let ours = client_versions(key);
        let unsupported = || ConnectionError::UnsupportedVersion {
            addr: self.shared.addr.clone(),
            api_key: key as i16,
            min: ours.as_ref().map_or(-1, |r| *r.start()),
            max: ours.as_ref().map_or(-1, |r| *r.end()),
        };
        let Some(ours) = ours.clone() else {
            return Err(unsupported());
        };
        let &(min, max) = self.versions.get(&(key as i16)).ok_or_else(unsupported)?;
        let v = max.min(*ours.end());
        if v < min.max(*ours.start()) {
            return Err(unsupported());
        }
        Ok(v)
    }

    fn enqueue(
        &self,
        encode: impl FnOnce(
            &mut BytesMut,
            i32,
        ) -> Result<(), klog_codec::protocol::client::ClientCodecError>,
    ) -> Result<(i32, oneshot::Receiver<Result<Bytes, ConnectionError>>), ConnectionError> {
        let corr = self.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let mut buf = BytesMut::new();
        encode(&mut buf, corr)?;
        let (reply, rx) = oneshot::channel();
        self.push(Outgoing {
            frame: Pieces::One(buf.freeze()),
            reply: Some((corr, reply)),
        })?;
        Ok((corr, rx))
    }

    fn push(&self, out: Outgoing) -> Result<(), ConnectionError> {
        self.tx.send(out).map_err(|_| ConnectionError::Closed {
            addr: self.shared.addr.clone(),
        })
    }

    async fn await_reply(
        &self,
        rx: oneshot::Receiver<Result<Bytes, ConnectionError>>,
        api_key: i16,
    ) -> Result<Bytes, ConnectionError> {
        wait_reply(rx, self.request_timeout, self.shared.clone(), api_key).await
    }

    /// Sends `request` at the negotiated version and returns the future response.
    ///
    /// The request is queued for the socket before this returns, so requests sent
    /// one after the other go out (and are answered) in that order.
    pub fn send<R>(
        &self,
        request: &R,
    ) -> Result<
        impl Future<Output = Result<R::Response, ConnectionError>> + Send + 'static,
        ConnectionError,
    >
    where
        R: klog_codec::protocol::client::Request,
        R::Response: Send + 'static,
    {
        let key = ApiKey::try_from(R::KEY)
            .map_err(|_| klog_codec::protocol::client::ClientCodecError::UnknownApiKey(R::KEY))?;
        let version = self.version(key)?;
        let (_, rx) = self.enqueue(|buf, corr| {
            encode_request(buf, corr, self.client_id.as_ref(), version, request)
        })?;
        let shared = self.shared.clone();
        let timeout = self.request_timeout;
        Ok(async move {
            let frame = wait_reply(rx, timeout, shared, R::KEY).await?;
            let (_, response) = decode_response::<R>(frame, version)?;
            Ok(response)
        })
    }

    /// Sends a Produce request without copying its records into a frame (see
    /// [`encode_produce_request`]); with `acks=0` nothing is awaited and the
    /// future completes with an empty response once the request is queued.
    pub(crate) fn send_produce(
        &self,
        transactional_id: Option<&str>,
        acks: i16,
        timeout_ms: i32,
        topics: &[ProduceTopic<'_>],
    ) -> Result<
        impl Future<Output = Result<ProduceResponse, ConnectionError>> + Send + 'static,
        ConnectionError,
    > {
        let version = self.version(ApiKey::Produce)?;
        let corr = self.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let header = ProduceHeader {
            correlation_id: corr,
            client_id: self.client_id.as_ref().map(|c| c.as_str()),
            version,
            transactional_id,
            acks,
            timeout_ms,
        };
        let pieces = encode_produce_request(&header, topics)?;
        let rx = if acks == 0 {
            self.push(Outgoing {
                frame: Pieces::Many(pieces),
                reply: None,
            })?;
            None
        } else {
            let (reply, rx) = oneshot::channel();
            self.push(Outgoing {
                frame: Pieces::Many(pieces),
                reply: Some((corr, reply)),
            })?;
            Some(rx)
        };
        let shared = self.shared.clone();
        let timeout = self.request_timeout;
        Ok(async move {
            let Some(rx) = rx else {
                return Ok(ProduceResponse::default());
            };
            let frame = wait_reply(rx, timeout, shared, ApiKey::Produce as i16).await?;
            let (_, response) = decode_response::<ProduceRequest>(frame, version)?;
            Ok(response)
        })
    }
}

async fn wait_reply(
    rx: oneshot::Receiver<Result<Bytes, ConnectionError>>,
    timeout: Duration,
    shared: Arc<Shared>,
    api_key: i16,
) -> Result<Bytes, ConnectionError> {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(ConnectionError::Closed {
            addr: shared.addr.clone(),
        }),
        Err(_) => {
            // Later responses on this connection would be matched against a request
            // nobody waits for; close it so that callers reconnect.
            let error = ConnectionError::Timeout {
                addr: shared.addr.clone(),
                api_key,
            };
            shared.close(error.clone());
            Err(error)
        }
    }
}

/// Pieces gathered into one vectored write, at most.
const MAX_IOVECS: usize = 64;

async fn writer(
    shared: Arc<Shared>,
    mut write: impl AsyncWrite + Unpin,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    // Pieces of queued frames not yet (fully) written, in order. Everything
    // already queued goes out in as few `writev`s as possible: one syscall for many
    // small pipelined requests, and a Produce request's records straight from the
    // batch buffers.
    let mut queue: VecDeque<Bytes> = VecDeque::new();
    let mut open = true;
    'outer: while open || !queue.is_empty() {
        if queue.is_empty() {
            match rx.recv().await {
                Some(out) => {
                    if !take(&shared, out, &mut queue) {
                        return;
                    }
                }
                None => break,
            }
        }
        while queue.len() < MAX_IOVECS {
            match rx.try_recv() {
                Ok(out) => {
                    if !take(&shared, out, &mut queue) {
                        return;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let slices: Vec<std::io::IoSlice<'_>> = queue
            .iter()
            .take(MAX_IOVECS)
            .map(|b| std::io::IoSlice::new(b))
            .collect();
        let mut written = match write.write_vectored(&slices).await {
            Ok(0) => {
                shared.close(io_error(
                    &shared.addr,
                    std::io::Error::from(std::io::ErrorKind::WriteZero),
                ));
                return;
            }
            Ok(n) => n,
            Err(e) => {
                shared.close(io_error(&shared.addr, e));
                return;
            }
        };
        drop(slices);
        while written > 0 {
            let Some(front) = queue.front_mut() else {
                break 'outer;
            };
            if written >= front.len() {
                written -= front.len();
                queue.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
        if shared.closed.load(Ordering::Acquire) {
            break;
        }
    }
    let _ = write.shutdown().await;
    shared.close(ConnectionError::Closed {
        addr: shared.addr.clone(),
    });
}

/// Registers `out`'s reply (before any of its bytes are written, so the response
/// always finds it) and queues its pieces. False if the connection is gone.
fn take(shared: &Shared, out: Outgoing, queue: &mut VecDeque<Bytes>) -> bool {
    if let Some(reply) = out.reply {
        let Ok(mut p) = shared.pending.lock() else {
            return false;
        };
        if let Some(e) = &p.closed {
            let _ = reply.1.send(Err(e.clone()));
            return true;
        }
        p.queue.push_back(reply);
    }
    match out.frame {
        Pieces::One(b) => queue.push_back(b),
        Pieces::Many(v) => queue.extend(v.into_iter().filter(|b| !b.is_empty())),
    }
    true
}

fn io_error(addr: &str, e: std::io::Error) -> ConnectionError {
    ConnectionError::Io {
        addr: addr.to_owned(),
        source: Arc::new(e),
    }
}

/// Reads at least `want` bytes into `buf` (in total), growing it in steps of at
/// least 64 KiB; may read more (the start of the next response).
async fn fill(
    read: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    want: usize,
) -> std::io::Result<()> {
    while buf.len() < want {
        if buf.capacity() == buf.len() {
            buf.reserve((want - buf.len()).max(64 * 1024));
        }
        if read.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

async fn reader(shared: Arc<Shared>, mut read: impl AsyncRead + Unpin) {
    // Responses are read into one buffer and split off it: a small response (size
    // prefix and body) usually takes one read, nothing is zeroed, and once the
    // application has dropped a response's records the next one reuses the same
    // memory instead of faulting in fresh pages.
    let mut buf = BytesMut::new();
    let error = loop {
        match fill(&mut read, &mut buf, 4).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && buf.is_empty() => {
                break ConnectionError::Closed {
                    addr: shared.addr.clone(),
                };
            }
            Err(e) => break io_error(&shared.addr, e),
        }
        let size = i64::from(buf.get_i32());
        if !(4..=MAX_RESPONSE_SIZE).contains(&size) {
            break ConnectionError::FrameTooLarge {
                addr: shared.addr.clone(),
                size,
            };
        }
        let size = size as usize;
        if let Err(e) = fill(&mut read, &mut buf, size).await {
            break io_error(&shared.addr, e);
        }
        let frame = buf.split_to(size);
        let frame = frame.freeze();
        let got = response_correlation_id(&frame).unwrap_or(-1);
        let Ok(mut p) = shared.pending.lock() else {
            return;
        };
        match p.queue.pop_front() {
            Some((expected, reply)) if expected == got => {
                let _ = reply.send(Ok(frame));
            }
            Some((expected, reply)) => {
                let e = ConnectionError::CorrelationMismatch {
                    addr: shared.addr.clone(),
                    expected,
                    got,
                };
                let _ = reply.send(Err(e.clone()));
                drop(p);
                break e;
            }
            None => {
                drop(p);
                break ConnectionError::CorrelationMismatch {
                    addr: shared.addr.clone(),
                    expected: -1,
                    got,
                };
            }
        }
        if shared.closed.load(Ordering::Acquire) {
            break ConnectionError::Closed {
                addr: shared.addr.clone(),
            };
        }
    };
    shared.close(error);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use klog_codec::protocol::Encodable;
    use klog_codec::protocol::messages::ApiVersionsResponse;
    use klog_codec::protocol::messages::api_versions_response::ApiVersion;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn api(key: i16, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default()
            .with_api_key(key)
            .with_min_version(min)
            .with_max_version(max)
    }

    /// Reads one request frame; returns (api key, version, correlation id).
    async fn read_request(s: &mut TcpStream) -> (i16, i16, i32) {
        let size = s.read_i32().await.expect("size");
        let mut frame = vec![0u8; size as usize];
        s.read_exact(&mut frame).await.expect("frame");
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let corr = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        (key, version, corr)
    }

    async fn respond(s: &mut TcpStream, corr: i32, body: &ApiVersionsResponse, version: i16) {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        buf.put_i32(corr); // ApiVersions: response header v0 at every version
        body.encode(&mut buf, version).expect("encode");
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        s.write_all(&buf).await.expect("write");
    }

    /// KIP-511 from the client side: an older broker answers ApiVersions v3 with
    /// UNSUPPORTED_VERSION in the v0 layout, listing its own ApiVersions range; the
    /// client retries at that version and then picks min(client max, broker max)
    /// per API.
    #[tokio::test]
    async fn negotiation_falls_back_and_picks_common_versions() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let broker = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let (key, version, corr) = read_request(&mut s).await;
            assert_eq!((key, version), (18, 3));
            let refuse = ApiVersionsResponse::default()
                .with_error_code(35)
                .with_api_keys(vec![api(18, 0, 2)]);
            respond(&mut s, corr, &refuse, 0).await;
            let (key, version, corr) = read_request(&mut s).await;
            assert_eq!((key, version), (18, 2));
            let ok = ApiVersionsResponse::default().with_api_keys(vec![
                api(18, 0, 2),
                api(3, 0, 12),
                api(0, 9, 11),
            ]);
            respond(&mut s, corr, &ok, 2).await;
            // Keep the socket open until the client is done.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        });
        let conn = Connection::connect(&addr, None, Duration::from_secs(5), Duration::from_secs(5))
            .await
            .expect("connect");
        // Metadata: client 1..=8, broker 0..=12 -> 8.
        assert_eq!(conn.version(ApiKey::Metadata).expect("metadata"), 8);
        // Produce: client 3..=8, broker 9..=11 -> no common version.
        let e = conn
            .version(ApiKey::Produce)
            .expect_err("no common produce version");
        assert!(
            matches!(e, ConnectionError::UnsupportedVersion { api_key: 0, .. }),
            "{e}"
        );
        assert!(!e.is_retriable());
        // Not offered by the broker at all.
        assert!(conn.version(ApiKey::Fetch).is_err());
        drop(conn);
        broker.await.expect("mock broker");
    }

    /// A response whose correlation id is not the oldest pending one closes the
    /// connection and fails the request with a non-retriable protocol error.
    #[tokio::test]
    async fn correlation_mismatch_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let (_, _, corr) = read_request(&mut s).await;
            let ok =
                ApiVersionsResponse::default().with_api_keys(vec![api(18, 0, 3), api(3, 1, 8)]);
            respond(&mut s, corr, &ok, 3).await;
            let (_, _, corr) = read_request(&mut s).await;
            // Answer with the wrong correlation id.
            respond(&mut s, corr + 100, &ok, 0).await;
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        });
        let conn = Connection::connect(&addr, None, Duration::from_secs(5), Duration::from_secs(5))
            .await
            .expect("connect");
        let request = klog_codec::protocol::messages::MetadataRequest::default();
        let err = conn
            .send(&request)
            .expect("queued")
            .await
            .expect_err("mismatched response accepted");
        assert!(
            matches!(err, ConnectionError::CorrelationMismatch { .. }),
            "{err}"
        );
        assert!(conn.is_closed());
    }
}
