"""Behaviours real Kafka clients check, where klog must answer as Kafka does (issue
16): per-record Produce errors, OffsetCommit to partitions that do not exist,
CreateTopics with a manual replica assignment, deprecated topic configs,
ListOffsets for the largest timestamp, and failing fast on transactions (feature
levels in ApiVersions are in test_features.py). Driven by kafka-python and
confluent-kafka (librdkafka 2.16) against the real broker binary; every wait is
bounded."""

import time

import pytest
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException
from confluent_kafka import Producer as CKProducer
from confluent_kafka import TopicPartition as CKTopicPartition
from kafka import KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import (InvalidConfigurationError, NoError, TransactionalIdAuthorizationFailedError,
                          UnknownTopicOrPartitionError)
from kafka.structs import OffsetAndMetadata


@pytest.fixture
def admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    yield a
    a.close()


# ---------------------------------------------------------------------------------
# OffsetCommit to a topic or partition that does not exist (Kafka's KafkaApis checks
# each partition against the metadata before the group coordinator sees it)


def committed(admin, group):
    return {tp: oam.offset for tp, oam in admin.list_group_offsets({group: None})[group].items()}


def test_offset_commit_to_unknown_partitions_is_refused_and_not_stored(broker, admin):
    admin.create_topics([NewTopic("oc", 2, 1)])
    offsets = {
        TopicPartition("oc", 0): OffsetAndMetadata(5, "", -1),
        TopicPartition("oc", 1): OffsetAndMetadata(7, "", -1),
        TopicPartition("oc", 2): OffsetAndMetadata(9, "", -1),  # no such partition
        TopicPartition("oc-missing", 0): OffsetAndMetadata(3, "", -1),  # no such topic
    }
    results = admin.alter_group_offsets("oc-group", offsets)
    assert results == {
        TopicPartition("oc", 0): NoError,
        TopicPartition("oc", 1): NoError,
        TopicPartition("oc", 2): UnknownTopicOrPartitionError,
        TopicPartition("oc-missing", 0): UnknownTopicOrPartitionError,
    }
    assert committed(admin, "oc-group") == {TopicPartition("oc", 0): 5,
                                            TopicPartition("oc", 1): 7}
    # Nothing at all to store: the group is not even created.
    results = admin.alter_group_offsets(
        "oc-none", {TopicPartition("oc-missing", 1): OffsetAndMetadata(1, "", -1)})
    assert results == {TopicPartition("oc-missing", 1): UnknownTopicOrPartitionError}
    assert committed(admin, "oc-none") == {}
    assert "oc-missing" not in admin.list_topics()
    assert not (broker.data_dir / "oc-missing-0").exists()


def test_librdkafka_commit_to_unknown_partition_fails(broker, admin):
    admin.create_topics([NewTopic("oc-rd", 1, 1)])
    c = CKConsumer({"bootstrap.servers": broker.bootstrap, "group.id": "oc-rd-group",
                    "enable.auto.commit": False})
    try:
        with pytest.raises(KafkaException) as raised:
            c.commit(offsets=[CKTopicPartition("oc-rd", 0, 4),
                              CKTopicPartition("oc-rd", 3, 4)], asynchronous=False)
        assert raised.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        got = c.committed([CKTopicPartition("oc-rd", 0), CKTopicPartition("oc-rd", 3)],
                          timeout=10)
        assert [(tp.partition, tp.offset) for tp in got] == [(0, 4), (3, OFFSET_INVALID)]
    finally:
        c.close()


# ---------------------------------------------------------------------------------
# Transactions do not exist: a transactional producer fails at once, saying why,
# instead of retrying COORDINATOR_NOT_AVAILABLE until max.block.ms


def test_librdkafka_transactional_producer_fails_fast(broker):
    p = CKProducer({"bootstrap.servers": broker.bootstrap, "transactional.id": "tx-rd"})
    start = time.monotonic()
    with pytest.raises(KafkaException) as raised:
        p.init_transactions(60)
    assert time.monotonic() - start < 10
    err = raised.value.args[0]
    assert err.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert err.fatal() and not err.retriable()
    assert "klog does not support transactions" in err.str()


def test_kafka_python_transactional_producer_fails_fast(broker):
    start = time.monotonic()
    with pytest.raises(TransactionalIdAuthorizationFailedError):
        p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="tx-kp",
                          max_block_ms=60000)
        try:
            p.init_transactions()
        finally:
            p.close(timeout=5)
    assert time.monotonic() - start < 10
    # Idempotent producers without a transactional id are unaffected.
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
    assert p.send("no-tx", b"v").get(timeout=20).offset == 0
    p.close()


# ---------------------------------------------------------------------------------
# ListOffsets with timestamp -3 (OffsetSpec.max_timestamp, KIP-734, ListOffsets v7):
# the offset and timestamp of the record with the largest timestamp


def test_list_offsets_max_timestamp(broker, admin):
    from confluent_kafka.admin import AdminClient, OffsetSpec as CKOffsetSpec
    from kafka.admin import OffsetSpec

    admin.create_topics([NewTopic("maxts", 2, 1, topic_configs={"segment.bytes": "1024"})])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    # Create times out of order, the largest twice (the first one counts), across
    # several segments; partition 1 stays empty.
    stamps = [1000, 5000, 3000, 9000, 2000, 9000, 4000] + [6000] * 10
    for i, ts in enumerate(stamps):
        p.send("maxts", value=b"v%d" % i + b"x" * 200, partition=0, timestamp_ms=ts).get(timeout=20)
    p.close()
    assert len(list((broker.data_dir / "maxts-0").glob("*.log"))) > 2
    tp0, tp1 = TopicPartition("maxts", 0), TopicPartition("maxts", 1)

    got = admin.list_partition_offsets({tp0: OffsetSpec.MAX_TIMESTAMP,
                                        tp1: OffsetSpec.MAX_TIMESTAMP})
    assert (got[tp0].offset, got[tp0].timestamp) == (3, 9000)
    assert (got[tp1].offset, got[tp1].timestamp) == (-1, -1)

    ck = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = ck.list_offsets({CKTopicPartition("maxts", 0): CKOffsetSpec.max_timestamp()},
                              request_timeout=20)
    info = futures[CKTopicPartition("maxts", 0)].result(timeout=30)
    assert (info.offset, info.timestamp) == (3, 9000)

    # Deleting the records up to the first peak leaves the second one.
    admin.delete_records({tp0: 4})
    got = admin.list_partition_offsets({tp0: OffsetSpec.MAX_TIMESTAMP})
    assert (got[tp0].offset, got[tp0].timestamp) == (5, 9000)


# ---------------------------------------------------------------------------------
# Deprecated topic configs Kafka 3.x still accepts: accepted with a logged
# deprecation warning and no effect, shown by DescribeConfigs


def topic_configs(admin, topic):
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                 config_filter="all")
    return res["topic"][topic]


def test_deprecated_topic_configs_are_accepted_without_effect(broker, admin):
    from confluent_kafka.admin import AdminClient, NewTopic as CKNewTopic
    from kafka.admin._configs import AlterConfigOp

    # CreateTopics, from kafka-python and from librdkafka.
    admin.create_topics([NewTopic("dep", 1, 1, topic_configs={
        "message.format.version": "2.8", "message.downconversion.enable": "false"})])
    ck = AdminClient({"bootstrap.servers": broker.bootstrap})
    ck.create_topics([CKNewTopic("dep-rd", 1, 1,
                                 config={"message.format.version": "0.10.2-IV0"})]
                     )["dep-rd"].result(timeout=30)
    e = topic_configs(admin, "dep")
    assert (e["message.format.version"]["value"],
            e["message.format.version"]["config_source"]) == ("2.8", "DYNAMIC_TOPIC_CONFIG")
    assert e["message.downconversion.enable"]["value"] == "false"
    e = topic_configs(admin, "dep-rd")
    assert e["message.format.version"]["value"] == "0.10.2-IV0"
    assert (e["message.downconversion.enable"]["value"],
            e["message.downconversion.enable"]["config_source"]) == ("true", "DEFAULT_CONFIG")

    # IncrementalAlterConfigs and AlterConfigs.
    res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "dep", {
        "message.format.version": "3.0-IV1",
        "message.downconversion.enable": (AlterConfigOp.DELETE, None)})],
        raise_on_unknown=False, incremental=True)
    assert res["topic"]["dep"] == "OK"
    e = topic_configs(admin, "dep")
    assert e["message.format.version"]["value"] == "3.0-IV1"
    assert e["message.downconversion.enable"]["config_source"] == "DEFAULT_CONFIG"
    resource = ConfigResource(ConfigResourceType.TOPIC, "dep-rd",
                              {"message.downconversion.enable": "false"})
    res = admin._manager.run(admin._send_alter_configs_requests, [resource], False, False)
    assert res["topic"]["dep-rd"] == "OK"
    assert topic_configs(admin, "dep-rd")["message.downconversion.enable"]["value"] == "false"

    # Values are still checked, as by Kafka.
    with pytest.raises(InvalidConfigurationError):
        admin.create_topics([NewTopic("dep-bad", 1, 1,
                                      topic_configs={"message.format.version": "9.9"})])
    res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "dep", {
        "message.downconversion.enable": "maybe"})], raise_on_unknown=False, incremental=True)
    assert "InvalidConfigurationError" in res["topic"]["dep"]

    # No effect: records go in and come back as on any topic.
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    assert p.send("dep", b"v", partition=0).get(timeout=20).offset == 0
    p.close()
    log = broker.output()
    assert "deprecated topic config" in log and "message.format.version" in log


# ---------------------------------------------------------------------------------
# Per-record errors in Produce (KIP-467, Produce v8): a batch refused because of some
# of its records names them in record_errors; clients fail exactly those with
# INVALID_RECORD and the rest of the batch with a "different record" error


def test_librdkafka_fails_only_the_keyless_records_of_a_compacted_topic(broker, admin):
    admin.create_topics([NewTopic("kip467-rd", 1, 1,
                                  topic_configs={"cleanup.policy": "compact"})])
    results = {}
    p = CKProducer({"bootstrap.servers": broker.bootstrap, "linger.ms": 500})
    for i, key in enumerate([b"a", None, b"c", None, b"e"]):
        p.produce("kip467-rd", value=b"v%d" % i, key=key, partition=0,
                  on_delivery=lambda err, msg, i=i: results.__setitem__(i, err))
    assert p.flush(30) == 0
    codes = {i: err.code() for i, err in results.items()}
    assert codes == {0: KafkaError._INVALID_DIFFERENT_RECORD, 1: KafkaError.INVALID_RECORD,
                     2: KafkaError._INVALID_DIFFERENT_RECORD, 3: KafkaError.INVALID_RECORD,
                     4: KafkaError._INVALID_DIFFERENT_RECORD}
    # Nothing of the batch was appended; a batch of keyed records is.
    p.produce("kip467-rd", value=b"ok", key=b"k", partition=0)
    assert p.flush(30) == 0
    lo, hi = CKConsumer({"bootstrap.servers": broker.bootstrap, "group.id": "kip467"}
                        ).get_watermark_offsets(CKTopicPartition("kip467-rd", 0), timeout=10)
    assert (lo, hi) == (0, 1)


def test_kafka_python_fails_only_the_keyless_records_of_a_compacted_topic(broker, admin):
    from kafka.errors import InvalidRecordError, KafkaError as KPKafkaError

    admin.create_topics([NewTopic("kip467-kp", 1, 1,
                                  topic_configs={"cleanup.policy": "compact"})])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=500)
    futures = [p.send("kip467-kp", key=key, value=b"v", partition=0)
               for key in (b"a", None, b"c", None)]
    p.flush(timeout=30)
    errors = [f.exception for f in futures]
    for i in (1, 3):
        assert isinstance(errors[i], InvalidRecordError), errors[i]
        assert "without key in topic partition kip467-kp-0" in str(errors[i])
    for i in (0, 2):
        assert type(errors[i]) is KPKafkaError, errors[i]
        assert "part of a batch which had one more more invalid records" in str(errors[i])
    p.close()


# ---------------------------------------------------------------------------------
# CreateTopics with a manual replica assignment: accepted when it names brokers
# that exist (on one node: every partition on this broker)


def test_create_topics_with_manual_assignment(broker, admin):
    from confluent_kafka.admin import AdminClient, NewTopic as CKNewTopic
    from kafka.errors import InvalidReplicationAssignmentError, InvalidRequestError

    admin.create_topics([NewTopic("asg-kp", replica_assignments={0: [1], 1: [1], 2: [1]})])
    meta = admin.describe_topics(["asg-kp"])[0]
    assert sorted((p["partition_index"], p["leader_id"], p["replica_nodes"])
                  for p in meta["partitions"]) == [
                      (0, 1, [1]), (1, 1, [1]), (2, 1, [1])]
    assert all((broker.data_dir / f"asg-kp-{i}").is_dir() for i in range(3))
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    assert p.send("asg-kp", b"v", partition=2).get(timeout=20).offset == 0
    p.close()

    ck = AdminClient({"bootstrap.servers": broker.bootstrap})
    # librdkafka wants the count given too; it sends -1 with the assignment.
    ck.create_topics([CKNewTopic("asg-rd", 2, replica_assignment=[[1], [1]])]
                     )["asg-rd"].result(timeout=30)
    assert len(ck.list_topics("asg-rd", timeout=10).topics["asg-rd"].partitions) == 2

    # Brokers that do not exist, a broker twice, partitions not 0..n-1.
    for bad in ({0: [7]}, {0: [1], 1: [1, 2]}, {0: [1, 1]}, {0: [1], 2: [1]}):
        with pytest.raises(InvalidReplicationAssignmentError):
            admin.create_topics([NewTopic("asg-bad", replica_assignments=bad)])
    with pytest.raises(KafkaException) as raised:
        ck.create_topics([CKNewTopic("asg-bad", 2, replica_assignment=[[1], [3]])]
                         )["asg-bad"].result(timeout=30)
    assert raised.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT
    # An assignment together with a partition count is INVALID_REQUEST, as in Kafka.
    with pytest.raises(InvalidRequestError):
        admin.create_topics([NewTopic("asg-bad", 2, -1, replica_assignments={0: [1], 1: [1]})])
    assert "asg-bad" not in admin.list_topics()
    assert not list(broker.data_dir.glob("asg-bad-*"))
