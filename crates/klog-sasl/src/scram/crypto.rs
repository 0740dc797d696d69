//! The RFC 5802 section 3 functions, each a call into RustCrypto: HMAC, H, Hi (PBKDF2).

use hmac::{EagerHash, Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::ScramMechanism;

/// `HMAC(key, data[0] || data[1] || ...)`.
pub(super) fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => new_mac::<Sha256>(key, data)
            .finalize()
            .into_bytes()
            .to_vec(),
        ScramMechanism::Sha512 => new_mac::<Sha512>(key, data)
            .finalize()
            .into_bytes()
            .to_vec(),
    }
}

/// Whether `tag == HMAC(key, data)`, compared in constant time by `Mac::verify_slice`.
pub(super) fn verify_hmac(
    mechanism: ScramMechanism,
    key: &[u8],
    data: &[&[u8]],
    tag: &[u8],
) -> bool {
    match mechanism {
        ScramMechanism::Sha256 => new_mac::<Sha256>(key, data).verify_slice(tag).is_ok(),
        ScramMechanism::Sha512 => new_mac::<Sha512>(key, data).verify_slice(tag).is_ok(),
    }
}

#[allow(clippy::expect_used)]
fn new_mac<D: EagerHash>(key: &[u8], data: &[&[u8]]) -> Hmac<D> {
    // HMAC takes keys of any length (longer ones are hashed first); the `Result` only
    // exists because `KeyInit` also serves fixed-key ciphers. hmac's own
    // `KeyInit::new` makes the same call.
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in data {
        mac.update(part);
    }
    mac
}

/// `H(data)`.
pub(super) fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// `SaltedPassword := Hi(Normalize(password), salt, i)`, where Hi is PBKDF2 with HMAC
/// and Normalize is the identity (Kafka applies no SASLprep).
pub(super) fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0; mechanism.hash_len()];
    match mechanism {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
        }
    }
    out
}

/// `a XOR b` for equal-length byte strings (proof and signature lengths are checked
/// before this is called; a shorter input would only shorten the output).
pub(super) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// The keys derived from a salted password.
pub(super) struct Keys {
    /// `ClientKey := HMAC(SaltedPassword, "Client Key")`.
    pub(super) client_key: Vec<u8>,
    /// `StoredKey := H(ClientKey)`.
    pub(super) stored_key: Vec<u8>,
    /// `ServerKey := HMAC(SaltedPassword, "Server Key")`.
    pub(super) server_key: Vec<u8>,
}

impl Keys {
    pub(super) fn from_salted_password(mechanism: ScramMechanism, salted: &[u8]) -> Self {
        let client_key = hmac(mechanism, salted, &[b"Client Key"]);
        let stored_key = hash(mechanism, &client_key);
        let server_key = hmac(mechanism, salted, &[b"Server Key"]);
        Keys {
            client_key,
            stored_key,
            server_key,
        }
    }
}
