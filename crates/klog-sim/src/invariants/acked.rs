//! After the faults heal: every acknowledged record is readable, exactly once, at
//! the offset it was acknowledged at, in the order it was produced; offsets are
//! dense; no record (acknowledged or not) appears twice (the producer is
//! idempotent).

use std::collections::BTreeMap;

use super::Violation;

/// A record the producer had acknowledged (`acks=all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The offset the broker acknowledged.
    pub offset: i64,
    /// The record's sequence number in the workload (its value).
    pub value: u64,
}

/// Checks the committed records of one partition, read from its leader up to the
/// high watermark: `(offset, value)` in log order.
pub fn check_partition(
    topic: &str,
    partition: i32,
    log_start: i64,
    records: &[(i64, u64)],
    acked: &[Acked],
    out: &mut Vec<Violation>,
) {
    for (expected, &(offset, _)) in (log_start..).zip(records) {
        if offset != expected {
            out.push(Violation {
                invariant: "offsets dense",
                detail: format!("{topic}-{partition}: offset {offset} where {expected} was next"),
            });
            break;
        }
    }
    let mut at: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for &(offset, value) in records {
        at.entry(value).or_default().push(offset);
    }
    for (value, offsets) in at.iter().filter(|(_, o)| o.len() > 1) {
        out.push(Violation {
            invariant: "no record twice",
            detail: format!("{topic}-{partition}: record {value} at offsets {offsets:?}"),
        });
    }
    let mut last_value = None;
    for a in acked
        .iter()
        .filter(|a| a.topic == topic && a.partition == partition)
    {
        match at.get(&a.value) {
            None => out.push(Violation {
                invariant: "acknowledged records survive",
                detail: format!(
                    "{topic}-{partition}: record {} acknowledged at offset {} is gone",
                    a.value, a.offset
                ),
            }),
            Some(offsets) if !offsets.contains(&a.offset) => out.push(Violation {
                invariant: "acknowledged records survive",
                detail: format!(
                    "{topic}-{partition}: record {} acknowledged at offset {} is at {offsets:?}",
                    a.value, a.offset
                ),
            }),
            Some(_) => {}
        }
        if let Some(before) = last_value
            && a.value < before
        {
            out.push(Violation {
                invariant: "acknowledged records in order",
                detail: format!(
                    "{topic}-{partition}: record {} acknowledged after record {before}",
                    a.value
                ),
            });
        }
        last_value = Some(a.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(offset: i64, value: u64) -> Acked {
        Acked {
            topic: "t".into(),
            partition: 0,
            offset,
            value,
        }
    }

    #[test]
    fn catches_lost_moved_duplicated_and_gapped_records() {
        let mut out = Vec::new();
        check_partition(
            "t",
            0,
            0,
            &[(0, 1), (1, 2)],
            &[acked(0, 1), acked(1, 2)],
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        check_partition("t", 0, 0, &[(0, 1)], &[acked(0, 1), acked(1, 2)], &mut out);
        assert_eq!(
            out.pop().map(|v| v.invariant),
            Some("acknowledged records survive")
        );
        check_partition("t", 0, 0, &[(0, 2), (1, 1)], &[acked(0, 1)], &mut out);
        assert_eq!(
            out.pop().map(|v| v.invariant),
            Some("acknowledged records survive")
        );
        check_partition("t", 0, 0, &[(0, 1), (1, 1)], &[], &mut out);
        assert_eq!(out.pop().map(|v| v.invariant), Some("no record twice"));
        check_partition("t", 0, 0, &[(0, 1), (2, 2)], &[], &mut out);
        assert_eq!(out.pop().map(|v| v.invariant), Some("offsets dense"));
        assert!(out.is_empty());
    }
}
