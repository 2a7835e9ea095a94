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
//! | [`json`] | links, lists and paging, `pretty`, `envelope`, the JSON body extractor |
//! | [`error`] | [`ApiError`], Ops Manager's error body |
//! | [`tls_listener`] | HTTPS on the API port (rustls, handshakes off the accept path) |
//! | [`groups`], [`clusters`], [`backup_configs`], [`events`], [`snapshots`], [`restore_jobs`] | one module per resource, each with its `router()` |
//!
//! [`app`] builds the router, so tests can drive it without a socket; the binary serves
//! it over TCP or TLS.
#![deny(missing_docs)]

pub mod auth;
pub mod backup_configs;
pub mod clusters;
pub mod error;
pub mod events;
pub mod groups;
pub mod json;
pub mod middleware;
pub mod restore_jobs;
pub mod snapshots;
pub mod tls_listener;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use headlock_service::Service;

pub use error::ApiError;

/// Largest request body accepted (JSON bodies are small; snapshot uploads will have
/// their own limit).
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

/// The whole API.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(groups::router())
        .merge(clusters::router())
        .merge(backup_configs::router())
        .merge(events::router())
        .merge(snapshots::router())
        .merge(restore_jobs::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate,
        ));
    Router::new()
        .nest(json::BASE, api)
        .merge(restore_jobs::download_router())
        .fallback(|uri: axum::http::Uri| async move { ApiError::no_route(uri.path()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(
            middleware::add_version_header,
        ))
        .with_state(state)
}
