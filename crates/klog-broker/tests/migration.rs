//! A data dir from before the metadata quorum (topics in `klog-topics`, producer
//! ids reserved in `producer-id-block`) starts as a one-node cluster with every
//! topic, its overrides, its records and its leader epochs (issue 13). A data dir
//! carries its node's id and cluster id in `meta.properties`: another node's is
//! refused, one from before ids were written is claimed.

use std::collections::BTreeMap;

use klog_broker::BrokerConfig;
use klog_broker::handlers::DirectRequest;
use klog_broker::node::Node;
use klog_broker::topics::{self, TopicMeta};
use klog_codec::protocol::messages::ApiKey;
use klog_codec::protocol::messages::InitProducerIdRequest;
use klog_codec::{BatchBuilder, Compression};
use klog_coordinator::metadata::ConfigResource;
use klog_storage::{Log, LogConfig};

fn batch(value: &[u8]) -> Vec<u8> {
    let mut b = BatchBuilder::new(Vec::new(), Compression::None);
    b.push(1, None, Some(value), &[]).expect("push");
    b.finish().expect("finish")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_data_dir_from_before_the_quorum_keeps_its_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    // What the single-node broker wrote: the topics file, partition logs (one at
    // leader epoch 3), and the producer-id reservation.
    let old = TopicMeta {
        name: "old".to_owned(),
        partitions: 2,
        overrides: BTreeMap::from([("retention.ms".to_owned(), "5000".to_owned())]),
    };
    topics::store(dir.path(), [&old]).expect("topics file");
    for (index, epoch, records) in [(0, 0, 3), (1, 3, 2)] {
        let mut log = Log::open(
            &dir.path().join(format!("old-{index}")),
            LogConfig::default(),
            0,
        )
        .expect("log");
        for i in 0..records {
            log.append(&mut batch(format!("v{i}").as_bytes()), epoch, 1)
                .expect("append");
        }
        log.flush().expect("flush");
        log.close().expect("close");
    }
    std::fs::write(dir.path().join("producer-id-block"), "2000\n").expect("producer ids");

    let pairs = vec![
        ("log.dirs".to_owned(), dir.path().display().to_string()),
        ("offsets.topic.num.partitions".to_owned(), "1".to_owned()),
    ];
    let (config, _) = BrokerConfig::from_pairs(pairs.clone()).expect("config");
    let node = Node::start(config).await.expect("node");
    let image = node.image();
    let t = image.topic("old").expect("topic in the metadata log");
    assert_eq!(t.partitions.len(), 2);
    assert_eq!(
        image.config(&ConfigResource::Topic("old".to_owned()), "retention.ms"),
        Some("5000")
    );
    let b = node.broker();
    for (index, end, epoch) in [(0, 3, 0), (1, 2, 3)] {
        let p = b
            .topic("old")
            .and_then(|t| t.partition(index).cloned())
            .expect("hosted");
        assert!(p.is_leader());
        assert_eq!(p.log().log_end_offset(), end);
        assert_eq!(p.high_watermark(), end);
        // Leading at an epoch no older than the log's own.
        assert!(
            p.leader_epoch() >= epoch,
            "partition {index} at epoch {}",
            p.leader_epoch()
        );
    }
    // Producer ids continue after those the old broker reserved.
    let call = DirectRequest::new(ApiKey::InitProducerId, 0);
    let id = b
        .init_producer_id(
            &call.ctx(),
            &InitProducerIdRequest::default().with_transactional_id(None),
        )
        .await
        .producer_id
        .0;
    assert!(
        id >= 2000,
        "producer id {id} may have been handed out before"
    );
    node.shutdown().await.expect("shutdown");

    // And it all comes back from the metadata log the next time (klog-topics is
    // not read again).
    std::fs::remove_file(dir.path().join(topics::TOPICS_FILE)).expect("remove topics file");
    let (config, _) = BrokerConfig::from_pairs(pairs).expect("config");
    let node = Node::start(config).await.expect("node again");
    let p = node
        .broker()
        .topic("old")
        .and_then(|t| t.partition(1).cloned())
        .expect("hosted again");
    assert!(p.is_leader());
    assert_eq!(p.log().log_end_offset(), 2);
    node.shutdown().await.expect("shutdown");
}

fn config_for(dir: &std::path::Path, node_id: i32) -> klog_broker::BrokerConfig {
    let pairs = vec![
        ("log.dirs".to_owned(), dir.display().to_string()),
        ("node.id".to_owned(), node_id.to_string()),
        ("offsets.topic.num.partitions".to_owned(), "1".to_owned()),
    ];
    BrokerConfig::from_pairs(pairs).expect("config").0
}

fn meta_properties(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("meta.properties")).expect("meta.properties")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_another_node_or_cluster_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(config_for(dir.path(), 2))
        .await
        .expect("node 2");
    node.shutdown().await.expect("shutdown");
    let meta = meta_properties(dir.path());
    assert!(meta.contains("node.id=2\ncluster.id=klog-2\n"), "{meta}");

    // Kafka refuses to start on a log dir whose meta.properties names another node
    // id or cluster id; so does klog.
    let err = Node::start(config_for(dir.path(), 3))
        .await
        .expect_err("node 3 on node 2's data dir");
    let path = dir.path().join("meta.properties");
    assert_eq!(
        err.to_string(),
        format!(
            "opening logs: {}: node.id is 2, but this node's node.id is 3; \
             the log directory belongs to another node or cluster",
            path.display()
        )
    );
    assert_eq!(meta_properties(dir.path()), meta, "left as it was");

    // Node 2's data dir from a cluster serving another cluster id.
    std::fs::write(&path, "version=1\nnode.id=2\ncluster.id=klog-0a1b2c3d\n").expect("write");
    let err = Node::start(config_for(dir.path(), 2))
        .await
        .expect_err("another cluster's data dir");
    assert_eq!(
        err.to_string(),
        format!(
            "opening logs: {}: cluster.id is klog-0a1b2c3d, but this node's cluster.id is klog-2; \
             the log directory belongs to another node or cluster",
            path.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_from_before_node_ids_were_written_is_claimed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // What every broker wrote before: node.id=0 and a generated cluster id, through
    // the same call.
    klog_storage::LogManager::open(&[dir.path().to_path_buf()], |_| LogConfig::default(), 0)
        .expect("old open")
        .shutdown()
        .expect("old shutdown");
    let meta = meta_properties(dir.path());
    assert!(meta.contains("node.id=0\n"), "{meta}");
    assert!(!meta.contains("cluster.id=klog-"), "{meta}");

    let node = Node::start(config_for(dir.path(), 2))
        .await
        .expect("an old data dir still starts");
    node.shutdown().await.expect("shutdown");
    let meta = meta_properties(dir.path());
    assert!(meta.contains("node.id=2\ncluster.id=klog-2\n"), "{meta}");

    // Claimed once: from now on it is node 2's.
    let err = Node::start(config_for(dir.path(), 3))
        .await
        .expect_err("node 3 on the claimed data dir");
    assert!(err.to_string().contains("node.id is 2"), "{err}");
    let node = Node::start(config_for(dir.path(), 2))
        .await
        .expect("node 2 again");
    node.shutdown().await.expect("shutdown");
}
