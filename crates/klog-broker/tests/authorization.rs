//! The authorizer seam: every handler asks the request context's authorizer
//! what Kafka's handlers ask (operation, resource) and answers a refusal with
//! Kafka's error code, doing nothing else for what it refused. Checked with an
//! authorizer that allows only what a test lists, against a real single node.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use klog_broker::BrokerConfig;
use klog_broker::handlers::DirectRequest;
use klog_broker::node::Node;
use klog_broker::security::{Authorizer, Operation, Resource, ResourceType, Session};
use klog_codec::protocol::client::decode_response;
use klog_codec::protocol::fetch::FetchPart;
use klog_codec::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use klog_codec::protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use klog_codec::protocol::messages::metadata_request::MetadataRequestTopic;
use klog_codec::protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use klog_codec::protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeGroupsRequest, FetchRequest, GroupId,
    HeartbeatRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
    OffsetFetchRequest, TopicName,
};
use klog_codec::protocol::produce::{ProduceData, ProducePartitionData, ProduceTopicData};
use klog_codec::protocol::{ResponseError, StrBytes};
use klog_codec::{BatchBuilder, Compression};
use klog_storage::FileRegion;

/// Allows exactly the (operation, resource type, name) triples it holds, and
/// records every question it was asked.
#[derive(Debug, Default)]
struct Listed {
    allowed: BTreeSet<(u8, u8, String)>,
    asked: Mutex<Vec<(Operation, ResourceType, String)>>,
}

impl Listed {
    fn allow(mut self, op: Operation, kind: ResourceType, name: &str) -> Self {
        self.allowed.insert((op as u8, kind as u8, name.to_owned()));
        self
    }
}

impl Authorizer for Listed {
    fn authorize(&self, _: &Session, op: Operation, resource: Resource<'_>) -> bool {
        self.asked
            .lock()
            .expect("lock")
            .push((op, resource.kind, resource.name.to_owned()));
        self.allowed
            .contains(&(op as u8, resource.kind as u8, resource.name.to_owned()))
    }
}

async fn node(dir: &std::path::Path) -> Arc<Node> {
    let pairs = [
        ("log.dirs".to_owned(), dir.display().to_string()),
        ("offsets.topic.num.partitions".to_owned(), "1".to_owned()),
    ];
    let config = BrokerConfig::from_pairs(pairs.to_vec()).expect("config").0;
    let n = Node::start(config).await.expect("node");
    for name in ["open", "secret"] {
        n.broker().create_topic(name, 1, 1).await.expect("create");
    }
    // The offsets partition loads in the background; group answers wait for it.
    n.broker().groups().loaded().await;
    n
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn produce_data(topics: &[&str]) -> ProduceData {
    let mut builder = BatchBuilder::new(Vec::new(), Compression::None);
    builder.push(1, Some(b"k"), Some(b"v"), &[]).expect("push");
    let batch = builder.finish().expect("batch");
    ProduceData {
        acks: 1,
        timeout_ms: 1000,
        topics: topics
            .iter()
            .map(|t| ProduceTopicData {
                name: (*t).to_owned(),
                partitions: vec![ProducePartitionData {
                    index: 0,
                    records: Some(BytesMut::from(&batch[..])),
                }],
            })
            .collect(),
        ..ProduceData::default()
    }
}

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;

/// Produce needs WRITE on each topic: a refused topic gets
/// TOPIC_AUTHORIZATION_FAILED and nothing is appended to it; the allowed one is
/// written (KafkaApis.handleProduceRequest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_writes_only_to_topics_the_principal_may_write() {
    assert_eq!(ResponseError::TopicAuthorizationFailed.code(), TOPIC_DENIED);
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path()).await;
    let b = n.broker();
    let auth = Listed::default().allow(Operation::Write, ResourceType::Topic, "open");
    let call = DirectRequest::new(ApiKey::Produce, 8);
    let resp = b
        .produce(&call.ctx_with(&auth), produce_data(&["open", "secret"]))
        .await
        .expect("acks=1 answers");
    let codes: Vec<(String, i16)> = resp
        .responses
        .iter()
        .map(|t| (t.name.0.to_string(), t.partition_responses[0].error_code))
        .collect();
    assert_eq!(
        codes,
        vec![("open".to_owned(), 0), ("secret".to_owned(), TOPIC_DENIED)]
    );
    let log_end = |t: &str| {
        b.replicas()
            .partition(t, 0)
            .expect("hosted")
            .log()
            .log_end_offset()
    };
    assert_eq!((log_end("open"), log_end("secret")), (1, 0));
}

/// Fetch needs READ on each topic: a refused topic's partitions get
/// TOPIC_AUTHORIZATION_FAILED and no records, the allowed one is read; a follower's
/// fetch needs CLUSTER_ACTION (KafkaApis.handleFetchRequest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_reads_only_topics_the_principal_may_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path()).await;
    let b = n.broker();
    let call = DirectRequest::new(ApiKey::Produce, 8);
    b.produce(&call.ctx(), produce_data(&["open", "secret"]))
        .await
        .expect("acks=1 answers");
    let fetch = |replica: i32| {
        FetchRequest::default()
            .with_replica_id(BrokerId(replica))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(
                ["open", "secret"]
                    .iter()
                    .map(|t| {
                        FetchTopic::default()
                            .with_topic(topic_name(t))
                            .with_partitions(vec![
                                FetchPartition::default()
                                    .with_partition(0)
                                    .with_partition_max_bytes(1 << 20),
                            ])
                    })
                    .collect(),
            )
    };
    // Decodes the parts (bytes and file regions) as a client would read them.
    let decode = |call: &DirectRequest, parts: Vec<FetchPart<FileRegion>>| {
        let mut frame = Vec::new();
        for part in parts {
            match part {
                FetchPart::Bytes(bytes) => frame.extend_from_slice(&bytes),
                FetchPart::Region(region, _) => region.read_into(&mut frame).expect("read"),
            }
        }
        let body = Bytes::from(frame).slice(4..);
        decode_response::<FetchRequest>(body, call.header().api_version)
            .expect("decodes")
            .1
    };
    let auth = Listed::default().allow(Operation::Read, ResourceType::Topic, "open");
    let call = DirectRequest::new(ApiKey::Fetch, 11);
    let resp = decode(&call, b.fetch(&call.ctx_with(&auth), &fetch(-1)).await);
    let by_topic: Vec<(String, i16, bool)> = resp
        .responses
        .iter()
        .map(|t| {
            let p = &t.partitions[0];
            (
                t.topic.0.to_string(),
                p.error_code,
                p.records.as_ref().is_some_and(|r| !r.is_empty()),
            )
        })
        .collect();
    assert_eq!(
        by_topic,
        vec![
            ("open".to_owned(), 0, true),
            ("secret".to_owned(), TOPIC_DENIED, false)
        ]
    );
    // A follower's fetch without CLUSTER_ACTION is refused on every partition.
    let resp = decode(&call, b.fetch(&call.ctx_with(&auth), &fetch(2)).await);
    let codes: Vec<i16> = resp
        .responses
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(codes, vec![CLUSTER_DENIED, CLUSTER_DENIED]);
}

/// Metadata lists only describable topics: all topics asked for leaves the
/// others out, a topic asked for by name gets TOPIC_AUTHORIZATION_FAILED, and an
/// unknown topic is not auto-created without CREATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_shows_only_describable_topics_and_creates_only_with_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path()).await;
    let b = n.broker();
    let auth = Listed::default()
        .allow(Operation::Describe, ResourceType::Topic, "open")
        .allow(Operation::Describe, ResourceType::Topic, "new");
    let call = DirectRequest::new(ApiKey::Metadata, 8);
    let all = b
        .metadata(
            &call.ctx_with(&auth),
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    let names: Vec<String> = all
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, vec!["open".to_owned()]);
    let named = b
        .metadata(
            &call.ctx_with(&auth),
            &MetadataRequest::default()
                .with_topics(Some(
                    ["secret", "new"]
                        .iter()
                        .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                        .collect(),
                ))
                .with_allow_auto_topic_creation(true),
        )
        .await;
    let codes: Vec<i16> = named.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![TOPIC_DENIED, ResponseError::UnknownTopicOrPartition.code()]
    );
    assert!(b.image().topic("new").is_none(), "created without CREATE");
}

/// ListOffsets needs DESCRIBE on the topic; InitProducerId IDEMPOTENT_WRITE on
/// the cluster; DescribeCluster DESCRIBE on the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_producer_ids_and_cluster_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path()).await;
    let b = n.broker();
    let deny_all = Listed::default();
    let call = DirectRequest::new(ApiKey::ListOffsets, 5);
    let req = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic_name("open"))
            .with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ]),
    ]);
    let resp = b.list_offsets(&call.ctx_with(&deny_all), &req);
    assert_eq!(resp.topics[0].partitions[0].error_code, TOPIC_DENIED);
    let call = DirectRequest::new(ApiKey::InitProducerId, 1);
    let resp = b
        .init_producer_id(
            &call.ctx_with(&deny_all),
            &InitProducerIdRequest::default().with_transactional_id(None),
        )
        .await;
    assert_eq!((resp.error_code, resp.producer_id.0), (CLUSTER_DENIED, -1));
    let call = DirectRequest::new(ApiKey::DescribeCluster, 0);
    let resp = b.describe_cluster(
        &call.ctx_with(&deny_all),
        &DescribeClusterRequest::default(),
    );
    assert_eq!(resp.error_code, CLUSTER_DENIED);
    assert!(resp.brokers.is_empty());
    // With the rights, the same requests succeed.
    let allow = Listed::default()
        .allow(Operation::Describe, ResourceType::Topic, "open")
        .allow(
            Operation::IdempotentWrite,
            ResourceType::Cluster,
            "kafka-cluster",
        )
        .allow(Operation::Describe, ResourceType::Cluster, "kafka-cluster");
    let call = DirectRequest::new(ApiKey::ListOffsets, 5);
    assert_eq!(
        b.list_offsets(&call.ctx_with(&allow), &req).topics[0].partitions[0].error_code,
        0
    );
    let call = DirectRequest::new(ApiKey::InitProducerId, 1);
    let resp = b
        .init_producer_id(
            &call.ctx_with(&allow),
            &InitProducerIdRequest::default().with_transactional_id(None),
        )
        .await;
    assert_eq!(resp.error_code, 0);
    assert!(resp.producer_id.0 >= 0);
}

/// Group APIs: READ on the group to take part in it, DESCRIBE to describe it or
/// fetch its offsets; topics of an OffsetFetch filtered by DESCRIBE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_apis_check_the_group_and_its_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path()).await;
    let b = n.broker();
    let deny_all = Listed::default();
    let call = DirectRequest::new(ApiKey::Heartbeat, 3);
    let resp = b.heartbeat(
        &call.ctx_with(&deny_all),
        &HeartbeatRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))),
    );
    assert_eq!(resp.error_code, GROUP_DENIED);
    let call = DirectRequest::new(ApiKey::DescribeGroups, 4);
    let auth = Listed::default().allow(Operation::Describe, ResourceType::Group, "g");
    let resp = b.describe_groups(
        &call.ctx_with(&auth),
        &DescribeGroupsRequest::default().with_groups(vec![
            GroupId(StrBytes::from_static_str("h")),
            GroupId(StrBytes::from_static_str("g")),
        ]),
    );
    let answers: Vec<(String, i16)> = resp
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.error_code))
        .collect();
    assert_eq!(answers[0], ("h".to_owned(), GROUP_DENIED));
    assert_eq!(answers[1].0, "g");
    assert_ne!(answers[1].1, GROUP_DENIED);
    let call = DirectRequest::new(ApiKey::OffsetFetch, 5);
    let auth = Listed::default()
        .allow(Operation::Describe, ResourceType::Group, "g")
        .allow(Operation::Describe, ResourceType::Topic, "open");
    let resp = b.offset_fetch(
        &call.ctx_with(&auth),
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name("open"))
                    .with_partition_indexes(vec![0]),
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name("secret"))
                    .with_partition_indexes(vec![0]),
            ])),
    );
    assert_eq!(resp.error_code, 0);
    let by_topic: Vec<(String, i16)> = resp
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions[0].error_code))
        .collect();
    assert!(by_topic.contains(&("open".to_owned(), 0)), "{by_topic:?}");
    assert!(
        by_topic.contains(&("secret".to_owned(), TOPIC_DENIED)),
        "{by_topic:?}"
    );
    // OffsetFetch v1 has no top-level error: a refused group is refused on every
    // partition asked for, in a response that encodes at v1 (a top-level error
    // code would not, and a client must not read "nothing committed").
    let call = DirectRequest::new(ApiKey::OffsetFetch, 1);
    let v1 = b.offset_fetch(
        &call.ctx_with(&deny_all),
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name("open"))
                    .with_partition_indexes(vec![0, 1]),
            ])),
    );
    assert_eq!(v1.error_code, 0);
    let codes: Vec<i16> = v1.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![GROUP_DENIED, GROUP_DENIED]);
    klog_codec::protocol::encode_response(call.header(), &v1).expect("encodes at v1");
    // The authorizer was asked about the group, then each topic.
    let asked = auth.asked.lock().expect("lock").clone();
    assert_eq!(
        asked.first(),
        Some(&(Operation::Describe, ResourceType::Group, "g".to_owned()))
    );
}
