"""Protocol details real clients depend on (KAFKA-COMPAT.md), checked over a raw
socket and with kafka-python's admin client against the real broker binary."""

import socket
import struct
import time

from kafka import KafkaProducer, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import InvalidConfigurationError, InvalidReplicationFactorError


def request(broker, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        return s.recv(size, socket.MSG_WAITALL)


def parse_api_versions_v0(body: bytes):
    corr, error, n = struct.unpack(">ihi", body[:10])
    apis = {}
    for i in range(n):
        key, lo, hi = struct.unpack(">hhh", body[10 + 6 * i:16 + 6 * i])
        apis[key] = (lo, hi)
    return corr, error, apis


def test_api_versions_unknown_version_answers_v0_layout(broker):
    # Trap 1: ApiVersions v4 (kafka-python's first try) uses request header v2.
    payload = struct.pack(">hhih", 18, 4, 123, 6) + b"client" + b"\x00" + b"\x00" * 4
    corr, error, apis = parse_api_versions_v0(request(broker, payload))
    assert corr == 123
    assert error == 35  # UNSUPPORTED_VERSION
    assert apis[18] == (0, 3)


def test_api_versions_ranges(broker):
    payload = struct.pack(">hhih", 18, 0, 5, 1) + b"x"
    corr, error, apis = parse_api_versions_v0(request(broker, payload))
    assert (corr, error) == (5, 0)
    # Trap 2: exact low versions librdkafka 2.0.2 probes for.
    lo, hi = apis[0]
    assert lo == 0 and hi >= 7  # Produce 0 (compression), 3 and 7
    lo, hi = apis[1]
    assert lo <= 2 and hi >= 10  # Fetch 2 (LZ4), 4 and 10 (zstd)
    assert apis[2][0] <= 1 and apis[22][0] == 0
    # Trap 4: Metadata stays below the flexible v9.
    assert apis[3][1] == 8
    # Trap 2: consumer-group versions librdkafka 2.0.2 probes for.
    assert apis[10][0] == 0  # FindCoordinator 0 (also gates its LZ4 feature)
    for key in (11, 12, 13, 14):  # JoinGroup, Heartbeat, LeaveGroup, SyncGroup 0
        assert apis[key][0] == 0
    assert apis[8][0] <= 2 and apis[9][0] <= 1  # OffsetCommit 2, OffsetFetch 1
    # Groups stop below their flexible versions.
    assert apis[8][1] == 7 and apis[9][1] == 5 and apis[11][1] == 5
    # Trap 7: nothing advertised that is not implemented (no SASL, no transactions).
    # Admin APIs stop below their flexible versions too: DeleteRecords 2,
    # DescribeConfigs 4, AlterConfigs 2, CreatePartitions 2, IncrementalAlterConfigs 1.
    # DescribeLogDirs 2, and DescribeCluster (flexible from v0) stops at 1, the
    # version kafka-python's describe_cluster needs.
    assert apis[21] == (0, 1) and apis[37] == (0, 1) and apis[35] == (1, 1)
    assert apis[32] == (1, 3) and apis[33] == (0, 1) and apis[44] == (0, 0)
    assert apis[60] == (0, 1)
    # The cluster (issues 13, 14): OffsetForLeaderEpoch for followers (v3 carries
    # the replica id), ElectLeaders and DescribeQuorum (v2 names the voters'
    # endpoints), run by the active controller.
    assert apis[23] == (2, 3) and apis[43] == (0, 2) and apis[55] == (0, 2)
    assert set(apis) == {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22,
                         23, 32, 33, 35, 37, 42, 43, 44, 47, 55, 60}


def test_api_versions_v3_flexible_request(broker):
    # v3 body: compact strings client_software_name/version, then tagged fields.
    body = b"\x05klog" + b"\x041.0" + b"\x00"
    payload = struct.pack(">hhih", 18, 3, 9, 1) + b"x" + b"\x00" + body
    resp = request(broker, payload)
    corr, error = struct.unpack(">ih", resp[:6])
    assert (corr, error) == (9, 0)


def test_topic_configs_and_describe_configs(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("cfg-topic", 2, 1, topic_configs={
        "retention.ms": "123456", "segment.bytes": "1048576"})])
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg-topic")],
                                 config_filter="all")
    entries = res["topic"]["cfg-topic"]
    assert entries["retention.ms"]["value"] == "123456"
    assert entries["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert entries["segment.bytes"]["value"] == "1048576"
    assert entries["cleanup.policy"]["value"] == "delete"
    assert entries["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
    # The default filter keeps only what was changed.
    modified = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg-topic")])
    assert set(modified["topic"]["cfg-topic"]) == {"retention.ms", "segment.bytes"}
    res = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")],
                                 config_filter="all")
    broker_entries = res["broker"]["1"]
    assert broker_entries["node.id"]["value"] == "1"
    assert broker_entries["log.dirs"]["value"] == str(broker.data_dir)
    assert broker_entries["log.dirs"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert broker_entries["log.dirs"]["read_only"] is True

    try:
        admin.create_topics([NewTopic("bad-cfg", 1, 1, topic_configs={"retention.ms": "soon"})])
        raise AssertionError("invalid config accepted")
    except InvalidConfigurationError:
        pass
    try:
        admin.create_topics([NewTopic("bad-rf", 1, 3)])
        raise AssertionError("replication factor 3 accepted on one node")
    except InvalidReplicationFactorError:
        pass
    assert "bad-cfg" not in admin.list_topics()
    assert "bad-rf" not in admin.list_topics()
    admin.close()


def test_topic_configs_survive_restart(broker_factory):
    b = broker_factory().start()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("kept", 3, 1, topic_configs={"retention.ms": "999999"})])
    admin.close()
    assert b.stop() == 0
    b2 = broker_factory(data_dir=b.data_dir, port=b.port).start()
    admin = KafkaAdminClient(bootstrap_servers=b2.bootstrap)
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kept")])
    assert res["topic"]["kept"]["retention.ms"]["value"] == "999999"
    meta = admin.describe_topics(["kept"])
    assert len(meta[0]["partitions"]) == 3
    admin.close()
    assert b2.stop() == 0


def test_auto_create_can_be_disabled(broker_factory):
    b = broker_factory(**{"auto.create.topics.enable": "false"}).start()
    consumer = KafkaConsumer(bootstrap_servers=b.bootstrap)
    assert not consumer.partitions_for_topic("nope")
    consumer.close()
    assert not (b.data_dir / "nope-0").exists()
    assert b.stop() == 0


def test_log_append_time_topic(broker_factory):
    b = broker_factory(**{"log.message.timestamp.type": "LogAppendTime"}).start()
    before = int(time.time() * 1000)
    p = KafkaProducer(bootstrap_servers=b.bootstrap)
    meta = p.send("lat", value=b"x", partition=0, timestamp_ms=1000).get(timeout=20)
    p.close()
    assert meta.timestamp >= before  # the broker's append time, not the producer's
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, consumer_timeout_ms=3000)
    tp = TopicPartition("lat", 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    records = [r for r in c]
    c.close()
    assert len(records) == 1 and records[0].timestamp >= before
    assert records[0].timestamp_type == 1
    assert b.stop() == 0


def init_producer_id(broker, transactional_id):
    """InitProducerId v1 over a raw socket; returns (error, producer id, epoch)."""
    if transactional_id is None:
        tid = struct.pack(">h", -1)
    else:
        tid = struct.pack(">h", len(transactional_id)) + transactional_id.encode()
    payload = struct.pack(">hhih", 22, 1, 3, 1) + b"x" + tid + struct.pack(">i", 60000)
    resp = request(broker, payload)
    _corr, _throttle, error, pid, epoch = struct.unpack(">iihqh", resp[:20])
    return error, pid, epoch


def test_init_producer_id(broker):
    e1, p1, epoch = init_producer_id(broker, None)
    e2, p2, _ = init_producer_id(broker, None)
    assert (e1, e2, epoch) == (0, 0, 0)
    assert p2 == p1 + 1
    assert init_producer_id(broker, "")[0] == 42  # INVALID_REQUEST, as Kafka
    assert init_producer_id(broker, "txn-1")[0] == 53  # no transactions here
