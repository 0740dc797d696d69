//! SASL PLAIN (RFC 4616) as Kafka's `PlainSaslServer` accepts it.
//!
//! The client sends one message, `authzid NUL authcid NUL passwd`, and the exchange
//! is over: the server either accepts the username as the principal or fails. Kafka
//! requires exactly three NUL-separated tokens, a non-empty username and password, and
//! an authorization id that is empty or equal to the username (no impersonation).
//!
//! Checking the password is the caller's: [`authenticate`] hands the username and
//! password to a verifier (the broker's user table, from its JAAS-equivalent
//! configuration). [`password_matches`] compares in constant time for verifiers that
//! hold plain passwords, as Kafka's `PlainServerCallbackHandler` does.
//!
//! PLAIN sends the password in clear: it belongs on TLS listeners (SASL_SSL).

use subtle::ConstantTimeEq;

/// Why a PLAIN exchange failed.
///
/// The broker answers all of them with SASL_AUTHENTICATION_FAILED; a wrong password
/// and an unknown user are the same variant ([`PlainError::InvalidCredentials`]),
/// since the verifier answers one `bool` for both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlainError {
    /// The message is not `authzid NUL authcid NUL passwd`: it has `tokens`
    /// NUL-separated parts instead of three.
    #[error("invalid SASL/PLAIN message: expected 3 NUL-separated tokens, got {tokens}")]
    WrongTokenCount {
        /// How many NUL-separated parts the message had.
        tokens: usize,
    },
    /// The message is not UTF-8.
    #[error("invalid SASL/PLAIN message: not UTF-8")]
    NotUtf8,
    /// The username (authcid) is empty.
    #[error("SASL/PLAIN authentication failed: username not specified")]
    EmptyUsername,
    /// The password is empty.
    #[error("SASL/PLAIN authentication failed: password not specified")]
    EmptyPassword,
    /// A username or password given to [`client_message`] contains a NUL byte, which
    /// would shift the message's fields.
    #[error("SASL/PLAIN username and password cannot contain NUL")]
    ContainsNul,
    /// The client asked to act as another principal (an authorization id that is
    /// neither empty nor the username); Kafka refuses this.
    #[error("SASL/PLAIN authentication failed: authorization id differs from username")]
    AuthorizationIdMismatch,
    /// The verifier refused the username and password: the user is unknown or the
    /// password is wrong (deliberately not told apart).
    #[error("SASL/PLAIN authentication failed: invalid username or password")]
    InvalidCredentials,
}

/// A successful PLAIN exchange: the principal is the username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainAuthenticated {
    username: String,
}

impl PlainAuthenticated {
    /// The authenticated username (Kafka's principal `User:<username>`).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The authenticated username, owned.
    pub fn into_username(self) -> String {
        self.username
    }
}

/// The three fields of a PLAIN message, borrowed from it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PlainMessage<'a> {
    /// The authorization id the client asked for; empty for "the username".
    pub authzid: &'a str,
    /// The username (RFC 4616's authcid).
    pub username: &'a str,
    /// The password.
    pub password: &'a str,
}

impl std::fmt::Debug for PlainMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses a client's PLAIN message and checks what Kafka checks before the password:
/// three tokens, non-empty username and password, authzid empty or the username.
pub fn parse(message: &[u8]) -> Result<PlainMessage<'_>, PlainError> {
    let text = std::str::from_utf8(message).map_err(|_| PlainError::NotUtf8)?;
    let mut tokens = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (tokens.next(), tokens.next(), tokens.next(), tokens.next())
    else {
        return Err(PlainError::WrongTokenCount {
            tokens: text.split('\0').count(),
        });
    };
    if username.is_empty() {
        return Err(PlainError::EmptyUsername);
    }
    if password.is_empty() {
        return Err(PlainError::EmptyPassword);
    }
    // Checked before the verifier runs: the answer depends only on the message, so it
    // tells a client nothing about which users exist.
    if !authzid.is_empty() && authzid != username {
        return Err(PlainError::AuthorizationIdMismatch);
    }
    Ok(PlainMessage {
        authzid,
        username,
        password,
    })
}

/// The server side: parses `message` and asks `verify(username, password)` whether
/// the pair is valid. `verify` should take the same time for unknown users as for
/// wrong passwords (compare against a dummy password, see [`password_matches`]).
pub fn authenticate(
    message: &[u8],
    verify: impl FnOnce(&str, &str) -> bool,
) -> Result<PlainAuthenticated, PlainError> {
    let parsed = parse(message)?;
    if !verify(parsed.username, parsed.password) {
        return Err(PlainError::InvalidCredentials);
    }
    Ok(PlainAuthenticated {
        username: parsed.username.to_owned(),
    })
}

/// The client side: the message for `username` and `password`, with an empty
/// authorization id (as Kafka's and librdkafka's clients send it).
pub fn client_message(username: &str, password: &str) -> Result<Vec<u8>, PlainError> {
    if username.is_empty() {
        return Err(PlainError::EmptyUsername);
    }
    if password.is_empty() {
        return Err(PlainError::EmptyPassword);
    }
    if username.contains('\0') || password.contains('\0') {
        return Err(PlainError::ContainsNul);
    }
    let mut message = Vec::with_capacity(2 + username.len() + password.len());
    message.push(0);
    message.extend_from_slice(username.as_bytes());
    message.push(0);
    message.extend_from_slice(password.as_bytes());
    Ok(message)
}

/// Compares a configured password with the one a client sent without an early exit
/// on the first differing byte (only the lengths may be learned from timing).
pub fn password_matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(user: &str, password: &str) -> bool {
        user == "alice" && password_matches("alice-secret", password)
    }

    #[test]
    fn good_credentials_authenticate_the_username() {
        let message = client_message("alice", "alice-secret").unwrap();
        assert_eq!(message, b"\0alice\0alice-secret");
        let done = authenticate(&message, alice).unwrap();
        assert_eq!(done.username(), "alice");
    }

    #[test]
    fn authzid_equal_to_the_username_is_accepted() {
        let done = authenticate(b"alice\0alice\0alice-secret", alice).unwrap();
        assert_eq!(done.into_username(), "alice");
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        assert_eq!(
            authenticate(b"\0alice\0wrong", alice),
            Err(PlainError::InvalidCredentials)
        );
        assert_eq!(
            authenticate(b"\0mallory\0alice-secret", alice),
            Err(PlainError::InvalidCredentials)
        );
    }

    #[test]
    fn authzid_mismatch_is_refused_before_the_verifier_runs() {
        let result = authenticate(b"admin\0alice\0alice-secret", |_, _| {
            panic!("verifier must not run")
        });
        assert_eq!(result, Err(PlainError::AuthorizationIdMismatch));
    }

    #[test]
    fn missing_or_extra_nuls_are_refused() {
        for (message, tokens) in [
            (&b""[..], 1),
            (b"alice", 1),
            (b"alice\0secret", 2),
            (b"\0alice\0secret\0", 4),
            (b"\0\0\0\0", 5),
        ] {
            assert_eq!(
                authenticate(message, |_, _| true),
                Err(PlainError::WrongTokenCount { tokens }),
                "{message:?}"
            );
        }
    }

    #[test]
    fn empty_fields_and_bad_utf8_are_refused() {
        assert_eq!(
            authenticate(b"\0\0secret", |_, _| true),
            Err(PlainError::EmptyUsername)
        );
        assert_eq!(
            authenticate(b"\0alice\0", |_, _| true),
            Err(PlainError::EmptyPassword)
        );
        assert_eq!(
            authenticate(b"\0al\xffice\0secret", |_, _| true),
            Err(PlainError::NotUtf8)
        );
    }

    #[test]
    fn client_refuses_what_would_not_parse() {
        assert_eq!(client_message("", "pw"), Err(PlainError::EmptyUsername));
        assert_eq!(client_message("alice", ""), Err(PlainError::EmptyPassword));
        assert_eq!(
            client_message("al\0ice", "pw"),
            Err(PlainError::ContainsNul)
        );
        assert_eq!(
            client_message("alice", "p\0w"),
            Err(PlainError::ContainsNul)
        );
    }

    #[test]
    fn debug_does_not_print_the_password() {
        let parsed = parse(b"\0alice\0hunter2").unwrap();
        assert!(!format!("{parsed:?}").contains("hunter2"));
    }
}
