//! The admin client's issue-7 operations against the real broker binary:
//! IncrementalAlterConfigs + DescribeConfigs (sources, synonyms, persistence across a
//! restart), CreatePartitions, DeleteRecords + ListOffsets, DescribeLogDirs,
//! DescribeCluster, and group offsets with metadata (OffsetCommit / OffsetFetch).

mod common;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Broker, run};
use klog_client::error::ResponseError;
use klog_client::{
    Admin, AdminError, AlterConfigOp, ClientConfig, CommittedOffset, ConfigEntry, ConfigResource,
    ConfigSource, NewPartitions, NewTopic, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};

async fn admin_with_topic(addr: &str, topic: &str, partitions: i32) -> anyhow::Result<Admin> {
    let mut config = ClientConfig::new(addr);
    config.allow_auto_create_topics = false;
    let admin = Admin::new(config)?;
    for r in admin
        .create_topics(&[NewTopic::new(topic, partitions)])
        .await?
    {
        r?;
    }
    Ok(admin)
}

/// Produces `n` records with timestamps 1000, 1001, ... to one partition.
async fn produce(addr: &str, topic: &str, partition: i32, n: i64) -> anyhow::Result<()> {
    let producer = Producer::new(ProducerConfig::new(addr)).await?;
    for i in 0..n {
        let record = ProducerRecord::new(topic, format!("record-{i}"))
            .with_key(format!("k{i}"))
            .with_partition(partition)
            .with_timestamp(1_000 + i);
        producer.send(record).await?.await?;
    }
    producer.close().await;
    Ok(())
}

async fn topic_config(admin: &Admin, topic: &str, name: &str) -> anyhow::Result<ConfigEntry> {
    admin
        .describe_configs_with(ConfigResource::Topic(topic), None, true)
        .await?
        .into_iter()
        .find(|e| e.name == name)
        .with_context(|| format!("{name} not described"))
}

/// Issue 7, topic configs: SET, APPEND, DELETE and validate_only through
/// IncrementalAlterConfigs; DescribeConfigs shows the source and the synonyms;
/// a bad value is INVALID_CONFIG and changes nothing; a restart keeps the change.
#[test]
fn incremental_alter_configs_set_append_delete_and_persist() {
    let mut broker = Broker::start();
    let addr = broker.addr();
    run(Duration::from_secs(60), async {
        let admin = admin_with_topic(&addr, "cfg", 1).await?;
        let before = topic_config(&admin, "cfg", "retention.ms").await?;
        ensure!(before.source == ConfigSource::Default, "{before:?}");
        ensure!(before.is_default);

        admin
            .incremental_alter_configs(
                ConfigResource::Topic("cfg"),
                &[
                    AlterConfigOp::set("retention.ms", "123456"),
                    AlterConfigOp::append("cleanup.policy", "compact"),
                    AlterConfigOp::set("segment.bytes", "1048576"),
                ],
                false,
            )
            .await?;
        let retention = topic_config(&admin, "cfg", "retention.ms").await?;
        ensure!(
            retention.value.as_deref() == Some("123456"),
            "{retention:?}"
        );
        ensure!(
            retention.source == ConfigSource::DynamicTopic,
            "{retention:?}"
        );
        ensure!(!retention.is_default && !retention.read_only && !retention.is_sensitive);
        // Synonyms: the topic override first, then the broker-level fallbacks.
        let first = retention.synonyms.first().context("no synonyms")?;
        ensure!(
            first.source == ConfigSource::DynamicTopic && first.value.as_deref() == Some("123456"),
            "{:?}",
            retention.synonyms
        );
        ensure!(
            retention.synonyms.len() >= 2
                && retention.synonyms[1..]
                    .iter()
                    .all(|s| s.source != ConfigSource::DynamicTopic),
            "{:?}",
            retention.synonyms
        );
        let policy = topic_config(&admin, "cfg", "cleanup.policy").await?;
        ensure!(
            policy.value.as_deref() == Some("delete,compact"),
            "{policy:?}"
        );

        // validate_only: checked, not applied.
        admin
            .incremental_alter_configs(
                ConfigResource::Topic("cfg"),
                &[AlterConfigOp::set("retention.ms", "999")],
                true,
            )
            .await?;
        let unchanged = topic_config(&admin, "cfg", "retention.ms").await?;
        ensure!(
            unchanged.value.as_deref() == Some("123456"),
            "{unchanged:?}"
        );

        // A bad value fails the whole request and changes nothing.
        let err = admin
            .incremental_alter_configs(
                ConfigResource::Topic("cfg"),
                &[
                    AlterConfigOp::set("retention.ms", "7"),
                    AlterConfigOp::set("segment.bytes", "not-a-number"),
                ],
                false,
            )
            .await
            .expect_err("bad value accepted");
        ensure!(
            matches!(
                err,
                AdminError::Config {
                    error: ResponseError::InvalidConfig,
                    ..
                }
            ),
            "{err:?}"
        );
        ensure!(!err.is_retriable());
        let still = topic_config(&admin, "cfg", "retention.ms").await?;
        ensure!(still.value.as_deref() == Some("123456"), "{still:?}");

        // SUBTRACT and DELETE.
        admin
            .incremental_alter_configs(
                ConfigResource::Topic("cfg"),
                &[
                    AlterConfigOp::subtract("cleanup.policy", "delete"),
                    AlterConfigOp::delete("segment.bytes"),
                ],
                false,
            )
            .await?;
        let policy = topic_config(&admin, "cfg", "cleanup.policy").await?;
        ensure!(policy.value.as_deref() == Some("compact"), "{policy:?}");
        let segment = topic_config(&admin, "cfg", "segment.bytes").await?;
        ensure!(segment.source == ConfigSource::Default, "{segment:?}");
        Ok(())
    });

    broker.restart();
    run(Duration::from_secs(60), async {
        let admin = Admin::new(ClientConfig::new(&addr))?;
        let retention = topic_config(&admin, "cfg", "retention.ms").await?;
        ensure!(
            retention.value.as_deref() == Some("123456")
                && retention.source == ConfigSource::DynamicTopic,
            "after restart: {retention:?}"
        );
        let policy = topic_config(&admin, "cfg", "cleanup.policy").await?;
        ensure!(
            policy.value.as_deref() == Some("compact"),
            "after restart: {policy:?}"
        );
        Ok(())
    });
}

/// Broker configs: described by id, with the static/default sources.
#[test]
fn describe_broker_configs() {
    let broker = Broker::start_with(&["log.retention.ms=100000"]);
    run(Duration::from_secs(60), async {
        let admin = Admin::new(ClientConfig::new(&broker.addr()))?;
        let id = admin.describe_cluster().await?.brokers[0].node_id;
        let entries = admin
            .describe_configs_with(ConfigResource::Broker(id), None, false)
            .await?;
        let retention = entries
            .iter()
            .find(|e| e.name == "log.retention.ms")
            .context("log.retention.ms not described")?;
        ensure!(
            retention.value.as_deref() == Some("100000")
                && retention.source == ConfigSource::StaticBroker,
            "{retention:?}"
        );
        ensure!(
            entries.iter().any(|e| e.source == ConfigSource::Default),
            "no default entries"
        );
        Ok(())
    });
}

/// Issue 7, CreatePartitions: grows, validate_only changes nothing, never shrinks
/// (INVALID_PARTITIONS), and the new partition takes records.
#[test]
fn create_partitions_grows_only() {
    let broker = Broker::start();
    let addr = broker.addr();
    run(Duration::from_secs(60), async {
        let admin = admin_with_topic(&addr, "grow", 1).await?;
        let results = admin
            .create_partitions(&[NewPartitions::increase_to("grow", 5)], true)
            .await?;
        results.into_iter().next().context("no result")??;
        let info = admin.describe_topics(&["grow".to_owned()]).await?;
        ensure!(
            info[0].partitions.len() == 1,
            "validate_only created partitions"
        );

        let results = admin
            .create_partitions(&[NewPartitions::increase_to("grow", 3)], false)
            .await?;
        results.into_iter().next().context("no result")??;
        let info = admin.describe_topics(&["grow".to_owned()]).await?;
        let indexes: Vec<i32> = info[0].partitions.iter().map(|p| p.partition).collect();
        ensure!(indexes == vec![0, 1, 2], "{indexes:?}");

        let results = admin
            .create_partitions(
                &[
                    NewPartitions::increase_to("grow", 2),
                    NewPartitions::increase_to("missing", 4),
                ],
                false,
            )
            .await?;
        match &results[0] {
            Err(AdminError::Topic {
                error: ResponseError::InvalidPartitions,
                ..
            }) => {}
            other => anyhow::bail!("shrink: {other:?}"),
        }
        match &results[1] {
            Err(AdminError::Topic {
                error: ResponseError::UnknownTopicOrPartition,
                ..
            }) => {}
            other => anyhow::bail!("missing topic: {other:?}"),
        }
        produce(&addr, "grow", 2, 3).await?;
        let latest = admin
            .list_offsets(&[TopicPartition::new("grow", 2)], OffsetSpec::Latest)
            .await?;
        ensure!(latest[0].1.as_ref().ok().and_then(|o| o.offset) == Some(3));
        Ok(())
    });
}

/// Issue 7, offsets and time: DeleteRecords moves the log start offset (and -1
/// moves it to the high watermark); ListOffsets reports earliest, latest and the
/// first offset at or after a timestamp, and nothing past the last timestamp.
#[test]
fn delete_records_and_list_offsets() {
    let broker = Broker::start();
    let addr = broker.addr();
    run(Duration::from_secs(60), async {
        let admin = admin_with_topic(&addr, "del", 2).await?;
        produce(&addr, "del", 0, 10).await?;
        produce(&addr, "del", 1, 4).await?;
        let p0 = TopicPartition::new("del", 0);
        let p1 = TopicPartition::new("del", 1);
        let both = [p0.clone(), p1.clone()];
        let offset = |r: &Result<klog_client::ListedOffset, AdminError>| {
            r.as_ref().ok().and_then(|o| o.offset)
        };

        let earliest = admin.list_offsets(&both, OffsetSpec::Earliest).await?;
        ensure!(offset(&earliest[0].1) == Some(0) && offset(&earliest[1].1) == Some(0));
        let latest = admin.list_offsets(&both, OffsetSpec::Latest).await?;
        ensure!(offset(&latest[0].1) == Some(10) && offset(&latest[1].1) == Some(4));
        let at = admin
            .list_offsets(std::slice::from_ref(&p0), OffsetSpec::Timestamp(1_004))
            .await?;
        let found = at[0].1.clone()?;
        ensure!(
            found.offset == Some(4) && found.timestamp == Some(1_004),
            "{found:?}"
        );
        let after = admin
            .list_offsets(std::slice::from_ref(&p0), OffsetSpec::Timestamp(5_000))
            .await?;
        ensure!(after[0].1.clone()?.offset.is_none(), "{after:?}");

        let deleted = admin
            .delete_records(&[(p0.clone(), 6), (p1.clone(), -1)])
            .await?;
        ensure!(deleted[0].0 == p0 && deleted[1].0 == p1);
        ensure!(matches!(deleted[0].1, Ok(6)), "{deleted:?}");
        ensure!(matches!(deleted[1].1, Ok(4)), "{deleted:?}");
        let earliest = admin.list_offsets(&both, OffsetSpec::Earliest).await?;
        ensure!(
            offset(&earliest[0].1) == Some(6) && offset(&earliest[1].1) == Some(4),
            "{earliest:?}"
        );

        // Past the high watermark: OFFSET_OUT_OF_RANGE, not retriable; the log start
        // stays. An unknown partition is UNKNOWN_TOPIC_OR_PARTITION.
        let bad = admin
            .delete_records(&[(p0.clone(), 11), (TopicPartition::new("del", 7), 0)])
            .await?;
        match &bad[0].1 {
            Err(
                e @ AdminError::Partition {
                    error: ResponseError::OffsetOutOfRange,
                    ..
                },
            ) => ensure!(!e.is_retriable()),
            other => anyhow::bail!("past the high watermark: {other:?}"),
        }
        ensure!(
            matches!(
                bad[1].1,
                Err(AdminError::Partition {
                    error: ResponseError::UnknownTopicOrPartition,
                    ..
                })
            ),
            "{bad:?}"
        );
        let earliest = admin.list_offsets(&[p0], OffsetSpec::Earliest).await?;
        ensure!(offset(&earliest[0].1) == Some(6), "{earliest:?}");
        Ok(())
    });
}

/// Issue 7, DescribeLogDirs: the broker's log dir, with a size per partition that
/// grows when records are written; the topic filter leaves other topics out.
#[test]
fn describe_log_dirs_reports_sizes() {
    let broker = Broker::start();
    let addr = broker.addr();
    let dir = broker.dir.path().canonicalize().expect("dir");
    run(Duration::from_secs(60), async {
        let admin = admin_with_topic(&addr, "sized", 2).await?;
        admin_with_topic(&addr, "other", 1).await?;
        produce(&addr, "sized", 1, 20).await?;
        let id = admin.brokers().await?[0].node_id;
        let dirs = admin
            .describe_log_dirs(id, Some(&["sized".to_owned()]))
            .await?;
        ensure!(dirs.len() == 1, "{dirs:?}");
        let d = &dirs[0];
        ensure!(d.error.is_none(), "{d:?}");
        ensure!(
            std::path::Path::new(&d.path).canonicalize()? == dir,
            "{} is not {}",
            d.path,
            dir.display()
        );
        let sizes: Vec<(i32, i64)> = d
            .replicas
            .iter()
            .map(|r| {
                ensure!(r.partition.topic == "sized", "{r:?}");
                ensure!(!r.is_future && r.offset_lag == 0, "{r:?}");
                Ok((r.partition.partition, r.size))
            })
            .collect::<anyhow::Result<_>>()?;
        ensure!(sizes.len() == 2 && sizes[1].0 == 1, "{sizes:?}");
        ensure!(sizes[1].1 > 20 * 10, "20 records in {} bytes", sizes[1].1);
        ensure!(sizes[0].1 == 0, "nothing written to partition 0: {sizes:?}");

        let all = admin.describe_log_dirs(id, None).await?;
        ensure!(
            all[0].replicas.iter().any(|r| r.partition.topic == "other"),
            "{all:?}"
        );
        Ok(())
    });
}

/// Issue 7, DescribeCluster: the cluster id, this node as controller and broker.
#[test]
fn describe_cluster_names_the_node() {
    let broker = Broker::start();
    run(Duration::from_secs(60), async {
        let admin = Admin::new(ClientConfig::new(&broker.addr()))?;
        let c = admin.describe_cluster().await?;
        ensure!(
            c.cluster_id.as_deref().is_some_and(|id| !id.is_empty()),
            "{c:?}"
        );
        ensure!(c.brokers.len() == 1, "{c:?}");
        let b = &c.brokers[0];
        ensure!(
            b.host == "127.0.0.1" && b.port == i32::from(broker.port),
            "{b:?}"
        );
        ensure!(c.controller_id == Some(b.node_id), "{c:?}");
        // Metadata agrees on the broker.
        ensure!(admin.brokers().await? == c.brokers);
        Ok(())
    });
}

/// Issue 7, group details: offsets committed outside a generation (as
/// kafka-consumer-groups --reset-offsets does) keep their metadata strings, and
/// OffsetFetch returns them (protocol guide: OffsetCommit
/// `committed_metadata`); group lag is computed from them.
#[test]
fn group_offsets_keep_metadata() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    let addr = broker.addr();
    run(Duration::from_secs(60), async {
        let admin = admin_with_topic(&addr, "grp", 2).await?;
        produce(&addr, "grp", 0, 5).await?;
        let offsets = vec![
            CommittedOffset {
                partition: TopicPartition::new("grp", 0),
                offset: 3,
                leader_epoch: None,
                metadata: Some("checkpoint-a".to_owned()),
            },
            CommittedOffset {
                partition: TopicPartition::new("grp", 1),
                offset: 0,
                leader_epoch: None,
                metadata: Some(String::new()),
            },
        ];
        for (tp, r) in admin.alter_group_offsets("g1", &offsets).await? {
            r.with_context(|| format!("commit {tp}"))?;
        }
        let committed = admin.committed_offsets("g1").await?;
        ensure!(committed.len() == 2, "{committed:?}");
        ensure!(committed[0].partition == offsets[0].partition);
        ensure!(committed[0].offset == 3);
        ensure!(
            committed[0].metadata.as_deref() == Some("checkpoint-a"),
            "{committed:?}"
        );
        ensure!(committed[1].offset == 0);
        ensure!(
            admin.group_offsets("g1").await?
                == vec![
                    (TopicPartition::new("grp", 0), 3),
                    (TopicPartition::new("grp", 1), 0)
                ]
        );
        let lag = admin.group_lag("g1").await?;
        ensure!(lag[0].lag == Some(2), "{lag:?}");
        Ok(())
    });
}
