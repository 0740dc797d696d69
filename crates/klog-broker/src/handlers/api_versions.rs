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
    /// `features::METADATA_VERSION_LEVEL` (Kafka's `3.0-IV1`: Kafka 3.0 is as far
    /// as klog's client APIs reach), and the finalized epoch is the offset of the
    /// metadata image this broker serves from, as a Kafka broker in KRaft mode
    /// sends (-1 before it has applied any entry). `transaction.version` (0: no
    /// transactions) is never finalized and, with its supported minimum of 0, is
    /// listed from v4 only (KAFKA-17492), which klog does not serve. See
    /// `features.rs` for the reasoning.
    pub fn api_versions(&self, error_code: i16, version: i16) -> ApiVersionsResponse {
        let api_keys = super::APIS
            .iter()
            .filter_map(|a| versions::support(a.key as i16))
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::APIS;
    use klog_codec::protocol::versions;

    /// The API table and the codec's version table name the same APIs: an API
    /// the codec decodes but no row routes would be advertised and then refused,
    /// and a row without decoding could never be served.
    #[test]
    fn the_api_table_and_the_codec_serve_the_same_apis() {
        let table: BTreeSet<i16> = APIS.iter().map(|a| a.key as i16).collect();
        let codec: BTreeSet<i16> = versions::SUPPORTED_APIS
            .iter()
            .map(|s| s.key as i16)
            .collect();
        assert_eq!(table, codec);
        assert_eq!(table.len(), APIS.len(), "an API is listed twice");
    }
}
