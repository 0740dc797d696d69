//! After the faults heal: every replica holds the same bytes up to the high
//! watermark (followers copy the leader's batches as they are).

use super::Violation;

/// One replica's log up to the partition's high watermark.
#[derive(Debug, Clone)]
pub struct ReplicaLog {
    /// The node.
    pub node: i32,
    /// Its high watermark.
    pub high_watermark: i64,
    /// The batches below the leader's high watermark, as stored.
    pub bytes: Vec<u8>,
}

/// Checks the replicas of one partition (the leader's first).
pub fn check_partition(topic: &str, partition: i32, logs: &[ReplicaLog], out: &mut Vec<Violation>) {
    let Some(leader) = logs.first() else {
        return;
    };
    for r in &logs[1..] {
        if r.high_watermark != leader.high_watermark {
            out.push(Violation {
                invariant: "replicas caught up once healed",
                detail: format!(
                    "{topic}-{partition}: n{} high watermark {}, leader n{} {}",
                    r.node, r.high_watermark, leader.node, leader.high_watermark
                ),
            });
        }
        if r.bytes != leader.bytes {
            let at = r
                .bytes
                .iter()
                .zip(&leader.bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(r.bytes.len().min(leader.bytes.len()));
            out.push(Violation {
                invariant: "replicas identical up to the high watermark",
                detail: format!(
                    "{topic}-{partition}: n{} ({} bytes) differs from leader n{} ({} bytes) at byte {at}",
                    r.node,
                    r.bytes.len(),
                    leader.node,
                    leader.bytes.len()
                ),
            });
        }
    }
}
