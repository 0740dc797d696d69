//! The node starts every background duty itself: a program that starts a `Node`
//! and never serves the client listener (an embedder, a test) still gets time-based
//! flushes, retention and checkpoints. (They used to be started by the listener's
//! `run`, so such a node never checkpointed.)

use std::time::{Duration, Instant};

use bytes::BytesMut;
use klog_broker::BrokerConfig;
use klog_broker::handlers::DirectRequest;
use klog_broker::node::Node;
use klog_codec::protocol::messages::ApiKey;
use klog_codec::protocol::produce::{ProduceData, ProducePartitionData, ProduceTopicData};
use klog_codec::{BatchBuilder, Compression};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_client_listener_writes_its_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pairs = [
        ("log.dirs", dir.path().display().to_string()),
        ("offsets.topic.num.partitions", "1".to_owned()),
        ("log.flush.scheduler.interval.ms", "50".to_owned()),
        ("log.flush.offset.checkpoint.interval.ms", "100".to_owned()),
    ];
    let config = BrokerConfig::from_pairs(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<Vec<_>>(),
    )
    .expect("config")
    .0;
    let node = Node::start(config).await.expect("node");
    let b = node.broker();
    b.create_topic("t", 1, 1).await.expect("create");
    let mut builder = BatchBuilder::new(Vec::new(), Compression::None);
    for _ in 0..3 {
        builder.push(1, Some(b"k"), Some(b"v"), &[]).expect("push");
    }
    let batch = builder.finish().expect("batch");
    let call = DirectRequest::new(ApiKey::Produce, 8);
    let resp = b
        .produce(
            &call.ctx(),
            ProduceData {
                acks: 1,
                timeout_ms: 1000,
                topics: vec![ProduceTopicData {
                    name: "t".to_owned(),
                    partitions: vec![ProducePartitionData {
                        index: 0,
                        records: Some(BytesMut::from(&batch[..])),
                    }],
                }],
                ..ProduceData::default()
            },
        )
        .await
        .expect("acks=1 answers");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    // The high watermark (3) reaches the replication checkpoint on the node's
    // own maintenance schedule.
    let file = dir.path().join("replication-offset-checkpoint");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.lines().any(|l| l == "t 0 3") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint with t 0 3 within 20 s: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.shutdown().await.expect("shutdown");
}
