//! Producer -> real broker -> consumer round trips.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use common::{Broker, run};
use klog_client::{
    Acks, Admin, ClientConfig, Compression, Consumer, ConsumerConfig, NewTopic, Offset,
    OwnedHeader, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};

async fn create_topic(addr: &str, name: &str, partitions: i32) -> anyhow::Result<()> {
    let admin = Admin::new(ClientConfig::new(addr))?;
    for r in admin
        .create_topics(&[NewTopic::new(name, partitions)])
        .await?
    {
        r?;
    }
    Ok(())
}

async fn consume_all(
    addr: &str,
    topic: &str,
    expected: usize,
) -> anyhow::Result<Vec<klog_client::ConsumerRecord>> {
    let mut consumer = Consumer::new(ConsumerConfig::new(addr))?;
    consumer
        .assign_topic(topic, Duration::from_secs(10))
        .await?;
    consumer.seek_to_beginning();
    let mut out = Vec::new();
    while out.len() < expected {
        let batch = consumer.poll(Duration::from_secs(10)).await?;
        ensure!(
            !batch.is_empty(),
            "no records after {} of {expected}",
            out.len()
        );
        out.extend(batch);
    }
    // Nothing more than what was produced.
    let extra = consumer.poll(Duration::from_millis(300)).await?;
    ensure!(extra.is_empty(), "{} unexpected extra records", extra.len());
    Ok(out)
}

/// Every codec: keys, values, null values, headers and timestamps survive the
/// trip, offsets are dense per partition, and delivery reports match what the
/// consumer sees.
#[test]
fn round_trip_with_every_codec() {
    let broker = Broker::start();
    run(Duration::from_secs(120), async {
        let addr = broker.addr();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let topic = format!("rt-{}", codec.name());
            create_topic(&addr, &topic, 3).await?;
            let mut config = ProducerConfig::new(&addr);
            config.compression = codec;
            config.batch_size = 4096;
            let producer = Producer::new(config).await?;
            let n = 2000;
            let mut deliveries = Vec::new();
            for i in 0..n {
                let mut record =
                    ProducerRecord::new(topic.clone(), format!("value-{i}-{}", "x".repeat(i % 50)))
                        .with_key(format!("key-{}", i % 17))
                        .with_timestamp(1_700_000_000_000 + i as i64);
                if i % 100 == 0 {
                    record.value = None;
                    record.headers = vec![OwnedHeader {
                        key: Bytes::from_static(b"h"),
                        value: Some(Bytes::from(format!("{i}"))),
                    }];
                }
                deliveries.push((i, producer.send(record).await?));
            }
            let mut delivered = HashMap::new();
            for (i, d) in deliveries {
                let meta = d
                    .await
                    .with_context(|| format!("delivery {i} with {codec}"))?;
                delivered.insert((meta.partition, meta.offset), i);
                ensure!(meta.timestamp == 1_700_000_000_000 + i as i64);
            }
            producer.close().await;
            ensure!(delivered.len() == n, "{codec}: duplicate offsets reported");

            let records = consume_all(&addr, &topic, n).await?;
            ensure!(records.len() == n);
            let mut last: HashMap<i32, i64> = HashMap::new();
            for r in &records {
                let i = *delivered.get(&(r.partition, r.offset)).with_context(|| {
                    format!("{codec}: unreported record at {}-{}", r.partition, r.offset)
                })?;
                let prev = last.insert(r.partition, r.offset).unwrap_or(-1);
                ensure!(r.offset == prev + 1, "{codec}: offsets not dense");
                ensure!(r.key.as_deref() == Some(format!("key-{}", i % 17).as_bytes()));
                ensure!(r.timestamp == 1_700_000_000_000 + i as i64);
                // Same key, same partition, as the Java client would pick.
                ensure!(
                    r.partition
                        == klog_assign::partition_for_key(format!("key-{}", i % 17).as_bytes(), 3)
                );
                if i % 100 == 0 {
                    ensure!(r.value.is_none(), "{codec}: tombstone lost");
                    ensure!(
                        r.headers.len() == 1
                            && r.headers[0].value.as_deref() == Some(format!("{i}").as_bytes())
                    );
                } else {
                    let want = format!("value-{i}-{}", "x".repeat(i % 50));
                    ensure!(
                        r.value.as_deref() == Some(want.as_bytes()),
                        "{codec}: value {i}"
                    );
                    ensure!(r.headers.is_empty());
                }
            }
        }
        Ok(())
    });
}

/// Without idempotence, acks=1 and acks=0 deliver too; seek by offset and by
/// timestamp land on the right records; max.poll.records caps a poll.
#[test]
fn acks_seek_and_max_poll_records() {
    let broker = Broker::start();
    run(Duration::from_secs(60), async {
        let addr = broker.addr();
        create_topic(&addr, "seek", 1).await?;
        for acks in [Acks::Leader, Acks::None] {
            let mut config = ProducerConfig::new(&addr);
            config.enable_idempotence = false;
            config.acks = acks;
            let producer = Producer::new(config).await?;
            // One record per batch (each awaited before the next): klog's
            // ListOffsets by timestamp answers with batch granularity.
            for i in 0..50 {
                let r = ProducerRecord::new("seek", format!("{i}")).with_timestamp(1_000 + i);
                let m = producer.send(r).await?.await?;
                ensure!((acks == Acks::None) == (m.offset == -1), "{acks:?}: {m:?}");
            }
            producer.close().await;
        }
        // acks=0 records may still be in flight on the socket; wait for them.
        let tp = TopicPartition::new("seek", 0);
        let mut consumer = Consumer::new({
            let mut c = ConsumerConfig::new(&addr);
            c.max_poll_records = 7;
            c
        })?;
        consumer.assign([tp.clone()]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while consumer.offset_for(&tp, Offset::End).await? < 100 {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "acks=0 records missing"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        consumer.seek(&tp, Offset::At(42))?;
        let got = consumer.poll(Duration::from_secs(5)).await?;
        ensure!(got.len() == 7, "max.poll.records: {}", got.len());
        ensure!(got[0].offset == 42 && got[0].value.as_deref() == Some(&b"42"[..]));
        // Timestamps 1000..1049 twice: the first at or after 1030 is offset 30.
        consumer.seek(&tp, Offset::Timestamp(1_030))?;
        let got = consumer.poll(Duration::from_secs(5)).await?;
        ensure!(got[0].offset == 30, "seek to timestamp: {}", got[0].offset);
        consumer.seek(&tp, Offset::End)?;
        let got = consumer.poll(Duration::from_millis(500)).await?;
        ensure!(got.is_empty());
        ensure!(consumer.position(&tp) == Some(100));
        Ok(())
    });
}

/// The consumer as a `Stream` yields records in offset order, and keeps yielding
/// across a broker restart (the fetcher reconnects and resumes at its position).
fn next(
    stream: &mut klog_client::RecordStream,
) -> impl std::future::Future<
    Output = Option<Result<klog_client::ConsumerRecord, klog_client::ConsumeError>>,
> + '_ {
    use futures_core::Stream;
    std::future::poll_fn(move |cx| std::pin::Pin::new(&mut *stream).poll_next(cx))
}

#[test]
fn record_stream_survives_a_broker_restart() {
    let mut broker = Broker::start();
    let addr = broker.addr();
    let rt = common::runtime();
    let produce = |from: usize, to: usize| {
        let addr = addr.clone();
        async move {
            let producer = Producer::new(ProducerConfig::new(&addr)).await?;
            let mut ds = Vec::new();
            for i in from..to {
                ds.push(
                    producer
                        .send(ProducerRecord::new("stream", format!("{i}")))
                        .await?,
                );
            }
            for d in ds {
                d.await?;
            }
            producer.close().await;
            Ok::<_, anyhow::Error>(())
        }
    };
    let mut stream = rt
        .block_on(async {
            create_topic(&addr, "stream", 1).await?;
            produce(0, 100).await?;
            let mut c = ConsumerConfig::new(&addr);
            c.auto_offset_reset = klog_client::AutoOffsetReset::Earliest;
            let mut consumer = Consumer::new(c)?;
            consumer.assign([TopicPartition::new("stream", 0)]);
            Ok::<_, anyhow::Error>(consumer.into_stream())
        })
        .expect("setup");
    rt.block_on(async {
        for i in 0..100 {
            let r = next(&mut stream).await.expect("item").expect("record");
            assert_eq!(
                (r.offset, r.value.as_deref()),
                (i, Some(format!("{i}").as_bytes()))
            );
        }
    });
    broker.restart();
    run(Duration::from_secs(60), async move {
        produce(100, 200).await?;
        for i in 100..200 {
            let r = tokio::time::timeout(Duration::from_secs(20), next(&mut stream))
                .await?
                .context("stream ended")??;
            ensure!(r.offset == i && r.value.as_deref() == Some(format!("{i}").as_bytes()));
        }
        Ok(())
    });
    drop(rt);
}

/// Fetching past the log end gets OFFSET_OUT_OF_RANGE from the broker:
/// auto.offset.reset=earliest restarts at the beginning, `none` reports it as a
/// non-retriable error.
#[test]
fn out_of_range_positions_follow_auto_offset_reset() {
    let broker = Broker::start();
    run(Duration::from_secs(60), async {
        let addr = broker.addr();
        create_topic(&addr, "range", 1).await?;
        let producer = Producer::new(ProducerConfig::new(&addr)).await?;
        for i in 0..10 {
            producer
                .send(ProducerRecord::new("range", format!("{i}")))
                .await?
                .await?;
        }
        producer.close().await;
        let tp = TopicPartition::new("range", 0);

        let mut c = ConsumerConfig::new(&addr);
        c.auto_offset_reset = klog_client::AutoOffsetReset::Earliest;
        let mut consumer = Consumer::new(c)?;
        consumer.assign([tp.clone()]);
        consumer.seek(&tp, Offset::At(1000))?;
        let got = consumer.poll(Duration::from_secs(10)).await?;
        ensure!(!got.is_empty() && got[0].offset == 0, "{got:?}");

        let mut c = ConsumerConfig::new(&addr);
        c.auto_offset_reset = klog_client::AutoOffsetReset::None;
        let mut consumer = Consumer::new(c)?;
        consumer.assign([tp.clone()]);
        consumer.seek(&tp, Offset::At(1000))?;
        match consumer.poll(Duration::from_secs(10)).await {
            Err(e @ klog_client::ConsumeError::Broker { .. }) => ensure!(!e.is_retriable(), "{e}"),
            other => anyhow::bail!("expected OFFSET_OUT_OF_RANGE, got {other:?}"),
        }
        Ok(())
    });
}
