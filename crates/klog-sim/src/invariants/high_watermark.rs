//! The high watermark never decreases on a running node, and a leader's never
//! exceeds the log end of a running member of its ISR (what is below the high
//! watermark is on every ISR member, which is what makes it safe to acknowledge).

use std::collections::BTreeMap;

use super::{Observation, Violation};

/// Remembers each replica's last high watermark, per node incarnation.
#[derive(Debug, Default)]
pub struct HighWatermark {
    last: BTreeMap<(i32, u32, String, i32), i64>,
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
            for member in obs.replicas.iter().filter(|m| {
                m.topic == r.topic
                    && m.partition == r.partition
                    && m.node != r.node
                    && r.isr.contains(&m.node)
            }) {
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
