//! Headlock's HTTP API: the Ops Manager public API v1.0 for what Headlock shares with it,
//! and Headlock's extensions under the same base and conventions.
//!
//! The layer is thin: each resource module parses a request, calls one
//! [`headlock_service::Service`] method and renders the result. Everything about the
//! wire lives here:
//!
//! | module | what |
//! |---|---|
//! | [`auth`] | HTTP Digest (realm `MMS Public API`), throttling, access lists |
//! | [`middleware`] | authentication of every request, service-version header |
//! | [`metrics`] | Prometheus recorder, per-route request metrics, `GET /metrics` |
//! | [`health`] | `GET /health` and `GET /ready` from the service's health monitor |
//! | [`json`] | links, lists and paging, `pretty`, `envelope`, the JSON body extractor |
//! | [`error`] | [`ApiError`], Ops Manager's error body |
//! | [`tls_listener`] | HTTPS on the API port (rustls, handshakes off the accept path) |
//! | [`server`] | the accept loop, with header, idle and body read timeouts on every connection |
//! | [`routes`] | the route table: every route is mounted through it and recorded |
//! | [`openapi`] | the OpenAPI 3.1 document of every route, `GET /api/public/v1.0/openapi.json` |
//! | [`console`] | the web console at `/`: server-rendered HTML, sessions, CSRF (routes kept out of the OpenAPI table) |
//! | [`groups`], [`clusters`], [`backup_configs`], [`events`], [`snapshots`], [`uploads`], [`restore_jobs`], [`reencryption`] | one module per resource, each with its `router()` (a [`routes::Routes`]) |
//!
//! [`app`] builds the router, so tests can drive it without a socket; the binary serves
//! it over TCP or TLS with [`server::serve`]. [`app_with`] adds the unauthenticated
//! operations endpoints (`/health`, `/ready`, `/metrics`) given in [`Ops`], and with a
//! health monitor the authenticated `/api/public/v1.0/health` (the check in detail).
#![deny(missing_docs)]

pub mod auth;
pub mod backup_configs;
pub mod clusters;
pub mod console;
pub mod error;
pub mod events;
pub mod groups;
pub mod health;
pub mod json;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod reencryption;
pub mod restore_jobs;
pub mod routes;
pub mod server;
pub mod snapshots;
pub mod tls_listener;
pub mod uploads;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::{Extension, Router};
use headlock_service::Service;

use routes::Routes;

pub use error::ApiError;

/// Largest request body accepted on every route but one (JSON bodies are small). The
/// snapshot upload (`POST .../snapshots`, [`snapshots::router`]) lifts it: that body is
/// streamed, never held whole, and has no size limit (docs/api.md, "Snapshots").
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach: one `Arc`, so that the per-request clones axum makes
/// of the state cost one atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The contents of [`AppState`].
pub struct Shared {
    /// The service.
    pub service: Service,
    /// Digest authentication.
    pub auth: auth::DigestAuthenticator,
    /// Failed-attempt throttling.
    pub throttle: auth::Throttle,
    /// `scheme://host[:port]` for links, when configured; otherwise from `Host`.
    pub public_origin: Option<String>,
    /// `http` or `https`, for links built from `Host`.
    pub scheme: &'static str,
}

impl AppState {
    /// Shares `shared` between all requests.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The peer's address, as `ConnectInfo<PeerAddr>`: works for any listener whose
/// address is a socket address (plain TCP and the binary's TLS listener alike).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tls_listener::TlsListener>,
    > for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls_listener::TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// What the unauthenticated operations endpoints serve; each is mounted only when given.
#[derive(Clone, Debug, Default)]
pub struct Ops {
    /// `GET /health` and `GET /ready` report this monitor's latest check.
    pub health: Option<headlock_service::health::HealthMonitor>,
    /// `GET /metrics` renders this recorder.
    pub metrics: Option<metrics::Metrics>,
}

/// The whole API, without the operations endpoints (see [`app_with`]).
pub fn app(state: AppState) -> Router {
    app_with(state, Ops::default())
}

/// The whole API, with `/health`, `/ready` and `/metrics` as given in `ops` (no
/// authentication on those three). Every request is counted and timed under its
/// route's template (see [`metrics`]), whether or not `/metrics` is mounted.
pub fn app_with(state: AppState, ops: Ops) -> Router {
    app_and_routes(state, ops).0
}

/// [`app_with`], and the `(method, path template)` of every route it mounts, sorted (see
/// [`routes`]); the OpenAPI document describes exactly these ([`openapi::check`]).
pub fn app_and_routes(state: AppState, ops: Ops) -> (Router, Vec<(Method, String)>) {
    let mut api = Routes::new()
        .merge(groups::router())
        .merge(clusters::router())
        .merge(backup_configs::router())
        .merge(events::router())
        .merge(snapshots::router())
        .merge(uploads::router())
        .merge(restore_jobs::router())
        .merge(reencryption::router())
        .get(openapi::PATH, openapi::serve);
    if let Some(monitor) = &ops.health {
        // The health check in detail, behind authentication like the rest of the API.
        let monitor = monitor.clone();
        api = api.get(
            "/health",
            move |Extension(actor): Extension<headlock_service::Actor>| {
                let monitor = monitor.clone();
                async move { health::detail(&monitor, &actor) }
            },
        );
    }
    let auth_state = state.clone();
    let api = api.map(|r| {
        r.layer(axum::middleware::from_fn_with_state(
            auth_state,
            middleware::authenticate,
        ))
    });
    let mut routes = Routes::new()
        .nest(json::BASE, api)
        .merge(restore_jobs::download_router());
    if let Some(monitor) = ops.health {
        let ready = monitor.clone();
        routes = routes
            .get("/health", move || {
                let monitor = monitor.clone();
                async move { health::health(&monitor) }
            })
            .get("/ready", move || {
                let monitor = ready.clone();
                async move { health::ready(&monitor) }
            });
    }
    if let Some(recorder) = ops.metrics {
        routes = routes.get("/metrics", move || {
            let recorder = recorder.clone();
            async move { metrics::render_response(&recorder) }
        });
    }
    let (router, table) = routes.into_parts();
    // The console's HTML routes are mounted beside the API's but not listed in `table`:
    // the OpenAPI document describes the API, not the browser's pages (console module).
    let (console, _) = console::routes().into_parts();
    let router = router
        .merge(console)
        .fallback(|uri: axum::http::Uri| async move { ApiError::no_route(uri.path()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(
            middleware::add_version_header,
        ))
        // Outermost, so it sees every answer (401s, 404s, body-limit 413s) with its
        // final status; `Router::layer` runs after routing, so the route is known.
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state);
    (router, table)
}
