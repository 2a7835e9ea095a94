//! Serving the router over TCP or TLS connections, with timeouts on every connection.
//!
//! `axum::serve` sets no timer on hyper's connections, so a client that sends half a
//! request head, or a body that stops, holds its connection (and whatever its handler
//! holds, such as a cluster's backup lock) for as long as it likes. [`serve`] is the
//! same accept loop with [`Timeouts`]:
//!
//! - `header_read`: the whole request head must arrive within this time of the
//!   connection's first byte, and an idle kept-alive connection is closed after it
//!   (hyper's `header_read_timeout`, which runs from the moment the connection waits for
//!   a head); slowloris connections trickling a head are closed.
//! - `body_read`: a request body that delivers nothing for this long, while the
//!   handler waits for it, fails (tower-http's `TimeoutBody`); the handler sees an
//!   error, gives up what it held and answers, and the connection is closed.
//!
//! Graceful shutdown as `axum::serve` does it: stop accepting when `shutdown`
//! completes, let every open connection finish its request, then return.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt as _;

use crate::PeerAddr;

/// Variable for [`Timeouts::header_read`], whole seconds.
pub const HEADER_TIMEOUT_ENV: &str = "HEADLOCK_HTTP_HEADER_TIMEOUT_SECS";
/// Variable for [`Timeouts::body_read`], whole seconds.
pub const BODY_TIMEOUT_ENV: &str = "HEADLOCK_HTTP_BODY_TIMEOUT_SECS";
/// Largest value of either variable (one hour).
const MAX_TIMEOUT_SECS: u64 = 3600;

/// How long a connection may keep the server waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To receive a whole request head, and to keep an idle connection (default 30 s).
    pub header_read: Duration,
    /// Longest silence of a request body the handler waits on (default 60 s).
    pub body_read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(30),
            body_read: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// The defaults, changed by [`HEADER_TIMEOUT_ENV`] and [`BODY_TIMEOUT_ENV`] (whole
    /// seconds from 1 to 3600); `Err` names the variable and the value refused.
    pub fn from_env() -> Result<Timeouts, String> {
        let mut t = Timeouts::default();
        for (var, field) in [
            (HEADER_TIMEOUT_ENV, &mut t.header_read),
            (BODY_TIMEOUT_ENV, &mut t.body_read),
        ] {
            if let Some(d) = headlock_core::env::seconds(var, MAX_TIMEOUT_SECS)? {
                *field = d;
            }
        }
        Ok(t)
    }
}

/// Serves `app` on `listener` (HTTP/1.1; plain TCP or [`crate::tls_listener`]) until
/// `shutdown` completes and the open connections have finished. Each request carries
/// `ConnectInfo<PeerAddr>`.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send,
) where
    L: Listener<Addr = std::net::SocketAddr>,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let body_read = timeouts.body_read;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req =
                req.map(|b| Body::new(tower_http::timeout::TimeoutBody::new(body_read, b)));
            req.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {})) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header_read)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
