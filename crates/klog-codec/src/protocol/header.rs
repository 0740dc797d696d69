//! Request headers (protocol guide: "Headers").
//!
//! ```text
//! v0: api_key i16, api_version i16, correlation_id i32
//! v1: v0 + client_id nullable string (i16 length)
//! v2: v1 + tagged fields (client_id stays a classic string, not compact)
//! ```
//!
//! The header is parsed by hand, not by `kafka-protocol`, so that a request with a
//! version the broker does not support can still be answered: ApiVersions with an
//! unknown version must get UNSUPPORTED_VERSION with the right correlation id.

use kafka_protocol::messages::ApiKey;

/// A parsed request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// The API key (e.g. 0 = Produce).
    pub api_key: i16,
    /// The API version the client chose.
    pub api_version: i16,
    /// Echoed in the response so the client can match it.
    pub correlation_id: i32,
    /// The client's self-declared id (header v1+).
    pub client_id: Option<String>,
}

/// Why a request header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The frame ended inside the header.
    #[error("request header truncated")]
    Truncated,
    /// The client id is not UTF-8.
    #[error("client id is not valid UTF-8")]
    InvalidClientId,
    /// A tagged field in a v2 header is malformed.
    #[error("malformed tagged fields in request header")]
    InvalidTaggedFields,
}

/// The request header version for an API key and version, if the key is known.
pub fn request_header_version(api_key: i16, api_version: i16) -> Option<i16> {
    ApiKey::try_from(api_key)
        .ok()
        .map(|key| key.request_header_version(api_version))
}

/// The response header version: 1 (with tagged fields) for flexible versions, else 0.
/// ApiVersions always answers with header v0, even at v3 (KIP-511), so that a client
/// can read the answer before it knows which versions the broker has.
pub fn response_header_version(api_key: i16, api_version: i16) -> i16 {
    match ApiKey::try_from(api_key) {
        Ok(ApiKey::ApiVersions) | Err(_) => 0,
        Ok(key) => key.response_header_version(api_version),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeaderError> {
        let end = self.at.checked_add(n).ok_or(HeaderError::Truncated)?;
        let slice = self.buf.get(self.at..end).ok_or(HeaderError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HeaderError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, HeaderError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, HeaderError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn uvarint(&mut self) -> Result<u32, HeaderError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self
                .array::<1>()
                .map_err(|_| HeaderError::InvalidTaggedFields)?;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(HeaderError::InvalidTaggedFields)
    }
}

/// Parses the request header at the start of `frame` (the bytes after the size
/// prefix). Returns the header and the position where the request body starts.
///
/// Unknown API keys are parsed as header v1 (every API but ControlledShutdown v0
/// uses at least v1), which is enough to log them before closing the connection.
pub fn parse_request_header(frame: &[u8]) -> Result<(RequestHeader, usize), HeaderError> {
    let mut r = Reader { buf: frame, at: 0 };
    let api_key = r.i16()?;
    let api_version = r.i16()?;
    let correlation_id = r.i32()?;
    let version = request_header_version(api_key, api_version).unwrap_or(1);
    let mut client_id = None;
    if version >= 1 {
        let len = r.i16()?;
        if len >= 0 {
            let raw = r.take(len as usize)?;
            client_id = Some(
                std::str::from_utf8(raw)
                    .map_err(|_| HeaderError::InvalidClientId)?
                    .to_owned(),
            );
        }
    }
    if version >= 2 {
        let count = r.uvarint()?;
        for _ in 0..count {
            let _tag = r.uvarint()?;
            let size = r.uvarint()?;
            r.take(size as usize)
                .map_err(|_| HeaderError::InvalidTaggedFields)?;
        }
    }
    Ok((
        RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
        },
        r.at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_header_with_client_id() {
        // Metadata v1: header v1.
        let mut f = vec![0, 3, 0, 1, 0, 0, 0, 42, 0, 4];
        f.extend_from_slice(b"kcat");
        f.extend_from_slice(&[9, 9]);
        let (h, body) = parse_request_header(&f).expect("parse");
        assert_eq!(h.api_key, 3);
        assert_eq!(h.correlation_id, 42);
        assert_eq!(h.client_id.as_deref(), Some("kcat"));
        assert_eq!(&f[body..], &[9, 9]);
    }

    #[test]
    fn v2_header_for_unsupported_apiversions_version() {
        // ApiVersions v4 (kafka-python's first try): header v2, classic client id,
        // then an empty tagged-field section.
        let mut f = vec![0, 18, 0, 4, 0, 0, 0, 7, 0, 1, b'p', 0];
        f.extend_from_slice(&[1, 2]);
        let (h, body) = parse_request_header(&f).expect("parse");
        assert_eq!((h.api_key, h.api_version, h.correlation_id), (18, 4, 7));
        assert_eq!(&f[body..], &[1, 2]);
    }

    #[test]
    fn truncated_and_null_client_id() {
        assert_eq!(
            parse_request_header(&[0, 3, 0, 1, 0, 0]),
            Err(HeaderError::Truncated)
        );
        let f = vec![0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff];
        let (h, _) = parse_request_header(&f).expect("parse");
        assert_eq!(h.client_id, None);
        let f = vec![0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0xff];
        assert_eq!(parse_request_header(&f), Err(HeaderError::Truncated));
    }

    #[test]
    fn apiversions_response_header_is_always_v0() {
        assert_eq!(response_header_version(18, 3), 0);
        assert_eq!(response_header_version(3, 9), 1);
        assert_eq!(response_header_version(3, 8), 0);
    }
}
