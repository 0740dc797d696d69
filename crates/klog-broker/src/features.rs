//! Feature levels (KIP-584) as ApiVersions v3+ reports them: what klog supports
//! (`SupportedFeatures`), what the cluster has finalized (`FinalizedFeatures`), and
//! the epoch of that finalized state (`FinalizedFeaturesEpoch`).
//!
//! Pure functions of the ApiVersions version and the metadata image's offset: no
//! I/O, no clock. The kafka-protocol structs write these tagged fields at v3+ only,
//! so an answer encoded at v0-v2 (including the v0 layout of an UNSUPPORTED_VERSION
//! answer) carries none of them.
//!
//! ```text
//!  ApiVersions version ──► supported_features ──► SupportedFeatures
//!  image offset ─────────► finalized_features ──► FinalizedFeaturesEpoch,
//!                                                 FinalizedFeatures
//! ```
//!
//! The two features klog has:
//!
//! - `metadata.version` at [`METADATA_VERSION_LEVEL`], supported and finalized (see
//!   that constant for why this level).
//! - `transaction.version` at 0 only: level 0 is none of the transaction protocol
//!   changes that levels 1 and 2 bring (KIP-890, KIP-1022), and klog has no
//!   transactions to change. Whether a broker has transactions at all is said by
//!   the APIs it advertises (klog advertises no AddPartitionsToTxn or EndTxn), not
//!   by this level. A finalized level 0 is never listed in
//!   `FinalizedFeatures` (KIP-1022; Kafka's `FinalizedFeatures.setFinalizedLevel`
//!   removes it), and a supported minimum of 0 is listed only from ApiVersions v4:
//!   Java clients before 3.9 fail on a `SupportedFeatures` minimum of 0
//!   (`SupportedVersionRange` requires >= 1, KAFKA-17011), so Kafka leaves such
//!   features out below v4 (KAFKA-17492, and the note on `SupportedFeatures` in
//!   Kafka's `ApiVersionsResponse.json`). klog serves ApiVersions 0-3, so
//!   `transaction.version` reaches no client today; a v4 answer would list it with
//!   min 0 and max 0. Being absent at v3 says the same thing as 0..0: a client
//!   treats a feature the broker does not list as level 0.
//!
//! klog writes no `FeatureLevelRecord`: its metadata log has one format, every
//! node of a klog cluster runs it, and UpdateFeatures (57) is not served, so the
//! finalized levels are the supported ones and cannot move. If klog ever has a
//! second format, the finalized level has to become a record of the metadata log,
//! as KIP-778 made it in Kafka.

use klog_codec::protocol::StrBytes;
use klog_codec::protocol::messages::ApiVersionsResponse;
use klog_codec::protocol::messages::api_versions_response::{
    FinalizedFeatureKey, SupportedFeatureKey,
};

/// The name of the metadata log's feature (KIP-778).
pub const METADATA_VERSION: &str = "metadata.version";

/// The name of the transaction protocol's feature (KIP-1022).
pub const TRANSACTION_VERSION: &str = "transaction.version";

/// klog's `metadata.version` level: 1, Kafka's `3.0-IV1`.
///
/// `metadata.version` versions Kafka's metadata log records and inter-broker RPCs.
/// klog's metadata log is not Kafka's record format and no Kafka node can join a
/// klog quorum, so no level describes it literally; what a level can honestly say
/// is which Kafka release a client talking to klog sees. That is Kafka 3.0:
///
/// - klog's client APIs reach Kafka 3.0 and stop there: ListOffsets v7 (KIP-734's
///   max timestamp, the change Kafka's `MetadataVersion` notes for `3.0-IV1`,
///   with KIP-724's message format 3.0), but not Fetch v13 (KIP-516's topic ids,
///   level 2, `3.1-IV0`); Produce 8, Fetch 11 and Metadata 8 are older still.
///   kafka-python 3.0.12 reads klog's ApiVersions and infers a 3.0 broker for
///   that reason (`infer_broker_version_from_api_versions`: ListOffsets 7 yes,
///   Fetch 13 no). Two admin APIs go further (DescribeCluster v1, DescribeQuorum
///   v2), but kafka-python does not date a broker by them.
/// - It is the generation klog reports elsewhere: DescribeConfigs shows
///   `message.format.version` = `3.0-IV1` (KIP-724).
/// - 3.0-IV1 is the first level with a number (Kafka's first KRaft level); there
///   is nothing lower to claim.
///
/// What the choice does not mean: Kafka 3.0 did not yet report `metadata.version`
/// in ApiVersions (that came with KIP-778 in 3.3, which gave 3.0-3.2 their levels
/// afterwards), and Kafka 4 no longer knows levels below 7 (`3.3-IV3`): its
/// `kafka-features describe` prints this one as `UNKNOWN 1` (Kafka 3.x tools name
/// it `3.0-IV1`). Nor does it deny behaviour klog has from later levels inside
/// its controller (the leader epoch moves only with the leader, as from
/// `3.6-IV0`, KAFKA-15021; brokers in controlled shutdown leave every ISR,
/// KIP-841): those are choices of klog's own log, not Kafka records it writes.
pub const METADATA_VERSION_LEVEL: i16 = 1;

/// A feature klog has: the levels it supports and the level the cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// The feature's name, as Kafka spells it.
    pub name: &'static str,
    /// The lowest supported level.
    pub min: i16,
    /// The highest supported level.
    pub max: i16,
    /// The finalized (cluster-wide) level; 0 is "off" and never listed.
    pub finalized: i16,
}

/// Every feature klog has, in the order ApiVersions lists them.
pub const FEATURES: &[Feature] = &[
    Feature {
        name: METADATA_VERSION,
        min: METADATA_VERSION_LEVEL,
        max: METADATA_VERSION_LEVEL,
        finalized: METADATA_VERSION_LEVEL,
    },
    Feature {
        name: TRANSACTION_VERSION,
        min: 0,
        max: 0,
        finalized: 0,
    },
];

/// The first ApiVersions version whose clients accept a supported minimum of 0
/// (KAFKA-17011).
pub const MIN_VERSION_ZERO_FROM: i16 = 4;

/// `SupportedFeatures` for an ApiVersions answer at `api_version`: every feature,
/// less those with a minimum of 0 below v4 (KAFKA-17492).
pub fn supported_features(api_version: i16) -> Vec<SupportedFeatureKey> {
    FEATURES
        .iter()
        .filter(|f| f.min > 0 || api_version >= MIN_VERSION_ZERO_FROM)
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version(f.min)
                .with_max_version(f.max)
        })
        .collect()
}

/// `FinalizedFeaturesEpoch` and `FinalizedFeatures` for a broker whose metadata
/// image has applied the log up to `image_offset`.
///
/// The epoch is that offset, as a Kafka broker in KRaft mode sends the offset of
/// its metadata image (`KRaftMetadataCache.features`); it grows with every entry
/// the broker applies, so a client can tell the newer of two answers. An image
/// that has applied nothing (offset 0: index 0 is openraft's initial membership
/// entry, so metadata entries start at 1) knows no finalized state: epoch -1,
/// "unknown" in KIP-584, and an empty list, which the schema says is valid only
/// for an epoch >= 0. Each feature is listed at its
/// finalized level with min = max (Kafka's `createFinalizedFeatureKeys`; KIP-778
/// dropped the finalized minimum), level 0 left out (KIP-1022).
pub fn finalized_features(image_offset: u64) -> (i64, Vec<FinalizedFeatureKey>) {
    if image_offset == 0 {
        return (-1, Vec::new());
    }
    let epoch = i64::try_from(image_offset).unwrap_or(i64::MAX);
    let keys = FEATURES
        .iter()
        .filter(|f| f.finalized > 0)
        .map(|f| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version_level(f.finalized)
                .with_max_version_level(f.finalized)
        })
        .collect();
    (epoch, keys)
}

/// `response` with the feature fields of an ApiVersions answer at `api_version`
/// from a broker whose image is at `image_offset`.
pub fn with_features(
    response: ApiVersionsResponse,
    api_version: i16,
    image_offset: u64,
) -> ApiVersionsResponse {
    let (epoch, finalized) = finalized_features(image_offset);
    response
        .with_supported_features(supported_features(api_version))
        .with_finalized_features_epoch(epoch)
        .with_finalized_features(finalized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use klog_codec::protocol::client::decode_api_versions_response;
    use klog_codec::protocol::{RequestHeader, encode_response};

    fn names_and_ranges(keys: &[SupportedFeatureKey]) -> Vec<(&str, i16, i16)> {
        keys.iter()
            .map(|k| (k.name.as_str(), k.min_version, k.max_version))
            .collect()
    }

    /// KAFKA-17492: below ApiVersions v4 a feature whose supported minimum is 0
    /// (`transaction.version`) is left out; from v4 it is listed as 0..0.
    #[test]
    fn supported_features_leave_out_min_zero_below_v4() {
        for v in 0..=3 {
            assert_eq!(
                names_and_ranges(&supported_features(v)),
                vec![("metadata.version", 1, 1)],
                "ApiVersions v{v}"
            );
        }
        assert_eq!(
            names_and_ranges(&supported_features(4)),
            vec![("metadata.version", 1, 1), ("transaction.version", 0, 0)]
        );
    }

    /// KIP-584 / KRaftMetadataCache.features: the epoch is the image's offset, and
    /// only features at a level above 0 are finalized (KIP-1022).
    #[test]
    fn finalized_features_follow_the_image_offset() {
        assert_eq!(finalized_features(0), (-1, Vec::new()));
        for offset in [1, 42, u64::from(u32::MAX) + 7] {
            let (epoch, keys) = finalized_features(offset);
            assert_eq!(epoch, offset as i64);
            let got: Vec<(&str, i16, i16)> = keys
                .iter()
                .map(|k| (k.name.as_str(), k.min_version_level, k.max_version_level))
                .collect();
            assert_eq!(got, vec![("metadata.version", 1, 1)]);
        }
        assert_eq!(finalized_features(u64::MAX).0, i64::MAX);
    }

    /// The table itself: every level in range, the finalized one among the
    /// supported ones, names unique.
    #[test]
    fn every_feature_finalizes_a_supported_level() {
        for f in FEATURES {
            assert!(0 <= f.min && f.min <= f.max, "{f:?}");
            assert!((f.min..=f.max).contains(&f.finalized), "{f:?}");
        }
        let mut names: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FEATURES.len());
    }

    /// The tagged fields go on the wire at v3 and read back with klog's client
    /// decoder; at v2 and below the frame is byte for byte the one without them
    /// (the struct writes them at v3+ only).
    #[test]
    fn features_are_tagged_fields_of_v3_only() {
        let header = |api_version| RequestHeader {
            api_key: 18,
            api_version,
            correlation_id: 7,
            client_id: None,
        };
        let resp = with_features(ApiVersionsResponse::default(), 3, 9);
        let frame = encode_response(&header(3), &resp).expect("encode v3");
        let (corr, back) = decode_api_versions_response(frame.slice(4..), 3).expect("decode v3");
        assert_eq!(corr, 7);
        assert_eq!(back.finalized_features_epoch, 9);
        assert_eq!(
            names_and_ranges(&back.supported_features),
            vec![("metadata.version", 1, 1)]
        );
        assert_eq!(back.finalized_features, resp.finalized_features);

        for v in 0..=2 {
            let with = encode_response(&header(v), &resp).expect("encode");
            let bare =
                encode_response(&header(v), &ApiVersionsResponse::default()).expect("encode");
            assert_eq!(with, bare, "ApiVersions v{v}");
        }
    }
}
