"""Start-up configuration of the real binary: no arguments, --config with Kafka's
server.properties names, --set overrides, unknown keys, invalid values."""

import socket
import subprocess
import time

import pytest
from kafka import KafkaProducer

from conftest import BROKER_BIN, free_port


def wait_listening(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "broker exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("not listening")


def stop(proc):
    proc.terminate()
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise


def port_free(port) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_no_arguments_starts_a_working_broker(tmp_path):
    if not port_free(9092):
        pytest.skip("127.0.0.1:9092 is in use on this machine")
    proc = subprocess.Popen([str(BROKER_BIN)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(9092, proc)
        p = KafkaProducer(bootstrap_servers="127.0.0.1:9092")
        p.send("noargs", b"v", partition=0).get(timeout=20)
        p.close()
        assert (tmp_path / "klog-data" / "noargs-0").is_dir()
        assert (tmp_path / "klog-data" / "meta.properties").exists()
    finally:
        assert stop(proc) == 0


def test_config_file_and_overrides(tmp_path):
    port = free_port()
    data = tmp_path / "data"
    props = tmp_path / "server.properties"
    props.write_text(
        "# a Kafka server.properties\n"
        "node.id=5\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port}\n"
        f"log.dirs={tmp_path / 'ignored'}\n"
        "num.partitions=4\n"
        "zookeeper.connect=localhost:2181\n"
    )
    proc = subprocess.Popen([str(BROKER_BIN), "--config", str(props), "--set", f"log.dirs={data}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
        parts = producer.partitions_for("auto")  # auto-created with num.partitions
        producer.close()
        assert parts == {0, 1, 2, 3}
        assert (data / "auto-3").is_dir()
        assert not (tmp_path / "ignored").exists()
    finally:
        code = stop(proc)
    out = proc.stdout.read().decode()
    assert code == 0
    assert "zookeeper.connect" in out  # unknown keys are warned about


@pytest.mark.parametrize("key,value", [("num.partitions", "abc"),
                                       ("listeners", "SSL://127.0.0.1:1"),
                                       ("log.retention.ms", "-7")])
def test_invalid_value_stops_start_up_naming_the_key(tmp_path, key, value):
    r = subprocess.run([str(BROKER_BIN), "--set", f"log.dirs={tmp_path}",
                        "--set", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
                        "--set", f"{key}={value}"], capture_output=True, timeout=30)
    assert r.returncode != 0
    assert key in r.stderr.decode()
