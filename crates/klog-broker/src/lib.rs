//! The klog broker: a Kafka-protocol server composed from the klog crates, alone
//! or as a node of a cluster (a Raft metadata quorum, ISR replication, leader
//! election, request forwarding to the active controller).
//!
//! ```text
//!  client listener ──► net (frames, dispatch, sendfile) ──► handlers (one file per
//!                                                  │        API family: wire to domain,
//!                                                  │        authorization)
//!                                                  ▼
//!   services: replica (partitions on klog-storage, ISR and high watermark around
//!             klog-replication, follower fetchers) · group (the klog-coordinator
//!             state machine over __consumer_offsets) · controller (the active
//!             controller's runtime, admin service, lifecycle, forwarding)
//!                                                  ▲
//!   metadata: store (the image the quorum's log builds) ──► publisher (the one place
//!             that applies each change to the replica manager and the groups)
//!                                                  ▲
//!  controller listener ──► klog-quorum (openraft) + the controller APIs
//! ```
//!
//! [`node::Node`] builds the services and starts every background task (quorum,
//! controller, lifecycle, publisher, ISR changes, maintenance, group timer);
//! [`net::run`] serves the client listener with the node's [`Handlers`]. Modules
//! form layers, each importing only from those below (`tests/module_graph.rs`
//! checks it); `docs/architecture.md` draws them and says what each owns.
//!
//! What it does: parses frames with size limits, appends produced batches without
//! decoding records, serves fetches as file regions (read+write or `sendfile`) with
//! long polling woken by appends, replicates partitions to an in-sync replica set
//! (`acks=all` waits on the high watermark), runs consumer groups, keeps cluster
//! metadata in a replicated log, and runs retention, flushes and checkpoints in the
//! background. Every request served here asks the [`security::Authorizer`] seam
//! (today every connection is `User:ANONYMOUS` and everything is allowed);
//! forwarded admin requests are not checked yet (they will be on the active
//! controller, with the principal the Envelope carries).
//!
//! What it does not do (yet): transactions, TLS and SASL, ACLs (Kafka's standard
//! authorizer is in [`security::acl`], not yet fed from the metadata log nor
//! installed by the node), log compaction.

pub mod alloc;
pub mod config;
pub(crate) mod controller;
pub(crate) mod features;
pub mod group;
pub mod handlers;
pub mod metadata;
pub mod net;
pub mod node;
pub mod policy;
pub(crate) mod producer_ids;
pub mod replica;
pub mod security;
pub mod topics;

pub use handlers::Handlers;
pub use net::dispatch::Reply;
pub use node::StartError;

/// The request handlers under their old name, for programs written against it.
pub type Broker = Handlers;
pub use config::{BrokerConfig, ConfigError, FetchMode};
