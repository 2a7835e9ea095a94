//! Unit tests of the digest exchange: RFC 7616 vectors, the challenge as strict
//! clients read it, the parser's tolerance and limits, and verification.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::Md5;
use sha2::{Digest as _, Sha256};

use super::*;

const USER: &str = "alice";
const KEY: &str = "3f1c1b1e-6f7d-4a53-9d5c-0b4f0f6b1c2a";
const TTL: Duration = Duration::from_secs(300);
const TARGET: &str = "/api/public/v1.0/groups/5e1a2b3c4d5e6f7a8b9c0d1e/backupConfigs/5e1a2b3c4d5e6f7a8b9c0d1f/encryptionKey";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn auth() -> DigestAuthenticator {
    DigestAuthenticator::new([42; 32], TTL)
}

/// A client computing the response on its own (independent of the code under test).
fn h(alg: Algorithm, s: &str) -> String {
    match alg {
        Algorithm::Md5 => hex::encode(Md5::digest(s.as_bytes())),
        Algorithm::Sha256 => hex::encode(Sha256::digest(s.as_bytes())),
    }
}

struct Client<'a> {
    alg: Algorithm,
    user: &'a str,
    key: &'a str,
    method: &'a str,
    uri: &'a str,
    nonce: &'a str,
    nc: &'a str,
    cnonce: &'a str,
}

impl Client<'_> {
    fn response(&self) -> String {
        let ha1 = h(
            self.alg,
            &format!("{}:MMS Public API:{}", self.user, self.key),
        );
        let ha2 = h(self.alg, &format!("{}:{}", self.method, self.uri));
        h(
            self.alg,
            &format!(
                "{ha1}:{}:{}:{}:auth:{ha2}",
                self.nonce, self.nc, self.cnonce
            ),
        )
    }

    /// The header as curl sends it.
    fn header(&self, opaque: &str) -> String {
        format!(
            "Digest username=\"{}\", realm=\"MMS Public API\", nonce=\"{}\", uri=\"{}\", cnonce=\"{}\", nc={}, qop=auth, response=\"{}\", opaque=\"{}\", algorithm={}",
            self.user,
            self.nonce,
            self.uri,
            self.cnonce,
            self.nc,
            self.response(),
            opaque,
            self.alg
        )
    }
}

/// Reads the challenge the way MongoDB's Go digest client does: split on `", "`,
/// `key=value`, trim quotes; any unknown key fails.
fn strict_parse(challenge: &str) -> Vec<(String, String)> {
    let rest = challenge
        .strip_prefix("Digest ")
        .expect("starts with `Digest `");
    rest.split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            assert!(
                [
                    "realm",
                    "domain",
                    "nonce",
                    "opaque",
                    "stale",
                    "algorithm",
                    "qop"
                ]
                .contains(&k),
                "strict clients refuse `{k}`"
            );
            (k.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], k: &str) -> &'a str {
    &fields.iter().find(|(n, _)| n == k).expect(k).1
}

fn nonce_and_opaque(a: &DigestAuthenticator, now: SystemTime) -> (String, String) {
    let [md5, _] = a.challenge_at(false, now);
    let f = strict_parse(md5.to_str().unwrap());
    (
        field(&f, "nonce").to_owned(),
        field(&f, "opaque").to_owned(),
    )
}

fn client<'a>(nonce: &'a str, nc: &'a str) -> Client<'a> {
    Client {
        alg: Algorithm::Md5,
        user: USER,
        key: KEY,
        method: "GET",
        uri: TARGET,
        nonce,
        nc,
        cnonce: "MTIzNDU2Nzg5MA",
    }
}

fn verify_header(
    a: &DigestAuthenticator,
    method: &str,
    target: &str,
    header: &str,
    now: SystemTime,
) -> Result<(), AuthError> {
    let resp = parse_authorization(header)?;
    a.verify(method, target, &resp, &derive_secrets(USER, KEY), now)
}

// ---- RFC 7616 section 3.9.1 ------------------------------------------------

const RFC_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

fn rfc_ha1(alg: Algorithm) -> String {
    alg.hex_of(&[b"Mufasa", b"http-auth@example.org", b"Circle of Life"])
}

#[test]
fn accepts_rfc7616_sha256_example_byte_for_byte() {
    let r = expected_response(
        Algorithm::Sha256,
        &rfc_ha1(Algorithm::Sha256),
        "GET",
        "/dir/index.html",
        RFC_NONCE,
        "00000001",
        RFC_CNONCE,
    );
    assert_eq!(
        r.as_str(),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn accepts_rfc7616_md5_example_byte_for_byte() {
    let r = expected_response(
        Algorithm::Md5,
        &rfc_ha1(Algorithm::Md5),
        "GET",
        "/dir/index.html",
        RFC_NONCE,
        "00000001",
        RFC_CNONCE,
    );
    assert_eq!(r.as_str(), "8ca523f5e9506fed4657c9700eebdbec");
}

#[test]
fn accepts_rfc7616_example_header_as_printed() {
    // The SHA-256 Authorization header of section 3.9.1, with its line breaks folded.
    let header = "Digest username=\"Mufasa\",\n       realm=\"http-auth@example.org\",\n       uri=\"/dir/index.html\",\n       algorithm=SHA-256,\n       nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\n       nc=00000001,\n       cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\n       qop=auth,\n       response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\",\n       opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    let folded = header.replace(",\n       ", ", ");
    let r = parse_authorization(&folded).unwrap();
    assert_eq!(r.username, "Mufasa");
    assert_eq!(r.realm, "http-auth@example.org");
    assert_eq!(r.uri, "/dir/index.html");
    assert_eq!(r.algorithm, Algorithm::Sha256);
    assert_eq!(r.nonce, RFC_NONCE);
    assert_eq!(r.nc, "00000001");
    assert_eq!(r.nc_value, 1);
    assert_eq!(r.cnonce, RFC_CNONCE);
    assert_eq!(
        hex::encode(&r.response),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    assert_eq!(
        r.opaque.as_deref(),
        Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    );
}

// ---- secrets ----------------------------------------------------------------

#[test]
fn accepts_derived_ha1_equal_to_independent_computation() {
    // python3: hashlib.md5(b"alice:MMS Public API:3f1c...1c2a").hexdigest()
    let s = derive_secrets(USER, KEY);
    assert_eq!(hex::encode(s.ha1_md5), "3710ac06bd4601e0260ee79e51f1d172");
    assert_eq!(
        hex::encode(s.ha1_sha256),
        "9310c92ed0c793c35d5f1a2a7891ec1dded21d322b0d242e0d90011bff8998b8"
    );
}

#[test]
fn rejects_printing_secrets_in_debug() {
    let s = derive_secrets(USER, KEY);
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("3710ac06"), "{dbg}");
    assert!(!dbg.contains("55"), "{dbg}");
}

// ---- challenge ----------------------------------------------------------------

#[test]
fn accepts_challenge_exactly_as_ops_manager_prints_it() {
    let a = auth();
    let [md5, sha] = a.challenge_at(false, t0());
    let (md5, sha) = (
        md5.to_str().unwrap().to_owned(),
        sha.to_str().unwrap().to_owned(),
    );
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    assert_eq!(nonce.len(), 43);
    assert_eq!(opaque.len(), 32);
    let re = |alg: &str, text: &str| {
        // Replace the variable nonce with a placeholder, keep the rest byte for byte.
        let f = strict_parse(text);
        text.replace(field(&f, "nonce"), "N").replace(&opaque, "O")
            == format!(
                "Digest realm=\"MMS Public API\", domain=\"\", nonce=\"N\", opaque=\"O\", algorithm={alg}, qop=\"auth\", stale=false"
            )
    };
    assert!(re("MD5", &md5), "{md5}");
    assert!(re("SHA-256", &sha), "{sha}");
}

#[test]
fn accepts_challenge_in_strict_split_clients() {
    let a = auth();
    for (i, v) in a.challenge_at(true, t0()).iter().enumerate() {
        let text = v.to_str().unwrap();
        let f = strict_parse(text);
        assert_eq!(field(&f, "realm"), "MMS Public API");
        assert_eq!(field(&f, "domain"), "");
        assert_eq!(field(&f, "qop"), "auth");
        assert_eq!(field(&f, "stale"), "true");
        assert_eq!(field(&f, "algorithm"), ["MD5", "SHA-256"][i]);
        // Quoted values hold no comma, and the first pair of quotes holds the realm.
        assert!(!field(&f, "nonce").contains(','));
        assert!(!field(&f, "opaque").contains(','));
        assert_eq!(text.split('"').nth(1), Some("MMS Public API"));
        assert!(!text.contains("charset") && !text.contains("userhash"));
    }
}

#[test]
fn accepts_same_nonce_in_both_challenges() {
    let a = auth();
    let [md5, sha] = a.challenge_at(false, t0());
    let n1 = field(&strict_parse(md5.to_str().unwrap()), "nonce").to_owned();
    let n2 = field(&strict_parse(sha.to_str().unwrap()), "nonce").to_owned();
    assert_eq!(n1, n2);
}

// ---- parser -------------------------------------------------------------------

const BASE: &str = "username=\"alice\", realm=\"MMS Public API\", nonce=\"n\", uri=\"/x\", cnonce=\"c\", nc=00000001, response=\"0123456789abcdef0123456789abcdef\"";

#[test]
fn accepts_quoted_and_unquoted_algorithm_and_qop() {
    for extra in [
        "algorithm=MD5, qop=auth",
        "algorithm=\"MD5\", qop=\"auth\"",
        "algorithm=md5, qop=AUTH",
        "qop=auth",
    ] {
        let r = parse_authorization(&format!("Digest {BASE}, {extra}")).unwrap();
        assert_eq!(r.algorithm, Algorithm::Md5, "{extra}");
    }
    let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let r = parse_authorization(&format!(
        "Digest {}, algorithm=\"SHA-256\", qop=auth",
        BASE.replace("0123456789abcdef0123456789abcdef", sha)
    ))
    .unwrap();
    assert_eq!(r.algorithm, Algorithm::Sha256);
}

#[test]
fn accepts_params_in_any_order_any_case_and_spacing() {
    let r = parse_authorization(
        "digest   QOP=auth ,NC=1,,  Response = \"0123456789ABCDEF0123456789abcdef\" ,cnonce=c,uri=\"/x?a=1,2\", nonce=n,realm=\"MMS Public API\",Username=\"alice\", x-ext=whatever ,",
    )
    .unwrap();
    assert_eq!(r.username, "alice");
    assert_eq!(r.uri, "/x?a=1,2");
    assert_eq!(r.nc, "1");
    assert_eq!(r.nc_value, 1);
    assert_eq!(r.cnonce, "c");
    assert_eq!(r.opaque, None);
    assert_eq!(hex::encode(&r.response), "0123456789abcdef0123456789abcdef");
}

#[test]
fn accepts_escaped_quotes_and_backslashes_in_quoted_values() {
    let r = parse_authorization(&format!(
        "Digest {}, qop=auth",
        BASE.replace("username=\"alice\"", r#"username="al\"ice\\""#)
    ))
    .unwrap();
    assert_eq!(r.username, "al\"ice\\");
}

#[test]
fn accepts_nc_text_exactly_as_sent() {
    for nc in ["1", "00000001", "0000000a", "A", "\"00000002\""] {
        let r = parse_authorization(&format!(
            "Digest {}, qop=auth",
            BASE.replace("nc=00000001", &format!("nc={nc}"))
        ))
        .unwrap();
        assert_eq!(r.nc, nc.trim_matches('"'));
    }
}

#[test]
fn rejects_missing_or_foreign_scheme() {
    assert_eq!(parse_authorization(""), Err(AuthError::MissingHeader));
    assert_eq!(parse_authorization("   "), Err(AuthError::MissingHeader));
    assert_eq!(
        parse_authorization("Basic YWxpY2U6a2V5"),
        Err(AuthError::NotDigest)
    );
    assert_eq!(
        parse_authorization("Digestive a=b"),
        Err(AuthError::NotDigest)
    );
}

#[test]
fn rejects_header_over_4_kib() {
    let long = format!("Digest {BASE}, qop=auth, pad=\"{}\"", "x".repeat(4096));
    assert_eq!(
        parse_authorization(&long),
        Err(AuthError::HeaderTooLong {
            len: long.len(),
            max: 4096
        })
    );
}

#[test]
fn rejects_garbled_syntax_with_offsets() {
    let cases: [(&str, usize, &str); 6] = [
        (
            "Digest username",
            15,
            "expected `=` after the parameter name",
        ),
        ("Digest username=\"alice", 16, "unterminated quoted string"),
        (
            "Digest username=\"a\" realm=b",
            20,
            "expected `,` between parameters",
        ),
        ("Digest =x", 7, "expected a parameter name"),
        ("Digest a=", 9, "expected a value"),
        ("Digest a=\"x\\", 11, "backslash at the end of the header"),
    ];
    for (input, offset, reason) in cases {
        assert_eq!(
            parse_authorization(input),
            Err(AuthError::Malformed { offset, reason }),
            "{input}"
        );
    }
}

#[test]
fn rejects_duplicate_parameters() {
    let e = parse_authorization(&format!("Digest {BASE}, qop=auth, Username=\"bob\"")).unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::Malformed {
                reason: "duplicate parameter",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_more_than_32_parameters() {
    let pad: String = (0..30).map(|i| format!(", p{i}=1")).collect();
    let e = parse_authorization(&format!("Digest {BASE}, qop=auth{pad}")).unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::Malformed {
                reason: "too many parameters",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_sess_and_unknown_algorithms() {
    for alg in ["MD5-sess", "SHA-256-sess", "SHA-512-256", "\"sha-1\""] {
        let e =
            parse_authorization(&format!("Digest {BASE}, qop=auth, algorithm={alg}")).unwrap_err();
        assert!(
            matches!(e, AuthError::UnsupportedAlgorithm(_)),
            "{alg}: {e:?}"
        );
    }
}

#[test]
fn rejects_auth_int_and_legacy_rfc2069_without_qop() {
    let e = parse_authorization(&format!("Digest {BASE}, qop=auth-int")).unwrap_err();
    assert_eq!(e, AuthError::UnsupportedQop("auth-int".into()));
    let e = parse_authorization(&format!("Digest {BASE}")).unwrap_err();
    assert!(matches!(e, AuthError::UnsupportedQop(_)), "{e:?}");
}

#[test]
fn rejects_userhash_and_extended_username() {
    let e = parse_authorization(&format!("Digest {BASE}, qop=auth, userhash=true")).unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::InvalidParameter {
                name: "userhash",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(parse_authorization(&format!("Digest {BASE}, qop=auth, userhash=false")).is_ok());
    let e = parse_authorization(&format!(
        "Digest {}, qop=auth, username*=UTF-8''al%C3%AFce",
        BASE.replace("username=\"alice\", ", "")
    ))
    .unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::InvalidParameter {
                name: "username*",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_each_missing_required_parameter() {
    for (name, text) in [
        ("username", "username=\"alice\", "),
        ("realm", "realm=\"MMS Public API\", "),
        ("nonce", "nonce=\"n\", "),
        ("uri", "uri=\"/x\", "),
        ("cnonce", "cnonce=\"c\", "),
        ("nc", "nc=00000001, "),
    ] {
        let e = parse_authorization(&format!("Digest {}, qop=auth", BASE.replace(text, "")))
            .unwrap_err();
        assert_eq!(e, AuthError::MissingParameter(name));
    }
    let e = parse_authorization(&format!(
        "Digest {}, qop=auth",
        BASE.replace(", response=\"0123456789abcdef0123456789abcdef\"", "")
    ))
    .unwrap_err();
    assert_eq!(e, AuthError::MissingParameter("response"));
}

#[test]
fn rejects_bad_response_nc_and_oversized_fields() {
    let with = |from: &str, to: &str| {
        parse_authorization(&format!("Digest {}, qop=auth", BASE.replace(from, to)))
    };
    let name_of = |r: Result<DigestResponse, AuthError>| match r {
        Err(AuthError::InvalidParameter { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        name_of(with("0123456789abcdef0123456789abcdef", "0123")),
        "response"
    );
    assert_eq!(
        name_of(with(
            "0123456789abcdef0123456789abcdef",
            "zz23456789abcdef0123456789abcdef"
        )),
        "response"
    );
    assert_eq!(name_of(with("nc=00000001", "nc=0x1")), "nc");
    assert_eq!(name_of(with("nc=00000001", "nc=+1")), "nc");
    assert_eq!(name_of(with("nc=00000001", "nc=00000000000000001")), "nc");
    assert_eq!(name_of(with("nc=00000001", "nc=\"\"")), "nc");
    assert_eq!(
        name_of(with(
            "cnonce=\"c\"",
            &format!("cnonce=\"{}\"", "c".repeat(257))
        )),
        "cnonce"
    );
    assert_eq!(
        name_of(with("username=\"alice\"", "username=\"\"")),
        "username"
    );
    assert_eq!(name_of(with("uri=\"/x\"", "uri=\"\"")), "uri");
}

#[test]
fn rejects_arbitrary_bytes_without_panicking() {
    // A cheap fuzz pass over prefixes, and over every single-byte mutation of a valid
    // header: the parser must answer, never panic.
    let valid = format!("Digest {BASE}, qop=auth, opaque=\"o\\\"p\"");
    for end in 0..valid.len() {
        let _ = parse_authorization(&valid[..end]);
    }
    for i in 0..valid.len() {
        for b in [b'"', b',', b'=', b'\\', b' ', b'\t', b'a', 0u8, 0x7f] {
            let mut bytes = valid.clone().into_bytes();
            bytes[i] = b;
            if let Ok(s) = String::from_utf8(bytes) {
                let _ = parse_authorization(&s);
            }
        }
    }
    assert!(parse_authorization(&valid).is_ok());
    let _ = parse_authorization("Digest a=\"é\\é\", b=ü");
}

// ---- verification ------------------------------------------------------------

#[test]
fn accepts_curl_style_md5_response() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let c = client(&nonce, "00000001");
    assert_eq!(
        verify_header(&a, "GET", TARGET, &c.header(&opaque), t0()),
        Ok(())
    );
}

#[test]
fn accepts_sha256_response() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let c = Client {
        alg: Algorithm::Sha256,
        method: "PUT",
        ..client(&nonce, "00000001")
    };
    assert_eq!(
        verify_header(&a, "PUT", TARGET, &c.header(&opaque), t0()),
        Ok(())
    );
}

#[test]
fn accepts_go_client_style_header() {
    // Quoted algorithm, unpadded nc, uri with the query string, no opaque.
    let a = auth();
    let (nonce, _) = nonce_and_opaque(&a, t0());
    let target = format!("{TARGET}?pretty=true&envelope=true");
    let c = Client {
        uri: &target,
        ..client(&nonce, "1")
    };
    let header = format!(
        "Digest username=\"alice\", realm=\"MMS Public API\", nonce=\"{nonce}\", uri=\"{target}\", response=\"{}\", algorithm=\"MD5\", qop=\"auth\", nc=1, cnonce=\"{}\"",
        c.response(),
        c.cnonce
    );
    assert_eq!(verify_header(&a, "GET", &target, &header, t0()), Ok(()));
}

#[test]
fn accepts_absolute_uri_for_origin_form_target_and_back() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let target = format!("{TARGET}?pretty=true");
    let abs = format!("http://127.0.0.1:8080{target}");
    let c = Client {
        uri: &abs,
        ..client(&nonce, "00000001")
    };
    assert_eq!(
        verify_header(&a, "GET", &target, &c.header(&opaque), t0()),
        Ok(())
    );
    let c = Client {
        uri: &target,
        ..client(&nonce, "00000002")
    };
    assert_eq!(
        verify_header(
            &a,
            "GET",
            &format!("HTTPS://h.example{target}"),
            &c.header(&opaque),
            t0()
        ),
        Ok(())
    );
}

#[test]
fn accepts_absolute_uri_with_empty_path() {
    assert!(uri_matches("http://h", "/"));
    assert!(uri_matches("http://h?x=1", "/?x=1"));
    assert!(uri_matches("https://h:1/a?b", "/a?b"));
    assert!(!uri_matches("http://h/a", "/b"));
    assert!(!uri_matches("ftp://h/a", "/a"));
}

#[test]
fn rejects_uri_of_another_resource_or_without_the_query() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let c = client(&nonce, "00000001");
    let e = verify_header(
        &a,
        "GET",
        "/api/public/v1.0/groups",
        &c.header(&opaque),
        t0(),
    )
    .unwrap_err();
    assert!(matches!(e, AuthError::UriMismatch { .. }), "{e:?}");
    let e = verify_header(
        &a,
        "GET",
        &format!("{TARGET}?pretty=true"),
        &c.header(&opaque),
        t0(),
    )
    .unwrap_err();
    assert!(matches!(e, AuthError::UriMismatch { .. }), "{e:?}");
}

#[test]
fn rejects_wrong_key_and_unknown_user_identically() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let wrong = Client {
        key: "not-the-key",
        ..client(&nonce, "00000001")
    };
    let e1 = verify_header(&a, "GET", TARGET, &wrong.header(&opaque), t0()).unwrap_err();
    let unknown = Client {
        user: "nobody",
        ..client(&nonce, "00000002")
    };
    let resp = parse_authorization(&unknown.header(&opaque)).unwrap();
    let e2 = a.verify_unknown_user("GET", TARGET, &resp, t0());
    assert_eq!(e1, AuthError::BadCredentials);
    assert_eq!(e2, AuthError::BadCredentials);
    assert_eq!(e1.to_string(), e2.to_string());
    assert!(e1.counts_as_failure());
}

#[test]
fn rejects_unknown_user_even_with_a_response_for_the_dummy_secrets() {
    // Whatever the client sends, an unknown user never authenticates.
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let resp = parse_authorization(&client(&nonce, "1").header(&opaque)).unwrap();
    assert_eq!(
        a.verify_unknown_user("GET", TARGET, &resp, t0()),
        AuthError::BadCredentials
    );
}

#[test]
fn rejects_wrong_method_in_the_hash() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let c = client(&nonce, "00000001");
    assert_eq!(
        verify_header(&a, "PUT", TARGET, &c.header(&opaque), t0()),
        Err(AuthError::BadCredentials)
    );
}

#[test]
fn rejects_wrong_realm() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let h = client(&nonce, "00000001")
        .header(&opaque)
        .replace("MMS Public API", "Other");
    assert_eq!(
        verify_header(&a, "GET", TARGET, &h, t0()),
        Err(AuthError::WrongRealm)
    );
}

#[test]
fn rejects_forged_and_foreign_nonces() {
    let a = auth();
    let (_, opaque) = nonce_and_opaque(&a, t0());
    let other = DigestAuthenticator::new([43; 32], TTL);
    let (foreign, _) = nonce_and_opaque(&other, t0());
    for nonce in [
        foreign.as_str(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "short",
        RFC_NONCE,
    ] {
        let c = client(nonce, "00000001");
        assert_eq!(
            verify_header(&a, "GET", TARGET, &c.header(&opaque), t0()),
            Err(AuthError::InvalidNonce),
            "{nonce}"
        );
    }
}

#[test]
fn rejects_foreign_opaque_and_accepts_missing_opaque() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let c = client(&nonce, "00000001");
    assert_eq!(
        verify_header(&a, "GET", TARGET, &c.header("0000"), t0()),
        Err(AuthError::OpaqueMismatch)
    );
    let without = c
        .header(&opaque)
        .replace(&format!(", opaque=\"{opaque}\""), "");
    assert!(!without.contains("opaque"));
    assert_eq!(verify_header(&a, "GET", TARGET, &without, t0()), Ok(()));
}

#[test]
fn rejects_expired_nonce_as_stale_only_with_the_right_key() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let late = t0() + TTL + Duration::from_millis(1);
    let c = client(&nonce, "00000001");
    let e = verify_header(&a, "GET", TARGET, &c.header(&opaque), late).unwrap_err();
    assert_eq!(e, AuthError::Stale);
    assert!(e.is_stale() && !e.counts_as_failure());
    let wrong = Client {
        key: "nope",
        ..client(&nonce, "00000002")
    };
    assert_eq!(
        verify_header(&a, "GET", TARGET, &wrong.header(&opaque), late),
        Err(AuthError::BadCredentials)
    );
    // Exactly at the end of its lifetime the nonce still works.
    let c = client(&nonce, "00000003");
    assert_eq!(
        verify_header(&a, "GET", TARGET, &c.header(&opaque), t0() + TTL),
        Ok(())
    );
}

#[test]
fn accepts_stale_nonce_retry_with_the_new_nonce() {
    let a = auth();
    let (old, opaque) = nonce_and_opaque(&a, t0());
    let late = t0() + TTL * 2;
    let e = verify_header(
        &a,
        "GET",
        TARGET,
        &client(&old, "00000001").header(&opaque),
        late,
    )
    .unwrap_err();
    assert!(e.is_stale());
    let [md5, _] = a.challenge_at(e.is_stale(), late);
    let f = strict_parse(md5.to_str().unwrap());
    assert_eq!(field(&f, "stale"), "true");
    let fresh = field(&f, "nonce");
    assert_eq!(
        verify_header(
            &a,
            "GET",
            TARGET,
            &client(fresh, "00000001").header(&opaque),
            late
        ),
        Ok(())
    );
}

#[test]
fn accepts_increasing_nc_on_one_nonce_like_curl_keep_alive() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    for nc in 1..=20u32 {
        let nc = format!("{nc:08x}");
        let c = client(&nonce, &nc);
        assert_eq!(
            verify_header(&a, "GET", TARGET, &c.header(&opaque), t0()),
            Ok(()),
            "nc {nc}"
        );
    }
}

#[test]
fn rejects_replayed_nonce_nc_and_cnonce() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let h = client(&nonce, "00000001").header(&opaque);
    assert_eq!(verify_header(&a, "GET", TARGET, &h, t0()), Ok(()));
    let e = verify_header(&a, "GET", TARGET, &h, t0()).unwrap_err();
    assert_eq!(e, AuthError::Replayed { nc: 1 });
    assert!(e.counts_as_failure() && !e.is_stale());
    // The same count written without zero padding is the same count.
    let h = client(&nonce, "1").header(&opaque);
    assert_eq!(
        verify_header(&a, "GET", TARGET, &h, t0()),
        Err(AuthError::Replayed { nc: 1 })
    );
}

#[test]
fn accepts_wrong_attempt_without_burning_the_nc() {
    // A failed attempt is not recorded: a forger cannot block a count in advance.
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let wrong = Client {
        key: "nope",
        ..client(&nonce, "00000001")
    };
    assert_eq!(
        verify_header(&a, "GET", TARGET, &wrong.header(&opaque), t0()),
        Err(AuthError::BadCredentials)
    );
    assert_eq!(
        verify_header(
            &a,
            "GET",
            TARGET,
            &client(&nonce, "00000001").header(&opaque),
            t0()
        ),
        Ok(())
    );
}

#[test]
fn rejects_replay_after_window_eviction_as_stale() {
    let a = auth().with_replay_capacity(2);
    let (n1, opaque) = nonce_and_opaque(&a, t0());
    let h1 = client(&n1, "00000001").header(&opaque);
    assert_eq!(verify_header(&a, "GET", TARGET, &h1, t0()), Ok(()));
    for i in 1..=2u64 {
        let now = t0() + Duration::from_millis(i);
        let (n, _) = nonce_and_opaque(&a, now);
        assert_eq!(
            verify_header(
                &a,
                "GET",
                TARGET,
                &client(&n, "00000001").header(&opaque),
                now
            ),
            Ok(())
        );
    }
    let e = verify_header(&a, "GET", TARGET, &h1, t0() + Duration::from_millis(3)).unwrap_err();
    assert_eq!(e, AuthError::Stale);
}

#[test]
fn accepts_nonce_from_a_restarted_server_with_the_same_secret() {
    let (nonce, opaque) = nonce_and_opaque(&auth(), t0());
    let restarted = auth();
    let c = client(&nonce, "00000001");
    assert_eq!(
        verify_header(&restarted, "GET", TARGET, &c.header(&opaque), t0()),
        Ok(())
    );
}

#[test]
fn asks_for_a_claim_only_before_the_first_use_of_a_nonce_in_this_process() {
    let a = auth();
    let (nonce, opaque) = nonce_and_opaque(&a, t0());
    let secrets = derive_secrets(USER, KEY);
    let check = |a: &DigestAuthenticator, nc: &str| {
        let resp = parse_authorization(&client(&nonce, nc).header(&opaque)).unwrap();
        a.check("GET", TARGET, &resp, &secrets, t0()).unwrap()
    };
    let first = check(&a, "00000001");
    let claim = a.claim_of(&first).expect("a claim before the first use");
    assert_eq!(claim.nonce.len(), 32);
    assert!(claim.nonce.bytes().all(|b| b.is_ascii_hexdigit()));
    // Good until the nonce expires anywhere: its lifetime plus the allowed skew.
    assert_eq!(claim.until, t0() + TTL + Duration::from_secs(60));
    assert_eq!(a.record(first, t0()), Ok(()));
    let second = check(&a, "00000002");
    assert_eq!(a.claim_of(&second), None);
    assert_eq!(a.record(second, t0()), Ok(()));

    // Another process (a restart, another node) has another holder name and must
    // claim the same nonce: the claim names the same nonce.
    let restarted = auth();
    let third = check(&restarted, "00000003");
    let other = restarted
        .claim_of(&third)
        .expect("a claim in the new process");
    assert_eq!(other.nonce, claim.nonce);
    assert_ne!(other.holder, claim.holder);
}
