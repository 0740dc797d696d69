//! The Kafka error codes this crate's outcomes map to (protocol guide, "Error
//! Codes"). They are protocol values carried in responses, not Rust errors.

/// OFFSET_OUT_OF_RANGE.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// NOT_LEADER_OR_FOLLOWER.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// REQUEST_TIMED_OUT.
pub const REQUEST_TIMED_OUT: i16 = 7;
/// NOT_ENOUGH_REPLICAS.
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND.
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
/// INVALID_REQUEST.
pub const INVALID_REQUEST: i16 = 42;
/// FENCED_LEADER_EPOCH.
pub const FENCED_LEADER_EPOCH: i16 = 74;
/// UNKNOWN_LEADER_EPOCH.
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
/// INVALID_UPDATE_VERSION.
pub const INVALID_UPDATE_VERSION: i16 = 95;
/// NEW_LEADER_ELECTED.
pub const NEW_LEADER_ELECTED: i16 = 108;
/// INELIGIBLE_REPLICA.
pub const INELIGIBLE_REPLICA: i16 = 107;
