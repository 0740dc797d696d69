//! Bytes in and out: Kafka framing and the accept loop (the lowest layer of the
//! broker, below everything that handles a request).

pub mod connection;
pub mod dispatch;
pub mod frame;

pub use connection::run;
