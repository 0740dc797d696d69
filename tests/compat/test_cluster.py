"""Replicated partitions with real clients (issue 14): three klog-broker processes,
RF 3, min.insync.replicas=2, idempotent acks=all producers (kafka-python, kcat and
klog-producer) while brokers are crashed (kill -9), paused (SIGSTOP / SIGCONT) and
stopped (SIGTERM) by pid. After each fault heals, every acknowledged record is read
back exactly once and in order per partition, and the replicas' segment bytes are
identical.
"""

import json
import subprocess
import threading
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, NotEnoughReplicasError

from cluster import BIN_DIR, Cluster, wait_until


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(controllers=3, brokers=0, **extra):
        c = Cluster(tmp_path / f"cluster{len(made)}", controllers, brokers, extra)
        made.append(c)
        try:
            c.start()
            all_see_three(c)
            return c
        except Exception:
            print(c.logs())
            raise

    yield make
    for c in made:
        c.close()


def kcat_metadata(bootstrap, topic=None):
    args = ["kcat", "-b", bootstrap, "-L", "-J", "-m", "5"]
    if topic:
        args += ["-t", topic]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def partitions_of(bootstrap, topic):
    """{partition: (leader, replicas, isrs)} as kcat -L sees them."""
    md = kcat_metadata(bootstrap, topic)
    if not md:
        return {}
    for t in md["topics"]:
        if t["topic"] == topic and not t.get("error"):
            return {
                p["partition"]: (
                    p["leader"],
                    [r["id"] for r in p["replicas"]],
                    [r["id"] for r in p["isrs"]],
                )
                for p in t["partitions"]
            }
    return {}


def full_isr(bootstrap, topic, partitions, rf=3):
    def check():
        ps = partitions_of(bootstrap, topic)
        return len(ps) == partitions and all(
            len(isr) == rf and leader >= 0 for leader, _, isr in ps.values()
        )

    wait_until(f"{topic}: every replica in sync", check, timeout=60)


def all_see_three(cluster):
    """Waits until every node's metadata lists the three brokers: right after the
    start, a node that already serves may not yet have seen another unfenced, and
    a client mixing their answers could be told of a controller it has no address
    for."""
    def check():
        for n in cluster.nodes:
            md = kcat_metadata(n.addr)
            if not md or len(md["brokers"]) != 3:
                return False
        return True

    wait_until("every node to list three brokers", check)


def create_replicated(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    admin.create_topics([NewTopic(topic, partitions, 3, topic_configs={"min.insync.replicas": "2"})])
    admin.close()
    full_isr(bootstrap, topic, partitions)


def read_all(bootstrap, topic, partitions, timeout=60):
    """Every record of the topic, {partition: [(offset, value)]}, read by an
    assigned consumer up to each partition's end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             request_timeout_ms=20000)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    got = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + timeout
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        assert time.monotonic() < deadline, "reading back timed out"
        for tp, records in consumer.poll(timeout_ms=500).items():
            got[tp.partition] += [(r.offset, r.value.decode()) for r in records]
    consumer.close()
    return got


def check_exactly_once_in_order(got, acked):
    """Every acknowledged value read exactly once; values (increasing integers as
    sent) in order within each partition; offsets dense from 0."""
    seen = [v for records in got.values() for _, v in records]
    assert len(seen) == len(set(seen)), "a record was read twice"
    missing = set(acked) - set(seen)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    for p, records in got.items():
        offsets = [o for o, _ in records]
        assert offsets == list(range(len(records))), f"partition {p}: offsets not dense"
        values = [int(v) for _, v in records]
        assert values == sorted(values), f"partition {p}: out of order"


def leader_of(bootstrap, topic, partition):
    return partitions_of(bootstrap, topic)[partition][0]


class GroupReader(threading.Thread):
    """A kafka-python group consumer reading throughout, committing automatically."""

    def __init__(self, bootstrap, topic, group):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.values = set()
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            c = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=self.group,
                              auto_offset_reset="earliest", auto_commit_interval_ms=200,
                              request_timeout_ms=20000, session_timeout_ms=10000,
                              heartbeat_interval_ms=1000)
            while not self.stop.is_set():
                for records in c.poll(timeout_ms=200).values():
                    self.values.update(r.value.decode() for r in records)
            c.close()
        except Exception as e:  # reported by the test
            self.error = e


def test_kafka_python_leader_kill_mid_stream_loses_nothing(cluster_factory):
    c = cluster_factory()
    bs = c.bootstrap
    create_replicated(bs, "kp", 3)
    reader = GroupReader(bs, "kp", "kp-readers")
    reader.start()
    victim = leader_of(bs, "kp", 0)

    producer = KafkaProducer(bootstrap_servers=bs, acks="all", enable_idempotence=True,
                             delivery_timeout_ms=120000, request_timeout_ms=5000, linger_ms=5)
    acked, failed = [], []

    def on_ack(v):
        return lambda _md: acked.append(v)

    n = 6000
    for i in range(n):
        f = producer.send("kp", key=str(i % 7).encode(), value=str(i).encode())
        f.add_callback(on_ack(str(i)))
        f.add_errback(lambda e, v=str(i): failed.append((v, e)))
        if i == n // 3:
            c.kill(victim)
        if i % 100 == 0:
            time.sleep(0.02)
    producer.flush(timeout=120)
    producer.close()
    assert not failed, f"deliveries failed: {failed[:3]}"
    assert len(acked) == n

    c.restart(victim)
    full_isr(bs, "kp", 3)
    got = read_all(bs, "kp", 3)
    check_exactly_once_in_order(got, acked)
    wait_until("the group to read every record", lambda: reader.values >= set(acked), timeout=60)
    reader.stop.set()
    reader.join(30)
    assert reader.error is None, reader.error
    wait_until("identical replicas", lambda: c.replicas_identical("kp", 3))


@pytest.mark.parametrize("tool", ["kcat", "klog-producer"])
def test_line_producer_survives_leader_kill(cluster_factory, tool):
    c = cluster_factory()
    bs = c.bootstrap
    topic = f"lines-{tool}"
    create_replicated(bs, topic, 2)
    victim = leader_of(bs, topic, 0)
    if tool == "kcat":
        args = ["kcat", "-P", "-b", bs, "-t", topic, "-K", ":", "-X", "acks=all",
                "-X", "enable.idempotence=true", "-X", "linger.ms=5"]
    else:
        args = [str(BIN_DIR / "klog-producer"), "--bootstrap-server", bs, "--topic", topic,
                "--acks", "all", "--linger-ms", "5", "--property", "parse.key=true",
                "--property", "key.separator=:", "--producer-property", "enable.idempotence=true"]
    err_path = c.nodes[0].data_dir.parent / f"{tool}.err"
    err_file = open(err_path, "w")
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=err_file, text=True)
    n = 4000
    try:
        for i in range(n):
            proc.stdin.write(f"{i % 5}:{i}\n")
            if i % 100 == 0:
                proc.stdin.flush()
                time.sleep(0.02)
            if i == n // 3:
                proc.stdin.flush()
                c.kill(victim)
        proc.stdin.close()
        proc.wait(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err_file.close()
    assert proc.returncode == 0, err_path.read_text()

    c.restart(victim)
    full_isr(bs, topic, 2)
    got = read_all(bs, topic, 2)
    check_exactly_once_in_order(got, [str(i) for i in range(n)])
    wait_until("identical replicas", lambda: c.replicas_identical(topic, 2))


def test_paused_followers_shrink_the_isr_then_refuse_acks_all(cluster_factory):
    # One voter and two broker-only nodes: pausing two of three voters would also
    # stop the metadata quorum, and then no ISR change could be written at all.
    c = cluster_factory(controllers=1, brokers=2)
    bs = c.bootstrap
    create_replicated(bs, "pz", 1)
    leader = leader_of(bs, "pz", 0)
    assert leader == 1
    leader_addr = c.node(leader).addr
    followers = [n for n in (1, 2, 3) if n != leader]
    admin_cmd = [str(BIN_DIR / "klog-admin"), "--bootstrap-server", leader_addr, "topics",
                 "describe", "--under-replicated-partitions"]
    assert subprocess.run(admin_cmd, capture_output=True, text=True, timeout=30).stdout == ""

    c.pause(followers[0])
    wait_until("the ISR to shrink", lambda: len(partitions_of(leader_addr, "pz")[0][2]) == 2)
    out = subprocess.run(admin_cmd, capture_output=True, text=True, timeout=30).stdout
    assert "\tPartition: 0\t" in out and f"Isr: {leader}," in out, out
    p = KafkaProducer(bootstrap_servers=leader_addr, acks="all", retries=0,
                      request_timeout_ms=10000)
    p.send("pz", b"with-two").get(timeout=30)

    c.pause(followers[1])
    wait_until("the ISR to be the leader alone",
               lambda: partitions_of(leader_addr, "pz")[0][2] == [leader])
    with pytest.raises(NotEnoughReplicasError):
        p.send("pz", b"with-one").get(timeout=30)

    c.resume(followers[0])
    c.resume(followers[1])
    full_isr(leader_addr, "pz", 1)
    p.send("pz", b"healed").get(timeout=30)
    p.close()
    got = read_all(leader_addr, "pz", 1)
    assert [v for _, v in got[0]] == ["with-two", "healed"]
    wait_until("identical replicas", lambda: c.replicas_identical("pz", 1))


def committed(bootstrap, group, topic, partitions):
    """The group's committed offsets by partition, or None while its coordinator
    cannot be reached (kafka-python's admin client does not retry that itself)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        offsets = admin.list_group_offsets(group)[group]
    except KafkaError:
        return None
    finally:
        admin.close()
    return {p: offsets[TopicPartition(topic, p)].offset
            for p in range(partitions) if TopicPartition(topic, p) in offsets}


def coordinator_of(bootstrap, group):
    """The group's coordinator, as confluent-kafka's admin client finds it."""
    from confluent_kafka.admin import AdminClient
    client = AdminClient({"bootstrap.servers": bootstrap})
    futures = client.describe_consumer_groups([group], request_timeout=20)
    return futures[group].result(timeout=30).coordinator.id


def test_group_survives_its_coordinator_crash(cluster_factory):
    c = cluster_factory()
    bs = c.bootstrap
    create_replicated(bs, "gc", 2)
    producer = KafkaProducer(bootstrap_servers=bs, acks="all", enable_idempotence=True,
                             request_timeout_ms=5000)
    for i in range(500):
        producer.send("gc", key=str(i % 3).encode(), value=str(i).encode())
    producer.flush(60)
    reader = GroupReader(bs, "gc", "gc-group")
    reader.start()
    wait_until("the group to read the first records", lambda: len(reader.values) == 500,
               timeout=60)

    def total():
        now = committed(bs, "gc-group", "gc", 2)
        return now is not None and sum(now.values())

    wait_until("offsets committed", lambda: total() == 500)
    before = committed(bs, "gc-group", "gc", 2)
    coordinator = coordinator_of(bs, "gc-group")
    c.kill(coordinator)

    for i in range(500, 1000):
        producer.send("gc", key=str(i % 3).encode(), value=str(i).encode())
    producer.flush(120)
    wait_until("the group to read past the crash", lambda: len(reader.values) == 1000,
               timeout=90)

    def advanced():
        after = committed(bs, "gc-group", "gc", 2)
        if after is None:
            return False
        assert all(after.get(p, -1) >= before[p] for p in before), (before, after)
        return sum(after.values()) == 1000

    wait_until("offsets committed at the new coordinator", advanced, timeout=60)
    assert coordinator_of(bs, "gc-group") != coordinator
    reader.stop.set()
    reader.join(30)
    assert reader.error is None, reader.error
    producer.close()
    c.restart(coordinator)
    full_isr(bs, "gc", 2)
    assert sum(committed(bs, "gc-group", "gc", 2).values()) == 1000


def active_controller(bootstrap):
    """The quorum leader (the active controller), as DescribeQuorum reports it:
    Metadata's controller id names a live broker that forwards, not the quorum
    leader, as from Kafka's KRaft brokers."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    try:
        return admin.describe_metadata_quorum()["topics"][0]["partitions"][0]["leader_id"]
    finally:
        admin.close()


def test_admin_client_creates_topics_right_after_the_controller_is_killed(cluster_factory):
    """librdkafka's admin client sends CreateTopics to the controller id of its
    last Metadata until its next refresh (`topic.metadata.refresh.interval.ms`,
    5 min). Metadata names the answering broker (KAFKA-COMPAT.md trap 5: a live
    controller id; Kafka's KRaft brokers name a live broker and forward, KIP-590),
    so a kill -9 of the active controller does not leave the client waiting on a
    dead node. The client is bootstrapped from the survivors: it learns the
    controller id from one of them, as a client that asked any broker but the
    victim would."""
    from confluent_kafka.admin import AdminClient, NewTopic as CKNewTopic

    c = cluster_factory()
    victim = active_controller(c.bootstrap)
    assert victim in (1, 2, 3)
    survivors = [n for n in c.nodes if n.id != victim]
    admin = AdminClient({"bootstrap.servers": ",".join(n.addr for n in survivors)})
    learned = admin.list_topics(timeout=20)
    assert sorted(learned.brokers) == [1, 2, 3]

    c.kill(victim)
    killed_at = time.monotonic()
    futures = admin.create_topics([CKNewTopic("after-kill", 3, 2)], request_timeout=30)
    assert time.monotonic() - killed_at < 10
    try:
        futures["after-kill"].result(timeout=40)
    except Exception as e:
        raise AssertionError(f"CreateTopics failed ({e!r}); Metadata had named "
                             f"{learned.controller_id} as controller, {victim} was killed")
    wait_until("the new topic's three partitions in the client's metadata",
               lambda: len(admin.list_topics("after-kill", timeout=10)
                           .topics["after-kill"].partitions) == 3)
    assert admin.list_topics(timeout=10).controller_id != victim


def test_writes_resume_while_the_active_controller_is_paused(cluster_factory):
    """Issue 29: a paused (SIGSTOP) active controller must not stop the cluster.
    The two others elect a new controller; their brokers learn of it from the
    quorum and move their heartbeats there at once (they used to wait out the
    paused one's 30 s request timeout, and the new controller fenced them all), so
    every partition gets a leader among them and acks=all writes go on while the
    controller is still paused. Nothing acknowledged is lost after it resumes."""
    c = cluster_factory()
    topic = "paused-controller"
    create_replicated(c.bootstrap, topic, 3)
    victim = active_controller(c.bootstrap)
    survivors = [n for n in c.nodes if n.id != victim]
    bs = ",".join(n.addr for n in survivors)
    producer = KafkaProducer(bootstrap_servers=bs, acks="all", enable_idempotence=True,
                             delivery_timeout_ms=60000, request_timeout_ms=5000)
    acked = [str(p) for p in range(3)]
    for p in range(3):
        producer.send(topic, value=str(p).encode(), partition=p).get(timeout=30)

    c.pause(victim)
    paused_at = time.monotonic()
    try:
        # broker.session.timeout.ms (3 s here) plus the election and a few seconds.
        wait_until("every partition led by a node that is not paused",
                   lambda: sorted(partitions_of(survivors[0].addr, topic)) == [0, 1, 2] and all(
                       leader in (survivors[0].id, survivors[1].id)
                       for leader, _, _ in partitions_of(survivors[0].addr, topic).values()),
                   timeout=20)
        for p in range(3):
            v = f"paused-{p}"
            producer.send(topic, value=v.encode(), partition=p).get(timeout=20)
            acked.append(v)
        took = time.monotonic() - paused_at
        print(f"acks=all writes on every partition {took:.1f} s after the pause")
        assert took < 25, f"writes resumed only after {took:.1f} s"
    finally:
        c.resume(victim)
    producer.close()
    full_isr(bs, topic, 3)
    got = read_all(bs, topic, 3)
    seen = [v for records in got.values() for _, v in records]
    assert sorted(seen) == sorted(acked)


def test_quorum_and_preferred_leader_election(cluster_factory):
    c = cluster_factory()
    bs = c.bootstrap
    create_replicated(bs, "pl", 3)
    admin = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=20000)
    quorum = admin.describe_metadata_quorum()
    part = quorum["topics"][0]["partitions"][0]
    assert part["leader_id"] in (1, 2, 3)
    assert sorted(v["replica_id"] for v in part["current_voters"]) == [1, 2, 3]
    endpoints = {n["node_id"]: [(l["host"], l["port"]) for l in n["listeners"]]
                 for n in quorum["nodes"]}
    assert endpoints == {n.id: [("127.0.0.1", n.controller_port)] for n in c.nodes}

    # Partition 1's preferred leader is broker 2 (the seed's placement). A
    # controlled shutdown moves its leadership; after the restart it is back in
    # the ISR but not leading until a preferred election.
    assert partitions_of(bs, "pl")[1][0] == 2
    assert c.stop(2) == 0
    assert partitions_of(bs, "pl")[1][0] != 2
    c.restart(2)
    full_isr(bs, "pl", 3)
    assert partitions_of(bs, "pl")[1][0] != 2
    # kafka-python's admin keeps the controller id it learned; when that was
    # broker 2, which was just away, it has no connection for it
    # (UnknownBrokerIdError) and does not look again. A fresh admin, once every
    # node lists all three brokers, finds the controller as any client would.
    admin.close()
    all_see_three(c)
    admin = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=20000)
    admin.elect_leaders(0, {"pl": [1]})
    wait_until("broker 2 to lead partition 1 again", lambda: partitions_of(bs, "pl")[1][0] == 2)

    # The same with klog-admin's leader-election, as kafka-leader-election prints it.
    assert c.stop(3) == 0
    c.restart(3)
    full_isr(bs, "pl", 3)
    out = subprocess.run([str(BIN_DIR / "klog-admin"), "--bootstrap-server", bs,
                          "leader-election", "--election-type", "preferred",
                          "--all-topic-partitions"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Successfully completed leader election (PREFERRED) for partitions pl-2" in out.stdout
    assert partitions_of(bs, "pl")[2][0] == 3
    admin.close()
