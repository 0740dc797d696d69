//! The API versions klog advertises in ApiVersions, and the ones it actually serves.
//!
//! Every client sends ApiVersions first and then uses `min(client max, broker max)`
//! for each API (protocol guide: "Versioning and Compatibility"). The ranges below
//! follow `shared/KAFKA-COMPAT.md`, including its traps:
//!
//! * Produce is advertised from 0 because librdkafka 2.0.2 (Debian's kcat) only
//!   compresses when Produce's advertised minimum is 0; versions 0-2 are refused on
//!   use, as Apache Kafka does.
//! * Fetch is advertised from 0 for the same reason: librdkafka 2.0.2 turns on its
//!   LZ4 feature only when the broker's Fetch range contains v2 (its feature map
//!   dates LZ4 with proper frame checksums to Fetch v2), and otherwise silently
//!   produces uncompressed batches when asked for lz4. Fetch 0-3 (message formats
//!   v0/v1) are refused on use.
//! * Metadata stops at 8: v9+ is flexible and would force compact encodings on most
//!   clients.
//! * The exact low versions librdkafka 2.0.2 probes for are inside the ranges:
//!   Produce 3 and 7, Fetch 4 and 10, ListOffsets 1, InitProducerId 0.
//! * Nothing is advertised before it works (librdkafka uses whatever it sees).

use kafka_protocol::messages::ApiKey;

/// One row of the version table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    /// The API.
    pub key: ApiKey,
    /// Lowest version advertised in ApiVersions.
    pub min: i16,
    /// Highest version advertised and served.
    pub max: i16,
    /// Lowest version actually served; versions in `min..served_min` are advertised
    /// for client feature detection only and refused on use.
    pub served_min: i16,
}

const fn row(key: ApiKey, min: i16, max: i16) -> ApiSupport {
    ApiSupport {
        key,
        min,
        max,
        served_min: min,
    }
}

/// The APIs klog serves, in API-key order.
pub const SUPPORTED_APIS: &[ApiSupport] = &[
    ApiSupport {
        key: ApiKey::Produce,
        min: 0,
        max: 8,
        served_min: 3,
    },
    ApiSupport {
        key: ApiKey::Fetch,
        min: 0,
        max: 11,
        served_min: 4,
    },
    // ListOffsets v6+ is flexible; v7 is where Kafka introduced timestamp -3 (the
    // record with the largest timestamp, KIP-734). Advertising 7 makes kafka-python
    // 3.0.12 take the broker for Kafka 3.0 (its inference table keys 3.0 on it).
    row(ApiKey::ListOffsets, 1, 7),
    row(ApiKey::Metadata, 1, 8),
    // Consumer groups: OffsetCommit v8+, OffsetFetch v6+, FindCoordinator v3+,
    // JoinGroup v6+, Heartbeat v4+, LeaveGroup v4+, SyncGroup v4+, DescribeGroups
    // v5+ and ListGroups v3+ are flexible; the ranges stop below them. FindCoordinator
    // 0 and JoinGroup/SyncGroup/Heartbeat/LeaveGroup 0 are librdkafka 2.0.2 probes.
    row(ApiKey::OffsetCommit, 2, 7),
    row(ApiKey::OffsetFetch, 1, 5),
    row(ApiKey::FindCoordinator, 0, 2),
    row(ApiKey::JoinGroup, 0, 5),
    row(ApiKey::Heartbeat, 0, 3),
    row(ApiKey::LeaveGroup, 0, 3),
    row(ApiKey::SyncGroup, 0, 3),
    row(ApiKey::DescribeGroups, 0, 4),
    row(ApiKey::ListGroups, 0, 2),
    row(ApiKey::ApiVersions, 0, 3),
    row(ApiKey::CreateTopics, 2, 4),
    row(ApiKey::DeleteTopics, 1, 3),
    // DeleteRecords v2+ is flexible.
    row(ApiKey::DeleteRecords, 0, 1),
    row(ApiKey::InitProducerId, 0, 1),
    // Followers ask a new leader where their log diverged (KIP-101, KIP-279); v3
    // carries the replica id, v4 is flexible.
    row(ApiKey::OffsetForLeaderEpoch, 2, 3),
    // Admin: the ranges stop below each API's first flexible version (AlterConfigs
    // v2, CreatePartitions v2, DescribeConfigs v4, IncrementalAlterConfigs v1).
    row(ApiKey::DescribeConfigs, 1, 3),
    row(ApiKey::AlterConfigs, 0, 1),
    // DescribeLogDirs starts at 1 in the message crate; v2+ is flexible.
    row(ApiKey::DescribeLogDirs, 1, 1),
    row(ApiKey::CreatePartitions, 0, 1),
    row(ApiKey::DeleteGroups, 0, 1),
    // Run by the active controller (any broker forwards it); v2+ is flexible.
    row(ApiKey::ElectLeaders, 0, 2),
    row(ApiKey::IncrementalAlterConfigs, 0, 0),
    row(ApiKey::OffsetDelete, 0, 0),
    // The metadata quorum (KIP-595), answered by the active controller; flexible
    // from v0, its only form.
    row(ApiKey::DescribeQuorum, 0, 2),
    // DescribeCluster is flexible from v0; kafka-python 3.0.12's describe_cluster
    // needs v1 (it reads endpoint_type). v2 adds fenced brokers.
    row(ApiKey::DescribeCluster, 0, 1),
];

/// The table row for `api_key`, if klog serves that API.
pub fn support(api_key: i16) -> Option<&'static ApiSupport> {
    SUPPORTED_APIS.iter().find(|s| s.key as i16 == api_key)
}

/// Whether klog serves `api_key` at `version` (advertised and not refused on use).
pub fn is_served(api_key: i16, version: i16) -> bool {
    support(api_key).is_some_and(|s| (s.served_min..=s.max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advertised(key: ApiKey, version: i16) -> bool {
        support(key as i16).is_some_and(|s| (s.min..=s.max).contains(&version))
    }

    /// KAFKA-COMPAT.md trap 2: the exact versions librdkafka 2.0.2 tests for.
    #[test]
    fn librdkafka_2_0_2_feature_probes_are_advertised() {
        for (key, version) in [
            (ApiKey::Produce, 0),
            (ApiKey::Produce, 3),
            (ApiKey::Produce, 7),
            (ApiKey::Fetch, 2),
            (ApiKey::Fetch, 4),
            (ApiKey::Fetch, 10),
            (ApiKey::ListOffsets, 1),
            (ApiKey::InitProducerId, 0),
            (ApiKey::OffsetCommit, 2),
            (ApiKey::OffsetFetch, 1),
            (ApiKey::FindCoordinator, 0),
            (ApiKey::JoinGroup, 0),
            (ApiKey::SyncGroup, 0),
            (ApiKey::Heartbeat, 0),
            (ApiKey::LeaveGroup, 0),
        ] {
            assert!(advertised(key, version), "{key:?} v{version}");
        }
    }

    #[test]
    fn old_produce_and_fetch_advertised_but_not_served() {
        assert!(!is_served(ApiKey::Produce as i16, 2));
        assert!(is_served(ApiKey::Produce as i16, 3));
        assert!(!is_served(ApiKey::Metadata as i16, 9));
        assert!(!is_served(ApiKey::Fetch as i16, 3));
        assert!(is_served(ApiKey::Fetch as i16, 4));
        assert!(!is_served(999, 0));
    }

    /// Every served version must be one the message crate can decode.
    #[test]
    fn served_ranges_are_within_the_message_crate() {
        for s in SUPPORTED_APIS {
            let valid = s.key.valid_versions();
            assert!(
                valid.min <= s.served_min && s.max <= valid.max,
                "{:?}",
                s.key
            );
        }
    }

    #[test]
    fn table_is_in_key_order() {
        let keys: Vec<i16> = SUPPORTED_APIS.iter().map(|s| s.key as i16).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
