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
//!  members' subscriptions, partition counts ──► Assignor::assign ──► member ─► partitions
//! ```
//!
//! * [`mod@murmur2`]: the Java client's murmur2 hash and keyed partitioner.
//! * [`sticky`]: sticky (KIP-480) and round-robin partitioners for keyless records.
//! * [`placement`]: replica placement for new topics.
//! * [`group`]: consumer-group assignors (range, round-robin, cooperative-sticky) run
//!   by a group's leader.
//!
//! Not here: the consumer protocol's wire encoding of subscriptions and assignments
//! (that is `klog-client`'s, next to the codec), and anything that needs to know
//! which brokers are alive (callers pass the broker list).

pub mod group;
pub mod murmur2;
pub mod placement;
pub mod sticky;

pub use group::{Assignor, GroupAssignment, MemberSubscription, RebalanceProtocol, TopicPartition};
pub use murmur2::{murmur2, partition_for_key, to_positive};
pub use placement::{PlacementError, place_replicas};
pub use sticky::{RoundRobinPartitioner, StickyPartitioner};
