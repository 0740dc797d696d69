//! The client side of the request/response protocol: encoding requests and decoding
//! responses, for `klog-client` or any other Kafka client built on this crate.
//!
//! ```text
//!  request struct ──encode_request(corr id, client id, version)──► size + header + body
//!  response frame ──response_correlation_id──► match it to the request
//!                 ──decode_response::<R>(version)──► R::Response
//! ```
//!
//! The request header version follows the API and version (v1, or v2 with tagged
//! fields for flexible versions). The response header is v0, or v1 for flexible
//! versions, except for ApiVersions, whose response header is always v0 (KIP-511) so
//! that a client can read the answer before it knows which versions the broker has.
//! A broker that does not know the ApiVersions version it was sent answers
//! UNSUPPORTED_VERSION in the v0 body layout: [`decode_api_versions_response`]
//! handles that case.
//!
//! Response bytes come from the network and are untrusted: decoding is wrapped in
//! `catch_unwind` so a decoder panic becomes [`ClientCodecError::Decode`].

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The message crate's request trait: the API key and response type of a request.
pub use kafka_protocol::protocol::Request;

/// UNSUPPORTED_VERSION, the error ApiVersions answers with in the v0 layout.
const UNSUPPORTED_VERSION: i16 = 35;

/// Why a request could not be encoded or a response decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientCodecError {
    /// The API key is not known to the message crate.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// The request does not encode at this version (e.g. a field the version lacks).
    #[error("cannot encode request for API key {api_key} v{version}: {reason}")]
    Encode {
        /// The API key.
        api_key: i16,
        /// The version.
        version: i16,
        /// What the encoder reported.
        reason: String,
    },
    /// The response frame does not parse at the expected version.
    #[error("malformed response for API key {api_key} v{version}: {reason}")]
    Decode {
        /// The API key.
        api_key: i16,
        /// The version.
        version: i16,
        /// What the decoder reported.
        reason: String,
    },
}

fn api_key(key: i16) -> Result<ApiKey, ClientCodecError> {
    ApiKey::try_from(key).map_err(|_| ClientCodecError::UnknownApiKey(key))
}

/// The response header version for `key` at `version`: always 0 for ApiVersions.
pub fn response_header_version(key: ApiKey, version: i16) -> i16 {
    match key {
        ApiKey::ApiVersions => 0,
        _ => key.response_header_version(version),
    }
}

/// Appends one request frame to `buf`: the `i32` size prefix, the request header
/// (v1 or v2 as the API and version require) and the body encoded at `version`.
///
/// On error `buf` is left as it was.
pub fn encode_request<R: Request>(
    buf: &mut BytesMut,
    correlation_id: i32,
    client_id: Option<&StrBytes>,
    version: i16,
    request: &R,
) -> Result<(), ClientCodecError> {
    let key = api_key(R::KEY)?;
    let start = buf.len();
    let fail = |buf: &mut BytesMut, reason: String| {
        buf.truncate(start);
        ClientCodecError::Encode {
            api_key: R::KEY,
            version,
            reason,
        }
    };
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.cloned());
    buf.put_i32(0);
    if let Err(e) = header.encode(buf, key.request_header_version(version)) {
        return Err(fail(buf, e.to_string()));
    }
    if let Err(e) = request.encode(buf, version) {
        return Err(fail(buf, e.to_string()));
    }
    let size = buf.len() - start - 4;
    let Ok(size) = i32::try_from(size) else {
        return Err(fail(buf, format!("request of {size} bytes is too large")));
    };
    if let Some(prefix) = buf.get_mut(start..start + 4) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
    Ok(())
}

/// One topic of a Produce request for [`encode_produce_request`]: its name and, per
/// partition, the partition index and that partition's record batches.
#[derive(Debug, Clone)]
pub struct ProduceTopic<'a> {
    /// Topic name.
    pub name: &'a str,
    /// `(partition index, record batches)`.
    pub partitions: Vec<(i32, Bytes)>,
}

/// The fields of a Produce request besides its data, for [`encode_produce_request`].
#[derive(Debug, Clone, Copy)]
pub struct ProduceHeader<'a> {
    /// Correlation id.
    pub correlation_id: i32,
    /// Client id (`None` is a null string).
    pub client_id: Option<&'a str>,
    /// Produce version, 3 to 8.
    pub version: i16,
    /// Transactional id (`None` is null: not transactional).
    pub transactional_id: Option<&'a str>,
    /// `acks`: 0, 1 or -1.
    pub acks: i16,
    /// How long the broker may wait for `acks`, in ms.
    pub timeout_ms: i32,
}

/// Encodes a Produce request frame in pieces, without copying the records: the
/// size prefix, request header and fields go into small buffers, and each
/// partition's records are the caller's `Bytes`, in order, ready for a vectored
/// write. Concatenated, the pieces are byte for byte what [`encode_request`] writes
/// for the equivalent `ProduceRequest` (v3 to v8 share one layout; request header
/// v1).
pub fn encode_produce_request(
    header: &ProduceHeader<'_>,
    topics: &[ProduceTopic<'_>],
) -> Result<Vec<Bytes>, ClientCodecError> {
    const PRODUCE: i16 = 0;
    let fail = |reason: String| ClientCodecError::Encode {
        api_key: PRODUCE,
        version: header.version,
        reason,
    };
    if !super::produce::PRODUCE_VERSIONS.contains(&header.version) {
        return Err(fail(
            "only Produce v3 to v8 are encoded in pieces".to_owned(),
        ));
    }
    let string_len = |s: Option<&str>, what: &str| -> Result<usize, ClientCodecError> {
        match s {
            None => Ok(2),
            Some(s) if s.len() <= i16::MAX as usize => Ok(2 + s.len()),
            Some(s) => Err(fail(format!("{what} of {} bytes is too long", s.len()))),
        }
    };
    let count = |n: usize, what: &str| {
        i32::try_from(n).map_err(|_| fail(format!("{n} {what} do not fit in an array")))
    };
    // Sizes first: the frame's size prefix comes before everything.
    let mut fields = 4 + 2 + 2 + 4 + string_len(header.client_id, "client id")?;
    fields += string_len(header.transactional_id, "transactional id")? + 2 + 4 + 4;
    let mut records = 0usize;
    let mut pieces = 1;
    for t in topics {
        fields += string_len(Some(t.name), "topic name")? + 4;
        count(t.partitions.len(), "partitions")?;
        for (_, data) in &t.partitions {
            count(data.len(), "record bytes")?;
            fields += 4 + 4;
            records += data.len();
            pieces += 2;
        }
    }
    count(topics.len(), "topics")?;
    let size = count(fields - 4 + records, "request bytes")?;

    let mut buf = BytesMut::with_capacity(fields);
    let mut out = Vec::with_capacity(pieces);
    let put_string = |buf: &mut BytesMut, s: Option<&str>| match s {
        None => buf.put_i16(-1),
        Some(s) => {
            buf.put_i16(s.len() as i16);
            buf.put_slice(s.as_bytes());
        }
    };
    buf.put_i32(size);
    buf.put_i16(PRODUCE);
    buf.put_i16(header.version);
    buf.put_i32(header.correlation_id);
    put_string(&mut buf, header.client_id);
    put_string(&mut buf, header.transactional_id);
    buf.put_i16(header.acks);
    buf.put_i32(header.timeout_ms);
    buf.put_i32(topics.len() as i32);
    for t in topics {
        put_string(&mut buf, Some(t.name));
        buf.put_i32(t.partitions.len() as i32);
        for (index, data) in &t.partitions {
            buf.put_i32(*index);
            buf.put_i32(data.len() as i32);
            out.push(buf.split().freeze());
            if !data.is_empty() {
                out.push(data.clone());
            }
        }
    }
    if !buf.is_empty() {
        out.push(buf.freeze());
    }
    Ok(out)
}

/// The correlation id at the start of a response frame (the bytes after the size
/// prefix), or `None` if the frame is shorter than four bytes.
pub fn response_correlation_id(frame: &[u8]) -> Option<i32> {
    let bytes: [u8; 4] = frame.get(..4)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

fn decode_at<T: Decodable>(
    key: i16,
    version: i16,
    header_version: i16,
    mut frame: Bytes,
) -> Result<(i32, T), ClientCodecError> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let header = ResponseHeader::decode(&mut frame, header_version)?;
        let body = T::decode(&mut frame, version)?;
        Ok::<_, anyhow_free::Error>((header.correlation_id, body))
    }));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ClientCodecError::Decode {
            api_key: key,
            version,
            reason: e.0,
        }),
        Err(_) => Err(ClientCodecError::Decode {
            api_key: key,
            version,
            reason: "decoder panicked".to_owned(),
        }),
    }
}

/// Keeps the message crate's error type out of this module's signatures.
mod anyhow_free {
    /// A decoder error, as text.
    pub struct Error(pub String);

    impl<E: std::fmt::Display> From<E> for Error {
        fn from(e: E) -> Self {
            Self(e.to_string())
        }
    }
}

/// Decodes a response frame (the bytes after the size prefix) to the request `R`
/// sent at `version`. Returns the correlation id and the response body.
pub fn decode_response<R: Request>(
    frame: Bytes,
    version: i16,
) -> Result<(i32, R::Response), ClientCodecError> {
    let key = api_key(R::KEY)?;
    decode_at::<R::Response>(
        R::KEY,
        version,
        response_header_version(key, version),
        frame,
    )
}

/// Decodes an ApiVersions response to a request sent at `version`.
///
/// A broker that does not serve that version answers UNSUPPORTED_VERSION in the v0
/// body layout (with at least its own ApiVersions range, so the client can retry
/// lower); such a response is decoded as v0.
pub fn decode_api_versions_response(
    frame: Bytes,
    version: i16,
) -> Result<(i32, ApiVersionsResponse), ClientCodecError> {
    // Every ApiVersions body starts with its error code, right after the 4-byte v0
    // response header.
    let error_code = frame
        .get(4..6)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(i16::from_be_bytes);
    if error_code == Some(UNSUPPORTED_VERSION) && version > 0 {
        return decode_response::<ApiVersionsRequest>(frame, 0);
    }
    decode_response::<ApiVersionsRequest>(frame, version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::header::parse_request_header;
    use crate::protocol::request::{Request as Decoded, decode_request, encode_response};
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse, ProduceRequest};

    /// A request encoded here is parsed by the broker-side decoder, for a
    /// non-flexible version (header v1) and a flexible one (header v2).
    #[test]
    fn requests_round_trip_through_the_broker_decoder() {
        let client_id = StrBytes::from_static_str("klog-test");
        for version in [0, 3] {
            let mut buf = BytesMut::new();
            let req = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("klog"))
                .with_client_software_version(StrBytes::from_static_str("0.1"));
            encode_request(&mut buf, 77, Some(&client_id), version, &req).expect("encode");
            let size = i32::from_be_bytes(buf[..4].try_into().expect("4")) as usize;
            assert_eq!(size, buf.len() - 4);
            let (header, at) = parse_request_header(&buf[4..]).expect("header");
            assert_eq!(header.correlation_id, 77);
            assert_eq!(header.api_version, version);
            assert_eq!(header.client_id.as_deref(), Some("klog-test"));
            let decoded =
                decode_request(&header, Bytes::copy_from_slice(&buf[4 + at..])).expect("body");
            assert!(matches!(decoded, Decoded::ApiVersions(_)), "{decoded:?}");
        }
        let mut buf = BytesMut::new();
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(100);
        encode_request(&mut buf, 1, None, 8, &req).expect("encode");
        let (header, _) = parse_request_header(&buf[4..]).expect("header");
        assert_eq!((header.api_key, header.api_version), (0, 8));
    }

    proptest::proptest! {
        /// The pieces of a Produce request concatenate to exactly what the message
        /// crate encodes for the same request, at every version they cover.
        #[test]
        fn produce_pieces_match_the_message_crate(
            version in 3i16..=8,
            correlation_id in proptest::prelude::any::<i32>(),
            client_id in proptest::option::of("[a-z-]{0,12}"),
            transactional_id in proptest::option::of("[a-z]{0,8}"),
            acks in -1i16..=1,
            timeout_ms in proptest::prelude::any::<i32>(),
            topics in crate::protocol::produce::tests::topics(false),
        ) {
            let request = crate::protocol::produce::tests::request(
                transactional_id.as_deref(),
                acks,
                timeout_ms,
                &topics,
            );
            let mut expected = BytesMut::new();
            let cid = client_id.clone().map(StrBytes::from_string);
            encode_request(&mut expected, correlation_id, cid.as_ref(), version, &request)
                .expect("encode");
            let pieces_topics: Vec<ProduceTopic<'_>> = topics
                .iter()
                .map(|(name, parts)| ProduceTopic {
                    name,
                    partitions: parts
                        .iter()
                        .map(|(i, d)| (*i, Bytes::from(d.clone().unwrap_or_default())))
                        .collect(),
                })
                .collect();
            let header = ProduceHeader {
                correlation_id,
                client_id: client_id.as_deref(),
                version,
                transactional_id: transactional_id.as_deref(),
                acks,
                timeout_ms,
            };
            let pieces = encode_produce_request(&header, &pieces_topics).expect("pieces");
            let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            proptest::prop_assert_eq!(&joined[..], &expected[..]);
        }
    }

    #[test]
    fn produce_pieces_refuse_other_versions_and_keep_records_uncopied() {
        let header = |version| ProduceHeader {
            correlation_id: 1,
            client_id: None,
            version,
            transactional_id: None,
            acks: 1,
            timeout_ms: 10,
        };
        for v in [0, 2, 9] {
            assert!(encode_produce_request(&header(v), &[]).is_err(), "v{v}");
        }
        let records = Bytes::from(vec![7u8; 4096]);
        let topics = [ProduceTopic {
            name: "t",
            partitions: vec![(0, records.clone())],
        }];
        let pieces = encode_produce_request(&header(8), &topics).expect("pieces");
        assert!(
            pieces
                .iter()
                .any(|p| p.as_ptr() == records.as_ptr() && p.len() == records.len()),
            "the records are passed through, not copied"
        );
    }

    /// Responses encoded by the broker side decode here, with the right header
    /// version (Metadata v8: header v0; ApiVersions v3: header v0 despite being
    /// flexible).
    #[test]
    fn responses_round_trip_from_the_broker_encoder() {
        let rh = |api_key, api_version| crate::protocol::header::RequestHeader {
            api_key,
            api_version,
            correlation_id: 9,
            client_id: None,
        };
        let resp = MetadataResponse::default().with_controller_id(3.into());
        let frame = encode_response(&rh(3, 8), &resp).expect("encode");
        let (corr, got) =
            decode_response::<MetadataRequest>(frame.slice(4..), 8).expect("decode metadata");
        assert_eq!(corr, 9);
        assert_eq!(got.controller_id, 3);

        let resp = ApiVersionsResponse::default().with_throttle_time_ms(5);
        let frame = encode_response(&rh(18, 3), &resp).expect("encode");
        assert_eq!(response_correlation_id(&frame[4..]), Some(9));
        let (_, got) = decode_api_versions_response(frame.slice(4..), 3).expect("decode");
        assert_eq!(got.throttle_time_ms, 5);
    }

    /// KAFKA-COMPAT.md trap 1, seen from the client: error 35 in the v0 layout.
    #[test]
    fn unsupported_api_versions_answer_is_read_as_v0() {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        let resp = ApiVersionsResponse::default()
            .with_error_code(UNSUPPORTED_VERSION)
            .with_api_keys(vec![
                ApiVersion::default()
                    .with_api_key(18)
                    .with_min_version(0)
                    .with_max_version(2),
            ]);
        let mut frame = BytesMut::new();
        frame.put_i32(4);
        resp.encode(&mut frame, 0).expect("encode v0");
        let (corr, got) = decode_api_versions_response(frame.freeze(), 3).expect("decode");
        assert_eq!(corr, 4);
        assert_eq!(got.error_code, UNSUPPORTED_VERSION);
        assert_eq!(got.api_keys[0].max_version, 2);
    }

    #[test]
    fn garbage_responses_are_errors_not_panics() {
        for bytes in [
            &[][..],
            &[0, 0, 0, 1][..],
            &[0, 0, 0, 1, 0xff, 0xff, 0xff][..],
        ] {
            let r = decode_response::<MetadataRequest>(Bytes::copy_from_slice(bytes), 8);
            assert!(matches!(r, Err(ClientCodecError::Decode { .. })), "{r:?}");
        }
        assert_eq!(response_correlation_id(&[1, 2]), None);
    }
}
