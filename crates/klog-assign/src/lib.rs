//! Pure placement and partitioning for klog.
//!
//! Everything here is a deterministic function or a small state machine: no I/O, no
//! clock, no threads, and randomness only from a seed the caller passes in. That is
//! what lets the broker, the client and the tests share one definition and check it
//! with table tests (`testdata/*.txt`).
//!
//! ```text
//!  key bytes ──► murmur2 ──► partition_for_key(key, n) ──► partition (as the Java client)
//!  no key    ──► StickyPartitioner::partition(n) ──► same partition until
//!                on_new_batch(prev, n) moves it to another one
//!  brokers, partitions, rf ──► place_replicas ──► replicas per partition, leader first
//! ```
//!
//! * [`mod@murmur2`]: the Java client's murmur2 hash and keyed partitioner.
//! * [`sticky`]: sticky (KIP-480) and round-robin partitioners for keyless records.
//! * [`placement`]: replica placement for new topics.
//!
//! Not here: consumer-group assignors (they come with consumer groups), and anything
//! that needs to know which brokers are alive (callers pass the broker list).

pub mod murmur2;
pub mod placement;
pub mod sticky;

pub use murmur2::{murmur2, partition_for_key, to_positive};
pub use placement::{PlacementError, place_replicas};
pub use sticky::{RoundRobinPartitioner, StickyPartitioner};
