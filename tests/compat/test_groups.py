"""Consumer groups against the real broker binary: kafka-python KafkaConsumer group
members (each its own process, see group_member.py), kcat -G, the admin API, and
committed offsets across broker restarts. Every wait is bounded; every process is
stopped by its pid."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

MEMBER = Path(__file__).with_name("group_member.py")
# Short initial rebalance delay so tests do not wait Kafka's default 3 s each time;
# a low minimum session timeout so a killed member is noticed quickly.
GROUP_SETTINGS = {
    "group.initial.rebalance.delay.ms": "200",
    "group.min.session.timeout.ms": "1000",
}
PARTITIONS = 6


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Member:
    """A group member process; its events are read back from its output file."""

    def __init__(self, broker, topic, group, workdir: Path, name: str, session_ms=10000):
        self.name = name
        self.out = workdir / f"{name}.jsonl"
        self.stop_file = workdir / f"{name}.stop"
        self.log = open(workdir / f"{name}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(MEMBER), broker.bootstrap, topic, group, str(self.out),
             str(self.stop_file), str(session_ms)],
            stdout=self.log, stderr=subprocess.STDOUT)

    def events(self):
        if not self.out.exists():
            return []
        lines = self.out.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def assignment(self):
        """Partitions currently owned (eager protocol: revoke all, then assign)."""
        owned = set()
        for e in self.events():
            if e["ev"] == "assigned":
                owned = set(e["parts"])
            elif e["ev"] in ("revoked", "closed"):
                owned = set()
        return owned

    def records(self):
        return [e for e in self.events() if e["ev"] == "record"]

    def stop(self, timeout=30):
        """Asks the member to leave the group and waits for it to exit."""
        self.stop_file.touch()
        self.proc.wait(timeout=timeout)

    def kill(self):
        """kill -9 by pid: no LeaveGroup, no final commit."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def members(tmp_path):
    started = []

    def start(broker, topic, group, name, **kw):
        m = Member(broker, topic, group, tmp_path, name, **kw)
        started.append(m)
        return m

    yield start
    for m in started:
        m.kill()


@pytest.fixture
def gbroker(broker_factory):
    b = broker_factory(**GROUP_SETTINGS).start()
    yield b
    code = b.stop()
    assert code == 0, f"broker exited with {code}: {b.output()}"


def create_topic(broker, name, partitions=PARTITIONS):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(name, partitions, 1)])
    admin.close()


def produce(broker, topic, values_by_partition):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for partition, values in values_by_partition.items():
        for v in values:
            p.send(topic, value=v.encode(), partition=partition)
    p.flush()
    p.close()


def make_values(prefix, per_partition):
    return {p: [f"{prefix}-{p}-{i}" for i in range(per_partition)] for p in range(PARTITIONS)}


def balanced(ms, expected_sizes=None):
    """Every partition owned by exactly one of `ms` (and sizes as expected)."""
    sets = [m.assignment() for m in ms]
    owned = [p for s in sets for p in s]
    ok = sorted(owned) == list(range(PARTITIONS))
    if expected_sizes is not None:
        ok = ok and sorted(len(s) for s in sets) == sorted(expected_sizes)
    return ok


def check_exclusive_ownership(ms):
    """No partition is owned by two members at the same time: the intervals between
    each member's `assigned` and its next `revoked`/`closed` never overlap."""
    intervals = {p: [] for p in range(PARTITIONS)}
    for m in ms:
        start, owned = None, set()
        evs = m.events()
        for e in evs:
            if e["ev"] == "assigned":
                start, owned = e["t"], set(e["parts"])
            elif e["ev"] in ("revoked", "closed") and start is not None:
                for p in owned:
                    intervals[p].append((start, e["t"], m.name))
                start, owned = None, set()
        if start is not None:  # still owned (or killed while owning)
            for p in owned:
                intervals[p].append((start, float("inf"), m.name))
    for p, spans in intervals.items():
        spans.sort()
        for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
            assert e1 <= s2, f"partition {p} owned by {n1} and {n2} at once"


def consumed_values(ms):
    return sorted(r["v"] for m in ms for r in m.records())


def test_three_members_consume_every_record_exactly_once(gbroker, members):
    create_topic(gbroker, "g3")
    ms = [members(gbroker, "g3", "grp3", f"m{i}") for i in range(3)]
    wait_until(lambda: balanced(ms, [2, 2, 2]), 60, "3 members with 2 partitions each")
    values = make_values("x", 100)
    produce(gbroker, "g3", values)
    expected = sorted(v for vs in values.values() for v in vs)
    wait_until(lambda: len(consumed_values(ms)) >= len(expected), 60, "all records consumed")
    time.sleep(1)  # anything consumed twice would show up now
    for m in ms:
        m.stop()
    assert consumed_values(ms) == expected  # exactly once
    # Each member read only the partitions it owned.
    for m in ms:
        owned = set()
        for e in m.events():
            if e["ev"] == "assigned":
                owned |= set(e["parts"])
        assert {r["p"] for r in m.records()} <= owned
    check_exclusive_ownership(ms)
    admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
    offsets = admin.list_group_offsets("grp3")["grp3"]
    assert {tp.partition: o.offset for tp, o in offsets.items()} == \
        {p: 100 for p in range(PARTITIONS)}
    admin.close()


def test_members_joining_and_leaving_trigger_rebalances(gbroker, members):
    create_topic(gbroker, "gjl")
    a = members(gbroker, "gjl", "grpjl", "a")
    b = members(gbroker, "gjl", "grpjl", "b")
    wait_until(lambda: balanced([a, b], [3, 3]), 60, "two members, 3 partitions each")
    produce(gbroker, "gjl", make_values("one", 10))
    wait_until(lambda: len(consumed_values([a, b])) >= 60, 60, "first records")

    c = members(gbroker, "gjl", "grpjl", "c")  # a join rebalances the group
    wait_until(lambda: balanced([a, b, c], [2, 2, 2]), 60, "three members, 2 each")
    admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
    desc = admin.describe_groups(["grpjl"])["grpjl"]
    assert desc["group_state"] == "Stable"
    assert len(desc["members"]) == 3
    produce(gbroker, "gjl", make_values("two", 10))
    wait_until(lambda: len(consumed_values([a, b, c])) >= 120, 60, "second records")

    a.stop()  # LeaveGroup: the others take over at once, not after a session timeout
    wait_until(lambda: balanced([b, c], [3, 3]), 30, "two members again")
    produce(gbroker, "gjl", make_values("three", 10))
    wait_until(lambda: len(consumed_values([a, b, c])) >= 180, 60, "third records")
    time.sleep(1)
    b.stop()
    c.stop()
    expected = sorted(v for prefix in ("one", "two", "three")
                      for vs in make_values(prefix, 10).values() for v in vs)
    assert consumed_values([a, b, c]) == expected
    check_exclusive_ownership([a, b, c])
    admin.close()


def test_killed_member_partitions_taken_over_after_session_timeout(gbroker, members):
    create_topic(gbroker, "gkill")
    session_ms = 3000
    a = members(gbroker, "gkill", "grpkill", "a", session_ms=session_ms)
    b = members(gbroker, "gkill", "grpkill", "b", session_ms=session_ms)
    wait_until(lambda: balanced([a, b], [3, 3]), 60, "two members")
    produce(gbroker, "gkill", make_values("before", 5))
    wait_until(lambda: len(consumed_values([a, b])) >= 30, 60, "records before the kill")
    # A member records a value before its synchronous commit: kill only once the
    # broker holds the commits for all 30, or a kill between the two would make the
    # survivor re-read uncommitted records, which is correct behaviour.
    admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)

    def committed_total():
        offsets = admin.list_group_offsets("grpkill")["grpkill"]
        return sum(o.offset for o in offsets.values() if o.offset > 0)

    wait_until(lambda: committed_total() == 30, 60, "commits before the kill")
    admin.close()
    killed_at = time.time()
    a.kill()
    wait_until(lambda: b.assignment() == set(range(PARTITIONS)), 30,
               "the survivor to own every partition")
    taken_over = [e["t"] for e in b.events() if e["ev"] == "assigned"][-1]
    # Nobody told the broker: it waited for the session to expire (less the time
    # since a's last heartbeat, at most its heartbeat interval of 0.3 s).
    assert taken_over - killed_at >= session_ms / 1000 - 0.5
    produce(gbroker, "gkill", make_values("after", 5))
    wait_until(lambda: len([r for r in b.records() if r["v"].startswith("after")]) >= 30,
               60, "the survivor to consume every partition")
    b.stop()
    after = sorted(r["v"] for r in b.records() if r["v"].startswith("after"))
    assert after == sorted(v for vs in make_values("after", 5).values() for v in vs)
    # Committed before the kill, so nothing from before is consumed twice.
    before = [r["v"] for r in a.records() + b.records() if r["v"].startswith("before")]
    assert sorted(before) == sorted(v for vs in make_values("before", 5).values() for v in vs)


def test_restarted_consumer_resumes_from_committed_offsets(gbroker, members):
    create_topic(gbroker, "gres")
    first = make_values("first", 20)
    produce(gbroker, "gres", first)
    a = members(gbroker, "gres", "grpres", "a")
    wait_until(lambda: len(a.records()) >= 120, 60, "first half consumed")
    a.stop()
    second = make_values("second", 7)
    produce(gbroker, "gres", second)
    b = members(gbroker, "gres", "grpres", "b")
    wait_until(lambda: len(b.records()) >= 42, 60, "second half consumed")
    time.sleep(1)
    b.stop()
    assert sorted(r["v"] for r in b.records()) == \
        sorted(v for vs in second.values() for v in vs)


def test_kcat_group_consumer(gbroker):
    create_topic(gbroker, "gkcat")
    values = make_values("k", 20)
    produce(gbroker, "gkcat", values)
    cmd = ["kcat", "-b", gbroker.bootstrap, "-G", "kcatgroup", "gkcat", "-c", "120",
           "-f", "%p %o %s\n", "-X", "auto.offset.reset=earliest", "-q"]
    r = subprocess.run(cmd, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    lines = r.stdout.decode().split("\n")
    got = sorted(line.split(" ", 2)[2] for line in lines if line)
    assert got == sorted(v for vs in values.values() for v in vs)
    admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
    assert "kcatgroup" in [g["group_id"] for g in admin.list_groups()]
    # librdkafka commits what it consumed when it closes.
    offsets = admin.list_group_offsets("kcatgroup")["kcatgroup"]
    assert sum(o.offset for o in offsets.values()) == 120
    admin.close()


def test_admin_lists_and_describes_groups(gbroker, members):
    create_topic(gbroker, "gadm")
    m = members(gbroker, "gadm", "grpadm", "solo")
    wait_until(lambda: m.assignment() == set(range(PARTITIONS)), 60, "assignment")
    admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
    groups = admin.list_groups()
    assert {"group_id": "grpadm", "protocol_type": "consumer"} in groups
    desc = admin.describe_groups(["grpadm", "no-such-group"])
    d = desc["grpadm"]
    assert d["group_state"] == "Stable"
    assert d["protocol_type"] == "consumer"
    assert d["protocol_data"]  # the selected assignor
    assert len(d["members"]) == 1
    member = d["members"][0]
    assert member["client_id"] == "solo.jsonl"
    assert member["client_host"].startswith("/127.0.0.1")
    assert desc["no-such-group"]["group_state"] == "Dead"
    # The internal topic is flagged in Metadata.
    topics = admin.describe_topics(["__consumer_offsets"])
    assert topics[0]["is_internal"] is True
    m.stop()
    desc = admin.describe_groups(["grpadm"])["grpadm"]
    assert desc["group_state"] == "Empty"
    assert admin.delete_groups(["grpadm"]) == {"grpadm": "OK"}
    assert "grpadm" not in [g["group_id"] for g in admin.list_groups()]
    admin.close()


def commit_some(broker, topic, group, per_partition):
    """Consumes `per_partition` records from each partition in a group and commits."""
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=15000)
    n = 0
    for _ in c:
        n += 1
        if n == per_partition * PARTITIONS:
            break
    c.commit()
    committed = {tp.partition: c.committed(tp) for tp in c.assignment()}
    c.close()
    return committed


@pytest.mark.parametrize("how", ["clean", "kill9"])
def test_committed_offsets_survive_broker_restart(broker_factory, how):
    b = broker_factory(**GROUP_SETTINGS).start()
    create_topic(b, "grst")
    produce(b, "grst", make_values("r", 10))
    committed = commit_some(b, "grst", "grprst", 10)
    assert committed == {p: 10 for p in range(PARTITIONS)}
    if how == "clean":
        assert b.stop() == 0
    else:
        b.kill()
    b2 = broker_factory(data_dir=b.data_dir, port=b.port, **GROUP_SETTINGS).start()
    admin = KafkaAdminClient(bootstrap_servers=b2.bootstrap)
    offsets = admin.list_group_offsets("grprst")["grprst"]
    assert {tp.partition: o.offset for tp, o in offsets.items()} == committed
    assert "grprst" in [g["group_id"] for g in admin.list_groups()]
    admin.close()
    # A consumer of the group continues after the committed offsets.
    produce(b2, "grst", make_values("s", 1))
    c = KafkaConsumer("grst", bootstrap_servers=b2.bootstrap, group_id="grprst",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=5000)
    got = sorted(r.value.decode() for r in c)
    c.close()
    assert got == sorted(v for vs in make_values("s", 1).values() for v in vs)
    assert b2.stop() == 0
