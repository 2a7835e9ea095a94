//! `GET /health` (liveness) and `GET /ready` (readiness), without authentication, for
//! load balancers and orchestrators; `GET /api/public/v1.0/health` (extension), the
//! same check in detail, for an authenticated user with a global role.
//!
//! All three only read the latest report of the service's [`HealthMonitor`], which
//! checks the metadata database and each KMIP server in the background: a burst of
//! probes never reaches them.
//!
//! - `/health` answers 200 while the process serves, with
//!   `{"status": "ok"|"degraded"|"starting", "database": {"ok"},
//!   "kmipServers": [{"reachable"}], "checkedAt"}` (`starting`, alone, until the first
//!   check has finished). It names no server and no node: anyone who can reach the port
//!   can read it, and the KMIP servers' addresses and the node id are for operators.
//! - `/api/public/v1.0/health` adds them (digest authentication, global roles only):
//!   `{"status", "node", "database": {"ok", "latencyMs"},
//!   "kmipServers": [{"server", "reachable", "latencyMs" | "error"}], "checkedAt"}`
//!   (`starting` with `node` before the first check).
//! - `/ready` answers 200 `{"ready": true}` when the database answered and at least one
//!   KMIP server was reachable at the last check, else 503
//!   `{"ready": false, "reason": "..."}` (also before the first check).
//!
//! Bodies carry no secrets and no stack traces: database failures are a fixed text, KMIP
//! failures the client's error (server, operation, reason), in the detail only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headlock_service::Actor;
use headlock_service::health::{HealthMonitor, HealthReport};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::ApiError;

/// Milliseconds with microsecond precision, as JSON.
fn millis(d: std::time::Duration) -> Value {
    json!((d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

/// The body of a report in detail (`/api/public/v1.0/health`).
pub fn health_body(report: &HealthReport) -> Value {
    let mut database = json!({ "ok": report.database.ok });
    if let Some(l) = report.database.latency {
        database["latencyMs"] = millis(l);
    }
    if let Some(e) = report.database.error {
        database["error"] = json!(e);
    }
    let servers: Vec<Value> = report
        .kmip_servers
        .iter()
        .map(|s| {
            let mut v = json!({ "server": s.server, "reachable": s.reachable });
            if let Some(l) = s.latency {
                v["latencyMs"] = millis(l);
            }
            if let Some(e) = &s.error {
                v["error"] = json!(e);
            }
            v
        })
        .collect();
    json!({
        "status": if report.degraded() { "degraded" } else { "ok" },
        "node": report.node,
        "database": database,
        "kmipServers": servers,
        "checkedAt": report.checked_at.format(&Rfc3339).unwrap_or_default(),
    })
}

fn respond(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, crate::json::body_bytes(body, false)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The `/health` body of a report: what anyone may see, with no server address, no
/// error text (it names the server) and no node id.
pub fn public_health_body(report: &HealthReport) -> Value {
    let servers: Vec<Value> = report
        .kmip_servers
        .iter()
        .map(|s| json!({ "reachable": s.reachable }))
        .collect();
    json!({
        "status": if report.degraded() { "degraded" } else { "ok" },
        "database": { "ok": report.database.ok },
        "kmipServers": servers,
        "checkedAt": report.checked_at.format(&Rfc3339).unwrap_or_default(),
    })
}

/// `GET /health`.
pub(crate) fn health(monitor: &HealthMonitor) -> Response {
    let body = match monitor.report() {
        Some(report) => public_health_body(&report),
        None => json!({ "status": "starting" }),
    };
    respond(StatusCode::OK, &body)
}

/// `GET /api/public/v1.0/health`, for `actor`.
pub(crate) fn detail(monitor: &HealthMonitor, actor: &Actor) -> Result<Response, ApiError> {
    let body = match monitor.detailed_report(actor)? {
        Some(report) => health_body(&report),
        None => json!({ "status": "starting", "node": monitor.node() }),
    };
    Ok(respond(StatusCode::OK, &body))
}

/// `GET /ready`.
pub(crate) fn ready(monitor: &HealthMonitor) -> Response {
    let verdict = match monitor.report() {
        Some(report) => report.readiness(),
        None => Err("no health check has completed yet"),
    };
    match verdict {
        Ok(()) => respond(StatusCode::OK, &json!({ "ready": true })),
        Err(reason) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "ready": false, "reason": reason }),
        ),
    }
}
