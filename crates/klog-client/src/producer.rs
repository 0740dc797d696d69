//! The producer: accumulates records into per-partition batches and sends them.
//!
//! ```text
//!  send(record) ──► partition (explicit, murmur2 of the key, or sticky)
//!       │            └─► open batch of that partition: BatchBuilder::push, in place
//!       │                 └─ full (batch.size)? seal: producer id + sequence, finish()
//!       ▼
//!  DeliveryFuture            sender task: seal batches older than linger.ms, take the
//!   ◄── offset, timestamp    oldest sealed batch of every partition whose leader has
//!                            fewer than max.in.flight requests outstanding, one
//!                            Produce request per leader, pipelined on its connection
//!                              │
//!                              ▼ response handler
//!            ok ──► complete the delivery futures, release buffer.memory
//!            retriable ──► back into the partition's queue, in sequence order, after
//!                          a backoff; metadata refresh if the leader may have moved
//!            fatal or past delivery.timeout.ms ──► fail the delivery futures
//! ```
//!
//! Idempotence is on by default, as in the Java client: the producer gets a
//! producer id with InitProducerId and numbers every partition's records from 0.
//! A retried batch keeps its sequence numbers, so the broker acknowledges a batch it
//! already appended instead of appending it twice (KIP-98). When a batch fails with a
//! retriable error, later batches of that partition that were already in flight fail
//! too (OUT_OF_ORDER_SEQUENCE_NUMBER, or the same error); the partition stops sending
//! until all of them are back, then resends them in sequence order.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use klog_assign::{StickyPartitioner, partition_for_key};
use klog_codec::protocol::ResponseError;
use klog_codec::protocol::client::ProduceTopic;
use klog_codec::protocol::messages::{InitProducerIdRequest, ProduceResponse};
use klog_codec::{BatchBuilder, Compression, OwnedHeader};
use tokio::sync::{Notify, Semaphore};

use crate::cluster::{ClientConfig, Cluster};
use crate::error::{ClientError, ConnectionError, ProduceError};

/// Bytes a record costs beyond its key, value and headers in the buffer estimate
/// (record framing varints; the batch header is amortised).
const RECORD_OVERHEAD: usize = 24;

/// `acks`: how many replicas must have a record before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Acks {
    /// `acks=0`: no response; delivery futures complete with offset -1 once sent.
    None,
    /// `acks=1`: the leader appended it.
    Leader,
    /// `acks=all` (-1): every in-sync replica has it.
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    /// Parses Kafka's spelling: `0`, `1`, `all` or `-1`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "0" => Some(Acks::None),
            "1" => Some(Acks::Leader),
            "all" | "-1" => Some(Acks::All),
            _ => None,
        }
    }
}

/// Producer settings (Kafka's names); [`ProducerConfig::new`] gives the Java
/// client's defaults.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Connection and metadata settings.
    pub client: ClientConfig,
    /// `acks` (default `all`).
    pub acks: Acks,
    /// `enable.idempotence` (default on). Requires `acks=all`, as in Kafka.
    pub enable_idempotence: bool,
    /// `batch.size`: a batch is sent once its records reach this many bytes
    /// (default 16 KiB).
    pub batch_size: usize,
    /// `linger.ms`: how long a batch that is not full waits for more records
    /// (default 5 ms, as Kafka 4).
    pub linger: Duration,
    /// `compression.type` (default none).
    pub compression: Compression,
    /// `max.in.flight.requests.per.connection` (default 5; at most 5 with
    /// idempotence, since brokers remember five batches per producer).
    pub max_in_flight: usize,
    /// `buffer.memory`: bytes of records waiting to be acknowledged before `send`
    /// blocks (default 32 MiB).
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` may wait for buffer space or metadata
    /// (default 60 s).
    pub max_block: Duration,
    /// `max.request.size`: the largest record accepted, and the size at which a
    /// Produce request stops taking more batches (default 1 MiB).
    pub max_request_size: usize,
    /// `delivery.timeout.ms`: upper bound from `send` to success or failure,
    /// retries included (default 120 s).
    pub delivery_timeout: Duration,
}

impl ProducerConfig {
    /// The Java client's defaults, with these bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Self {
        Self {
            client: ClientConfig::new(bootstrap_servers),
            acks: Acks::All,
            enable_idempotence: true,
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            compression: Compression::None,
            max_in_flight: 5,
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            max_request_size: 1024 * 1024,
            delivery_timeout: Duration::from_secs(120),
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Topic. Shared (`Arc<str>`) so that sending many records to one topic clones
    /// a pointer, not the name.
    pub topic: Arc<str>,
    /// Partition; `None` picks one from the key (murmur2) or sticky for no key.
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<Bytes>,
    /// Value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<OwnedHeader>,
    /// Timestamp in ms since the epoch; `None` is now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and no key.
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    fn size(&self) -> usize {
        RECORD_OVERHEAD
            + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 4)
                .sum::<usize>()
    }
}

/// Where and when a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset (-1 with `acks=0`, or when the broker acknowledged a duplicate without
    /// saying where the original went).
    pub offset: i64,
    /// Timestamp: the record's CreateTime, or the broker's LogAppendTime if the
    /// topic uses it.
    pub timestamp: i64,
}

type DeliveryResult = Result<RecordMetadata, ProduceError>;

/// Where a batch went: its base offset and the broker's LogAppendTime (-1 for
/// CreateTime topics).
type BatchResult = Result<(i64, i64), ProduceError>;

/// The outcome of one batch, shared by the delivery futures of all its records:
/// one allocation and one completion per batch, not per record.
struct BatchOutcome {
    topic: Arc<str>,
    partition: i32,
    state: Mutex<OutcomeState>,
}

#[derive(Default)]
struct OutcomeState {
    result: Option<BatchResult>,
    /// Futures polled before the batch completed; a future keeps its slot.
    wakers: Vec<Waker>,
}

impl BatchOutcome {
    fn lock(&self) -> MutexGuard<'_, OutcomeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The producer's handle on a [`BatchOutcome`]: completes it exactly once, and with
/// [`ProduceError::Closed`] if the batch is dropped without a result (the producer
/// went away), so no delivery future waits forever.
struct Completion(Arc<BatchOutcome>);

impl Completion {
    fn new(topic: Arc<str>, partition: i32) -> Self {
        Self(Arc::new(BatchOutcome {
            topic,
            partition,
            state: Mutex::new(OutcomeState::default()),
        }))
    }

    fn finish(&self, result: BatchResult) {
        let wakers = {
            let mut state = self.0.lock();
            if state.result.is_some() {
                return;
            }
            state.result = Some(result);
            std::mem::take(&mut state.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.finish(Err(ProduceError::Closed));
    }
}

/// Completes when the record is acknowledged or has finally failed.
#[derive(Debug)]
pub struct DeliveryFuture {
    batch: Arc<BatchOutcome>,
    /// The record's position in its batch.
    index: u32,
    /// The record's CreateTime.
    timestamp: i64,
    /// Where this future's waker sits in the batch's list, once registered.
    waker_slot: Option<usize>,
}

impl std::fmt::Debug for BatchOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchOutcome")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl Future for DeliveryFuture {
    type Output = DeliveryResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut state = this.batch.lock();
        match &state.result {
            Some(Ok((base_offset, log_append_time))) => Poll::Ready(Ok(RecordMetadata {
                topic: this.batch.topic.clone(),
                partition: this.batch.partition,
                offset: if *base_offset >= 0 {
                    base_offset + i64::from(this.index)
                } else {
                    -1
                },
                timestamp: if *log_append_time >= 0 {
                    *log_append_time
                } else {
                    this.timestamp
                },
            })),
            Some(Err(e)) => Poll::Ready(Err(e.clone())),
            None => {
                match this.waker_slot.and_then(|i| state.wakers.get_mut(i)) {
                    Some(w) => w.clone_from(cx.waker()),
                    None => {
                        this.waker_slot = Some(state.wakers.len());
                        state.wakers.push(cx.waker().clone());
                    }
                }
                Poll::Pending
            }
        }
    }
}

struct OpenBatch {
    builder: BatchBuilder<Vec<u8>>,
    outcome: Completion,
    memory: usize,
    created: Instant,
}

struct ReadyBatch {
    data: Bytes,
    base_sequence: i32,
    /// Records in the batch.
    records: u64,
    outcome: Completion,
    memory: usize,
    created: Instant,
    attempts: u32,
}

#[derive(Default)]
struct PartitionState {
    open: Option<OpenBatch>,
    queue: VecDeque<ReadyBatch>,
    /// Failed with a retriable error; resent once nothing is in flight.
    retry: Vec<ReadyBatch>,
    next_sequence: i32,
    in_flight: usize,
    backoff_until: Option<Instant>,
    /// While backing off after a failure that suggests the leader moved (a
    /// connection failure, NOT_LEADER_OR_FOLLOWER and the like): the broker
    /// that failed. Metadata is refreshed every `retry.backoff.ms` meanwhile, and
    /// the backoff ends as soon as another broker leads (as the Java producer
    /// does since KIP-951), so a failover costs the election, not the backoff.
    backoff_leader: Option<i32>,
}

struct TopicState {
    /// The name, as records and their metadata carry it.
    key: Arc<str>,
    partitions: Vec<PartitionState>,
    sticky: StickyPartitioner,
}

/// The topics a producer has used, in order, with an index by name. Lookups try
/// the last topic found first: a producer usually sends many records in a row to
/// one topic, and comparing a short name is cheaper than hashing it.
#[derive(Default)]
struct Topics {
    list: Vec<TopicState>,
    index: HashMap<Arc<str>, usize>,
    last: usize,
}

impl Topics {
    fn position(&self, name: &str) -> Option<usize> {
        if self.list.get(self.last).is_some_and(|t| &*t.key == name) {
            return Some(self.last);
        }
        self.index.get(name).copied()
    }

    fn get(&self, name: &str) -> Option<&TopicState> {
        self.position(name).and_then(|i| self.list.get(i))
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut TopicState> {
        let i = self.position(name)?;
        self.last = i;
        self.list.get_mut(i)
    }

    fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    /// Adds a topic not present yet.
    fn insert(&mut self, topic: TopicState) {
        self.index.insert(topic.key.clone(), self.list.len());
        self.list.push(topic);
    }

    fn iter(&self) -> impl Iterator<Item = &TopicState> {
        self.list.iter()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut TopicState> {
        self.list.iter_mut()
    }
}

struct State {
    topics: Topics,
    in_flight_per_node: HashMap<i32, usize>,
    producer_id: i64,
    producer_epoch: i16,
    flushing: bool,
    closed: bool,
}

struct Inner {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    state: Mutex<State>,
    /// Wakes the sender: a batch was sealed, a response came back, a flush began.
    wake: Notify,
    /// `buffer.memory`, in bytes; permits are released when a batch completes.
    buffer: Semaphore,
    /// Records sent and not yet completed.
    outstanding: AtomicU64,
    idle: Notify,
    metadata_wanted: AtomicBool,
    refreshing: AtomicBool,
    /// Buffers of completed batches, reused for new ones (at most `buffer.memory`
    /// bytes of capacity): no fresh pages to fault in and zero for every batch.
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Inner {
    /// The capacity a new batch buffer starts with.
    fn batch_capacity(&self) -> usize {
        self.config.batch_size.min(1024 * 1024) + 128
    }

    fn batch_buffer(&self) -> Vec<u8> {
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        spare.unwrap_or_else(|| Vec::with_capacity(self.batch_capacity()))
    }

    /// Keeps the buffer of a completed batch for reuse, if nothing else holds it.
    fn recycle(&self, data: Bytes) {
        let Ok(mut buf) = data.try_into_mut() else {
            return;
        };
        buf.clear();
        let buf = Vec::from(buf);
        if buf.capacity() < self.batch_capacity() {
            return;
        }
        if let Ok(mut spare) = self.spare.lock()
            && (spare.len() + 1) * self.batch_capacity() <= self.config.buffer_memory
        {
            spare.push(buf);
        }
    }
}

/// An async producer; cheap to clone (all clones share one sender task).
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
    /// Shared by all clones; when the last one is dropped the producer closes.
    _handles: Arc<CloseOnDrop>,
}

/// Closes the producer when the last [`Producer`] clone goes away without
/// [`Producer::close`]: records already sent are still delivered, then the sender
/// task ends instead of waiting forever.
struct CloseOnDrop(Arc<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        lock(&self.0.state).closed = true;
        self.0.wake.notify_one();
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

impl Producer {
    /// Connects to the cluster, and with idempotence gets a producer id.
    ///
    /// Must be called inside a tokio runtime: it spawns the sender task.
    pub async fn new(mut config: ProducerConfig) -> Result<Self, ProduceError> {
        if config.enable_idempotence {
            if config.acks != Acks::All {
                return Err(ClientError::InvalidConfig(
                    "enable.idempotence requires acks=all".to_owned(),
                )
                .into());
            }
            config.max_in_flight = config.max_in_flight.clamp(1, 5);
        }
        config.max_in_flight = config.max_in_flight.max(1);
        config.buffer_memory = config.buffer_memory.clamp(1, Semaphore::MAX_PERMITS);
        let cluster = Cluster::new(config.client.clone())?;
        let (producer_id, producer_epoch) = if config.enable_idempotence {
            init_producer_id(&cluster, Instant::now() + config.max_block).await?
        } else {
            (-1, -1)
        };
        let inner = Arc::new(Inner {
            cluster,
            buffer: Semaphore::new(config.buffer_memory),
            config,
            state: Mutex::new(State {
                topics: Topics::default(),
                in_flight_per_node: HashMap::new(),
                producer_id,
                producer_epoch,
                flushing: false,
                closed: false,
            }),
            wake: Notify::new(),
            outstanding: AtomicU64::new(0),
            idle: Notify::new(),
            metadata_wanted: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
            spare: Mutex::new(Vec::new()),
        });
        crate::task::spawn(sender(inner.clone()));
        Ok(Self {
            _handles: Arc::new(CloseOnDrop(inner.clone())),
            inner,
        })
    }

    /// The producer id and epoch (-1, -1 without idempotence).
    pub fn producer_id(&self) -> (i64, i16) {
        let s = lock(&self.inner.state);
        (s.producer_id, s.producer_epoch)
    }

    /// Queues `record` and returns a future for its delivery.
    ///
    /// Waits (up to `max.block.ms`) only for buffer space and for the topic's
    /// metadata the first time a topic is used.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ProduceError> {
        let inner = &*self.inner;
        let size = record.size();
        let max = inner
            .config
            .max_request_size
            .min(inner.config.buffer_memory);
        if size > max {
            return Err(ProduceError::RecordTooLarge { size, max });
        }
        // The deadline is only needed (and the clock only read) when send waits.
        let mut deadline = None;
        let mut deadline =
            || *deadline.get_or_insert_with(|| Instant::now() + inner.config.max_block);
        // Fast path without a timer; the semaphore is fair, so a waiting sender
        // keeps its place.
        match inner.buffer.try_acquire_many(size as u32) {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(ProduceError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                match tokio::time::timeout_at(deadline(), inner.buffer.acquire_many(size as u32))
                    .await
                {
                    Ok(Ok(permit)) => permit.forget(),
                    Ok(Err(_)) => return Err(ProduceError::Closed),
                    Err(_) => return Err(ProduceError::BufferFull),
                }
            }
        }
        loop {
            match self.append(&record, size) {
                Ok(delivery) => return Ok(delivery),
                Err(Appending::UnknownTopic) => {
                    if let Err(e) = self.add_topic(&record.topic, deadline()).await {
                        inner.buffer.add_permits(size);
                        return Err(e);
                    }
                }
                Err(Appending::Failed(e)) => {
                    inner.buffer.add_permits(size);
                    return Err(e);
                }
            }
        }
    }

    async fn add_topic(&self, topic: &Arc<str>, deadline: Instant) -> Result<(), ProduceError> {
        let inner = &*self.inner;
        let info = inner.cluster.wait_for_topic(topic, deadline).await?;
        let mut state = lock(&inner.state);
        if !state.topics.contains_key(topic) {
            let seed = (now_ms() as u64) ^ (state.topics.len() as u64).rotate_left(32);
            let mut partitions = Vec::new();
            partitions.resize_with(info.partitions.len(), PartitionState::default);
            state.topics.insert(TopicState {
                key: topic.clone(),
                partitions,
                sticky: StickyPartitioner::new(seed),
            });
        }
        Ok(())
    }

    /// Adds the record to its partition's open batch, under one lock.
    fn append(&self, record: &ProducerRecord, size: usize) -> Result<DeliveryFuture, Appending> {
        let inner = &*self.inner;
        let mut guard = lock(&inner.state);
        let state = &mut *guard;
        if state.closed {
            return Err(Appending::Failed(ProduceError::Closed));
        }
        let (producer_id, producer_epoch) = (state.producer_id, state.producer_epoch);
        let Some(topic) = state.topics.get_mut(&record.topic) else {
            return Err(Appending::UnknownTopic);
        };
        let n = topic.partitions.len() as i32;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, n),
            (None, None) => topic.sticky.partition(n),
        };
        if partition < 0 || partition >= n {
            return Err(Appending::Failed(ProduceError::InvalidPartition {
                topic: record.topic.to_string(),
                partition,
                partitions: n,
            }));
        }
        let keyless = record.partition.is_none() && record.key.is_none();
        let p = &mut topic.partitions[partition as usize];
        let batch_size = inner.config.batch_size;
        let mut sealed = false;
        if let Some(open) = &p.open
            && !open.builder.is_empty()
            && open.builder.uncompressed_size() + size > batch_size
        {
            seal(p, producer_id, producer_epoch)?;
            sealed = true;
            if keyless {
                topic.sticky.on_new_batch(partition, n);
            }
        }
        let p = &mut topic.partitions[partition as usize];
        let fresh = p.open.is_none();
        let open = p.open.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::new(inner.batch_buffer(), inner.config.compression),
            outcome: Completion::new(topic.key.clone(), partition),
            memory: 0,
            created: Instant::now(),
        });
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let headers: Vec<_> = record.headers.iter().map(OwnedHeader::as_header).collect();
        let index = open.builder.len() as u32;
        open.builder
            .push(
                timestamp,
                record.key.as_deref(),
                record.value.as_deref(),
                &headers,
            )
            .map_err(|e| Appending::Failed(e.into()))?;
        let delivery = DeliveryFuture {
            batch: open.outcome.0.clone(),
            index,
            timestamp,
            waker_slot: None,
        };
        open.memory += size;
        if open.builder.uncompressed_size() >= batch_size {
            seal(p, producer_id, producer_epoch)?;
            sealed = true;
            if keyless {
                topic.sticky.on_new_batch(partition, n);
            }
        }
        inner.outstanding.fetch_add(1, Ordering::AcqRel);
        drop(guard);
        // A sealed batch can go now; a fresh one sets a new linger deadline.
        if sealed || fresh {
            inner.wake.notify_one();
        }
        Ok(delivery)
    }

    /// Sends every buffered record now (ignoring `linger.ms`) and waits until all
    /// records sent so far have completed, successfully or not.
    pub async fn flush(&self) {
        let inner = &*self.inner;
        loop {
            let idle = inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if inner.outstanding.load(Ordering::Acquire) == 0 {
                break;
            }
            lock(&inner.state).flushing = true;
            inner.wake.notify_one();
            idle.await;
        }
        lock(&inner.state).flushing = false;
    }

    /// Flushes, then stops the sender task. Later `send`s fail with
    /// [`ProduceError::Closed`].
    pub async fn close(self) {
        self.flush().await;
        lock(&self.inner.state).closed = true;
        self.inner.buffer.close();
        self.inner.wake.notify_one();
    }
}

/// Why [`Producer::append`] did not take a record.
enum Appending {
    /// The topic's metadata is not loaded yet.
    UnknownTopic,
    /// The record cannot be sent.
    Failed(ProduceError),
}

impl From<ProduceError> for Appending {
    fn from(e: ProduceError) -> Self {
        Appending::Failed(e)
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves plain data; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Finishes the open batch of `p` with the next sequence numbers and queues it.
fn seal(p: &mut PartitionState, producer_id: i64, producer_epoch: i16) -> Result<(), ProduceError> {
    let Some(mut open) = p.open.take() else {
        return Ok(());
    };
    let count = open.builder.len() as i32;
    let base_sequence = if producer_id >= 0 {
        p.next_sequence
    } else {
        -1
    };
    if producer_id >= 0 {
        open.builder
            .set_producer(producer_id, producer_epoch, base_sequence);
        p.next_sequence = p.next_sequence.wrapping_add(count) & i32::MAX;
    }
    let data = open.builder.finish()?;
    p.queue.push_back(ReadyBatch {
        data: Bytes::from(data),
        base_sequence,
        records: count as u64,
        outcome: open.outcome,
        memory: open.memory,
        created: open.created,
        attempts: 0,
    });
    Ok(())
}

async fn init_producer_id(
    cluster: &Cluster,
    deadline: Instant,
) -> Result<(i64, i16), ProduceError> {
    let mut attempt = 0;
    loop {
        let result: Result<(i64, i16), ClientError> = async {
            let conn = cluster.any_connection().await?;
            let response = conn
                .send(
                    &InitProducerIdRequest::default()
                        // The message crate defaults to Some(""), which asks for a
                        // transactional producer.
                        .with_transactional_id(None)
                        .with_transaction_timeout_ms(60_000)
                        .with_producer_id((-1).into())
                        .with_producer_epoch(-1),
                )?
                .await?;
            if let Some(e) = ClientError::broker("InitProducerId", response.error_code, None) {
                return Err(e);
            }
            Ok((response.producer_id.0, response.producer_epoch))
        }
        .await;
        match result {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retriable() => {
                attempt += 1;
                let wait = cluster.config.backoff(attempt);
                if Instant::now() + wait >= deadline {
                    return Err(e.into());
                }
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One batch of a request on its way, with where it came from.
struct Sent {
    topic: Arc<str>,
    partition: i32,
    batch: ReadyBatch,
}

/// The sender task: see the [module docs](self).
async fn sender(inner: Arc<Inner>) {
    loop {
        let notified = inner.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Drained {
            requests,
            expired,
            next: next_deadline,
            closed,
        } = drain(&inner);
        if !expired.is_empty() {
            fail_expired(&inner, expired);
        }
        for (node, batches) in requests {
            send_request(&inner, node, batches).await;
        }
        if closed {
            return;
        }
        if inner.metadata_wanted.load(Ordering::Acquire) || inner.cluster.is_stale() {
            spawn_metadata_refresh(&inner);
        }
        match next_deadline {
            Some(at) => {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// What one pass of the sender found to do.
struct Drained {
    /// Produce requests to send, by leader.
    requests: Vec<(i32, Vec<Sent>)>,
    /// Batches that waited longer than `delivery.timeout.ms` without being sent.
    expired: Vec<Sent>,
    /// When something next becomes due (a linger or backoff deadline).
    next: Option<Instant>,
    /// Whether the producer is closed and has nothing left.
    closed: bool,
}

/// Seals lingering batches and takes what can be sent now, grouped by leader.
/// Returns the requests, the next time something becomes due, and whether the
/// producer is closed and idle.
fn drain(inner: &Inner) -> Drained {
    let now = Instant::now();
    let mut guard = lock(&inner.state);
    let state = &mut *guard;
    let linger = inner.config.linger;
    let flushing = state.flushing || state.closed;
    let (pid, epoch) = (state.producer_id, state.producer_epoch);
    let mut next: Option<Instant> = None;
    let mut wake_at = |t: Instant| {
        next = Some(next.map_or(t, |n: Instant| n.min(t)));
    };
    let mut requests: HashMap<i32, (Vec<Sent>, usize)> = HashMap::new();
    let mut expired: Vec<Sent> = Vec::new();
    let max_request = inner.config.max_request_size;
    let delivery_timeout = inner.config.delivery_timeout;
    let idempotent = inner.config.enable_idempotence;
    for topic in state.topics.iter_mut() {
        let TopicState {
            key: name,
            partitions,
            sticky,
        } = topic;
        let n = partitions.len() as i32;
        for (index, p) in partitions.iter_mut().enumerate() {
            let index = index as i32;
            if let Some(open) = &p.open {
                let due = open.created + linger;
                if flushing || due <= now {
                    // Cannot fail for a non-empty builder.
                    if seal(p, pid, epoch).is_ok() {
                        sticky.on_new_batch(index, n);
                    }
                } else {
                    wake_at(due);
                }
            }
            if p.queue.is_empty() {
                continue;
            }
            let is_expired = |b: &ReadyBatch| now.duration_since(b.created) >= delivery_timeout;
            if p.in_flight == 0 && p.retry.is_empty() && p.queue.front().is_some_and(is_expired) {
                // Nothing reached the leader for delivery.timeout.ms (no leader, no
                // connection). Without idempotence, fail the expired batches. With
                // it, sequence numbers must stay gapless: fail every queued batch,
                // and reuse their numbers if none was ever sent (a sent one may
                // have been appended, and reusing its number would make the broker
                // take new records for a duplicate of it).
                let failed: Vec<ReadyBatch> = if idempotent {
                    if p.queue.iter().all(|b| b.attempts == 0)
                        && let Some(first) = p.queue.front()
                    {
                        p.next_sequence = first.base_sequence;
                    }
                    p.queue.drain(..).collect()
                } else {
                    let mut v = Vec::new();
                    while p.queue.front().is_some_and(is_expired) {
                        v.extend(p.queue.pop_front());
                    }
                    v
                };
                expired.extend(failed.into_iter().map(|batch| Sent {
                    topic: name.clone(),
                    partition: index,
                    batch,
                }));
                if p.queue.is_empty() {
                    continue;
                }
            }
            if let Some(front) = p.queue.front() {
                wake_at(front.created + delivery_timeout);
            }
            if let Some(until) = p.backoff_until {
                let moved = match p.backoff_leader {
                    Some(failed) => match inner.cluster.leader(name, index) {
                        Some(leader) if leader != failed => true,
                        _ => {
                            // Still the broker that failed (or none): look again
                            // every retry.backoff.ms rather than only after the
                            // whole backoff.
                            let every = inner.config.client.retry_backoff;
                            if !inner.cluster.refreshed_within(every) {
                                inner.metadata_wanted.store(true, Ordering::Release);
                            }
                            wake_at(now + every);
                            false
                        }
                    },
                    None => false,
                };
                if until > now && !moved {
                    wake_at(until);
                    continue;
                }
                p.backoff_until = None;
                p.backoff_leader = None;
            }
            if !p.retry.is_empty() {
                continue; // waiting for the in-flight batches to come back
            }
            if inner.config.enable_idempotence && p.in_flight >= inner.config.max_in_flight {
                continue;
            }
            let Some(leader) = inner.cluster.leader(name, index) else {
                inner.metadata_wanted.store(true, Ordering::Release);
                wake_at(now + inner.config.client.retry_backoff);
                continue;
            };
            let node_in_flight = state.in_flight_per_node.get(&leader).copied().unwrap_or(0);
            let pending = requests.get(&leader).map_or(0, |_| 1);
            if node_in_flight + pending >= inner.config.max_in_flight {
                continue;
            }
            let entry = requests.entry(leader).or_default();
            let len = p.queue.front().map_or(0, |b| b.data.len());
            if !entry.0.is_empty() && entry.1 + len > max_request {
                wake_at(now);
                continue;
            }
            if let Some(batch) = p.queue.pop_front() {
                entry.1 += batch.data.len();
                p.in_flight += 1;
                entry.0.push(Sent {
                    topic: name.clone(),
                    partition: index,
                    batch,
                });
            }
            if !p.queue.is_empty() {
                wake_at(now);
            }
        }
    }
    let requests: Vec<(i32, Vec<Sent>)> = requests
        .into_iter()
        .filter(|(_, (sent, _))| !sent.is_empty())
        .map(|(node, (sent, _))| (node, sent))
        .collect();
    for (node, _) in &requests {
        *state.in_flight_per_node.entry(*node).or_default() += 1;
    }
    let closed = state.closed && inner.outstanding.load(Ordering::Acquire) == 0;
    Drained {
        requests,
        expired,
        next,
        closed,
    }
}

/// Fails batches that expired before they could be sent.
fn fail_expired(inner: &Inner, expired: Vec<Sent>) {
    let mut finished = 0u64;
    let mut memory = 0usize;
    for sent in expired {
        let error = ProduceError::DeliveryTimeout {
            topic: sent.topic.to_string(),
            partition: sent.partition,
            last: "no leader could be reached".to_owned(),
        };
        memory += sent.batch.memory;
        finished += sent.batch.records;
        sent.batch.outcome.finish(Err(error));
        inner.recycle(sent.batch.data);
    }
    inner.buffer.add_permits(memory);
    if finished > 0 && inner.outstanding.fetch_sub(finished, Ordering::AcqRel) == finished {
        inner.idle.notify_waiters();
    }
}

fn spawn_metadata_refresh(inner: &Arc<Inner>) {
    let topics: Vec<String> = lock(&inner.state)
        .topics
        .iter()
        .map(|t| t.key.to_string())
        .collect();
    // Nothing to ask about until the first record names a topic. (Refreshing
    // nothing and waking the sender again would spin it: the cache stays stale.)
    if topics.is_empty() || inner.refreshing.swap(true, Ordering::AcqRel) {
        return;
    }
    inner.metadata_wanted.store(false, Ordering::Release);
    let inner = inner.clone();
    crate::task::spawn(async move {
        match inner.cluster.refresh(Some(&topics)).await {
            Ok(_) => grow_partitions(&inner),
            Err(e) => {
                tracing::debug!(error = %e, "metadata refresh failed");
                tokio::time::sleep(inner.config.client.retry_backoff).await;
                inner.metadata_wanted.store(true, Ordering::Release);
            }
        }
        inner.refreshing.store(false, Ordering::Release);
        inner.wake.notify_one();
    });
}

/// Picks up partitions added to topics since they were first used.
fn grow_partitions(inner: &Inner) {
    let mut state = lock(&inner.state);
    for topic in state.topics.iter_mut() {
        if let Some(info) = inner.cluster.topic(&topic.key)
            && info.partitions.len() > topic.partitions.len()
        {
            topic
                .partitions
                .resize_with(info.partitions.len(), PartitionState::default);
        }
    }
}

async fn send_request(inner: &Arc<Inner>, node: i32, batches: Vec<Sent>) {
    let acks = inner.config.acks;
    let timeout_ms = inner
        .config
        .client
        .request_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let conn = match inner.cluster.connection(node).await {
        Ok(c) => c,
        Err(e) => {
            inner.metadata_wanted.store(true, Ordering::Release);
            complete(inner, node, batches, Err(Failure::Client(e)));
            return;
        }
    };
    // The batches go out as they are: the request is written in pieces around them.
    let mut topics: Vec<ProduceTopic<'_>> = Vec::new();
    for s in &batches {
        let data = (s.partition, s.batch.data.clone());
        match topics.iter_mut().find(|t| t.name == &*s.topic) {
            Some(t) => t.partitions.push(data),
            None => topics.push(ProduceTopic {
                name: &s.topic,
                partitions: vec![data],
            }),
        }
    }
    let sent = conn.send_produce(None, acks.wire(), timeout_ms, &topics);
    drop(topics);
    match sent {
        Ok(_) if acks == Acks::None => {
            complete(inner, node, batches, Ok(ProduceResponse::default()));
        }
        Ok(fut) => {
            let inner = inner.clone();
            crate::task::spawn(async move {
                let result = fut.await.map_err(|e| Failure::Client(e.into()));
                complete(&inner, node, batches, result);
            });
        }
        Err(e) => complete(inner, node, batches, Err(Failure::Client(e.into()))),
    }
}

enum Failure {
    Client(ClientError),
}

enum Outcome {
    Done {
        base_offset: i64,
        log_append_time: i64,
    },
    Retry(String),
    Fail(ProduceError),
}

/// Handles the response (or failure) of one Produce request.
fn complete(
    inner: &Inner,
    node: i32,
    batches: Vec<Sent>,
    result: Result<ProduceResponse, Failure>,
) {
    let idempotent = inner.config.enable_idempotence;
    let now = Instant::now();
    let mut done: Vec<(Sent, Outcome)> = Vec::with_capacity(batches.len());
    let mut want_metadata = false;
    {
        let mut state = lock(&inner.state);
        if let Some(n) = state.in_flight_per_node.get_mut(&node) {
            *n = n.saturating_sub(1);
        }
        for sent in batches {
            let mut leader_suspect = false;
            let outcome = match &result {
                Err(Failure::Client(e)) => {
                    leader_suspect = true;
                    if e.is_retriable() {
                        Outcome::Retry(e.to_string())
                    } else {
                        Outcome::Fail(e.clone().into())
                    }
                }
                Ok(response) if inner.config.acks == Acks::None => {
                    let _ = response;
                    Outcome::Done {
                        base_offset: -1,
                        log_append_time: -1,
                    }
                }
                Ok(response) => {
                    let p = response
                        .responses
                        .iter()
                        .filter(|t| t.name.0.as_str() == &*sent.topic)
                        .flat_map(|t| t.partition_responses.iter())
                        .find(|p| p.index == sent.partition);
                    match p {
                        None => Outcome::Retry("partition missing from response".to_owned()),
                        Some(p) => match ResponseError::try_from_code(p.error_code) {
                            None => Outcome::Done {
                                base_offset: p.base_offset,
                                log_append_time: p.log_append_time_ms,
                            },
                            // Already appended earlier: success (KIP-98).
                            Some(ResponseError::DuplicateSequenceNumber) => Outcome::Done {
                                base_offset: p.base_offset,
                                log_append_time: p.log_append_time_ms,
                            },
                            Some(ResponseError::OutOfOrderSequenceNumber)
                                if idempotent && partition_has_retries(&state, &sent) =>
                            {
                                Outcome::Retry("an earlier batch is being retried".to_owned())
                            }
                            Some(e) if e.is_retriable() => {
                                if matches!(
                                    e,
                                    ResponseError::NotLeaderOrFollower
                                        | ResponseError::UnknownTopicOrPartition
                                        | ResponseError::LeaderNotAvailable
                                        | ResponseError::NotEnoughReplicas
                                        | ResponseError::NotEnoughReplicasAfterAppend
                                ) {
                                    leader_suspect = true;
                                }
                                Outcome::Retry(e.to_string())
                            }
                            Some(error) => Outcome::Fail(ProduceError::Broker {
                                topic: sent.topic.to_string(),
                                partition: sent.partition,
                                error,
                            }),
                        },
                    }
                }
            };
            let outcome = match outcome {
                Outcome::Retry(last)
                    if now.duration_since(sent.batch.created) >= inner.config.delivery_timeout =>
                {
                    Outcome::Fail(ProduceError::DeliveryTimeout {
                        topic: sent.topic.to_string(),
                        partition: sent.partition,
                        last,
                    })
                }
                o => o,
            };
            want_metadata |= leader_suspect;
            let Some(p) = state
                .topics
                .get_mut(&sent.topic)
                .and_then(|t| t.partitions.get_mut(sent.partition as usize))
            else {
                done.push((sent, outcome));
                continue;
            };
            p.in_flight = p.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Retry(last) => {
                    tracing::debug!(topic = %sent.topic, partition = sent.partition, %last, "retrying batch");
                    let mut batch = sent.batch;
                    batch.attempts += 1;
                    let backoff = inner.cluster.config.backoff(batch.attempts);
                    p.backoff_until = Some(now + backoff);
                    p.backoff_leader = leader_suspect.then_some(node);
                    p.retry.push(batch);
                }
                other => done.push((sent, other)),
            }
            if p.in_flight == 0 && !p.retry.is_empty() {
                // Everything in flight is back: resend in sequence order, ahead of
                // newer batches.
                let mut retry = std::mem::take(&mut p.retry);
                retry.sort_by_key(|b| b.base_sequence);
                for b in retry.into_iter().rev() {
                    p.queue.push_front(b);
                }
            }
        }
    }
    if want_metadata {
        inner.metadata_wanted.store(true, Ordering::Release);
    }
    let mut finished = 0u64;
    let mut memory = 0usize;
    for (sent, outcome) in done {
        memory += sent.batch.memory;
        finished += sent.batch.records;
        match outcome {
            Outcome::Done {
                base_offset,
                log_append_time,
            } => sent
                .batch
                .outcome
                .finish(Ok((base_offset, log_append_time))),
            Outcome::Fail(e) => {
                tracing::debug!(topic = %sent.topic, partition = sent.partition, error = %e, "batch failed");
                sent.batch.outcome.finish(Err(e));
            }
            Outcome::Retry(_) => {}
        }
        inner.recycle(sent.batch.data);
    }
    if memory > 0 {
        inner.buffer.add_permits(memory);
    }
    if finished > 0 && inner.outstanding.fetch_sub(finished, Ordering::AcqRel) == finished {
        inner.idle.notify_waiters();
    }
    inner.wake.notify_one();
}

fn partition_has_retries(state: &State, sent: &Sent) -> bool {
    state
        .topics
        .get(&sent.topic)
        .and_then(|t| t.partitions.get(sent.partition as usize))
        .is_some_and(|p| {
            !p.retry.is_empty()
                || !p.queue.is_empty()
                    && p.queue
                        .front()
                        .is_some_and(|b| b.base_sequence < sent.batch.base_sequence)
        })
}

impl From<ConnectionError> for ProduceError {
    fn from(e: ConnectionError) -> Self {
        ProduceError::Client(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: usize) -> TopicState {
        let mut p = Vec::new();
        p.resize_with(partitions, PartitionState::default);
        TopicState {
            key: name.into(),
            partitions: p,
            sticky: StickyPartitioner::new(1),
        }
    }

    #[test]
    fn topics_find_each_name_whatever_was_found_last() {
        let mut t = Topics::default();
        assert!(t.get_mut("a").is_none());
        t.insert(topic("a", 1));
        t.insert(topic("b", 2));
        t.insert(topic("ab", 3));
        for name in ["a", "b", "b", "ab", "a", "ab", "ab", "b"] {
            let found = t.get_mut(name).map(|s| s.key.to_string());
            assert_eq!(found.as_deref(), Some(name));
            let expect = match name {
                "a" => 1,
                "b" => 2,
                _ => 3,
            };
            assert_eq!(t.get(name).map(|s| s.partitions.len()), Some(expect));
        }
        assert!(t.get_mut("c").is_none());
        assert!(!t.contains_key("c"));
        assert!(t.contains_key("ab"));
        assert_eq!(t.len(), 3);
    }
}
