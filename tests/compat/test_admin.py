"""Admin surface (issue 7) against the real broker binary: topic configs through
DescribeConfigs / AlterConfigs / IncrementalAlterConfigs, CreateTopics validation,
CreatePartitions, DeleteRecords, ListOffsets by time, limits, group details,
DescribeCluster and DescribeLogDirs; driven by kafka-python's admin and clients and
by kcat."""

import subprocess
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.admin._configs import AlterConfigOp
from kafka.errors import (InvalidConfigurationError, InvalidPartitionsError,
                          TopicAlreadyExistsError)


def topic_configs(admin, topic, synonyms=False):
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                 config_filter="all", include_synonyms=synonyms)
    return res["topic"][topic]


def alter(admin, topic, configs, incremental=True, validate_only=False):
    """Sends the request as given (raise_on_unknown=False lets unknown names reach the
    broker) and returns kafka-python's per-resource result: 'OK' or an error string."""
    res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)],
                              validate_only=validate_only, raise_on_unknown=False,
                              incremental=incremental)
    return res["topic"][topic]


def segment_files(broker, topic, partition=0):
    return sorted((broker.data_dir / f"{topic}-{partition}").glob("*.log"))


@pytest.fixture
def admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    yield a
    a.close()


# ---------------------------------------------------------------------------------
# Configs


def test_describe_configs_reports_every_entry_with_source_flags_and_synonyms(broker_factory):
    b = broker_factory(**{"log.retention.hours": "2", "message.max.bytes": "2000000"}).start()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("dc", 1, 1, topic_configs={"segment.ms": "60000"})])
    entries = topic_configs(admin, "dc", synonyms=True)
    assert set(entries) == {
        "cleanup.policy", "compression.type", "flush.messages", "flush.ms",
        "index.interval.bytes", "max.message.bytes", "message.downconversion.enable",
        "message.format.version", "message.timestamp.type",
        "min.insync.replicas", "retention.bytes", "retention.ms", "segment.bytes",
        "segment.index.bytes", "segment.ms"}
    seg = entries["segment.ms"]
    assert seg["value"] == "60000" and seg["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert seg["read_only"] is False and seg["is_sensitive"] is False
    assert [(s["name"], s["source"]) for s in seg["synonyms"]] == [
        ("segment.ms", "DYNAMIC_TOPIC_CONFIG"), ("log.roll.ms", "DEFAULT_CONFIG")]
    ret = entries["retention.ms"]
    assert ret["value"] == str(2 * 3600 * 1000)
    assert ret["config_source"] == "STATIC_BROKER_CONFIG"
    assert [(s["name"], s["value"], s["source"]) for s in ret["synonyms"]] == [
        ("log.retention.hours", "2", "STATIC_BROKER_CONFIG"),
        ("log.retention.ms", "604800000", "DEFAULT_CONFIG")]
    assert entries["max.message.bytes"]["value"] == "2000000"
    assert entries["max.message.bytes"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert entries["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
    assert entries["cleanup.policy"]["config_type"] == "LIST"
    assert entries["retention.ms"]["config_type"] == "LONG"

    res = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")],
                                 config_filter="all", include_synonyms=True)
    be = res["broker"]["1"]
    for key in ("log.retention.ms", "message.max.bytes", "num.partitions", "log.dirs",
                "log.cleanup.policy", "offsets.topic.num.partitions",
                "group.min.session.timeout.ms", "socket.request.max.bytes"):
        assert key in be, key
    assert all(e["read_only"] for e in be.values())
    assert not any(e["is_sensitive"] for e in be.values())
    assert be["message.max.bytes"]["value"] == "2000000"
    assert be["message.max.bytes"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert be["num.partitions"]["config_source"] == "DEFAULT_CONFIG"
    assert be["log.retention.ms"]["synonyms"][0]["name"] == "log.retention.hours"
    # A subset by name.
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "dc",
                                                 ["retention.ms", "segment.ms"])],
                                 config_filter="all")
    assert set(res["topic"]["dc"]) == {"retention.ms", "segment.ms"}
    admin.close()
    assert b.stop() == 0


def test_incremental_alter_configs_set_delete_append_subtract(broker, admin):
    admin.create_topics([NewTopic("inc", 1, 1, topic_configs={"retention.ms": "100000"})])
    assert alter(admin, "inc", {"segment.bytes": "4096",
                                "retention.ms": (AlterConfigOp.DELETE, None)}) == "OK"
    e = topic_configs(admin, "inc")
    assert e["segment.bytes"]["value"] == "4096"
    assert e["segment.bytes"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert e["retention.ms"]["value"] == "604800000"
    assert e["retention.ms"]["config_source"] == "DEFAULT_CONFIG"

    assert alter(admin, "inc", {"cleanup.policy": (AlterConfigOp.APPEND, "compact")}) == "OK"
    assert topic_configs(admin, "inc")["cleanup.policy"]["value"] == "delete,compact"
    assert alter(admin, "inc", {"cleanup.policy": (AlterConfigOp.SUBTRACT, "delete")}) == "OK"
    assert topic_configs(admin, "inc")["cleanup.policy"]["value"] == "compact"
    # APPEND applies to lists only.
    r = alter(admin, "inc", {"retention.ms": (AlterConfigOp.APPEND, "5")})
    assert "InvalidConfigurationError" in r
    # Removing the last item leaves no policy: refused.
    r = alter(admin, "inc", {"cleanup.policy": (AlterConfigOp.SUBTRACT, "compact")})
    assert "InvalidConfigurationError" in r
    assert topic_configs(admin, "inc")["cleanup.policy"]["value"] == "compact"


@pytest.mark.parametrize("incremental", [True, False])
def test_message_format_version_reads_like_kafka(broker, admin, incremental):
    """Issue 32: Kafka reads the first three parts of a 0.x message.format.version
    (the first two of a later one); AlterConfigs refused 0.10.0.0 before."""
    admin.create_topics([NewTopic(f"mfv-{incremental}", 1, 1)])
    topic = f"mfv-{incremental}"
    assert alter(admin, topic, {"message.format.version": "0.10.0.0"},
                 incremental=incremental) == "OK"
    assert topic_configs(admin, topic)["message.format.version"]["value"] == "0.10.0.0"
    assert "InvalidConfigurationError" in alter(
        admin, topic, {"message.format.version": "0.7.0.0"}, incremental=incremental)


@pytest.mark.parametrize("incremental", [True, False])
def test_bad_entry_changes_nothing_in_the_resource(broker, admin, incremental):
    topic = f"atomic-{int(incremental)}"
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"segment.ms": "50000"})])
    before = topic_configs(admin, topic)
    for configs in ({"segment.ms": "70000", "retention.ms": "soon"},
                    {"segment.ms": "70000", "no.such.config": "1"},
                    {"segment.ms": "70000", "message.timestamp.type": "Now"},
                    {"segment.ms": "70000", "segment.bytes": "-3"}):
        r = alter(admin, topic, configs, incremental=incremental)
        assert "InvalidConfigurationError" in r, (configs, r)
        assert topic_configs(admin, topic) == before
    # validate_only checks but does not apply.
    assert alter(admin, topic, {"segment.ms": "70000"}, incremental=incremental,
                 validate_only=True) == "OK"
    assert topic_configs(admin, topic)["segment.ms"]["value"] == "50000"
    # Unknown topic.
    r = alter(admin, "no-such-topic", {"segment.ms": "1"}, incremental=incremental)
    assert "UnknownTopicOrPartition" in r


def test_legacy_alter_configs_replaces_every_override(broker, admin):
    admin.create_topics([NewTopic("legacy", 1, 1, topic_configs={"segment.ms": "50000",
                                                                 "retention.ms": "90000"})])
    # AlterConfigs (not incremental) sets exactly what it is given: send it as-is
    # (the public alter_configs would first copy the other overrides in).
    resource = ConfigResource(ConfigResourceType.TOPIC, "legacy", {"retention.ms": "80000"})
    res = admin._manager.run(admin._send_alter_configs_requests, [resource], False, False)
    assert res["topic"]["legacy"] == "OK"
    e = topic_configs(admin, "legacy")
    assert e["retention.ms"]["value"] == "80000"
    assert e["segment.ms"]["config_source"] == "DEFAULT_CONFIG"


def test_broker_configs_are_read_only(broker, admin):
    res = admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, "1",
                                              {"num.partitions": "3"})],
                              raise_on_unknown=False)
    assert "InvalidRequestError" in res["broker"]["1"]


def test_altered_configs_apply_live_and_survive_restart(broker_factory):
    b = broker_factory().start()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("live", 1, 1)])
    # Live: a small segment.bytes makes the open log roll at the next appends.
    assert alter(admin, "live", {"segment.bytes": "1024", "min.insync.replicas": "1",
                                 "message.timestamp.type": "LogAppendTime",
                                 "cleanup.policy": "compact,delete",
                                 "retention.bytes": "1000000"}) == "OK"
    p = KafkaProducer(bootstrap_servers=b.bootstrap)
    for i in range(20):
        p.send("live", key=b"k%d" % i, value=b"v" * 200, partition=0).get(timeout=20)
    assert len(segment_files(b, "live")) >= 3
    admin.close()
    p.close()
    assert b.stop() == 0
    b2 = broker_factory(data_dir=b.data_dir, port=b.port).start()
    admin = KafkaAdminClient(bootstrap_servers=b2.bootstrap)
    e = topic_configs(admin, "live")
    assert e["segment.bytes"]["value"] == "1024"
    assert e["message.timestamp.type"]["value"] == "LogAppendTime"
    assert e["cleanup.policy"]["value"] == "compact,delete"
    assert e["retention.bytes"]["value"] == "1000000"
    assert {k for k, v in e.items() if v["config_source"] == "DYNAMIC_TOPIC_CONFIG"} == {
        "segment.bytes", "min.insync.replicas", "message.timestamp.type", "cleanup.policy",
        "retention.bytes"}
    # And still applied after the restart.
    n = len(segment_files(b2, "live"))
    p = KafkaProducer(bootstrap_servers=b2.bootstrap)
    for i in range(10):
        p.send("live", key=b"k", value=b"v" * 200, partition=0).get(timeout=20)
    p.close()
    assert len(segment_files(b2, "live")) > n
    # Deleting an override reverts it, and that survives a restart too.
    assert alter(admin, "live", {"segment.bytes": (AlterConfigOp.DELETE, None)}) == "OK"
    admin.close()
    assert b2.stop() == 0
    b3 = broker_factory(data_dir=b.data_dir, port=b.port).start()
    admin = KafkaAdminClient(bootstrap_servers=b3.bootstrap)
    assert topic_configs(admin, "live")["segment.bytes"]["config_source"] == "DEFAULT_CONFIG"
    admin.close()
    assert b3.stop() == 0


def test_create_topics_validates_configs_and_defaults(broker, admin):
    # validate_only: checked, not created.
    admin.create_topics([NewTopic("vo", 2, 1, topic_configs={"retention.ms": "1000"})],
                        validate_only=True)
    assert "vo" not in admin.list_topics()
    assert not (broker.data_dir / "vo-0").exists()
    with pytest.raises(InvalidConfigurationError):
        admin.create_topics([NewTopic("vo", 2, 1, topic_configs={"cleanup.policy": "shred"})],
                            validate_only=True)
    with pytest.raises(InvalidConfigurationError):
        admin.create_topics([NewTopic("vo", 2, 1, topic_configs={"no.such": "1"})])
    assert "vo" not in admin.list_topics()
    # -1 means the broker's num.partitions and default.replication.factor.
    admin.create_topics([NewTopic("defaults", -1, -1)])
    meta = admin.describe_topics(["defaults"])
    assert len(meta[0]["partitions"]) == 1
    assert len(meta[0]["partitions"][0]["replica_nodes"]) == 1
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic("defaults", 1, 1)], validate_only=True)


# ---------------------------------------------------------------------------------
# CreatePartitions


def kcat(broker, *args, input=None, timeout=60):
    cmd = ["kcat", "-b", broker.bootstrap, *args]
    r = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}: {r.stderr.decode(errors='replace')}\n{broker.output()}"
    return r.stdout.decode()


def test_create_partitions_grows_only_and_clients_pick_them_up(broker_factory):
    from kafka.admin import NewPartitions
    b = broker_factory().start()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("grow", 1, 1)])
    # A group consumer subscribed before the change, refreshing metadata often.
    consumer = KafkaConsumer("grow", bootstrap_servers=b.bootstrap, group_id="grow-g",
                             auto_offset_reset="earliest", metadata_max_age_ms=500,
                             consumer_timeout_ms=1000)
    producer = KafkaProducer(bootstrap_servers=b.bootstrap, metadata_max_age_ms=500)
    producer.send("grow", key=b"before", value=b"0").get(timeout=20)

    for bad in (1, 0):  # same count, shrink
        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions({"grow": NewPartitions(bad)})
    # validate_only: nothing created.
    admin.create_partitions({"grow": NewPartitions(3)}, validate_only=True)
    assert not (b.data_dir / "grow-1").exists()
    admin.create_partitions({"grow": NewPartitions(3)})
    assert (b.data_dir / "grow-1").is_dir() and (b.data_dir / "grow-2").is_dir()
    assert len(admin.describe_topics(["grow"])[0]["partitions"]) == 3
    # kcat sees them and can write to the new ones.
    meta = kcat(b, "-L", "-t", "grow")
    assert "3 partitions" in meta, meta
    kcat(b, "-P", "-t", "grow", "-p", "2", input=b"from-kcat\n")

    # The producer picks them up after its metadata refresh: keyed records land in
    # every partition.
    deadline = time.monotonic() + 20
    while len(producer.partitions_for("grow")) < 3:
        assert time.monotonic() < deadline, "producer never saw the new partitions"
        time.sleep(0.2)
    used = {producer.send("grow", key=b"k%d" % i, value=b"x").get(timeout=20).partition
            for i in range(60)}
    assert used == {0, 1, 2}
    producer.close()
    # The consumer rebalances onto the new partitions and reads everything.
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < 62 and time.monotonic() < deadline:
        seen.extend(consumer)
    assert {r.partition for r in seen} == {0, 1, 2}
    assert len(seen) == 62
    assert consumer.assignment() == {TopicPartition("grow", p) for p in range(3)}
    consumer.close()
    admin.close()
    # Persisted.
    assert b.stop() == 0
    b2 = broker_factory(data_dir=b.data_dir, port=b.port).start()
    admin = KafkaAdminClient(bootstrap_servers=b2.bootstrap)
    assert len(admin.describe_topics(["grow"])[0]["partitions"]) == 3
    out = kcat(b2, "-C", "-t", "grow", "-p", "2", "-e", "-q", "-f", "%s\n")
    assert "from-kcat" in out.splitlines()
    admin.close()
    assert b2.stop() == 0


def test_create_partitions_errors(broker, admin):
    from kafka.admin import NewPartitions
    from kafka.errors import InvalidReplicationAssignmentError, UnknownTopicOrPartitionError
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.create_partitions({"nope": NewPartitions(2)})
    admin.create_topics([NewTopic("asg", 1, 1)])
    with pytest.raises(InvalidReplicationAssignmentError):
        admin.create_partitions({"asg": NewPartitions(2, [[7]])})
    admin.create_partitions({"asg": NewPartitions(3, [[1], [1]])})
    assert len(admin.describe_topics(["asg"])[0]["partitions"]) == 3


# ---------------------------------------------------------------------------------
# DeleteRecords, ListOffsets by time, high watermark and log start offset


def consume_all(consumer, expect, timeout=20):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            out.extend(recs)
    return out


def test_delete_records_moves_log_start_and_consumers_reset(broker_factory):
    from kafka.errors import OffsetOutOfRangeError
    b = broker_factory().start()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("dr", 1, 1, topic_configs={"segment.bytes": "2048"})])
    tp = TopicPartition("dr", 0)
    p = KafkaProducer(bootstrap_servers=b.bootstrap)
    for i in range(50):
        p.send("dr", value=b"%03d" % i + b"x" * 100, partition=0).get(timeout=20)
    segments_before = segment_files(b, "dr")
    assert len(segments_before) > 3

    res = admin.delete_records({tp: 20})
    assert res[tp]["low_watermark"] == 20
    # Segments wholly below the new start are gone; the one holding offset 20 stays.
    remaining = segment_files(b, "dr")
    assert 0 < len(remaining) < len(segments_before)
    assert all(int(f.stem) <= 20 for f in remaining[:1])
    assert not (b.data_dir / "dr-0" / f"{0:020d}.log").exists()

    c = KafkaConsumer(bootstrap_servers=b.bootstrap, auto_offset_reset="earliest")
    assert c.beginning_offsets([tp]) == {tp: 20}
    assert c.end_offsets([tp]) == {tp: 50}
    # A read below the log start gets OFFSET_OUT_OF_RANGE, resolved by auto.offset.reset.
    c.assign([tp])
    c.seek(tp, 5)
    recs = consume_all(c, 30)
    assert [r.offset for r in recs] == list(range(20, 50))
    assert recs[0].value.startswith(b"020")
    assert c.highwater(tp) == 50
    c.close()
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, auto_offset_reset="latest")
    c.assign([tp])
    c.seek(tp, 3)
    assert consume_all(c, 1, timeout=3) == []
    p.send("dr", value=b"after", partition=0).get(timeout=20)
    recs = consume_all(c, 1)
    assert [(r.offset, r.value) for r in recs] == [(50, b"after")]
    c.close()
    # kcat reads from the new beginning.
    out = kcat(b, "-C", "-t", "dr", "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o\n")
    assert out.split() == [str(o) for o in range(20, 51)]

    # Beyond the high watermark: OFFSET_OUT_OF_RANGE, nothing changes.
    with pytest.raises(OffsetOutOfRangeError):
        admin.delete_records({tp: 52})
    assert KafkaConsumer(bootstrap_servers=b.bootstrap).beginning_offsets([tp]) == {tp: 20}
    # -1: up to the high watermark.
    assert admin.delete_records({tp: -1})[tp]["low_watermark"] == 51
    admin.close()
    p.close()
    # The new log start survives kill -9 (checkpointed before the answer).
    b.kill()
    b2 = broker_factory(data_dir=b.data_dir, port=b.port).start()
    c = KafkaConsumer(bootstrap_servers=b2.bootstrap)
    assert c.beginning_offsets([tp]) == {tp: 51}
    assert c.end_offsets([tp]) == {tp: 51}
    c.close()
    assert b2.stop() == 0


def test_list_offsets_by_timestamp_is_exact_within_a_batch(broker, admin):
    admin.create_topics([NewTopic("ts", 1, 1)])
    tp = TopicPartition("ts", 0)
    # Ten records in one batch (linger), timestamps 1000, 2000, ... 10000.
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=1000)
    futures = [p.send("ts", value=b"%d" % i, partition=0, timestamp_ms=1000 * (i + 1))
               for i in range(10)]
    p.flush()
    assert {f.get(timeout=20).offset for f in futures} == set(range(10))
    batches = list(__import__("conftest").read_batches(broker.data_dir / "ts-0"))
    assert len(batches) == 1 and batches[0][2] == 10
    # A later batch with older timestamps does not change the answer for them.
    p.send("ts", value=b"late", partition=0, timestamp_ms=500).get(timeout=20)
    p.close()

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    got = c.offsets_for_times({tp: 2500})[tp]
    assert (got.offset, got.timestamp) == (2, 3000)
    got = c.offsets_for_times({tp: 1000})[tp]
    assert (got.offset, got.timestamp) == (0, 1000)
    got = c.offsets_for_times({tp: 10000})[tp]
    assert (got.offset, got.timestamp) == (9, 10000)
    assert c.offsets_for_times({tp: 10001})[tp] is None
    # kcat's offset query (ListOffsets v1 from librdkafka 2.0.2) agrees.
    out = kcat(broker, "-Q", "-t", "ts:0:4500")
    assert "offset 4" in out, out
    # After DeleteRecords the answer is clamped to what still exists.
    admin.delete_records({tp: 5})
    got = c.offsets_for_times({tp: 2500})[tp]
    assert (got.offset, got.timestamp) == (5, 6000)
    assert c.beginning_offsets([tp]) == {tp: 5} and c.end_offsets([tp]) == {tp: 11}
    c.close()


# ---------------------------------------------------------------------------------
# Limits: max.message.bytes / message.max.bytes, compacted topics, LogAppendTime


def end_offset(broker, topic, partition=0):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = TopicPartition(topic, partition)
    off = c.end_offsets([tp])[tp]
    c.close()
    return off


def test_message_size_limits_topic_and_broker(broker_factory):
    from kafka.errors import MessageSizeTooLargeError
    b = broker_factory(**{"message.max.bytes": "3000"}).start()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("small", 1, 1, topic_configs={"max.message.bytes": "1500"}),
                         NewTopic("brokerdefault", 1, 1)])
    p = KafkaProducer(bootstrap_servers=b.bootstrap, retries=0)
    p.send("small", value=b"x" * 1000, partition=0).get(timeout=20)
    with pytest.raises(MessageSizeTooLargeError):
        p.send("small", value=b"x" * 2000, partition=0).get(timeout=20)
    assert end_offset(b, "small") == 1
    # The broker's message.max.bytes is the default for topics without an override.
    p.send("brokerdefault", value=b"x" * 2000, partition=0).get(timeout=20)
    with pytest.raises(MessageSizeTooLargeError):
        p.send("brokerdefault", value=b"x" * 4000, partition=0).get(timeout=20)
    assert end_offset(b, "brokerdefault") == 1
    # Raised live: the same batch now fits.
    assert alter(admin, "small", {"max.message.bytes": "5000"}) == "OK"
    p.send("small", value=b"x" * 2000, partition=0).get(timeout=20)
    assert end_offset(b, "small") == 2
    p.close()
    # kcat (librdkafka) sees MESSAGE_TOO_LARGE as a failed delivery.
    r = subprocess.run(["kcat", "-b", b.bootstrap, "-P", "-t", "brokerdefault", "-p", "0",
                        "-X", "message.max.bytes=1000000"],
                       input=b"y" * 5000 + b"\n", capture_output=True, timeout=60)
    assert b"too large" in r.stderr.lower(), r.stderr
    assert end_offset(b, "brokerdefault") == 1
    admin.close()
    assert b.stop() == 0


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_compacted_topic_refuses_null_keys(broker, admin, codec):
    from kafka.errors import InvalidRecordError
    topic = f"compacted-{codec}"
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0, linger_ms=200,
                      compression_type=codec)
    p.send(topic, key=b"k", value=b"v", partition=0).get(timeout=20)
    # One batch with a keyed and an unkeyed record: refused whole; the unkeyed one
    # is named (KIP-467), the keyed one fails for being in its batch.
    f1 = p.send(topic, key=b"k2", value=b"v2", partition=0)
    f2 = p.send(topic, key=None, value=b"v3", partition=0)
    p.flush()
    with pytest.raises(InvalidRecordError):
        f2.get(timeout=20)
    assert not isinstance(f1.exception, InvalidRecordError) and f1.failed()
    assert end_offset(broker, topic) == 1
    # Tombstones (null value, with key) are fine.
    p.send(topic, key=b"k", value=None, partition=0).get(timeout=20)
    p.close()
    assert end_offset(broker, topic) == 2
    # kcat without -K sends null keys: refused too.
    r = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-p", "0"],
                       input=b"nokey\n", capture_output=True, timeout=60)
    # librdkafka's text for INVALID_RECORD (87).
    assert b"failed to validate record" in r.stderr.lower(), r.stderr
    assert end_offset(broker, topic) == 2
    # A delete-policy topic takes null keys.
    assert alter(admin, topic, {"cleanup.policy": "delete"}) == "OK"
    kcat(broker, "-P", "-t", topic, "-p", "0", input=b"nokey\n")
    assert end_offset(broker, topic) == 3


def test_log_append_time_as_topic_override_and_live(broker, admin):
    admin.create_topics([NewTopic("lat-topic", 1, 1,
                                  topic_configs={"message.timestamp.type": "LogAppendTime"})])
    before = int(time.time() * 1000)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    meta = p.send("lat-topic", value=b"a", partition=0, timestamp_ms=1000).get(timeout=20)
    assert meta.timestamp >= before
    assert alter(admin, "lat-topic", {"message.timestamp.type": "CreateTime"}) == "OK"
    meta = p.send("lat-topic", value=b"b", partition=0, timestamp_ms=1000).get(timeout=20)
    assert meta.timestamp == 1000
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    tp = TopicPartition("lat-topic", 0)
    c.assign([tp])
    recs = consume_all(c, 2)
    c.close()
    assert [(r.timestamp_type, r.timestamp >= before) for r in recs] == [(1, True), (0, False)]
    assert recs[1].timestamp == 1000
    # kcat shows the broker's time for the first record.
    out = kcat(broker, "-C", "-t", "lat-topic", "-p", "0", "-e", "-q", "-f", "%T\n")
    assert int(out.split()[0]) >= before and int(out.split()[1]) == 1000


# ---------------------------------------------------------------------------------
# Group details


def test_commit_metadata_describe_assignments_and_deleted_topic_offsets(broker_factory):
    from kafka.structs import OffsetAndMetadata
    b = broker_factory(**{"group.initial.rebalance.delay.ms": "0"}).start()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("gd", 2, 1), NewTopic("gone", 1, 1)])
    c = KafkaConsumer("gd", bootstrap_servers=b.bootstrap, group_id="gd-group",
                      client_id="gd-client", enable_auto_commit=False,
                      auto_offset_reset="earliest")
    deadline = time.monotonic() + 30
    while len(c.assignment()) < 2:
        assert time.monotonic() < deadline, "no assignment"
        c.poll(timeout_ms=200)
    # DescribeGroups: member, client id, host and the assignment.
    d = admin.describe_groups(["gd-group"])["gd-group"]
    assert d["group_state"] == "Stable"
    [member] = d["members"]
    assert member["client_id"] == "gd-client"
    assert member["client_host"].startswith("/127.0.0.1")
    asg = member["member_assignment"]
    assigned = {(t["topic"], p) for t in asg["assigned_partitions"] for p in t["partitions"]}
    assert assigned == {("gd", 0), ("gd", 1)}
    assert member["member_metadata"]["topics"] == ["gd"]

    # OffsetCommit keeps the metadata string; OffsetFetch returns it.
    c.commit({TopicPartition("gd", 0): OffsetAndMetadata(0, "checkpoint-7", -1),
              TopicPartition("gd", 1): OffsetAndMetadata(0, "", -1)})
    got = c.committed(TopicPartition("gd", 0), metadata=True)
    assert (got.offset, got.metadata) == (0, "checkpoint-7")
    listed = admin.list_group_offsets("gd-group")["gd-group"]
    assert listed[TopicPartition("gd", 0)].metadata == "checkpoint-7"
    assert listed[TopicPartition("gd", 1)].metadata == ""
    c.close()

    # Offsets of a deleted topic disappear from every group, durably.
    p = KafkaProducer(bootstrap_servers=b.bootstrap)
    for _ in range(3):
        p.send("gone", value=b"x", partition=0).get(timeout=20)
    p.close()
    g = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id="gone-group",
                      enable_auto_commit=False)
    g.commit({TopicPartition("gone", 0): OffsetAndMetadata(3, "m", -1)})
    g.close()
    assert TopicPartition("gone", 0) in admin.list_group_offsets("gone-group")["gone-group"]
    admin.delete_topics(["gone"])
    assert admin.list_group_offsets("gone-group")["gone-group"] == {}
    # Its folder is renamed out of service, then removed in the background.
    deadline = time.monotonic() + 30
    while any(e.name.startswith("gone-0") for e in b.data_dir.iterdir()):
        assert time.monotonic() < deadline, sorted(e.name for e in b.data_dir.iterdir())
        time.sleep(0.05)
    assert TopicPartition("gd", 0) in admin.list_group_offsets("gd-group")["gd-group"]
    admin.close()
    assert b.stop() == 0
    b2 = broker_factory(data_dir=b.data_dir, port=b.port).start()
    admin = KafkaAdminClient(bootstrap_servers=b2.bootstrap)
    admin.create_topics([NewTopic("gone", 1, 1)])
    assert admin.list_group_offsets("gone-group")["gone-group"] == {}
    assert admin.list_group_offsets("gd-group")["gd-group"][TopicPartition("gd", 0)].metadata \
        == "checkpoint-7"
    admin.close()
    assert b2.stop() == 0


# ---------------------------------------------------------------------------------
# DescribeCluster, DescribeLogDirs


def test_describe_cluster(broker, admin):
    c = admin.describe_cluster()
    assert c["controller_id"] == 1
    assert c["cluster_id"]
    assert [(x["broker_id"], x["host"], x["port"]) for x in c["brokers"]] == [
        (1, "127.0.0.1", broker.port)]


def test_describe_log_dirs_sizes_per_partition(broker_factory, tmp_path):
    d1, d2 = tmp_path / "dirA", tmp_path / "dirB"
    b = broker_factory(data_dir=d1, **{"log.dirs": f"{d1},{d2}"}).start()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("ld", 4, 1)])
    p = KafkaProducer(bootstrap_servers=b.bootstrap)
    for i in range(4):
        for _ in range(i + 1):
            p.send("ld", value=b"x" * 500, partition=i).get(timeout=20)
    p.close()
    [res] = admin.describe_log_dirs()
    assert res["broker"] == 1
    dirs = {r["log_dir"]: r for r in res["log_dirs"]}
    assert set(dirs) == {str(d1), str(d2)}
    sizes = {}
    for path, r in dirs.items():
        assert r["error_code"] == 0
        for t in r["topics"]:
            for part in t["partitions"]:
                # Reported where the folder is, with the bytes of its segments.
                folder = __import__("pathlib").Path(path) / f"{t['name']}-{part['partition_index']}"
                on_disk = sum(f.stat().st_size for f in folder.glob("*.log"))
                assert part["partition_size"] == on_disk
                assert part["offset_lag"] == 0
                sizes[(t["name"], part["partition_index"])] = part["partition_size"]
    ld = {k[1]: v for k, v in sizes.items() if k[0] == "ld"}
    assert set(ld) == {0, 1, 2, 3}
    assert ld[0] < ld[1] < ld[2] < ld[3]
    # Partitions are spread over both dirs.
    assert all(any(t["name"] == "ld" for t in r["topics"]) for r in dirs.values())
    # Asking for one partition returns just that one.
    [res] = admin.describe_log_dirs({"ld": [2]})
    found = [(t["name"], part["partition_index"]) for r in res["log_dirs"]
             for t in r["topics"] for part in t["partitions"]]
    assert found == [("ld", 2)]
    admin.close()
    assert b.stop() == 0
