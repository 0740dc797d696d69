//! Property tests of the replica state machines over random event sequences
//! (CLUSTER.md, "Invariants, everywhere").
//!
//! - Leader, for 3 and 5 replicas: the high watermark never exceeds the log end of
//!   any ISR member, never decreases, and covers only records that at least
//!   `min.insync.replicas` replicas hold; an `acks=all` produce completes ok only
//!   when at least that many replicas hold its records.
//! - Election: at most one leader per leader epoch; epochs never go down; an online
//!   leader is in the ISR; the ELR and ISR are disjoint replica subsets.
//! - Follower truncation: after the `OffsetForLeaderEpoch` dialogue the follower's
//!   log is a prefix of the leader's, and no record both logs share is cut.

use std::collections::BTreeMap;

use klog_replication::follower::EpochEndOffset;
use klog_replication::{
    Action, EpochEntry, FollowerState, FollowerStep, LeaderConfig, LeaderState,
    PartitionRegistration, ProduceOutcome, codes,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(i64),
    /// Follower (index) copies up to n records, then fetches at its new log end.
    Replicate(usize, i64),
    Produce(i64),
    Tick(i64),
    /// The controller answers the pending proposal: accept or refuse.
    Answer(bool),
    /// The controller fences a follower (out of the ISR, not eligible) or unfences it.
    Fence(usize),
    Unfence(usize),
}

fn op(followers: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..5).prop_map(Op::Append),
        5 => (0..followers, 0i64..8).prop_map(|(f, n)| Op::Replicate(f, n)),
        2 => (1i64..300).prop_map(Op::Produce),
        3 => (0i64..150).prop_map(Op::Tick),
        3 => any::<bool>().prop_map(Op::Answer),
        1 => (0..followers).prop_map(Op::Fence),
        1 => (0..followers).prop_map(Op::Unfence),
    ]
}

/// The model around one leader: the true log ends of every replica.
struct World {
    leader: LeaderState,
    reg: PartitionRegistration,
    leader_leo: i64,
    /// True log end of follower i (ids 2..).
    follower_leo: Vec<i64>,
    now: i64,
    last_hw: i64,
    required: BTreeMap<u64, i64>,
    next_id: u64,
    /// Produces answered at registration, checked with the next actions.
    answered: Vec<(u64, ProduceOutcome)>,
    min_isr: usize,
}

impl World {
    fn replica_leo(&self, id: i32) -> i64 {
        if id == 1 {
            self.leader_leo
        } else {
            self.follower_leo[(id - 2) as usize]
        }
    }

    /// How many replicas hold every record below `offset`.
    fn holders(&self, offset: i64) -> usize {
        self.reg
            .replicas
            .iter()
            .filter(|&&r| self.replica_leo(r) >= offset)
            .count()
    }

    fn completed(&mut self, id: u64, outcome: ProduceOutcome) -> Result<(), TestCaseError> {
        let required = self.required.remove(&id).expect("a registered produce");
        if outcome == ProduceOutcome::Committed {
            let holders = self.holders(required);
            prop_assert!(
                holders >= self.min_isr,
                "produce {id} to {required} committed on {holders} replicas"
            );
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        for (id, outcome) in std::mem::take(&mut self.answered) {
            self.completed(id, outcome)?;
        }
        while let Some(a) = self.leader.poll_action() {
            match a {
                Action::CompleteDelayedProduce { id, outcome } => self.completed(id, outcome)?,
                Action::AdvanceHighWatermark { high_watermark } => {
                    // Strict min ISR (KIP-966): what the watermark covers is on at
                    // least min.insync.replicas replicas.
                    let holders = self.holders(high_watermark);
                    prop_assert!(
                        holders >= self.min_isr,
                        "high watermark {high_watermark} on {holders} replicas"
                    );
                }
                _ => {}
            }
        }
        let hw = self.leader.high_watermark();
        prop_assert!(
            hw >= self.last_hw,
            "high watermark went back {} -> {hw}",
            self.last_hw
        );
        self.last_hw = hw;
        prop_assert!(hw <= self.leader_leo);
        for &m in self.leader.isr() {
            prop_assert!(
                hw <= self.replica_leo(m),
                "hw {hw} above ISR member {m} at {}",
                self.replica_leo(m)
            );
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) {
        let le = self.leader.leader_epoch();
        match *op {
            Op::Append(n) => {
                self.leader_leo += n;
                self.leader.on_append(self.leader_leo, self.now);
            }
            Op::Replicate(f, n) => {
                let leo = &mut self.follower_leo[f];
                *leo = (*leo + n).min(self.leader_leo);
                let at = *leo;
                self.leader
                    .on_follower_fetch(f as i32 + 2, at, Some(le), self.now)
                    .expect("a valid fetch");
            }
            Op::Produce(timeout) => {
                if self.leader.check_acks_all().is_err() || self.leader_leo == 0 {
                    return;
                }
                let id = self.next_id;
                self.next_id += 1;
                self.required.insert(id, self.leader_leo);
                if let Some(o) =
                    self.leader
                        .register_delayed_produce(id, self.leader_leo, self.now + timeout)
                {
                    self.answered.push((id, o));
                }
            }
            Op::Tick(dt) => {
                self.now += dt;
                self.leader.tick(self.now);
            }
            Op::Answer(accept) => {
                let Some(p) = self.leader.pending_proposal().cloned() else {
                    return;
                };
                if accept {
                    let eligible = |r: i32| {
                        self.leader
                            .followers()
                            .iter()
                            .all(|f| f.id != r || f.eligible)
                    };
                    match self.reg.alter_isr(
                        1,
                        p.leader_epoch,
                        p.partition_epoch,
                        &p.isr,
                        eligible,
                        self.min_isr,
                    ) {
                        Ok(_) => {
                            self.leader.on_partition_state(&self.reg, self.now);
                        }
                        Err(e) => {
                            self.leader
                                .on_isr_change_failed(p.partition_epoch, e.code(), self.now)
                        }
                    }
                } else {
                    self.leader.on_isr_change_failed(
                        p.partition_epoch,
                        codes::INVALID_UPDATE_VERSION,
                        self.now,
                    );
                }
            }
            Op::Fence(f) => {
                let id = f as i32 + 2;
                self.leader.set_replica_eligible(id, false, self.now);
                if self.reg.fence_broker(id, |r| r != id, self.min_isr, false) {
                    self.leader.on_partition_state(&self.reg, self.now);
                }
            }
            Op::Unfence(f) => self
                .leader
                .set_replica_eligible(f as i32 + 2, true, self.now),
        }
    }
}

fn leader_world(replicas: usize, min_isr: usize) -> World {
    let ids: Vec<i32> = (1..=replicas as i32).collect();
    let reg = PartitionRegistration::new(ids);
    let config = LeaderConfig {
        min_insync_replicas: min_isr,
        replica_lag_time_max_ms: 100,
        isr_retry_backoff_ms: 10,
    };
    World {
        leader: LeaderState::new(1, &reg, config, 0, 0, 0),
        reg,
        leader_leo: 0,
        follower_leo: vec![0; replicas - 1],
        now: 0,
        last_hw: 0,
        required: BTreeMap::new(),
        next_id: 0,
        answered: Vec::new(),
        min_isr,
    }
}

fn leader_case(replicas: usize, min_isr: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut w = leader_world(replicas, min_isr);
    for op in ops {
        w.apply(op);
        w.check()?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn leader_invariants_3_replicas(min_isr in 1usize..=3, ops in prop::collection::vec(op(2), 1..200)) {
        leader_case(3, min_isr, &ops)?;
    }

    #[test]
    fn leader_invariants_5_replicas(min_isr in 1usize..=5, ops in prop::collection::vec(op(4), 1..200)) {
        leader_case(5, min_isr, &ops)?;
    }
}

// ----------------------------------------------------------------------------
// Election

#[derive(Debug, Clone)]
enum ElectionOp {
    Fence(i32),
    Unfence(i32),
    UncleanRestart(i32),
    Preferred,
    /// The leader proposes this subset (bit mask over replicas) as the ISR.
    Alter(u8),
}

fn election_op(n: i32) -> impl Strategy<Value = ElectionOp> {
    prop_oneof![
        (1..=n).prop_map(ElectionOp::Fence),
        (1..=n).prop_map(ElectionOp::Unfence),
        (1..=n).prop_map(ElectionOp::UncleanRestart),
        Just(ElectionOp::Preferred),
        any::<u8>().prop_map(ElectionOp::Alter),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn one_leader_per_epoch(
        n in 3i32..=5,
        min_isr in 1usize..=3,
        unclean in any::<bool>(),
        ops in prop::collection::vec(election_op(5), 1..100),
    ) {
        let mut reg = PartitionRegistration::new((1..=n).collect());
        let mut fenced = std::collections::BTreeSet::new();
        let mut leaders: BTreeMap<i32, i32> = BTreeMap::from([(0, 1)]);
        let (mut le, mut pe) = (0, 0);
        for op in &ops {
            match *op {
                ElectionOp::Fence(b) => {
                    fenced.insert(b);
                    let f = fenced.clone();
                    reg.fence_broker(b, |r| !f.contains(&r), min_isr, unclean);
                }
                ElectionOp::Unfence(b) => {
                    fenced.remove(&b);
                    let f = fenced.clone();
                    reg.broker_unfenced(|r| !f.contains(&r), unclean);
                }
                ElectionOp::UncleanRestart(b) => {
                    reg.unclean_restart(b);
                }
                ElectionOp::Preferred => {
                    let f = fenced.clone();
                    reg.elect_preferred(|r| !f.contains(&r));
                }
                ElectionOp::Alter(mask) => {
                    let isr: Vec<i32> = reg.replicas.iter().copied().filter(|&r| mask & (1 << (r - 1)) != 0).collect();
                    let f = fenced.clone();
                    let _ = reg.alter_isr(reg.leader, reg.leader_epoch, reg.partition_epoch, &isr, |r| !f.contains(&r), min_isr);
                }
            }
            prop_assert!(reg.leader_epoch >= le && reg.partition_epoch >= pe);
            prop_assert!(reg.leader_epoch == le || reg.partition_epoch > pe);
            le = reg.leader_epoch;
            pe = reg.partition_epoch;
            let first = *leaders.entry(reg.leader_epoch).or_insert(reg.leader);
            prop_assert_eq!(first, reg.leader, "two leaders in epoch {}", reg.leader_epoch);
            if reg.is_online() {
                prop_assert!(reg.isr.contains(&reg.leader));
                prop_assert!(!fenced.contains(&reg.leader));
            }
            prop_assert!(reg.isr.iter().all(|r| reg.replicas.contains(r) && !reg.elr.contains(r)));
            prop_assert!(reg.elr.iter().all(|r| reg.replicas.contains(r)));
        }
    }
}

// ----------------------------------------------------------------------------
// Follower truncation

/// A log as the epoch of each record.
fn history_of(log: &[i32]) -> Vec<EpochEntry> {
    let mut h: Vec<EpochEntry> = Vec::new();
    for (offset, &epoch) in log.iter().enumerate() {
        if h.last().is_none_or(|e| e.epoch != epoch) {
            h.push(EpochEntry {
                epoch,
                start_offset: offset as i64,
            });
        }
    }
    h
}

/// Records of nondecreasing epochs from `start`, each epoch passing `keep`.
fn suffix(steps: &[(u8, u8)], start: i32, keep: impl Fn(i32) -> bool) -> Vec<i32> {
    let mut out = Vec::new();
    let mut epoch = start;
    for &(bump, count) in steps {
        epoch += i32::from(bump);
        if keep(epoch) {
            out.extend(std::iter::repeat_n(epoch, usize::from(count)));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Two replicas share a prefix, then each has records of epochs the other never
    /// had (odd epochs for the leader, even for the follower: one leader per epoch),
    /// except that the follower may continue the prefix's last epoch further than
    /// the leader did (divergence inside one epoch).
    #[test]
    fn truncation_keeps_the_shared_prefix_and_nothing_else(
        prefix in prop::collection::vec((0u8..2, 1u8..4), 0..4),
        leader_steps in prop::collection::vec((1u8..3, 1u8..4), 0..4),
        follower_steps in prop::collection::vec((0u8..3, 1u8..4), 0..4),
    ) {
        let common = suffix(&prefix, 0, |_| true);
        let last = common.last().copied().unwrap_or(0);
        let mut leader = common.clone();
        leader.extend(suffix(&leader_steps, last, |e| e % 2 == 1 && e > last));
        let mut follower = common.clone();
        follower.extend(suffix(&follower_steps, last, |e| (e % 2 == 0 && e > last) || (e == last && !common.is_empty())));
        // The leader's own current epoch, newer than every other, starts at its end.
        let current = leader.iter().chain(&follower).copied().max().unwrap_or(0) + 1;
        let mut leader_history = history_of(&leader);
        leader_history.push(EpochEntry { epoch: current, start_offset: leader.len() as i64 });
        let leader_leo = leader.len() as i64;

        let (mut state, mut step) = FollowerState::new(1, current, &history_of(&follower), follower.len() as i64, 0);
        for _ in 0..32 {
            match step {
                FollowerStep::Fetch { offset } => {
                    prop_assert_eq!(offset, follower.len() as i64);
                    break;
                }
                FollowerStep::Truncate { offset, then } => {
                    follower.truncate(offset as usize);
                    step = match then {
                        klog_replication::AfterTruncate::AskEpochEnd { epoch } => FollowerStep::AskEpochEnd { epoch },
                        klog_replication::AfterTruncate::Fetch => FollowerStep::Fetch { offset },
                    };
                }
                FollowerStep::AskEpochEnd { epoch } => {
                    let answer = EpochEndOffset::answer(&leader_history, leader_leo, epoch);
                    step = state
                        .on_epoch_end(answer, &history_of(&follower), follower.len() as i64)
                        .expect("awaited");
                }
            }
        }
        prop_assert!(state.is_fetching());
        prop_assert!(follower.len() >= common.len(), "cut into the shared prefix: {} < {}", follower.len(), common.len());
        prop_assert!(follower.len() <= leader.len());
        prop_assert_eq!(&follower[..], &leader[..follower.len()]);
    }
}
