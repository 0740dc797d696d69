"""The top-level examples against real clients: `examples/custom_broker.rs`, a broker
composed from the crates with its own topic policy (KIP-108's create topic policy),
driven by kcat and kafka-python. The example is found beside the broker binary
(`<target>/debug/examples/custom_broker`, built by `cargo test` or `cargo build
--examples`); it is stopped by its pid."""

import signal
import subprocess
import time

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import PolicyViolationError

from conftest import BROKER_BIN, free_port

CUSTOM_BROKER = BROKER_BIN.parent / "examples" / "custom_broker"


@pytest.fixture
def custom_broker(tmp_path):
    assert CUSTOM_BROKER.exists(), f"{CUSTOM_BROKER} not built (cargo build --examples)"
    port = free_port()
    log = open(tmp_path / "custom.log", "wb")
    proc = subprocess.Popen([str(CUSTOM_BROKER), f"127.0.0.1:{port}", str(tmp_path / "data")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while b"custom broker on" not in (tmp_path / "custom.log").read_bytes():
            assert proc.poll() is None, (tmp_path / "custom.log").read_text()
            assert time.monotonic() < deadline, "custom broker did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_custom_broker_applies_its_topic_policy(custom_broker):
    admin = KafkaAdminClient(bootstrap_servers=custom_broker)
    admin.create_topics([NewTopic("payments.events", 2, 1)])
    with pytest.raises(PolicyViolationError):
        admin.create_topics([NewTopic("scratch", 1, 1)])
    with pytest.raises(PolicyViolationError):
        admin.create_topics([NewTopic("ops.audit", 1, 1,
                                      topic_configs={"retention.ms": str(30 * 86400 * 1000)})])
    # Auto-creation goes through the policy too: kcat's produce to "scratch" fails.
    r = subprocess.run(["kcat", "-b", custom_broker, "-P", "-t", "scratch"],
                       input=b"x\n", capture_output=True, timeout=60)
    assert b"policy violation" in r.stderr.lower(), r.stderr
    # Otherwise it is an ordinary broker.
    p = KafkaProducer(bootstrap_servers=custom_broker)
    assert p.send("search.queries", b"q", partition=0).get(timeout=20).offset == 0
    p.close()
    out = subprocess.run(["kcat", "-b", custom_broker, "-C", "-t", "search.queries", "-e", "-q"],
                         capture_output=True, timeout=60).stdout
    assert out == b"q\n"
    assert set(admin.list_topics()) >= {"payments.events", "search.queries"}
    assert "scratch" not in admin.list_topics()
    admin.close()
