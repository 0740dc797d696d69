//! Leader election and ISR changes as the controller applies them: pure functions
//! over one partition's registration.
//!
//! The rules (CLUSTER.md, "What the active controller decides"; KIP-966):
//!
//! - A new leader is the first replica, in replica order, that is in the ISR and
//!   unfenced. If the ISR has none, the first unfenced member of the ELR (eligible
//!   leader replicas: members removed from the ISR while it was below
//!   `min.insync.replicas`, so they hold every committed record). If neither has one,
//!   the last leader it had, if it is unfenced (KIP-966: as before the ELR, when
//!   every replica was down, the last leader holds the most records). Failing
//!   that, the partition is offline (leader [`NO_LEADER`]) unless unclean
//!   election is allowed, which takes the first unfenced replica.
//! - Every change of leader raises `leader_epoch` and `partition_epoch` by one; a
//!   change of the ISR or ELR alone raises `partition_epoch`.
//! - The ELR: when the ISR shrinks below `min.insync.replicas`, the members it lost
//!   join the ELR; a replica that rejoins the ISR leaves it; once the ISR is at least
//!   `min.insync.replicas` again the ELR is empty.
//! - `AlterPartition` from a leader is applied only if it carries the current leader
//!   and partition epochs (KIP-497): FENCED_LEADER_EPOCH or INVALID_UPDATE_VERSION
//!   otherwise, and INELIGIBLE_REPLICA when it would add a fenced broker.

use crate::codes;

/// The leader id of a partition without a leader (offline).
pub const NO_LEADER: i32 = -1;

/// One partition's replication state as the metadata log records it (Kafka's
/// `PartitionRecord`): replicas, ISR, ELR, leader and epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PartitionRegistration {
    /// All replicas in placement order; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In-sync replicas, in replica order.
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966), in replica order.
    pub elr: Vec<i32>,
    /// The leader, or [`NO_LEADER`].
    pub leader: i32,
    /// Raised on every change of leader.
    pub leader_epoch: i32,
    /// Raised on every change of this registration.
    pub partition_epoch: i32,
    /// The leader it had before it went offline ([`NO_LEADER`] while it has one,
    /// or never had one).
    #[cfg_attr(feature = "serde", serde(default = "no_leader"))]
    pub last_known_leader: i32,
}

#[cfg(feature = "serde")]
fn no_leader() -> i32 {
    NO_LEADER
}

/// How a leader was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElectionKind {
    /// From the ISR.
    Isr,
    /// From the ELR, the ISR having no unfenced member (KIP-966).
    Elr,
    /// The last leader, the ISR and ELR having no unfenced member (KIP-966).
    LastKnownLeader,
    /// Outside the ISR and ELR (`unclean.leader.election.enable`): committed records
    /// may be lost.
    Unclean,
    /// No replica could lead: the partition is offline.
    Offline,
}

/// Why the controller refused an ISR change (`AlterPartition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlterIsrError {
    /// The request came from a broker that is not the leader, or with an older
    /// leader epoch (FENCED_LEADER_EPOCH).
    FencedLeaderEpoch,
    /// The request was computed from an older partition epoch
    /// (INVALID_UPDATE_VERSION).
    InvalidUpdateVersion,
    /// It would add a fenced or unknown broker, or drop the leader
    /// (INELIGIBLE_REPLICA).
    IneligibleReplica,
    /// A newer leader epoch than the controller knows (UNKNOWN_LEADER_EPOCH... which
    /// Kafka reports as INVALID_REQUEST).
    InvalidRequest,
}

impl AlterIsrError {
    /// The Kafka error code for the `AlterPartition` response.
    pub fn code(self) -> i16 {
        match self {
            AlterIsrError::FencedLeaderEpoch => codes::FENCED_LEADER_EPOCH,
            AlterIsrError::InvalidUpdateVersion => codes::INVALID_UPDATE_VERSION,
            AlterIsrError::IneligibleReplica => codes::INELIGIBLE_REPLICA,
            AlterIsrError::InvalidRequest => codes::INVALID_REQUEST,
        }
    }
}

/// Keeps only the members of `set`, in replica order.
fn in_replica_order(replicas: &[i32], keep: impl Fn(i32) -> bool) -> Vec<i32> {
    replicas.iter().copied().filter(|&r| keep(r)).collect()
}

impl PartitionRegistration {
    /// A new partition: every replica in the ISR, the first one leading, epochs 0.
    pub fn new(replicas: Vec<i32>) -> Self {
        let leader = replicas.first().copied().unwrap_or(NO_LEADER);
        Self {
            isr: replicas.clone(),
            replicas,
            elr: Vec::new(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            last_known_leader: NO_LEADER,
        }
    }

    /// Whether the partition has a leader.
    pub fn is_online(&self) -> bool {
        self.leader != NO_LEADER
    }

    /// The preferred leader (the first replica).
    pub fn preferred_leader(&self) -> Option<i32> {
        self.replicas.first().copied()
    }

    /// Chooses a leader by the rules above, among replicas for which `unfenced` is
    /// true. Returns the leader (or [`NO_LEADER`]) and how it was chosen; changes
    /// nothing.
    pub fn choose_leader(
        &self,
        unfenced: impl Fn(i32) -> bool,
        unclean: bool,
    ) -> (i32, ElectionKind) {
        let first = |set: &[i32]| {
            self.replicas
                .iter()
                .copied()
                .find(|&r| set.contains(&r) && unfenced(r))
        };
        if let Some(l) = first(&self.isr) {
            return (l, ElectionKind::Isr);
        }
        if let Some(l) = first(&self.elr) {
            return (l, ElectionKind::Elr);
        }
        if self.last_known_leader != NO_LEADER
            && self.replicas.contains(&self.last_known_leader)
            && unfenced(self.last_known_leader)
        {
            return (self.last_known_leader, ElectionKind::LastKnownLeader);
        }
        if unclean && let Some(l) = self.replicas.iter().copied().find(|&r| unfenced(r)) {
            return (l, ElectionKind::Unclean);
        }
        (NO_LEADER, ElectionKind::Offline)
    }

    /// Sets the ISR to `new_isr` (any order; kept in replica order) and maintains the
    /// ELR for `min_isr`. Raises `partition_epoch` if anything changed. Returns
    /// whether it changed.
    fn set_isr(&mut self, new_isr: &[i32], min_isr: usize) -> bool {
        let isr = in_replica_order(&self.replicas, |r| new_isr.contains(&r));
        let elr = if isr.len() >= min_isr {
            Vec::new()
        } else {
            let old = &self.isr;
            in_replica_order(&self.replicas, |r| {
                !isr.contains(&r) && (self.elr.contains(&r) || old.contains(&r))
            })
        };
        let changed = isr != self.isr || elr != self.elr;
        if changed {
            self.isr = isr;
            self.elr = elr;
            self.partition_epoch += 1;
        }
        changed
    }

    /// Makes `leader` the leader with a new leader epoch. For a leader from the ELR
    /// or an unclean election the ISR becomes the leader alone.
    fn set_leader(&mut self, leader: i32, kind: ElectionKind) {
        match kind {
            ElectionKind::Elr => {
                self.isr = vec![leader];
                self.elr.retain(|&r| r != leader);
            }
            ElectionKind::Unclean | ElectionKind::LastKnownLeader => {
                self.isr = vec![leader];
                self.elr.clear();
            }
            ElectionKind::Isr | ElectionKind::Offline => {}
        }
        self.last_known_leader = match (leader, self.leader) {
            (NO_LEADER, NO_LEADER) => self.last_known_leader,
            (NO_LEADER, old) => old,
            _ => NO_LEADER,
        };
        self.leader = leader;
        self.leader_epoch += 1;
        self.partition_epoch += 1;
    }

    /// Elects a leader anew (the current one being fenced, shutting down or gone)
    /// among the replicas for which `unfenced` is true. A changed leader (offline
    /// included) raises both epochs. Returns how the leader was chosen.
    pub fn elect(&mut self, unfenced: impl Fn(i32) -> bool, unclean: bool) -> ElectionKind {
        let (leader, kind) = self.choose_leader(&unfenced, unclean);
        if leader != self.leader {
            self.set_leader(leader, kind);
        }
        kind
    }

    /// A broker was fenced (or is shutting down): it leaves the ISR, with the ELR
    /// maintained for `min_isr`, and if it led, a new leader is elected among the
    /// other replicas for which `unfenced` is true. Returns whether anything
    /// changed.
    pub fn fence_broker(
        &mut self,
        broker: i32,
        unfenced: impl Fn(i32) -> bool,
        min_isr: usize,
        unclean: bool,
    ) -> bool {
        let before = self.clone();
        if self.isr.contains(&broker) {
            let isr: Vec<i32> = self.isr.iter().copied().filter(|&r| r != broker).collect();
            self.set_isr(&isr, min_isr);
        }
        if self.leader == broker {
            let not_broker = |r: i32| r != broker && unfenced(r);
            let (leader, kind) = self.choose_leader(not_broker, unclean);
            self.set_leader(leader, kind);
        }
        let changed = *self != before;
        if changed {
            // One change of the registration, however many fields moved.
            self.partition_epoch = before.partition_epoch + 1;
        }
        changed
    }

    /// A broker restarted after an unclean shutdown that may have lost the records
    /// it held only in its page cache (KIP-966): it is no longer an eligible
    /// leader. It leaves the ELR; and if it was the last leader of an offline
    /// partition whose ELR still has a member, it stops being the last-known-leader
    /// fallback too (that member holds every committed record; this broker may
    /// not, so the partition waits for the member rather than elect it). When it
    /// was the ELR's last member, it becomes the fallback of a partition that has
    /// none: every replica that held the committed records may have lost some, and
    /// the last one standing is the best guess left. Returns whether anything
    /// changed.
    pub fn unclean_restart(&mut self, broker: i32) -> bool {
        let before = self.clone();
        self.elr.retain(|&r| r != broker);
        if !self.is_online() {
            if !self.elr.is_empty() && self.last_known_leader == broker {
                self.last_known_leader = NO_LEADER;
            } else if self.elr.is_empty()
                && before.elr.contains(&broker)
                && self.last_known_leader == NO_LEADER
            {
                self.last_known_leader = broker;
            }
        }
        let changed = *self != before;
        if changed {
            self.partition_epoch += 1;
        }
        changed
    }

    /// A broker came back (unfenced): an offline partition elects a leader again.
    /// Returns whether anything changed.
    pub fn broker_unfenced(&mut self, unfenced: impl Fn(i32) -> bool, unclean: bool) -> bool {
        if self.is_online() {
            return false;
        }
        let (leader, kind) = self.choose_leader(unfenced, unclean);
        if leader == NO_LEADER {
            return false;
        }
        self.set_leader(leader, kind);
        true
    }

    /// Preferred-leader election (`ElectLeaders`, `auto.leader.rebalance.enable`):
    /// moves leadership to the first replica if it is in the ISR, unfenced and not
    /// already leading. Returns whether it moved.
    pub fn elect_preferred(&mut self, unfenced: impl Fn(i32) -> bool) -> bool {
        match self.preferred_leader() {
            Some(p) if p != self.leader && self.isr.contains(&p) && unfenced(p) => {
                self.set_leader(p, ElectionKind::Isr);
                true
            }
            _ => false,
        }
    }

    /// Applies an `AlterPartition` from `from` (KIP-497): the ISR it proposes,
    /// computed at `leader_epoch` and `partition_epoch`. New members must be
    /// replicas for which `eligible` is true (unfenced, not shutting down); the
    /// leader must stay in. On success the ISR (and ELR, for `min_isr`) change and
    /// `partition_epoch` rises; a proposal equal to the current ISR succeeds without
    /// a change.
    pub fn alter_isr(
        &mut self,
        from: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: &[i32],
        eligible: impl Fn(i32) -> bool,
        min_isr: usize,
    ) -> Result<bool, AlterIsrError> {
        if from != self.leader || leader_epoch < self.leader_epoch {
            return Err(AlterIsrError::FencedLeaderEpoch);
        }
        if leader_epoch > self.leader_epoch {
            return Err(AlterIsrError::InvalidRequest);
        }
        if partition_epoch != self.partition_epoch {
            return Err(AlterIsrError::InvalidUpdateVersion);
        }
        let valid = new_isr.contains(&self.leader)
            && new_isr.iter().all(|r| self.replicas.contains(r))
            && new_isr
                .iter()
                .all(|&r| self.isr.contains(&r) || eligible(r));
        if !valid {
            return Err(AlterIsrError::IneligibleReplica);
        }
        Ok(self.set_isr(new_isr, min_isr))
    }
}
