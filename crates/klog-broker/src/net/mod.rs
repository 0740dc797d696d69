//! Bytes in and out: the client listener's connections (the lowest layer of the
//! broker, below everything that handles a request). Kafka framing and the accept
//! loop are `klog_rt::frame`'s, shared with the quorum's controller listener.

pub mod connection;
pub mod dispatch;

pub use connection::run;
