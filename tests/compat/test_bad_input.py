"""Bad input over a raw socket against the real broker binary. The broker answers
with the right error code or closes that connection; it never dies, keeps its memory
bounded, keeps serving other clients and stores nothing from bad requests."""

import os
import socket
import struct
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.record.default_records import DefaultRecordBatchBuilder

SERVED = {0: (3, 8), 1: (4, 11), 2: (1, 5), 3: (1, 8), 18: (0, 3), 19: (2, 4),
          20: (1, 3), 22: (0, 1), 32: (1, 2)}


def connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
    s.settimeout(10)
    return s


def closed_by_peer(s, timeout=10.0) -> bool:
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def header(api_key, version, corr=1, client=b"bad"):
    return struct.pack(">hhih", api_key, version, corr, len(client)) + client


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def rss_kib(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def still_serves(broker):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    p.send("healthy", value=b"ok", partition=0).get(timeout=20)
    p.close()


def test_negative_and_huge_sizes_close_the_connection(broker):
    for size in (-1, -2**31, 2**31 - 1, 200 * 1024 * 1024):
        s = connect(broker)
        s.sendall(struct.pack(">i", size) + b"\x00" * 16)
        assert closed_by_peer(s), f"size {size}"
        s.close()
    assert broker.alive()
    assert rss_kib(broker.proc.pid) < 200 * 1024
    still_serves(broker)


def test_random_bytes_truncated_frames_and_unknown_api(broker):
    rng = os.urandom
    for _ in range(50):
        s = connect(broker)
        try:
            s.sendall(rng(200))
        except OSError:
            pass
        s.close()
    # A frame that announces 100 bytes and stops after 10: the broker waits, and the
    # client going away must not hurt it.
    s = connect(broker)
    s.sendall(struct.pack(">i", 100) + b"\x00\x03\x00\x01" + b"\x00" * 6)
    s.close()
    # Unknown API key: closed.
    s = connect(broker)
    s.sendall(frame(header(999, 0) + b"\x00" * 8))
    assert closed_by_peer(s)
    s.close()
    # Known API, version not served: closed.
    s = connect(broker)
    s.sendall(frame(header(3, 42) + b"\x00" * 8))
    assert closed_by_peer(s)
    s.close()
    assert broker.alive()
    still_serves(broker)


@pytest.mark.parametrize("api_key", sorted(SERVED))
def test_lengths_far_beyond_the_frame(broker, api_key):
    """Array and string lengths of 2**31-1 in a tiny frame, at every served version:
    the decoder must fail on the missing bytes, not try to allocate for them."""
    lo, hi = SERVED[api_key]
    before = rss_kib(broker.proc.pid)
    for version in range(lo, hi + 1):
        for body in (b"\x7f\xff\xff\xff" * 6, b"\xff\xff" + b"\x7f\xff\xff\xff" * 5,
                     b"\x00\x00" + b"\x7f\xff" * 8):
            s = connect(broker)
            s.sendall(frame(header(api_key, version) + body))
            s.shutdown(socket.SHUT_WR)
            # Either an error response or a closed connection; never a dead broker.
            assert closed_by_peer(s)
            s.close()
            assert broker.alive(), f"api {api_key} v{version}: {broker.output()}"
    # Also a client id whose length runs past the frame.
    s = connect(broker)
    s.sendall(frame(struct.pack(">hhih", 3, 1, 1, 0x7fff) + b"abc"))
    assert closed_by_peer(s)
    s.close()
    assert broker.alive()
    assert rss_kib(broker.proc.pid) < before + 100 * 1024
    still_serves(broker)


def produce_v3(broker, topic, partition, records: bytes, acks=1):
    body = struct.pack(">hhi", -1, acks, 10000)  # null transactional id, acks, timeout
    t = topic.encode()
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">i", partition)
    body += struct.pack(">i", len(records)) + records
    s = connect(broker)
    s.sendall(frame(header(0, 3, corr=77) + body))
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    resp = s.recv(size, socket.MSG_WAITALL)
    s.close()
    corr, = struct.unpack(">i", resp[:4])
    assert corr == 77
    pos = 4
    (ntopics,) = struct.unpack(">i", resp[pos:pos + 4]); pos += 4
    assert ntopics == 1
    (tlen,) = struct.unpack(">h", resp[pos:pos + 2]); pos += 2 + tlen
    (nparts,) = struct.unpack(">i", resp[pos:pos + 4]); pos += 4
    assert nparts == 1
    index, error, base = struct.unpack(">ihq", resp[pos:pos + 14])
    return error, base


def batch(n=3) -> bytearray:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for i in range(n):
        b.append(i, timestamp=1_700_000_000_000 + i, key=b"k", value=b"v%d" % i, headers=[])
    return bytearray(b.build())


def test_corrupt_batch_gets_corrupt_message_and_is_not_stored(broker):
    good = batch()
    error, base = produce_v3(broker, "crc-topic", 0, bytes(good))
    assert (error, base) == (0, 0)
    bad = batch()
    bad[-1] ^= 0xFF  # inside the CRC range
    error, _ = produce_v3(broker, "crc-topic", 0, bytes(bad))
    assert error == 2  # CORRUPT_MESSAGE
    truncated = bytes(batch())[:-5]
    error, _ = produce_v3(broker, "crc-topic", 0, truncated)
    assert error == 2
    error, _ = produce_v3(broker, "crc-topic", 0, b"")
    assert error == 2
    two = bytes(batch()) + bytes(batch())
    error, _ = produce_v3(broker, "crc-topic", 0, two)
    assert error == 87  # INVALID_RECORD: one batch per partition
    # Unknown partition of an existing topic.
    error, _ = produce_v3(broker, "crc-topic", 7, bytes(good))
    assert error == 3  # UNKNOWN_TOPIC_OR_PARTITION

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = TopicPartition("crc-topic", 0)
    assert consumer.end_offsets([tp]) == {tp: 3}
    consumer.close()
    assert broker.alive()
