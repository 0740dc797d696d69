//! Group consumers against the real broker binary: partitions shared within a
//! group, rebalances when members join and leave, commits and resuming from them,
//! cooperative-sticky rebalances and static membership.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{Broker, run};
use klog_client::{
    Admin, Assignor, AutoOffsetReset, ClientConfig, GroupConfig, GroupConsumer, NewTopic, Producer,
    ProducerConfig, ProducerRecord, RebalanceListener, TopicPartition,
};
use tokio::sync::mpsc;

const GROUP_BROKER: &[&str] = &["group.initial.rebalance.delay.ms=0"];

async fn create_topic(addr: &str, name: &str, partitions: i32) -> anyhow::Result<()> {
    let admin = Admin::new(ClientConfig::new(addr))?;
    for r in admin
        .create_topics(&[NewTopic::new(name, partitions)])
        .await?
    {
        r?;
    }
    Ok(())
}

async fn produce(addr: &str, topic: &str, prefix: &str, n: usize) -> anyhow::Result<()> {
    let producer = Producer::new(ProducerConfig::new(addr)).await?;
    let mut pending = Vec::new();
    for i in 0..n {
        let record = ProducerRecord::new(topic, format!("{prefix}-{i}")).with_key(format!("k{i}"));
        pending.push(producer.send(record).await?);
    }
    for p in pending {
        p.await?;
    }
    producer.close().await;
    Ok(())
}

fn config(addr: &str, group: &str) -> GroupConfig {
    let mut c = GroupConfig::new(addr, group);
    c.session_timeout = Duration::from_secs(10);
    c.heartbeat_interval = Duration::from_millis(300);
    c.max_poll_interval = Duration::from_secs(20);
    c.consumer.auto_offset_reset = AutoOffsetReset::Earliest;
    c.consumer.fetch_max_wait = Duration::from_millis(100);
    c
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Revoked(u64, Vec<TopicPartition>),
    Assigned(u64, Vec<TopicPartition>),
    Lost(u64, Vec<TopicPartition>),
}

/// Records callbacks with a sequence number shared by every member of a test, so
/// that the order of events across members can be checked.
struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    clock: Arc<AtomicU64>,
}

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        let t = self.clock.fetch_add(1, Ordering::SeqCst);
        self.events
            .lock()
            .expect("lock")
            .push(Event::Revoked(t, p.to_vec()));
    }
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        let t = self.clock.fetch_add(1, Ordering::SeqCst);
        self.events
            .lock()
            .expect("lock")
            .push(Event::Assigned(t, p.to_vec()));
    }
    fn on_partitions_lost(&mut self, p: &[TopicPartition]) {
        let t = self.clock.fetch_add(1, Ordering::SeqCst);
        self.events
            .lock()
            .expect("lock")
            .push(Event::Lost(t, p.to_vec()));
    }
}

/// (member, partition, offset, value)
type Seen = (usize, i32, i64, String);

/// A group member polling on its own task until stopped.
struct Member {
    stop: Arc<AtomicBool>,
    assigned: Arc<Mutex<Vec<TopicPartition>>>,
    generation: Arc<Mutex<i32>>,
    events: Arc<Mutex<Vec<Event>>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Member {
    fn spawn(
        id: usize,
        config: GroupConfig,
        topic: &str,
        clock: Arc<AtomicU64>,
        seen: mpsc::UnboundedSender<Seen>,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let assigned = Arc::new(Mutex::new(Vec::new()));
        let generation = Arc::new(Mutex::new(-1));
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut consumer = GroupConsumer::new(config)?;
        consumer.subscribe_with(
            [topic.to_owned()],
            Box::new(Recorder {
                events: events.clone(),
                clock,
            }),
        );
        let (s, a, g) = (stop.clone(), assigned.clone(), generation.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Acquire) {
                let records = consumer.poll(Duration::from_millis(200)).await?;
                *a.lock().expect("lock") = consumer.assignment();
                *g.lock().expect("lock") = consumer.generation();
                for r in records {
                    let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
                    let _ = seen.send((id, r.partition, r.offset, v.into_owned()));
                }
            }
            consumer.close().await?;
            Ok(())
        });
        Ok(Self {
            stop,
            assigned,
            generation,
            events,
            task,
        })
    }

    fn assigned(&self) -> BTreeSet<TopicPartition> {
        self.assigned
            .lock()
            .expect("lock")
            .iter()
            .cloned()
            .collect()
    }

    fn generation(&self) -> i32 {
        *self.generation.lock().expect("lock")
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().expect("lock").clone()
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Release);
        self.task.await?
    }
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn all_partitions(topic: &str, n: i32) -> BTreeSet<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}

/// The assignments of `members` are disjoint and cover `expected`, with these sizes.
fn partitioned(members: &[&Member], expected: &BTreeSet<TopicPartition>, sizes: &[usize]) -> bool {
    let sets: Vec<BTreeSet<TopicPartition>> = members.iter().map(|m| m.assigned()).collect();
    let union: BTreeSet<TopicPartition> = sets.iter().flatten().cloned().collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let mut got: Vec<usize> = sets.iter().map(BTreeSet::len).collect();
    got.sort_unstable();
    let mut want = sizes.to_vec();
    want.sort_unstable();
    union == *expected && total == expected.len() && got == want
}

/// Three members of one group on a six-partition topic: two partitions each, and
/// every record is consumed exactly once, each partition by one member only.
#[test]
fn three_members_consume_every_record_exactly_once() {
    let broker = Broker::start_with(GROUP_BROKER);
    run(Duration::from_secs(120), async {
        let addr = broker.addr();
        create_topic(&addr, "orders", 6).await?;
        let clock = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let members: Vec<Member> = (0..3)
            .map(|i| Member::spawn(i, config(&addr, "g1"), "orders", clock.clone(), tx.clone()))
            .collect::<anyhow::Result<_>>()?;
        let refs: Vec<&Member> = members.iter().collect();
        let all = all_partitions("orders", 6);
        wait_for("a 2/2/2 assignment", Duration::from_secs(30), || {
            partitioned(&refs, &all, &[2, 2, 2])
        })
        .await?;
        produce(&addr, "orders", "v", 600).await?;
        let mut seen: Vec<Seen> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 600 && Instant::now() < deadline {
            if let Ok(Some(s)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                seen.push(s);
            }
        }
        // Anything more would be a duplicate.
        tokio::time::sleep(Duration::from_millis(700)).await;
        while let Ok(s) = rx.try_recv() {
            seen.push(s);
        }
        for m in members {
            m.stop().await?;
        }
        let unique: HashSet<(i32, i64)> = seen.iter().map(|s| (s.1, s.2)).collect();
        ensure!(seen.len() == 600, "{} records seen", seen.len());
        ensure!(unique.len() == 600, "duplicates: {} unique", unique.len());
        let values: HashSet<&str> = seen.iter().map(|s| s.3.as_str()).collect();
        ensure!(values.len() == 600);
        let mut owner: HashMap<i32, usize> = HashMap::new();
        for (member, partition, _, _) in &seen {
            let o = owner.entry(*partition).or_insert(*member);
            ensure!(*o == *member, "partition {partition} read by two members");
        }
        ensure!(owner.len() == 6);
        Ok(())
    });
}

/// Eager range: a second member joining takes half the partitions (the first one
/// revokes everything first); when it closes (LeaveGroup), the first one gets all
/// of them back well before the session timeout would have expired.
#[test]
fn members_joining_and_leaving_move_partitions() {
    let broker = Broker::start_with(GROUP_BROKER);
    run(Duration::from_secs(120), async {
        let addr = broker.addr();
        create_topic(&addr, "moves", 6).await?;
        let clock = Arc::new(AtomicU64::new(0));
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut slow = config(&addr, "g2");
        slow.session_timeout = Duration::from_secs(60);
        slow.assignors = vec![Assignor::Range];
        let all = all_partitions("moves", 6);
        let m0 = Member::spawn(0, slow.clone(), "moves", clock.clone(), tx.clone())?;
        wait_for("m0 owns all", Duration::from_secs(20), || {
            m0.assigned() == all
        })
        .await?;
        let m1 = Member::spawn(1, slow.clone(), "moves", clock.clone(), tx.clone())?;
        wait_for("a 3/3 split", Duration::from_secs(20), || {
            partitioned(&[&m0, &m1], &all, &[3, 3])
        })
        .await?;
        let events = m0.events();
        ensure!(
            events
                .iter()
                .any(|e| matches!(e, Event::Revoked(_, p) if p.len() == 6)),
            "eager member did not revoke everything: {events:?}"
        );
        let left_at = Instant::now();
        m1.stop().await?;
        wait_for("m0 owns all again", Duration::from_secs(20), || {
            m0.assigned() == all
        })
        .await?;
        ensure!(
            left_at.elapsed() < Duration::from_secs(30),
            "took the session timeout, LeaveGroup did not work"
        );
        m0.stop().await?;
        Ok(())
    });
}

/// Manual commit, close, restart: the next member of the group reads from the
/// committed offsets (not from auto.offset.reset = earliest); auto-commit on close
/// covers what was consumed.
#[test]
fn a_restarted_consumer_resumes_from_committed_offsets() {
    let broker = Broker::start_with(GROUP_BROKER);
    run(Duration::from_secs(120), async {
        let addr = broker.addr();
        create_topic(&addr, "resume", 6).await?;
        produce(&addr, "resume", "first", 120).await?;
        let mut manual = config(&addr, "g3");
        manual.enable_auto_commit = false;
        let mut c = GroupConsumer::new(manual.clone())?;
        c.subscribe(["resume"]);
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while got < 120 && Instant::now() < deadline {
            got += c.poll(Duration::from_millis(500)).await?.len();
        }
        ensure!(got == 120, "first consumer read {got}");
        c.commit_sync().await?;
        let assigned = c.assignment();
        let committed = c.committed(&assigned).await?;
        let total: i64 = committed.iter().map(|(_, o)| o.unwrap_or(0)).sum();
        ensure!(
            total == 120,
            "committed offsets sum to {total}: {committed:?}"
        );
        c.close().await?;

        produce(&addr, "resume", "second", 60).await?;
        // Auto-commit on: the close commits what was read.
        let mut auto = config(&addr, "g3");
        auto.auto_commit_interval = Duration::from_millis(200);
        let mut c = GroupConsumer::new(auto.clone())?;
        c.subscribe(["resume"]);
        let mut values = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while values.len() < 60 && Instant::now() < deadline {
            for r in c.poll(Duration::from_millis(500)).await? {
                values.push(
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned(),
                );
            }
        }
        for _ in 0..3 {
            values.extend(c.poll(Duration::from_millis(200)).await?.iter().map(|r| {
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
            }));
        }
        ensure!(
            values.len() == 60,
            "second consumer read {} records",
            values.len()
        );
        ensure!(
            values.iter().all(|v| v.starts_with("second-")),
            "re-read records from before the commit"
        );
        c.close().await?;

        let mut c = GroupConsumer::new(auto)?;
        c.subscribe(["resume"]);
        let mut extra = 0;
        for _ in 0..6 {
            extra += c.poll(Duration::from_millis(300)).await?.len();
        }
        ensure!(c.assignment().len() == 6, "third consumer not assigned");
        ensure!(
            extra == 0,
            "{extra} records read again after an auto-commit on close"
        );
        c.close().await?;
        Ok(())
    });
}

/// Cooperative-sticky: when a second member joins, the first keeps three of its
/// partitions throughout and revokes only the three that move, and the newcomer
/// gets each moved partition only after the first member revoked it (KIP-429).
#[test]
fn cooperative_sticky_keeps_unchanged_partitions() {
    let broker = Broker::start_with(GROUP_BROKER);
    run(Duration::from_secs(120), async {
        let addr = broker.addr();
        create_topic(&addr, "coop", 6).await?;
        let clock = Arc::new(AtomicU64::new(0));
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut coop = config(&addr, "g4");
        coop.assignors = vec![Assignor::CooperativeSticky];
        let all = all_partitions("coop", 6);
        let m0 = Member::spawn(0, coop.clone(), "coop", clock.clone(), tx.clone())?;
        wait_for("m0 owns all", Duration::from_secs(20), || {
            m0.assigned() == all
        })
        .await?;
        let m1 = Member::spawn(1, coop.clone(), "coop", clock.clone(), tx.clone())?;
        wait_for("a 3/3 split", Duration::from_secs(30), || {
            partitioned(&[&m0, &m1], &all, &[3, 3])
        })
        .await?;
        let kept = m0.assigned();
        let e0 = m0.events();
        let revoked: Vec<(u64, TopicPartition)> = e0
            .iter()
            .flat_map(|e| match e {
                Event::Revoked(t, p) => p.iter().map(|tp| (*t, tp.clone())).collect(),
                _ => Vec::new(),
            })
            .collect();
        ensure!(revoked.len() == 3, "m0 revoked {revoked:?}");
        ensure!(
            revoked.iter().all(|(_, tp)| !kept.contains(tp)),
            "m0 revoked a partition it kept"
        );
        ensure!(!e0.iter().any(|e| matches!(e, Event::Lost(..))));
        for e in m1.events() {
            if let Event::Assigned(t, parts) = e {
                for tp in parts {
                    let r = revoked
                        .iter()
                        .find(|(_, r)| *r == tp)
                        .context("m1 got a partition m0 never revoked")?;
                    ensure!(r.0 < t, "{tp} assigned to m1 before m0 revoked it");
                }
            }
        }
        m1.stop().await?;
        m0.stop().await?;
        Ok(())
    });
}

/// Static membership (KIP-345): a member with a group.instance.id that closes and
/// comes back within the session timeout gets its partitions back without the
/// other member going through a rebalance.
#[test]
fn static_member_restart_keeps_its_partitions() {
    let broker = Broker::start_with(GROUP_BROKER);
    run(Duration::from_secs(120), async {
        let addr = broker.addr();
        create_topic(&addr, "static", 6).await?;
        let clock = Arc::new(AtomicU64::new(0));
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut a = config(&addr, "g5");
        a.group_instance_id = Some("instance-a".into());
        a.session_timeout = Duration::from_secs(30);
        let mut b = a.clone();
        b.group_instance_id = Some("instance-b".into());
        let all = all_partitions("static", 6);
        let ma = Member::spawn(0, a.clone(), "static", clock.clone(), tx.clone())?;
        let mb = Member::spawn(1, b, "static", clock.clone(), tx.clone())?;
        wait_for("a 3/3 split", Duration::from_secs(30), || {
            partitioned(&[&ma, &mb], &all, &[3, 3])
        })
        .await?;
        // Let the group settle, then remember b's view.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before_a = ma.assigned();
        let (gen_b, events_b) = (mb.generation(), mb.events().len());
        ma.stop().await?;
        let ma = Member::spawn(0, a, "static", clock.clone(), tx.clone())?;
        wait_for("a back", Duration::from_secs(20), || {
            !ma.assigned().is_empty()
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure!(
            ma.assigned() == before_a,
            "static member came back with other partitions"
        );
        ensure!(
            mb.generation() == gen_b && mb.events().len() == events_b,
            "the other member rebalanced: generation {} -> {}, events {:?}",
            gen_b,
            mb.generation(),
            mb.events()
        );
        ma.stop().await?;
        mb.stop().await?;
        Ok(())
    });
}

/// The admin client lists the group, describes its member and assignment, and
/// reports lag = log end offset - committed offset per partition.
#[test]
fn admin_lists_and_describes_groups_with_lag() {
    let broker = Broker::start_with(GROUP_BROKER);
    run(Duration::from_secs(120), async {
        let addr = broker.addr();
        create_topic(&addr, "lagging", 3).await?;
        let producer = Producer::new(ProducerConfig::new(&addr)).await?;
        for p in 0..3 {
            for i in 0..10 {
                producer
                    .send(ProducerRecord::new("lagging", format!("{i}")).with_partition(p))
                    .await?
                    .await?;
            }
        }
        producer.close().await;
        let mut cfg = config(&addr, "lag-group");
        cfg.enable_auto_commit = false;
        let mut c = GroupConsumer::new(cfg)?;
        c.subscribe(["lagging"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.assignment().len() < 3 && Instant::now() < deadline {
            c.poll(Duration::from_millis(100)).await?;
        }
        // Partition p committed at offset 2p: lag 10 - 2p.
        let offsets: Vec<(TopicPartition, i64)> = (0..3)
            .map(|p| (TopicPartition::new("lagging", p), i64::from(2 * p)))
            .collect();
        c.commit_offsets_sync(&offsets).await?;

        let admin = Admin::new(ClientConfig::new(&addr))?;
        let groups = admin.list_groups().await?;
        ensure!(
            groups
                .iter()
                .any(|g| g.group_id == "lag-group" && g.protocol_type == "consumer"),
            "{groups:?}"
        );
        let d = admin.describe_group("lag-group").await?;
        ensure!(d.state == "Stable", "state {}", d.state);
        ensure!(d.protocol == "range", "protocol {}", d.protocol);
        ensure!(d.members.len() == 1);
        ensure!(d.members[0].member_id == c.member_id());
        ensure!(d.members[0].assignment.len() == 3);
        let lag = admin.group_lag("lag-group").await?;
        ensure!(lag.len() == 3, "{lag:?}");
        for (p, l) in lag.iter().enumerate() {
            let p = p as i64;
            ensure!(l.partition == TopicPartition::new("lagging", p as i32));
            ensure!(l.committed == Some(2 * p) && l.log_end == 10, "{l:?}");
            ensure!(l.lag == Some(10 - 2 * p), "{l:?}");
            ensure!(l.member_id.as_deref() == Some(c.member_id()));
        }
        c.close().await?;
        let d = admin.describe_group("lag-group").await?;
        ensure!(d.state == "Empty" && d.members.is_empty(), "{d:?}");
        Ok(())
    });
}
