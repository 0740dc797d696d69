//! The high watermark never decreases on a running node, and a leader's never
//! exceeds the log end of a running member of its ISR (what is below the high
//! watermark is on every ISR member, which is what makes it safe to acknowledge).
//!
//! One exception: a member that has just restarted after a power loss lost
//! records below the high watermark, and stays in its leader's ISR until the
//! controller, seeing it register, fences its old incarnation and the leader
//! learns of it (a leader elected meanwhile may have it in its ISR too). Such a
//! member is checked against a leader again once it has been out of that
//! leader's ISR or has caught up to its high watermark.

use std::collections::BTreeMap;

use super::{Observation, Violation};

/// Remembers each replica's last high watermark, per node incarnation.
#[derive(Debug, Default)]
pub struct HighWatermark {
    last: BTreeMap<(i32, u32, String, i32), i64>,
    /// Replicas of power-lost incarnations that are checked again, with the
    /// leader (node, incarnation) they are checked against.
    settled: std::collections::BTreeSet<(i32, u32, String, i32, i32, u32)>,
}

impl HighWatermark {
    /// Checks one step.
    pub fn check(&mut self, obs: &Observation, out: &mut Vec<Violation>) {
        for r in &obs.replicas {
            let key = (r.node, r.incarnation, r.topic.clone(), r.partition);
            if let Some(&before) = self.last.get(&key)
                && r.high_watermark < before
            {
                out.push(Violation {
                    invariant: "high watermark never decreases",
                    detail: format!(
                        "{}-{} on n{}: {} after {} (t={} ms)",
                        r.topic, r.partition, r.node, r.high_watermark, before, obs.at_ms
                    ),
                });
            }
            self.last.insert(key, r.high_watermark);
            if !r.is_leader {
                continue;
            }
            // Power-lost replicas out of this leader's ISR are settled.
            for m in obs.replicas.iter().filter(|m| {
                m.lost_writes
                    && m.topic == r.topic
                    && m.partition == r.partition
                    && !r.isr.contains(&m.node)
            }) {
                self.settled.insert((
                    m.node,
                    m.incarnation,
                    m.topic.clone(),
                    m.partition,
                    r.node,
                    r.incarnation,
                ));
            }
            for member in obs.replicas.iter().filter(|m| {
                m.topic == r.topic
                    && m.partition == r.partition
                    && m.node != r.node
                    && r.isr.contains(&m.node)
            }) {
                let key = (
                    member.node,
                    member.incarnation,
                    member.topic.clone(),
                    member.partition,
                    r.node,
                    r.incarnation,
                );
                if member.lost_writes && !self.settled.contains(&key) {
                    if member.log_end_offset >= r.high_watermark {
                        self.settled.insert(key);
                    }
                    continue;
                }
                if r.high_watermark > member.log_end_offset {
                    out.push(Violation {
                        invariant: "high watermark within every ISR member's log",
                        detail: format!(
                            "{}-{}: leader n{} (epoch {}) has high watermark {} but ISR member n{} ends at {} (t={} ms)",
                            r.topic,
                            r.partition,
                            r.node,
                            r.leader_epoch,
                            r.high_watermark,
                            member.node,
                            member.log_end_offset,
                            obs.at_ms
                        ),
                    });
                }
            }
        }
    }
}
