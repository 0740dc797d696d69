"""Feature levels in ApiVersions (KIP-584, issue 16 item 6) against the real broker
binary: read byte by byte from a raw ApiVersions request, through kafka-python's
describe_features, and checked not to trouble librdkafka 2.16 (confluent-kafka).

klog reports metadata.version 1 (Kafka's 3.0-IV1) supported and finalized, with the
offset of the broker's metadata image as the finalized epoch. transaction.version
(supported 0..0: no transactions) is never finalized (KIP-1022) and, with its
minimum of 0, is left out below ApiVersions v4 (KAFKA-17492), the only versions
klog serves. See crates/klog-broker/src/features.rs."""

import socket
import struct

from confluent_kafka import Producer as CKProducer
from kafka.admin import KafkaAdminClient, NewTopic


def request(broker, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        return s.recv(size, socket.MSG_WAITALL)


class Reader:
    """Reads the primitive types of a flexible (v3) ApiVersions response body."""

    def __init__(self, buf: bytes, at: int = 0):
        self.buf, self.at = buf, at

    def take(self, n: int) -> bytes:
        assert self.at + n <= len(self.buf), "response ends early"
        out = self.buf[self.at:self.at + n]
        self.at += n
        return out

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str:
        n = self.uvarint() - 1
        return self.take(n).decode()

    def compact_array(self, item):
        return [item(self) for _ in range(self.uvarint() - 1)]

    def no_tags(self):
        assert self.uvarint() == 0, "unexpected tagged fields in a struct"


def supported_key(r: Reader):
    name, lo, hi = r.compact_string(), r.int16(), r.int16()
    r.no_tags()
    return name, lo, hi


def finalized_key(r: Reader):
    # ApiVersionsResponse v3 FinalizedFeatureKey: Name, MaxVersionLevel, MinVersionLevel.
    name, hi, lo = r.compact_string(), r.int16(), r.int16()
    r.no_tags()
    return name, lo, hi


def api_versions_v3(broker, correlation_id: int = 77):
    """Sends ApiVersions v3 and decodes the whole answer: (api keys, tagged fields
    by tag), asserting nothing is left over."""
    body = b"\x05klog" + b"\x041.0" + b"\x00"  # client software name, version, tags
    payload = struct.pack(">hhih", 18, 3, correlation_id, 1) + b"x" + b"\x00" + body
    resp = request(broker, payload)
    # Response header v0 (correlation id only), then the flexible v3 body.
    r = Reader(resp)
    assert r.int32() == correlation_id
    assert r.int16() == 0

    def api_key(r):
        key, lo, hi = r.int16(), r.int16(), r.int16()
        r.no_tags()
        return key, (lo, hi)

    apis = dict(r.compact_array(api_key))
    r.int32()  # throttle_time_ms
    tags = {}
    for _ in range(r.uvarint()):
        tag, size = r.uvarint(), r.uvarint()
        field = Reader(r.take(size))
        if tag == 0:
            tags[0] = field.compact_array(supported_key)
        elif tag == 1:
            tags[1] = field.int64()
        elif tag == 2:
            tags[2] = field.compact_array(finalized_key)
        else:
            raise AssertionError(f"unknown tagged field {tag}")
        assert field.at == size, f"tagged field {tag} has trailing bytes"
    assert r.at == len(resp), "trailing bytes after the body"
    return apis, tags


def test_api_versions_v3_reports_metadata_version_at_the_image_offset(broker):
    apis, tags = api_versions_v3(broker)
    assert apis[18] == (0, 3)
    assert set(tags) == {0, 1, 2}
    # SupportedFeatures: metadata.version only; transaction.version (min 0) is left
    # out below ApiVersions v4, as Kafka does (KAFKA-17492).
    assert tags[0] == [("metadata.version", 1, 1)]
    # FinalizedFeatures: metadata.version at 1 (min = max), no level-0 feature.
    assert tags[2] == [("metadata.version", 1, 1)]
    epoch = tags[1]
    assert epoch > 0, "a serving broker has applied its metadata log"

    # The epoch is the image's offset: creating a topic (a metadata log entry)
    # moves it forward; the levels stay.
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic("features-epoch", 1, 1)])
        assert "features-epoch" in admin.list_topics()
    finally:
        admin.close()
    _, later = api_versions_v3(broker, correlation_id=78)
    assert later[1] > epoch
    assert later[0] == tags[0] and later[2] == tags[2]


def test_api_versions_below_v3_carries_no_features(broker):
    # v0-v2 have no tagged fields: the body is error code, the api array and (v1+)
    # throttle time, nothing after.
    for version in (0, 1, 2):
        resp = request(broker, struct.pack(">hhih", 18, version, 5, 1) + b"x")
        corr, error, n = struct.unpack(">ihi", resp[:10])
        assert (corr, error) == (5, 0)
        end = 10 + 6 * n + (4 if version >= 1 else 0)
        assert len(resp) == end, f"v{version}: {len(resp) - end} bytes after the body"


def test_kafka_python_describe_features(broker):
    _, tags = api_versions_v3(broker)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        features = admin.describe_features()
    finally:
        admin.close()
    assert set(features) == {"metadata.version"}
    mv = features["metadata.version"]
    assert mv["supported"] == (1, 1)
    assert mv["finalized"] == (1, 1)
    # Read after the raw request: the same image offset or a later one.
    assert mv["finalized_epoch"] >= tags[1] > 0


def test_librdkafka_accepts_the_feature_fields(broker):
    # librdkafka 2.16 sends ApiVersions v3 and must skip the tagged fields it does
    # not use; a produce acknowledged proves it read the answer.
    delivered = []
    p = CKProducer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 20000})
    p.produce("features-ck", b"v", callback=lambda err, msg: delivered.append(err))
    assert p.flush(30) == 0
    assert delivered == [None]
