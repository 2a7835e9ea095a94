//! Ops Manager's JSON conventions, in one place: `links`, list wrappers and paging,
//! `pretty=true`, `envelope=true`, and a body extractor whose rejections are Ops
//! Manager error bodies (unknown fields are refused with 400, not ignored).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headlock_core::model::Page;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ApiError;

/// API base path.
pub const BASE: &str = "/api/public/v1.0";
/// Default `itemsPerPage`.
pub const DEFAULT_ITEMS_PER_PAGE: u32 = 100;
/// Largest `itemsPerPage`.
pub const MAX_ITEMS_PER_PAGE: u32 = 500;
/// Relation prefix of every link other than `self`.
pub const REL: &str = "http://mms.mongodb.com/";

/// The query parameters every endpoint understands.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Common {
    /// `pretty=true`.
    #[serde(default)]
    pub pretty: Option<String>,
    /// `envelope=true`.
    #[serde(default)]
    pub envelope: Option<String>,
    /// `pageNum` (1-based).
    #[serde(default)]
    pub page_num: Option<String>,
    /// `itemsPerPage`.
    #[serde(default)]
    pub items_per_page: Option<String>,
}

fn flag(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

/// How a response is rendered, and where links point.
#[derive(Debug, Clone)]
pub struct Render {
    /// Pretty-print.
    pub pretty: bool,
    /// Wrap as `{"status": N, "content": ...}`.
    pub envelope: bool,
    /// `scheme://host` for absolute links.
    pub origin: String,
    /// The page asked for.
    pub page: Page,
    /// The request's path, for list `self` links.
    pub path: String,
}

impl FromRequestParts<crate::AppState> for Render {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, ApiError> {
        let common: Common = serde_urlencoded_lenient(parts.uri.query().unwrap_or(""));
        let page_num = parse_bounded(common.page_num.as_deref(), "pageNum", 1, 1, u32::MAX)?;
        let size = parse_bounded(
            common.items_per_page.as_deref(),
            "itemsPerPage",
            DEFAULT_ITEMS_PER_PAGE,
            1,
            MAX_ITEMS_PER_PAGE,
        )?;
        let origin = match &state.public_origin {
            Some(o) => o.clone(),
            None => origin_from_host(parts, state.scheme),
        };
        Ok(Render {
            pretty: flag(&common.pretty),
            envelope: flag(&common.envelope),
            origin,
            page: Page {
                num: page_num,
                size,
            },
            path: parts.uri.path().to_string(),
        })
    }
}

fn origin_from_host(parts: &Parts, scheme: &str) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

fn serde_urlencoded_lenient(query: &str) -> Common {
    let mut c = Common::default();
    for pair in query.split('&').take(64) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = Some(v.chars().take(32).collect());
        match k {
            "pretty" => c.pretty = v,
            "envelope" => c.envelope = v,
            "pageNum" => c.page_num = v,
            "itemsPerPage" => c.items_per_page = v,
            _ => {}
        }
    }
    c
}

fn parse_bounded(
    v: Option<&str>,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ApiError> {
    match v {
        None => Ok(default),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_query(format!(
                "{name} must be a whole number from {min} to {max}."
            ))),
        },
    }
}

impl Render {
    /// An absolute URL for an API path (`/groups/...`, without the base).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.origin, BASE, path)
    }

    /// A link object.
    pub fn link(&self, path: &str, rel: &str) -> Value {
        let rel = if rel == "self" {
            "self".to_string()
        } else {
            format!("{REL}{rel}")
        };
        json!({"href": self.url(path), "rel": rel})
    }

    /// A 200/201 response holding one entity.
    pub fn entity(&self, status: StatusCode, value: Value) -> Response {
        if self.envelope {
            self.respond(
                StatusCode::OK,
                json!({"status": status.as_u16(), "content": value}),
            )
        } else {
            self.respond(status, value)
        }
    }

    /// A page of a list: `{"results", "totalCount", "links"}` with `previous`/`next`.
    pub fn list(&self, results: Vec<Value>, total: u64) -> Response {
        let list_path = self
            .path
            .strip_prefix(BASE)
            .unwrap_or(&self.path)
            .to_string();
        let page_link = |num: u32, rel: &str| {
            json!({
                "href": format!("{}?pageNum={num}&itemsPerPage={}", self.url(&list_path), self.page.size),
                "rel": rel,
            })
        };
        let mut links = vec![page_link(self.page.num, "self")];
        if self.page.num > 1 {
            links.push(page_link(self.page.num - 1, "previous"));
        }
        if u64::from(self.page.num) * u64::from(self.page.size) < total {
            links.push(page_link(self.page.num + 1, "next"));
        }
        let mut body = json!({"results": results, "totalCount": total, "links": links});
        if self.envelope {
            body["status"] = json!(200);
        }
        self.respond(StatusCode::OK, body)
    }

    /// An empty answer with a status (e.g. 201 for a rotation, 202 or 204).
    pub fn empty(&self, status: StatusCode) -> Response {
        if self.envelope {
            self.respond(
                StatusCode::OK,
                json!({"status": status.as_u16(), "content": {}}),
            )
        } else {
            let mut r = status.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    }

    fn respond(&self, status: StatusCode, value: Value) -> Response {
        let mut r = (status, body_bytes(&value, self.pretty)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

/// Serialises a JSON value, pretty or compact.
pub fn body_bytes(value: &Value, pretty: bool) -> Vec<u8> {
    let mut out = if pretty {
        serde_json::to_vec_pretty(value).unwrap_or_default()
    } else {
        serde_json::to_vec(value).unwrap_or_default()
    };
    if pretty {
        out.push(b'\n');
    }
    out
}

/// A JSON request body; its rejections are Ops Manager error bodies. Types deserialised
/// through it use `#[serde(deny_unknown_fields)]`. The body size is bounded by the
/// router's `DefaultBodyLimit`.
///
/// The body must come with `Content-Type: application/json` (parameters such as
/// `charset` allowed): anything else is 415 `UNSUPPORTED_MEDIA_TYPE`, so that a page in a
/// browser cannot make one of these requests with a form or a `text/plain` body, which
/// need no CORS preflight. A request with neither a type nor a body (`curl -X PUT`)
/// reads as `{}`.
pub struct Body<T>(pub T);

/// Whether a `Content-Type` is JSON: `application/json`, with any parameters.
fn is_json(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req.headers().get(header::CONTENT_TYPE).map(is_json);
        if json == Some(false) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                let mut err = ApiError::bad_body(e.body_text());
                err.status = e.status();
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    err.code = "REQUEST_BODY_TOO_LARGE";
                }
                err
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else if json.is_none() {
            return Err(ApiError::unsupported_media_type());
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(Body).map_err(|e| {
            ApiError::bad_body(format!(
                "Received JSON is malformed or does not match the expected fields: {e}."
            ))
        })
    }
}
