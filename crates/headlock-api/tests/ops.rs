//! The operations endpoints (`/metrics`, `/health`, `/ready`) of the real router, over
//! real sockets, in front of a real service: SQLite metadata store, testkit's embedded KMIP
//! server (`kmip-server`) over loopback mutual TLS, and the local-directory chunk store.
//! Each test has its own temporary directory and ports.
//!
//! The Prometheus recorder is process-wide and the tests run in parallel, so counters
//! are compared before and after (they only grow), never expected to hold an exact value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use headlock_api::auth::{DigestAuthenticator, Throttle, ThrottleConfig};
use headlock_api::metrics::Metrics;
use headlock_api::{AppState, Ops, PeerAddr, Shared};
use headlock_core::BlobStore;
use headlock_core::KeyManager;
use headlock_kmip::KmipKeyManager;
use headlock_service::Service;
use headlock_service::health::HealthMonitor;
use headlock_service::metrics::MeteredBlobStore;
use headlock_store::SqlStore;
use headlock_store::blob::ObjectBlobStore;
use serde_json::Value;
use testkit::kmip::{Embedded, client_config, refused_address};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---- the key manager on an embedded KMIP server ------------------------------------

/// The key manager on `servers` (no retry rounds), with `kmip`'s certificates.
fn key_manager(kmip: &Embedded, servers: Vec<String>) -> KmipKeyManager {
    let mut config = client_config(&kmip.pki, servers);
    config.max_retries = 0;
    let client = kmip::client::Client::new(config).unwrap();
    KmipKeyManager::new(client, "test KMIP servers".into())
}

// ---- the API in front of a real service -----------------------------------------------

struct Stack {
    api: SocketAddr,
    kmip: Embedded,
    monitor: HealthMonitor,
    keys: Arc<KmipKeyManager>,
    dir: tempfile::TempDir,
}

impl Stack {
    /// The API with `/health`, `/ready` and `/metrics`, its key manager on the embedded
    /// KMIP server, preceded in the configuration by `down_first` unreachable servers.
    async fn start(down_first: usize) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let kmip = Embedded::start_in(&dir.path().join("kmip"), "127.0.0.1:0").await;
        let mut servers: Vec<String> = (0..down_first).map(|_| refused_address()).collect();
        servers.push(kmip.server());
        let keys = Arc::new(key_manager(&kmip, servers));
        let store = SqlStore::open_sqlite(&dir.path().join("headlock.db"))
            .await
            .unwrap();
        let service = Service::new(Arc::new(store), keys.clone());
        let monitor = HealthMonitor::new(&service);
        let state = AppState::new(Shared {
            service,
            auth: DigestAuthenticator::new(rand_secret(), Duration::from_secs(300)),
            throttle: Throttle::new(ThrottleConfig::default()),
            public_origin: None,
            scheme: "http",
        });
        let ops = Ops {
            health: Some(monitor.clone()),
            metrics: Some(Metrics::install().unwrap()),
        };
        let app =
            headlock_api::app_with(state, ops).into_make_service_with_connect_info::<PeerAddr>();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stack {
            api,
            kmip,
            monitor,
            keys,
            dir,
        }
    }

    async fn get(&self, path: &str) -> Response {
        request(self.api, "GET", path).await
    }

    async fn metrics(&self) -> String {
        let r = self.get("/metrics").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }
}

fn rand_secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut s).unwrap();
    s
}

// ---- a raw HTTP/1.1 client ---------------------------------------------------------

struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Response {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

// ---- the Prometheus text format 0.0.4 ---------------------------------------------

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|e| format!("value {s:?}: {e}")),
    }
}

/// Parses a sample line: `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut s) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = s.find('=').ok_or("label without '='")?;
            let label = &s[..eq];
            if !is_label_name(label) {
                return Err(format!("bad label name {label:?}"));
            }
            s = s[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            // The value, with the escapes \\, \" and \n.
            let mut value = String::new();
            let mut chars = s.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.insert(label.to_string(), value);
            s = &s[end + 1..];
            if let Some(after) = s.strip_prefix(',') {
                s = after;
            } else if !s.starts_with('}') {
                return Err(format!("unexpected text after a label: {s:?}"));
            }
        }
    }
    finish_sample(name, labels, rest)
}

fn finish_sample(
    name: &str,
    labels: BTreeMap<String, String>,
    rest: &str,
) -> Result<Sample, String> {
    if !rest.starts_with(' ') {
        return Err(format!("no space before the value: {rest:?}"));
    }
    let mut parts = rest.split_ascii_whitespace();
    let value = parse_value(parts.next().ok_or("no value")?)?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("timestamp {ts:?}: {e}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing text".into());
    }
    Ok((name.to_string(), labels, value))
}

/// Checks every line of an exposition; returns its samples.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_ascii_whitespace();
            match words.next() {
                Some("TYPE") => {
                    let name = words.next().unwrap_or_default();
                    assert!(is_metric_name(name), "line {n}: {line}");
                    let kind = words.next().unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "line {n}: {line}"
                    );
                    assert_eq!(words.next(), None, "line {n}: {line}");
                }
                Some("HELP") => {
                    let name = words.next().unwrap_or_default();
                    assert!(is_metric_name(name), "line {n}: {line}");
                }
                _ => {} // any other comment is allowed
            }
            continue;
        }
        match parse_sample(line) {
            Ok(s) => samples.push(s),
            Err(e) => panic!("line {n} is not a valid sample ({e}): {line}"),
        }
    }
    samples
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

const ID: &str = "5f1e0d0c0b0a090807060504";
const TOKEN: &str = "c2VjcmV0LXRva2VuLXRoYXQtbXVzdC1ub3QtbGVhaw";

// ---- tests ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_metrics_text_that_parses_line_by_line() {
    let s = Stack::start(0).await;
    s.monitor.check_now().await;
    s.get("/health").await;
    s.get(&format!("/api/public/v1.0/groups/{ID}")).await;
    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let samples = parse_exposition(&r.body);
    assert!(!samples.is_empty());
    // Histograms are real histograms: buckets, a +Inf bucket, sum and count.
    for suffix in ["_bucket", "_sum", "_count"] {
        assert!(
            samples
                .iter()
                .any(|(n, _, _)| *n == format!("headlock_http_request_duration_seconds{suffix}")),
            "{suffix} missing:\n{}",
            r.body
        );
    }
    assert!(samples.iter().any(
        |(n, l, _)| n == "headlock_http_request_duration_seconds_bucket"
            && l.get("le").map(String::as_str) == Some("+Inf")
    ));
    assert!(
        r.body
            .contains("# TYPE headlock_http_requests_total counter")
    );
    assert!(r.body.contains("# HELP headlock_http_requests_total "));
    assert!(
        r.body
            .contains("# TYPE kmip_request_duration_seconds histogram")
    );
}

#[test]
fn rejects_malformed_exposition_lines() {
    // The parser the tests rely on does reject what is not a sample.
    for bad in [
        "9metric 1",
        "metric",
        "metric{a=\"1\" 2",
        "metric{a=1} 2",
        "metric{a=\"1\"} x",
        "metric{a=\"\\q\"} 1",
        "metric 1 2 3",
    ] {
        assert!(parse_sample(bad).is_err(), "{bad}");
    }
    let (name, labels, v) = parse_sample(r#"m_total{route="/a/{b}",q="x\"y",z="w"} 3"#).unwrap();
    assert_eq!(name, "m_total");
    assert_eq!(labels["route"], "/a/{b}");
    assert_eq!(labels["q"], "x\"y");
    assert_eq!(labels["z"], "w");
    assert_eq!(v, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_request_counters_that_move_under_route_templates_only() {
    let s = Stack::start(0).await;
    let group = [
        ("route", "/api/public/v1.0/groups/{group_id}"),
        ("method", "GET"),
        ("status", "401"),
    ];
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    let download = [
        ("route", "/backup/restore/{cluster_id}/{job_id}/{token}"),
        ("method", "GET"),
    ];
    let before = parse_exposition(&s.metrics().await);
    for _ in 0..3 {
        let r = s.get(&format!("/api/public/v1.0/groups/{ID}")).await;
        assert_eq!(r.status, 401);
        let r = s.get(&format!("/no/such/route/{ID}")).await;
        assert_eq!(r.status, 404);
        s.get(&format!("/backup/restore/{ID}/{ID}/{TOKEN}")).await;
    }
    let text = s.metrics().await;
    let after = parse_exposition(&text);
    let name = "headlock_http_requests_total";
    assert!(value(&after, name, &group) >= value(&before, name, &group) + 3.0);
    assert!(value(&after, name, &unmatched) >= value(&before, name, &unmatched) + 3.0);
    assert!(value(&after, name, &download) >= value(&before, name, &download) + 3.0);
    let hist = "headlock_http_request_duration_seconds_count";
    let group_route = &group[..2];
    assert!(value(&after, hist, group_route) >= value(&before, hist, group_route) + 3.0);
    // Neither ids nor tokens from the paths ever become labels.
    assert!(!text.contains(ID), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!text.contains("/no/such/route"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_health_and_ready_before_and_after_the_first_check() {
    let s = Stack::start(0).await;
    // No check yet: alive, not ready.
    let r = s.get("/health").await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["status"], "starting");
    assert_eq!(body["node"], s.monitor.node());
    let r = s.get("/ready").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["ready"], false);
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap()
            .contains("no health check")
    );

    s.monitor.check_now().await;
    let r = s.get("/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let body = r.json();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["node"], s.monitor.node());
    assert_eq!(body["database"]["ok"], true);
    assert!(body["database"]["latencyMs"].as_f64().unwrap() >= 0.0);
    let servers = body["kmipServers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{body}");
    assert_eq!(servers[0]["server"], s.kmip.server().as_str());
    assert_eq!(servers[0]["reachable"], true);
    assert!(servers[0]["latencyMs"].as_f64().unwrap() > 0.0);
    let checked = body["checkedAt"].as_str().unwrap();
    time::OffsetDateTime::parse(checked, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("checkedAt {checked:?}: {e}"));
    let r = s.get("/ready").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"ready": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_a_spawned_monitor_that_checks_on_its_own() {
    let s = Stack::start(0).await;
    let store = SqlStore::open_sqlite(&s.dir.path().join("other.db"))
        .await
        .unwrap();
    let keys = Arc::new(key_manager(&s.kmip, vec![s.kmip.server()]));
    let service = Service::new(Arc::new(store), keys);
    let monitor = HealthMonitor::spawn(&service, Duration::from_secs(1));
    // The first check starts at once; wait for it (bounded), without calling it.
    let mut waited = Duration::ZERO;
    while monitor.report().is_none() {
        assert!(waited < Duration::from_secs(60), "no check within a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let report = monitor.report().unwrap();
    assert_eq!(report.readiness(), Ok(()));
    assert_eq!(report.kmip_servers.len(), 1);
    assert!(report.kmip_servers[0].reachable);
    // Later checks replace it.
    let first = report.checked_at;
    while monitor.report().unwrap().checked_at == first {
        assert!(
            waited < Duration::from_secs(60),
            "no second check within a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_readiness_when_the_kmip_server_is_down() {
    let mut s = Stack::start(0).await;
    s.monitor.check_now().await;
    assert_eq!(s.get("/ready").await.status, 200);
    s.kmip.stop().await;
    // The cached report still says ready until the next check...
    assert_eq!(s.get("/ready").await.status, 200);
    s.monitor.check_now().await;
    // ...which finds the server down.
    let r = s.get("/ready").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["reason"], "no KMIP server is reachable");
    let r = s.get("/health").await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["database"]["ok"], true);
    let server = &body["kmipServers"][0];
    assert_eq!(server["reachable"], false);
    assert!(server.get("latencyMs").is_none(), "{body}");
    let error = server["error"].as_str().unwrap();
    assert!(error.contains(&s.kmip.server()), "{error}");

    let metrics = parse_exposition(&s.metrics().await);
    let addr = s.kmip.server();
    let addr = addr.as_str();
    assert_eq!(
        value(&metrics, "headlock_kmip_server_up", &[("server", addr)]),
        0.0
    );
    assert_eq!(value(&metrics, "headlock_database_up", &[]), 1.0);
    let refused = [
        ("server", addr),
        ("operation", "DiscoverVersions"),
        ("outcome", "connect_error"),
    ];
    assert!(value(&metrics, "kmip_requests_total", &refused) >= 1.0);
    let answered = [
        ("server", addr),
        ("operation", "DiscoverVersions"),
        ("outcome", "ok"),
    ];
    assert!(value(&metrics, "kmip_requests_total", &answered) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_readiness_with_one_of_two_kmip_servers_down() {
    let s = Stack::start(1).await;
    let probes = s.keys.probe_servers().await;
    assert_eq!(probes.len(), 2);
    assert!(!probes[0].reachable);
    assert!(
        probes[0]
            .error
            .as_deref()
            .unwrap()
            .contains(&probes[0].server)
    );
    assert_eq!(probes[1].server, s.kmip.server());
    assert!(probes[1].reachable);
    assert!(probes[1].latency.is_some());

    s.monitor.check_now().await;
    let body = s.get("/health").await.json();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["kmipServers"][0]["reachable"], false);
    assert_eq!(body["kmipServers"][1]["reachable"], true);
    assert_eq!(s.get("/ready").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_created_key_naming_the_server_that_answered_after_failover() {
    let s = Stack::start(1).await;
    let created = s.keys.create_master_key("cluster-failover").await.unwrap();
    assert_eq!(created.server, s.kmip.server());
    let metrics = parse_exposition(&s.metrics().await);
    let addr = s.kmip.server();
    let addr = addr.as_str();
    let ok_create = [("server", addr), ("operation", "Create"), ("outcome", "ok")];
    assert!(value(&metrics, "kmip_requests_total", &ok_create) >= 1.0);
    assert!(
        value(
            &metrics,
            "kmip_request_duration_seconds_count",
            &[("server", addr), ("operation", "Create")]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_service_and_chunk_store_metrics_in_the_exposition() {
    let s = Stack::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let blobs = MeteredBlobStore::new(ObjectBlobStore::local(dir.path()).unwrap());
    let before = parse_exposition(&s.metrics().await);

    blobs.put("packs/a/b", vec![7u8; 1000]).await.unwrap();
    assert_eq!(blobs.get("packs/a/b").await.unwrap().len(), 1000);
    assert!(blobs.get("packs/a/missing").await.is_err());
    headlock_service::metrics::rotation_finished("MANUAL", true, Duration::from_millis(20));
    headlock_service::metrics::rotation_finished(ID, false, Duration::from_millis(20));
    headlock_service::metrics::backup_bytes(4096);
    headlock_service::metrics::restore_bytes(2048);
    headlock_service::metrics::scheduled_rotation_failed();

    let text = s.metrics().await;
    let after = parse_exposition(&text);
    let grew = |name: &str, labels: &[(&str, &str)], by: f64| {
        let (b, a) = (value(&before, name, labels), value(&after, name, labels));
        assert!(a >= b + by, "{name} {labels:?}: {b} -> {a}\n{text}");
    };
    grew(
        "headlock_chunk_store_bytes_total",
        &[("operation", "put")],
        1000.0,
    );
    grew(
        "headlock_chunk_store_bytes_total",
        &[("operation", "get")],
        1000.0,
    );
    grew(
        "headlock_chunk_store_errors_total",
        &[("operation", "get"), ("kind", "not_found")],
        1.0,
    );
    grew(
        "headlock_chunk_store_duration_seconds_count",
        &[("operation", "put")],
        1.0,
    );
    grew(
        "headlock_rotations_total",
        &[("type", "MANUAL"), ("outcome", "success")],
        1.0,
    );
    grew(
        "headlock_rotations_total",
        &[("type", "OTHER"), ("outcome", "failure")],
        1.0,
    );
    grew(
        "headlock_rotation_duration_seconds_count",
        &[("type", "MANUAL")],
        1.0,
    );
    grew("headlock_backup_bytes_total", &[], 4096.0);
    grew("headlock_restore_bytes_total", &[], 2048.0);
    grew("headlock_scheduled_rotation_failures_total", &[], 1.0);
    // Rotation durations use the slow buckets (up to five minutes).
    assert!(text.contains("headlock_rotation_duration_seconds_bucket{type=\"MANUAL\",outcome=\"success\",le=\"300\"}"), "{text}");
    assert!(!text.contains(ID));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_operations_endpoints_when_not_configured() {
    // `app` without `Ops`: no /health, /ready or /metrics (Ops Manager's 404 body).
    let dir = tempfile::tempdir().unwrap();
    let kmip = Embedded::start_in(&dir.path().join("kmip"), "127.0.0.1:0").await;
    let store = SqlStore::open_sqlite(&dir.path().join("h.db"))
        .await
        .unwrap();
    let service = Service::new(
        Arc::new(store),
        Arc::new(key_manager(&kmip, vec![kmip.server()])),
    );
    let state = AppState::new(Shared {
        service,
        auth: DigestAuthenticator::new(rand_secret(), Duration::from_secs(300)),
        throttle: Throttle::new(ThrottleConfig::default()),
        public_origin: None,
        scheme: "http",
    });
    let app = headlock_api::app(state).into_make_service_with_connect_info::<PeerAddr>();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    for path in ["/health", "/ready", "/metrics"] {
        let r = request(addr, "GET", path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["errorCode"], "RESOURCE_NOT_FOUND", "{path}");
    }
}
