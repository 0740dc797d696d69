//! Typed requests for the APIs klog serves, and response encoding.
//!
//! Request bodies are decoded by `kafka-protocol` from a [`Bytes`] frame, so byte
//! fields such as Produce's `records` are zero-copy slices of the frame. Decoding
//! is wrapped in `catch_unwind` as a second line of defence: a decoder panic on
//! hostile input becomes [`RequestError::Malformed`], never a dead task.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest, FetchRequest,
    FindCoordinatorRequest, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::header::{RequestHeader, response_header_version};
use super::produce::{ProduceData, decode_produce};
use super::versions;

/// A decoded request for one of the APIs in [`versions::SUPPORTED_APIS`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// Produce (key 0), decoded by hand so that records can be rewritten in place
    /// ([`super::produce`]).
    Produce(ProduceData),
    /// Fetch (key 1).
    Fetch(FetchRequest),
    /// ListOffsets (key 2).
    ListOffsets(ListOffsetsRequest),
    /// Metadata (key 3).
    Metadata(MetadataRequest),
    /// OffsetCommit (key 8).
    OffsetCommit(OffsetCommitRequest),
    /// OffsetFetch (key 9).
    OffsetFetch(OffsetFetchRequest),
    /// FindCoordinator (key 10).
    FindCoordinator(FindCoordinatorRequest),
    /// JoinGroup (key 11).
    JoinGroup(JoinGroupRequest),
    /// Heartbeat (key 12).
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup (key 13).
    LeaveGroup(LeaveGroupRequest),
    /// SyncGroup (key 14).
    SyncGroup(SyncGroupRequest),
    /// DescribeGroups (key 15).
    DescribeGroups(DescribeGroupsRequest),
    /// ListGroups (key 16).
    ListGroups(ListGroupsRequest),
    /// ApiVersions (key 18).
    ApiVersions(ApiVersionsRequest),
    /// CreateTopics (key 19).
    CreateTopics(CreateTopicsRequest),
    /// DeleteTopics (key 20).
    DeleteTopics(DeleteTopicsRequest),
    /// InitProducerId (key 22).
    InitProducerId(InitProducerIdRequest),
    /// DeleteRecords (key 21).
    DeleteRecords(DeleteRecordsRequest),
    /// DescribeConfigs (key 32).
    DescribeConfigs(DescribeConfigsRequest),
    /// AlterConfigs (key 33).
    AlterConfigs(AlterConfigsRequest),
    /// DescribeLogDirs (key 35).
    DescribeLogDirs(DescribeLogDirsRequest),
    /// CreatePartitions (key 37).
    CreatePartitions(CreatePartitionsRequest),
    /// DeleteGroups (key 42).
    DeleteGroups(DeleteGroupsRequest),
    /// IncrementalAlterConfigs (key 44).
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    /// OffsetDelete (key 47).
    OffsetDelete(OffsetDeleteRequest),
    /// DescribeCluster (key 60).
    DescribeCluster(DescribeClusterRequest),
    /// OffsetForLeaderEpoch (key 23): followers find where their log diverged
    /// from a new leader's (KIP-101).
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
}

/// Why a request could not be turned into a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The API key is not one klog serves.
    #[error("unsupported API key {0}")]
    UnsupportedApi(i16),
    /// The API is served, but not at this version.
    #[error("API key {api_key} is not served at version {version}")]
    UnsupportedVersion {
        /// The API key.
        api_key: i16,
        /// The version the client asked for.
        version: i16,
    },
    /// The body does not parse at the declared version.
    #[error("malformed request body for API key {api_key} v{version}: {reason}")]
    Malformed {
        /// The API key.
        api_key: i16,
        /// The declared version.
        version: i16,
        /// What the decoder reported.
        reason: String,
    },
}

/// Decodes a request body of any message type at the header's version, for APIs
/// outside [`Request`] (klog's controller listener serves its own set). Decoder
/// panics on hostile input become [`RequestError::Malformed`].
pub fn decode_message<T: Decodable>(
    header: &RequestHeader,
    body: Bytes,
) -> Result<T, RequestError> {
    decode_body(header, body)
}

fn decode_body<T: Decodable>(header: &RequestHeader, mut body: Bytes) -> Result<T, RequestError> {
    let version = header.api_version;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        T::decode(&mut body, version)
    }));
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(RequestError::Malformed {
            api_key: header.api_key,
            version,
            reason: e.to_string(),
        }),
        Err(_) => Err(RequestError::Malformed {
            api_key: header.api_key,
            version,
            reason: "decoder panicked".to_owned(),
        }),
    }
}

fn decode_produce_body(
    header: &RequestHeader,
    body: BytesMut,
) -> Result<ProduceData, RequestError> {
    decode_produce(header.api_version, body).map_err(|e| RequestError::Malformed {
        api_key: header.api_key,
        version: header.api_version,
        reason: e.0,
    })
}

/// Like [`decode_request`], from a body the caller owns: a Produce request's
/// records become parts of this very buffer, never copies.
pub fn decode_request_mut(header: &RequestHeader, body: BytesMut) -> Result<Request, RequestError> {
    if header.api_key == ApiKey::Produce as i16
        && versions::is_served(header.api_key, header.api_version)
    {
        return Ok(Request::Produce(decode_produce_body(header, body)?));
    }
    decode_request(header, body.freeze())
}

/// Decodes the body of a request whose header has been parsed.
///
/// Checks the version against the served range first, so the message crate never
/// sees a version klog does not serve.
pub fn decode_request(header: &RequestHeader, body: Bytes) -> Result<Request, RequestError> {
    let key = versions::support(header.api_key)
        .map(|s| s.key)
        .ok_or(RequestError::UnsupportedApi(header.api_key))?;
    if !versions::is_served(header.api_key, header.api_version) {
        return Err(RequestError::UnsupportedVersion {
            api_key: header.api_key,
            version: header.api_version,
        });
    }
    Ok(match key {
        // Copies the body only if `body` shares its buffer (see decode_request_mut).
        ApiKey::Produce => Request::Produce(decode_produce_body(header, BytesMut::from(body))?),
        ApiKey::Fetch => Request::Fetch(decode_body(header, body)?),
        ApiKey::ListOffsets => Request::ListOffsets(decode_body(header, body)?),
        ApiKey::Metadata => Request::Metadata(decode_body(header, body)?),
        ApiKey::OffsetCommit => Request::OffsetCommit(decode_body(header, body)?),
        ApiKey::OffsetFetch => Request::OffsetFetch(decode_body(header, body)?),
        ApiKey::FindCoordinator => Request::FindCoordinator(decode_body(header, body)?),
        ApiKey::JoinGroup => Request::JoinGroup(decode_body(header, body)?),
        ApiKey::Heartbeat => Request::Heartbeat(decode_body(header, body)?),
        ApiKey::LeaveGroup => Request::LeaveGroup(decode_body(header, body)?),
        ApiKey::SyncGroup => Request::SyncGroup(decode_body(header, body)?),
        ApiKey::DescribeGroups => Request::DescribeGroups(decode_body(header, body)?),
        ApiKey::ListGroups => Request::ListGroups(decode_body(header, body)?),
        ApiKey::ApiVersions => Request::ApiVersions(decode_body(header, body)?),
        ApiKey::CreateTopics => Request::CreateTopics(decode_body(header, body)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(decode_body(header, body)?),
        ApiKey::InitProducerId => Request::InitProducerId(decode_body(header, body)?),
        ApiKey::DeleteRecords => Request::DeleteRecords(decode_body(header, body)?),
        ApiKey::DescribeConfigs => Request::DescribeConfigs(decode_body(header, body)?),
        ApiKey::AlterConfigs => Request::AlterConfigs(decode_body(header, body)?),
        ApiKey::DescribeLogDirs => Request::DescribeLogDirs(decode_body(header, body)?),
        ApiKey::DescribeCluster => Request::DescribeCluster(decode_body(header, body)?),
        ApiKey::OffsetForLeaderEpoch => Request::OffsetForLeaderEpoch(decode_body(header, body)?),
        ApiKey::CreatePartitions => Request::CreatePartitions(decode_body(header, body)?),
        ApiKey::DeleteGroups => Request::DeleteGroups(decode_body(header, body)?),
        ApiKey::IncrementalAlterConfigs => {
            Request::IncrementalAlterConfigs(decode_body(header, body)?)
        }
        ApiKey::OffsetDelete => Request::OffsetDelete(decode_body(header, body)?),
        _ => return Err(RequestError::UnsupportedApi(header.api_key)),
    })
}

/// Why a response could not be encoded (a bug in the broker, not a client error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode response for API key {api_key} v{version}: {reason}")]
pub struct EncodeError {
    /// The API key.
    pub api_key: i16,
    /// The version.
    pub version: i16,
    /// What the encoder reported.
    pub reason: String,
}

/// Writes the size prefix placeholder and the response header for `header`'s
/// request into `buf`; the caller appends the body and then calls [`finish_frame`].
pub fn begin_response(buf: &mut BytesMut, header: &RequestHeader) {
    buf.put_i32(0);
    buf.put_i32(header.correlation_id);
    if response_header_version(header.api_key, header.api_version) >= 1 {
        buf.put_u8(0); // no tagged fields
    }
}

/// Fills in the size prefix of a frame started with [`begin_response`] at `start`.
pub fn finish_frame(buf: &mut BytesMut, start: usize) {
    let size = (buf.len() - start - 4) as i32;
    if let Some(prefix) = buf.get_mut(start..start + 4) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
}

/// Encodes a whole response frame: size prefix, response header, body.
pub fn encode_response<R: Encodable>(
    header: &RequestHeader,
    response: &R,
) -> Result<Bytes, EncodeError> {
    let mut buf = BytesMut::with_capacity(128);
    begin_response(&mut buf, header);
    response
        .encode(&mut buf, header.api_version)
        .map_err(|e| EncodeError {
            api_key: header.api_key,
            version: header.api_version,
            reason: e.to_string(),
        })?;
    finish_frame(&mut buf, 0);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsResponse;

    fn header(api_key: i16, api_version: i16) -> RequestHeader {
        RequestHeader {
            api_key,
            api_version,
            correlation_id: 5,
            client_id: None,
        }
    }

    #[test]
    fn unsupported_versions_and_apis_are_refused_before_decoding() {
        assert_eq!(
            decode_request(&header(0, 2), Bytes::new()),
            Err(RequestError::UnsupportedVersion {
                api_key: 0,
                version: 2
            })
        );
        assert_eq!(
            decode_request(&header(17, 0), Bytes::new()),
            Err(RequestError::UnsupportedApi(17))
        );
    }

    #[test]
    fn truncated_body_is_malformed() {
        let r = decode_request(&header(3, 1), Bytes::from_static(&[0, 0, 0, 5, 0]));
        assert!(matches!(r, Err(RequestError::Malformed { .. })), "{r:?}");
    }

    #[test]
    fn metadata_v1_decodes() {
        // topics: array of 1, name "t"
        let body = Bytes::from_static(&[0, 0, 0, 1, 0, 1, b't']);
        match decode_request(&header(3, 1), body) {
            Ok(Request::Metadata(m)) => {
                let topics = m.topics.expect("topics");
                assert_eq!(topics.len(), 1);
                assert_eq!(topics[0].name.as_ref().map(|n| n.as_str()), Some("t"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_frame_layout() {
        let resp = ApiVersionsResponse::default().with_error_code(35);
        let frame = encode_response(&header(18, 0), &resp).expect("encode");
        let size = i32::from_be_bytes(frame[..4].try_into().expect("4"));
        assert_eq!(size as usize, frame.len() - 4);
        assert_eq!(&frame[4..8], &5i32.to_be_bytes());
        assert_eq!(&frame[8..10], &35i16.to_be_bytes());
    }
}
