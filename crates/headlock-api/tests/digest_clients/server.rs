//! A small axum server protected by the digest module, as the API layer will wire
//! it: challenge on 401, 429 from the throttle, 403 from the access list, and a log
//! of what each request carried so tests can tell a nonce reuse from a fresh 401.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use headlock_api::auth::{
    AuthError, DigestAuthenticator, Throttle, ThrottleConfig, UserDigestSecrets,
    access_list_allows, derive_secrets, parse_authorization,
};
use serde_json::{Value, json};

/// One user of the in-memory store: only the derived secrets are kept.
pub struct User {
    pub secrets: UserDigestSecrets,
    pub access_list: Vec<String>,
}

/// What one request looked like to the middleware.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub status: u16,
    /// `nc` as sent, when the request carried parsable credentials.
    pub nc: Option<String>,
    /// The nonce, when the request carried parsable credentials.
    pub nonce: Option<String>,
    pub algorithm: Option<String>,
}

pub struct AppState {
    pub auth: DigestAuthenticator,
    pub throttle: Throttle,
    pub users: HashMap<String, User>,
    pub seen: Mutex<Vec<Seen>>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    _rt: tokio::runtime::Runtime,
}

impl TestServer {
    /// Starts a server on 127.0.0.1:0 with these (username, key, access list) users.
    pub fn start(users: &[(&str, &str, &[&str])]) -> TestServer {
        Self::start_with(users, Duration::from_secs(300), ThrottleConfig::default())
    }

    /// Starts a server with this nonce lifetime and throttle tuning.
    pub fn start_with(
        users: &[(&str, &str, &[&str])],
        nonce_ttl: Duration,
        throttle: ThrottleConfig,
    ) -> TestServer {
        let secret: [u8; 32] = rand::random();
        let users = users
            .iter()
            .map(|(u, k, acl)| {
                let user = User {
                    secrets: derive_secrets(u, k),
                    access_list: acl.iter().map(|s| s.to_string()).collect(),
                };
                (u.to_string(), user)
            })
            .collect();
        let state = Arc::new(AppState {
            auth: DigestAuthenticator::new(secret, nonce_ttl),
            throttle: Throttle::new(throttle),
            users,
            seen: Mutex::new(Vec::new()),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let app = app(state.clone());
        rt.spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve");
        });
        TestServer {
            addr,
            state,
            _rt: rt,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

pub const GROUP: &str = "5e1a2b3c4d5e6f7a8b9c0d1e";
pub const CLUSTER: &str = "5e1a2b3c4d5e6f7a8b9c0d1f";
pub const KEY_UUID: &str = "4f5b7c3e-0d7a-4c1b-9a3e-2b8c6d1e0f42";

pub fn key_path() -> String {
    format!("/api/public/v1.0/groups/{GROUP}/backupConfigs/{CLUSTER}/encryptionKey")
}

/// The JSON the GET answers (the PUT answers the same minus the key id).
pub fn key_body(group: &str, cluster: &str) -> Value {
    let base = format!("http://127.0.0.1/api/public/v1.0/groups/{group}");
    json!({
        "clusterId": cluster,
        "groupId": group,
        "encryptionKeyUUID": KEY_UUID,
        "links": [
            {"href": format!("{base}/backupConfigs/{cluster}/encryptionKey"), "rel": "self"},
            {"href": format!("{base}/clusters/{cluster}"), "rel": "http://mms.mongodb.com/cluster"},
            {"href": base, "rel": "http://mms.mongodb.com/group"},
        ],
    })
}

fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/api/public/v1.0/groups/{group}/backupConfigs/{cluster}/encryptionKey",
            get(get_key).put(put_key),
        )
        .route(
            "/api/public/v1.0/groups/{group}/backupConfigs/{cluster}/redirect",
            get(redirect_to_key),
        )
        .layer(middleware::from_fn_with_state(state.clone(), digest_layer))
        .with_state(state)
}

/// `302` to the key (with a query), so curl follows it on the same handle and
/// answers with its cached nonce and the next `nc`.
async fn redirect_to_key(Path((group, cluster)): Path<(String, String)>) -> Response {
    let to = format!(
        "/api/public/v1.0/groups/{group}/backupConfigs/{cluster}/encryptionKey?pretty=true"
    );
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn get_key(Path((group, cluster)): Path<(String, String)>) -> Json<Value> {
    Json(key_body(&group, &cluster))
}

async fn put_key(Path((group, cluster)): Path<(String, String)>) -> (StatusCode, Json<Value>) {
    let mut body = key_body(&group, &cluster);
    if let Some(o) = body.as_object_mut() {
        o.remove("encryptionKeyUUID");
    }
    (StatusCode::CREATED, Json(body))
}

fn error_body(status: StatusCode, code: Option<&str>, detail: &str) -> Value {
    let mut v = json!({
        "detail": detail,
        "error": status.as_u16(),
        "reason": status.canonical_reason().unwrap_or(""),
    });
    if let Some(code) = code {
        v["errorCode"] = json!(code);
        v["parameters"] = json!([]);
    }
    v
}

fn unauthorized(state: &AppState, stale: bool) -> Response {
    let mut headers = HeaderMap::new();
    for v in state.auth.challenge(stale) {
        headers.append(header::WWW_AUTHENTICATE, v);
    }
    let body = error_body(
        StatusCode::UNAUTHORIZED,
        None,
        "You are not authorized for this resource.",
    );
    (StatusCode::UNAUTHORIZED, headers, Json(body)).into_response()
}

async fn digest_layer(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_owned();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let parsed = match req.headers().get(header::AUTHORIZATION) {
        None => Err(AuthError::MissingHeader),
        Some(v) => v
            .to_str()
            .map_err(|_| AuthError::Malformed {
                offset: 0,
                reason: "not visible ASCII",
            })
            .and_then(parse_authorization),
    };
    let mut seen = Seen {
        method: method.clone(),
        target: target.clone(),
        status: 0,
        nc: parsed.as_ref().ok().map(|r| r.nc.clone()),
        nonce: parsed.as_ref().ok().map(|r| r.nonce.clone()),
        algorithm: parsed.as_ref().ok().map(|r| r.algorithm.to_string()),
    };
    let response = authenticate(&state, peer.ip(), &method, &target, parsed, req, next).await;
    seen.status = response.status().as_u16();
    state.seen.lock().unwrap().push(seen);
    response
}

async fn authenticate(
    state: &AppState,
    ip: IpAddr,
    method: &str,
    target: &str,
    parsed: Result<headlock_api::auth::DigestResponse, AuthError>,
    req: Request,
    next: Next,
) -> Response {
    let resp = match parsed {
        Ok(r) => r,
        Err(e) => return unauthorized(state, e.is_stale()),
    };
    let now = Instant::now();
    if let Err(retry) = state.throttle.check(&resp.username, ip, now) {
        let body = error_body(
            StatusCode::TOO_MANY_REQUESTS,
            Some("RATE_LIMITED"),
            "Too many failed authentication attempts.",
        );
        let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry.seconds()));
        return r;
    }
    let user = state.users.get(&resp.username);
    let outcome = match user {
        Some(u) => state
            .auth
            .verify(method, target, &resp, &u.secrets, SystemTime::now()),
        None => Err(state
            .auth
            .verify_unknown_user(method, target, &resp, SystemTime::now())),
    };
    match (outcome, user) {
        (Ok(()), Some(u)) => {
            state.throttle.record_success(&resp.username, ip, now);
            if !access_list_allows(&u.access_list, ip) {
                let body = error_body(
                    StatusCode::FORBIDDEN,
                    Some("IP_ADDRESS_NOT_ON_ACCESS_LIST"),
                    &format!("IP address {ip} is not allowed to access this resource."),
                );
                return (StatusCode::FORBIDDEN, Json(body)).into_response();
            }
            next.run(req).await
        }
        (Err(e), _) => {
            if e.counts_as_failure() {
                state.throttle.record_failure(&resp.username, ip, now);
            }
            unauthorized(state, e.is_stale())
        }
        (Ok(()), None) => unauthorized(state, false),
    }
}
