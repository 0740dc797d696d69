//! Parsing the four SCRAM messages (RFC 5802 section 7 grammar, with Kafka's
//! limitations). Parsers borrow from the message and never panic on any input:
//! attributes are taken in the order the grammar fixes, and anything unexpected is a
//! typed [`ScramError`].

use base64ct::{Base64, Encoding};

use super::{ScramError, ScramMechanism, ScramMessage, is_printable, unescape_username};

/// The gs2 header every Kafka client sends: no channel binding, no authzid.
pub(super) const GS2_HEADER: &str = "n,,";

/// A parsed client-first message.
pub(super) struct ClientFirst<'a> {
    /// `n,,` or `n,a=<saslname>,`, as sent (echoed in the client-final `c=`).
    pub(super) gs2_header: &'a str,
    /// The unescaped username.
    pub(super) username: String,
    /// The client's nonce.
    pub(super) nonce: &'a str,
    /// client-first-message-bare, as sent (part of the AuthMessage).
    pub(super) bare: &'a str,
}

/// A parsed server-first message.
pub(super) struct ServerFirst<'a> {
    /// The whole message, as sent (part of the AuthMessage).
    pub(super) text: &'a str,
    /// The combined nonce (client's then server's).
    pub(super) nonce: &'a str,
    /// The decoded salt.
    pub(super) salt: Vec<u8>,
    /// The iteration count (not yet checked against the mechanism's bounds).
    pub(super) iterations: u32,
}

/// A parsed client-final message.
pub(super) struct ClientFinal<'a> {
    /// The decoded `c=` value: the gs2 header again, since there is no channel binding.
    pub(super) channel_binding: Vec<u8>,
    /// The combined nonce.
    pub(super) nonce: &'a str,
    /// The decoded proof, of the mechanism's hash length.
    pub(super) proof: Vec<u8>,
    /// client-final-message-without-proof, as sent (part of the AuthMessage).
    pub(super) without_proof: &'a str,
}

/// A parsed server-final message.
pub(super) enum ServerFinal {
    /// `v=`: the server signature.
    Verifier(Vec<u8>),
    /// `e=`: the server's error value.
    Error(String),
}

fn utf8(bytes: &[u8], message: ScramMessage) -> Result<&str, ScramError> {
    std::str::from_utf8(bytes).map_err(|_| ScramError::NotUtf8 { message })
}

/// The value of `part` if it is `<attribute>=<value>`.
fn attribute(
    part: Option<&str>,
    message: ScramMessage,
    attribute: char,
) -> Result<&str, ScramError> {
    part.and_then(|p| p.strip_prefix(attribute))
        .and_then(|p| p.strip_prefix('='))
        .ok_or(ScramError::MissingAttribute { message, attribute })
}

fn base64(value: &str, message: ScramMessage, attribute: char) -> Result<Vec<u8>, ScramError> {
    Base64::decode_vec(value).map_err(|_| ScramError::InvalidBase64 { message, attribute })
}

fn printable(value: &str, message: ScramMessage, attribute: char) -> Result<&str, ScramError> {
    if is_printable(value) {
        Ok(value)
    } else {
        Err(ScramError::InvalidAttribute { message, attribute })
    }
}

/// Fails on RFC 5802's reserved `m=`, which the other end must refuse.
fn refuse_mandatory_extension(part: Option<&str>, message: ScramMessage) -> Result<(), ScramError> {
    match part {
        Some(p) if p.starts_with("m=") => Err(ScramError::MandatoryExtension { message }),
        _ => Ok(()),
    }
}

/// Checks the trailing extensions (`name=value`, name letters only, as Kafka's
/// `ScramExtensions`) and ignores them; `tokenauth` is refused where Kafka would act
/// on it.
fn extensions<'a>(
    parts: impl Iterator<Item = &'a str>,
    message: ScramMessage,
) -> Result<(), ScramError> {
    for part in parts {
        let Some((name, value)) = part.split_once('=') else {
            return Err(ScramError::InvalidExtension { message });
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) || value.is_empty() {
            return Err(ScramError::InvalidExtension { message });
        }
        if message == ScramMessage::ClientFirst && name == "tokenauth" {
            return Err(ScramError::TokenAuthNotSupported);
        }
    }
    Ok(())
}

/// `gs2-header client-first-message-bare`:
/// `n,[a=authzid],[m=ext,]n=saslname,r=nonce[,ext=value]*`.
pub(super) fn parse_client_first(bytes: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
    const MSG: ScramMessage = ScramMessage::ClientFirst;
    let text = utf8(bytes, MSG)?;
    let mut header = text.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (header.next(), header.next(), header.next())
    else {
        return Err(ScramError::InvalidGs2Header);
    };
    match flag {
        "n" => {}
        "y" => return Err(ScramError::ChannelBindingNotSupported),
        f if f.starts_with("p=") => return Err(ScramError::ChannelBindingNotSupported),
        _ => return Err(ScramError::InvalidGs2Header),
    }
    let gs2_header = text
        .get(..flag.len() + authzid.len() + 2)
        .ok_or(ScramError::InvalidGs2Header)?;
    let authzid = match authzid {
        "" => None,
        a => Some(unescape_username(
            a.strip_prefix("a=").ok_or(ScramError::InvalidGs2Header)?,
        )?),
    };

    let mut parts = bare.split(',').peekable();
    refuse_mandatory_extension(parts.peek().copied(), MSG)?;
    let username = unescape_username(attribute(parts.next(), MSG, 'n')?)?;
    let nonce = printable(attribute(parts.next(), MSG, 'r')?, MSG, 'r')?;
    extensions(parts, MSG)?;
    if authzid.is_some_and(|a| a != username) {
        return Err(ScramError::AuthorizationIdMismatch);
    }
    Ok(ClientFirst {
        gs2_header,
        username,
        nonce,
        bare,
    })
}

/// `[m=ext,]r=nonce,s=salt,i=iterations[,ext=value]*`.
pub(super) fn parse_server_first(bytes: &[u8]) -> Result<ServerFirst<'_>, ScramError> {
    const MSG: ScramMessage = ScramMessage::ServerFirst;
    let text = utf8(bytes, MSG)?;
    let mut parts = text.split(',').peekable();
    refuse_mandatory_extension(parts.peek().copied(), MSG)?;
    let nonce = printable(attribute(parts.next(), MSG, 'r')?, MSG, 'r')?;
    let salt = base64(attribute(parts.next(), MSG, 's')?, MSG, 's')?;
    if salt.is_empty() {
        return Err(ScramError::InvalidAttribute {
            message: MSG,
            attribute: 's',
        });
    }
    let iterations = attribute(parts.next(), MSG, 'i')?;
    // u32's parser would also take a leading `+`; the grammar is digits only.
    let iterations = iterations
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| iterations.parse::<u32>().ok())
        .flatten()
        .filter(|&i| i > 0)
        .ok_or(ScramError::InvalidAttribute {
            message: MSG,
            attribute: 'i',
        })?;
    extensions(parts, MSG)?;
    Ok(ServerFirst {
        text,
        nonce,
        salt,
        iterations,
    })
}

/// `c=base64(gs2-header),r=nonce[,ext=value]*,p=proof`.
pub(super) fn parse_client_final(
    bytes: &[u8],
    mechanism: ScramMechanism,
) -> Result<ClientFinal<'_>, ScramError> {
    const MSG: ScramMessage = ScramMessage::ClientFinal;
    let text = utf8(bytes, MSG)?;
    let (without_proof, proof) = text.rsplit_once(',').ok_or(ScramError::MissingAttribute {
        message: MSG,
        attribute: 'p',
    })?;
    let proof = base64(attribute(Some(proof), MSG, 'p')?, MSG, 'p')?;
    if proof.len() != mechanism.hash_len() {
        return Err(ScramError::InvalidAttribute {
            message: MSG,
            attribute: 'p',
        });
    }
    let mut parts = without_proof.split(',');
    let channel_binding = base64(attribute(parts.next(), MSG, 'c')?, MSG, 'c')?;
    let nonce = printable(attribute(parts.next(), MSG, 'r')?, MSG, 'r')?;
    extensions(parts, MSG)?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

/// `(e=error | v=signature)[,ext=value]*`.
pub(super) fn parse_server_final(bytes: &[u8]) -> Result<ServerFinal, ScramError> {
    const MSG: ScramMessage = ScramMessage::ServerFinal;
    let text = utf8(bytes, MSG)?;
    let mut parts = text.split(',');
    let first = parts.next();
    if let Some(error) = first.and_then(|p| p.strip_prefix("e=")) {
        return Ok(ServerFinal::Error(error.to_owned()));
    }
    let signature = base64(attribute(first, MSG, 'v')?, MSG, 'v')?;
    extensions(parts, MSG)?;
    Ok(ServerFinal::Verifier(signature))
}
