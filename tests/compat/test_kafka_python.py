"""kafka-python (PyPI) against the real klog-broker binary."""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from conftest import read_batches


def admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)


def read_all(broker, topic, partitions, expected, timeout=30):
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=2000)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            got.extend(records)
    consumer.close()
    return got


def test_admin_create_and_delete_topic(broker):
    a = admin(broker)
    a.create_topics([NewTopic("py-admin", num_partitions=3, replication_factor=1,
                              topic_configs={"retention.ms": "3600000"})])
    assert "py-admin" in a.list_topics()
    for p in range(3):
        assert (broker.data_dir / f"py-admin-{p}").is_dir()
    with pytest.raises(TopicAlreadyExistsError):
        a.create_topics([NewTopic("py-admin", num_partitions=1, replication_factor=1)])
    a.delete_topics(["py-admin"])
    assert "py-admin" not in a.list_topics()
    for p in range(3):
        assert not (broker.data_dir / f"py-admin-{p}").exists()
    with pytest.raises(UnknownTopicOrPartitionError):
        a.delete_topics(["py-admin"])
    a.close()


def test_idempotent_producer_acks_all_and_assign_seek(broker):
    a = admin(broker)
    a.create_topics([NewTopic("py-idem", num_partitions=3, replication_factor=1)])
    a.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                             enable_idempotence=True, linger_ms=5)
    futures = [producer.send("py-idem", key=f"k{i}".encode(), value=f"v{i}".encode(),
                             headers=[("h", str(i).encode())])
               for i in range(3000)]
    producer.flush()
    metas = [f.get(timeout=30) for f in futures]
    producer.close()
    # Every send acknowledged, offsets dense per partition.
    by_partition = {}
    for m in metas:
        by_partition.setdefault(m.partition, []).append(m.offset)
    for offsets in by_partition.values():
        assert sorted(offsets) == list(range(len(offsets)))
    # The batches were written by an idempotent producer (producer id set).
    for p in by_partition:
        assert list(read_batches(broker.data_dir / f"py-idem-{p}"))

    got = read_all(broker, "py-idem", 3, 3000)
    assert len(got) == 3000
    assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(3000))
    for r in got:
        assert r.key == b"k" + r.value[1:]
        assert r.headers == [("h", r.value[1:])]

    # seek to a specific offset
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    tp = TopicPartition("py-idem", 0)
    consumer.assign([tp])
    total = len(by_partition[0])
    consumer.seek(tp, total - 5)
    records = []
    deadline = time.monotonic() + 20
    while len(records) < 5 and time.monotonic() < deadline:
        records += consumer.poll(timeout_ms=500).get(tp, [])
    consumer.close()
    assert [r.offset for r in records] == list(range(total - 5, total))


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_codecs(broker, codec):
    topic = f"py-{codec}"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec)
    for i in range(500):
        producer.send(topic, key=str(i).encode(), value=(f"payload-{i}-" * 10).encode(),
                      partition=0)
    producer.flush()
    producer.close()
    codec_id = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
    batches = list(read_batches(broker.data_dir / f"{topic}-0"))
    assert {attrs & 7 for _, attrs, _ in batches} == {codec_id}
    got = read_all(broker, topic, 1, 500)
    assert [r.value for r in got] == [(f"payload-{i}-" * 10).encode() for i in range(500)]


def test_list_offsets_earliest_latest(broker):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(42):
        producer.send("py-offsets", value=b"x", partition=0)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = TopicPartition("py-offsets", 0)
    assert consumer.beginning_offsets([tp]) == {tp: 0}
    assert consumer.end_offsets([tp]) == {tp: 42}
    consumer.close()


def test_durable_broker_answers_pipelined_requests_in_order(broker_factory):
    """With an fsync before every acknowledgement (log.flush.interval.messages=1) the
    broker appends a connection's next requests while earlier ones wait for their
    fsync (group commit). kafka-python keeps 5 requests in flight: every record is
    acknowledged once, in send order, at dense offsets, and reads back."""
    b = broker_factory(**{"log.flush.interval.messages": 1}).start()
    n = 3000
    producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks=1, linger_ms=0,
                             batch_size=1024, max_in_flight_requests_per_connection=5,
                             retries=0)
    futures = [producer.send("durable", value=f"v{i}".encode(), partition=0)
               for i in range(n)]
    producer.flush(timeout=60)
    offsets = [f.get(timeout=30).offset for f in futures]
    producer.close(timeout=10)
    assert offsets == list(range(n))
    got = read_all(b, "durable", 1, n)
    assert [r.value for r in got] == [f"v{i}".encode() for i in range(n)]
    assert b.stop() == 0
