//! Prometheus metrics: the process-wide recorder, the middleware that measures every
//! HTTP request, and `GET /metrics`.
//!
//! The libraries record through the `metrics` facade (the `kmip` client, the service,
//! this crate's middleware); [`Metrics::install`] installs the Prometheus recorder of
//! `metrics-exporter-prometheus` (built without its HTTP listener and push gateway) and
//! the API serves its text on `/metrics`, in the Prometheus text format 0.0.4. Every
//! metric is listed in `docs/metrics.md`.
//!
//! HTTP requests count in `headlock_http_requests_total{route,method,status}` and
//! `headlock_http_request_duration_seconds{route,method}` (until the response head; a
//! streamed body's transfer is not included). `route` is the route's template
//! (`/api/public/v1.0/groups/{GROUP-ID}`), never the path as sent, so no id or token
//! ever becomes a label, and a request that matched no route is `unmatched`; `method`
//! is one of the standard methods or `OTHER`.
//!
//! `/metrics` asks for no credentials (like `/health`): it exposes no secrets, ids or
//! tokens, only counts and timings by route template, KMIP server address and
//! operation. Operators who do not want it public restrict it at the load balancer.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter: HTTP requests answered, by `route`, `method` and `status`.
pub const HTTP_REQUESTS: &str = "headlock_http_requests_total";
/// Histogram: time to the response head in seconds, by `route` and `method`.
pub const HTTP_DURATION: &str = "headlock_http_request_duration_seconds";
/// Counter: alerts of failed logins for one username from any address (see
/// [`crate::auth::Throttle`]).
pub const AUTH_USER_ALERTS: &str = "headlock_auth_user_alerts_total";
/// The `route` label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Bucket bounds (seconds) for HTTP requests, chunk store calls and KMIP requests.
const FAST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bucket bounds (seconds) for rotations.
const SLOW_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Why the recorder could not be installed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot install the Prometheus metrics recorder: {0}")]
pub struct MetricsError(String);

/// The installed Prometheus recorder: renders `/metrics`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
}

static INSTALLED: OnceLock<Result<Metrics, MetricsError>> = OnceLock::new();

impl Metrics {
    /// Installs the Prometheus recorder as the process's `metrics` recorder, with
    /// histogram buckets and descriptions for every Headlock metric, and starts a thread
    /// that folds histogram samples into buckets every few seconds. Later calls return
    /// the same recorder. Fails if another recorder was installed first.
    pub fn install() -> Result<Metrics, MetricsError> {
        INSTALLED.get_or_init(install_once).clone()
    }

    /// The current values, in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn install_once() -> Result<Metrics, MetricsError> {
    let err = |e: metrics_exporter_prometheus::BuildError| MetricsError(e.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), FAST_BUCKETS)
        .map_err(err)?
        .set_buckets_for_metric(
            Matcher::Full(headlock_service::metrics::ROTATION_DURATION.into()),
            SLOW_BUCKETS,
        )
        .map_err(err)?
        .install_recorder()
        .map_err(err)?;
    describe();
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| MetricsError(format!("starting the upkeep thread: {e}")))?;
    Ok(Metrics { handle })
}

/// Help texts and units of the metrics of the API and the service (the KMIP client's
/// are given by `headlock-kmip`, which the binary calls beside this).
fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        metrics::Unit::Count,
        "HTTP requests answered, by route template, method and status."
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time from a request to its response head, by route template and method."
    );
    metrics::describe_counter!(
        AUTH_USER_ALERTS,
        metrics::Unit::Count,
        "Alerts of many failed logins for one username from any address (never a refusal)."
    );
    headlock_service::metrics::describe();
}

/// The `method` label: a standard method's name, else `OTHER` (a client can send any
/// token as a method; labels must stay a small set).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware: counts and times the request under its route's template.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let resp = next.run(req).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = resp.status().as_u16().to_string();
    metrics::counter!(
        HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method,
        "status" => status,
    )
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method).record(elapsed);
    resp
}

/// `GET /metrics`.
pub(crate) fn render_response(metrics: &Metrics) -> Response {
    let mut resp = metrics.render().into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_nonstandard_methods_as_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        let custom = Method::from_bytes(b"X-5F0000000000000000000001").unwrap();
        assert_eq!(method_label(&custom), "OTHER");
    }
}
