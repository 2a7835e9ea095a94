//! A closed-loop load: each client one kept-alive connection with HTTP Digest (the
//! nonce reused with an increasing `nc`, as curl does), sending its one request again
//! as soon as the previous answer is in, for a warm-up and then a measured window.
//!
//! Clients are independent: each has its own server address and request, so one load
//! can spread connections over several nodes, or have each client rotate a cluster of
//! its own. Every answer must have the client's expected status (and, when given, its
//! expected body); anything else stops the whole load with the status and the body
//! ([`LoadError`]). Only requests sent inside the measured window and answered before
//! its end are counted; the 401 round trips of the digest exchange are counted apart.
//!
//! ```no_run
//! # async fn demo(addr: std::net::SocketAddr, key: &str) -> Result<(), bench::load::LoadError> {
//! use std::time::Duration;
//! use bench::load::{Client, Window};
//!
//! let uri = "/api/public/v1.0/groups".to_string();
//! let clients = vec![Client::new(addr, "GET", uri, 200); 4];
//! let window = Window::after(Duration::from_millis(50), Duration::from_secs(1), Duration::from_secs(5));
//! let report = bench::load::run(&clients, "bench", key, &window, None).await?;
//! println!("{:.0} requests/s", report.per_second(&window));
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::rest::{Api, RestError, describe};
use crate::stats::Samples;

/// Most time one request may take before the load is aborted.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Latency samples reserved per client and second (more are still kept).
const SAMPLES_PER_SECOND: f64 = 50_000.0;
/// Most samples reserved up front per client.
const MAX_RESERVED: usize = 1 << 22;

/// Why a load stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A request failed or answered an unexpected status.
    #[error("client {client}: {source}")]
    Request {
        /// Index of the client.
        client: usize,
        /// What went wrong.
        source: RestError,
    },
    /// An answer had the expected status but another body.
    #[error("client {client}: {method} {uri} on {addr} answered a different body: {detail}")]
    Body {
        /// Index of the client.
        client: usize,
        /// Request method.
        method: String,
        /// Request target.
        uri: String,
        /// The server.
        addr: SocketAddr,
        /// The status and the start of the body.
        detail: String,
    },
    /// A request took longer than [`REQUEST_TIMEOUT`].
    #[error("client {client}: {method} {uri} on {addr} took longer than {REQUEST_TIMEOUT:?}")]
    Timeout {
        /// Index of the client.
        client: usize,
        /// Request method.
        method: String,
        /// Request target.
        uri: String,
        /// The server.
        addr: SocketAddr,
    },
    /// The stop flag was raised.
    #[error("the load was interrupted")]
    Stopped,
    /// A client task panicked (a bug of this crate).
    #[error("a load client panicked: {0}")]
    Panicked(String),
}

/// What one client sends, where, and what it must get back.
#[derive(Debug, Clone)]
pub struct Client {
    /// The server.
    pub addr: SocketAddr,
    /// Request method.
    pub method: String,
    /// Request target.
    pub uri: String,
    /// The status every answer must have.
    pub status: u16,
    /// The body every answer must have, when set.
    pub body: Option<Arc<[u8]>>,
}

impl Client {
    /// `method uri` on `addr`, expecting `status`, any body.
    pub fn new(addr: SocketAddr, method: &str, uri: String, status: u16) -> Client {
        Client {
            addr,
            method: method.into(),
            uri,
            status,
            body: None,
        }
    }

    /// Also expects exactly `body`.
    pub fn with_body(mut self, body: Arc<[u8]>) -> Client {
        self.body = Some(body);
        self
    }
}

/// When a load starts, starts counting, and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Clients are connected by then and send their first request.
    pub start: Instant,
    /// Requests sent from here on are counted.
    pub measure_from: Instant,
    /// No request is sent after this, and answers after it are not counted.
    pub end: Instant,
}

impl Window {
    /// Starts in `delay` (time to connect), warms up for `warmup`, measures for
    /// `duration`.
    pub fn after(delay: Duration, warmup: Duration, duration: Duration) -> Window {
        let start = Instant::now() + delay;
        let measure_from = start + warmup;
        Window {
            start,
            measure_from,
            end: measure_from + duration,
        }
    }

    /// The measured part.
    pub fn measured(&self) -> Duration {
        self.end - self.measure_from
    }
}

/// What a load measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Answers counted (sent inside the window and answered before its end).
    pub ok: u64,
    /// The same, per client, in the order of the clients.
    pub per_client: Vec<u64>,
    /// Round trips of the counted answers.
    pub samples: Samples,
    /// 401 round trips over the whole run (first nonce per connection, stale nonces).
    pub challenges: u64,
    /// How many of them were stale nonces.
    pub stale: u64,
}

impl Report {
    /// Counted answers per second of the measured window.
    pub fn per_second(&self, window: &Window) -> f64 {
        self.ok as f64 / window.measured().as_secs_f64()
    }
}

/// Runs every client from `window.start` to `window.end`, all with the credentials of
/// `username`; stops early on the first failure or when `stop` is raised.
pub async fn run(
    clients: &[Client],
    username: &str,
    api_key: &str,
    window: &Window,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Report, LoadError> {
    let mut tasks = JoinSet::new();
    for (index, client) in clients.iter().enumerate() {
        let client = client.clone();
        let (username, api_key) = (
            username.to_string(),
            zeroize::Zeroizing::new(api_key.to_string()),
        );
        let window = *window;
        let stop = stop.clone();
        tasks.spawn(async move {
            let r = one_client(&client, &username, &api_key, &window, stop.as_deref()).await;
            (index, r)
        });
    }
    let mut total = Report {
        per_client: vec![0; clients.len()],
        ..Report::default()
    };
    while let Some(joined) = tasks.join_next().await {
        // On the first error, dropping `tasks` aborts the other clients.
        let (index, r) = joined.map_err(|e| LoadError::Panicked(e.to_string()))?;
        let r = r.map_err(|e| match e {
            ClientError::Rest(source) => LoadError::Request {
                client: index,
                source,
            },
            ClientError::Body(detail) => LoadError::Body {
                client: index,
                method: clients[index].method.clone(),
                uri: clients[index].uri.clone(),
                addr: clients[index].addr,
                detail,
            },
            ClientError::Timeout => LoadError::Timeout {
                client: index,
                method: clients[index].method.clone(),
                uri: clients[index].uri.clone(),
                addr: clients[index].addr,
            },
            ClientError::Stopped => LoadError::Stopped,
        })?;
        total.ok += r.ok;
        total.per_client[index] = r.ok;
        total.challenges += r.challenges;
        total.stale += r.stale;
        total.samples.extend(r.samples);
    }
    Ok(total)
}

enum ClientError {
    Rest(RestError),
    Body(String),
    Timeout,
    Stopped,
}

async fn one_client(
    client: &Client,
    username: &str,
    api_key: &str,
    window: &Window,
    stop: Option<&AtomicBool>,
) -> Result<Report, ClientError> {
    let reserve = (window.measured().as_secs_f64() * SAMPLES_PER_SECOND) as usize;
    let mut report = Report {
        samples: Samples::with_capacity(reserve.min(MAX_RESERVED)),
        ..Report::default()
    };
    let mut api = Api::connect(client.addr, username, api_key)
        .await
        .map_err(ClientError::Rest)?;
    tokio::time::sleep_until(window.start.into()).await;
    loop {
        let sent = Instant::now();
        if sent >= window.end {
            break;
        }
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Err(ClientError::Stopped);
        }
        let ex = tokio::time::timeout(
            REQUEST_TIMEOUT,
            api.exchange(&client.method, &client.uri, "", client.status),
        )
        .await
        .map_err(|_| ClientError::Timeout)?
        .map_err(ClientError::Rest)?;
        report.challenges += u64::from(ex.challenges);
        report.stale += u64::from(ex.stale);
        if let Some(body) = &client.body
            && ex.response.body[..] != body[..]
        {
            return Err(ClientError::Body(describe(&ex.response)));
        }
        if sent >= window.measure_from && Instant::now() <= window.end {
            report.ok += 1;
            report.samples.push(ex.elapsed);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use axum::http::StatusCode;

    use super::*;

    /// A server whose one route answers 200 `{"n":1}` until `fail_after` answers, then
    /// `fail_status` with `{"detail":"boom"}`.
    async fn server(fail_after: u64, fail_status: StatusCode) -> SocketAddr {
        let count = Arc::new(AtomicU64::new(0));
        let app = axum::Router::new().route(
            "/x",
            axum::routing::any(move || {
                let count = count.clone();
                async move {
                    if count.fetch_add(1, Ordering::SeqCst) >= fail_after {
                        (fail_status, r#"{"detail":"boom"}"#)
                    } else {
                        (StatusCode::OK, r#"{"n":1}"#)
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn window() -> Window {
        Window::after(
            Duration::from_millis(20),
            Duration::from_millis(20),
            Duration::from_millis(200),
        )
    }

    #[tokio::test]
    async fn accepts_clients_spread_over_two_servers_and_counts_each() {
        let (a, b) = (
            server(u64::MAX, StatusCode::OK).await,
            server(u64::MAX, StatusCode::OK).await,
        );
        let body: Arc<[u8]> = Arc::from(&br#"{"n":1}"#[..]);
        let clients: Vec<Client> = (0..4)
            .map(|i| {
                Client::new(if i % 2 == 0 { a } else { b }, "PUT", "/x".into(), 200)
                    .with_body(body.clone())
            })
            .collect();
        let r = run(&clients, "u", "k", &window(), None).await.unwrap();
        assert_eq!(r.per_client.len(), 4);
        assert!(r.per_client.iter().all(|&n| n > 0), "{:?}", r.per_client);
        assert_eq!(r.per_client.iter().sum::<u64>(), r.ok);
        assert_eq!(r.samples.len() as u64, r.ok);
        assert_eq!(r.challenges, 0);
    }

    #[tokio::test]
    async fn rejects_unexpected_status_with_its_body() {
        let addr = server(3, StatusCode::CONFLICT).await;
        let clients = [Client::new(addr, "PUT", "/x".into(), 200)];
        let e = run(&clients, "u", "k", &window(), None).await.unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(
                &e,
                LoadError::Request {
                    client: 0,
                    source: RestError::Status { response, expected: 200, .. }
                } if response.status == 409
            ),
            "{text}"
        );
        assert!(text.contains("boom"), "{text}");
    }

    #[tokio::test]
    async fn rejects_different_body() {
        let addr = server(u64::MAX, StatusCode::OK).await;
        let clients = [Client::new(addr, "GET", "/x".into(), 200).with_body(Arc::from(&b"{}"[..]))];
        let e = run(&clients, "u", "k", &window(), None).await.unwrap_err();
        assert!(matches!(e, LoadError::Body { client: 0, .. }), "{e}");
    }

    #[tokio::test]
    async fn rejects_raised_stop_flag() {
        let addr = server(u64::MAX, StatusCode::OK).await;
        let clients = [Client::new(addr, "GET", "/x".into(), 200)];
        let stop = Arc::new(AtomicBool::new(true));
        let e = run(&clients, "u", "k", &window(), Some(stop))
            .await
            .unwrap_err();
        assert!(matches!(e, LoadError::Stopped), "{e}");
    }
}
