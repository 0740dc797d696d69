//! The consumer, without group membership: the application assigns partitions and
//! chooses where to start reading.
//!
//! ```text
//!  assign / seek ──► positions (offset, or beginning / end / timestamp to look up
//!                    with ListOffsets at the partition leader)
//!                         │ first poll after a change: restart the fetcher
//!                         ▼
//!  fetcher task: per leader one Fetch at a time (long poll), raw batches into a
//!                bounded channel (the prefetch), next fetch right away
//!                         │
//!                         ▼
//!  poll() / recv() / stream: decode batches (CRC check, decompression), skip
//!                records before the position and control batches, hand out at
//!                most max.poll.records, advance the position
//! ```
//!
//! Fetching runs ahead of the application by up to `prefetch` responses, so the
//! network and the broker work while the application processes records. Records
//! are decoded on the application's task, which spreads the work over two cores.
//! Offsets are not committed anywhere (that needs consumer groups).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use klog_codec::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use klog_codec::protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use klog_codec::protocol::messages::{FetchRequest, ListOffsetsRequest, TopicName};
use klog_codec::protocol::{ResponseError, StrBytes};
use klog_codec::{OwnedHeader, RecordBatches};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster::{ClientConfig, Cluster};
use crate::error::{ClientError, ConsumeError};

pub use klog_assign::TopicPartition;

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offset {
    /// The log start offset (the oldest record kept).
    Beginning,
    /// The log end offset (only records produced from now on).
    End,
    /// This offset.
    At(i64),
    /// The first record with a timestamp at or after this one (ms since the epoch);
    /// the end if there is none.
    Timestamp(i64),
}

/// `auto.offset.reset`: what to do without a position, or when the position is out
/// of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AutoOffsetReset {
    /// Start at the beginning.
    Earliest,
    /// Start at the end (Kafka's default).
    Latest,
    /// Fail with OFFSET_OUT_OF_RANGE.
    None,
}

/// Consumer settings (Kafka's names).
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Connection and metadata settings.
    pub client: ClientConfig,
    /// `max.poll.records`: most records one [`Consumer::poll`] returns (default 500).
    pub max_poll_records: usize,
    /// `fetch.min.bytes` (default 1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.wait.ms`: long-poll time when less than `fetch.min.bytes` is
    /// available (default 500 ms).
    pub fetch_max_wait: Duration,
    /// `fetch.max.bytes` per Fetch response (default 50 MiB).
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes` (default 1 MiB).
    pub max_partition_fetch_bytes: i32,
    /// `auto.offset.reset` (default latest).
    pub auto_offset_reset: AutoOffsetReset,
    /// Fetch responses buffered ahead of the application (default 4).
    pub prefetch: usize,
    /// `check.crcs`: verify each batch's CRC-32C (default on).
    pub check_crcs: bool,
}

impl ConsumerConfig {
    /// Kafka's defaults, with these bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Self {
        Self {
            client: ClientConfig::new(bootstrap_servers),
            max_poll_records: 500,
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            auto_offset_reset: AutoOffsetReset::Latest,
            prefetch: 4,
            check_crcs: true,
        }
    }
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<OwnedHeader>,
}

/// Raw fetched data for one partition, decoded on the application's side.
#[derive(Debug)]
struct Chunk {
    tp: usize,
    fetch_offset: i64,
    records: Bytes,
    generation: u64,
}

enum FetchEvent {
    Data(Chunk),
    Error(ConsumeError, u64),
}

#[derive(Debug, Clone)]
struct Assigned {
    tp: TopicPartition,
    topic: Arc<str>,
    /// Next offset to hand out; `None` until resolved.
    position: Option<i64>,
    pending_seek: Option<Offset>,
}

/// A consumer without group membership; see the [module docs](self).
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    assigned: Vec<Assigned>,
    fetcher: Option<(JoinHandle<()>, mpsc::Receiver<FetchEvent>)>,
    generation: u64,
    ready: VecDeque<ConsumerRecord>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("assigned", &self.assignment())
            .finish_non_exhaustive()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some((task, _)) = self.fetcher.take() {
            task.abort();
        }
    }
}

impl Consumer {
    /// A consumer with nothing assigned. Connects lazily.
    pub fn new(config: ConsumerConfig) -> Result<Self, ConsumeError> {
        Ok(Self {
            cluster: Cluster::new(config.client.clone())?,
            config,
            assigned: Vec::new(),
            fetcher: None,
            generation: 0,
            ready: VecDeque::new(),
        })
    }

    /// Replaces the assignment. Partitions that stay assigned keep their position;
    /// new ones start as `auto.offset.reset` says unless [`Consumer::seek`]ed.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let old: HashMap<TopicPartition, Assigned> =
            self.assigned.drain(..).map(|a| (a.tp.clone(), a)).collect();
        let mut seen = std::collections::HashSet::new();
        for tp in partitions {
            if !seen.insert(tp.clone()) {
                continue;
            }
            let a = old.get(&tp).cloned().unwrap_or_else(|| Assigned {
                topic: Arc::from(tp.topic.as_str()),
                tp,
                position: None,
                pending_seek: None,
            });
            self.assigned.push(a);
        }
        self.ready
            .retain(|r| seen.contains(&TopicPartition::new(r.topic.to_string(), r.partition)));
        self.restart();
    }

    /// Assigns every partition of `topic` (waiting up to `timeout` for its metadata).
    pub async fn assign_topic(
        &mut self,
        topic: &str,
        timeout: Duration,
    ) -> Result<(), ConsumeError> {
        let info = self
            .cluster
            .wait_for_topic(topic, Instant::now() + timeout)
            .await?;
        let mut all: Vec<TopicPartition> = self.assignment();
        for p in &info.partitions {
            let tp = TopicPartition::new(topic, p.partition);
            if !all.contains(&tp) {
                all.push(tp);
            }
        }
        self.assign(all);
        Ok(())
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.iter().map(|a| a.tp.clone()).collect()
    }

    /// Sets where `tp` is read from next; resolved (with ListOffsets) on the next
    /// poll.
    pub fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<(), ConsumeError> {
        let a = self
            .assigned
            .iter_mut()
            .find(|a| &a.tp == tp)
            .ok_or_else(|| ConsumeError::NotAssigned {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })?;
        match offset {
            Offset::At(o) if o >= 0 => {
                a.position = Some(o);
                a.pending_seek = None;
            }
            other => a.pending_seek = Some(other),
        }
        self.ready
            .retain(|r| !(*r.topic == tp.topic && r.partition == tp.partition));
        self.restart();
        Ok(())
    }

    /// Seeks every assigned partition to its beginning.
    pub fn seek_to_beginning(&mut self) {
        for a in &mut self.assigned {
            a.pending_seek = Some(Offset::Beginning);
        }
        self.ready.clear();
        self.restart();
    }

    /// Seeks every assigned partition to its end.
    pub fn seek_to_end(&mut self) {
        for a in &mut self.assigned {
            a.pending_seek = Some(Offset::End);
        }
        self.ready.clear();
        self.restart();
    }

    /// The next offset [`Consumer::poll`] will return for `tp`, once known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.assigned
            .iter()
            .find(|a| &a.tp == tp)
            .and_then(|a| a.position)
    }

    /// Looks up an offset of `tp` at its leader: `-2` = log start, `-1` = log end,
    /// otherwise the first offset with a timestamp at or after this one (the log
    /// end if none).
    pub async fn offset_for(&self, tp: &TopicPartition, spec: Offset) -> Result<i64, ConsumeError> {
        list_offset(&self.cluster, tp, spec).await
    }

    fn restart(&mut self) {
        if let Some((task, _)) = self.fetcher.take() {
            task.abort();
        }
        self.generation += 1;
    }

    async fn resolve_positions(&mut self) -> Result<(), ConsumeError> {
        for i in 0..self.assigned.len() {
            let a = &self.assigned[i];
            let spec = match (a.pending_seek, a.position) {
                (Some(spec), _) => spec,
                (None, Some(_)) => continue,
                (None, None) => match self.config.auto_offset_reset {
                    AutoOffsetReset::Earliest => Offset::Beginning,
                    AutoOffsetReset::Latest => Offset::End,
                    AutoOffsetReset::None => {
                        return Err(ConsumeError::Broker {
                            topic: a.tp.topic.clone(),
                            partition: a.tp.partition,
                            error: ResponseError::OffsetOutOfRange,
                        });
                    }
                },
            };
            let tp = a.tp.clone();
            let offset = list_offset(&self.cluster, &tp, spec).await?;
            let a = &mut self.assigned[i];
            a.position = Some(offset);
            a.pending_seek = None;
        }
        Ok(())
    }

    async fn ensure_fetcher(&mut self) -> Result<(), ConsumeError> {
        if self.fetcher.is_some() || self.assigned.is_empty() {
            return Ok(());
        }
        self.resolve_positions().await?;
        let (tx, rx) = mpsc::channel(self.config.prefetch.max(1));
        let parts: Vec<(TopicPartition, i64)> = self
            .assigned
            .iter()
            .map(|a| (a.tp.clone(), a.position.unwrap_or(0)))
            .collect();
        let task = crate::task::spawn(fetcher(
            self.cluster.clone(),
            self.config.clone(),
            parts,
            tx,
            self.generation,
        ));
        self.fetcher = Some((task, rx));
        Ok(())
    }

    /// Returns up to `max.poll.records` records, waiting up to `timeout` for some.
    /// An empty vector means none arrived in time.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ConsumeError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.ready.is_empty() {
                let n = self.ready.len().min(self.config.max_poll_records.max(1));
                return Ok(self.ready.drain(..n).collect());
            }
            if self.assigned.is_empty() {
                tokio::time::sleep_until(deadline).await;
                return Ok(Vec::new());
            }
            self.ensure_fetcher().await?;
            let Some((_, rx)) = &mut self.fetcher else {
                return Ok(Vec::new());
            };
            let event = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return Ok(Vec::new()),
                Ok(None) => {
                    // The fetcher stopped; start it again on the next round.
                    self.fetcher = None;
                    continue;
                }
                Ok(Some(e)) => e,
            };
            match event {
                FetchEvent::Data(chunk) if chunk.generation == self.generation => {
                    self.decode(chunk)?;
                }
                FetchEvent::Error(e, generation) if generation == self.generation => {
                    self.fetcher = None;
                    return Err(e);
                }
                _ => {}
            }
        }
    }

    /// Returns the next record, waiting as long as it takes.
    pub async fn recv(&mut self) -> Result<ConsumerRecord, ConsumeError> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Ok(r);
            }
            let batch = self.poll(Duration::from_secs(3600)).await?;
            self.ready.extend(batch);
        }
    }

    /// The cluster view this consumer shares with its group membership.
    pub(crate) fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Turns the consumer into a [`futures_core::Stream`] of records.
    pub fn into_stream(self) -> RecordStream {
        RecordStream {
            state: StreamState::Idle(Box::new(self)),
        }
    }

    fn decode(&mut self, chunk: Chunk) -> Result<(), ConsumeError> {
        let Some(a) = self.assigned.get_mut(chunk.tp) else {
            return Ok(());
        };
        if chunk.fetch_offset < 0 {
            // The fetcher reset an out-of-range position (auto.offset.reset).
            a.position = Some(-1 - chunk.fetch_offset);
            return Ok(());
        }
        let Some(position) = a.position else {
            return Ok(());
        };
        if chunk.fetch_offset != position {
            // Data for a position we have moved away from.
            return Ok(());
        }
        let corrupt = |source| ConsumeError::Corrupt {
            topic: a.tp.topic.clone(),
            partition: a.tp.partition,
            offset: position,
            source,
        };
        let mut next = position;
        for item in RecordBatches::new(&chunk.records) {
            let batch = match item {
                Ok((_, b)) => b,
                // A Fetch response may end with a partial batch (KIP-74).
                Err(klog_codec::DecodeError::Truncated { .. }) => break,
                Err(e) => return Err(corrupt(e)),
            };
            if self.config.check_crcs {
                batch.validate().map_err(corrupt)?;
            }
            if batch.next_offset() <= next {
                continue;
            }
            if batch.is_control() {
                next = batch.next_offset();
                continue;
            }
            let records = batch.records().map_err(corrupt)?;
            for r in records.iter() {
                let r = r.map_err(corrupt)?;
                if r.offset < next {
                    continue;
                }
                self.ready.push_back(ConsumerRecord {
                    topic: a.topic.clone(),
                    partition: a.tp.partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.map(|k| chunk.records.slice_ref_or_copy(k)),
                    value: r.value.map(|v| chunk.records.slice_ref_or_copy(v)),
                    headers: r.headers.into_iter().map(|h| h.into_owned()).collect(),
                });
            }
            next = batch.next_offset();
        }
        a.position = Some(next);
        Ok(())
    }
}

/// Zero-copy slices for uncompressed records, a copy for decompressed ones.
trait SliceRefOrCopy {
    fn slice_ref_or_copy(&self, part: &[u8]) -> Bytes;
}

impl SliceRefOrCopy for Bytes {
    fn slice_ref_or_copy(&self, part: &[u8]) -> Bytes {
        let start = self.as_ptr() as usize;
        let p = part.as_ptr() as usize;
        if p >= start && p + part.len() <= start + self.len() {
            self.slice_ref(part)
        } else {
            Bytes::copy_from_slice(part)
        }
    }
}

pub(crate) async fn list_offset(
    cluster: &Cluster,
    tp: &TopicPartition,
    spec: Offset,
) -> Result<i64, ConsumeError> {
    let timestamp = match spec {
        Offset::At(o) => return Ok(o),
        Offset::Beginning => -2,
        Offset::End => -1,
        Offset::Timestamp(t) => t,
    };
    let deadline = Instant::now() + cluster.config.request_timeout;
    let mut attempt = 0;
    loop {
        let result: Result<i64, ConsumeError> = async {
            let info = cluster.wait_for_topic(&tp.topic, deadline).await?;
            if !info.partitions.iter().any(|p| p.partition == tp.partition) {
                return Err(ConsumeError::UnknownPartition {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                });
            }
            let leader = cluster.leader(&tp.topic, tp.partition).ok_or(
                ClientError::broker("ListOffsets", 5, None)
                    .unwrap_or(ClientError::Timeout { what: "leader" }),
            )?;
            let conn = cluster.connection(leader).await?;
            let request = ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(tp.partition)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(timestamp),
                        ]),
                ]);
            let response = conn
                .send(&request)
                .map_err(ClientError::from)?
                .await
                .map_err(ClientError::from)?;
            let p = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == tp.partition)
                .ok_or(
                    ClientError::broker("ListOffsets", 3, None)
                        .unwrap_or(ClientError::Timeout { what: "offsets" }),
                )?;
            if let Some(error) = ResponseError::try_from_code(p.error_code) {
                return Err(ConsumeError::Broker {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    error,
                });
            }
            if p.offset < 0 && timestamp >= 0 {
                // No record at or after the timestamp: the end.
                return Box::pin(list_offset(cluster, tp, Offset::End)).await;
            }
            Ok(p.offset)
        }
        .await;
        match result {
            Ok(o) => return Ok(o),
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                if matches!(e, ConsumeError::Broker { .. } | ConsumeError::Client(_)) {
                    let _ = cluster.refresh(Some(std::slice::from_ref(&tp.topic))).await;
                }
                attempt += 1;
                tokio::time::sleep(cluster.config.backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The fetcher task: see the [module docs](self).
async fn fetcher(
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    parts: Vec<(TopicPartition, i64)>,
    tx: mpsc::Sender<FetchEvent>,
    generation: u64,
) {
    let mut positions: Vec<i64> = parts.iter().map(|(_, o)| *o).collect();
    let names: Vec<StrBytes> = parts
        .iter()
        .map(|(tp, _)| StrBytes::from_string(tp.topic.clone()))
        .collect();
    let mut attempt = 0u32;
    let mut need_metadata = cluster.is_stale();
    loop {
        if need_metadata {
            let mut topics: Vec<String> = parts.iter().map(|(tp, _)| tp.topic.clone()).collect();
            topics.sort();
            topics.dedup();
            if let Err(e) = cluster.refresh(Some(&topics)).await {
                tracing::debug!(error = %e, "consumer metadata refresh failed");
            }
            need_metadata = false;
        }
        // Group partitions by leader.
        let mut by_leader: HashMap<i32, Vec<usize>> = HashMap::new();
        for (i, (tp, _)) in parts.iter().enumerate() {
            match cluster.leader(&tp.topic, tp.partition) {
                Some(l) => by_leader.entry(l).or_default().push(i),
                None => need_metadata = true,
            }
        }
        if by_leader.is_empty() {
            attempt += 1;
            tokio::time::sleep(cluster.config.backoff(attempt)).await;
            need_metadata = true;
            continue;
        }
        let mut inflight = tokio::task::JoinSet::new();
        for (leader, idx) in by_leader {
            let mut topics: Vec<FetchTopic> = Vec::new();
            for &i in &idx {
                let fp = FetchPartition::default()
                    .with_partition(parts[i].0.partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(positions[i])
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(config.max_partition_fetch_bytes);
                match topics.iter_mut().find(|t| t.topic.0 == names[i]) {
                    Some(t) => t.partitions.push(fp),
                    None => topics.push(
                        FetchTopic::default()
                            .with_topic(TopicName(names[i].clone()))
                            .with_partitions(vec![fp]),
                    ),
                }
            }
            let request = FetchRequest::default()
                .with_replica_id((-1).into())
                .with_max_wait_ms(config.fetch_max_wait.as_millis().min(i32::MAX as u128) as i32)
                .with_min_bytes(config.fetch_min_bytes)
                .with_max_bytes(config.fetch_max_bytes)
                .with_isolation_level(0)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(topics);
            let cluster = cluster.clone();
            inflight.spawn(crate::task::inherit(async move {
                let conn = cluster.connection(leader).await?;
                let response = conn
                    .send(&request)
                    .map_err(ClientError::from)?
                    .await
                    .map_err(ClientError::from)?;
                Ok::<_, ClientError>((idx, response))
            }));
        }
        while let Some(joined) = inflight.join_next().await {
            let Ok(result) = joined else { continue };
            let (idx, response) = match result {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "fetch failed, retrying");
                    need_metadata = true;
                    attempt += 1;
                    tokio::time::sleep(cluster.config.backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    let _ = tx.send(FetchEvent::Error(e.into(), generation)).await;
                    return;
                }
            };
            attempt = 0;
            if let Some(e) = ClientError::broker("Fetch", response.error_code, None) {
                if e.is_retriable() {
                    need_metadata = true;
                    continue;
                }
                let _ = tx.send(FetchEvent::Error(e.into(), generation)).await;
                return;
            }
            for t in response.responses {
                for p in t.partitions {
                    let Some(&i) = idx.iter().find(|&&i| {
                        names[i] == t.topic.0 && parts[i].0.partition == p.partition_index
                    }) else {
                        continue;
                    };
                    let tp = &parts[i].0;
                    match ResponseError::try_from_code(p.error_code) {
                        None => {}
                        Some(ResponseError::OffsetOutOfRange) => {
                            let spec = match config.auto_offset_reset {
                                AutoOffsetReset::Earliest => Offset::Beginning,
                                AutoOffsetReset::Latest => Offset::End,
                                AutoOffsetReset::None => {
                                    let e = ConsumeError::Broker {
                                        topic: tp.topic.clone(),
                                        partition: tp.partition,
                                        error: ResponseError::OffsetOutOfRange,
                                    };
                                    let _ = tx.send(FetchEvent::Error(e, generation)).await;
                                    return;
                                }
                            };
                            match list_offset(&cluster, tp, spec).await {
                                Ok(o) => {
                                    positions[i] = o;
                                    // Tell the application its position moved.
                                    let chunk = Chunk {
                                        tp: i,
                                        fetch_offset: -1 - o,
                                        records: Bytes::new(),
                                        generation,
                                    };
                                    if tx.send(FetchEvent::Data(chunk)).await.is_err() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    let _ = tx.send(FetchEvent::Error(e, generation)).await;
                                    return;
                                }
                            }
                            continue;
                        }
                        Some(e) if e.is_retriable() => {
                            need_metadata = true;
                            continue;
                        }
                        Some(error) => {
                            let e = ConsumeError::Broker {
                                topic: tp.topic.clone(),
                                partition: tp.partition,
                                error,
                            };
                            let _ = tx.send(FetchEvent::Error(e, generation)).await;
                            return;
                        }
                    }
                    let Some(records) = p.records else { continue };
                    if records.is_empty() {
                        continue;
                    }
                    let fetch_offset = positions[i];
                    let mut next = fetch_offset;
                    for (_, b) in RecordBatches::new(&records).map_while(Result::ok) {
                        next = next.max(b.next_offset());
                    }
                    if next == fetch_offset {
                        continue;
                    }
                    positions[i] = next;
                    let chunk = Chunk {
                        tp: i,
                        fetch_offset,
                        records,
                        generation,
                    };
                    if tx.send(FetchEvent::Data(chunk)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

type PollFuture = Pin<
    Box<
        dyn std::future::Future<Output = (Box<Consumer>, Result<ConsumerRecord, ConsumeError>)>
            + Send,
    >,
>;

enum StreamState {
    Idle(Box<Consumer>),
    Polling(PollFuture),
    Done,
}

/// The consumer as a [`futures_core::Stream`]; see [`Consumer::into_stream`].
pub struct RecordStream {
    state: StreamState,
}

impl std::fmt::Debug for RecordStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream").finish_non_exhaustive()
    }
}

impl futures_core::Stream for RecordStream {
    type Item = Result<ConsumerRecord, ConsumeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match std::mem::replace(&mut self.state, StreamState::Done) {
                StreamState::Idle(mut consumer) => {
                    if let Some(r) = consumer.ready.pop_front() {
                        self.state = StreamState::Idle(consumer);
                        return Poll::Ready(Some(Ok(r)));
                    }
                    self.state = StreamState::Polling(Box::pin(async move {
                        let r = consumer.recv().await;
                        (consumer, r)
                    }));
                }
                StreamState::Polling(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Ready((consumer, r)) => {
                        self.state = StreamState::Idle(consumer);
                        return Poll::Ready(Some(r));
                    }
                    Poll::Pending => {
                        self.state = StreamState::Polling(fut);
                        return Poll::Pending;
                    }
                },
                StreamState::Done => return Poll::Ready(None),
            }
        }
    }
}
