//! The Digest client against RFC 7616's examples and against the server side of
//! `headlock_api::auth`: challenges parsed and picked, answers the server verifies.

use std::time::{Duration, SystemTime};

use headlock_api::auth::{DigestAuthenticator, derive_secrets, parse_authorization};

use super::*;

// RFC 7616 section 3.9.1.
const RFC_USER: &str = "Mufasa";
const RFC_REALM: &str = "http-auth@example.org";
const RFC_PASSWORD: &str = "Circle of Life";
const RFC_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const RFC_URI: &str = "/dir/index.html";

#[test]
fn accepts_rfc7616_md5_example() {
    let ha1 = ha1(Algorithm::Md5, RFC_USER, RFC_REALM, RFC_PASSWORD);
    assert_eq!(
        response_hex(
            Algorithm::Md5,
            &ha1,
            RFC_NONCE,
            "00000001",
            RFC_CNONCE,
            "GET",
            RFC_URI
        ),
        "8ca523f5e9506fed4657c9700eebdbec"
    );
}

#[test]
fn accepts_rfc7616_sha256_example() {
    let ha1 = ha1(Algorithm::Sha256, RFC_USER, RFC_REALM, RFC_PASSWORD);
    assert_eq!(
        response_hex(
            Algorithm::Sha256,
            &ha1,
            RFC_NONCE,
            "00000001",
            RFC_CNONCE,
            "GET",
            RFC_URI
        ),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn accepts_ha1_equal_to_the_servers() {
    let s = derive_secrets("alice", "a-key");
    assert_eq!(
        *ha1(Algorithm::Md5, "alice", "MMS Public API", "a-key"),
        hex::encode(s.ha1_md5)
    );
    assert_eq!(
        *ha1(Algorithm::Sha256, "alice", "MMS Public API", "a-key"),
        hex::encode(s.ha1_sha256)
    );
}

fn headers_of(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(header::WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn server_challenge_headers(auth: &DigestAuthenticator, stale: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in auth.challenge(stale) {
        h.append(header::WWW_AUTHENTICATE, v);
    }
    h
}

#[test]
fn accepts_server_challenges_and_prefers_sha256() {
    let auth = DigestAuthenticator::new([7u8; 32], Duration::from_secs(300));
    let c = pick_challenge(&server_challenge_headers(&auth, false))
        .unwrap()
        .unwrap();
    assert_eq!(c.algorithm, Algorithm::Sha256);
    assert_eq!(c.realm, "MMS Public API");
    assert!(c.opaque.is_some());
    assert!(!c.stale);
    let c = pick_challenge(&server_challenge_headers(&auth, true))
        .unwrap()
        .unwrap();
    assert!(c.stale);
}

#[test]
fn accepts_md5_when_sha256_is_not_offered() {
    let h = headers_of(&[
        r#"Digest realm="r", nonce="n1", algorithm=MD5, qop="auth,auth-int", stale=FALSE"#,
    ]);
    let c = pick_challenge(&h).unwrap().unwrap();
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert_eq!(c.nonce, "n1");
    // No algorithm at all means MD5.
    let h = headers_of(&[r#"Digest realm="r", nonce="n2", qop=auth"#]);
    assert_eq!(
        pick_challenge(&h).unwrap().unwrap().algorithm,
        Algorithm::Md5
    );
}

#[test]
fn accepts_several_challenges_in_one_header_with_escapes() {
    let h = headers_of(&[
        r#"Basic realm="x, y", Digest realm="a \"quoted\" realm", nonce="abc", algorithm="SHA-256", qop="auth", opaque="o""#,
    ]);
    let c = pick_challenge(&h).unwrap().unwrap();
    assert_eq!(c.algorithm, Algorithm::Sha256);
    assert_eq!(c.realm, r#"a "quoted" realm"#);
    assert_eq!(c.nonce, "abc");
    assert_eq!(c.opaque.as_deref(), Some("o"));
}

#[test]
fn rejects_digest_challenges_this_client_cannot_answer() {
    for v in [
        r#"Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth""#,
        r#"Digest realm="r", nonce="n", algorithm=MD5-sess, qop="auth""#,
        r#"Digest realm="r", nonce="n", algorithm=MD5"#,
        r#"Digest realm="r", nonce="n", qop="auth-int""#,
        r#"Digest realm="r", qop="auth""#,
    ] {
        assert!(pick_challenge(&headers_of(&[v])).is_err(), "{v}");
    }
    // Not Digest at all: nothing to answer, not an error.
    assert_eq!(
        pick_challenge(&headers_of(&[r#"Basic realm="r""#])),
        Ok(None)
    );
    assert_eq!(pick_challenge(&HeaderMap::new()), Ok(None));
}

#[test]
fn accepts_garbage_challenges_without_panicking() {
    for v in [
        "",
        ",,,",
        "Digest",
        "Digest =",
        "Digest realm=\"unterminated",
        "\"\"\"",
        "=,=,=",
        "Digest a=\\",
    ] {
        let _ = pick_challenge(&headers_of(&[v]));
    }
    let long = format!("Digest realm=\"{}\"", "a".repeat(100_000));
    let _ = pick_challenge(&headers_of(&[&long]));
}

/// The answers of this client pass the server's verification, nonce count after
/// nonce count, for both algorithms, with a query string in the uri.
#[test]
fn accepts_answers_the_server_verifies() {
    let auth = DigestAuthenticator::new([9u8; 32], Duration::from_secs(300));
    let secrets = derive_secrets("alice", "the-key");
    let all = server_challenge_headers(&auth, false);
    let md5_only = headers_of(&[all
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .next()
        .unwrap()
        .to_str()
        .unwrap()]);
    for headers in [all, md5_only] {
        let challenge = pick_challenge(&headers).unwrap().unwrap();
        let mut session =
            DigestSession::new(challenge, "alice", "the-key", &SystemRandom::new()).unwrap();
        for _ in 0..3 {
            let uri = "/api/public/v1.0/groups?pageNum=1";
            let value = session.authorization("alice", &Method::GET, uri).unwrap();
            let parsed = parse_authorization(value.to_str().unwrap()).unwrap();
            assert_eq!(
                auth.verify("GET", uri, &parsed, &secrets, SystemTime::now()),
                Ok(())
            );
        }
        assert_eq!(session.nc, 3);
    }
}

#[test]
fn rejects_answers_with_a_wrong_key() {
    let auth = DigestAuthenticator::new([9u8; 32], Duration::from_secs(300));
    let challenge = pick_challenge(&server_challenge_headers(&auth, false))
        .unwrap()
        .unwrap();
    let mut session =
        DigestSession::new(challenge, "alice", "not-the-key", &SystemRandom::new()).unwrap();
    let value = session.authorization("alice", &Method::PUT, "/x").unwrap();
    let parsed = parse_authorization(value.to_str().unwrap()).unwrap();
    assert!(
        auth.verify(
            "PUT",
            "/x",
            &parsed,
            &derive_secrets("alice", "the-key"),
            SystemTime::now()
        )
        .is_err()
    );
}

#[test]
fn accepts_usernames_with_quotes_and_backslashes() {
    let auth = DigestAuthenticator::new([1u8; 32], Duration::from_secs(300));
    let name = r#"a"b\c"#;
    let challenge = pick_challenge(&server_challenge_headers(&auth, false))
        .unwrap()
        .unwrap();
    let mut session = DigestSession::new(challenge, name, "k", &SystemRandom::new()).unwrap();
    let value = session.authorization(name, &Method::GET, "/x").unwrap();
    let parsed = parse_authorization(value.to_str().unwrap()).unwrap();
    assert_eq!(parsed.username, name);
    assert_eq!(
        auth.verify(
            "GET",
            "/x",
            &parsed,
            &derive_secrets(name, "k"),
            SystemTime::now()
        ),
        Ok(())
    );
}

#[test]
fn rejects_usernames_a_header_cannot_carry() {
    let auth = DigestAuthenticator::new([1u8; 32], Duration::from_secs(300));
    let challenge = pick_challenge(&server_challenge_headers(&auth, false))
        .unwrap()
        .unwrap();
    let mut session = DigestSession::new(challenge, "a\nb", "k", &SystemRandom::new()).unwrap();
    assert!(session.authorization("a\nb", &Method::GET, "/x").is_err());
}
