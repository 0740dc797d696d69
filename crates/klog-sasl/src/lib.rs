//! SASL mechanisms for klog, as Kafka speaks them: PLAIN (RFC 4616) and
//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677, Kafka's KIP-84).
//!
//! Both sides of each mechanism live here, so the broker (server side) and
//! `klog-client` (client side) share one parser and one definition of every message.
//! Each mechanism is a sans-IO state machine: it takes the bytes of one
//! SaslAuthenticate exchange in and hands the bytes to send back out. SCRAM's states
//! are separate types that consume themselves (as rustls does), so an exchange cannot
//! be driven out of order.
//!
//! ```text
//!  SCRAM (client-first ─► server-first ─► client-final ─► server-final)
//!
//!  client                                         server
//!  ScramClient::new(mech, user, pw)              ScramServer::new(mech, nonce, unknown_user_key)
//!  .start(nonce)
//!    └─► client-first bytes ───────────────────►  .handle_client_first(bytes)
//!                                                   └─► ServerAwaitingCredential
//!                                                       .username() ─► caller looks up the
//!                                                       credential (Option<&ScramCredential>)
//!                                                       .respond(credential)
//!  ClientExpectServerFirst  ◄──────────────────────── server-first bytes
//!    .handle_server_first(bytes)                        └─► ServerExpectClientFinal
//!    └─► client-final bytes ───────────────────►  .handle_client_final(bytes)
//!        ClientExpectServerFinal                    └─► ScramAuthenticated (the principal)
//!  .handle_server_final(bytes) ◄─────────────────── server-final bytes
//!    └─► Ok(()) once the server proved it knows the credential
//!
//!  PLAIN (one message)
//!  plain::client_message(user, pw) ─► authzid\0authcid\0passwd ─► plain::authenticate(bytes, verify)
//!                                                                    └─► PlainAuthenticated
//! ```
//!
//! Every failure is an `Err` of the mechanism's error enum ([`PlainError`],
//! [`ScramError`], [`CredentialError`]); the broker answers any of them with
//! SASL_AUTHENTICATION_FAILED and a fixed message, as Kafka does (its SCRAM server
//! never sends the RFC's `e=` server-final error either).
//!
//! What this crate deliberately does not do:
//!
//! * No I/O, no threads, no clock, no randomness of its own: nonces and salts come from
//!   the caller ([`Nonce::from_random`]), which keeps every exchange reproducible in
//!   tests. PBKDF2 runs synchronously in [`ClientExpectServerFirst::handle_server_first`]
//!   and [`ScramCredential::from_password`] (at most 16384 iterations).
//! * No channel binding: the gs2 header must be `n,,` or `n,a=<authzid>,`; `y` and
//!   `p=` are refused, as Kafka refuses them.
//! * No SASLprep (RFC 4013): Kafka's `ScramFormatter.normalize` is plain UTF-8 encoding,
//!   so passwords and usernames are used byte for byte as UTF-8. Applying SASLprep
//!   here would make credentials created by Kafka's tools fail for non-ASCII passwords.
//! * No delegation tokens: the `tokenauth` SCRAM extension is refused.
//! * No security layer (integrity or confidentiality): neither mechanism has one.
//!
//! Cryptography (HMAC, SHA-2, PBKDF2, constant-time comparison, base64) comes from
//! RustCrypto crates and `subtle`; the crate itself only writes the message flow.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod plain;
pub mod scram;

pub use plain::{PlainAuthenticated, PlainError};
pub use scram::{
    ClientExpectServerFinal, ClientExpectServerFirst, CredentialError, Nonce, ScramAuthenticated,
    ScramClient, ScramCredential, ScramError, ScramMechanism, ScramMessage, ScramServer,
    ServerAwaitingCredential, ServerExpectClientFinal,
};
