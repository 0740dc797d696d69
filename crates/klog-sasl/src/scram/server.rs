//! The server side of a SCRAM exchange (Kafka's `ScramSaslServer`).

use std::fmt;

use base64ct::{Base64, Encoding};
use subtle::ConstantTimeEq;

use super::message::{parse_client_final, parse_client_first};
use super::{
    CredentialError, DEFAULT_ITERATIONS, Nonce, SALT_LEN, ScramCredential, ScramError,
    ScramMechanism, ScramMessage, crypto,
};

/// A server waiting for a client-first message: the start of one exchange.
///
/// It holds the server's nonce for this exchange (random, from the caller) and the
/// secret from which fake credentials for unknown users are derived. That secret must
/// stay the same across exchanges (a fresh random value per broker start will do),
/// or the salt a client sees for an unknown user would change from one attempt to the
/// next and give the user's absence away.
#[derive(Clone)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    nonce: Nonce,
    unknown_user_key: Vec<u8>,
    unknown_user_iterations: u32,
}

impl ScramServer {
    /// A server for one exchange with `mechanism`, answering with `server_nonce`
    /// appended to the client's.
    pub fn new(mechanism: ScramMechanism, server_nonce: Nonce, unknown_user_key: &[u8]) -> Self {
        ScramServer {
            mechanism,
            nonce: server_nonce,
            unknown_user_key: unknown_user_key.to_vec(),
            unknown_user_iterations: DEFAULT_ITERATIONS,
        }
    }

    /// Sets the iteration count shown for unknown users (default
    /// [`DEFAULT_ITERATIONS`]); set it to what real credentials mostly use.
    pub fn with_unknown_user_iterations(
        mut self,
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        self.mechanism.check_iterations(iterations)?;
        self.unknown_user_iterations = iterations;
        Ok(self)
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Parses the client-first message. On success the caller looks up the
    /// credential of [`ServerAwaitingCredential::username`] and calls
    /// [`ServerAwaitingCredential::respond`].
    ///
    /// Every error here depends on the message alone, never on which users exist.
    pub fn handle_client_first(
        self,
        message: &[u8],
    ) -> Result<ServerAwaitingCredential, ScramError> {
        let first = parse_client_first(message)?;
        Ok(ServerAwaitingCredential {
            username: first.username,
            gs2_header: first.gs2_header.to_owned(),
            client_nonce: first.nonce.to_owned(),
            client_first_bare: first.bare.to_owned(),
            server: self,
        })
    }
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

/// A server that has read the client-first message and needs the user's credential.
#[derive(Debug, Clone)]
pub struct ServerAwaitingCredential {
    server: ScramServer,
    username: String,
    gs2_header: String,
    client_nonce: String,
    client_first_bare: String,
}

impl ServerAwaitingCredential {
    /// The username the client authenticates as (unescaped).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Answers with the server-first message, given the user's credential for this
    /// mechanism, or `None` if there is none.
    ///
    /// For `None` the exchange goes on with a fake credential (salt and keys derived
    /// from the server's secret and the username) and fails at the client-final
    /// message with [`ScramError::InvalidCredentials`], as a wrong password does. A
    /// credential that does not fit the mechanism is [`ScramError::UnusableCredential`]
    /// (an operator's problem, reported here so that it can be logged).
    pub fn respond(
        self,
        credential: Option<&ScramCredential>,
    ) -> Result<(ServerExpectClientFinal, Vec<u8>), ScramError> {
        let mechanism = self.server.mechanism;
        let credential = match credential {
            Some(c) => {
                c.validate(mechanism)
                    .map_err(ScramError::UnusableCredential)?;
                c.clone()
            }
            None => fake_credential(&self.server, &self.username),
        };
        let nonce = format!("{}{}", self.client_nonce, self.server.nonce.as_str());
        let server_first = format!(
            "r={nonce},s={},i={}",
            Base64::encode_string(&credential.salt),
            credential.iterations
        );
        let bytes = server_first.clone().into_bytes();
        Ok((
            ServerExpectClientFinal {
                mechanism,
                username: self.username,
                gs2_header: self.gs2_header,
                nonce,
                auth_message_prefix: format!("{},{server_first},", self.client_first_bare),
                stored_key: credential.stored_key,
                server_key: credential.server_key,
            },
            bytes,
        ))
    }
}

/// A credential no password matches, stable per (secret, mechanism, username): the
/// same salt comes back on every attempt, as a real user's would.
fn fake_credential(server: &ScramServer, username: &str) -> ScramCredential {
    let mechanism = server.mechanism;
    let derive = |label: &[u8]| {
        crypto::hmac(
            mechanism,
            &server.unknown_user_key,
            &[
                b"klog-sasl unknown user\0",
                label,
                b"\0",
                mechanism.name().as_bytes(),
                b"\0",
                username.as_bytes(),
            ],
        )
    };
    let mut salt = derive(b"salt");
    salt.truncate(SALT_LEN);
    ScramCredential {
        salt,
        stored_key: derive(b"stored key"),
        server_key: derive(b"server key"),
        iterations: server.unknown_user_iterations,
    }
}

/// A server that has sent its server-first message and waits for the client's proof.
#[derive(Clone)]
pub struct ServerExpectClientFinal {
    mechanism: ScramMechanism,
    username: String,
    gs2_header: String,
    nonce: String,
    /// `client-first-message-bare "," server-first-message ","`.
    auth_message_prefix: String,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl ServerExpectClientFinal {
    /// Checks the client-final message's proof; on success returns the principal and
    /// the server-final message (`v=<ServerSignature>`) to send.
    ///
    /// The message is checked before the proof, on grounds that do not depend on the
    /// credential; a proof that does not verify is [`ScramError::InvalidCredentials`]
    /// whether the user exists or not.
    pub fn handle_client_final(
        self,
        message: &[u8],
    ) -> Result<(ScramAuthenticated, Vec<u8>), ScramError> {
        let last = parse_client_final(message, self.mechanism)?;
        if last.channel_binding != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if last.nonce != self.nonce {
            return Err(ScramError::NonceMismatch {
                message: ScramMessage::ClientFinal,
            });
        }
        let auth_message = [
            self.auth_message_prefix.as_bytes(),
            last.without_proof.as_bytes(),
        ];
        // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); it must hash to
        // StoredKey. The comparison is constant-time (subtle).
        let client_signature = crypto::hmac(self.mechanism, &self.stored_key, &auth_message);
        let client_key = crypto::xor(&last.proof, &client_signature);
        let computed = crypto::hash(self.mechanism, &client_key);
        if !bool::from(computed.ct_eq(&self.stored_key)) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = crypto::hmac(self.mechanism, &self.server_key, &auth_message);
        let server_final = format!("v={}", Base64::encode_string(&server_signature));
        Ok((
            ScramAuthenticated {
                mechanism: self.mechanism,
                username: self.username,
            },
            server_final.into_bytes(),
        ))
    }
}

impl fmt::Debug for ServerExpectClientFinal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerExpectClientFinal")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

/// A finished, successful exchange: the client proved it knows the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramAuthenticated {
    mechanism: ScramMechanism,
    username: String,
}

impl ScramAuthenticated {
    /// The authenticated username (Kafka's principal `User:<username>`).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The mechanism used.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// The authenticated username, owned.
    pub fn into_username(self) -> String {
        self.username
    }
}
