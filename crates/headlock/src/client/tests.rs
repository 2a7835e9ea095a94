//! The API client against real loopback servers: an axum one with the real Digest
//! authenticator (one challenge, stale nonces, wrong keys), and raw sockets for
//! misbehaving ones (oversized, garbage or silent answers, closed ports).

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

#[test]
fn accepts_path_segments_only_as_one_segment() {
    assert_eq!(
        path_segment("5f0c0ffee0c0ffee0c0ffee0"),
        "5f0c0ffee0c0ffee0c0ffee0"
    );
    assert_eq!(path_segment("a b/../c?d=e#f"), "a%20b%2F..%2Fc%3Fd%3De%23f");
    assert_eq!(path_segment("é"), "%C3%A9");
}

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
async fn streams_an_api_answer_over_the_limit_a_piece_at_a_time() {
    // The parent snapshot's file list grows with the files: `get_stream_api` hands it
    // over as it arrives, whatever its length.
    let url = raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        17,
    )
    .await;
    let mut c = client(&url, "k");
    let mut resp = c.get_stream_api("/groups").await.unwrap();
    assert_eq!(resp.status, 200);
    let (mut total, mut largest) = (0, 0);
    while let Some(piece) = resp.chunk().await.unwrap() {
        total += piece.len();
        largest = largest.max(piece.len());
    }
    assert_eq!(total, 17 * 1024 * 1024);
    assert!(largest < MAX_RESPONSE_BYTES, "{largest}");
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
