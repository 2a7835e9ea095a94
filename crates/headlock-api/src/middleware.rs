//! The request pipeline around every handler: digest authentication, throttling, access
//! lists, and the headers Ops Manager clients expect.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use headlock_service::Actor;

use crate::auth::{AuthError, UserDigestSecrets, Verified, access_list_allows};
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

pub(crate) fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<crate::PeerAddr>>()
        .map(|c| c.0.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Authenticates the request (HTTP Digest) and puts the [`Actor`] in its extensions.
///
/// A refused request's body is read and thrown away first (at most
/// [`REFUSED_BODY_DRAIN`] bytes, see [`finish_refusal`]): digest clients send a `POST`
/// with its body, read the 401 and send it again on the same connection.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match admit(&state, &parts).await {
        Ok(actor) => {
            parts.extensions.insert(actor);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(refusal) => finish_refusal(refusal, &parts, body).await,
    }
}

/// Most bytes of a refused request's body read to keep its connection open.
pub const REFUSED_BODY_DRAIN: usize = crate::MAX_BODY_BYTES;
/// Longest time spent reading them.
const REFUSED_BODY_TIME: Duration = Duration::from_secs(5);

/// Sends a refusal (401, 403, 429) of a request whose body nobody read.
///
/// If the server answered and then closed the connection because a body was left
/// unread (what hyper does), a client that sent the body after the headers, or that
/// reuses the kept-alive connection for its authenticated retry (Python `requests`),
/// sees the connection drop: `RemoteDisconnected`, or a reset that loses the answer
/// itself. So a small body (at most [`REFUSED_BODY_DRAIN`] bytes, within 5 s) is read
/// and discarded and the connection stays usable; a larger one, a slow one, or one the
/// client waits to send (`Expect: 100-continue`) is not read, and the answer says
/// `Connection: close` so that every client knows to open a new connection.
pub async fn finish_refusal(mut resp: Response, parts: &Parts, body: axum::body::Body) -> Response {
    let empty = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0")
        || (!parts.headers.contains_key(header::CONTENT_LENGTH)
            && !parts.headers.contains_key(header::TRANSFER_ENCODING));
    if empty {
        return resp;
    }
    let drained = !parts.headers.contains_key(header::EXPECT)
        && tokio::time::timeout(
            REFUSED_BODY_TIME,
            axum::body::to_bytes(body, REFUSED_BODY_DRAIN),
        )
        .await
        .is_ok_and(|r| r.is_ok());
    if !drained {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The checks of [`authenticate`]: the actor, or the answer that refuses the request.
async fn admit(state: &AppState, parts: &Parts) -> Result<Actor, Response> {
    let ip = client_ip(parts);
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(state, false));
    };
    let parsed = value
        .to_str()
        .map_err(|_| AuthError::NotDigest)
        .and_then(|v| state.auth.parse_authorization(v));
    let resp = match parsed {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%ip, error = %e, "unusable Authorization header");
            return Err(unauthorized(state, false));
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
        return Err(e.into_response());
    }
    let user = match state.service.users().user(&resp.username).await {
        Ok(u) => u,
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    // The target as received (before `nest` stripped the base), borrowed, not copied.
    let target = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .and_then(|u| u.0.path_and_query())
        .or_else(|| parts.uri.path_and_query())
        .map_or("/", |pq| pq.as_str());
    let method = parts.method.as_str();
    let now = SystemTime::now();
    let outcome = match user.as_deref().and_then(secrets_of) {
        Some(secrets) => match state.auth.check(method, target, &resp, &secrets, now) {
            Ok(verified) => claim_and_record(state, verified, now).await?,
            Err(e) => Err(e),
        },
        None => Err(state.auth.verify_unknown_user(method, target, &resp, now)),
    };
    if let Err(e) = outcome {
        if e.counts_as_failure() {
            tracing::info!(%ip, error = %e, "authentication failed");
            failed_login(state, &resp.username, ip, &e.to_string()).await;
        }
        return Err(unauthorized(state, e.is_stale()));
    }
    let user = user.expect("verified users exist");
    if let Err(e) = succeeded_login(state, &user, ip).await {
        return Err(e.into_response());
    }
    Ok(Actor {
        username: user.username.clone(),
        roles: user.roles.clone(),
        remote_address: Some(ip.to_string()),
    })
}

/// After a correct key (digest or the console's sign-in): clears the throttle's count,
/// then checks the user's access list (audited as `AUTHENTICATION_FAILED` when the
/// address is refused).
pub(crate) async fn succeeded_login(
    state: &AppState,
    user: &headlock_core::model::User,
    ip: IpAddr,
) -> Result<(), ApiError> {
    state
        .throttle
        .record_success(&user.username, ip, Instant::now());
    if access_list_allows(&user.access_list, ip) {
        return Ok(());
    }
    state
        .service
        .record_auth_failure(
            Some(&user.username),
            Some(&ip.to_string()),
            "address not on the access list",
        )
        .await;
    Err(refused_address(ip))
}

/// `IP_ADDRESS_NOT_ON_ACCESS_LIST` (403) for `ip`.
pub(crate) fn refused_address(ip: IpAddr) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::FORBIDDEN,
        "IP_ADDRESS_NOT_ON_ACCESS_LIST",
        format!("IP address {ip} is not allowed to access this resource."),
    );
    e.parameters = vec![ip.to_string()];
    e
}

/// Counts a failed login (a wrong key or an unknown user, through digest or the console's
/// sign-in form) against the throttle, raises the per-username alert, and audits it as
/// `AUTHENTICATION_FAILED` with `detail`.
pub(crate) async fn failed_login(state: &AppState, username: &str, ip: IpAddr, detail: &str) {
    let failure = state.throttle.record_failure(username, ip, Instant::now());
    if failure.alert {
        metrics::counter!(crate::metrics::AUTH_USER_ALERTS).increment(1);
        tracing::warn!(
            username = %username,
            failures = failure.user_failures,
            %ip,
            "many failed logins for one username from any address; requests from other addresses are still served"
        );
    }
    state
        .service
        .record_auth_failure(Some(username), Some(&ip.to_string()), detail)
        .await;
}

/// The replay check of a correct response: the first use of a nonce in this process
/// claims it in the shared store (another process's nonce is stale), then the count
/// is recorded in memory. `Err` only when the store could not be asked.
async fn claim_and_record(
    state: &AppState,
    verified: Verified,
    now: SystemTime,
) -> Result<Result<(), AuthError>, Response> {
    if let Some(claim) = state.auth.claim_of(&verified) {
        let until = time::OffsetDateTime::from(claim.until);
        match state
            .service
            .users()
            .claim_digest_nonce(&claim.nonce, &claim.holder, until)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Ok(Err(AuthError::Stale)),
            Err(e) => return Err(ApiError::from(e).into_response()),
        }
    }
    Ok(state.auth.record(verified, now))
}

pub(crate) fn secrets_of(user: &headlock_core::model::User) -> Option<UserDigestSecrets> {
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
