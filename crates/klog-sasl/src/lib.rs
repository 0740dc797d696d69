//! SASL mechanisms for klog, as Kafka speaks them: PLAIN (RFC 4616) so far.
//!
//! Both sides of each mechanism live here, so the broker (server side) and
//! `klog-client` (client side) share one parser and one definition of every message.
//! Each mechanism is sans-IO: it takes the bytes of a SaslAuthenticate exchange in and
//! hands the bytes to send back out.
//!
//! ```text
//!  plain::client_message(user, pw) ─► authzid\0authcid\0passwd ─► plain::authenticate(bytes, verify)
//!                                                                    └─► PlainAuthenticated
//! ```
//!
//! Every failure is an `Err` of the mechanism's error enum ([`PlainError`]); the broker
//! answers any of them with SASL_AUTHENTICATION_FAILED and a fixed message, as Kafka
//! does.
//!
//! What this crate deliberately does not do: no I/O, no threads, no clock; no security
//! layer (integrity or confidentiality).

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod plain;

pub use plain::{PlainAuthenticated, PlainError};
