//! Errors, one enum per failure domain. Each says whether retrying may help
//! ([`ConnectionError::is_retriable`] and friends): a retriable error is transient
//! (a broker restarting, a leader moving, a topic being created) and the same
//! operation may succeed later; a non-retriable one will fail again the same way.
//!
//! Kafka error codes stay protocol values: they are carried as
//! [`ResponseError`] inside these errors, whose `is_retriable` follows the Kafka
//! protocol's own classification.

use std::sync::Arc;

/// Kafka error codes as carried in responses (from the `kafka-protocol` crate).
pub use klog_codec::protocol::ResponseError;
use klog_codec::protocol::client::ClientCodecError;

/// A failure of one broker connection or of one request on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The socket error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Reading or writing the socket failed; the connection is closed.
    #[error("I/O error on connection to {addr}: {source}")]
    Io {
        /// The broker address.
        addr: String,
        /// The socket error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The connection was closed (by the broker, or after an earlier error) before
    /// the response arrived.
    #[error("connection to {addr} closed")]
    Closed {
        /// The broker address.
        addr: String,
    },
    /// No response within `request.timeout.ms`.
    #[error("request (API key {api_key}) to {addr} timed out")]
    Timeout {
        /// The broker address.
        addr: String,
        /// The API of the request.
        api_key: i16,
    },
    /// A request could not be encoded or a response not decoded.
    #[error(transparent)]
    Codec(#[from] ClientCodecError),
    /// The broker sent a response frame larger than the client accepts.
    #[error("response frame of {size} bytes from {addr} exceeds the limit")]
    FrameTooLarge {
        /// The broker address.
        addr: String,
        /// The announced size.
        size: i64,
    },
    /// A response arrived for another request than the oldest one outstanding
    /// (Kafka answers in order on a connection).
    #[error("response correlation id {got} from {addr}, expected {expected}")]
    CorrelationMismatch {
        /// The broker address.
        addr: String,
        /// The id of the oldest outstanding request.
        expected: i32,
        /// The id in the response.
        got: i32,
    },
    /// The broker serves no version of this API that the client speaks.
    #[error("broker {addr} does not support API key {api_key} in versions {min}..={max}")]
    UnsupportedVersion {
        /// The broker address.
        addr: String,
        /// The API.
        api_key: i16,
        /// Lowest version the client speaks.
        min: i16,
        /// Highest version the client speaks.
        max: i16,
    },
    /// ApiVersions failed with this Kafka error.
    #[error("ApiVersions to {addr} failed: {error}")]
    Handshake {
        /// The broker address.
        addr: String,
        /// The Kafka error.
        error: ResponseError,
    },
}

impl ConnectionError {
    /// Whether retrying (on a new connection) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Io { .. } | Self::Closed { .. } | Self::Timeout { .. } => {
                true
            }
            Self::Handshake { error, .. } => error.is_retriable(),
            Self::Codec(_)
            | Self::FrameTooLarge { .. }
            | Self::CorrelationMismatch { .. }
            | Self::UnsupportedVersion { .. } => false,
        }
    }
}

/// A failure of a cluster-level operation: metadata, offsets lookup, admin requests.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection or request failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The broker answered with a Kafka error.
    #[error("{api} failed: {error}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Broker {
        /// The request that failed.
        api: &'static str,
        /// The Kafka error.
        error: ResponseError,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
    /// None of the bootstrap servers or known brokers could be reached.
    #[error("no broker reachable (tried {tried})")]
    NoBrokerAvailable {
        /// The addresses tried, comma-separated.
        tried: String,
    },
    /// The operation did not complete within its time limit.
    #[error("{what} timed out")]
    Timeout {
        /// What was being waited for.
        what: &'static str,
    },
    /// The configuration is unusable (e.g. no bootstrap servers, bad address).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl ClientError {
    /// Whether retrying later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Connection(e) => e.is_retriable(),
            Self::Broker { error, .. } => error.is_retriable(),
            Self::NoBrokerAvailable { .. } | Self::Timeout { .. } => true,
            Self::InvalidConfig(_) => false,
        }
    }

    pub(crate) fn broker(api: &'static str, code: i16, message: Option<String>) -> Option<Self> {
        ResponseError::try_from_code(code).map(|error| Self::Broker {
            api,
            error,
            message,
        })
    }
}

/// Why a record was not delivered.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// Metadata or connection failure that outlasted the time limits.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The partition leader refused the batch with a non-retriable Kafka error, or a
    /// retriable one persisted until `delivery.timeout.ms`.
    #[error("produce to {topic}-{partition} failed: {error}")]
    Broker {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The Kafka error.
        error: ResponseError,
    },
    /// The record was not acknowledged within `delivery.timeout.ms`; the last
    /// retriable failure is given.
    #[error("delivery to {topic}-{partition} timed out (last error: {last})")]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The last failure seen.
        last: String,
    },
    /// `buffer.memory` stayed full for `max.block.ms`.
    #[error("producer buffer full for max.block.ms")]
    BufferFull,
    /// The record alone exceeds `max.request.size` or `buffer.memory`.
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Encoded size estimate of the record.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The record's partition does not exist in the topic.
    #[error("partition {partition} does not exist in {topic} ({partitions} partitions)")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// The number of partitions of the topic.
        partitions: i32,
    },
    /// The record could not be encoded into a batch.
    #[error("cannot encode record: {0}")]
    Encode(#[from] klog_codec::EncodeError),
    /// The producer was closed before the record was delivered.
    #[error("producer closed")]
    Closed,
}

impl ProduceError {
    /// Whether sending the record again may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Client(e) => e.is_retriable(),
            Self::Broker { error, .. } => error.is_retriable(),
            Self::DeliveryTimeout { .. } | Self::BufferFull => true,
            Self::RecordTooLarge { .. }
            | Self::InvalidPartition { .. }
            | Self::Encode(_)
            | Self::Closed => false,
        }
    }
}

/// Why the consumer could not return records.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// Metadata, offset lookup or connection failure.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A fetch for this partition failed with a non-retriable Kafka error (e.g.
    /// OFFSET_OUT_OF_RANGE with `auto.offset.reset = none`).
    #[error("fetch from {topic}-{partition} failed: {error}")]
    Broker {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The Kafka error.
        error: ResponseError,
    },
    /// Fetched bytes are not a valid record batch (CRC mismatch, bad compression).
    #[error("corrupt data from {topic}-{partition} at offset {offset}: {source}")]
    Corrupt {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The fetch offset.
        offset: i64,
        /// What failed.
        #[source]
        source: klog_codec::DecodeError,
    },
    /// The partition is not assigned to this consumer.
    #[error("{topic}-{partition} is not assigned")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The topic has no such partition.
    #[error("{topic} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
}

impl ConsumeError {
    /// Whether polling again may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Client(e) => e.is_retriable(),
            Self::Broker { error, .. } => error.is_retriable(),
            Self::UnknownPartition { .. } => true,
            Self::Corrupt { .. } | Self::NotAssigned { .. } => false,
        }
    }
}

/// Why an admin operation on one topic failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Connection, metadata or request failure.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The controller refused the operation on this topic.
    #[error("{topic}: {error}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Topic {
        /// The topic.
        topic: String,
        /// The Kafka error.
        error: ResponseError,
        /// The broker's message, if any.
        message: Option<String>,
    },
    /// The topic does not exist.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// Looking up a partition's offsets (for group lag) failed.
    #[error(transparent)]
    Offsets(#[from] ConsumeError),
    /// The broker refused an operation on one partition (DeleteRecords,
    /// ListOffsets, an offset commit).
    #[error("{topic}-{partition}: {error}")]
    Partition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The Kafka error.
        error: ResponseError,
    },
    /// The broker refused to describe or change the configs of a resource.
    #[error("configs of {resource}: {error}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Config {
        /// The resource, as `topic NAME` or `broker ID`.
        resource: String,
        /// The Kafka error.
        error: ResponseError,
        /// The broker's message, if any.
        message: Option<String>,
    },
    /// The broker answered a request without the result it was asked for.
    #[error("{api}: the response has no result for {what}")]
    MissingResult {
        /// The request.
        api: &'static str,
        /// What the result was missing for.
        what: String,
    },
}

impl AdminError {
    /// Whether retrying may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Client(e) => e.is_retriable(),
            Self::Topic { error, .. } => error.is_retriable(),
            Self::UnknownTopic(_) => true,
            Self::Offsets(e) => e.is_retriable(),
            Self::Partition { error, .. } | Self::Config { error, .. } => error.is_retriable(),
            // A broker that leaves a result out will leave it out again.
            Self::MissingResult { .. } => false,
        }
    }
}

/// Why a group operation (joining, committing, polling as a member) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// Connection, metadata or coordinator lookup failure.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Fetching the assigned partitions failed.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    /// The group coordinator answered a group request with a Kafka error that the
    /// consumer cannot handle by rejoining (e.g. FENCED_INSTANCE_ID,
    /// INCONSISTENT_GROUP_PROTOCOL, INVALID_SESSION_TIMEOUT, GROUP_MAX_SIZE_REACHED).
    #[error("{api} for group {group} failed: {error}")]
    Coordinator {
        /// The request.
        api: &'static str,
        /// The group.
        group: String,
        /// The Kafka error.
        error: ResponseError,
    },
    /// An offset commit was refused. With REBALANCE_IN_PROGRESS the next poll
    /// completes the rebalance and the commit may then be retried; with
    /// UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION the partitions may already belong to
    /// another member, and committing them again would be wrong.
    #[error("offset commit for group {group} failed: {error}")]
    CommitFailed {
        /// The group.
        group: String,
        /// The Kafka error.
        error: ResponseError,
    },
    /// A member's subscription or the leader's assignment did not parse.
    #[error(transparent)]
    Protocol(#[from] crate::consumer_protocol::ConsumerProtocolError),
    /// The coordinator chose an assignor this consumer does not implement.
    #[error("group protocol {0:?} is not an assignor this consumer knows")]
    UnknownAssignor(String),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The consumer was closed.
    #[error("consumer closed")]
    Closed,
}

impl GroupError {
    /// Whether retrying the operation (after polling) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Client(e) => e.is_retriable(),
            Self::Consume(e) => e.is_retriable(),
            Self::Coordinator { error, .. } => error.is_retriable(),
            Self::CommitFailed { error, .. } => {
                *error == ResponseError::RebalanceInProgress || error.is_retriable()
            }
            Self::Protocol(_)
            | Self::UnknownAssignor(_)
            | Self::InvalidConfig(_)
            | Self::Closed => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriability_follows_the_kafka_classification() {
        let not_leader = ClientError::broker("Produce", 6, None).expect("error");
        assert!(not_leader.is_retriable());
        let too_large = ClientError::broker("Produce", 10, None).expect("error");
        assert!(!too_large.is_retriable());
        assert!(ClientError::broker("Produce", 0, None).is_none());
        let closed = ConnectionError::Closed { addr: "a".into() };
        assert!(closed.is_retriable());
        assert!(ProduceError::from(ClientError::from(closed)).is_retriable());
        assert!(!ProduceError::Closed.is_retriable());
        let mismatch = ConnectionError::CorrelationMismatch {
            addr: "a".into(),
            expected: 1,
            got: 2,
        };
        assert!(!mismatch.is_retriable());
        let rebalancing = GroupError::CommitFailed {
            group: "g".into(),
            error: ResponseError::RebalanceInProgress,
        };
        assert!(rebalancing.is_retriable());
        let fenced = GroupError::CommitFailed {
            group: "g".into(),
            error: ResponseError::IllegalGeneration,
        };
        assert!(!fenced.is_retriable());
        assert!(GroupError::from(ClientError::Timeout { what: "join" }).is_retriable());
        let moved = AdminError::Partition {
            topic: "t".into(),
            partition: 0,
            error: ResponseError::NotLeaderOrFollower,
        };
        assert!(moved.is_retriable());
        let below = AdminError::Partition {
            topic: "t".into(),
            partition: 0,
            error: ResponseError::OffsetOutOfRange,
        };
        assert!(!below.is_retriable());
        let bad = AdminError::Config {
            resource: "topic t".into(),
            error: ResponseError::InvalidConfig,
            message: Some("retention.ms".into()),
        };
        assert!(!bad.is_retriable());
        let shown = bad.to_string();
        assert!(shown.starts_with("configs of topic t: "), "{shown}");
        assert!(shown.ends_with(" (retention.ms)"), "{shown}");
    }
}
