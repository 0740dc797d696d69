//! The metadata quorum with real processes (issue 13): three `klog-broker` nodes
//! on 127.0.0.1, every one broker and controller, started and crashed by pid.
//!
//! - Placement is the seed's rule: partition i's replica j on broker
//!   ((i + j) mod n) of the sorted live brokers; RF above the brokers is refused.
//! - Admin requests through any broker reach the active controller and are
//!   answered once that broker's image has them; every node's Metadata and
//!   DescribeCluster name that node as the controller.
//! - Killing the active controller elects another; the killed node comes back
//!   and catches up.
//! - Producer ids are unique across brokers (AllocateProducerIds blocks).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{eventually, live_brokers, run, serial};
use klog_client::{
    Admin, AdminError, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use klog_codec::protocol::StrBytes;
use klog_codec::protocol::messages::{InitProducerIdRequest, MetadataRequest};
use klog_test_support::cluster::Cluster;

/// Settings that keep failure detection quick in tests.
const FAST: &[&str] = &[
    "broker.session.timeout.ms=3000",
    "broker.heartbeat.interval.ms=300",
    "offsets.topic.num.partitions=3",
];

#[test]
fn three_nodes_place_by_the_seed_rule_and_survive_losing_the_controller() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, FAST);
    let bootstrap = cluster.bootstrap();
    let first = cluster.node(1).addr();
    let third = cluster.node(3).addr();
    // Phase 1: placement and forwarding, with every node up.
    run(Duration::from_secs(90), async {
        let admin = Admin::new(ClientConfig::new(&bootstrap))?;
        live_brokers(&admin, 3, Duration::from_secs(20)).await?;
        // Each node names itself as the controller (a live broker that forwards
        // admin requests, as Kafka's KRaft brokers do), whichever node is the
        // quorum leader; asked until its own image lists it.
        for n in 1..=3 {
            let only = Admin::new(ClientConfig::new(&cluster.node(n).addr()))?;
            eventually(
                Duration::from_secs(20),
                &format!("node {n} naming itself as the controller"),
                || async {
                    only.describe_cluster()
                        .await
                        .is_ok_and(|c| c.controller_id == Some(n) && c.brokers.len() == 3)
                },
            )
            .await?;
        }
        // Created through node 3 (whichever node the controller is).
        let via_third = Admin::new(ClientConfig::new(&third))?;
        via_third
            .create_topics(&[NewTopic::new("spread", 6)])
            .await?[0]
            .clone()?;
        let mut replicated = NewTopic::new("replicated", 3);
        replicated.replication_factor = 3;
        via_third.create_topics(&[replicated]).await?[0].clone()?;
        let mut too_many = NewTopic::new("too-many", 1);
        too_many.replication_factor = 4;
        let refused = via_third.create_topics(&[too_many]).await?[0].clone();
        ensure!(
            matches!(&refused, Err(AdminError::Topic { error, .. })
                if *error == klog_codec::protocol::ResponseError::InvalidReplicationFactor),
            "{refused:?}"
        );
        // Node 3 answered once its image applied the topics, so its Metadata has
        // them now; node 1's image catches up from the quorum (at once, or a
        // moment later).
        let topics = ["spread".to_owned(), "replicated".to_owned()];
        let on_first = Admin::new(ClientConfig::new(&first))?;
        eventually(
            Duration::from_secs(20),
            "node 1's image has the topics",
            || {
                let on_first = &on_first;
                let topics = &topics;
                async move { on_first.describe_topics(topics).await.is_ok() }
            },
        )
        .await?;
        for addr in [&first, &third] {
            let a = Admin::new(ClientConfig::new(addr))?;
            let topics = a
                .describe_topics(&["spread".to_owned(), "replicated".to_owned()])
                .await?;
            let leaders: Vec<i32> = topics[0].partitions.iter().map(|p| p.leader).collect();
            ensure!(
                leaders == vec![1, 2, 3, 1, 2, 3],
                "spread leaders {leaders:?} from {addr}"
            );
            let replicas: Vec<Vec<i32>> = topics[1]
                .partitions
                .iter()
                .map(|p| p.replicas.clone())
                .collect();
            ensure!(
                replicas == vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
                "replicated replicas {replicas:?} from {addr}"
            );
        }
        // RF 1 topics are served by their leaders: a record to every partition.
        let producer = Producer::new(ProducerConfig::new(&bootstrap)).await?;
        for p in 0..6 {
            producer
                .send(ProducerRecord::new("spread", format!("v{p}")).with_partition(p))
                .await?
                .await?;
        }
        producer.close().await;
        let mut consumer = Consumer::new({
            let mut c = ConsumerConfig::new(&bootstrap);
            c.auto_offset_reset = klog_client::AutoOffsetReset::Earliest;
            c
        })?;
        consumer.assign((0..6).map(|p| TopicPartition::new("spread", p)));
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < 6 {
            ensure!(Instant::now() < deadline, "read {} of 6", seen.len());
            for r in consumer.poll(Duration::from_secs(2)).await? {
                seen.insert(
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or(&[])).into_owned(),
                );
            }
        }
        // Producer ids are unique cluster-wide (AllocateProducerIds blocks).
        let mut ids = BTreeSet::new();
        for n in 1..=3 {
            let addr = format!("127.0.0.1:{}", cluster_port(&bootstrap, n));
            let conn = klog_client::conn::Connection::connect(
                &addr,
                Some(StrBytes::from_static_str("test")),
                Duration::from_secs(5),
                Duration::from_secs(30),
            )
            .await?;
            let meta = conn
                .send(&MetadataRequest::default().with_topics(Some(Vec::new())))?
                .await?;
            ensure!(
                i32::try_from(n).is_ok_and(|n| meta.controller_id.0 == n),
                "Metadata from node {n} names {} as the controller",
                meta.controller_id.0
            );
            for _ in 0..3 {
                let resp = conn
                    .send(
                        &InitProducerIdRequest::default()
                            .with_transactional_id(None)
                            .with_transaction_timeout_ms(60_000),
                    )?
                    .await?;
                ensure!(
                    resp.error_code == 0,
                    "InitProducerId error {}",
                    resp.error_code
                );
                ensure!(
                    ids.insert(resp.producer_id.0),
                    "producer id {} given twice",
                    resp.producer_id.0
                );
            }
        }
        Ok(())
    });

    // Phase 2: crash the active controller (the quorum leader; Metadata's
    // controller id names the answering node).
    let controller = run(Duration::from_secs(30), async {
        let admin = Admin::new(ClientConfig::new(&bootstrap))?;
        admin
            .describe_quorum()
            .await?
            .leader_id
            .context("no controller")
    });
    cluster.kill(controller);
    let survivors: Vec<String> = (1..=3)
        .filter(|&n| n != controller)
        .map(|n| cluster.node(n).addr())
        .collect();
    let survivors_bootstrap = survivors.join(",");
    run(Duration::from_secs(90), async {
        let admin = Admin::new(ClientConfig::new(&survivors_bootstrap))?;
        eventually(Duration::from_secs(30), "a new controller", || async {
            admin
                .describe_quorum()
                .await
                .is_ok_and(|q| q.leader_id.is_some_and(|id| id != controller))
                && admin.describe_cluster().await.is_ok_and(|c| {
                    c.controller_id.is_some_and(|id| id != controller) && c.brokers.len() == 2
                })
        })
        .await?;
        // Leadership of the dead node's RF 3 partition moved within the ISR.
        eventually(
            Duration::from_secs(30),
            "leaders off the dead node",
            || async {
                admin
                    .describe_topics(&["replicated".to_owned()])
                    .await
                    .is_ok_and(|t| {
                        t[0].partitions
                            .iter()
                            .all(|p| p.leader != controller && p.leader >= 1)
                    })
            },
        )
        .await?;
        admin.create_topics(&[NewTopic::new("after", 2)]).await?[0].clone()?;
        Ok(())
    });

    // Phase 3: the crashed node comes back and catches up.
    cluster.restart(controller);
    let back = cluster.node(controller).addr();
    run(Duration::from_secs(60), async {
        let admin = Admin::new(ClientConfig::new(&back))?;
        eventually(
            Duration::from_secs(30),
            "the node back with the new topic",
            || async {
                admin
                    .describe_cluster()
                    .await
                    .is_ok_and(|c| c.brokers.len() == 3)
                    && admin
                        .describe_topics(&["after".to_owned()])
                        .await
                        .is_ok_and(|t| t[0].partitions.len() == 2)
            },
        )
        .await?;
        Ok(())
    });
}

/// The client port of node `n` in a bootstrap list (nodes in id order).
fn cluster_port(bootstrap: &str, n: usize) -> u16 {
    bootstrap
        .split(',')
        .nth(n - 1)
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .expect("port")
}

/// A node refuses to start with contradictory cluster settings, naming the key.
#[test]
fn contradictory_cluster_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "node.id=4",
                "controller.quorum.voters=1@127.0.0.1:1,2@127.0.0.1:2",
                "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:2",
            ],
            "controller.quorum.voters",
        ),
        (
            &[
                "node.id=1",
                "controller.quorum.voters=1@127.0.0.1:19999",
                "listeners=PLAINTEXT://127.0.0.1:0",
            ],
            "listeners",
        ),
        (
            &["listeners=PLAINTEXT://127.0.0.1:19998,CONTROLLER://127.0.0.1:19998"],
            "listeners",
        ),
    ];
    for (settings, key) in cases {
        let mut args = vec![format!("--set=log.dirs={}", dir.path().display())];
        args.extend(settings.iter().map(|s| format!("--set={s}")));
        let out = std::process::Command::new(klog_test_support::broker_binary())
            .args(&args)
            .output()
            .expect("run klog-broker");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{settings:?} started");
        assert!(stderr.contains(key), "{settings:?}: {stderr}");
    }
}

/// A broker-only node (`process.roles=broker`) registers with the controllers,
/// receives the metadata log as a learner, and hosts partitions like any broker.
#[test]
fn broker_only_nodes_join_as_learners() {
    let _serial = serial();
    let cluster = Cluster::start_mixed(3, 1, FAST);
    let bootstrap = cluster.bootstrap();
    let broker_only = cluster.node(4).addr();
    run(Duration::from_secs(90), async {
        let admin = Admin::new(ClientConfig::new(&bootstrap))?;
        live_brokers(&admin, 4, Duration::from_secs(20)).await?;
        // Four brokers now: RF 4 is placed, partition 3 led by node 4.
        let mut wide = NewTopic::new("wide", 4);
        wide.replication_factor = 4;
        admin.create_topics(&[wide]).await?[0].clone()?;
        // The broker-only node's own image has it (it receives the metadata log;
        // CreateTopics answers once the quorum commits, so a broker's image may
        // catch up a moment later, as in Kafka).
        let local = Admin::new(ClientConfig::new(&broker_only))?;
        eventually(
            Duration::from_secs(20),
            "node 4's image has wide",
            || async { local.describe_topics(&["wide".to_owned()]).await.is_ok() },
        )
        .await?;
        let topics = local.describe_topics(&["wide".to_owned()]).await?;
        let leaders: Vec<i32> = topics[0].partitions.iter().map(|p| p.leader).collect();
        ensure!(leaders == vec![1, 2, 3, 4], "{leaders:?}");
        let mut narrow = NewTopic::new("narrow", 4);
        narrow.replication_factor = 1;
        local.create_topics(&[narrow]).await?[0].clone()?;
        let producer = Producer::new(ProducerConfig::new(&broker_only)).await?;
        let meta = producer
            .send(ProducerRecord::new("narrow", "on node 4").with_partition(3))
            .await?
            .await?;
        ensure!(meta.offset == 0, "{meta:?}");
        producer.close().await;
        // DescribeQuorum, asked of the broker-only node (which forwards it): three
        // voters with their controller endpoints, node 4 an observer.
        eventually(Duration::from_secs(20), "node 4 observing", || async {
            local
                .describe_quorum()
                .await
                .is_ok_and(|q| q.observers.iter().map(|r| r.node_id).eq([4]))
        })
        .await?;
        let q = local.describe_quorum().await?;
        let voters: Vec<i32> = q.voters.iter().map(|r| r.node_id).collect();
        ensure!(voters == vec![1, 2, 3], "{q:?}");
        ensure!(q.leader_id.is_some_and(|l| voters.contains(&l)), "{q:?}");
        ensure!(q.leader_epoch >= 1 && q.high_watermark > 0, "{q:?}");
        let endpoint_ids: Vec<i32> = q.voter_endpoints.iter().map(|e| e.0).collect();
        ensure!(endpoint_ids == vec![1, 2, 3], "{q:?}");
        let leader = q.voters.iter().find(|r| Some(r.node_id) == q.leader_id);
        ensure!(
            leader.is_some_and(|r| r.log_end_offset >= q.high_watermark),
            "{q:?}"
        );
        Ok(())
    });
}
