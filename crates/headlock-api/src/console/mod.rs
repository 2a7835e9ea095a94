//! The web console, served at `/` by `headlock serve`: server-rendered HTML and one
//! stylesheet, embedded in the binary, with plain HTML forms (no script).
//!
//! | module | what |
//! |---|---|
//! | [`session`] | sign-in with the username and API key, the session cookie, sign-out, CSRF and cross-site checks |
//! | [`pages`] | groups, a group's clusters (a sharded cluster as a tree), the audit events feed |
//! | [`cluster`] | one cluster: backup and encryption state, the key timeline, snapshots, restore and re-encryption jobs |
//! | [`timeline`] | the master-key timeline, an SVG drawn here from the key history |
//! | [`actions`] | every change: a confirmation page that names what will happen, then the `POST` |
//!
//! The layer is as thin as the JSON API's: every page and action calls the same
//! [`headlock_service::Service`] method the JSON handler of the same thing calls, with
//! the signed-in user as the [`headlock_service::Actor`], so roles are checked by the
//! service exactly as for the API (a read-only user is shown no action, and the service
//! refuses the `POST` anyway).
//!
//! Console routes are HTML for browsers, not part of the API contract: they are
//! mounted beside the API but kept out of the route table the OpenAPI document is
//! checked against ([`crate::app_and_routes`]); [`routes`] lists them.
//!
//! Every dynamic string reaches the HTML through [`esc`] (or [`E`]), the one escaping
//! function. Every answer carries a strict Content-Security-Policy (no script at all),
//! `X-Frame-Options: DENY`, `Referrer-Policy: same-origin` (restore links carry their
//! token: no other site sees them; `no-referrer` would make browsers send `Origin: null`
//! on the console's own forms) and `Cache-Control: no-store` ([`security_headers`]).

pub mod actions;
pub mod cluster;
pub mod pages;
pub mod session;
pub mod timeline;

use std::fmt;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headlock_core::model::Page;

use crate::ApiError;
use crate::routes::Routes;

pub use session::Session;

/// Largest form body the console accepts (sign-in and action forms are a few fields).
pub const MAX_FORM_BYTES: usize = 8 * 1024;

/// The stylesheet.
const CSS: &str = include_str!("console.css");

/// Items shown per list on a page (the service's page size; newest first).
pub(crate) const PAGE: Page = Page { num: 1, size: 100 };

/// `Content-Security-Policy` of every console answer: nothing but same-origin styles,
/// images and forms; no script, no frames, no plugins.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (kept out of the API's route table, see the module docs).
pub fn routes() -> Routes {
    Routes::new()
        .get("/console.css", css)
        .merge(session::routes())
        .merge(pages::routes())
        .merge(cluster::routes())
        .merge(actions::routes())
        .map(|r| {
            r.layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
                .layer(axum::middleware::map_response(security_headers))
        })
}

async fn css() -> Response {
    let mut resp = CSS.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    resp
}

/// Adds the security headers to every console answer.
pub async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// HTML-escapes `s` (the one escaping function of the console).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Anything displayable, escaped when formatted: `format!("<td>{}</td>", E(&name))`.
pub struct E<T>(pub T);

impl<T: fmt::Display> fmt::Display for E<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&esc(&self.0.to_string()))
    }
}

/// A hidden form field.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        E(name),
        E(value)
    )
}

/// "The first 100 of 230 groups.", when a list was cut.
pub fn more(shown: usize, total: u64, what: &str) -> String {
    if total > shown as u64 {
        format!(
            "<p class=\"note\">The first {shown} of {total} {}.</p>",
            E(what)
        )
    } else {
        String::new()
    }
}

/// A whole page: the layout around `body`. `session` adds the navigation bar, the
/// user's name and the sign-out form.
pub fn page(title: &str, session: Option<&Session>, body: &str) -> Response {
    let mut html = String::with_capacity(body.len() + 2048);
    html.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    html.push_str(&format!(
        "<title>{} · Headlock</title><link rel=\"stylesheet\" href=\"/console.css\"></head><body>",
        E(title)
    ));
    html.push_str("<header class=\"top\"><a class=\"brand\" href=\"/\">Headlock</a>");
    if let Some(s) = session {
        html.push_str("<nav><a href=\"/\">Groups</a></nav>");
        let roles: Vec<&str> = s.actor.roles.iter().map(|r| r.role.as_str()).collect();
        html.push_str(&format!(
            "<span class=\"who\" id=\"who\">{} <small>{}</small></span>\
             <form method=\"post\" action=\"/sign-out\" class=\"inline\">{}\
             <button type=\"submit\" id=\"sign-out\" class=\"link\">Sign out</button></form>",
            E(&s.actor.username),
            E(roles.join(", ")),
            s.csrf_field()
        ));
    }
    html.push_str("</header><main>");
    html.push_str(body);
    html.push_str("</main></body></html>");
    let mut resp = (StatusCode::OK, html).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// A page with another status.
pub fn page_with_status(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    body: &str,
) -> Response {
    let mut resp = page(title, session, body);
    *resp.status_mut() = status;
    resp
}

/// What a console handler fails with: an API error rendered as a page.
pub struct ConsoleError {
    /// The error (boxed, like the session: handlers return it by value).
    pub error: Box<ApiError>,
    /// The session, for the navigation bar.
    pub session: Option<Box<Session>>,
}

/// A form field the service was never asked about is wrong: 400 `INVALID_ATTRIBUTE`
/// with `detail`, on a page with the session's navigation bar.
pub(crate) fn bad(session: &Session, detail: &str) -> ConsoleError {
    ConsoleError {
        error: Box::new(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ATTRIBUTE",
            detail,
        )),
        session: Some(Box::new(session.clone())),
    }
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        ConsoleError {
            error: Box::new(error),
            session: None,
        }
    }
}

impl From<headlock_service::ServiceError> for ConsoleError {
    fn from(e: headlock_service::ServiceError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let e = &self.error;
        let title = e.status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<h1>{}</h1><p class=\"error\" id=\"error\"><code>{}</code> {}</p><p><a href=\"/\">Back to the groups</a></p>",
            E(title),
            E(e.code),
            E(&e.detail)
        );
        let mut resp = page_with_status(e.status, title, self.session.as_deref(), &body);
        for (name, value) in &e.headers {
            if name == header::RETRY_AFTER {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
        }
        resp
    }
}

/// A handler's result.
pub type Result<T> = std::result::Result<T, ConsoleError>;

/// `303 See Other` to `to` (after a `POST`).
pub fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `2026-12-04 15:09:34 UTC`: the API's RFC 3339 form, for people.
pub fn date(t: time::OffsetDateTime) -> String {
    let mut s = crate::clusters::rfc3339(t).replace('T', " ");
    s.pop();
    s.push_str(" UTC");
    s
}

/// `1.5 MiB` (bytes below 1 KiB as such).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_html_special_character() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(E("<b>").to_string(), "&lt;b&gt;");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }

    /// Console routes live outside the API base and the delivery links, so they never
    /// shadow an API route (and the OpenAPI cross-check, which lists the API's routes,
    /// is unaffected by them).
    #[test]
    fn console_routes_stay_out_of_the_api() {
        let (_, table) = routes().into_parts();
        assert!(table.len() >= 10, "{table:?}");
        for (_, path) in &table {
            assert!(
                !path.starts_with(crate::json::BASE)
                    && !path.starts_with("/backup/")
                    && !["/health", "/ready", "/metrics"].contains(&path.as_str()),
                "{path}"
            );
        }
    }
}
