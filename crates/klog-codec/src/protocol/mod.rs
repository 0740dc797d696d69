//! The Kafka request/response protocol: frames, headers, the supported-version table,
//! typed requests and response encoding.
//!
//! Message structs come from the `kafka-protocol` crate (generated from Kafka's own
//! schemas). What is written by hand here is what makes the broker safe and fast:
//! frame size checks before any allocation, header parsing that works for versions
//! the broker does not support (so it can still answer), the version table with the
//! traps real clients depend on, and the zero-copy Fetch response encoder.
//!
//! ```text
//!  4-byte size ──► check_frame_size ──► frame bytes ──► parse_request_header
//!                                                      │
//!              versions::supported(key, version)? ◄────┘
//!                          │ yes                     no: ApiVersions gets error 35
//!                          ▼                             in the v0 layout, anything
//!                    decode_request                      else closes the connection
//!                          │
//!                 broker handles it ──► encode_response / fetch::FetchResponseWriter
//! ```

pub mod client;
pub mod fetch;
pub mod frame;
pub mod header;
pub mod produce;
pub mod request;
pub mod versions;

pub use kafka_protocol::error::ResponseError;
pub use kafka_protocol::messages;
pub use kafka_protocol::protocol::{Encodable, StrBytes};

pub use frame::{FrameError, check_frame_size};
pub use header::{HeaderError, RequestHeader, parse_request_header};
pub use request::{
    Request, RequestError, decode_message, decode_request, decode_request_mut, encode_response,
};
pub use versions::{ApiSupport, SUPPORTED_APIS};

/// The Kafka error code for a [`ResponseError`], as carried in responses.
pub fn error_code(error: ResponseError) -> i16 {
    error.code()
}
