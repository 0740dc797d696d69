//! A deterministic simulation of a whole klog cluster: three (or more) combined
//! controller + broker nodes, an idempotent producer and a two-member consumer
//! group, run
//! by [turmoil] on one thread in
//! simulated time, under a fault schedule drawn from a seed, with invariants
//! checked after every step and once the faults have healed.
//!
//! ```text
//!  seed ──► Schedule (faults, times) ─────────────┐
//!    │                                            ▼ applied between steps
//!    ├──► turmoil Sim: hosts n1..nN ── klog_broker::node::Node + server::run
//!    │                 client ─────── klog_client Admin + idempotent Producer
//!    │                 consumer, consumer2 ── klog_client GroupConsumer each
//!    │                                         (one group: commit, read back)
//!    │                    │ step (one tick of simulated time)
//!    │                    ▼
//!    │           Observation of every running node ──► StepChecks (invariants/)
//!    └──► openraft election timeouts (seed_election_rng)
//!  after the last fault: heal, restart, wait for the replicas to catch up,
//!  then read every replica's log ──► acked, replicas, groups (invariants/)
//! ```
//!
//! # What is real and what is simulated
//!
//! Real: everything klog runs — the broker's request handling, partitions and
//! replica fetchers, the `klog-replication` state machines, the controller, the
//! metadata quorum on openraft with its log in `__cluster_metadata-0/`, the
//! storage engine writing real segment files (in a temporary directory, on
//! `/dev/shm` when there is one), and `klog-client`'s admin client and producer.
//!
//! Simulated, through seams in the real code:
//! * **sockets**: turmoil's TCP, installed behind [`klog_rt::net`] (every
//!   connection and listener klog makes goes through it); the fetch path copies
//!   file regions instead of `sendfile`, which needs a real socket;
//! * **time**: turmoil's paused tokio clocks drive every timer and deadline
//!   (`tokio::time::Instant`), and its simulated epoch is the wall clock
//!   ([`klog_rt::clock`]) the protocol cores are given;
//! * **task scheduling**: each node is a turmoil host, its tasks on one
//!   single-threaded runtime; hosts are stepped in a fixed order. Every task a
//!   node spawns goes through [`klog_rt::task`], under the node's gate, so
//!   the harness can pause the node (no task of it runs; its timers fire late,
//!   at once, when it resumes; what it is sent waits in its sockets), and its
//!   blocking file work runs inline on the simulation's thread, followed by the
//!   node's disk latency (a slow disk) in simulated time;
//! * **randomness**: turmoil's network from the seed, openraft's election
//!   timeouts from [`klog_quorum::seed_election_rng`], and everything
//!   else that draws from the C library's `getrandom` (`HashMap` keys, and so
//!   every map's iteration order; tokio's scheduler and `select!` seeds; the
//!   broker's incarnation id) from a stream [`entropy`] starts at the seed.
//!
//! The file system is real, with one fault played on it by the harness: a
//! **power loss** cuts every partition log of the node back to what the storage
//! engine had fsynced (`Log::synced_offset`) and leaves a torn piece of a batch
//! at the end of its last segment, and gives the node a new boot id (the
//! `klog.boot.id.file` seam, `/proc/sys/kernel/random/boot_id` in production),
//! so that it knows it rebooted. A plain crash keeps every write the process
//! made, as a `kill -9` on a machine that stays up does. The metadata log is
//! fsynced before its records count, so a power loss keeps it.
//!
//! # Replay
//!
//! A seed runs the same way every time, step for step: one thread, hosts
//! stepped in a fixed order, blocking file work inline, simulated time, and
//! every random draw from the seed ([`entropy`]). What would make two runs of
//! one seed differ is what an earlier run left in the process (`HashMap` keys
//! already drawn, counters), so `klog-sim` runs each seed of a sweep in a
//! process of its own: `klog-sim --seed S`, the command a failure prints, is
//! the run that failed. `tests/replay.rs` checks that a seed's trace is the
//! same byte for byte from one run to the next, with the nodes' logs on or off.
//!
//! # Faults ([`faults`])
//!
//! Crash and restart of a node, power loss of a node (at most one per schedule:
//! klog, as Kafka, promises acknowledged records through the loss of one
//! broker's unsynced writes, not two), isolating a node (or, on four or five
//! nodes, a minority of two from the rest), one-way packet loss
//! between two nodes, holding the packets between two nodes and delivering them
//! late, and raised latency (messages on different connections overtake each
//! other), pausing a node (a long GC pause, SIGSTOP), and a slow disk on a node.
//!
//! # Invariants ([`invariants`])
//!
//! At every step: one leader per (partition, leader epoch); a node's high
//! watermark never decreases; a leader's high watermark never exceeds the log
//! end of a running ISR member (a member back from a power loss is excused until
//! it has left the ISR or caught up). After healing: every acknowledged record is
//! in the log exactly once, at its acknowledged offset, in produce order; offsets
//! are dense; no record twice; every replica identical up to the high watermark;
//! the group's committed offsets, as read back after each commit, never went
//! back within a generation.
//!
//! # Proof that it can fail
//!
//! The `mutation` feature builds `klog-replication` with a planted bug (the
//! leader advances the high watermark ignoring its last ISR follower);
//! `scripts/sim --mutation --seeds 100 --expect-failure` must find a failing
//! seed, and CI runs it. Seeds that found real bugs are kept in `tests/seeds.rs`.

pub mod entropy;
pub mod faults;
mod gate;
pub mod invariants;
mod net;
mod run;

pub use net::install;
pub use run::{FAULTS_FROM, FAULTS_UNTIL, Options, Report, run};
