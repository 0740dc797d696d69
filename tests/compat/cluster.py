"""A cluster of real klog-broker processes on 127.0.0.1 for the compatibility tests:
distinct free ports and data dirs, every process started, paused (SIGSTOP /
SIGCONT), crashed (SIGKILL) and stopped (SIGTERM) by its pid, never by name.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import BROKER_BIN, free_port

BIN_DIR = BROKER_BIN.parent

# Quick failure detection so the tests stay short: heartbeats every 300 ms, fenced
# after 3 s without one, out of the ISR after 2 s without catching up.
FAST = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "300",
    "replica.lag.time.max.ms": "2000",
    "offsets.topic.num.partitions": "3",
}


def wait_until(what, check, timeout=30.0, interval=0.1):
    """Polls `check` until it returns a true value (returned), at most `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Node:
    """One klog-broker process of a cluster."""

    def __init__(self, node_id, port, controller_port, data_dir, args, log_path):
        self.id = node_id
        self.port = port
        self.controller_port = controller_port
        self.data_dir = data_dir
        self.args = args
        self.log_path = log_path
        self.proc = None

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def spawn(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def serving(self):
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"node {self.id} exited: {self.output()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self):
        """SIGKILL (kill -9) by pid, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def partition_bytes(self, topic, partition):
        """The partition's segment bytes, every segment in offset order."""
        d = self.data_dir / f"{topic}-{partition}"
        return b"".join(p.read_bytes() for p in sorted(d.glob("*.log")))


class Cluster:
    """`controllers` combined nodes (ids 1.., the voters) and `brokers` broker-only
    nodes after them."""

    def __init__(self, root: Path, controllers=3, brokers=0, extra=None):
        settings = dict(FAST)
        settings.update(extra or {})
        n = controllers + brokers
        ports = [(free_port(), free_port()) for _ in range(n)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports[:controllers]))
        self.nodes = []
        for i, (port, cport) in enumerate(ports):
            node_id = i + 1
            data = root / f"node{node_id}"
            data.mkdir(parents=True, exist_ok=True)
            s = {
                "node.id": str(node_id),
                "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
                "controller.quorum.voters": voters,
                "log.dirs": str(data),
            }
            if i >= controllers:
                s["process.roles"] = "broker"
            s.update(settings)
            args = [str(BROKER_BIN)]
            for k, v in s.items():
                args += ["--set", f"{k}={v}"]
            self.nodes.append(Node(node_id, port, cport, data, args, root / f"node{node_id}.log"))

    def start(self):
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            self.wait_serving(node.id)
        return self

    def node(self, node_id) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    @property
    def bootstrap(self):
        return ",".join(n.addr for n in self.nodes)

    def wait_serving(self, node_id, timeout=60.0):
        node = self.node(node_id)
        wait_until(f"node {node_id} to serve", node.serving, timeout=timeout)

    def kill(self, node_id):
        self.node(node_id).kill()

    def restart(self, node_id):
        self.node(node_id).spawn()
        self.wait_serving(node_id)

    def pause(self, node_id):
        self.node(node_id).signal(signal.SIGSTOP)

    def resume(self, node_id):
        self.node(node_id).signal(signal.SIGCONT)

    def stop(self, node_id, timeout=30.0):
        """SIGTERM (controlled shutdown) and wait; returns the exit code."""
        node = self.node(node_id)
        node.signal(signal.SIGTERM)
        try:
            return node.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            node.kill()
            raise

    def close(self):
        for node in self.nodes:
            node.signal(signal.SIGCONT)
            node.kill()

    def logs(self):
        return "\n".join(f"===== node {n.id} =====\n{n.output()}" for n in self.nodes)

    def replicas_identical(self, topic, partitions):
        """Whether every replica of each partition holds the same segment bytes
        (every node here is a replica: RF equals the node count)."""
        for p in range(partitions):
            first = self.nodes[0].partition_bytes(topic, p)
            if any(n.partition_bytes(topic, p) != first for n in self.nodes[1:]):
                return False
        return True
