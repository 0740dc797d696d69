//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka implements them
//! (KIP-84: `ScramSaslServer`, `ScramSaslClient`, `ScramMessages`, `ScramFormatter`).
//!
//! An exchange is four messages; each side is a chain of states that consume
//! themselves, named after what they expect next:
//!
//! ```text
//!  server: ScramServer ─handle_client_first─► ServerAwaitingCredential
//!          ─respond(credential)─► ServerExpectClientFinal ─handle_client_final─►
//!          ScramAuthenticated (+ server-final bytes)
//!  client: ScramClient ─start(nonce)─► ClientExpectServerFirst (+ client-first bytes)
//!          ─handle_server_first─► ClientExpectServerFinal (+ client-final bytes)
//!          ─handle_server_final─► Ok(())
//! ```
//!
//! Kafka's choices followed here:
//!
//! * Iterations: 4096..=16384 for both mechanisms (`ScramMechanism.minIterations` /
//!   `maxIterations`). Kafka's client only checks the minimum; this client checks both,
//!   so a hostile server cannot make it spin (a Kafka broker never stores more).
//! * No SASLprep: passwords are their UTF-8 bytes, as `ScramFormatter.normalize`.
//! * Usernames travel as RFC 5802 `saslname`s, `=` as `=3D` and `,` as `=2C`
//!   ([`escape_username`], [`unescape_username`]); any other `=` is refused.
//! * The gs2 header is `n,,` (or `n,a=<authzid>,` with the authzid equal to the user);
//!   channel binding (`y`, `p=`) is refused.
//! * Extensions in the client-first message: `tokenauth` (delegation tokens) is
//!   refused since klog has no tokens; others are ignored, as Kafka ignores them.
//!   RFC 5802's mandatory `m=` extension is refused, as the RFC requires.
//!
//! Where this differs from Kafka, on purpose:
//!
//! * Unknown users. Kafka's `ScramSaslServer` fails on the client-first message when
//!   the credential callback finds no user (a generic "invalid credentials" error),
//!   so a client learns that a user does not exist from *when* it is refused. Here the
//!   server answers an unknown user with a server-first message built from a fake
//!   credential derived from a server secret and the username (a stable salt, the
//!   usual iteration count) and fails on the client-final message with
//!   [`ScramError::InvalidCredentials`], exactly as for a wrong password. The salt is
//!   the same on every attempt, so asking twice does not tell a fake from a real one.
//! * The server checks that `c=` carries the gs2 header of the client-first message
//!   (RFC 5802 5.1); Kafka decodes it and does not compare. Kafka's clients always send
//!   `c=biws` (`n,,`), which passes.
//! * Usernames may be any UTF-8 without NUL (RFC 5802); Kafka's message patterns
//!   accept only ASCII. Messages that Kafka's clients build are accepted either way.

mod client;
mod crypto;
mod message;
mod server;
#[cfg(test)]
mod tests;

use std::fmt;

use base64ct::{Base64, Encoding};

pub use client::{ClientExpectServerFinal, ClientExpectServerFirst, ScramClient};
pub use server::{
    ScramAuthenticated, ScramServer, ServerAwaitingCredential, ServerExpectClientFinal,
};

/// The iteration count Kafka's `kafka-configs` uses when none is given, and the one
/// the server's fake credential for unknown users uses unless told otherwise.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Salt length of the server's fake credential for unknown users; new credentials
/// should use random salts of this length so that fake ones do not stand out.
pub const SALT_LEN: usize = 32;

/// A SCRAM mechanism Kafka supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScramMechanism {
    /// `SCRAM-SHA-256` (RFC 7677).
    Sha256,
    /// `SCRAM-SHA-512`.
    Sha512,
}

impl ScramMechanism {
    /// Every mechanism, in Kafka's order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`), as sent in
    /// SaslHandshake and configured in `sasl.enabled.mechanisms`.
    pub const fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism with this SASL name (exact, as Kafka matches it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism's code in DescribeUserScramCredentials and
    /// AlterUserScramCredentials (KIP-554): 1 for SHA-256, 2 for SHA-512.
    pub const fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism with this KIP-554 code.
    pub fn from_kafka_type(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == code)
    }

    /// The fewest iterations Kafka accepts for a credential (4096).
    pub const fn min_iterations(self) -> u32 {
        4096
    }

    /// The most iterations Kafka accepts for a credential (16384).
    pub const fn max_iterations(self) -> u32 {
        16384
    }

    /// Length in bytes of the hash, and so of keys, proofs and signatures.
    pub const fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn check_iterations(self, iterations: u32) -> Result<(), CredentialError> {
        if (self.min_iterations()..=self.max_iterations()).contains(&iterations) {
            Ok(())
        } else {
            Err(CredentialError::IterationsOutOfRange {
                mechanism: self,
                iterations,
            })
        }
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server stores for a user and mechanism (RFC 5802 section 3): never the
/// password, only what verifies a proof and what signs the server's answer.
///
/// Kafka keeps the same four values (`ScramCredential`) in its metadata log;
/// `Debug` leaves the keys out.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt given to PBKDF2.
    pub salt: Vec<u8>,
    /// `H(HMAC(SaltedPassword, "Client Key"))`: checks the client's proof.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`: signs the server-final message.
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl ScramCredential {
    /// Derives the credential for `password` (its UTF-8 bytes, no SASLprep, as Kafka).
    ///
    /// `salt` should be [`SALT_LEN`] random bytes from the caller; `iterations` must
    /// be within the mechanism's bounds (Kafka refuses others with
    /// UNACCEPTABLE_CREDENTIAL).
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        mechanism.check_iterations(iterations)?;
        if salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        let salted = crypto::salted_password(mechanism, password.as_bytes(), salt, iterations);
        let keys = crypto::Keys::from_salted_password(mechanism, &salted);
        Ok(ScramCredential {
            salt: salt.to_vec(),
            stored_key: keys.stored_key,
            server_key: keys.server_key,
            iterations,
        })
    }

    /// Checks that the credential can be used with `mechanism`: iterations within
    /// bounds, a salt, and keys of the mechanism's hash length.
    pub fn validate(&self, mechanism: ScramMechanism) -> Result<(), CredentialError> {
        mechanism.check_iterations(self.iterations)?;
        if self.salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        for len in [self.stored_key.len(), self.server_key.len()] {
            if len != mechanism.hash_len() {
                return Err(CredentialError::WrongKeyLength { mechanism, len });
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt", &Base64::encode_string(&self.salt))
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a SCRAM credential cannot be created or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The iteration count is outside the mechanism's 4096..=16384.
    #[error("{iterations} iterations is outside {}..={} for {mechanism}", mechanism.min_iterations(), mechanism.max_iterations())]
    IterationsOutOfRange {
        /// The mechanism whose bounds apply.
        mechanism: ScramMechanism,
        /// The iteration count given.
        iterations: u32,
    },
    /// The salt is empty.
    #[error("SCRAM salt is empty")]
    EmptySalt,
    /// A stored or server key does not have the mechanism's hash length (a
    /// credential for the other mechanism, or a corrupt one).
    #[error("SCRAM key of {len} bytes does not fit {mechanism}")]
    WrongKeyLength {
        /// The mechanism the credential was used with.
        mechanism: ScramMechanism,
        /// The key's length.
        len: usize,
    },
}

/// Which of the four SCRAM messages an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScramMessage {
    /// client-first-message (`n,,n=user,r=nonce`).
    ClientFirst,
    /// server-first-message (`r=nonce,s=salt,i=iterations`).
    ServerFirst,
    /// client-final-message (`c=biws,r=nonce,p=proof`).
    ClientFinal,
    /// server-final-message (`v=signature` or `e=error`).
    ServerFinal,
}

impl fmt::Display for ScramMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScramMessage::ClientFirst => "client-first message",
            ScramMessage::ServerFirst => "server-first message",
            ScramMessage::ClientFinal => "client-final message",
            ScramMessage::ServerFinal => "server-final message",
        })
    }
}

/// Why a SCRAM exchange failed, on either side.
///
/// On the server every variant becomes SASL_AUTHENTICATION_FAILED with one fixed
/// message. An unknown user and a wrong password are the same variant,
/// [`ScramError::InvalidCredentials`], reported at the same step; the server state
/// machine itself does not tell them apart once it has answered the client-first
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramError {
    /// The message is not UTF-8.
    #[error("SCRAM {message} is not UTF-8")]
    NotUtf8 {
        /// The message concerned.
        message: ScramMessage,
    },
    /// An attribute the message must have, in its place, is missing.
    #[error("SCRAM {message}: expected attribute `{attribute}=`")]
    MissingAttribute {
        /// The message concerned.
        message: ScramMessage,
        /// The attribute's letter.
        attribute: char,
    },
    /// An attribute's value is not allowed (a nonce with characters outside
    /// printable ASCII, an iteration count that is not a number, a proof of the wrong
    /// length, an empty salt).
    #[error("SCRAM {message}: invalid value for attribute `{attribute}`")]
    InvalidAttribute {
        /// The message concerned.
        message: ScramMessage,
        /// The attribute's letter.
        attribute: char,
    },
    /// An attribute that must be base64 is not (padded standard alphabet).
    #[error("SCRAM {message}: attribute `{attribute}` is not valid base64")]
    InvalidBase64 {
        /// The message concerned.
        message: ScramMessage,
        /// The attribute's letter.
        attribute: char,
    },
    /// Something after the known attributes is not an `name=value` extension.
    #[error("SCRAM {message}: malformed extension")]
    InvalidExtension {
        /// The message concerned.
        message: ScramMessage,
    },
    /// RFC 5802's reserved `m=` (mandatory extension) is present; the RFC requires
    /// failing the exchange.
    #[error("SCRAM {message}: mandatory extension `m=` is not supported")]
    MandatoryExtension {
        /// The message concerned.
        message: ScramMessage,
    },
    /// The client asked for delegation-token authentication (`tokenauth=true`),
    /// which klog does not have.
    #[error("SCRAM delegation-token authentication (tokenauth) is not supported")]
    TokenAuthNotSupported,
    /// The gs2 header is neither `n,,` nor `n,a=<authzid>,` nor a channel-binding
    /// flag.
    #[error("SCRAM client-first message: invalid gs2 header")]
    InvalidGs2Header,
    /// The client asked for channel binding (`y` or `p=`), which Kafka does not
    /// support.
    #[error("SCRAM channel binding is not supported")]
    ChannelBindingNotSupported,
    /// The client-final message's `c=` is not the gs2 header of its client-first
    /// message.
    #[error("SCRAM client-final message: channel binding does not match the gs2 header")]
    ChannelBindingMismatch,
    /// A username is empty, contains NUL, or has an `=` that is not `=2C` or `=3D`.
    #[error("invalid SCRAM username")]
    InvalidUsername,
    /// The client asked to act as another user (an authzid that is not its username).
    #[error("SCRAM authorization id differs from the username")]
    AuthorizationIdMismatch,
    /// A nonce is empty or has characters outside printable ASCII or a comma.
    #[error("invalid SCRAM nonce")]
    InvalidNonce,
    /// The server's nonce does not extend the client's, or the client-final nonce is
    /// not the combined one.
    #[error("SCRAM {message}: nonce does not match")]
    NonceMismatch {
        /// The message concerned.
        message: ScramMessage,
    },
    /// The server asked for an iteration count outside 4096..=16384.
    #[error("SCRAM server asked for {iterations} iterations, outside {min}..={max}")]
    IterationCount {
        /// The count the server sent.
        iterations: u32,
        /// The mechanism's minimum.
        min: u32,
        /// The mechanism's maximum.
        max: u32,
    },
    /// The server was handed a credential it cannot use (see [`CredentialError`]).
    #[error("stored SCRAM credential is unusable: {0}")]
    UnusableCredential(#[source] CredentialError),
    /// Unknown user or wrong password: the proof does not verify. Deliberately one
    /// variant for both.
    #[error("SCRAM authentication failed: invalid credentials")]
    InvalidCredentials,
    /// The server's signature does not verify: it does not know the credential.
    #[error("SCRAM server signature does not verify")]
    ServerSignatureMismatch,
    /// The server ended the exchange with an RFC 5802 `e=` error.
    #[error("SCRAM server error: {value}")]
    ServerError {
        /// The server's error value (e.g. `invalid-proof`).
        value: String,
    },
}

/// A SCRAM nonce: printable ASCII without commas (RFC 5802 `printable`).
///
/// The crate has no randomness of its own; production callers make one from random
/// bytes ([`Nonce::from_random`]), tests may pin one ([`Nonce::new`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Nonce(String);

impl Nonce {
    /// How many random bytes [`Nonce::from_random`] takes: 192 bits, more than the 130
    /// of Kafka's nonces.
    pub const RANDOM_LEN: usize = 24;

    /// A nonce from random bytes (base64-encoded, which never contains a comma).
    pub fn from_random(bytes: [u8; Self::RANDOM_LEN]) -> Self {
        Nonce(Base64::encode_string(&bytes))
    }

    /// A nonce with exactly this text, which must be non-empty printable ASCII
    /// (`0x21..=0x7E`) without `,`.
    pub fn new(text: impl Into<String>) -> Result<Self, ScramError> {
        let text = text.into();
        if is_printable(&text) {
            Ok(Nonce(text))
        } else {
            Err(ScramError::InvalidNonce)
        }
    }

    /// The nonce's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Nonce").field(&self.0).finish()
    }
}

/// RFC 5802 `printable`: `%x21-2B / %x2D-7E`, at least one.
fn is_printable(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Encodes a username as an RFC 5802 `saslname`: `=` becomes `=3D`, `,` becomes `=2C`.
pub fn escape_username(username: &str) -> String {
    let mut out = String::with_capacity(username.len());
    for c in username.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes an RFC 5802 `saslname`: `=2C` and `=3D` (upper case, as Kafka) are the
/// only escapes; a bare `=` or `,`, NUL, or an empty name is
/// [`ScramError::InvalidUsername`].
pub fn unescape_username(saslname: &str) -> Result<String, ScramError> {
    if saslname.is_empty() {
        return Err(ScramError::InvalidUsername);
    }
    let mut out = String::with_capacity(saslname.len());
    let mut rest = saslname;
    while let Some(at) = rest.find(['=', ',', '\0']) {
        let (plain, tail) = rest.split_at(at);
        out.push_str(plain);
        if let Some(after) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = after;
        } else {
            return Err(ScramError::InvalidUsername);
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a username before it is escaped into a client-first message.
fn check_username(username: &str) -> Result<(), ScramError> {
    if username.is_empty() || username.contains('\0') {
        Err(ScramError::InvalidUsername)
    } else {
        Ok(())
    }
}
