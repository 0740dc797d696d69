"""Fixtures for compatibility tests: the real klog-broker binary on a free loopback
port with a temporary data dir, driven by real Kafka clients (kcat, kafka-python).

Every broker started here is stopped by its pid (SIGTERM, then SIGKILL after a
bounded wait), never by name.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKER_BIN = Path(os.environ.get("KLOG_BROKER_BIN", ROOT / "target" / "debug" / "klog-broker"))


def _below_ephemeral() -> tuple[int, int]:
    """Ports [low, high) below the kernel's ephemeral range."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    return 10000, max(first, 10000)


_next_port = [0]


def free_port() -> int:
    """A port nobody listens on now, from below the ephemeral range.

    A port from bind(0) is one the kernel may also give to an outgoing
    connection as its source port (or to a connection to that very port, which
    then connects to itself) before the broker binds it, failing its start with
    "address in use". The kernel never picks ports below its range; this process
    starts at its own point (from its pid), walks on, and checks each by binding.
    """
    low, high = _below_ephemeral()
    span = high - low
    if span >= 1000:
        start = (os.getpid() * 7919) % span
        for _ in range(span):
            port = low + (start + _next_port[0]) % span
            _next_port[0] += 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One klog-broker process."""

    def __init__(self, data_dir: Path, port: int | None = None, extra: dict | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra = extra or {}
        self.proc = None
        self.log_path = data_dir.parent / f"broker-{self.port}.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0):
        args = [
            str(BROKER_BIN),
            "--set", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "--set", f"log.dirs={self.data_dir}",
        ]
        for k, v in self.extra.items():
            args += ["--set", f"{k}={v}"]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("broker did not start listening in time")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        """SIGKILL (kill -9) by pid."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def broker_factory(tmp_path):
    started = []

    def make(data_dir: Path | None = None, port: int | None = None, **extra) -> Broker:
        b = Broker(data_dir or tmp_path / f"data{len(started)}", port=port, extra=extra)
        started.append(b)
        return b

    yield make
    for b in started:
        b.kill()


@pytest.fixture
def broker(broker_factory):
    b = broker_factory().start()
    yield b
    code = b.stop()
    assert code == 0, f"broker exited with {code}: {b.output()}"


def read_batches(partition_dir: Path):
    """Yields (base_offset, attributes, records_count) for every batch stored in a
    partition folder's segment files, read straight from disk."""
    for seg in sorted(partition_dir.glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base = int.from_bytes(data[pos:pos + 8], "big", signed=True)
            length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True)
            if length <= 0:
                break
            attrs = int.from_bytes(data[pos + 21:pos + 23], "big", signed=True)
            count = int.from_bytes(data[pos + 57:pos + 61], "big", signed=True)
            yield base, attrs, count
            pos += 12 + length
