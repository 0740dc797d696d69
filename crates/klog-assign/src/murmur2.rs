//! The Java client's murmur2 hash and its keyed partitioner.
//!
//! `org.apache.kafka.common.utils.Utils.murmur2` is MurmurHash2 (32-bit) with seed
//! `0x9747b28c`, reading the key in little-endian 4-byte words. The Java producer's
//! default partitioner sends a keyed record to
//! `toPositive(murmur2(key)) % numPartitions`, where `toPositive` clears the sign bit
//! (it is not `abs`). Getting any of this wrong silently breaks key affinity with
//! Java, kafkajs and kafka-python producers writing to the same topic.

const SEED: u32 = 0x9747_b28c;
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// MurmurHash2 of `data` exactly as Kafka's Java `Utils.murmur2` computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Java's switch falls through from case 3 to case 1.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (`i32::MIN` becomes 0).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition the Java producer picks for a record with `key` in a topic of
/// `num_partitions` partitions. Returns 0 when `num_partitions` is 0 or negative.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    if num_partitions <= 0 {
        return 0;
    }
    to_positive(murmur2(key)) % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        if s == "-" {
            return Vec::new();
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Table test: `testdata/murmur2.txt` (Kafka's UtilsTest vectors and more).
    #[test]
    fn java_vectors_from_table() {
        let table = include_str!("../testdata/murmur2.txt");
        let mut rows = 0;
        for line in table.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 7, "bad row: {line}");
            let key = unhex(fields[0]);
            let hash: i32 = fields[1].parse().expect("hash");
            assert_eq!(murmur2(&key), hash, "murmur2 of {}", fields[0]);
            for (n, expected) in [1, 3, 6, 10, 100].iter().zip(&fields[2..]) {
                let expected: i32 = expected.parse().expect("partition");
                assert_eq!(
                    partition_for_key(&key, *n),
                    expected,
                    "key {} with {n} partitions",
                    fields[0]
                );
            }
            rows += 1;
        }
        assert_eq!(rows, 12);
    }

    #[test]
    fn to_positive_clears_the_sign_bit_not_abs() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn no_partitions_is_partition_zero() {
        assert_eq!(partition_for_key(b"x", 0), 0);
    }
}
