//! The active controller's decisions: a sans-IO state machine over the metadata
//! image (CLUSTER.md, "What the active controller decides").
//!
//! Every method takes the committed image and the current time, and returns the
//! records to write to the metadata log with the answer to give once they are
//! committed ([`Outcome`]). It changes nothing in the image itself: the runtime
//! writes the records through the quorum, every node (this one included) applies
//! them with [`MetadataImage::apply_batch`], and only then is the answer sent. The
//! runtime handles one request at a time, so every decision sees the records of
//! the previous one. What the controller keeps itself is volatile: broker sessions
//! (heartbeat deadlines, reset when a controller becomes active) and a seeded
//! generator for topic ids.
//!
//! ```text
//!  events in (with now)                        records out + answer
//!  ────────────────────                        ────────────────────
//!  register_broker ──┐                     ┌─► RegisterBroker, PartitionChange (ELR, fence)
//!  heartbeat        ─┤                     ├─► UnfenceBroker + elections, BeginShutdown + moves
//!  tick             ─┤   ┌────────────┐    ├─► FenceBroker + elections, preferred elections
//!  create_topics    ─┼──►│ controller │────┼─► Topic, Partition, Config
//!  create_partitions─┤   └────────────┘    ├─► Partition
//!  delete_topics    ─┤         ▲           ├─► RemoveTopic
//!  alter_partition  ─┤         │           ├─► PartitionChange (ISR, KIP-497 epochs)
//!  elect_leaders    ─┤   &MetadataImage    ├─► PartitionChange (leader)
//!  set_configs      ─┤   (committed)       ├─► Config
//!  allocate_pids    ─┘                     └─► ProducerIds
//! ```

use std::collections::{BTreeMap, BTreeSet};

use klog_codec::protocol::ResponseError;
use klog_replication::{NO_LEADER, PartitionRegistration};

use super::image::MetadataImage;
use super::records::{
    BrokerRegistration, ConfigResource, Endpoint, MetadataRecord, TopicId, partition_change,
};

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// The controller's settings (Kafka's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker without a heartbeat for this long is
    /// fenced.
    pub session_timeout_ms: i64,
    /// `num.partitions`: partitions of a topic created without a count.
    pub default_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `min.insync.replicas`: the default of topics without their own.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`: the default of topics without their own.
    pub unclean_leader_election: bool,
    /// Producer ids handed out per `AllocateProducerIds`.
    pub producer_id_block_size: i64,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub leader_imbalance_check_interval_ms: i64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 2_500,
            default_partitions: 1,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            producer_id_block_size: 1000,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
        }
    }
}

/// Records to write, and the answer to give once they are committed and applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    /// The records, in order, as one log entry (empty: nothing to write).
    pub records: Vec<MetadataRecord>,
    /// The answer.
    pub response: T,
}

/// A `BrokerRegistration` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBroker {
    /// `node.id`.
    pub id: i32,
    /// This run's id.
    pub incarnation: String,
    /// Its listeners.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// The epoch it had when it last stopped cleanly, or -1 (KIP-966: an unclean
    /// stop may have lost unsynced records, so it leaves every ELR).
    pub previous_epoch: i64,
}

/// A `BrokerHeartbeat` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Broker id.
    pub id: i32,
    /// Its epoch, from its registration.
    pub epoch: i64,
    /// The offset of the metadata log it has applied.
    pub metadata_offset: u64,
    /// It wants to stay fenced (not ready yet).
    pub want_fence: bool,
    /// It wants to shut down (SIGTERM): move its leaderships away first.
    pub want_shut_down: bool,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// It has applied the log up to its registration.
    pub is_caught_up: bool,
    /// It is fenced (after the records of this heartbeat are applied).
    pub is_fenced: bool,
    /// It may stop: it leads nothing any more.
    pub should_shut_down: bool,
}

/// One topic of a `CreateTopics` request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateTopic {
    /// Topic name.
    pub name: String,
    /// Partitions, or -1 for `num.partitions`.
    pub num_partitions: i32,
    /// Replication factor, or -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// A manual assignment: replicas by partition index (then `num_partitions` and
    /// `replication_factor` must be -1).
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Topic configuration overrides.
    pub configs: BTreeMap<String, String>,
}

/// The answer for one topic of `CreateTopics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Topic name.
    pub name: String,
    /// Kafka error code (0: created).
    pub error: i16,
    /// Why, when refused.
    pub message: Option<String>,
    /// The new topic's id.
    pub id: Option<TopicId>,
    /// Its partitions.
    pub num_partitions: i32,
    /// Its replication factor.
    pub replication_factor: i16,
}

/// Checks a topic's configuration overrides (the broker knows their meaning):
/// returns the Kafka error code and message of the first bad one.
pub type ConfigValidator<'a> = &'a dyn Fn(&BTreeMap<String, String>) -> Result<(), (i16, String)>;

/// An `AlterPartition` for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    /// Its topic.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The leader epoch the ISR was computed at.
    pub leader_epoch: i32,
    /// The partition epoch it was computed from.
    pub partition_epoch: i32,
    /// The proposed ISR.
    pub isr: Vec<i32>,
}

/// An existing topic to carry into an empty metadata log: a single node's data dir
/// from before the quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapTopic {
    /// Topic name.
    pub name: String,
    /// The latest leader epoch found in each partition's log, by index.
    pub leader_epochs: Vec<i32>,
    /// Configuration overrides.
    pub configs: BTreeMap<String, String>,
}

/// A broker's session, kept by the active controller only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Session {
    epoch: i64,
    deadline: i64,
}

/// Records being built against a scratch copy of the image, so that each record
/// sees the ones before it (two brokers fenced in one tick touch the same
/// partitions).
struct Changes<'a> {
    base: &'a MetadataImage,
    scratch: Option<MetadataImage>,
    records: Vec<MetadataRecord>,
}

impl<'a> Changes<'a> {
    fn new(base: &'a MetadataImage) -> Self {
        Self {
            base,
            scratch: None,
            records: Vec::new(),
        }
    }

    fn image(&self) -> &MetadataImage {
        self.scratch.as_ref().unwrap_or(self.base)
    }

    fn push(&mut self, record: MetadataRecord) {
        let scratch = self.scratch.get_or_insert_with(|| self.base.clone());
        let mut delta = Default::default();
        if let Err(e) = scratch.apply(&record, &mut delta) {
            // The controller only writes records it derived from this image.
            debug_assert!(false, "controller built a record it cannot apply: {e}");
            return;
        }
        self.records.push(record);
    }

    /// Changes every partition for which `change` returns a new registration.
    fn change_partitions(
        &mut self,
        mut change: impl FnMut(&MetadataImage, &PartitionRegistration) -> Option<PartitionRegistration>,
    ) {
        let mut found = Vec::new();
        for (t, i, p) in self.image().partitions() {
            if let Some(new) = change(self.image(), p)
                && let Some(r) = partition_change(t.id, i, p, &new)
            {
                found.push(r);
            }
        }
        for r in found {
            self.push(r);
        }
    }

    fn outcome<T>(self, response: T) -> Outcome<T> {
        Outcome {
            records: self.records,
            response,
        }
    }
}

/// Kafka's topic name rule: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The active controller. See the module docs.
#[derive(Debug, Clone)]
pub struct Controller {
    config: ControllerConfig,
    sessions: BTreeMap<i32, Session>,
    id_state: u64,
    next_rebalance_check: i64,
}

impl Controller {
    /// A controller with `config`; topic ids come from a generator seeded with
    /// `id_seed` (the runtime seeds it randomly; tests pass a constant).
    pub fn new(config: ControllerConfig, id_seed: u64) -> Self {
        Self {
            config,
            sessions: BTreeMap::new(),
            id_state: id_seed,
            next_rebalance_check: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// This node became the active controller: every registered broker gets a full
    /// session from `now` to send its next heartbeat.
    pub fn activate(&mut self, image: &MetadataImage, now: i64) {
        self.sessions = image
            .brokers
            .values()
            .map(|b| {
                (
                    b.registration.id,
                    Session {
                        epoch: b.registration.epoch,
                        deadline: now + self.config.session_timeout_ms,
                    },
                )
            })
            .collect();
        self.next_rebalance_check = now + self.config.leader_imbalance_check_interval_ms;
    }

    /// Forgets a broker's session: the runtime knows its previous incarnation is
    /// gone (the broker is the controller's own process, just restarted), so a
    /// new registration need not wait for the session to run out.
    pub fn forget_session(&mut self, broker: i32) {
        self.sessions.remove(&broker);
    }

    /// A topic id no topic of `image` has (nor the zero id): two controllers seeded
    /// alike (in one process, say) must not give a new topic an existing id.
    fn next_topic_id(&mut self, image: &MetadataImage) -> TopicId {
        loop {
            // splitmix64, twice: 128 bits that differ for every topic.
            let mut half = || {
                self.id_state = self.id_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = self.id_state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            };
            let id = TopicId((u128::from(half()) << 64) | u128::from(half()));
            if id.0 != 0 && image.topic_by_id(id).is_none() {
                return id;
            }
        }
    }

    fn min_isr(&self, image: &MetadataImage, topic: &str) -> usize {
        image
            .config(
                &ConfigResource::Topic(topic.to_owned()),
                "min.insync.replicas",
            )
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.config.min_insync_replicas)
    }

    fn unclean(&self, image: &MetadataImage, topic: &str) -> bool {
        image
            .config(
                &ConfigResource::Topic(topic.to_owned()),
                "unclean.leader.election.enable",
            )
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.config.unclean_leader_election)
    }

    /// Takes `broker` out of every ISR and elects new leaders where it led, as for a
    /// fenced or shutting-down broker.
    fn move_away_from(&self, changes: &mut Changes<'_>, broker: i32) {
        let mut found = Vec::new();
        for (t, i, p) in changes.image().partitions() {
            if !p.replicas.contains(&broker) {
                continue;
            }
            let mut new = p.clone();
            let image = changes.image();
            let active = |r: i32| r != broker && image.is_active(r);
            new.fence_broker(
                broker,
                active,
                self.min_isr(image, &t.name),
                self.unclean(image, &t.name),
            );
            if let Some(r) = partition_change(t.id, i, p, &new) {
                found.push(r);
            }
        }
        for r in found {
            changes.push(r);
        }
    }

    /// Elects leaders for offline partitions that `broker`, now active, can lead.
    fn elect_offline_for(&self, changes: &mut Changes<'_>, broker: i32) {
        let mut found = Vec::new();
        for (t, i, p) in changes.image().offline_partitions() {
            if !p.replicas.contains(&broker) {
                continue;
            }
            let mut new = p.clone();
            let image = changes.image();
            new.broker_unfenced(|r| image.is_active(r), self.unclean(image, &t.name));
            if let Some(r) = partition_change(t.id, i, p, &new) {
                found.push(r);
            }
        }
        for r in found {
            changes.push(r);
        }
    }

    // ------------------------------------------------------------------------
    // Brokers

    /// `BrokerRegistration`: a new epoch for the broker, which starts fenced. A
    /// broker id in use by another live incarnation is refused
    /// (DUPLICATE_BROKER_REGISTRATION). A re-registration first moves the old
    /// incarnation's leaderships away; one after an unclean stop also leaves every
    /// ELR (KIP-966).
    pub fn register_broker(
        &mut self,
        image: &MetadataImage,
        req: RegisterBroker,
        now: i64,
    ) -> Result<Outcome<i64>, i16> {
        if let Some(old) = image.brokers.get(&req.id) {
            let alive = self.sessions.get(&req.id).is_some_and(|s| s.deadline > now);
            let restarted_cleanly = req.previous_epoch == old.registration.epoch;
            if old.registration.incarnation != req.incarnation
                && alive
                && !old.fenced
                && !restarted_cleanly
            {
                return Err(code(ResponseError::DuplicateBrokerRegistration));
            }
        }
        let mut changes = Changes::new(image);
        if let Some(old) = image.brokers.get(&req.id) {
            if !old.fenced {
                changes.push(MetadataRecord::FenceBroker {
                    id: req.id,
                    epoch: old.registration.epoch,
                });
                self.move_away_from(&mut changes, req.id);
            }
            if req.previous_epoch != old.registration.epoch {
                changes.change_partitions(|_, p| {
                    let mut new = p.clone();
                    new.unclean_restart(req.id).then_some(new)
                });
            }
        }
        let epoch = image.last_broker_epoch + 1;
        changes.push(MetadataRecord::RegisterBroker(BrokerRegistration {
            id: req.id,
            epoch,
            incarnation: req.incarnation,
            endpoints: req.endpoints,
            rack: req.rack,
        }));
        self.sessions.insert(
            req.id,
            Session {
                epoch,
                deadline: now + self.config.session_timeout_ms,
            },
        );
        Ok(changes.outcome(epoch))
    }

    /// `BrokerHeartbeat`: renews the session; unfences a broker that caught up with
    /// the log (electing leaders for the offline partitions it can lead); starts a
    /// controlled shutdown when asked (its leaderships move, it leaves every ISR)
    /// and says when it may stop. STALE_BROKER_EPOCH for an older epoch,
    /// BROKER_ID_NOT_REGISTERED for an unknown broker.
    pub fn heartbeat(
        &mut self,
        image: &MetadataImage,
        req: Heartbeat,
        now: i64,
    ) -> Result<Outcome<HeartbeatReply>, i16> {
        let broker = image
            .brokers
            .get(&req.id)
            .ok_or(code(ResponseError::BrokerIdNotRegistered))?;
        if broker.registration.epoch != req.epoch {
            return Err(code(ResponseError::StaleBrokerEpoch));
        }
        self.sessions.insert(
            req.id,
            Session {
                epoch: req.epoch,
                deadline: now + self.config.session_timeout_ms,
            },
        );
        let is_caught_up = req.metadata_offset >= broker.registered_at;
        let mut changes = Changes::new(image);
        if req.want_shut_down || broker.shutting_down {
            if !broker.shutting_down {
                changes.push(MetadataRecord::BeginShutdown {
                    id: req.id,
                    epoch: req.epoch,
                });
                self.move_away_from(&mut changes, req.id);
            }
        } else if broker.fenced && !req.want_fence && is_caught_up {
            changes.push(MetadataRecord::UnfenceBroker {
                id: req.id,
                epoch: req.epoch,
            });
            self.elect_offline_for(&mut changes, req.id);
        } else if !broker.fenced && req.want_fence {
            changes.push(MetadataRecord::FenceBroker {
                id: req.id,
                epoch: req.epoch,
            });
            self.move_away_from(&mut changes, req.id);
        }
        // A broker in controlled shutdown that leads nothing any more is fenced,
        // so that it may stop (and its next incarnation register at once).
        let leads = changes
            .image()
            .partitions()
            .any(|(_, _, p)| p.leader == req.id);
        let fence_now = changes
            .image()
            .brokers
            .get(&req.id)
            .is_some_and(|b| b.shutting_down && !b.fenced && !leads);
        if fence_now {
            changes.push(MetadataRecord::FenceBroker {
                id: req.id,
                epoch: req.epoch,
            });
        }
        let after = changes.image();
        let state = after.brokers.get(&req.id);
        let shutting_down = state.is_some_and(|b| b.shutting_down);
        let reply = HeartbeatReply {
            is_caught_up,
            is_fenced: state.is_none_or(|b| b.fenced),
            should_shut_down: shutting_down && !leads,
        };
        Ok(changes.outcome(reply))
    }

    /// Time passes: fences brokers whose session expired (moving their leaderships
    /// and taking them out of every ISR) and, with `auto.leader.rebalance.enable`,
    /// moves leadership back to preferred replicas every
    /// `leader.imbalance.check.interval.seconds`.
    pub fn tick(&mut self, image: &MetadataImage, now: i64) -> Vec<MetadataRecord> {
        let mut changes = Changes::new(image);
        let expired: Vec<(i32, i64)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, s)| (*id, s.epoch))
            .collect();
        for (id, epoch) in expired {
            self.sessions.remove(&id);
            let fenced = changes
                .image()
                .brokers
                .get(&id)
                .is_none_or(|b| b.fenced || b.registration.epoch != epoch);
            if fenced {
                continue;
            }
            changes.push(MetadataRecord::FenceBroker { id, epoch });
            self.move_away_from(&mut changes, id);
        }
        if self.config.auto_leader_rebalance && now >= self.next_rebalance_check {
            self.next_rebalance_check = now + self.config.leader_imbalance_check_interval_ms;
            changes.change_partitions(|image, p| {
                let mut new = p.clone();
                new.elect_preferred(|r| image.is_active(r)).then_some(new)
            });
        }
        changes.records
    }

    /// The earliest time [`Controller::tick`] has something to do, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self.sessions.values().map(|s| s.deadline).min();
        let rebalance = self
            .config
            .auto_leader_rebalance
            .then_some(self.next_rebalance_check);
        match (sessions, rebalance) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ------------------------------------------------------------------------
    // Topics

    /// `CreateTopics`: validates each topic (name, duplicates, counts, a manual
    /// assignment, configs through `validate`) and places the replicas by the
    /// seed's rule over the active brokers (`klog-assign`). With `validate_only`
    /// nothing is written.
    pub fn create_topics(
        &mut self,
        image: &MetadataImage,
        topics: &[CreateTopic],
        validate_only: bool,
        validate: ConfigValidator<'_>,
    ) -> Outcome<Vec<CreatedTopic>> {
        let mut changes = Changes::new(image);
        let mut seen = BTreeSet::new();
        let duplicated: BTreeSet<&str> = topics
            .iter()
            .filter(|t| !seen.insert(t.name.as_str()))
            .map(|t| t.name.as_str())
            .collect();
        let mut results = Vec::with_capacity(topics.len());
        for t in topics {
            let refuse = |error: ResponseError, message: String| CreatedTopic {
                name: t.name.clone(),
                error: error.code(),
                message: Some(message),
                id: None,
                num_partitions: -1,
                replication_factor: -1,
            };
            if duplicated.contains(t.name.as_str()) {
                results.push(refuse(
                    ResponseError::InvalidRequest,
                    format!("topic {:?} is named more than once", t.name),
                ));
                continue;
            }
            let placed = self
                .validate_topic(changes.image(), t, validate)
                .map_err(|(e, m)| refuse(e, m));
            match placed {
                Err(r) => results.push(r),
                Ok(assignment) => {
                    let id = self.next_topic_id(changes.image());
                    let rf = assignment.first().map_or(0, |r| r.len());
                    results.push(CreatedTopic {
                        name: t.name.clone(),
                        error: 0,
                        message: None,
                        id: Some(id),
                        num_partitions: assignment.len() as i32,
                        replication_factor: rf as i16,
                    });
                    if validate_only {
                        continue;
                    }
                    changes.push(MetadataRecord::Topic {
                        name: t.name.clone(),
                        id,
                    });
                    for (i, replicas) in assignment.into_iter().enumerate() {
                        changes.push(MetadataRecord::Partition {
                            topic_id: id,
                            partition: i as i32,
                            registration: new_partition(changes.image(), replicas),
                        });
                    }
                    for (key, value) in &t.configs {
                        changes.push(MetadataRecord::Config {
                            resource: ConfigResource::Topic(t.name.clone()),
                            key: key.clone(),
                            value: Some(value.clone()),
                        });
                    }
                }
            }
        }
        changes.outcome(results)
    }

    /// Validates one topic of `CreateTopics` and returns its replicas by partition.
    fn validate_topic(
        &self,
        image: &MetadataImage,
        t: &CreateTopic,
        validate: ConfigValidator<'_>,
    ) -> Result<Vec<Vec<i32>>, (ResponseError, String)> {
        if !is_valid_topic_name(&t.name) {
            return Err((
                ResponseError::InvalidTopicException,
                format!("{:?} is not a valid topic name", t.name),
            ));
        }
        if image.topic(&t.name).is_some() {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("topic {:?} already exists", t.name),
            ));
        }
        validate(&t.configs).map_err(|(c, m)| {
            (
                ResponseError::try_from_code(c).unwrap_or(ResponseError::InvalidConfig),
                m,
            )
        })?;
        if !t.assignments.is_empty() {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                return Err((
                    ResponseError::InvalidRequest,
                    "both a replica assignment and a partition count or replication factor were given".to_owned(),
                ));
            }
            return manual_assignment(image, &t.assignments, 0, None);
        }
        let partitions = if t.num_partitions == -1 {
            self.config.default_partitions
        } else {
            t.num_partitions
        };
        if partitions < 1 {
            return Err((
                ResponseError::InvalidPartitions,
                format!("number of partitions must be at least 1, not {partitions}"),
            ));
        }
        let rf = if t.replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            t.replication_factor
        };
        if rf < 1 {
            return Err((
                ResponseError::InvalidReplicationFactor,
                format!("replication factor must be at least 1, not {rf}"),
            ));
        }
        place(image, 0, partitions, rf as usize)
    }

    /// `DeleteTopics` by name: UNKNOWN_TOPIC_OR_PARTITION for a topic that does not
    /// exist. Returns each name's error code and the deleted topic's id.
    pub fn delete_topics(
        &mut self,
        image: &MetadataImage,
        names: &[String],
    ) -> Outcome<Vec<(String, i16, Option<TopicId>)>> {
        let mut changes = Changes::new(image);
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            match changes.image().topic(name).map(|t| t.id) {
                Some(id) => {
                    changes.push(MetadataRecord::RemoveTopic { id });
                    results.push((name.clone(), 0, Some(id)));
                }
                None => results.push((
                    name.clone(),
                    code(ResponseError::UnknownTopicOrPartition),
                    None,
                )),
            }
        }
        changes.outcome(results)
    }

    /// `CreatePartitions`: grows `topic` to `count` partitions, placed by the
    /// seed's rule (continuing the index) or by `assignments` (one replica list per
    /// new partition). Returns the error code and message on refusal.
    pub fn create_partitions(
        &mut self,
        image: &MetadataImage,
        topic: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<Outcome<()>, (i16, String)> {
        let t = image.topic(topic).ok_or_else(|| {
            (
                code(ResponseError::UnknownTopicOrPartition),
                format!("topic {topic:?} does not exist"),
            )
        })?;
        let current = t.partitions.len() as i32;
        if count <= current {
            return Err((
                code(ResponseError::InvalidPartitions),
                format!(
                    "topic {topic:?} has {current} partitions, which is not fewer than the {count} requested"
                ),
            ));
        }
        let rf = t.partitions.values().next().map_or(1, |p| p.replicas.len());
        let new = match assignments {
            Some(a) => {
                if a.len() as i32 != count - current {
                    return Err((
                        code(ResponseError::InvalidReplicaAssignment),
                        format!(
                            "{} assignments given for {} new partitions",
                            a.len(),
                            count - current
                        ),
                    ));
                }
                let indexed: Vec<(i32, Vec<i32>)> = a
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (current + i as i32, r.clone()))
                    .collect();
                manual_assignment(image, &indexed, current, Some(rf))
            }
            None => place(image, current, count - current, rf),
        }
        .map_err(|(e, m)| (e.code(), m))?;
        let mut changes = Changes::new(image);
        if !validate_only {
            for (i, replicas) in new.into_iter().enumerate() {
                changes.push(MetadataRecord::Partition {
                    topic_id: t.id,
                    partition: current + i as i32,
                    registration: new_partition(changes.image(), replicas),
                });
            }
        }
        Ok(changes.outcome(()))
    }

    /// Sets (or with `None` removes) configuration keys of one resource, already
    /// validated by the caller. UNKNOWN_TOPIC_OR_PARTITION for a missing topic.
    /// A topic's `min.insync.replicas` change re-derives its partitions' ELR.
    pub fn set_configs(
        &mut self,
        image: &MetadataImage,
        resource: &ConfigResource,
        changes_wanted: &[(String, Option<String>)],
    ) -> Result<Outcome<()>, i16> {
        if let ConfigResource::Topic(name) = resource
            && image.topic(name).is_none()
        {
            return Err(code(ResponseError::UnknownTopicOrPartition));
        }
        let mut changes = Changes::new(image);
        for (key, value) in changes_wanted {
            if changes.image().config(resource, key) == value.as_deref() {
                continue;
            }
            changes.push(MetadataRecord::Config {
                resource: resource.clone(),
                key: key.clone(),
                value: value.clone(),
            });
        }
        Ok(changes.outcome(()))
    }

    // ------------------------------------------------------------------------
    // Partitions

    /// `AlterPartition` from `broker` at `broker_epoch`: each partition's new ISR,
    /// checked against the epochs it was computed from (KIP-497; see
    /// `PartitionRegistration::alter_isr`). STALE_BROKER_EPOCH refuses the whole
    /// request. Each partition gets its new registration or an error code.
    pub fn alter_partition(
        &mut self,
        image: &MetadataImage,
        broker: i32,
        broker_epoch: i64,
        partitions: &[AlterPartition],
    ) -> Result<Outcome<Vec<Result<PartitionRegistration, i16>>>, i16> {
        let b = image
            .brokers
            .get(&broker)
            .ok_or(code(ResponseError::BrokerIdNotRegistered))?;
        if broker_epoch != -1 && b.registration.epoch != broker_epoch {
            return Err(code(ResponseError::StaleBrokerEpoch));
        }
        let mut changes = Changes::new(image);
        let mut results = Vec::with_capacity(partitions.len());
        for a in partitions {
            let image = changes.image();
            let Some((id, old)) = image
                .topic(&a.topic)
                .and_then(|t| t.partitions.get(&a.partition).map(|p| (t.id, p.clone())))
            else {
                results.push(Err(code(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let mut new = old.clone();
            let min_isr = self.min_isr(image, &a.topic);
            match new.alter_isr(
                broker,
                a.leader_epoch,
                a.partition_epoch,
                &a.isr,
                |r| image.is_active(r),
                min_isr,
            ) {
                Ok(_) => {
                    if let Some(r) = partition_change(id, a.partition, &old, &new) {
                        changes.push(r);
                    }
                    results.push(Ok(new));
                }
                Err(e) => results.push(Err(e.code())),
            }
        }
        Ok(changes.outcome(results))
    }

    /// `ElectLeaders`: preferred (`unclean` false) or unclean elections for the
    /// partitions given, or for every partition that needs one when `None`
    /// (then only those elected are answered). ELECTION_NOT_NEEDED,
    /// PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE as Kafka.
    pub fn elect_leaders(
        &mut self,
        image: &MetadataImage,
        unclean: bool,
        partitions: Option<&[(String, i32)]>,
    ) -> Outcome<Vec<((String, i32), i16)>> {
        let mut changes = Changes::new(image);
        let all: Vec<(String, i32)> = match partitions {
            Some(p) => p.to_vec(),
            None => image
                .partitions()
                .map(|(t, i, _)| (t.name.clone(), i))
                .collect(),
        };
        let mut results = Vec::new();
        for (topic, index) in all {
            let image = changes.image();
            let Some((id, old)) = image
                .topic(&topic)
                .and_then(|t| t.partitions.get(&index).map(|p| (t.id, p.clone())))
            else {
                results.push(((topic, index), code(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let mut new = old.clone();
            let result = if unclean {
                if old.is_online() {
                    code(ResponseError::ElectionNotNeeded)
                } else if new.broker_unfenced(|r| image.is_active(r), true) {
                    0
                } else {
                    code(ResponseError::EligibleLeadersNotAvailable)
                }
            } else if old.preferred_leader() == Some(old.leader) {
                code(ResponseError::ElectionNotNeeded)
            } else if new.elect_preferred(|r| image.is_active(r)) {
                0
            } else {
                code(ResponseError::PreferredLeaderNotAvailable)
            };
            if let Some(r) = partition_change(id, index, &old, &new) {
                changes.push(r);
            }
            if partitions.is_some() || result == 0 {
                results.push(((topic, index), result));
            }
        }
        changes.outcome(results)
    }

    /// `AllocateProducerIds`: the next block of producer ids for `broker`, as
    /// `(first id, count)`.
    pub fn allocate_producer_ids(
        &mut self,
        image: &MetadataImage,
        broker: i32,
        broker_epoch: i64,
    ) -> Result<Outcome<(i64, i64)>, i16> {
        let b = image
            .brokers
            .get(&broker)
            .ok_or(code(ResponseError::BrokerIdNotRegistered))?;
        if b.registration.epoch != broker_epoch {
            return Err(code(ResponseError::StaleBrokerEpoch));
        }
        let start = image.next_producer_id;
        let len = self.config.producer_id_block_size;
        let mut changes = Changes::new(image);
        changes.push(MetadataRecord::ProducerIds {
            broker,
            broker_epoch,
            next_producer_id: start + len,
        });
        Ok(changes.outcome((start, len)))
    }

    /// The records that carry a single node's existing topics into an empty
    /// metadata log: every partition on `node` alone, at the leader epoch its log
    /// already has. `next_producer_id` keeps the producer ids the node gave out
    /// before.
    pub fn bootstrap(
        &mut self,
        image: &MetadataImage,
        node: i32,
        topics: &[BootstrapTopic],
        next_producer_id: i64,
    ) -> Vec<MetadataRecord> {
        let mut changes = Changes::new(image);
        for t in topics {
            if changes.image().topic(&t.name).is_some() {
                continue;
            }
            let id = self.next_topic_id(changes.image());
            changes.push(MetadataRecord::Topic {
                name: t.name.clone(),
                id,
            });
            for (i, &epoch) in t.leader_epochs.iter().enumerate() {
                let mut registration = PartitionRegistration::new(vec![node]);
                registration.leader_epoch = epoch.max(0);
                changes.push(MetadataRecord::Partition {
                    topic_id: id,
                    partition: i as i32,
                    registration,
                });
            }
            for (key, value) in &t.configs {
                changes.push(MetadataRecord::Config {
                    resource: ConfigResource::Topic(t.name.clone()),
                    key: key.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if next_producer_id > changes.image().next_producer_id {
            changes.push(MetadataRecord::ProducerIds {
                broker: node,
                broker_epoch: -1,
                next_producer_id,
            });
        }
        changes.records
    }
}

/// A new partition's registration: the active replicas in the ISR, the first of
/// them leading (none active: offline until one is).
fn new_partition(image: &MetadataImage, replicas: Vec<i32>) -> PartitionRegistration {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|&r| image.is_active(r))
        .collect();
    PartitionRegistration {
        leader: isr.first().copied().unwrap_or(NO_LEADER),
        isr,
        elr: Vec::new(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
        last_known_leader: NO_LEADER,
    }
}

/// Places `count` partitions from index `first` by the seed's rule over the active
/// brokers.
fn place(
    image: &MetadataImage,
    first: i32,
    count: i32,
    rf: usize,
) -> Result<Vec<Vec<i32>>, (ResponseError, String)> {
    let brokers = image.active_brokers();
    if rf > brokers.len() {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {rf} is larger than the {} available brokers",
                brokers.len()
            ),
        ));
    }
    let total = u32::try_from(first + count).unwrap_or(0);
    let all = klog_assign::place_replicas(&brokers, total, rf)
        .map_err(|e| (ResponseError::InvalidReplicationFactor, e.to_string()))?;
    Ok(all.into_iter().skip(first as usize).collect())
}

/// Checks a manual assignment: partitions `first..` in order, each with distinct
/// registered brokers (and `rf` of them when given), at least one of them active.
fn manual_assignment(
    image: &MetadataImage,
    assignments: &[(i32, Vec<i32>)],
    first: i32,
    rf: Option<usize>,
) -> Result<Vec<Vec<i32>>, (ResponseError, String)> {
    let bad = |m: String| (ResponseError::InvalidReplicaAssignment, m);
    let mut sorted: Vec<&(i32, Vec<i32>)> = assignments.iter().collect();
    sorted.sort_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(sorted.len());
    for (n, (index, replicas)) in sorted.into_iter().enumerate() {
        if *index != first + n as i32 {
            return Err(bad(format!(
                "partitions must be numbered from {first} without gaps, found {index}"
            )));
        }
        if replicas.is_empty() {
            return Err(bad(format!("partition {index} has no replicas")));
        }
        let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
        if distinct.len() != replicas.len() {
            return Err(bad(format!("partition {index} names a broker twice")));
        }
        if let Some(r) = replicas.iter().find(|r| !image.brokers.contains_key(r)) {
            return Err(bad(format!(
                "partition {index} names broker {r}, which is not registered"
            )));
        }
        if !replicas.iter().any(|&r| image.is_active(r)) {
            return Err(bad(format!(
                "every broker of partition {index} is fenced or shutting down"
            )));
        }
        if let Some(rf) = rf
            && replicas.len() != rf
        {
            return Err(bad(format!(
                "partition {index} has {} replicas, the topic has {rf}",
                replicas.len()
            )));
        }
        if let Some(first_rf) = out.first().map(Vec::len)
            && first_rf != replicas.len()
        {
            return Err(bad(
                "partitions have different replication factors".to_owned()
            ));
        }
        out.push(replicas.clone());
    }
    Ok(out)
}
