"""A klog group consumer (the klog-consumer --group binary, built on klog-client's
GroupConsumer) and a kafka-python KafkaConsumer (group_member.py) in one group on a
6-partition topic: they agree on the range assignor, split the partitions 3/3, and
every record is consumed exactly once, each partition by one of them.

Binaries: $KLOG_BROKER_BIN (see conftest.py) and $KLOG_CONSUMER_BIN, else
<repo>/target/debug/klog-consumer. Processes are stopped by their pid."""

import os
import re
import subprocess
import time
from pathlib import Path

from test_groups import GROUP_SETTINGS, Member, create_topic, produce, wait_until  # noqa: F401
from test_groups import gbroker, members  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
CONSUMER_BIN = Path(os.environ.get("KLOG_CONSUMER_BIN", ROOT / "target" / "debug" / "klog-consumer"))
LINE = re.compile(r"^Partition:(\d+)\tOffset:(\d+)\t(.*)$")


def klog_records(path: Path):
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def test_klog_and_kafka_python_members_split_a_group(gbroker, members, tmp_path):  # noqa: F811
    topic, group = "interop", "mixed-group"
    create_topic(gbroker, topic)
    py = members(gbroker, topic, group, "py")
    klog_out = tmp_path / "klog.out"
    with open(klog_out, "wb") as out, open(tmp_path / "klog.err", "wb") as err:
        klog = subprocess.Popen(
            [str(CONSUMER_BIN), "--bootstrap-server", gbroker.bootstrap, "--topic", topic,
             "--group", group, "--from-beginning",
             "--consumer-property", "session.timeout.ms=10000",
             "--consumer-property", "heartbeat.interval.ms=300",
             "--property", "print.partition=true", "--property", "print.offset=true",
             "--timeout-ms", "12000"],
            stdout=out, stderr=err)
    try:
        # kafka-python reports its assignment; a 3/3 split means klog holds the rest.
        wait_until(lambda: len(py.assignment()) == 3, 60, "a 3/3 split")
        time.sleep(1.0)  # no further rebalance
        py_parts = py.assignment()
        assert len(py_parts) == 3
        produce(gbroker, topic, {p: [f"p{p}-{i}" for i in range(10)] for p in range(6)})

        def all_seen():
            return len(py.records()) + len(klog_records(klog_out)) >= 60

        wait_until(all_seen, 60, "60 records between the two members")
        time.sleep(1.0)  # anything more would be a duplicate
        py_recs = [(r["p"], r["o"], r["v"]) for r in py.records()]
        klog_recs = klog_records(klog_out)
        assert {p for p, _, _ in py_recs} == py_parts
        assert {p for p, _, _ in klog_recs} == set(range(6)) - py_parts
        both = py_recs + klog_recs
        assert len(both) == 60, (len(py_recs), len(klog_recs))
        assert len({(p, o) for p, o, _ in both}) == 60
        assert sorted(v for _, _, v in both) == sorted(f"p{p}-{i}" for p in range(6) for i in range(10))
    finally:
        py.stop()
        try:
            klog.wait(timeout=30)
        except subprocess.TimeoutExpired:
            klog.kill()
            klog.wait(timeout=10)
    assert klog.returncode == 0, (tmp_path / "klog.err").read_text()
