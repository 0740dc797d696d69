//! ApiVersions: the version table and klog's feature levels.

use klog_codec::protocol::messages::ApiVersionsResponse;
use klog_codec::protocol::messages::api_versions_response::ApiVersion;
use klog_codec::protocol::versions;

use crate::features;

use super::Handlers;

impl Handlers {
    /// ApiVersions at `version`: the version table. An unsupported version gets
    /// UNSUPPORTED_VERSION, encoded by the caller in the v0 layout.
    ///
    /// From v3 the answer carries klog's feature levels (KIP-584, tagged fields):
    /// `metadata.version` supported and finalized at
    /// [`features::METADATA_VERSION_LEVEL`] (Kafka's `3.0-IV1`: Kafka 3.0 is as far
    /// as klog's client APIs reach), and the finalized epoch is the offset of the
    /// metadata image this broker serves from, as a Kafka broker in KRaft mode
    /// sends (-1 before it has applied any entry). `transaction.version` (0: no
    /// transactions) is never finalized and, with its supported minimum of 0, is
    /// listed from v4 only (KAFKA-17492), which klog does not serve. See
    /// [`features`] for the reasoning.
    pub fn api_versions(&self, error_code: i16, version: i16) -> ApiVersionsResponse {
        let api_keys = versions::SUPPORTED_APIS
            .iter()
            .map(|s| {
                ApiVersion::default()
                    .with_api_key(s.key as i16)
                    .with_min_version(s.min)
                    .with_max_version(s.max)
            })
            .collect();
        let resp = ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(api_keys);
        features::with_features(resp, version, self.store.image().offset)
    }
}
