//! The invariants, one file each. The step invariants look at every node after
//! every simulation step ([`Observation`]); the final ones look at the logs once
//! the faults have healed and the replicas have caught up.

pub mod acked;
pub mod groups;
pub mod high_watermark;
pub mod leaders;
pub mod replicas;

/// One replica of one partition as its node has it, at one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    /// The node.
    pub node: i32,
    /// How many times the node has been (re)started: 0 for the first run.
    pub incarnation: u32,
    /// Whether this incarnation started after a power loss of the node (its
    /// unsynced writes gone).
    pub lost_writes: bool,
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Whether this node leads the partition.
    pub is_leader: bool,
    /// Its leader epoch.
    pub leader_epoch: i32,
    /// The ISR as the node knows it (the leader's own view on the leader).
    pub isr: Vec<i32>,
    /// Its high watermark.
    pub high_watermark: i64,
    /// Its log end offset.
    pub log_end_offset: i64,
}

/// Every replica of every running node, at one step.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Simulated time of the step, in ms.
    pub at_ms: u128,
    /// The replicas.
    pub replicas: Vec<ReplicaView>,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// The step invariants together.
#[derive(Debug, Default)]
pub struct StepChecks {
    leaders: leaders::OneLeaderPerEpoch,
    high_watermark: high_watermark::HighWatermark,
}

impl StepChecks {
    /// Checks one step.
    pub fn check(&mut self, obs: &Observation, out: &mut Vec<Violation>) {
        self.leaders.check(obs, out);
        self.high_watermark.check(obs, out);
    }

    /// How many (partition, epoch) leaderships were seen.
    pub fn leaderships(&self) -> usize {
        self.leaders.leaderships()
    }
}
