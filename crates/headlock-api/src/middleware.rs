//! The request pipeline around every handler: digest authentication, throttling, access
//! lists, and the headers Ops Manager clients expect.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use headlock_service::Actor;

use crate::auth::{AuthError, UserDigestSecrets, access_list_allows};
use crate::{ApiError, AppState};

/// `X-MongoDB-Service-Version`, which some Ops Manager clients read.
pub const SERVICE_VERSION: &str = concat!(
    "gitHash=headlock; versionString=",
    env!("CARGO_PKG_VERSION")
);

/// The digest challenge, with Ops Manager's body for it (which, unlike other errors,
/// has no `errorCode`).
fn unauthorized(state: &AppState, stale: bool) -> Response {
    let body = serde_json::json!({
        "error": 401,
        "reason": "Unauthorized",
        "detail": "You are not authorized for this resource.",
    });
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        crate::json::body_bytes(&body, false),
    )
        .into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for challenge in state.auth.challenge(stale) {
        headers.append(header::WWW_AUTHENTICATE, challenge);
    }
    resp
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<crate::PeerAddr>>()
        .map(|c| c.0.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Authenticates the request (HTTP Digest) and puts the [`Actor`] in its extensions.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(&req);
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return unauthorized(&state, false);
    };
    let parsed = value
        .to_str()
        .map_err(|_| AuthError::NotDigest)
        .and_then(|v| state.auth.parse_authorization(v));
    let resp = match parsed {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%ip, error = %e, "unusable Authorization header");
            return unauthorized(&state, false);
        }
    };
    if let Err(retry) = state.throttle.check(&resp.username, ip, Instant::now()) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "Too many failed authentication attempts; retry later.",
        );
        if let Ok(v) = HeaderValue::from_str(&retry.seconds().to_string()) {
            e.headers.push((header::RETRY_AFTER, v));
        }
        return e.into_response();
    }
    let user = match state.service.users().user(&resp.username).await {
        Ok(u) => u,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let outcome = {
        // The target as received (before `nest` stripped the base), borrowed, not copied.
        let target = req
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .and_then(|u| u.0.path_and_query())
            .or_else(|| req.uri().path_and_query())
            .map_or("/", |pq| pq.as_str());
        let method = req.method().as_str();
        let now = SystemTime::now();
        match user.as_deref().and_then(secrets_of) {
            Some(secrets) => state.auth.verify(method, target, &resp, &secrets, now),
            None => Err(state.auth.verify_unknown_user(method, target, &resp, now)),
        }
    };
    if let Err(e) = outcome {
        if e.counts_as_failure() {
            state
                .throttle
                .record_failure(&resp.username, ip, Instant::now());
            tracing::info!(%ip, error = %e, "authentication failed");
            state
                .service
                .record_auth_failure(Some(&resp.username), Some(&ip.to_string()), &e.to_string())
                .await;
        }
        return unauthorized(&state, e.is_stale());
    }
    let user = user.expect("verified users exist");
    state
        .throttle
        .record_success(&user.username, ip, Instant::now());
    if !access_list_allows(&user.access_list, ip) {
        state
            .service
            .record_auth_failure(
                Some(&user.username),
                Some(&ip.to_string()),
                "address not on the access list",
            )
            .await;
        let mut e = ApiError::new(
            StatusCode::FORBIDDEN,
            "IP_ADDRESS_NOT_ON_ACCESS_LIST",
            format!("IP address {ip} is not allowed to access this resource."),
        );
        e.parameters = vec![ip.to_string()];
        return e.into_response();
    }
    req.extensions_mut().insert(Actor {
        username: user.username.clone(),
        roles: user.roles.clone(),
        remote_address: Some(ip.to_string()),
    });
    next.run(req).await
}

fn secrets_of(user: &headlock_core::model::User) -> Option<UserDigestSecrets> {
    Some(UserDigestSecrets {
        ha1_md5: user.ha1_md5.as_slice().try_into().ok()?,
        ha1_sha256: user.ha1_sha256.as_slice().try_into().ok()?,
    })
}

/// Adds `X-MongoDB-Service-Version` to every response.
pub async fn add_version_header(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "x-mongodb-service-version",
        HeaderValue::from_static(SERVICE_VERSION),
    );
    resp
}
