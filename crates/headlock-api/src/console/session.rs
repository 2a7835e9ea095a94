//! Sign-in, sessions, sign-out, CSRF and cross-site checks.
//!
//! - Sign-in is a form with the username and API key. The key is checked against what
//!   digest authentication stores (the SHA-256 HA1, compared in constant time; an
//!   unknown user costs the same work), through the same [`crate::auth::Throttle`] as
//!   digest failures, audited as `AUTHENTICATION_FAILED` like them, and with the user's
//!   access list honoured.
//! - A session is a random 256-bit token (ring's `SystemRandom`) in a cookie
//!   (`HttpOnly; SameSite=Strict; Path=/`, plus `Secure` and the `__Host-` prefix when
//!   served over TLS) that lives [`SESSION_LIFETIME`] at most. The server keeps only
//!   the token's SHA-256, in the metadata store every node shares
//!   ([`headlock_service::users::Users::open_console_session`]): every node honours a
//!   session, and sign-out ends it on all of them.
//! - Every `POST` ([`Posted`]) must come from the console's own origin (`Origin` and
//!   `Sec-Fetch-Site`, when the browser sends them) and carry the session's CSRF token,
//!   compared in constant time. The CSRF token is derived from the session token
//!   (SHA-256 under a fixed label), so it is bound to the session and needs no storage;
//!   the session token never leaves the cookie, so a page cannot derive it.
//! - Nothing here logs a key, a token or a CSRF token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, RequestPartsExt};
use headlock_service::Actor;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{E, page, page_with_status, see_other};
use crate::auth::{access_list_allows, derive_secrets};
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// Longest a session lives, from sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// Most fields in a console form.
const MAX_FIELDS: usize = 16;

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/sign-in", sign_in_page)
        .post("/sign-in", sign_in)
        .post("/sign-out", sign_out)
}

/// The session cookie's name: with the `__Host-` prefix over TLS (the browser then
/// insists on `Secure`, `Path=/` and no `Domain`).
fn cookie_name(state: &AppState) -> &'static str {
    if state.scheme == "https" {
        "__Host-headlock-session"
    } else {
        "headlock-session"
    }
}

fn sha256_hex(label: &str, token: &str) -> String {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// The id the store keeps for a token.
fn token_id(token: &str) -> String {
    sha256_hex("", token)
}

/// The CSRF token of a session token.
fn csrf_of(token: &str) -> String {
    sha256_hex("headlock console csrf\0", token)
}

/// A signed-in user.
#[derive(Clone)]
pub struct Session {
    /// Who, with the roles the service checks.
    pub actor: Actor,
    /// The session's CSRF token.
    csrf: String,
    /// The SHA-256 of the session token (hex).
    id: String,
}

impl Session {
    /// The hidden form field every `POST` form carries.
    pub fn csrf_field(&self) -> String {
        super::hidden("csrf", &self.csrf)
    }
}

/// The session token in the request's cookies, if any (at most 128 bytes).
fn token_of(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Why a request has no session.
pub enum NoSession {
    /// Nobody is signed in (or the session ended): go to the sign-in page.
    SignIn,
    /// The store could not be asked, or the address is refused.
    Error(ApiError),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::SignIn => see_other("/sign-in"),
            NoSession::Error(e) => super::ConsoleError::from(e).into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = NoSession;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = token_of(state, &parts.headers) else {
            return Err(NoSession::SignIn);
        };
        let id = token_id(&token);
        let users = state.service.users();
        let Some(username) = users
            .console_session(&id)
            .await
            .map_err(|e| NoSession::Error(e.into()))?
        else {
            return Err(NoSession::SignIn);
        };
        // A user deleted since sign-in has no session any more.
        let Some(user) = users
            .user(&username)
            .await
            .map_err(|e| NoSession::Error(e.into()))?
        else {
            return Err(NoSession::SignIn);
        };
        let ip = crate::middleware::client_ip(parts);
        if !access_list_allows(&user.access_list, ip) {
            return Err(NoSession::Error(crate::middleware::refused_address(ip)));
        }
        Ok(Session {
            actor: Actor {
                username: user.username.clone(),
                roles: user.roles.clone(),
                remote_address: Some(ip.to_string()),
            },
            csrf: csrf_of(&token),
            id,
        })
    }
}

fn forbidden(detail: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "CROSS_SITE_REQUEST_REFUSED", detail)
}

/// Refuses a request a browser says comes from another site: `Sec-Fetch-Site` other
/// than `same-origin`, or an `Origin` other than the console's own. Requests without
/// either header (not from a browser) rely on the CSRF token alone.
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Err(forbidden("The request comes from another site."));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let expected = match &state.public_origin {
            Some(o) => o.trim_end_matches('/').to_string(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                format!("{}://{host}", state.scheme)
            }
        };
        if origin.as_bytes() != expected.as_bytes() {
            return Err(forbidden("The request comes from another origin."));
        }
    }
    Ok(())
}

/// A `POST` of a signed-in user: same origin, session, CSRF token checked; the form's
/// other fields.
pub struct Posted {
    /// The session.
    pub session: Session,
    /// The form fields (the CSRF token removed).
    pub fields: HashMap<String, String>,
}

impl Posted {
    /// A field, or `""`.
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        if let Err(e) = same_origin(state, &parts.headers) {
            return Err(super::ConsoleError::from(e).into_response());
        }
        let session = match parts.extract_with_state::<Session, _>(state).await {
            Ok(s) => s,
            Err(NoSession::SignIn) => {
                return Err(super::ConsoleError::from(forbidden(
                    "Sign in first: this request carries no live session.",
                ))
                .into_response());
            }
            Err(e) => return Err(e.into_response()),
        };
        let req = Request::from_parts(parts, body);
        let Form(mut fields) = Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(|_| {
                super::ConsoleError::from(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FORM",
                    "The form could not be read.",
                ))
                .into_response()
            })?;
        let csrf = fields.remove("csrf").unwrap_or_default();
        if fields.len() > MAX_FIELDS || !bool::from(csrf.as_bytes().ct_eq(session.csrf.as_bytes()))
        {
            return Err(super::ConsoleError {
                error: Box::new(forbidden(
                    "The form's CSRF token is missing or wrong: reload the page.",
                )),
                session: Some(Box::new(session)),
            }
            .into_response());
        }
        Ok(Posted { session, fields })
    }
}

fn sign_in_form(message: Option<&str>) -> String {
    let message = message
        .map(|m| format!("<p class=\"error\" id=\"error\">{}</p>", E(m)))
        .unwrap_or_default();
    format!(
        "<section class=\"sign-in\"><h1>Sign in</h1>{message}\
         <p>With your Headlock username and API key (the ones <code>curl --digest</code> uses).</p>\
         <form method=\"post\" action=\"/sign-in\">\
         <label>Username <input name=\"username\" id=\"username\" autocomplete=\"username\" required maxlength=\"128\"></label>\
         <label>API key <input name=\"api_key\" id=\"api_key\" type=\"password\" autocomplete=\"current-password\" required maxlength=\"128\"></label>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form></section>"
    )
}

async fn sign_in_page() -> Response {
    page("Sign in", None, &sign_in_form(None))
}

/// The sign-in form's fields.
#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    api_key: String,
}

async fn sign_in(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = same_origin(&state, &parts.headers) {
        return super::ConsoleError::from(e).into_response();
    }
    let ip = crate::middleware::client_ip(&parts);
    let Ok(Form(creds)) =
        Form::<Credentials>::from_request(Request::from_parts(parts, body), &state).await
    else {
        return page_with_status(
            StatusCode::BAD_REQUEST,
            "Sign in",
            None,
            &sign_in_form(Some("Give a username and an API key.")),
        );
    };
    let username = creds.username.trim();
    let refused = || {
        page_with_status(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            None,
            &sign_in_form(Some("Unknown user or wrong API key.")),
        )
    };
    if username.is_empty() || username.len() > 128 || creds.api_key.len() > 128 {
        return refused();
    }
    if let Err(retry) = state.throttle.check(username, ip, Instant::now()) {
        let mut resp = page_with_status(
            StatusCode::TOO_MANY_REQUESTS,
            "Sign in",
            None,
            &sign_in_form(Some(&format!(
                "Too many failed attempts; retry in {} s.",
                retry.seconds()
            ))),
        );
        if let Ok(v) = HeaderValue::from_str(&retry.seconds().to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let user = match state.service.users().user(username).await {
        Ok(u) => u,
        Err(e) => return super::ConsoleError::from(e).into_response(),
    };
    let given = zeroize::Zeroizing::new(derive_secrets(username, &creds.api_key).ha1_sha256);
    drop(zeroize::Zeroizing::new(creds.api_key));
    // An unknown user is compared with a value no key derives to: the same work.
    let stored = user
        .as_deref()
        .and_then(crate::middleware::secrets_of)
        .map(|s| s.ha1_sha256);
    let matches: bool = given.ct_eq(&stored.unwrap_or([0u8; 32])).into();
    let user = match (matches && stored.is_some(), user) {
        (true, Some(u)) => u,
        _ => {
            tracing::info!(%ip, "console sign-in failed");
            crate::middleware::failed_login(
                &state,
                username,
                ip,
                "console sign-in: unknown user or wrong API key",
            )
            .await;
            return refused();
        }
    };
    if let Err(e) = crate::middleware::succeeded_login(&state, &user, ip).await {
        return super::ConsoleError::from(e).into_response();
    }
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    if SystemRandom::new().fill(&mut raw[..]).is_err() {
        return super::ConsoleError::from(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNEXPECTED_ERROR",
            "The system random generator failed.",
        ))
        .into_response();
    }
    let token = zeroize::Zeroizing::new(hex::encode(&raw[..]));
    match state
        .service
        .users()
        .open_console_session(&token_id(&token), &user.username, SESSION_LIFETIME)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return super::ConsoleError::from(ApiError::new(
                StatusCode::CONFLICT,
                "SESSION_CONFLICT",
                "Try signing in again.",
            ))
            .into_response();
        }
        Err(e) => return super::ConsoleError::from(e).into_response(),
    }
    tracing::info!(username = %user.username, %ip, "console sign-in");
    let secure = if state.scheme == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = zeroize::Zeroizing::new(format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        cookie_name(&state),
        token.as_str(),
        SESSION_LIFETIME.as_secs()
    ));
    let mut resp = see_other("/");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn sign_out(State(state): State<AppState>, posted: Posted) -> Response {
    let s = &posted.session;
    if let Err(e) = state
        .service
        .users()
        .close_console_session(&s.id, &s.actor.username)
        .await
    {
        return super::ConsoleError {
            error: Box::new(ApiError::from(e)),
            session: Some(Box::new(posted.session)),
        }
        .into_response();
    }
    tracing::info!(username = %s.actor.username, "console sign-out");
    let secure = if state.scheme == "https" {
        "; Secure"
    } else {
        ""
    };
    let mut resp = see_other("/sign-in");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
        cookie_name(&state)
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}
