//! Partitioners for records without a key.
//!
//! [`StickyPartitioner`] is the Java client's behaviour since KIP-480: keyless records
//! stick to one partition until the producer starts a new batch for it, then move to
//! another partition. Batches fill faster than with round-robin (one partition gets
//! all records for a while), so a producer sends fewer, larger requests, while over
//! time the load still spreads over every partition.
//!
//! Both partitioners are sans-IO: the sticky one draws from a small seeded generator
//! (splitmix64) so tests are reproducible; the producer seeds it once from the clock.

/// splitmix64: tiny, seeded, good enough to spread partitions; not cryptographic.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// Sticky partitioner for one topic (KIP-480).
///
/// ```text
///  partition(n) ──► current partition (chosen at random the first time)
///  on_new_batch(prev, n) ──► if prev is the current one, pick a different one
/// ```
#[derive(Debug, Clone)]
pub struct StickyPartitioner {
    rng: SplitMix64,
    current: Option<i32>,
}

impl StickyPartitioner {
    /// A partitioner whose random choices come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64(seed),
            current: None,
        }
    }

    /// The partition for the next keyless record in a topic of `num_partitions`.
    ///
    /// Sticks to the current choice while it is still a valid partition. Returns 0
    /// when `num_partitions` is 0 or negative.
    pub fn partition(&mut self, num_partitions: i32) -> i32 {
        if num_partitions <= 0 {
            return 0;
        }
        match self.current {
            Some(p) if p < num_partitions => p,
            _ => {
                let p = self.rng.below(num_partitions as u32) as i32;
                self.current = Some(p);
                p
            }
        }
    }

    /// Tells the partitioner that the batch on `prev` was completed, so the next
    /// keyless record should start a batch elsewhere. Ignored if the partitioner has
    /// already moved away from `prev` (another batch completion moved it first).
    pub fn on_new_batch(&mut self, prev: i32, num_partitions: i32) {
        if self.current != Some(prev) || num_partitions <= 1 {
            return;
        }
        // Uniform over the other n - 1 partitions.
        let r = self.rng.below(num_partitions as u32 - 1) as i32;
        self.current = Some(if r >= prev { r + 1 } else { r });
    }
}

/// Round-robin over partitions, as kafkajs and the Java `RoundRobinPartitioner` do.
#[derive(Debug, Clone, Default)]
pub struct RoundRobinPartitioner {
    next: u64,
}

impl RoundRobinPartitioner {
    /// Starts at partition 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next partition of a topic with `num_partitions` (0 when there are none).
    pub fn partition(&mut self, num_partitions: i32) -> i32 {
        if num_partitions <= 0 {
            return 0;
        }
        let p = (self.next % num_partitions as u64) as i32;
        self.next = self.next.wrapping_add(1);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticks_until_a_new_batch_then_moves_elsewhere() {
        let mut s = StickyPartitioner::new(42);
        let first = s.partition(8);
        for _ in 0..100 {
            assert_eq!(s.partition(8), first);
        }
        s.on_new_batch(first, 8);
        let second = s.partition(8);
        assert_ne!(second, first);
        // A stale completion for the old partition does not move it again.
        s.on_new_batch(first, 8);
        assert_eq!(s.partition(8), second);
    }

    #[test]
    fn spreads_over_every_partition_over_time() {
        let mut s = StickyPartitioner::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..1000 {
            let p = s.partition(5);
            seen[p as usize] += 1;
            s.on_new_batch(p, 5);
        }
        assert!(seen.iter().all(|&c| c > 100), "{seen:?}");
    }

    #[test]
    fn same_seed_same_choices() {
        let run = |seed| {
            let mut s = StickyPartitioner::new(seed);
            (0..20)
                .map(|_| {
                    let p = s.partition(10);
                    s.on_new_batch(p, 10);
                    p
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
    }

    #[test]
    fn single_partition_and_shrinking_topics() {
        let mut s = StickyPartitioner::new(1);
        assert_eq!(s.partition(1), 0);
        s.on_new_batch(0, 1);
        assert_eq!(s.partition(1), 0);
        assert_eq!(s.partition(0), 0);
        let mut s = StickyPartitioner::new(9);
        let p = s.partition(100);
        assert!(p < 100);
        assert!(s.partition(1) == 0 || p == 0);
    }

    #[test]
    fn round_robin_cycles() {
        let mut r = RoundRobinPartitioner::new();
        let got: Vec<i32> = (0..7).map(|_| r.partition(3)).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
    }
}
