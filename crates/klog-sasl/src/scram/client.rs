//! The client side of a SCRAM exchange (Kafka's `ScramSaslClient`).

use std::fmt;

use base64ct::{Base64, Encoding};

use super::message::{GS2_HEADER, ServerFinal, parse_server_final, parse_server_first};
use super::{
    Nonce, ScramError, ScramMechanism, ScramMessage, check_username, crypto, escape_username,
};

/// A client's SCRAM settings (`sasl.mechanism`, `sasl.username`, `sasl.password`),
/// from which each exchange (a connection, or a re-authentication) starts.
#[derive(Clone)]
pub struct ScramClient {
    mechanism: ScramMechanism,
    username: String,
    password: String,
}

impl ScramClient {
    /// Settings for `username` and `password` (used as UTF-8, without SASLprep, as
    /// Kafka). The username must be non-empty and free of NUL.
    pub fn new(
        mechanism: ScramMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<Self, ScramError> {
        let username = username.into();
        check_username(&username)?;
        Ok(ScramClient {
            mechanism,
            username,
            password: password.into(),
        })
    }

    /// The mechanism to name in SaslHandshake.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Starts an exchange with the client's `nonce`: returns the client-first message
    /// (`n,,n=<saslname>,r=<nonce>`) to send and the state that expects the
    /// server-first message.
    pub fn start(&self, nonce: Nonce) -> (ClientExpectServerFirst, Vec<u8>) {
        let bare = format!("n={},r={}", escape_username(&self.username), nonce.as_str());
        let message = format!("{GS2_HEADER}{bare}").into_bytes();
        (
            ClientExpectServerFirst {
                mechanism: self.mechanism,
                password: self.password.clone(),
                nonce,
                client_first_bare: bare,
            },
            message,
        )
    }
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A client that has sent its client-first message and waits for the server's salt,
/// iteration count and nonce.
#[derive(Clone)]
pub struct ClientExpectServerFirst {
    mechanism: ScramMechanism,
    password: String,
    nonce: Nonce,
    client_first_bare: String,
}

impl ClientExpectServerFirst {
    /// Reads the server-first message and returns the client-final message
    /// (`c=biws,r=<nonce>,p=<ClientProof>`) and the state that expects the server's
    /// signature.
    ///
    /// The server's nonce must extend the client's with at least one character, and
    /// the iteration count must be within the mechanism's bounds (4096..=16384) before
    /// PBKDF2 runs.
    pub fn handle_server_first(
        self,
        message: &[u8],
    ) -> Result<(ClientExpectServerFinal, Vec<u8>), ScramError> {
        let first = parse_server_first(message)?;
        match first.nonce.strip_prefix(self.nonce.as_str()) {
            Some(server_part) if !server_part.is_empty() => {}
            _ => {
                return Err(ScramError::NonceMismatch {
                    message: ScramMessage::ServerFirst,
                });
            }
        }
        let (min, max) = (
            self.mechanism.min_iterations(),
            self.mechanism.max_iterations(),
        );
        if !(min..=max).contains(&first.iterations) {
            return Err(ScramError::IterationCount {
                iterations: first.iterations,
                min,
                max,
            });
        }
        let salted = crypto::salted_password(
            self.mechanism,
            self.password.as_bytes(),
            &first.salt,
            first.iterations,
        );
        let keys = crypto::Keys::from_salted_password(self.mechanism, &salted);
        let without_proof = format!(
            "c={},r={}",
            Base64::encode_string(GS2_HEADER.as_bytes()),
            first.nonce
        );
        let auth_message = format!("{},{},{without_proof}", self.client_first_bare, first.text);
        let client_signature =
            crypto::hmac(self.mechanism, &keys.stored_key, &[auth_message.as_bytes()]);
        let proof = crypto::xor(&keys.client_key, &client_signature);
        let client_final = format!("{without_proof},p={}", Base64::encode_string(&proof));
        Ok((
            ClientExpectServerFinal {
                mechanism: self.mechanism,
                server_key: keys.server_key,
                auth_message,
            },
            client_final.into_bytes(),
        ))
    }
}

impl fmt::Debug for ClientExpectServerFirst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientExpectServerFirst")
            .field("mechanism", &self.mechanism)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

/// A client that has sent its proof and waits for the server to prove that it knows
/// the credential too.
#[derive(Clone)]
pub struct ClientExpectServerFinal {
    mechanism: ScramMechanism,
    server_key: Vec<u8>,
    auth_message: String,
}

impl ClientExpectServerFinal {
    /// Checks the server-final message: `Ok(())` if its `v=` is
    /// `HMAC(ServerKey, AuthMessage)` (compared in constant time); the exchange is
    /// then complete. An `e=` answer is [`ScramError::ServerError`].
    pub fn handle_server_final(self, message: &[u8]) -> Result<(), ScramError> {
        match parse_server_final(message)? {
            ServerFinal::Error(value) => Err(ScramError::ServerError { value }),
            ServerFinal::Verifier(signature) => {
                if crypto::verify_hmac(
                    self.mechanism,
                    &self.server_key,
                    &[self.auth_message.as_bytes()],
                    &signature,
                ) {
                    Ok(())
                } else {
                    Err(ScramError::ServerSignatureMismatch)
                }
            }
        }
    }
}

impl fmt::Debug for ClientExpectServerFinal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientExpectServerFinal")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}
