//! The Digest client against RFC 7616's examples and against the server side of
//! `headlock_api::auth`; the HTTP client against real loopback servers (an axum one
//! with the real authenticator, and raw sockets for misbehaving ones).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use headlock_api::auth::{DigestAuthenticator, derive_secrets, parse_authorization};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

#[test]
fn accepts_path_segments_only_as_one_segment() {
    assert_eq!(
        path_segment("5f0c0ffee0c0ffee0c0ffee0"),
        "5f0c0ffee0c0ffee0c0ffee0"
    );
    assert_eq!(path_segment("a b/../c?d=e#f"), "a%20b%2F..%2Fc%3Fd%3De%23f");
    assert_eq!(path_segment("é"), "%C3%A9");
}

#[test]
fn accepts_urls_with_ports_prefixes_and_ipv6() {
    let t = Target::parse("http://127.0.0.1:8080").unwrap();
    assert_eq!(
        (t.tls, t.host.as_str(), t.port, t.prefix.as_str()),
        (false, "127.0.0.1", 8080, "")
    );
    let t = Target::parse("https://backup.example.com/headlock/").unwrap();
    assert_eq!((t.tls, t.port, t.prefix.as_str()), (true, 443, "/headlock"));
    let t = Target::parse("http://[::1]:9000").unwrap();
    assert_eq!(
        (t.host.as_str(), t.addr(), t.authority.as_str()),
        ("::1", "[::1]:9000".to_string(), "[::1]:9000")
    );
}

#[test]
fn rejects_unusable_urls() {
    for u in [
        "ftp://h",
        "127.0.0.1:8080",
        "http://user:key@h",
        "http://h/?x=1",
        "",
        "http://",
    ] {
        let e = Target::parse(u).unwrap_err();
        assert!(e.is_local(), "{u}: {e}");
    }
}

// ---------------------------------------------------------------------------------
// Over real sockets.

struct Guarded {
    auth: DigestAuthenticator,
    requests: AtomicUsize,
    /// Issue the first challenge with a nonce minted this long ago.
    first_nonce_age: Duration,
}

async fn guarded(State(st): State<Arc<Guarded>>, req: Request) -> Response {
    let n = st.requests.fetch_add(1, Ordering::SeqCst);
    let challenge = |stale: bool, at: SystemTime| {
        let mut resp = (StatusCode::UNAUTHORIZED, "{}").into_response();
        for v in st.auth.challenge_at(stale, at) {
            resp.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
        resp
    };
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        let at = if n == 0 {
            SystemTime::now() - st.first_nonce_age
        } else {
            SystemTime::now()
        };
        return challenge(false, at);
    };
    let parsed = match parse_authorization(value.to_str().unwrap_or("")) {
        Ok(p) => p,
        Err(_) => return challenge(false, SystemTime::now()),
    };
    let target = req.uri().to_string();
    let secrets = derive_secrets("alice", "the-key");
    match st.auth.verify(
        req.method().as_str(),
        &target,
        &parsed,
        &secrets,
        SystemTime::now(),
    ) {
        Ok(()) => (StatusCode::OK, format!(r#"{{"nc":"{}"}}"#, parsed.nc)).into_response(),
        Err(e) => challenge(e.is_stale(), SystemTime::now()),
    }
}

async fn guarded_server(first_nonce_age: Duration) -> (String, Arc<Guarded>) {
    let st = Arc::new(Guarded {
        auth: DigestAuthenticator::new([3u8; 32], Duration::from_secs(300)),
        requests: AtomicUsize::new(0),
        first_nonce_age,
    });
    let app = axum::Router::new().fallback(guarded).with_state(st.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, st)
}

fn client(url: &str, key: &str) -> ApiClient {
    ApiClient::new(ClientConfig {
        url: url.to_string(),
        username: "alice".into(),
        api_key: Zeroizing::new(key.to_string()),
        ca_file: None,
        timeout: Duration::from_secs(30),
    })
    .unwrap()
}

#[tokio::test]
async fn accepts_one_challenge_then_increasing_nonce_counts() {
    let (url, st) = guarded_server(Duration::ZERO).await;
    let mut c = client(&url, "the-key");
    let r = c
        .send(Method::GET, "/groups?pageNum=1", None)
        .await
        .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &br#"{"nc":"00000001"}"#[..]));
    let r = c
        .send(
            Method::POST,
            "/groups",
            Some(&serde_json::json!({"name": "x"})),
        )
        .await
        .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &br#"{"nc":"00000002"}"#[..]));
    // One 401 round trip for both calls.
    assert_eq!(st.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn accepts_stale_nonce_and_retries_with_the_new_one() {
    // The first challenge carries a nonce older than the server's nonce lifetime:
    // the answer to it is correct but stale.
    let (url, st) = guarded_server(Duration::from_secs(600)).await;
    let mut c = client(&url, "the-key");
    let r = c.send(Method::PUT, "/x", None).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(!r.credentials_refused);
    // No credentials, stale answer, fresh answer.
    assert_eq!(st.requests.load(Ordering::SeqCst), 3);
    assert_eq!(&r.body[..], br#"{"nc":"00000001"}"#);
}

#[tokio::test]
async fn rejects_wrong_key_after_one_answer() {
    let (url, st) = guarded_server(Duration::ZERO).await;
    let mut c = client(&url, "wrong-key");
    let r = c.send(Method::GET, "/groups", None).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.credentials_refused);
    assert_eq!(st.requests.load(Ordering::SeqCst), 2);
}

/// A server that answers every connection with `response` and closes.
async fn raw_server(response: Vec<u8>, chunks: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(&response).await;
                let chunk = vec![b'x'; 1024 * 1024];
                for _ in 0..chunks {
                    let head = format!("{:x}\r\n", chunk.len());
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(&chunk).await.is_err()
                        || s.write_all(b"\r\n").await.is_err()
                    {
                        return;
                    }
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    url
}

#[tokio::test]
async fn rejects_declared_body_over_the_limit() {
    let url = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 17000000\r\n\r\n".to_vec(),
        0,
    )
    .await;
    let e = client(&url, "k")
        .send(Method::GET, "/groups", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::TooLarge {
                limit: MAX_RESPONSE_BYTES,
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.is_local());
}

#[tokio::test]
async fn rejects_chunked_body_over_the_limit() {
    let url = raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        17,
    )
    .await;
    let e = client(&url, "k")
        .send(Method::GET, "/groups", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::TooLarge {
                limit: MAX_RESPONSE_BYTES,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn accepts_chunked_body_under_the_limit() {
    let url = raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        3,
    )
    .await;
    let r = client(&url, "k")
        .send(Method::GET, "/groups", None)
        .await
        .unwrap();
    assert_eq!((r.status, r.body.len()), (200, 3 * 1024 * 1024));
}

#[tokio::test]
async fn rejects_garbage_responses() {
    let url = raw_server(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec(), 0).await;
    let e = client(&url, "k")
        .send(Method::GET, "/groups", None)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Http { .. }), "{e}");
}

#[tokio::test]
async fn rejects_silent_servers_after_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts, reads, never answers.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut c = ApiClient::new(ClientConfig {
        url,
        username: "alice".into(),
        api_key: Zeroizing::new("k".into()),
        ca_file: None,
        timeout: Duration::from_millis(300),
    })
    .unwrap();
    let e = c.send(Method::GET, "/groups", None).await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
}

#[tokio::test]
async fn rejects_closed_ports_as_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = client(&format!("http://127.0.0.1:{port}"), "k")
        .send(Method::GET, "/groups", None)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
    assert!(!e.is_local());
}
