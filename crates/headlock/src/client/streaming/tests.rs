//! The streaming calls over real loopback sockets: an axum server with the real Digest
//! authenticator for uploads and downloads, raw sockets for servers that stall or
//! cut a body short.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use headlock_api::auth::{DigestAuthenticator, derive_secrets, parse_authorization};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use hyper::header::HeaderValue;
use zeroize::Zeroizing;

use super::*;
use crate::client::ClientConfig;
use crate::pipe;

/// What the upload server does with an authenticated POST.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnPost {
    /// Reads the body whole and answers 201 with its length.
    Read,
    /// Answers 409 at once, without reading the body.
    Refuse,
}

struct Uploads {
    auth: DigestAuthenticator,
    on_post: OnPost,
    requests: AtomicUsize,
    /// One line per POST: `complete LEN chunked=BOOL` or `incomplete`.
    posts: Mutex<Vec<String>>,
}

async fn uploads(State(st): State<Arc<Uploads>>, req: Request) -> Response {
    st.requests.fetch_add(1, Ordering::SeqCst);
    let challenge = || {
        let mut resp = (StatusCode::UNAUTHORIZED, "{}").into_response();
        for v in st.auth.challenge_at(false, SystemTime::now()) {
            resp.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
        resp
    };
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return challenge();
    };
    let Ok(parsed) = parse_authorization(value.to_str().unwrap_or("")) else {
        return challenge();
    };
    let target = req.uri().to_string();
    let secrets = derive_secrets("alice", "the-key");
    if st
        .auth
        .verify(
            req.method().as_str(),
            &target,
            &parsed,
            &secrets,
            SystemTime::now(),
        )
        .is_err()
    {
        return challenge();
    }
    if req.method() == Method::GET {
        return (StatusCode::OK, r#"{"results":[]}"#).into_response();
    }
    if st.on_post == OnPost::Refuse {
        return (
            StatusCode::CONFLICT,
            r#"{"error":409,"errorCode":"CANNOT_BACKUP_ENCRYPTION_DISABLED"}"#,
        )
            .into_response();
    }
    let chunked = req
        .headers()
        .get(header::TRANSFER_ENCODING)
        .is_some_and(|v| v == "chunked");
    match req.into_body().collect().await {
        Ok(body) => {
            let data = body.to_bytes();
            st.posts
                .lock()
                .unwrap()
                .push(format!("complete {} chunked={chunked}", data.len()));
            let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
            (
                StatusCode::CREATED,
                format!(r#"{{"len":{},"sum":{sum}}}"#, data.len()),
            )
                .into_response()
        }
        Err(_) => {
            st.posts.lock().unwrap().push("incomplete".into());
            (StatusCode::BAD_REQUEST, "{}").into_response()
        }
    }
}

async fn upload_server(on_post: OnPost) -> (String, Arc<Uploads>) {
    let st = Arc::new(Uploads {
        auth: DigestAuthenticator::new([5u8; 32], Duration::from_secs(300)),
        on_post,
        requests: AtomicUsize::new(0),
        posts: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new().fallback(uploads).with_state(st.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, st)
}

fn client_with(url: &str, key: &str, timeout: Duration) -> ApiClient {
    ApiClient::new(ClientConfig {
        url: url.to_string(),
        username: "alice".into(),
        api_key: Zeroizing::new(key.to_string()),
        ca_file: None,
        timeout,
    })
    .unwrap()
}

/// Feeds `len` bytes (`i % 251`) into a pipe from a thread, in writes of `step`,
/// pausing `pause` between writes; the thread returns the write error, if any.
fn feed(
    len: usize,
    step: usize,
    pause: Duration,
    fail_at: Option<usize>,
) -> (
    pipe::PipeBody,
    std::thread::JoinHandle<Option<io::ErrorKind>>,
) {
    use std::io::Write as _;
    let (mut w, body, _) = pipe::upload();
    let t = std::thread::spawn(move || {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        for (i, piece) in data.chunks(step).enumerate() {
            if fail_at == Some(i) {
                w.fail("the source broke");
                return None;
            }
            if let Err(e) = w.write_all(piece) {
                return Some(e.kind());
            }
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        w.finish().err().map(|e| e.kind())
    });
    (body, t)
}

/// Waits for a [`feed`] thread without blocking the runtime (which must run to drop
/// an aborted connection, and with it the body the thread writes into).
async fn joined(t: std::thread::JoinHandle<Option<io::ErrorKind>>) -> Option<io::ErrorKind> {
    tokio::task::spawn_blocking(move || t.join().unwrap())
        .await
        .unwrap()
}

fn expected_sum(len: usize) -> u64 {
    (0..len).map(|i| (i % 251) as u64).sum()
}

#[tokio::test]
async fn accepts_a_chunked_upload_after_one_preflight() {
    let (url, st) = upload_server(OnPost::Read).await;
    let mut c = client_with(&url, "the-key", Duration::from_secs(30));
    let len = 5 * 1024 * 1024 + 3;
    let (body, feeder) = feed(len, 100_000, Duration::ZERO, None);
    let r = c
        .send_stream(
            Method::POST,
            "/groups/g/clusters/c/snapshots",
            "application/octet-stream",
            body,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["len"], len);
    assert_eq!(v["sum"], expected_sum(len));
    assert_eq!(joined(feeder).await, None);
    assert_eq!(
        *st.posts.lock().unwrap(),
        vec![format!("complete {len} chunked=true")]
    );
    // GET without credentials (401), GET with, POST with: the body went once.
    assert_eq!(st.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn rejects_a_wrong_key_before_reading_the_body() {
    let (url, st) = upload_server(OnPost::Read).await;
    let mut c = client_with(&url, "wrong", Duration::from_secs(30));
    let (w, body, _) = pipe::upload();
    let r = c
        .send_stream(Method::POST, "/s", "application/octet-stream", body)
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(r.credentials_refused);
    assert!(st.posts.lock().unwrap().is_empty());
    // The body was dropped unsent: writing into it fails at once.
    std::thread::spawn(move || {
        let mut w = w;
        use std::io::Write as _;
        assert!(w.write_all(&vec![0; 2 * pipe::PIECE]).is_err());
    })
    .join()
    .unwrap();
}

#[tokio::test]
async fn rejects_an_upload_whose_source_fails_and_the_server_sees_it_cut_short() {
    let (url, st) = upload_server(OnPost::Read).await;
    let mut c = client_with(&url, "the-key", Duration::from_secs(30));
    let (body, feeder) = feed(4 * 1024 * 1024, 300_000, Duration::ZERO, Some(5));
    let e = c
        .send_stream(Method::POST, "/s", "application/x-tar", body)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Http { .. }), "{e}");
    assert_eq!(joined(feeder).await, None);
    // The server's read of the body failed: it never saw a complete one.
    for _ in 0..100 {
        if !st.posts.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*st.posts.lock().unwrap(), vec!["incomplete".to_string()]);
}

#[tokio::test]
async fn accepts_an_early_answer_and_releases_the_writer() {
    let (url, _st) = upload_server(OnPost::Refuse).await;
    let mut c = client_with(&url, "the-key", Duration::from_secs(30));
    let (body, feeder) = feed(64 * 1024 * 1024, 1 << 20, Duration::ZERO, None);
    // The answer reaches the caller although most of the body was never sent.
    let r = c
        .send_stream(Method::POST, "/s", "application/octet-stream", body)
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert!(String::from_utf8_lossy(&r.body).contains("CANNOT_BACKUP_ENCRYPTION_DISABLED"));
    // The writer does not hang on a body nobody reads.
    assert_eq!(joined(feeder).await, Some(io::ErrorKind::BrokenPipe));
}

#[tokio::test]
async fn accepts_a_slow_source_as_no_stall() {
    let (url, st) = upload_server(OnPost::Read).await;
    let mut c = client_with(&url, "the-key", Duration::from_millis(300));
    // Each pause is longer than the timeout: the source is slow, not the connection.
    let (body, feeder) = feed(
        3 * pipe::PIECE,
        pipe::PIECE,
        Duration::from_millis(700),
        None,
    );
    let r = c
        .send_stream(Method::POST, "/s", "application/octet-stream", body)
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(joined(feeder).await, None);
    assert_eq!(st.posts.lock().unwrap().len(), 1);
}

/// A server that answers the first connection's GET with 200 (no authentication)
/// and then accepts uploads without ever reading them.
async fn stalling_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        let mut first = true;
        while let Ok((mut s, _)) = listener.accept().await {
            if first {
                first = false;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                    )
                    .await;
            } else {
                held.push(s);
            }
        }
    });
    url
}

#[tokio::test]
async fn rejects_a_stalled_upload_after_the_timeout() {
    let url = stalling_server().await;
    let mut c = client_with(&url, "k", Duration::from_millis(300));
    let (body, feeder) = feed(256 * 1024 * 1024, 1 << 20, Duration::ZERO, None);
    let e = c
        .send_stream(Method::POST, "/s", "application/octet-stream", body)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("no progress"), "{e}");
    assert_eq!(joined(feeder).await, Some(io::ErrorKind::BrokenPipe));
}

// ---------------------------------------------------------------------------------
// Downloads.

struct Downloads {
    authorization_seen: AtomicUsize,
}

async fn downloads(State(st): State<Arc<Downloads>>, req: Request) -> Response {
    if req.headers().contains_key(header::AUTHORIZATION) {
        st.authorization_seen.fetch_add(1, Ordering::SeqCst);
    }
    match req.uri().path() {
        "/restore/used" => (
            StatusCode::GONE,
            r#"{"error":410,"errorCode":"RESOURCE_NOT_FOUND","detail":"used"}"#,
        )
            .into_response(),
        _ => {
            let data: Vec<u8> = (0..3 * 1024 * 1024 + 5).map(|i| (i % 251) as u8).collect();
            let mut resp = data.into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar; charset=binary"),
            );
            resp
        }
    }
}

async fn download_server() -> (String, Arc<Downloads>) {
    let st = Arc::new(Downloads {
        authorization_seen: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .fallback(downloads)
        .with_state(st.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, st)
}

#[tokio::test]
async fn accepts_a_download_in_pieces_without_credentials() {
    let (url, st) = download_server().await;
    let mut c = client_with(&url, "the-key", Duration::from_secs(30));
    for link in [
        format!("{url}/restore/x?token=abc"),
        "/restore/y?token=def".to_string(),
    ] {
        let mut r = c.get_stream(&link, "restore download link").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type().as_deref(), Some("application/x-tar"));
        let len = 3 * 1024 * 1024 + 5;
        assert_eq!(r.content_length(), Some(len as u64));
        let (mut got, mut sum, mut pieces) = (0usize, 0u64, 0);
        while let Some(piece) = r.chunk().await.unwrap() {
            got += piece.len();
            sum += piece.iter().map(|&b| u64::from(b)).sum::<u64>();
            pieces += 1;
        }
        assert_eq!((got, sum), (len, expected_sum(len)));
        assert!(pieces > 1, "streamed, not read whole");
    }
    assert_eq!(st.authorization_seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn accepts_an_error_answer_to_a_download_as_a_response() {
    let (url, _) = download_server().await;
    let mut c = client_with(&url, "the-key", Duration::from_secs(30));
    let r = c
        .get_stream(&format!("{url}/restore/used"), "restore download link")
        .await
        .unwrap();
    assert_eq!(r.status, 410);
    let r = r.into_response().await.unwrap();
    assert!(String::from_utf8_lossy(&r.body).contains("RESOURCE_NOT_FOUND"));
}

#[tokio::test]
async fn rejects_a_download_cut_short() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                .await;
            let _ = s.write_all(&[1u8; 5000]).await;
            // Closed after 5000 of the 100000 bytes announced.
        }
    });
    let mut c = client_with(&url, "k", Duration::from_secs(30));
    let mut r = c.get_stream(&format!("{url}/d"), "link").await.unwrap();
    let mut got = 0;
    let e = loop {
        match r.chunk().await {
            Ok(Some(p)) => got += p.len(),
            Ok(None) => panic!("a body cut short ended normally after {got} bytes"),
            Err(e) => break e,
        }
    };
    assert!(matches!(e, ClientError::Http { .. }), "{e}");
    assert!(got <= 5000);
}
