//! One seeded run: the cluster, the workload, the faults, the checks.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use klog_broker::config::BrokerConfig;
use klog_broker::node::Node;
use klog_client::{Acks, Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use klog_codec::RecordBatches;
use klog_rt::task::Gate;
use rand::RngCore;

use crate::faults::{Fault, Schedule};
use crate::gate::NodeGate;
use crate::invariants::acked::{self, Acked};
use crate::invariants::replicas::{self, ReplicaLog};
use crate::invariants::{Observation, ReplicaView, StepChecks, Violation};

/// The topic the workload writes from the start.
const TOPIC: &str = "sim";
/// The topic the workload creates while the faults happen, then writes too.
const LATE_TOPIC: &str = "sim-late";
/// The workload's topics and their partition counts.
const TOPICS: [(&str, i32); 2] = [(TOPIC, 3), (LATE_TOPIC, 2)];
/// When the late topic is created.
const LATE_TOPIC_AT: Duration = Duration::from_secs(9);
/// The replication factor of the workload's topics (on 3 to 5 nodes).
const REPLICATION_FACTOR: usize = 3;
/// The consumer group.
const GROUP: &str = "sim-group";
/// The group's members, each a client host of its own.
const CONSUMERS: [&str; 2] = ["consumer", "consumer2"];
/// The client hosts.
const CLIENTS: [&str; 3] = ["client", CONSUMERS[0], CONSUMERS[1]];
/// One step of simulated time.
const TICK: Duration = Duration::from_millis(4);
/// The base message latency range.
const LATENCY: Duration = Duration::from_millis(2);
/// The faults start in this window of simulated time.
pub const FAULTS_FROM: Duration = Duration::from_secs(3);
/// The end of the window the faults start in.
pub const FAULTS_UNTIL: Duration = Duration::from_secs(15);
/// How long the workload may take, faults included, before the run fails.
const WORKLOAD_LIMIT: Duration = Duration::from_secs(150);
/// How long the healed cluster has to catch up.
const CONVERGE_LIMIT: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed: the fault schedule, turmoil's network and openraft's timeouts.
    pub seed: u64,
    /// Nodes (each a controller voter and a broker).
    pub nodes: usize,
    /// Records the producer sends.
    pub records: u64,
    /// Keep a trace of what happened (faults, leaderships, acknowledgements).
    pub trace: bool,
    /// The fault schedule to play instead of the seed's (regression cases pin
    /// the schedule that found their bug, whatever the generator draws later).
    pub schedule: Option<Schedule>,
}

impl Options {
    /// Three nodes, 200 records, no trace.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 3,
            records: 200,
            trace: false,
            schedule: None,
        }
    }
}

/// What a run did and found.
#[derive(Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Records the producer was to send.
    pub records: u64,
    /// Its fault schedule.
    pub schedule: Schedule,
    /// Records acknowledged to the producer.
    pub acked: usize,
    /// Committed offsets the group consumer read back.
    pub commits: usize,
    /// Whether the topic created during the faults was created.
    pub late_topic: bool,
    /// (partition, epoch) leaderships seen.
    pub leaderships: usize,
    /// Simulated time at the end.
    pub sim_time: Duration,
    /// Simulation steps.
    pub steps: u64,
    /// Broken invariants (empty: the run passed).
    pub violations: Vec<Violation>,
    /// What happened, if [`Options::trace`] was set.
    pub trace: Vec<String>,
}

impl Report {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command that replays this seed with its trace.
    pub fn replay_command(&self) -> String {
        let mut command = format!("scripts/sim --seed {} --trace", self.seed);
        let defaults = Options::new(self.seed);
        if self.nodes != defaults.nodes {
            command.push_str(&format!(" --nodes {}", self.nodes));
        }
        if self.records != defaults.records {
            command.push_str(&format!(" --records {}", self.records));
        }
        command
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {}: {} ({} acknowledged, {} commits read back, late topic {}, {} leaderships, {} ms simulated, {} steps)",
            self.seed,
            if self.passed() { "passed" } else { "FAILED" },
            self.acked,
            self.commits,
            if self.late_topic {
                "created"
            } else {
                "not created"
            },
            self.leaderships,
            self.sim_time.as_millis(),
            self.steps
        )?;
        write!(f, "schedule:\n{}", self.schedule)?;
        for v in &self.violations {
            writeln!(f, "violation: {v}")?;
        }
        if !self.passed() {
            writeln!(f, "replay: {}", self.replay_command())?;
        }
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        Ok(())
    }
}

/// What the hosts, the client and the harness share (all on one thread).
#[derive(Default)]
struct Shared {
    nodes: Vec<Option<Arc<Node>>>,
    incarnation: Vec<u32>,
    /// Per node, the incarnation that started after its power loss.
    power_lost: Vec<Option<u32>>,
    acked: Vec<Acked>,
    failed_sends: u64,
    /// Whether the late topic exists (the producer then writes to it too).
    late_topic: bool,
    /// Whether the producer has finished.
    produced: bool,
    /// What the group consumer read back as committed after each commit.
    committed: Vec<crate::invariants::groups::Committed>,
    trace: Vec<String>,
    tracing: bool,
}

impl Shared {
    fn note(&mut self, at: Duration, line: impl FnOnce() -> String) {
        if self.tracing {
            self.trace
                .push(format!("{:>7} ms  {}", at.as_millis(), line()));
        }
    }
}

fn name(node: usize) -> String {
    format!("n{node}")
}

/// The file a node reads its boot id from (rewritten by a power loss: a new boot).
fn boot_file(root: &Path, node: usize) -> PathBuf {
    root.join(format!("n{node}.boot_id"))
}

fn node_config(id: usize, dir: &Path, boot: &Path, nodes: usize) -> BrokerConfig {
    let voters = (1..=nodes)
        .map(|i| format!("{i}@n{i}:9093"))
        .collect::<Vec<_>>()
        .join(",");
    let pairs = [
        ("node.id", id.to_string()),
        ("process.roles", "broker,controller".to_owned()),
        (
            "listeners",
            "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093".to_owned(),
        ),
        ("advertised.listeners", format!("PLAINTEXT://n{id}:9092")),
        ("controller.listener.names", "CONTROLLER".to_owned()),
        ("controller.quorum.voters", voters),
        ("log.dirs", dir.display().to_string()),
        ("default.replication.factor", "3".to_owned()),
        ("min.insync.replicas", "2".to_owned()),
        ("offsets.topic.replication.factor", "3".to_owned()),
        ("offsets.topic.num.partitions", "1".to_owned()),
        ("auto.create.topics.enable", "false".to_owned()),
        ("klog.boot.id.file", boot.display().to_string()),
    ];
    let (config, unknown) =
        BrokerConfig::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)))
            .unwrap_or_else(|e| panic!("simulation node config: {e}"));
    assert!(unknown.is_empty(), "unknown keys {unknown:?}");
    config
}

/// The node's software: start it, register it with the harness, serve clients.
async fn node_main(
    id: usize,
    config: BrokerConfig,
    shared: Rc<RefCell<Shared>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = config.listener;
    let node = Node::start(config)
        .await
        .map_err(|e| format!("n{id} failed to start: {e}"))?;
    if let Some(slot) = shared.borrow_mut().nodes.get_mut(id - 1) {
        *slot = Some(node.clone());
    }
    let listener = klog_rt::net::bind(listen).await?;
    klog_broker::net::run(node.broker().clone(), listener, std::future::pending()).await?;
    Ok(())
}

/// The workload: create the topic (retrying while the cluster forms), then send
/// `records` records at a steady pace with an idempotent `acks=all` producer and
/// remember which were acknowledged where.
async fn client_main(
    nodes: usize,
    records: u64,
    shared: Rc<RefCell<Shared>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let start = tokio::time::Instant::now();
    let bootstrap = (1..=nodes)
        .map(|i| format!("n{i}:9092"))
        .collect::<Vec<_>>()
        .join(",");
    let mut client = ClientConfig::new(&bootstrap);
    client.request_timeout = Duration::from_secs(5);
    client.connect_timeout = Duration::from_secs(2);
    client.metadata_max_age = Duration::from_secs(5);
    let admin = Admin::new(client.clone())?;
    create_topic(&admin, TOPIC, 3).await?;
    // The late topic is created while the faults happen, by its own task.
    let late_shared = shared.clone();
    let late_admin = admin;
    let late = tokio::task::spawn_local(async move {
        tokio::time::sleep_until(start + LATE_TOPIC_AT).await;
        if create_topic(&late_admin, LATE_TOPIC, 2).await.is_ok() {
            late_shared.borrow_mut().late_topic = true;
        }
    });
    let mut config = ProducerConfig::new(&bootstrap);
    config.client = client;
    config.acks = Acks::All;
    config.enable_idempotence = true;
    config.linger = Duration::from_millis(5);
    config.delivery_timeout = Duration::from_secs(60);
    let producer = Producer::new(config).await?;
    let mut deliveries = Vec::new();
    for value in 0..records {
        let late = value % 2 == 1 && shared.borrow().late_topic;
        let (topic, partitions) = if late { TOPICS[1] } else { TOPICS[0] };
        let mut record = ProducerRecord::new(topic, value.to_string());
        record.partition = Some((value % partitions as u64) as i32);
        match producer.send(record).await {
            Ok(d) => deliveries.push((value, d)),
            Err(_) => shared.borrow_mut().failed_sends += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    producer.flush().await;
    for (value, d) in deliveries {
        match d.await {
            Ok(meta) => {
                let mut s = shared.borrow_mut();
                s.acked.push(Acked {
                    topic: meta.topic.to_string(),
                    partition: meta.partition,
                    offset: meta.offset,
                    value,
                });
            }
            Err(_) => shared.borrow_mut().failed_sends += 1,
        }
    }
    {
        let mut s = shared.borrow_mut();
        s.produced = true;
        let (acked, failed) = (s.acked.len(), s.failed_sends);
        s.note(start.elapsed(), || {
            format!("producer: done, {acked} acknowledged, {failed} failed")
        });
    }
    // The late topic's creation is part of the workload: wait for it (it retries
    // for at most a minute).
    let _ = late.await;
    Ok(())
}

/// Creates `name` (RF 3, min ISR 2), retrying while the cluster cannot (forming,
/// or no quorum during a fault) for at most a minute.
async fn create_topic(
    admin: &Admin,
    name: &str,
    partitions: i32,
) -> Result<(), Box<dyn std::error::Error>> {
    let topic = NewTopic::new(name, partitions)
        .with_replication_factor(REPLICATION_FACTOR as i16)
        .with_config("min.insync.replicas", "2");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let created = match admin.create_topics(std::slice::from_ref(&topic)).await {
            Ok(results) => results.into_iter().all(|r| match r {
                Ok(()) => true,
                Err(e) => e.to_string().contains("already exists"),
            }),
            Err(_) => false,
        };
        if created {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("topic {name} could not be created in 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A member of the group on the workload's first topic (`member`, one of
/// [`CONSUMERS`]): polls, commits what it consumed, reads the committed offsets
/// back; until the producer is done and it has caught up (or a bound).
async fn consumer_main(
    nodes: usize,
    shared: Rc<RefCell<Shared>>,
    member: &'static str,
) -> Result<(), Box<dyn std::error::Error>> {
    use klog_client::{GroupConfig, GroupConsumer, TopicPartition};
    let bootstrap = (1..=nodes)
        .map(|i| format!("n{i}:9092"))
        .collect::<Vec<_>>()
        .join(",");
    let mut config = GroupConfig::new(&bootstrap, GROUP);
    config.set("enable.auto.commit", "false")?;
    config.set("auto.offset.reset", "earliest")?;
    config.set("session.timeout.ms", "6000")?;
    config.set("heartbeat.interval.ms", "1000")?;
    config.consumer.client.request_timeout = Duration::from_secs(5);
    let mut consumer = GroupConsumer::new(config)?;
    consumer.subscribe([TOPIC]);
    let started = tokio::time::Instant::now();
    let deadline = started + WORKLOAD_LIMIT;
    let mut idle_after_produced = 0;
    // The generation and assignment last traced.
    let mut last: (i32, Vec<TopicPartition>) = (-1, Vec::new());
    while tokio::time::Instant::now() < deadline {
        let records = match consumer.poll(Duration::from_millis(500)).await {
            Ok(r) => r,
            Err(e) => {
                let at = tokio::time::Instant::now() - started;
                shared
                    .borrow_mut()
                    .note(at, || format!("{member}: poll failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if shared.borrow().produced && records.is_empty() {
            idle_after_produced += 1;
            if idle_after_produced > 10 {
                break;
            }
        }
        let generation = consumer.generation();
        let assigned = consumer.assignment();
        if (generation, &assigned) != (last.0, &last.1) {
            let at = tokio::time::Instant::now() - started;
            let names: Vec<String> = assigned
                .iter()
                .map(|tp| format!("{}-{}", tp.topic, tp.partition))
                .collect();
            shared.borrow_mut().note(at, || {
                format!("{member}: generation {generation}, assigned {names:?}")
            });
            last = (generation, assigned);
        }
        if records.is_empty() {
            continue;
        }
        if let Err(e) = consumer.commit_sync().await {
            let at = tokio::time::Instant::now() - started;
            shared
                .borrow_mut()
                .note(at, || format!("{member}: commit failed: {e}"));
            continue;
        }
        let assigned: Vec<TopicPartition> = consumer.assignment();
        if let Ok(committed) = consumer.committed(&assigned).await {
            let mut s = shared.borrow_mut();
            let at = tokio::time::Instant::now() - started;
            for (tp, offset) in committed {
                if let Some(offset) = offset {
                    s.note(at, || {
                        format!(
                            "{member}: generation {generation}: {}-{} committed {offset}",
                            tp.topic, tp.partition
                        )
                    });
                    s.committed.push(crate::invariants::groups::Committed {
                        generation,
                        topic: tp.topic.to_string(),
                        partition: tp.partition,
                        offset,
                    });
                }
            }
        }
    }
    let at = tokio::time::Instant::now() - started;
    shared.borrow_mut().note(at, || {
        format!("{member}: done, generation {}", consumer.generation())
    });
    let _ = consumer.close().await;
    Ok(())
}

/// A fault starting or ending.
#[derive(Debug, Clone)]
enum Edge {
    Start(Fault),
    End(Fault),
}

struct Harness<'a> {
    sim: turmoil::Sim<'a>,
    /// Draws the length of torn writes (from the seed).
    torn_bytes: rand::rngs::StdRng,
    /// The data root (node folders and boot id files).
    root: PathBuf,
    shared: Rc<RefCell<Shared>>,
    nodes: usize,
    /// How many overlapping crashes hold each node down.
    down: Vec<u32>,
    /// Each node's gate (pauses, slow disks), kept across its restarts.
    gates: Vec<Arc<NodeGate>>,
}

impl Harness<'_> {
    fn others(&self, node: usize) -> Vec<String> {
        (1..=self.nodes)
            .filter(|&n| n != node)
            .map(name)
            .chain(CLIENTS.iter().map(|c| (*c).to_owned()))
            .collect()
    }

    /// Every pair of hosts on either side of a split: a minority node and a
    /// node or client outside it.
    fn across(&self, minority: &[usize]) -> Vec<(String, String)> {
        minority
            .iter()
            .flat_map(|&m| {
                self.others(m)
                    .into_iter()
                    .filter(|o| !minority.iter().any(|&n| name(n) == *o))
                    .map(move |o| (name(m), o))
            })
            .collect()
    }

    fn apply(&mut self, edge: &Edge) {
        let at = self.sim.elapsed();
        self.shared.borrow_mut().note(at, || format!("{edge:?}"));
        match edge {
            Edge::Start(Fault::Crash { node, .. }) => {
                self.down[node - 1] += 1;
                if self.down[node - 1] == 1 {
                    self.gates[node - 1].crashed();
                    self.sim.crash(name(*node));
                    self.shared.borrow_mut().nodes[node - 1] = None;
                }
            }
            Edge::Start(Fault::PowerLoss { node, .. }) => {
                self.down[node - 1] += 1;
                let synced = self.synced_offsets(*node);
                self.gates[node - 1].crashed();
                self.sim.crash(name(*node));
                {
                    let mut shared = self.shared.borrow_mut();
                    shared.nodes[node - 1] = None;
                    shared.power_lost[node - 1] = Some(shared.incarnation[node - 1] + 1);
                }
                // The machine reboots: a new boot id.
                let boot = format!("boot-n{node}-{}", self.torn_bytes.next_u64());
                if let Err(e) = std::fs::write(boot_file(&self.root, *node), boot) {
                    panic!("boot id of n{node}: {e}");
                }
                let torn = self.torn_bytes.next_u32() % 48;
                for (dir, upto) in synced {
                    lose_unsynced(&dir, upto, torn as usize);
                }
            }
            Edge::End(Fault::Crash { node, .. } | Fault::PowerLoss { node, .. }) => {
                self.down[node - 1] = self.down[node - 1].saturating_sub(1);
                if self.down[node - 1] == 0 {
                    self.restart(*node);
                }
            }
            // turmoil drops a partitioned link's TCP segments for good (its TCP
            // does not retransmit), so a connection across it would stall
            // forever; real TCP delivers them once the network heals. Isolation
            // therefore holds the node's packets, and delivers them at the heal.
            Edge::Start(Fault::Isolate { node, .. }) => {
                for o in self.others(*node) {
                    self.sim.hold(name(*node), o);
                }
            }
            Edge::End(Fault::Isolate { node, .. }) => {
                for o in self.others(*node) {
                    self.sim.release(name(*node), o);
                }
            }
            Edge::Start(Fault::Split { minority, .. }) => {
                for (m, o) in self.across(minority) {
                    self.sim.hold(m, o);
                }
            }
            Edge::End(Fault::Split { minority, .. }) => {
                for (m, o) in self.across(minority) {
                    self.sim.release(m, o);
                }
            }
            Edge::Start(Fault::OneWay { from, to, .. }) => {
                self.sim.partition_oneway(name(*from), name(*to));
            }
            Edge::End(Fault::OneWay { from, to, .. }) => {
                self.sim.repair_oneway(name(*from), name(*to));
            }
            Edge::Start(Fault::Hold { a, b, .. }) => self.sim.hold(name(*a), name(*b)),
            Edge::End(Fault::Hold { a, b, .. }) => self.sim.release(name(*a), name(*b)),
            Edge::Start(Fault::Pause { node, .. }) => self.gates[node - 1].pause(),
            Edge::End(Fault::Pause { node, .. }) => self.gates[node - 1].resume(),
            Edge::Start(Fault::SlowDisk { node, delay, .. }) => {
                self.gates[node - 1].slow_disk(*delay);
            }
            Edge::End(Fault::SlowDisk { node, delay, .. }) => {
                self.gates[node - 1].disk_recovers(*delay);
            }
            Edge::Start(Fault::Slow { max, .. }) => self.sim.set_max_message_latency(*max),
            Edge::End(Fault::Slow { .. }) => self.sim.set_max_message_latency(LATENCY),
        }
    }

    /// Each partition log of `node` (not the metadata log, whose writes are
    /// fsynced before they count): its folder and its synced offset.
    fn synced_offsets(&self, node: usize) -> Vec<(PathBuf, i64)> {
        let shared = self.shared.borrow();
        let Some(Some(n)) = shared.nodes.get(node - 1) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for topic in n.broker().replicas().topic_list() {
            for p in topic.partitions.values() {
                let log = p.log();
                out.push((log.dir().to_owned(), log.synced_offset()));
            }
        }
        out
    }

    fn restart(&mut self, node: usize) {
        self.shared.borrow_mut().incarnation[node - 1] += 1;
        self.sim.bounce(name(node));
    }

    /// Heals every fault: links repaired and released, latency back to normal,
    /// crashed nodes restarted.
    fn heal(&mut self) {
        let names: Vec<String> = (1..=self.nodes)
            .map(name)
            .chain(CLIENTS.iter().map(|c| (*c).to_owned()))
            .collect();
        for a in &names {
            for b in &names {
                if a < b {
                    self.sim.repair(a.as_str(), b.as_str());
                    self.sim.release(a.as_str(), b.as_str());
                }
            }
        }
        self.sim.set_max_message_latency(LATENCY);
        for gate in &self.gates {
            gate.reset();
        }
        for node in 1..=self.nodes {
            if self.down[node - 1] > 0 {
                self.down[node - 1] = 0;
                self.restart(node);
            }
        }
    }

    fn observe(&self) -> Observation {
        let shared = self.shared.borrow();
        let mut obs = Observation {
            at_ms: self.sim.elapsed().as_millis(),
            replicas: Vec::new(),
        };
        for (i, node) in shared.nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            for topic in node.broker().replicas().topic_list() {
                for (&index, p) in &topic.partitions {
                    let (hw, leo) = {
                        let log = p.log();
                        (log.high_watermark(), log.log_end_offset())
                    };
                    obs.replicas.push(ReplicaView {
                        node: (i + 1) as i32,
                        incarnation: shared.incarnation[i],
                        lost_writes: shared.power_lost[i] == Some(shared.incarnation[i]),
                        topic: topic.meta.name.clone(),
                        partition: index,
                        is_leader: p.is_leader(),
                        leader_epoch: p.leader_epoch(),
                        isr: p.isr(),
                        high_watermark: hw,
                        log_end_offset: leo,
                    });
                }
            }
        }
        obs
    }

    /// Whether every partition of the workload's topics has a leader whose ISR is
    /// all its replicas, and every replica's log ends at the leader's high watermark.
    fn converged(&self, obs: &Observation) -> bool {
        if self.shared.borrow().nodes.iter().any(Option::is_none) {
            return false;
        }
        let late = self.shared.borrow().late_topic;
        let topics = if late { &TOPICS[..] } else { &TOPICS[..1] };
        topics.iter().all(|&(topic, partitions)| {
            (0..partitions).all(|p| {
                let replicas: Vec<&ReplicaView> = obs
                    .replicas
                    .iter()
                    .filter(|r| r.topic == topic && r.partition == p)
                    .collect();
                let leaders: Vec<&&ReplicaView> = replicas.iter().filter(|r| r.is_leader).collect();
                let [leader] = leaders.as_slice() else {
                    return false;
                };
                replicas.len() == REPLICATION_FACTOR
                    && leader.isr.len() == REPLICATION_FACTOR
                    && replicas.iter().all(|r| {
                        r.log_end_offset == leader.log_end_offset
                            && r.high_watermark == leader.high_watermark
                            && r.leader_epoch == leader.leader_epoch
                    })
            })
        })
    }

    /// Reads every replica of the workload's topic and checks the final invariants.
    fn final_checks(&self, out: &mut Vec<Violation>) {
        let shared = self.shared.borrow();
        crate::invariants::groups::check(&shared.committed, out);
        let topics = if shared.late_topic {
            &TOPICS[..]
        } else {
            &TOPICS[..1]
        };
        for &(topic, partitions) in topics {
            self.final_checks_of(&shared, topic, partitions, out);
        }
    }

    fn final_checks_of(
        &self,
        shared: &Shared,
        topic: &str,
        partitions: i32,
        out: &mut Vec<Violation>,
    ) {
        for p in 0..partitions {
            // (leads, its log, log start, (offset, value) below the high watermark)
            type Read = (bool, ReplicaLog, i64, Vec<(i64, u64)>);
            let mut logs: Vec<Read> = Vec::new();
            for (i, node) in shared.nodes.iter().enumerate() {
                let Some(part) = node
                    .as_ref()
                    .and_then(|n| n.broker().replicas().partition(topic, p))
                else {
                    continue;
                };
                let log = part.log();
                let hw = log.high_watermark();
                let start = log.log_start_offset();
                let bytes = log
                    .read_to_vec(start, usize::MAX / 2, hw)
                    .unwrap_or_default();
                let mut records = Vec::new();
                for batch in RecordBatches::new(&bytes) {
                    let Ok((_, batch)) = batch else {
                        out.push(Violation {
                            invariant: "replicas identical up to the high watermark",
                            detail: format!("{topic}-{p} on n{}: a batch does not parse", i + 1),
                        });
                        break;
                    };
                    let Ok(recs) = batch.records() else { continue };
                    for r in recs.iter().flatten() {
                        let value = r
                            .value
                            .and_then(|v| std::str::from_utf8(v).ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(u64::MAX);
                        records.push((r.offset, value));
                    }
                }
                let view = ReplicaLog {
                    node: (i + 1) as i32,
                    high_watermark: hw,
                    bytes,
                };
                logs.push((part.is_leader(), view, start, records));
            }
            logs.sort_by_key(|(leader, ..)| !*leader);
            if let Some((_, _, start, records)) = logs.first() {
                acked::check_partition(topic, p, *start, records, &shared.acked, out);
            }
            let views: Vec<ReplicaLog> = logs.into_iter().map(|(_, v, ..)| v).collect();
            replicas::check_partition(topic, p, &views, out);
        }
    }
}

/// What a power loss does to one log: everything after `synced` is gone, and
/// `torn` bytes of a write that was under way are left at the end of the last
/// segment. Done with the storage engine itself, offline (the node is down).
fn lose_unsynced(dir: &Path, synced: i64, torn: usize) {
    let config = klog_storage::LogConfig::default();
    if let Ok(mut log) = klog_storage::Log::open(dir, config, 0) {
        if log.log_end_offset() > synced {
            let _ = log.truncate_to(synced);
        }
        let _ = log.close();
    }
    if torn == 0 {
        return;
    }
    let last = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max();
    if let Some(path) = last
        && let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path)
    {
        use std::io::Write;
        // A batch header's start (base offset, length) and then garbage.
        let mut bytes = synced.to_be_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(0xA5u8, torn));
        let _ = f.write_all(&bytes[..torn.min(bytes.len())]);
    }
}

fn data_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// Runs one seed. See the crate docs.
pub fn run(options: &Options) -> Report {
    crate::install();
    klog_quorum::seed_election_rng(options.seed);
    let nodes = options.nodes;
    let schedule = options
        .schedule
        .clone()
        .unwrap_or_else(|| Schedule::generate(options.seed, nodes, FAULTS_FROM, FAULTS_UNTIL));
    let root = tempfile::Builder::new()
        .prefix("klog-sim-")
        .tempdir_in(data_root())
        .unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let sim = turmoil::Builder::new()
        .rng_seed(options.seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .simulation_duration(WORKLOAD_LIMIT + CONVERGE_LIMIT + Duration::from_secs(60))
        .tick_duration(TICK)
        .min_message_latency(Duration::ZERO)
        .max_message_latency(LATENCY)
        // A paused node's listeners keep receiving connection attempts (the
        // kernel queues them, the process does not accept): turmoil's default
        // backlog of 64 would overflow, and it panics when one does.
        .tcp_capacity(4096)
        .build();
    let shared = Rc::new(RefCell::new(Shared {
        nodes: vec![None; nodes],
        incarnation: vec![0; nodes],
        power_lost: vec![None; nodes],
        tracing: options.trace,
        ..Shared::default()
    }));
    let mut h = Harness {
        sim,
        torn_bytes: rand::SeedableRng::seed_from_u64(options.seed ^ 0x7042),
        root: root.path().to_owned(),
        shared: shared.clone(),
        nodes,
        down: vec![0; nodes],
        gates: (0..nodes).map(|_| Arc::new(NodeGate::default())).collect(),
    };
    for id in 1..=nodes {
        let dir = root.path().join(name(id));
        let boot = boot_file(root.path(), id);
        if let Err(e) = std::fs::write(&boot, format!("boot-n{id}-first")) {
            panic!("boot id of n{id}: {e}");
        }
        let shared = shared.clone();
        let gate: Arc<dyn Gate> = h.gates[id - 1].clone();
        h.sim.host(name(id), move || {
            let main = node_main(id, node_config(id, &dir, &boot, nodes), shared.clone());
            klog_rt::task::gated(gate.clone(), main)
        });
    }
    let records = options.records;
    let client_shared = shared.clone();
    h.sim
        .client("client", client_main(nodes, records, client_shared));
    for member in CONSUMERS {
        h.sim
            .client(member, consumer_main(nodes, shared.clone(), member));
    }

    let mut edges: Vec<(Duration, Edge)> = schedule
        .faults
        .iter()
        .flat_map(|s| {
            [
                (s.at, Edge::Start(s.fault.clone())),
                (s.at + s.fault.span(), Edge::End(s.fault.clone())),
            ]
        })
        .collect();
    edges.sort_by_key(|(at, _)| *at);
    let mut edges = std::collections::VecDeque::from(edges);

    let mut checks = StepChecks::default();
    let mut violations = Vec::new();
    let mut steps = 0u64;
    let mut leaders: BTreeMap<(String, i32, i32), i32> = BTreeMap::new();
    let mut client_done;
    // The workload and the faults.
    loop {
        let now = h.sim.elapsed();
        while edges.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, edge)) = edges.pop_front() {
                h.apply(&edge);
            }
        }
        match h.sim.step() {
            Ok(done) => client_done = done,
            Err(e) => {
                violations.push(Violation {
                    invariant: "the simulation runs",
                    detail: e.to_string(),
                });
                break;
            }
        }
        steps += 1;
        if steps.is_multiple_of(500) && std::env::var_os("KLOG_SIM_DEBUG").is_some() {
            eprintln!(
                "step {steps} t={} ms acked={}",
                h.sim.elapsed().as_millis(),
                shared.borrow().acked.len()
            );
        }
        let obs = h.observe();
        checks.check(&obs, &mut violations);
        if options.trace {
            for r in obs.replicas.iter().filter(|r| r.is_leader) {
                let key = (r.topic.clone(), r.partition, r.node);
                if leaders.get(&key) != Some(&r.leader_epoch) {
                    leaders.insert(key, r.leader_epoch);
                    shared.borrow_mut().note(h.sim.elapsed(), || {
                        format!(
                            "{}-{} led by n{} at epoch {}, isr {:?}",
                            r.topic, r.partition, r.node, r.leader_epoch, r.isr
                        )
                    });
                }
            }
        }
        if !violations.is_empty() || (client_done && edges.is_empty()) {
            break;
        }
        if now > WORKLOAD_LIMIT {
            violations.push(Violation {
                invariant: "the workload finishes",
                detail: format!("still producing after {} s", WORKLOAD_LIMIT.as_secs()),
            });
            break;
        }
    }
    // Heal, and let the replicas catch up.
    if violations.is_empty() {
        h.heal();
        let until = h.sim.elapsed() + CONVERGE_LIMIT;
        loop {
            if let Err(e) = h.sim.step() {
                violations.push(Violation {
                    invariant: "the simulation runs",
                    detail: e.to_string(),
                });
                break;
            }
            steps += 1;
            let obs = h.observe();
            checks.check(&obs, &mut violations);
            if !violations.is_empty() || h.converged(&obs) {
                break;
            }
            if h.sim.elapsed() > until {
                violations.push(Violation {
                    invariant: "replicas caught up once healed",
                    detail: format!("not converged {} s after healing", CONVERGE_LIMIT.as_secs()),
                });
                break;
            }
        }
    }
    if violations.is_empty() {
        h.final_checks(&mut violations);
    }
    let sim_time = h.sim.elapsed();
    drop(h);
    let shared = Rc::try_unwrap(shared)
        .map(RefCell::into_inner)
        .unwrap_or_else(|rc| std::mem::take(&mut *rc.borrow_mut()));
    Report {
        seed: options.seed,
        nodes: options.nodes,
        records: options.records,
        schedule,
        acked: shared.acked.len(),
        commits: shared.committed.len(),
        late_topic: shared.late_topic,
        leaderships: checks.leaderships(),
        sim_time,
        steps,
        violations,
        trace: shared.trace,
    }
}
