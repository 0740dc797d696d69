//! The fault schedule of a seed: which faults, on which nodes, when, for how long.
//! A pure function of the seed ([`Schedule::generate`]), printable on its own
//! (`klog-sim --seed S --schedule`).

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of the node's process; it restarts from its files after `down`.
    /// Every write the process made before is kept (the files are real; the page
    /// cache survives a process crash): no unsynced-write loss.
    Crash {
        /// Node id.
        node: usize,
        /// How long it stays down.
        down: Duration,
    },
    /// Power loss: the node stops, and every partition log loses what it had not
    /// fsynced (cut back to its synced offset), with a torn piece of the next write
    /// left at the end of the last segment; it restarts after `down`. At most one
    /// per schedule (klog, as Kafka, keeps acknowledged records through the power
    /// loss of one broker, not of two: they are in page caches, not fsynced).
    PowerLoss {
        /// Node id.
        node: usize,
        /// How long it stays down.
        down: Duration,
    },
    /// The node cannot reach any other host, nor they it: its packets are held
    /// and delivered when the isolation ends (as TCP retransmits them once the
    /// network heals).
    Isolate {
        /// Node id.
        node: usize,
        /// How long.
        span: Duration,
    },
    /// A minority of two nodes (on four or five) is cut off from the other
    /// nodes and the clients, its two members still connected to each other;
    /// what is sent across is held and delivered when it ends.
    Split {
        /// The two node ids of the minority.
        minority: [usize; 2],
        /// How long.
        span: Duration,
    },
    /// Packets from node `from` to node `to` are dropped for good; the other way
    /// works (a connection that lost some stalls until a timeout drops it).
    OneWay {
        /// Sending node.
        from: usize,
        /// Receiving node.
        to: usize,
        /// How long.
        span: Duration,
    },
    /// Packets between two nodes are held, then delivered all at once.
    Hold {
        /// One node.
        a: usize,
        /// The other.
        b: usize,
        /// How long.
        span: Duration,
    },
    /// The node's process stops (SIGSTOP, a long GC pause) and then goes on
    /// where it was: no task of it runs, its timers fire late, all at once,
    /// when it resumes, and what it is sent waits in its sockets.
    Pause {
        /// Node id.
        node: usize,
        /// How long.
        span: Duration,
    },
    /// The node's disk is slow: every piece of blocking file work the node
    /// waits for (the metadata log's writes and fsyncs, opening partition logs
    /// and taking deleted ones out of service, checkpoints) takes `delay`
    /// longer. Unlinking deleted partitions runs on a thread of its own, which
    /// nothing waits for, and is not slowed.
    SlowDisk {
        /// Node id.
        node: usize,
        /// Extra time each operation takes.
        delay: Duration,
        /// How long.
        span: Duration,
    },
    /// Every message takes up to `max` to arrive (so messages on different
    /// connections overtake each other).
    Slow {
        /// Largest latency.
        max: Duration,
        /// How long.
        span: Duration,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            Self::Crash { node, down } => write!(f, "crash n{node}, restart after {} ms", ms(down)),
            Self::PowerLoss { node, down } => write!(
                f,
                "power loss of n{node} (unsynced writes lost, last one torn), restart after {} ms",
                ms(down)
            ),
            Self::Isolate { node, span } => write!(f, "isolate n{node} for {} ms", ms(span)),
            Self::Split {
                minority: [a, b],
                span,
            } => write!(f, "split n{a} and n{b} from the rest for {} ms", ms(span)),
            Self::OneWay { from, to, span } => {
                write!(f, "drop n{from} -> n{to} for {} ms", ms(span))
            }
            Self::Hold { a, b, span } => write!(f, "hold n{a} <-> n{b} for {} ms", ms(span)),
            Self::Pause { node, span } => write!(f, "pause n{node} for {} ms", ms(span)),
            Self::SlowDisk { node, delay, span } => write!(
                f,
                "slow disk on n{node} (+{} ms per blocking file operation) for {} ms",
                ms(delay),
                ms(span)
            ),
            Self::Slow { max, span } => {
                write!(f, "latency up to {} ms for {} ms", ms(max), ms(span))
            }
        }
    }
}

impl Fault {
    /// How long the fault lasts.
    pub fn span(&self) -> Duration {
        match self {
            Self::Crash { down, .. } | Self::PowerLoss { down, .. } => *down,
            Self::Isolate { span, .. }
            | Self::Split { span, .. }
            | Self::OneWay { span, .. }
            | Self::Hold { span, .. }
            | Self::Pause { span, .. }
            | Self::SlowDisk { span, .. }
            | Self::Slow { span, .. } => *span,
        }
    }
}

/// A fault and the simulated time it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Start, from the beginning of the simulation.
    pub at: Duration,
    /// The fault.
    pub fault: Fault,
}

/// Every fault of a seed, in start order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The faults.
    pub faults: Vec<Scheduled>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.faults {
            writeln!(f, "{:>7} ms  {}", s.at.as_millis(), s.fault)?;
        }
        Ok(())
    }
}

impl Schedule {
    /// The schedule of `seed` for `nodes` nodes: 1 to 6 faults starting between
    /// `from` and `until`.
    pub fn generate(seed: u64, nodes: usize, from: Duration, until: Duration) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_fa17);
        let count = rng.gen_range(1..=6);
        let ms = |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_millis(rng.gen_range(lo..hi));
        let mut power_lost = false;
        let mut faults: Vec<Scheduled> = (0..count)
            .map(|_| {
                let at = ms(&mut rng, from.as_millis() as u64, until.as_millis() as u64);
                let node = rng.gen_range(1..=nodes);
                let other = {
                    let o = rng.gen_range(1..nodes);
                    if o >= node { o + 1 } else { o }
                };
                let fault = match rng.gen_range(0..13) {
                    10 if !power_lost => {
                        power_lost = true;
                        Fault::PowerLoss {
                            node,
                            down: ms(&mut rng, 200, 8_000),
                        }
                    }
                    0..=3 | 10 => Fault::Crash {
                        node,
                        down: ms(&mut rng, 200, 8_000),
                    },
                    // On four or five nodes, half the isolations cut off a
                    // minority of two instead of one node. (The extra draw is
                    // made only there: three-node schedules stay as they were.)
                    4 | 5 if nodes >= 4 && rng.gen_bool(0.5) => Fault::Split {
                        minority: [node, other],
                        span: ms(&mut rng, 500, 8_000),
                    },
                    4 | 5 => Fault::Isolate {
                        node,
                        span: ms(&mut rng, 500, 8_000),
                    },
                    6 => Fault::OneWay {
                        from: node,
                        to: other,
                        span: ms(&mut rng, 500, 6_000),
                    },
                    7 | 8 => Fault::Hold {
                        a: node,
                        b: other,
                        span: ms(&mut rng, 100, 3_000),
                    },
                    11 => Fault::Pause {
                        node,
                        // Past the broker session timeout (9 s) at times.
                        span: ms(&mut rng, 500, 12_000),
                    },
                    12 => Fault::SlowDisk {
                        node,
                        delay: ms(&mut rng, 20, 500),
                        span: ms(&mut rng, 1_000, 8_000),
                    },
                    _ => Fault::Slow {
                        max: ms(&mut rng, 20, 400),
                        span: ms(&mut rng, 1_000, 6_000),
                    },
                };
                Scheduled { at, fault }
            })
            .collect();
        faults.sort_by_key(|s| s.at);
        Self { faults }
    }

    /// When the last fault ends.
    pub fn end(&self) -> Duration {
        self.faults
            .iter()
            .map(|s| s.at + s.fault.span())
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_schedule_and_seeds_differ() {
        let (from, until) = (Duration::from_secs(2), Duration::from_secs(20));
        let a = Schedule::generate(42, 3, from, until);
        assert_eq!(a, Schedule::generate(42, 3, from, until));
        let distinct = (0..50)
            .map(|s| Schedule::generate(s, 3, from, until).to_string())
            .collect::<std::collections::BTreeSet<_>>();
        assert!(distinct.len() > 45, "{} distinct schedules", distinct.len());
        for s in &a.faults {
            assert!(s.at >= from && s.at < until);
        }
    }

    #[test]
    fn minority_splits_only_on_four_or_five_nodes() {
        let (from, until) = (Duration::from_secs(2), Duration::from_secs(20));
        let splits = |nodes: usize| -> Vec<[usize; 2]> {
            (0..300)
                .flat_map(|seed| Schedule::generate(seed, nodes, from, until).faults)
                .filter_map(|s| match s.fault {
                    Fault::Split { minority, .. } => Some(minority),
                    _ => None,
                })
                .collect()
        };
        assert!(splits(3).is_empty());
        for nodes in [4, 5] {
            let found = splits(nodes);
            assert!(found.len() > 20, "{} splits on {nodes} nodes", found.len());
            for [a, b] in found {
                assert!(a != b && (1..=nodes).contains(&a) && (1..=nodes).contains(&b));
            }
        }
    }
}
