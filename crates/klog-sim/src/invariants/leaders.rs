//! At most one leader per (partition, leader epoch), over the whole run: two
//! nodes that both lead a partition at one epoch could both acknowledge writes.

use std::collections::BTreeMap;

use super::{Observation, Violation};

/// Remembers who led each (topic, partition, epoch).
#[derive(Debug, Default)]
pub struct OneLeaderPerEpoch {
    seen: BTreeMap<(String, i32, i32), i32>,
}

impl OneLeaderPerEpoch {
    /// Checks one step.
    pub fn check(&mut self, obs: &Observation, out: &mut Vec<Violation>) {
        for r in obs.replicas.iter().filter(|r| r.is_leader) {
            let key = (r.topic.clone(), r.partition, r.leader_epoch);
            match self.seen.get(&key) {
                Some(&other) if other != r.node => out.push(Violation {
                    invariant: "one leader per epoch",
                    detail: format!(
                        "{}-{} epoch {}: n{} leads, n{other} led it before (t={} ms)",
                        r.topic, r.partition, r.leader_epoch, r.node, obs.at_ms
                    ),
                }),
                Some(_) => {}
                None => {
                    self.seen.insert(key, r.node);
                }
            }
        }
    }

    /// How many (partition, epoch) leaderships were seen.
    pub fn leaderships(&self) -> usize {
        self.seen.len()
    }
}
