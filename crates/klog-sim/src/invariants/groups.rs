//! A consumer group's committed offsets never go back within a generation: what
//! the group coordinator answers to OffsetFetch after each commit, per partition,
//! never decreases while the generation stays the same.

use std::collections::BTreeMap;

use super::Violation;

/// One committed offset as read back after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The consumer's generation when it committed.
    pub generation: i32,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The committed offset read back.
    pub offset: i64,
}

/// Checks the committed offsets, in the order they were read.
pub fn check(committed: &[Committed], out: &mut Vec<Violation>) {
    let mut last: BTreeMap<(i32, &str, i32), i64> = BTreeMap::new();
    for c in committed {
        let key = (c.generation, c.topic.as_str(), c.partition);
        if let Some(&before) = last.get(&key)
            && c.offset < before
        {
            out.push(Violation {
                invariant: "committed offsets never go back within a generation",
                detail: format!(
                    "{}-{} generation {}: committed {} after {before}",
                    c.topic, c.partition, c.generation, c.offset
                ),
            });
        }
        last.insert(key, c.offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(generation: i32, offset: i64) -> Committed {
        Committed {
            generation,
            topic: "t".into(),
            partition: 0,
            offset,
        }
    }

    #[test]
    fn a_step_back_within_a_generation_is_caught() {
        let mut out = Vec::new();
        check(&[c(1, 5), c(1, 7), c(2, 3), c(2, 4)], &mut out);
        assert!(out.is_empty(), "{out:?}");
        check(&[c(1, 5), c(1, 4)], &mut out);
        assert_eq!(out.len(), 1);
    }
}
