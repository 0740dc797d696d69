"""One kafka-python KafkaConsumer group member, run as its own process by
test_groups.py so that it can be killed by pid like a crashed application.

Usage: group_member.py BOOTSTRAP TOPIC GROUP OUT_FILE STOP_FILE [SESSION_MS]

Writes one JSON object per line to OUT_FILE: {"ev": "assigned"|"revoked", "parts":
[...]} on rebalances, {"ev": "record", "p": partition, "o": offset, "v": value} for
every record, {"ev": "commit_failed"} if a commit is refused, {"ev": "closed"} after
leaving the group. Commits synchronously after processing each poll, so whatever it
recorded before a rebalance is committed. Stops (LeaveGroup) when STOP_FILE exists.
"""

import json
import os
import sys
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer


def main():
    bootstrap, topic, group, out_path, stop_file = sys.argv[1:6]
    session_ms = int(sys.argv[6]) if len(sys.argv) > 6 else 10000
    out = open(out_path, "a", buffering=1)

    def emit(**kv):
        kv["t"] = time.time()
        out.write(json.dumps(kv) + "\n")

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            emit(ev="revoked", parts=sorted(tp.partition for tp in revoked))

        def on_partitions_assigned(self, assigned):
            emit(ev="assigned", parts=sorted(tp.partition for tp in assigned))

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=os.path.basename(out_path),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=300,
        max_poll_interval_ms=60000,
    )
    consumer.subscribe([topic], listener=Listener())
    deadline = time.time() + 300  # never outlive a broken test run
    while not os.path.exists(stop_file) and time.time() < deadline:
        batches = consumer.poll(timeout_ms=200)
        for tp, records in batches.items():
            for r in records:
                emit(ev="record", p=tp.partition, o=r.offset, v=r.value.decode())
        if batches:
            try:
                consumer.commit()
            except Exception as e:  # a rebalance started: the next poll rejoins
                emit(ev="commit_failed", error=type(e).__name__)
    consumer.close()
    emit(ev="closed")


if __name__ == "__main__":
    main()
