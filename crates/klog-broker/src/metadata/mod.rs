//! The broker's metadata: the store (the image the quorum's committed entries
//! build, and its change feed) and the one publisher that turns each change into
//! calls on the replica manager and the group runtime.

pub mod publisher;
pub mod store;
