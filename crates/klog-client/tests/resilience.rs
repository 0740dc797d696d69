//! Metadata refresh and broker restarts, against the real broker binary.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::ensure;
use common::{Broker, run};
use klog_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};

/// A producer and consumer created before a topic exists see it once it is
/// created (the producer waits for metadata; the consumer's assignment is resolved
/// on a refreshed cache), and a topic created later by the admin client is usable
/// by the same producer.
#[test]
fn metadata_refresh_after_topic_creation() {
    // No auto-creation: the topic appears only through CreateTopics.
    let broker = Broker::start_with(&["auto.create.topics.enable=false"]);
    run(Duration::from_secs(60), async {
        let addr = broker.addr();
        let mut config = ProducerConfig::new(&addr);
        config.max_block = Duration::from_secs(20);
        let producer = Producer::new(config).await?;
        // Use one topic first so the producer's cache is populated.
        let admin = Admin::new(ClientConfig::new(&addr))?;
        admin.create_topics(&[NewTopic::new("first", 1)]).await?[0].clone()?;
        producer
            .send(ProducerRecord::new("first", "a"))
            .await?
            .await?;

        // Send to a topic that does not exist yet: send() waits on metadata...
        let p2 = producer.clone();
        let pending = tokio::spawn(async move {
            p2.send(ProducerRecord::new("later", "b").with_partition(2))
                .await?
                .await
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        ensure!(!pending.is_finished(), "send to a missing topic completed");
        // ...until the topic is created with enough partitions.
        admin.create_topics(&[NewTopic::new("later", 3)]).await?[0].clone()?;
        let meta = pending.await??;
        ensure!(meta.partition == 2 && meta.offset == 0, "{meta:?}");

        let described = admin.describe_topics(&["later".to_owned()]).await?;
        ensure!(described[0].partitions.len() == 3);
        let mut consumer = Consumer::new({
            let mut c = ConsumerConfig::new(&addr);
            c.auto_offset_reset = klog_client::AutoOffsetReset::Earliest;
            c
        })?;
        consumer.assign([TopicPartition::new("later", 2)]);
        let got = consumer.poll(Duration::from_secs(10)).await?;
        ensure!(got.len() == 1 && got[0].value.as_deref() == Some(&b"b"[..]));
        producer.close().await;
        Ok(())
    });
}

/// KIP-98 end to end: with acks=all and idempotence, records keep flowing while
/// the broker is restarted twice in the middle of the stream. Every delivery
/// succeeds, and the log holds each record exactly once, in order.
#[test]
fn broker_restart_mid_stream_loses_nothing_and_duplicates_nothing() {
    let mut broker = Broker::start();
    let addr = broker.addr();
    let rt = common::runtime();
    let n: usize = 20_000;
    let producer = rt.block_on(async {
        let admin = Admin::new(ClientConfig::new(&addr)).expect("admin");
        admin
            .create_topics(&[NewTopic::new("restart", 2)])
            .await
            .expect("create")[0]
            .clone()
            .expect("created");
        let mut config = ProducerConfig::new(&addr);
        config.batch_size = 2048;
        config.linger = Duration::from_millis(1);
        config.client.request_timeout = Duration::from_secs(5);
        Producer::new(config).await.expect("producer")
    });
    let producer_task = rt.spawn(async move {
        let mut deliveries = Vec::with_capacity(n);
        for i in 0..n {
            let r =
                ProducerRecord::new("restart", format!("{i:08}")).with_key(format!("k{}", i % 10));
            deliveries.push(producer.send(r).await?);
            if i % 200 == 0 {
                // Spread the stream over time so the restarts land inside it.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut offsets = Vec::with_capacity(n);
        for d in deliveries {
            offsets.push(d.await?);
        }
        producer.close().await;
        Ok::<_, klog_client::ProduceError>(offsets)
    });
    // Restart while the producer is sending.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !producer_task.is_finished(),
            "the stream ended before the restart: the test would prove nothing"
        );
        broker.restart();
    }
    run(Duration::from_secs(120), async {
        let delivered = tokio::time::timeout(Duration::from_secs(100), producer_task).await???;
        ensure!(delivered.len() == n);
        let mut consumer = Consumer::new({
            let mut c = ConsumerConfig::new(&addr);
            c.auto_offset_reset = klog_client::AutoOffsetReset::Earliest;
            c
        })?;
        consumer.assign([
            TopicPartition::new("restart", 0),
            TopicPartition::new("restart", 1),
        ]);
        let mut seen = Vec::new();
        while seen.len() < n {
            let batch = consumer.poll(Duration::from_secs(10)).await?;
            ensure!(
                !batch.is_empty(),
                "only {} of {n} records in the log",
                seen.len()
            );
            seen.extend(batch);
        }
        ensure!(
            consumer.poll(Duration::from_millis(500)).await?.is_empty(),
            "duplicates"
        );
        let values: BTreeSet<String> = seen
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or(&[])).into_owned())
            .collect();
        ensure!(
            values.len() == n,
            "{} distinct of {} records",
            values.len(),
            seen.len()
        );
        // Per key, records are in send order (idempotence keeps order across retries).
        for p in [0, 1] {
            let mut last: std::collections::HashMap<Vec<u8>, String> = Default::default();
            for r in seen.iter().filter(|r| r.partition == p) {
                let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or(&[])).into_owned();
                let key = r.key.as_deref().unwrap_or(&[]).to_vec();
                if let Some(prev) = last.insert(key, v.clone()) {
                    ensure!(prev < v, "out of order: {prev} before {v}");
                }
            }
        }
        // Delivery reports agree with the log.
        for m in &delivered {
            let r = seen
                .iter()
                .find(|r| r.partition == m.partition && r.offset == m.offset);
            ensure!(r.is_some(), "reported offset {m:?} not in the log");
        }
        Ok(())
    });
    drop(rt);
}

/// With the broker gone, deliveries fail with a retriable error once
/// delivery.timeout.ms has passed instead of hanging, and flush returns.
#[test]
fn deliveries_fail_after_delivery_timeout_when_the_broker_is_gone() {
    let mut broker = Broker::start();
    let addr = broker.addr();
    let rt = common::runtime();
    let producer = rt.block_on(async {
        let admin = Admin::new(ClientConfig::new(&addr)).expect("admin");
        admin
            .create_topics(&[NewTopic::new("gone", 1)])
            .await
            .expect("create")[0]
            .clone()
            .expect("created");
        let mut config = ProducerConfig::new(&addr);
        config.delivery_timeout = Duration::from_millis(1500);
        config.client.request_timeout = Duration::from_millis(500);
        let producer = Producer::new(config).await.expect("producer");
        producer
            .send(ProducerRecord::new("gone", "before"))
            .await
            .expect("send")
            .await
            .expect("delivered while the broker is up");
        producer
    });
    broker.stop();
    run(Duration::from_secs(30), async move {
        let started = tokio::time::Instant::now();
        let d = producer.send(ProducerRecord::new("gone", "after")).await?;
        let result = d.await;
        let err = match result {
            Ok(m) => anyhow::bail!("delivered with no broker: {m:?}"),
            Err(e) => e,
        };
        ensure!(err.is_retriable(), "{err}");
        ensure!(
            started.elapsed() >= Duration::from_millis(1400),
            "failed before delivery.timeout.ms: {err}"
        );
        tokio::time::timeout(Duration::from_secs(5), producer.flush()).await?;
        Ok(())
    });
    drop(rt);
}

/// Dropping every handle of a producer without `close` still delivers what was
/// sent (lingering batches go out at once), and the sender task then ends.
#[test]
fn dropping_the_producer_delivers_what_was_sent() {
    let broker = Broker::start();
    run(Duration::from_secs(30), async {
        let addr = broker.addr();
        let mut config = ProducerConfig::new(&addr);
        // Far longer than the test: only the drop can send this batch.
        config.linger = Duration::from_secs(3600);
        let producer = Producer::new(config).await?;
        let d = producer.send(ProducerRecord::new("dropped", "x")).await?;
        drop(producer);
        let meta = tokio::time::timeout(Duration::from_secs(10), d).await??;
        ensure!(meta.offset == 0, "{meta:?}");
        Ok(())
    });
}
