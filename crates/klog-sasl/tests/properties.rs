//! Properties over arbitrary input: every step of every state machine answers any
//! bytes with `Ok` or a typed `Err`, never a panic; usernames survive escaping; good
//! exchanges succeed for any username and password.

#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

use klog_sasl::scram::{escape_username, unescape_username};
use klog_sasl::{
    ClientExpectServerFinal, ClientExpectServerFirst, Nonce, ScramClient, ScramCredential,
    ScramMechanism, ScramServer, ServerExpectClientFinal, plain,
};
use proptest::prelude::*;
use std::sync::OnceLock;

const SECRET: &[u8] = b"test secret";
const CLIENT_FIRST: &[u8] = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &[u8] =
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn server() -> ScramServer {
    ScramServer::new(
        ScramMechanism::Sha256,
        Nonce::new("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0").unwrap(),
        SECRET,
    )
}

fn client() -> ClientExpectServerFirst {
    ScramClient::new(ScramMechanism::Sha256, "user", "pencil")
        .unwrap()
        .start(Nonce::new("rOprNGfwEbeRWgbNEkqO").unwrap())
        .0
}

/// The server after the RFC 7677 client-first, for a known and an unknown user.
fn server_expecting_final(known: bool) -> ServerExpectClientFinal {
    static STATES: OnceLock<[ServerExpectClientFinal; 2]> = OnceLock::new();
    let states = STATES.get_or_init(|| {
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36,
            0xfa, 0x81,
        ];
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096).unwrap();
        let respond = |credential: Option<&ScramCredential>| {
            server()
                .handle_client_first(CLIENT_FIRST)
                .unwrap()
                .respond(credential)
                .unwrap()
                .0
        };
        [respond(Some(&credential)), respond(None)]
    });
    states[usize::from(!known)].clone()
}

/// The client after the RFC 7677 server-first (PBKDF2 once, then cloned).
fn client_expecting_final() -> ClientExpectServerFinal {
    static STATE: OnceLock<ClientExpectServerFinal> = OnceLock::new();
    STATE
        .get_or_init(|| client().handle_server_first(SERVER_FIRST).unwrap().0)
        .clone()
}

/// Arbitrary bytes, or a valid message with a few bytes replaced, inserted or cut
/// (which reaches the checks behind the parser's first refusal).
fn message_like(valid: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let edited = (
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
        0..=valid.len(),
    )
        .prop_map(move |(edits, keep)| {
            let mut message = valid.to_vec();
            for (at, byte, kind) in edits {
                match kind {
                    0 if !message.is_empty() => {
                        let i = at.index(message.len());
                        message[i] = byte;
                    }
                    1 => {
                        let i = at.index(message.len() + 1);
                        message.insert(i, byte);
                    }
                    _ if !message.is_empty() => {
                        message.remove(at.index(message.len()));
                    }
                    _ => {}
                }
            }
            if keep < message.len() && keep % 3 == 0 {
                message.truncate(keep);
            }
            message
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..200), edited]
}

proptest! {
    #[test]
    fn server_client_first_never_panics(message in message_like(CLIENT_FIRST)) {
        if let Ok(awaiting) = server().handle_client_first(&message) {
            let _ = awaiting.respond(None);
        }
    }

    #[test]
    fn server_client_final_never_panics(message in message_like(CLIENT_FINAL), known: bool) {
        let result = server_expecting_final(known).handle_client_final(&message);
        // Only the genuine message verifies.
        prop_assert_eq!(result.is_ok(), known && message == CLIENT_FINAL);
    }

    #[test]
    fn client_server_first_never_panics(message in message_like(SERVER_FIRST)) {
        // Iteration counts up to 16384 are accepted, so a case may run PBKDF2.
        let _ = client().handle_server_first(&message);
    }

    #[test]
    fn client_server_final_never_panics(message in message_like(SERVER_FINAL)) {
        let result = client_expecting_final().handle_server_final(&message);
        // Trailing extensions are not signed, so only the signature must be intact.
        if result.is_ok() {
            prop_assert!(message.starts_with(SERVER_FINAL));
        }
    }

    #[test]
    fn plain_never_panics(message in message_like(b"\0alice\0alice-secret")) {
        let _ = plain::authenticate(&message, |u, p| u == "alice" && p == "alice-secret");
    }

    #[test]
    fn unescape_never_panics(saslname in ".*") {
        let _ = unescape_username(&saslname);
    }

    #[test]
    fn username_escaping_round_trips(username in "[^\0]+") {
        let escaped = escape_username(&username);
        prop_assert!(!escaped.contains(','));
        prop_assert_eq!(unescape_username(&escaped).unwrap(), username);
    }
}

proptest! {
    // Each case runs PBKDF2 twice (credential and client): few cases.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn any_username_and_password_authenticate(
        username in "[^\0]{1,20}",
        password in ".{0,20}",
        salt in prop::collection::vec(any::<u8>(), 1..40),
        nonce in any::<[u8; Nonce::RANDOM_LEN]>(),
        sha512: bool,
    ) {
        let mechanism = if sha512 { ScramMechanism::Sha512 } else { ScramMechanism::Sha256 };
        let credential = ScramCredential::from_password(mechanism, &password, &salt, 4096).unwrap();
        let (client, first) = ScramClient::new(mechanism, username.clone(), password)
            .unwrap()
            .start(Nonce::from_random(nonce));
        let awaiting = ScramServer::new(mechanism, Nonce::from_random([1; Nonce::RANDOM_LEN]), SECRET)
            .handle_client_first(&first)
            .unwrap();
        prop_assert_eq!(awaiting.username(), username.as_str());
        let (server, server_first) = awaiting.respond(Some(&credential)).unwrap();
        let (client, last) = client.handle_server_first(&server_first).unwrap();
        let (done, server_final) = server.handle_client_final(&last).unwrap();
        client.handle_server_final(&server_final).unwrap();
        prop_assert_eq!(done.username(), username.as_str());
    }
}
