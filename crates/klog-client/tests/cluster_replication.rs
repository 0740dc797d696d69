//! Replicated partitions with real processes (issue 14): three `klog-broker`
//! nodes, RF 3, `min.insync.replicas` 2, an idempotent `acks=all` klog-client
//! producer, while brokers are crashed (kill -9), paused (SIGSTOP/SIGCONT) and
//! stopped (SIGTERM), by pid. After each fault heals, every acknowledged record is
//! read back exactly once and in order per partition, and the replicas' segment
//! bytes are identical.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use common::{eventually, live_brokers, run, serial};
use klog_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use klog_test_support::cluster::Cluster;

/// Quick failure detection for tests: heartbeats every 300 ms, fenced after 3 s
/// without one, out of the ISR after 2 s without catching up.
const FAST: &[&str] = &[
    "broker.session.timeout.ms=3000",
    "broker.heartbeat.interval.ms=300",
    "replica.lag.time.max.ms=2000",
    "offsets.topic.num.partitions=3",
];

/// Creates `topic` with RF 3 and min ISR 2 and waits until every partition has
/// its three replicas in sync.
async fn replicated_topic(admin: &Admin, topic: &str, partitions: i32) -> anyhow::Result<()> {
    live_brokers(admin, 3, Duration::from_secs(20)).await?;
    let mut t = NewTopic::new(topic, partitions);
    t.replication_factor = 3;
    t.configs
        .push(("min.insync.replicas".to_owned(), "2".to_owned()));
    admin.create_topics(&[t]).await?[0].clone()?;
    full_isr(admin, topic).await
}

/// Waits until every partition of `topic` has all three replicas in its ISR.
async fn full_isr(admin: &Admin, topic: &str) -> anyhow::Result<()> {
    eventually(Duration::from_secs(40), "a full ISR", || async {
        admin
            .describe_topics(&[topic.to_owned()])
            .await
            .is_ok_and(|t| {
                t[0].partitions
                    .iter()
                    .all(|p| p.isr.len() == 3 && p.leader > 0)
            })
    })
    .await
}

/// The leader of `topic`-`partition`.
async fn leader_of(admin: &Admin, topic: &str, partition: i32) -> anyhow::Result<i32> {
    let t = admin.describe_topics(&[topic.to_owned()]).await?;
    Ok(t[0]
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .context("partition")?
        .leader)
}

/// An idempotent acks=all producer (the client's defaults) with short timeouts.
async fn producer(bootstrap: &str) -> anyhow::Result<Producer> {
    let mut config = ProducerConfig::new(bootstrap);
    config.linger = Duration::from_millis(2);
    config.batch_size = 4096;
    config.client.request_timeout = Duration::from_secs(5);
    config.delivery_timeout = Duration::from_secs(90);
    Ok(Producer::new(config).await?)
}

/// Sends `n` records to `topic` (keys spread over partitions, values their
/// sequence number), pausing now and then so that faults land inside the stream;
/// returns each record's partition and offset once all are acknowledged.
async fn produce(
    producer: Producer,
    topic: &'static str,
    n: usize,
) -> anyhow::Result<Vec<(i32, i64, usize)>> {
    let mut deliveries = Vec::with_capacity(n);
    for i in 0..n {
        let r = ProducerRecord::new(topic, format!("{i:08}")).with_key(format!("k{}", i % 10));
        deliveries.push((i, producer.send(r).await?));
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    let mut acked = Vec::with_capacity(n);
    for (i, d) in deliveries {
        let m = d.await?;
        acked.push((m.partition, m.offset, i));
    }
    producer.close().await;
    Ok(acked)
}

/// Reads every partition of `topic` from the start; checks each acknowledged
/// record is there exactly once, at its offset, in send order per key.
async fn verify(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    acked: &[(i32, i64, usize)],
) -> anyhow::Result<()> {
    let mut consumer = Consumer::new({
        let mut c = ConsumerConfig::new(bootstrap);
        c.auto_offset_reset = klog_client::AutoOffsetReset::Earliest;
        c
    })?;
    consumer.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
    let mut log: BTreeMap<(i32, i64), (Option<Bytes>, Option<Bytes>)> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while log.len() < acked.len() {
        ensure!(
            Instant::now() < deadline,
            "read {} of {} records",
            log.len(),
            acked.len()
        );
        for r in consumer.poll(Duration::from_secs(2)).await? {
            let fresh = log
                .insert((r.partition, r.offset), (r.key.clone(), r.value.clone()))
                .is_none();
            ensure!(fresh, "offset {}-{} read twice", r.partition, r.offset);
        }
    }
    ensure!(
        consumer.poll(Duration::from_millis(500)).await?.is_empty(),
        "more records than acknowledged"
    );
    let mut values = BTreeSet::new();
    for &(p, o, i) in acked {
        let (_, v) = log
            .get(&(p, o))
            .with_context(|| format!("acknowledged {i} at {p}-{o} is lost"))?;
        ensure!(
            v.as_deref() == Some(format!("{i:08}").as_bytes()),
            "{p}-{o} holds another record"
        );
        ensure!(values.insert(i), "record {i} acknowledged twice");
    }
    // Per key, records are in send order (idempotence keeps order across retries).
    let mut last: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (k, v) in log.values() {
        let i: usize = String::from_utf8_lossy(v.as_deref().unwrap_or(&[])).parse()?;
        let key = k.as_deref().unwrap_or(&[]).to_vec();
        if let Some(prev) = last.insert(key, i) {
            ensure!(prev < i, "key order broken: {prev} before {i}");
        }
    }
    Ok(())
}

/// Every node's segment bytes of each partition of `topic` are the same.
fn replicas_identical(cluster: &Cluster, topic: &str, partitions: i32) -> anyhow::Result<()> {
    for p in 0..partitions {
        let mut contents = Vec::new();
        for n in &cluster.nodes {
            let dir = n.data_dir().join(format!("{topic}-{p}"));
            let mut logs: Vec<_> = std::fs::read_dir(&dir)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect();
            logs.sort();
            let mut bytes = Vec::new();
            for l in logs {
                bytes.extend(std::fs::read(l)?);
            }
            contents.push((n.id, bytes));
        }
        let (first_id, first) = &contents[0];
        for (id, bytes) in &contents[1..] {
            ensure!(
                bytes == first,
                "{topic}-{p}: node {id} holds {} bytes, node {first_id} {}",
                bytes.len(),
                first.len()
            );
        }
    }
    Ok(())
}

/// Waits until the replicas of every partition of `topic` hold the same bytes.
async fn converge(cluster: &Cluster, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match replicas_identical(cluster, topic, partitions) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// kill -9 of a partition leader mid-stream, then its restart: every
/// acknowledged record survives exactly once, the restarted broker rejoins the
/// ISR, and the replicas end up byte for byte identical.
#[test]
fn leader_crash_mid_stream_loses_nothing() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, FAST);
    let bootstrap = cluster.bootstrap();
    let rt = common::runtime();
    let (leader, task) = rt.block_on(async {
        let admin = Admin::new(ClientConfig::new(&bootstrap)).expect("admin");
        replicated_topic(&admin, "crash", 3).await.expect("topic");
        let leader = leader_of(&admin, "crash", 0).await.expect("leader");
        let p = producer(&bootstrap).await.expect("producer");
        (leader, tokio::spawn(produce(p, "crash", 6000)))
    });
    std::thread::sleep(Duration::from_millis(700));
    assert!(!task.is_finished(), "the stream ended before the crash");
    cluster.kill(leader);
    let acked = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(120), task).await })
        .expect("producer timed out")
        .expect("producer task")
        .expect("every record acknowledged");
    cluster.restart(leader);
    run(Duration::from_secs(120), async {
        let admin = Admin::new(ClientConfig::new(&bootstrap))?;
        full_isr(&admin, "crash").await?;
        verify(&bootstrap, "crash", 3, &acked).await?;
        converge(&cluster, "crash", 3).await
    });
}

/// A follower paused (SIGSTOP) past replica.lag.time.max.ms leaves the ISR while
/// produce goes on; resumed, it catches up and rejoins. Two paused followers leave
/// the ISR below min.insync.replicas: acks=all is refused with
/// NOT_ENOUGH_REPLICAS until they are back.
///
/// The one controller is node 1 and the followers are broker-only nodes: with
/// every node a voter, pausing two of three would also stop the metadata quorum,
/// and then no ISR change can be written at all (acks=all would wait out its
/// timeout instead, which is as safe, but not what this test checks).
#[test]
fn paused_followers_leave_the_isr_and_rejoin() {
    let _serial = serial();
    let cluster = Cluster::start_mixed(1, 2, FAST);
    let bootstrap = cluster.bootstrap();
    let leader = run(Duration::from_secs(60), async {
        let admin = Admin::new(ClientConfig::new(&bootstrap))?;
        live_brokers(&admin, 3, Duration::from_secs(20)).await?;
        replicated_topic(&admin, "pause", 1).await?;
        leader_of(&admin, "pause", 0).await
    });
    assert_eq!(
        leader, 1,
        "partition 0 of a new topic is led by the first broker"
    );
    let followers: Vec<i32> = (1..=3).filter(|&n| n != leader).collect();
    let leader_addr = cluster.node(leader).addr();
    cluster.pause(followers[0]);
    run(Duration::from_secs(90), async {
        let admin = Admin::new(ClientConfig::new(&leader_addr))?;
        eventually(Duration::from_secs(20), "the ISR to shrink", || async {
            admin
                .describe_topics(&["pause".to_owned()])
                .await
                .is_ok_and(|t| t[0].partitions[0].isr.len() == 2)
        })
        .await?;
        let p = producer(&leader_addr).await?;
        let acked = produce(p, "pause", 300).await?;
        ensure!(acked.len() == 300);
        Ok(())
    });
    cluster.pause(followers[1]);
    run(Duration::from_secs(90), async {
        let admin = Admin::new(ClientConfig::new(&leader_addr))?;
        eventually(
            Duration::from_secs(20),
            "the ISR to be the leader alone",
            || async {
                admin
                    .describe_topics(&["pause".to_owned()])
                    .await
                    .is_ok_and(|t| t[0].partitions[0].isr == vec![leader])
            },
        )
        .await?;
        // Below min ISR: refused at append, nothing written.
        let error = produce_raw(&leader_addr, "pause", -1).await?;
        ensure!(
            error == klog_codec::protocol::ResponseError::NotEnoughReplicas.code(),
            "acks=all below min ISR answered {error}"
        );
        Ok(())
    });
    cluster.resume(followers[0]);
    cluster.resume(followers[1]);
    run(Duration::from_secs(90), async {
        let admin = Admin::new(ClientConfig::new(&leader_addr))?;
        full_isr(&admin, "pause").await?;
        ensure!(
            produce_raw(&leader_addr, "pause", -1).await? == 0,
            "acks=all after the ISR healed"
        );
        converge(&cluster, "pause", 1).await
    });
}

/// A protocol connection to `addr`, for requests the client does not make itself.
async fn raw_connection(
    addr: &str,
) -> anyhow::Result<std::sync::Arc<klog_client::conn::Connection>> {
    Ok(klog_client::conn::Connection::connect(
        addr,
        None,
        Duration::from_secs(5),
        Duration::from_secs(30),
    )
    .await?)
}

/// One Produce request with `acks` to partition 0 of `topic` on `addr`; returns
/// the partition's error code.
async fn produce_raw(addr: &str, topic: &str, acks: i16) -> anyhow::Result<i16> {
    use klog_codec::protocol::messages::ProduceRequest;
    use klog_codec::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let conn = raw_connection(addr).await?;
    let mut b = klog_codec::BatchBuilder::new(Vec::new(), klog_codec::Compression::None);
    b.push(1, None, Some(b"raw"), &[])?;
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(klog_codec::protocol::messages::TopicName(
                    klog_codec::protocol::StrBytes::from_string(topic.to_owned()),
                ))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(b.finish()?))),
                ]),
        ]);
    let resp = conn.send(&req)?.await?;
    Ok(resp.responses[0].partition_responses[0].error_code)
}

/// SIGTERM of a leader: a controlled shutdown moves its leaderships before it
/// stops, so a producer sees only retriable errors, and nothing acknowledged is
/// lost.
#[test]
fn controlled_shutdown_moves_leadership_first() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, FAST);
    let bootstrap = cluster.bootstrap();
    let rt = common::runtime();
    let (leader, task) = rt.block_on(async {
        let admin = Admin::new(ClientConfig::new(&bootstrap)).expect("admin");
        replicated_topic(&admin, "term", 2).await.expect("topic");
        let leader = leader_of(&admin, "term", 0).await.expect("leader");
        let p = producer(&bootstrap).await.expect("producer");
        (leader, tokio::spawn(produce(p, "term", 4000)))
    });
    std::thread::sleep(Duration::from_millis(500));
    cluster.stop(leader);
    let acked = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(120), task).await })
        .expect("producer timed out")
        .expect("producer task")
        .expect("every record acknowledged");
    let survivors: String = (1..=3)
        .filter(|&n| n != leader)
        .map(|n| cluster.node(n).addr())
        .collect::<Vec<_>>()
        .join(",");
    run(Duration::from_secs(90), async {
        let admin = Admin::new(ClientConfig::new(&survivors))?;
        let t = admin.describe_topics(&["term".to_owned()]).await?;
        ensure!(
            t[0].partitions
                .iter()
                .all(|p| p.leader != leader && p.leader > 0),
            "leaders {:?}",
            t[0].partitions.iter().map(|p| p.leader).collect::<Vec<_>>()
        );
        verify(&survivors, "term", 2, &acked).await
    });
}

/// kill -9 of the broker coordinating a consumer group (the leader of its
/// `__consumer_offsets` partition, RF 3): the group moves to the new leader of
/// that partition, no committed offset goes back, and every record is consumed.
#[test]
fn consumer_group_moves_when_its_coordinator_crashes() {
    let _serial = serial();
    use klog_client::GroupConsumer;
    let mut cluster = Cluster::start(3, FAST);
    let bootstrap = cluster.bootstrap();
    const N: usize = 3000;
    let (coordinator, committed_before) = run(Duration::from_secs(90), async {
        let admin = Admin::new(ClientConfig::new(&bootstrap))?;
        replicated_topic(&admin, "grouped", 3).await?;
        let acked = produce(producer(&bootstrap).await?, "grouped", N).await?;
        ensure!(acked.len() == N);
        // Consume about half, committing as we go.
        let mut member = GroupConsumer::new(group_config(&bootstrap))?;
        member.subscribe(&["grouped".to_owned()]);
        let mut read = 0;
        while read < N / 2 {
            read += member.poll(Duration::from_secs(2)).await?.len();
            member.commit_sync().await?;
        }
        let parts: Vec<TopicPartition> =
            (0..3).map(|p| TopicPartition::new("grouped", p)).collect();
        let committed = member.committed(&parts).await?;
        member.close().await?;
        // The coordinator, as FindCoordinator names it: the leader of the group's
        // offsets partition, which has three replicas.
        let offsets = admin
            .describe_topics(&["__consumer_offsets".to_owned()])
            .await?;
        ensure!(
            offsets[0].partitions.iter().all(|p| p.replicas.len() == 3),
            "__consumer_offsets is not RF 3"
        );
        let coordinator =
            coordinator_of(bootstrap.split(',').next().context("address")?, "g").await?;
        Ok((coordinator, committed))
    });
    cluster.kill(coordinator);
    let survivors: String = (1..=3)
        .filter(|&n| n != coordinator)
        .map(|n| cluster.node(n).addr())
        .collect::<Vec<_>>()
        .join(",");
    run(Duration::from_secs(120), async {
        let mut member = GroupConsumer::new(group_config(&survivors))?;
        member.subscribe(&["grouped".to_owned()]);
        let parts: Vec<TopicPartition> =
            (0..3).map(|p| TopicPartition::new("grouped", p)).collect();
        // The new coordinator has every offset committed before the crash.
        let mut after = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(40);
        while after.is_empty() {
            ensure!(Instant::now() < deadline, "no coordinator answered");
            if let Ok(c) = member.committed(&parts).await {
                after = c;
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        for ((tp, b), (_, n)) in committed_before.iter().zip(&after) {
            ensure!(n >= b, "{tp:?}: committed offset went back: {b:?} -> {n:?}");
        }
        // And the rest of the records are consumed from there.
        let start: i64 = after.iter().filter_map(|(_, o)| *o).sum();
        let mut read = 0usize;
        let deadline = Instant::now() + Duration::from_secs(40);
        while (start as usize) + read < N {
            ensure!(
                Instant::now() < deadline,
                "read {} of {}",
                start as usize + read,
                N
            );
            read += member.poll(Duration::from_secs(2)).await?.len();
        }
        member.commit_sync().await?;
        member.close().await?;
        Ok(())
    });
}

fn group_config(bootstrap: &str) -> klog_client::GroupConfig {
    let mut c = klog_client::GroupConfig::new(bootstrap, "g");
    c.session_timeout = Duration::from_secs(10);
    c.heartbeat_interval = Duration::from_millis(300);
    c.consumer.auto_offset_reset = klog_client::AutoOffsetReset::Earliest;
    c.consumer.fetch_max_wait = Duration::from_millis(100);
    c.consumer.client.request_timeout = Duration::from_secs(10);
    c
}

/// Failure detection slow enough that two paused followers stay in the ISR (and
/// unfenced) for longer than an OffsetCommit waits for its records to reach it.
const SLOW_ISR: &[&str] = &[
    "broker.session.timeout.ms=30000",
    "broker.heartbeat.interval.ms=300",
    "replica.lag.time.max.ms=30000",
    "offsets.topic.num.partitions=3",
];

/// The coordinator of `group` as FindCoordinator names it, once it has one.
async fn coordinator_of(addr: &str, group: &str) -> anyhow::Result<i32> {
    use klog_codec::protocol::StrBytes;
    use klog_codec::protocol::messages::FindCoordinatorRequest;
    let conn = raw_connection(addr).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = conn
            .send(
                &FindCoordinatorRequest::default()
                    .with_key(StrBytes::from_string(group.to_owned())),
            )?
            .await?;
        if found.error_code == 0 {
            return Ok(found.node_id.0);
        }
        ensure!(
            Instant::now() < deadline,
            "FindCoordinator: {}",
            found.error_code
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A simple (generation -1) OffsetCommit of `offset` for partition 0 of `topic`;
/// returns the partition's error code.
async fn commit_raw(addr: &str, group: &str, topic: &str, offset: i64) -> anyhow::Result<i16> {
    use klog_codec::protocol::StrBytes;
    use klog_codec::protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use klog_codec::protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
    let conn = raw_connection(addr).await?;
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let resp = conn.send(&req)?.await?;
    Ok(resp.topics[0].partitions[0].error_code)
}

/// OffsetFetch of partition 0 of `topic`: (group error, committed offset).
async fn fetch_raw(addr: &str, group: &str, topic: &str) -> anyhow::Result<(i16, i64)> {
    use klog_codec::protocol::StrBytes;
    use klog_codec::protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use klog_codec::protocol::messages::{GroupId, OffsetFetchRequest, TopicName};
    let conn = raw_connection(addr).await?;
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_indexes(vec![0]),
        ]));
    let resp = conn.send(&req)?.await?;
    let p = &resp.topics[0].partitions[0];
    Ok((resp.error_code.max(p.error_code), p.committed_offset))
}

/// An OffsetCommit whose records cannot reach the ISR of the group's
/// `__consumer_offsets` partition (both followers paused) fails with
/// COORDINATOR_NOT_AVAILABLE, and OffsetFetch keeps answering the offset committed
/// before it: the coordinator stages commits until their append is replicated, as
/// Kafka's does, instead of showing what a new coordinator would not find.
#[test]
fn an_unreplicated_offset_commit_is_not_visible() {
    let _serial = serial();
    // One voter (node 1) and two broker-only nodes, so pausing both of those
    // leaves the metadata quorum whole.
    let cluster = Cluster::start_mixed(1, 2, SLOW_ISR);
    let addr = cluster.node(1).addr();
    let group = run(Duration::from_secs(90), async {
        let admin = Admin::new(ClientConfig::new(&addr))?;
        live_brokers(&admin, 3, Duration::from_secs(20)).await?;
        replicated_topic(&admin, "staged", 1).await?;
        // A group whose coordinator is node 1.
        let mut group = None;
        for i in 0..30 {
            let g = format!("staged-{i}");
            if coordinator_of(&addr, &g).await? == 1 {
                group = Some(g);
                break;
            }
        }
        let group = group.context("no group coordinated by node 1")?;
        let offsets = admin
            .describe_topics(&["__consumer_offsets".to_owned()])
            .await?;
        ensure!(
            offsets[0].partitions.iter().all(|p| p.isr.len() == 3),
            "__consumer_offsets is not fully in sync: {offsets:?}"
        );
        ensure!(commit_raw(&addr, &group, "staged", 10).await? == 0);
        ensure!(fetch_raw(&addr, &group, "staged").await? == (0, 10));
        Ok(group)
    });
    cluster.pause(2);
    cluster.pause(3);
    run(Duration::from_secs(60), async {
        let error = commit_raw(&addr, &group, "staged", 20).await?;
        ensure!(
            error == klog_codec::protocol::ResponseError::CoordinatorNotAvailable.code(),
            "a commit the followers cannot replicate answered {error}"
        );
        let fetched = fetch_raw(&addr, &group, "staged").await?;
        ensure!(
            fetched == (0, 10),
            "after the failed commit OffsetFetch answered {fetched:?}"
        );
        Ok(())
    });
    cluster.resume(2);
    cluster.resume(3);
    run(Duration::from_secs(60), async {
        ensure!(commit_raw(&addr, &group, "staged", 30).await? == 0);
        ensure!(fetch_raw(&addr, &group, "staged").await? == (0, 30));
        Ok(())
    });
}
