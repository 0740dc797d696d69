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
        "index.interval.bytes", "max.message.bytes", "message.timestamp.type",
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

