//! Replica placement for new topics (DESIGN.md, "Replicas").
//!
//! With the brokers sorted by id and `n` of them, partition `i`'s leader is broker
//! `i mod n` and its replica `j` is broker `(i + j) mod n`. Leaders are spread evenly
//! and each broker follows its neighbours, so a single broker failure moves at most
//! `1/n` of the leaders.

/// Why replicas could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// No brokers were given.
    #[error("no brokers to place replicas on")]
    NoBrokers,
    /// The replication factor is zero.
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    /// More replicas per partition than distinct brokers.
    #[error("replication factor {replication_factor} is larger than the {brokers} brokers")]
    NotEnoughBrokers {
        /// The requested replication factor.
        replication_factor: usize,
        /// The number of distinct brokers.
        brokers: usize,
    },
}

/// Places `replication_factor` replicas of each of `partitions` partitions on
/// `brokers` (any order; duplicates are ignored).
///
/// Returns one list per partition, leader first.
pub fn place_replicas(
    brokers: &[i32],
    partitions: u32,
    replication_factor: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let mut sorted = brokers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let n = sorted.len();
    if n == 0 {
        return Err(PlacementError::NoBrokers);
    }
    if replication_factor == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    if replication_factor > n {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            brokers: n,
        });
    }
    Ok((0..partitions as usize)
        .map(|i| {
            (0..replication_factor)
                .map(|j| sorted[(i + j) % n])
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(s: &str) -> Vec<i32> {
        s.split_whitespace()
            .map(|x| x.parse().expect("int"))
            .collect()
    }

    /// Table test: `testdata/placement.txt`.
    #[test]
    fn placement_table() {
        let table = include_str!("../testdata/placement.txt");
        let body: String = table
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut cases = 0;
        for case in body.split("---") {
            let mut lines = case.lines().map(str::trim).filter(|l| !l.is_empty());
            let head = lines.next().expect("case header");
            let (brokers, rest) = head
                .strip_prefix("brokers ")
                .and_then(|h| h.split_once(" partitions "))
                .expect("brokers .. partitions ..");
            let (partitions, rf) = rest.split_once(" rf ").expect("rf");
            let expected: Vec<Vec<i32>> = lines
                .enumerate()
                .map(|(i, l)| {
                    let (p, replicas) = l.split_once(':').expect("p: replicas");
                    assert_eq!(p.parse::<usize>().expect("partition"), i);
                    ints(replicas)
                })
                .collect();
            let got = place_replicas(
                &ints(brokers),
                partitions.parse().expect("partitions"),
                rf.parse().expect("rf"),
            )
            .expect("placement");
            assert_eq!(got, expected, "case: {head}");
            cases += 1;
        }
        assert_eq!(cases, 5);
    }

    #[test]
    fn refuses_impossible_placements() {
        assert_eq!(place_replicas(&[], 1, 1), Err(PlacementError::NoBrokers));
        assert_eq!(
            place_replicas(&[1], 1, 0),
            Err(PlacementError::ZeroReplicationFactor)
        );
        assert_eq!(
            place_replicas(&[1, 1, 2], 1, 3),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                brokers: 2
            })
        );
    }

    #[test]
    fn leaders_are_spread_evenly() {
        let placed = place_replicas(&[3, 1, 2], 9, 2).expect("placement");
        for b in [1, 2, 3] {
            assert_eq!(placed.iter().filter(|r| r[0] == b).count(), 3);
        }
    }
}
