//! Manual replica assignments, as CreateTopics (`assignments` instead of
//! `num_partitions` / `replication_factor`) and CreatePartitions give them, checked
//! against the brokers that exist. Pure: the caller passes the broker ids.
//!
//! On one node the only broker is this one, so a valid assignment puts every
//! partition on it. When the controller exists it checks assignments against the
//! registered brokers with these same functions, and places partitions itself
//! (`klog-assign`) when none is given. A refusal is INVALID_REPLICA_ASSIGNMENT, as
//! from Kafka.

use std::collections::BTreeSet;

/// Checks one partition's replica list: not empty, no broker twice, every broker
/// one of `brokers`. Says why not.
pub fn check_replicas(replicas: &[i32], brokers: &[i32]) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("a partition needs at least one replica".to_owned());
    }
    let mut seen = BTreeSet::new();
    for b in replicas {
        if !seen.insert(b) {
            return Err(format!("replicas {replicas:?} name broker {b} twice"));
        }
        if !brokers.contains(b) {
            return Err(format!(
                "replicas {replicas:?} name broker {b}, which does not exist (brokers: {brokers:?})"
            ));
        }
    }
    Ok(())
}

/// Checks a new topic's assignment, given as (partition index, replicas): the
/// indexes are 0 to n-1, each once, every replica list passes [`check_replicas`],
/// and all have the same length. Returns (partition count, replication factor).
pub fn check_topic_assignment(
    assignments: &[(i32, Vec<i32>)],
    brokers: &[i32],
) -> Result<(i32, i16), String> {
    let indexes: BTreeSet<i32> = assignments.iter().map(|(p, _)| *p).collect();
    let count = i32::try_from(assignments.len()).map_err(|_| "too many partitions".to_owned())?;
    if indexes.len() != assignments.len() || indexes.iter().copied().ne(0..count) {
        return Err(format!(
            "partition indexes {:?} are not 0 to {} each once",
            assignments.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            count - 1
        ));
    }
    let mut factor = None;
    for (partition, replicas) in assignments {
        check_replicas(replicas, brokers).map_err(|e| format!("partition {partition}: {e}"))?;
        match factor {
            None => factor = Some(replicas.len()),
            Some(f) if f != replicas.len() => {
                return Err(format!(
                    "partition {partition} has {} replicas, others {f}: the replication factor must be the same for every partition",
                    replicas.len()
                ));
            }
            Some(_) => {}
        }
    }
    let factor = i16::try_from(factor.unwrap_or(0)).map_err(|_| "too many replicas".to_owned())?;
    Ok((count, factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_lists() {
        assert_eq!(check_replicas(&[1], &[1]), Ok(()));
        assert_eq!(check_replicas(&[2, 1], &[1, 2, 3]), Ok(()));
        assert!(check_replicas(&[], &[1]).is_err());
        assert!(check_replicas(&[1, 1], &[1]).is_err());
        let unknown = check_replicas(&[1, 7], &[1]).expect_err("unknown broker");
        assert!(unknown.contains("broker 7"), "{unknown}");
    }

    /// CreateTopics with `assignments` (Kafka's CreateTopicsRequest): the partition
    /// count and replication factor come from the assignment.
    #[test]
    fn topic_assignments() {
        let one = |p: i32, r: &[i32]| (p, r.to_vec());
        assert_eq!(
            check_topic_assignment(&[one(0, &[1]), one(1, &[1]), one(2, &[1])], &[1]),
            Ok((3, 1))
        );
        assert_eq!(
            check_topic_assignment(&[one(1, &[2, 1]), one(0, &[1, 2])], &[1, 2]),
            Ok((2, 2))
        );
        for bad in [
            vec![one(0, &[1]), one(2, &[1])],
            vec![one(1, &[1])],
            vec![one(0, &[1]), one(0, &[1])],
            vec![one(0, &[1]), one(1, &[7])],
            vec![one(0, &[1]), one(1, &[])],
            vec![one(-1, &[1])],
        ] {
            assert!(check_topic_assignment(&bad, &[1]).is_err(), "{bad:?}");
        }
        assert!(check_topic_assignment(&[one(0, &[1, 2]), one(1, &[1])], &[1, 2]).is_err());
    }
}
