//! Request handlers called directly on a broker opened in a temporary dir: what
//! each answers where Kafka's answer is something real clients check (issue 16).
//! The same behaviours are exercised through real clients over the wire in
//! `tests/compat/test_client_checks.py`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use klog_broker::handlers::DirectRequest;
use klog_broker::node::Node;
use klog_broker::policy::{CreateTopicPolicy, NewTopic};
use klog_broker::{Broker, BrokerConfig};
use klog_codec::protocol::ResponseError;
use klog_codec::protocol::StrBytes;
use klog_codec::protocol::messages::ApiKey;
use klog_codec::protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use klog_codec::protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use klog_codec::protocol::messages::metadata_request::MetadataRequestTopic;
use klog_codec::protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use klog_codec::protocol::messages::{
    BrokerId, CreateTopicsRequest, FindCoordinatorRequest, GroupId, ListOffsetsRequest,
    MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use klog_codec::protocol::produce::{ProduceData, ProducePartitionData, ProduceTopicData};
use klog_codec::{BatchBuilder, Compression};

/// A single-node configuration with its data in `dir`.
fn config(dir: &std::path::Path) -> BrokerConfig {
    let pairs: Vec<(String, String)> = [
        ("log.dirs", dir.display().to_string()),
        ("offsets.topic.num.partitions", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    BrokerConfig::from_pairs(pairs).expect("config").0
}

/// A one-node cluster in `dir`.
async fn node(dir: &std::path::Path) -> Arc<Node> {
    Node::start(config(dir)).await.expect("node")
}

/// Creates a topic through CreateTopics; the error code and message on refusal.
async fn create(
    b: &Broker,
    name: &str,
    partitions: i32,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let req = CreateTopicsRequest::default()
        .with_validate_only(validate_only)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k))
                                .with_value(Some(StrBytes::from_string(v)))
                        })
                        .collect(),
                ),
        ]);
    let r = &b.create_topics(&req).await.topics[0];
    match r.error_code {
        0 => Ok(()),
        c => Err((c, r.error_message.as_deref().unwrap_or("").to_owned())),
    }
}

/// A one-node cluster in `dir` with the topic `name` of `partitions` partitions.
async fn node_with_topic(dir: &std::path::Path, name: &str, partitions: i32) -> Arc<Node> {
    let n = node(dir).await;
    create(n.broker(), name, partitions, BTreeMap::new(), false)
        .await
        .expect("create");
    n
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// OffsetCommit (protocol guide; Kafka's KafkaApis.handleOffsetCommitRequest):
/// partitions missing from the metadata get UNKNOWN_TOPIC_OR_PARTITION and are not
/// stored, the others are committed as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commit_refuses_partitions_that_do_not_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node_with_topic(dir.path(), "t", 2).await;
    let b = n.broker();
    // `__consumer_offsets` loads in the background; until then COORDINATOR_LOAD_IN_PROGRESS.
    b.groups().loaded().await;
    let part = |index, offset| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset)
    };
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![part(0, 5), part(2, 6), part(1, 7)]),
            OffsetCommitRequestTopic::default()
                .with_name(topic_name("missing"))
                .with_partitions(vec![part(0, 8)]),
        ]);
    let resp = b.groups().offset_commit(&req, 7).await;
    let answers: Vec<(String, i32, i16)> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        answers,
        vec![
            ("t".to_owned(), 0, 0),
            ("t".to_owned(), 2, unknown),
            ("t".to_owned(), 1, 0),
            ("missing".to_owned(), 0, unknown),
        ]
    );
    let fetched = b.groups().offset_fetch(
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(None),
        5,
    );
    let stored: Vec<(String, i32, i64)> = fetched
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    assert_eq!(stored, vec![("t".to_owned(), 0, 5), ("t".to_owned(), 1, 7)]);
    assert!(
        b.topic("missing").is_none(),
        "a commit never creates a topic"
    );
}

/// FindCoordinator (KIP-98 key types): groups (0) are coordinated by this node; a
/// transaction coordinator (1) does not exist, answered with the non-retriable
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED and a message saying why, so clients fail
/// at once; any other key type is INVALID_REQUEST, as from Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_coordinator_has_no_transaction_coordinator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path()).await;
    let b = n.broker();
    let find = |key_type: i8| {
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("k"))
            .with_key_type(key_type);
        async move { b.groups().find_coordinator(&req, 2).await }
    };
    let group = find(0).await;
    assert_eq!((group.error_code, group.node_id.0), (0, 1));
    let txn = find(1).await;
    assert_eq!(
        (txn.error_code, txn.node_id.0),
        (ResponseError::TransactionalIdAuthorizationFailed.code(), -1)
    );
    let message = txn.error_message.expect("message");
    assert!(
        message.contains("does not support transactions"),
        "{message}"
    );
    assert_eq!(
        find(2).await.error_code,
        ResponseError::InvalidRequest.code()
    );
}

/// ListOffsets with timestamp -3 (KIP-734): the record with the largest timestamp
/// (the first of equal ones), from v7 only, the version Kafka introduced it in; an
/// empty partition answers offset and timestamp -1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_max_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node_with_topic(dir.path(), "t", 2).await;
    let b = n.broker();
    let topic = b.topic("t").expect("topic");
    let partition = topic.partition(0).expect("partition 0");
    // Batches of records with their own create times: 0-2, 3-4, 5-6.
    for stamps in [&[10, 70, 30][..], &[50, 70], &[60, 20]] {
        let mut builder = BatchBuilder::new(Vec::new(), Compression::Zstd);
        for &ts in stamps {
            builder
                .push(ts, Some(b"k".as_slice()), Some(b"v".as_slice()), &[])
                .expect("push");
        }
        let mut batch = builder.finish().expect("batch");
        partition.append(&mut batch, 1_000).expect("append");
    }
    let req = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(
                (0..2)
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(-3)
                    })
                    .collect(),
            ),
    ]);
    let answers = |version| {
        let call = DirectRequest::new(ApiKey::ListOffsets, version);
        b.list_offsets(&call.ctx(), &req).topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.offset, p.timestamp))
            .collect::<Vec<_>>()
    };
    assert_eq!(answers(7), vec![(0, 1, 70), (0, -1, -1)]);
    let unsupported = ResponseError::UnsupportedVersion.code();
    assert_eq!(
        answers(5),
        vec![(unsupported, -1, -1), (unsupported, -1, -1)]
    );
}

/// Produce to a compacted topic (KIP-467): a batch with keyless records is refused
/// whole with INVALID_RECORD; from v8 the response names each keyless record by
/// its index in the batch and carries an error message; v7 has no such fields.
#[tokio::test]
async fn produce_names_the_records_that_caused_a_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path()).await;
    let b = n.broker();
    let mut compact = BTreeMap::new();
    compact.insert("cleanup.policy".to_owned(), "compact".to_owned());
    create(b, "c", 1, compact, false).await.expect("create");
    let produce = |version| {
        let mut builder = BatchBuilder::new(Vec::new(), Compression::Lz4);
        for key in [Some(b"a".as_slice()), None, Some(b"c"), None] {
            builder.push(1, key, Some(b"v"), &[]).expect("push");
        }
        let records = BytesMut::from(&builder.finish().expect("batch")[..]);
        let data = ProduceData {
            acks: 1,
            timeout_ms: 1000,
            topics: vec![ProduceTopicData {
                name: "c".to_owned(),
                partitions: vec![ProducePartitionData {
                    index: 0,
                    records: Some(records),
                }],
            }],
            ..ProduceData::default()
        };
        async move {
            let call = DirectRequest::new(ApiKey::Produce, version);
            b.produce(&call.ctx(), data).await
        }
    };
    let v8 = produce(8).await.expect("acks=1 answers");
    let p = &v8.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1, 3]);
    let message = p.record_errors[0]
        .batch_index_error_message
        .as_deref()
        .expect("record message");
    assert!(
        message.contains("without key in topic partition c-0"),
        "{message}"
    );
    let top = p.error_message.as_deref().expect("error message");
    assert!(top.contains("2 record errors"), "{top}");
    let v7 = produce(7).await.expect("acks=1 answers");
    let p = &v7.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
    assert!(p.record_errors.is_empty() && p.error_message.is_none());
    assert_eq!(
        b.topic("c")
            .expect("topic")
            .partition(0)
            .expect("partition")
            .high_watermark(),
        0
    );
}

/// CreateTopics with `assignments` (Kafka's CreateTopicsRequest): the partitions
/// come from the assignment, which must name existing brokers
/// (INVALID_REPLICA_ASSIGNMENT) and come without a partition count or replication
/// factor (INVALID_REQUEST).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_with_manual_assignment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path()).await;
    let b = n.broker();
    let topic = |name: &str, partitions: i32, assigned: &[&[i32]]| {
        CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_assignments(
                assigned
                    .iter()
                    .zip(0..)
                    .map(|(brokers, index)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(index)
                            .with_broker_ids(brokers.iter().map(|&id| BrokerId(id)).collect())
                    })
                    .collect(),
            )
    };
    let req = CreateTopicsRequest::default().with_topics(vec![
        topic("ok", -1, &[&[1], &[1], &[1]]),
        topic("unknown-broker", -1, &[&[1], &[2]]),
        topic("with-count", 2, &[&[1], &[1]]),
    ]);
    let errors: Vec<i16> = b
        .create_topics(&req)
        .await
        .topics
        .iter()
        .map(|t| t.error_code)
        .collect();
    assert_eq!(
        errors,
        vec![
            0,
            ResponseError::InvalidReplicaAssignment.code(),
            ResponseError::InvalidRequest.code()
        ]
    );
    assert_eq!(b.topic("ok").expect("created").partitions.len(), 3);
    assert!(b.topic("unknown-broker").is_none() && b.topic("with-count").is_none());
}

/// ApiVersions v3 feature levels (KIP-584): `metadata.version` 1 (Kafka's
/// `3.0-IV1`) supported and finalized; `transaction.version` (0..0) left out below
/// v4 (KAFKA-17492) and never finalized (KIP-1022); the finalized epoch is the
/// offset of the broker's metadata image, as in Kafka's KRaft mode, so it moves
/// with every metadata change (see `klog_broker::features`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_reports_feature_levels_at_the_image_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path()).await;
    let b = n.broker();
    let supported = |version| -> Vec<(String, i16, i16)> {
        b.api_versions(0, version)
            .supported_features
            .iter()
            .map(|f| (f.name.to_string(), f.min_version, f.max_version))
            .collect()
    };
    assert_eq!(supported(3), vec![("metadata.version".to_owned(), 1, 1)]);
    assert_eq!(
        supported(4),
        vec![
            ("metadata.version".to_owned(), 1, 1),
            ("transaction.version".to_owned(), 0, 0)
        ]
    );

    let before = b.api_versions(0, 3);
    let offset = b.image().offset;
    assert!(offset > 0, "a started node has applied its registration");
    assert_eq!(before.finalized_features_epoch, offset as i64);
    let finalized: Vec<(String, i16, i16)> = before
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
        .collect();
    assert_eq!(finalized, vec![("metadata.version".to_owned(), 1, 1)]);

    create(b, "features-epoch", 1, BTreeMap::new(), false)
        .await
        .expect("created");
    let after = b.api_versions(0, 3);
    assert!(after.finalized_features_epoch > before.finalized_features_epoch);
    assert_eq!(after.finalized_features_epoch, b.image().offset as i64);
    assert_eq!(after.finalized_features, before.finalized_features);
}

/// KIP-108's create topic policy: every topic a client creates passes it first,
/// by CreateTopics (validate-only too) or auto-creation; a refusal is
/// POLICY_VIOLATION with the policy's message. The broker's own
/// `__consumer_offsets` is not shown to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_policy_refuses_with_policy_violation() {
    struct TeamPrefix;
    impl CreateTopicPolicy for TeamPrefix {
        fn validate(&self, topic: &NewTopic<'_>) -> Result<(), String> {
            match topic.name.split_once('.') {
                Some(("billing", _)) if topic.partitions <= 4 => Ok(()),
                Some(("billing", _)) => Err("at most 4 partitions".to_owned()),
                _ => Err(format!("{}: topics are named billing.<name>", topic.name)),
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let n = Node::start_with_policy(config(dir.path()), Some(Box::new(TeamPrefix)))
        .await
        .expect("node");
    let b = n.broker();
    assert!(b.topic("__consumer_offsets").is_some());
    let violation = ResponseError::PolicyViolation.code();
    assert_eq!(
        create(b, "billing.invoices", 4, BTreeMap::new(), false).await,
        Ok(())
    );
    let refused = create(b, "orders", 1, BTreeMap::new(), true)
        .await
        .expect_err("validate_only is checked too");
    assert_eq!(refused.0, violation);
    assert!(refused.1.contains("billing.<name>"), "{}", refused.1);
    assert_eq!(
        create(b, "billing.big", 8, BTreeMap::new(), false)
            .await
            .map_err(|e| e.0),
        Err(violation)
    );
    // Auto-creation (Metadata for an unknown topic) goes through it as well.
    let call = DirectRequest::new(ApiKey::Metadata, 8);
    let meta = b
        .metadata(
            &call.ctx(),
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name("orders"))),
                ]))
                .with_allow_auto_topic_creation(true),
        )
        .await;
    assert_eq!(meta.topics[0].error_code, violation);
    assert!(b.topic("orders").is_none() && b.topic("billing.big").is_none());
}
