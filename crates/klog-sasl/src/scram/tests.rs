//! Exchanges between the state machines, and RFC 7677's example reproduced by both.

use super::*;

/// RFC 7677 section 3: SCRAM-SHA-256, user "user", password "pencil".
mod rfc7677 {
    pub const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    pub const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    pub const SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    pub const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    pub const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    pub const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                    p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    pub const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
}

const SECRET: &[u8] = b"unknown-user secret of this test broker";

fn rfc_credential() -> ScramCredential {
    let salt = Base64::decode_vec(rfc7677::SALT_B64).unwrap();
    ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096).unwrap()
}

fn server(mechanism: ScramMechanism, nonce: &str) -> ScramServer {
    ScramServer::new(mechanism, Nonce::new(nonce).unwrap(), SECRET)
}

#[test]
fn rfc7677_example_client_side_byte_for_byte() {
    let client = ScramClient::new(ScramMechanism::Sha256, "user", "pencil").unwrap();
    let (client, first) = client.start(Nonce::new(rfc7677::CLIENT_NONCE).unwrap());
    assert_eq!(first, rfc7677::CLIENT_FIRST.as_bytes());
    let (client, last) = client
        .handle_server_first(rfc7677::SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(last).unwrap(), rfc7677::CLIENT_FINAL);
    client
        .handle_server_final(rfc7677::SERVER_FINAL.as_bytes())
        .unwrap();
}

#[test]
fn rfc7677_example_server_side_byte_for_byte() {
    let credential = rfc_credential();
    let awaiting = server(ScramMechanism::Sha256, rfc7677::SERVER_NONCE)
        .handle_client_first(rfc7677::CLIENT_FIRST.as_bytes())
        .unwrap();
    assert_eq!(awaiting.username(), "user");
    let (server, first) = awaiting.respond(Some(&credential)).unwrap();
    assert_eq!(String::from_utf8(first).unwrap(), rfc7677::SERVER_FIRST);
    let (done, last) = server
        .handle_client_final(rfc7677::CLIENT_FINAL.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(last).unwrap(), rfc7677::SERVER_FINAL);
    assert_eq!(done.username(), "user");
    assert_eq!(done.mechanism(), ScramMechanism::Sha256);
}

/// Runs a whole exchange; `credential` is what the server finds for the user.
fn exchange(
    mechanism: ScramMechanism,
    username: &str,
    password: &str,
    credential: Option<&ScramCredential>,
) -> Result<ScramAuthenticated, ScramError> {
    let client = ScramClient::new(mechanism, username, password)?;
    let (client, first) = client.start(Nonce::from_random([7; Nonce::RANDOM_LEN]));
    let awaiting = server(mechanism, "server-nonce").handle_client_first(&first)?;
    assert_eq!(awaiting.username(), username);
    let (server, server_first) = awaiting.respond(credential)?;
    let (client, last) = client.handle_server_first(&server_first)?;
    let (done, server_final) = server.handle_client_final(&last)?;
    client.handle_server_final(&server_final)?;
    Ok(done)
}

#[test]
fn sha512_round_trip() {
    let credential =
        ScramCredential::from_password(ScramMechanism::Sha512, "s3cret", b"salt-512", 8192)
            .unwrap();
    assert_eq!(credential.stored_key.len(), 64);
    let done = exchange(ScramMechanism::Sha512, "alice", "s3cret", Some(&credential)).unwrap();
    assert_eq!(done.into_username(), "alice");
}

#[test]
fn sha256_round_trip_with_escaped_username_and_non_ascii_password() {
    let credential =
        ScramCredential::from_password(ScramMechanism::Sha256, "pässwörd", b"salt", 4096).unwrap();
    let done = exchange(
        ScramMechanism::Sha256,
        "a=b,c",
        "pässwörd",
        Some(&credential),
    )
    .unwrap();
    assert_eq!(done.username(), "a=b,c");
}

#[test]
fn wrong_password_is_refused() {
    let credential = rfc_credential();
    assert_eq!(
        exchange(ScramMechanism::Sha256, "user", "pencil2", Some(&credential)),
        Err(ScramError::InvalidCredentials)
    );
}

#[test]
fn unknown_user_is_refused_like_a_wrong_password_at_the_same_step() {
    // The server answers the client-first message as for a real user: same shape,
    // same iteration count, a salt of the usual length that is stable across attempts.
    let first_for = |username: &str| {
        let client = ScramClient::new(ScramMechanism::Sha256, username, "pw").unwrap();
        let (_, first) = client.start(Nonce::new("cn").unwrap());
        let awaiting = server(ScramMechanism::Sha256, "sn")
            .handle_client_first(&first)
            .unwrap();
        let (_, server_first) = awaiting.respond(None).unwrap();
        String::from_utf8(server_first).unwrap()
    };
    let once = first_for("ghost");
    assert_eq!(once, first_for("ghost"));
    assert_ne!(once, first_for("phantom"));
    let salt = once.split(",s=").nth(1).unwrap().split(',').next().unwrap();
    assert_eq!(Base64::decode_vec(salt).unwrap().len(), SALT_LEN);
    assert!(once.ends_with(",i=4096"));

    let unknown = exchange(ScramMechanism::Sha256, "ghost", "pencil", None);
    let wrong = exchange(
        ScramMechanism::Sha256,
        "user",
        "pencil2",
        Some(&rfc_credential()),
    );
    assert_eq!(unknown, Err(ScramError::InvalidCredentials));
    assert_eq!(unknown, wrong);
}

#[test]
fn unknown_user_iterations_follow_the_configuration() {
    let server = server(ScramMechanism::Sha512, "sn")
        .with_unknown_user_iterations(8192)
        .unwrap();
    let awaiting = server.handle_client_first(b"n,,n=ghost,r=cn").unwrap();
    let (_, first) = awaiting.respond(None).unwrap();
    assert!(first.ends_with(b",i=8192"));
    assert!(
        ScramServer::new(ScramMechanism::Sha512, Nonce::new("sn").unwrap(), SECRET)
            .with_unknown_user_iterations(100)
            .is_err()
    );
}

#[test]
fn credential_for_another_mechanism_is_unusable() {
    let awaiting = server(ScramMechanism::Sha512, "sn")
        .handle_client_first(b"n,,n=user,r=cn")
        .unwrap();
    assert_eq!(
        awaiting.respond(Some(&rfc_credential())).unwrap_err(),
        ScramError::UnusableCredential(CredentialError::WrongKeyLength {
            mechanism: ScramMechanism::Sha512,
            len: 32
        })
    );
}

#[test]
fn credential_iterations_follow_kafka_bounds() {
    for iterations in [0, 4095, 16385] {
        assert_eq!(
            ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"salt", iterations),
            Err(CredentialError::IterationsOutOfRange {
                mechanism: ScramMechanism::Sha256,
                iterations
            })
        );
    }
    assert!(ScramCredential::from_password(ScramMechanism::Sha512, "pw", b"salt", 16384).is_ok());
    assert_eq!(
        ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"", 4096),
        Err(CredentialError::EmptySalt)
    );
}

#[test]
fn mechanism_names_and_kip554_codes() {
    for mechanism in ScramMechanism::ALL {
        assert_eq!(ScramMechanism::from_name(mechanism.name()), Some(mechanism));
        assert_eq!(
            ScramMechanism::from_kafka_type(mechanism.kafka_type()),
            Some(mechanism)
        );
    }
    assert_eq!(ScramMechanism::Sha256.to_string(), "SCRAM-SHA-256");
    assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
    assert_eq!(ScramMechanism::from_kafka_type(0), None);
}

#[test]
fn debug_leaves_secrets_out() {
    let credential = rfc_credential();
    let shown = format!("{credential:?}");
    assert!(!shown.contains(&format!("{:?}", credential.stored_key)));
    let client = ScramClient::new(ScramMechanism::Sha256, "user", "pencil").unwrap();
    assert!(!format!("{client:?}").contains("pencil"));
    let (waiting, _) = client.start(Nonce::new("n").unwrap());
    assert!(!format!("{waiting:?}").contains("pencil"));
}

mod username {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        for name in ["alice", "a=b", "a,b", "=,=,", "=2C", "=3D", "ünï,cödé="] {
            let escaped = escape_username(name);
            assert!(!escaped.contains(','));
            assert_eq!(unescape_username(&escaped).unwrap(), name);
        }
        assert_eq!(escape_username("a=b,c"), "a=3Db=2Cc");
    }

    #[test]
    fn bad_escapes_are_refused() {
        for saslname in [
            "", "a=b", "a=2c", "a=3d", "a=", "a=2", "a,b", "a\0b", "=4142",
        ] {
            assert_eq!(
                unescape_username(saslname),
                Err(ScramError::InvalidUsername),
                "{saslname:?}"
            );
        }
    }

    #[test]
    fn client_refuses_unsendable_usernames() {
        for name in ["", "a\0b"] {
            assert_eq!(
                ScramClient::new(ScramMechanism::Sha256, name, "pw").unwrap_err(),
                ScramError::InvalidUsername
            );
        }
    }
}

mod nonce {
    use super::*;

    #[test]
    fn printable_without_commas() {
        assert!(Nonce::new(rfc7677::SERVER_NONCE).is_ok());
        for bad in ["", "a,b", "a b", "é", "a\u{7f}"] {
            assert_eq!(Nonce::new(bad), Err(ScramError::InvalidNonce), "{bad:?}");
        }
        let random = Nonce::from_random([0xff; Nonce::RANDOM_LEN]);
        assert_eq!(random.as_str().len(), 32);
        assert!(Nonce::new(random.as_str()).is_ok());
    }
}

/// Messages a server must refuse on the client-first step.
mod malformed_client_first {
    use super::*;

    fn first(message: &str) -> ScramError {
        server(ScramMechanism::Sha256, "sn")
            .handle_client_first(message.as_bytes())
            .unwrap_err()
    }

    #[test]
    fn channel_binding_is_refused() {
        assert_eq!(
            first("y,,n=user,r=cn"),
            ScramError::ChannelBindingNotSupported
        );
        assert_eq!(
            first("p=tls-unique,,n=user,r=cn"),
            ScramError::ChannelBindingNotSupported
        );
    }

    #[test]
    fn bad_gs2_headers_are_refused() {
        for message in [
            "",
            "n",
            "n,",
            "x,,n=user,r=cn",
            "n,b=user,n=user,r=cn",
            "N,,n=u,r=c",
        ] {
            assert_eq!(first(message), ScramError::InvalidGs2Header, "{message:?}");
        }
    }

    #[test]
    fn authzid_must_be_the_username() {
        assert!(
            server(ScramMechanism::Sha256, "sn")
                .handle_client_first(b"n,a=user,n=user,r=cn")
                .is_ok()
        );
        assert_eq!(
            first("n,a=admin,n=user,r=cn"),
            ScramError::AuthorizationIdMismatch
        );
    }

    #[test]
    fn missing_attributes_are_refused() {
        let missing = |attribute| ScramError::MissingAttribute {
            message: ScramMessage::ClientFirst,
            attribute,
        };
        assert_eq!(first("n,,"), missing('n'));
        assert_eq!(first("n,,r=cn"), missing('n'));
        assert_eq!(first("n,,n=user"), missing('r'));
        assert_eq!(first("n,,n=user,cn"), missing('r'));
        assert_eq!(first("n,,r=cn,n=user"), missing('n'));
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(first("n,,n=,r=cn"), ScramError::InvalidUsername);
        assert_eq!(first("n,,n=a=b,r=cn"), ScramError::InvalidUsername);
        assert_eq!(
            first("n,,n=user,r="),
            ScramError::InvalidAttribute {
                message: ScramMessage::ClientFirst,
                attribute: 'r'
            }
        );
        assert_eq!(
            first("n,,n=user,r=c n"),
            ScramError::InvalidAttribute {
                message: ScramMessage::ClientFirst,
                attribute: 'r'
            }
        );
        assert_eq!(
            server(ScramMechanism::Sha256, "sn")
                .handle_client_first(b"n,,n=us\xffer,r=cn")
                .unwrap_err(),
            ScramError::NotUtf8 {
                message: ScramMessage::ClientFirst
            }
        );
    }

    #[test]
    fn extensions() {
        // Unknown extensions are ignored, as Kafka ignores them; tokenauth (delegation
        // tokens) and RFC 5802's mandatory m= are refused.
        assert!(
            server(ScramMechanism::Sha256, "sn")
                .handle_client_first(b"n,,n=user,r=cn,foo=bar")
                .is_ok()
        );
        assert_eq!(
            first("n,,n=user,r=cn,tokenauth=true"),
            ScramError::TokenAuthNotSupported
        );
        assert_eq!(
            first("n,,m=ext,n=user,r=cn"),
            ScramError::MandatoryExtension {
                message: ScramMessage::ClientFirst
            }
        );
        for bad in [
            "n,,n=user,r=cn,",
            "n,,n=user,r=cn,foo",
            "n,,n=user,r=cn,f1=x",
            "n,,n=user,r=cn,f=",
        ] {
            assert_eq!(
                first(bad),
                ScramError::InvalidExtension {
                    message: ScramMessage::ClientFirst
                },
                "{bad:?}"
            );
        }
    }
}

/// Messages a server must refuse on the client-final step (after a good first step).
mod malformed_client_final {
    use super::*;

    const NONCE: &str = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const PROOF: &str = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

    fn last_with_header(client_first: &str, message: &str) -> ScramError {
        let (server, _) = server(ScramMechanism::Sha256, rfc7677::SERVER_NONCE)
            .handle_client_first(client_first.as_bytes())
            .unwrap()
            .respond(Some(&rfc_credential()))
            .unwrap();
        server.handle_client_final(message.as_bytes()).unwrap_err()
    }

    fn last(message: &str) -> ScramError {
        last_with_header(rfc7677::CLIENT_FIRST, message)
    }

    const fn msg() -> ScramMessage {
        ScramMessage::ClientFinal
    }

    #[test]
    fn wrong_nonce_is_refused() {
        assert_eq!(
            last(&format!("c=biws,r={}X,p={PROOF}", NONCE)),
            ScramError::NonceMismatch { message: msg() }
        );
        assert_eq!(
            last(&format!("c=biws,r=rOprNGfwEbeRWgbNEkqO,p={PROOF}")),
            ScramError::NonceMismatch { message: msg() }
        );
    }

    #[test]
    fn channel_binding_must_echo_the_gs2_header() {
        // "eSws" is base64 of "y,,".
        assert_eq!(
            last(&format!("c=eSws,r={NONCE},p={PROOF}")),
            ScramError::ChannelBindingMismatch
        );
        // With an authzid in the first message, c= must carry it too.
        assert_eq!(
            last_with_header(
                "n,a=user,n=user,r=rOprNGfwEbeRWgbNEkqO",
                &format!("c=biws,r={NONCE},p={PROOF}")
            ),
            ScramError::ChannelBindingMismatch
        );
    }

    #[test]
    fn bad_base64_is_refused() {
        for (message, attribute) in [
            (format!("c=biw,r={NONCE},p={PROOF}"), 'c'),
            (format!("c=bi*s,r={NONCE},p={PROOF}"), 'c'),
            (
                format!("c=biws,r={NONCE},p=dHzb!apWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
                'p',
            ),
            (
                format!("c=biws,r={NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ"),
                'p',
            ),
        ] {
            assert_eq!(
                last(&message),
                ScramError::InvalidBase64 {
                    message: msg(),
                    attribute
                },
                "{message:?}"
            );
        }
    }

    #[test]
    fn missing_attributes_are_refused() {
        let missing = |attribute| ScramError::MissingAttribute {
            message: msg(),
            attribute,
        };
        assert_eq!(last(""), missing('p'));
        assert_eq!(last(&format!("c=biws,r={NONCE}")), missing('p'));
        assert_eq!(last(&format!("r={NONCE},p={PROOF}")), missing('c'));
        assert_eq!(last(&format!("c=biws,p={PROOF}")), missing('r'));
    }

    #[test]
    fn proof_of_the_wrong_length_is_refused() {
        assert_eq!(
            last(&format!("c=biws,r={NONCE},p=AAAA")),
            ScramError::InvalidAttribute {
                message: msg(),
                attribute: 'p'
            }
        );
    }

    #[test]
    fn a_flipped_proof_bit_is_invalid_credentials() {
        assert_eq!(
            last(&format!(
                "c=biws,r={NONCE},p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
            )),
            ScramError::InvalidCredentials
        );
    }

    #[test]
    fn extensions_are_part_of_the_signed_message() {
        // An extension the client did not sign changes the AuthMessage: the RFC's
        // proof no longer verifies.
        assert_eq!(
            last(&format!("c=biws,r={NONCE},foo=bar,p={PROOF}")),
            ScramError::InvalidCredentials
        );
        assert_eq!(
            last(&format!("c=biws,r={NONCE},f0=bar,p={PROOF}")),
            ScramError::InvalidExtension { message: msg() }
        );
    }
}

/// Messages a client must refuse from a server.
mod malformed_server_messages {
    use super::*;

    fn server_first(message: &str) -> ScramError {
        let client = ScramClient::new(ScramMechanism::Sha256, "user", "pencil").unwrap();
        let (client, _) = client.start(Nonce::new(rfc7677::CLIENT_NONCE).unwrap());
        client.handle_server_first(message.as_bytes()).unwrap_err()
    }

    fn server_final(message: &str) -> ScramError {
        let client = ScramClient::new(ScramMechanism::Sha256, "user", "pencil").unwrap();
        let (client, _) = client.start(Nonce::new(rfc7677::CLIENT_NONCE).unwrap());
        let (client, _) = client
            .handle_server_first(rfc7677::SERVER_FIRST.as_bytes())
            .unwrap();
        client.handle_server_final(message.as_bytes()).unwrap_err()
    }

    const MSG: ScramMessage = ScramMessage::ServerFirst;

    #[test]
    fn nonce_must_extend_the_clients() {
        for nonce in ["rOprNGfwEbeRWgbNEkqO", "XOprNGfwEbeRWgbNEkqO%hv", "rOpr"] {
            assert_eq!(
                server_first(&format!("r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")),
                ScramError::NonceMismatch { message: MSG },
                "{nonce}"
            );
        }
    }

    #[test]
    fn iteration_count_is_bounded() {
        for (iterations, error) in [
            ("4095", Some(4095)),
            ("16385", Some(16385)),
            ("4294967295", Some(u32::MAX)),
            ("0", None),
            ("4294967296", None),
            ("+4096", None),
            ("-1", None),
            ("", None),
            ("4k", None),
        ] {
            let expected = match error {
                Some(iterations) => ScramError::IterationCount {
                    iterations,
                    min: 4096,
                    max: 16384,
                },
                None => ScramError::InvalidAttribute {
                    message: MSG,
                    attribute: 'i',
                },
            };
            assert_eq!(
                server_first(&format!(
                    "r=rOprNGfwEbeRWgbNEkqOsn,s=W22ZaJ0SNY7soEsUEjb6gQ==,i={iterations}"
                )),
                expected,
                "{iterations:?}"
            );
        }
    }

    #[test]
    fn malformed_server_first_is_refused() {
        let n = "r=rOprNGfwEbeRWgbNEkqOsn";
        assert_eq!(
            server_first(&format!("{n},s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096")),
            ScramError::InvalidBase64 {
                message: MSG,
                attribute: 's'
            }
        );
        assert_eq!(
            server_first(&format!("{n},s=,i=4096")),
            ScramError::InvalidAttribute {
                message: MSG,
                attribute: 's'
            }
        );
        assert_eq!(
            server_first(&format!("{n},i=4096")),
            ScramError::MissingAttribute {
                message: MSG,
                attribute: 's'
            }
        );
        assert_eq!(
            server_first(&format!("{n},s=W22ZaJ0SNY7soEsUEjb6gQ==")),
            ScramError::MissingAttribute {
                message: MSG,
                attribute: 'i'
            }
        );
        assert_eq!(
            server_first(&format!("m=x,{n},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")),
            ScramError::MandatoryExtension { message: MSG }
        );
        assert_eq!(
            server_first(&format!("{n},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,")),
            ScramError::InvalidExtension { message: MSG }
        );
    }

    #[test]
    fn server_first_extensions_are_signed_and_ignored() {
        let client = ScramClient::new(ScramMechanism::Sha256, "user", "pencil").unwrap();
        let (client, _) = client.start(Nonce::new("cn").unwrap());
        assert!(
            client
                .handle_server_first(b"r=cnsn,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,foo=bar")
                .is_ok()
        );
    }

    #[test]
    fn server_final_is_checked() {
        assert_eq!(
            server_final("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            ScramError::ServerSignatureMismatch
        );
        assert_eq!(server_final("v="), ScramError::ServerSignatureMismatch);
        assert_eq!(
            server_final("e=invalid-proof"),
            ScramError::ServerError {
                value: "invalid-proof".into()
            }
        );
        assert_eq!(
            server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4"),
            ScramError::InvalidBase64 {
                message: ScramMessage::ServerFinal,
                attribute: 'v'
            }
        );
        assert_eq!(
            server_final(""),
            ScramError::MissingAttribute {
                message: ScramMessage::ServerFinal,
                attribute: 'v'
            }
        );
    }
}
