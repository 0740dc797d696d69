"""Restarts of the real broker: a clean stop, and kill -9 in the middle of a stream
of acknowledged produces. Nothing acknowledged may be lost."""

import threading
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def consume_values(broker, topic, partition=0, timeout=30):
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    got = []
    deadline = time.monotonic() + timeout
    while consumer.position(tp) < end and time.monotonic() < deadline:
        for r in consumer.poll(timeout_ms=500).get(tp, []):
            got.append((r.offset, r.value))
    consumer.close()
    return got


def test_clean_stop_and_restart(broker_factory):
    b = broker_factory().start()
    producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all")
    for i in range(2000):
        producer.send("restart-clean", value=f"m{i}".encode(), partition=0)
    producer.flush()
    producer.close()
    assert b.stop() == 0
    assert (b.data_dir / ".clean-shutdown").exists()

    b2 = broker_factory(data_dir=b.data_dir, port=b.port).start()
    got = consume_values(b2, "restart-clean")
    assert [v for _, v in got] == [f"m{i}".encode() for i in range(2000)]
    assert [o for o, _ in got] == list(range(2000))
    assert b2.stop() == 0


def test_kill_9_during_acknowledged_stream(broker_factory):
    b = broker_factory().start()
    acked = []
    lock = threading.Lock()
    stop = threading.Event()

    def on_ack(value):
        def cb(_meta):
            with lock:
                acked.append(value)
        return cb

    def produce():
        producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks=1, linger_ms=1,
                                 retries=0, max_block_ms=2000, request_timeout_ms=2000)
        i = 0
        while not stop.is_set():
            v = f"acked-{i}".encode()
            try:
                producer.send("restart-kill", value=v, partition=0).add_callback(on_ack(v))
            except Exception:
                break
            i += 1
            if i % 200 == 0:
                time.sleep(0.005)
        try:
            producer.close(timeout=2)
        except Exception:
            pass

    t = threading.Thread(target=produce)
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 5000:
                break
        time.sleep(0.05)
    b.kill()  # kill -9 while the stream is running
    stop.set()
    t.join(timeout=30)
    with lock:
        acknowledged = list(acked)
    assert len(acknowledged) >= 5000, "the stream did not get going"
    assert not (b.data_dir / ".clean-shutdown").exists()

    b2 = broker_factory(data_dir=b.data_dir, port=b.port).start()
    got = consume_values(b2, "restart-kill")
    values = [v for _, v in got]
    stored = set(values)
    missing = [v for v in acknowledged if v not in stored]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    # Offsets stay dense after recovery, and nothing was stored twice.
    assert [o for o, _ in got] == list(range(len(got)))
    assert len(stored) == len(values)
    assert b2.stop() == 0
