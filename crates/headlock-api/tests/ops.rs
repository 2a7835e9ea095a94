//! The operations endpoints (`/metrics`, `/health`, `/ready`) of the real router, over
//! real sockets, in front of a real service: SQLite metadata store, testkit's embedded KMIP
//! server (`kmip-server`) over loopback mutual TLS, and the local-directory chunk store.
//! Each test has its own temporary directory and ports; requests go through `reqwest` and
//! `/metrics` is read with `prometheus-parse`.
//!
//! The Prometheus recorder is process-wide and the tests run in parallel, so counters
//! are compared before and after (they only grow), never expected to hold an exact value.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use headlock_api::auth::{DigestAuthenticator, Throttle, ThrottleConfig, derive_secrets};
use headlock_api::metrics::Metrics;
use headlock_api::{AppState, Ops, PeerAddr, Shared};
use headlock_core::BlobStore;
use headlock_core::KeyManager;
use headlock_core::envelope::{DataKey, WrapContext};
use headlock_core::keys::{KeyState, KmipUid};
use headlock_core::model::Role;
use headlock_kmip::KmipKeyManager;
use headlock_service::Service;
use headlock_service::health::HealthMonitor;
use headlock_service::metrics::MeteredBlobStore;
use headlock_service::users::DigestSecrets;
use headlock_store::SqlStore;
use headlock_store::blob::ObjectBlobStore;
use prometheus_parse::{LineInfo, Sample, Scrape, Value as PromValue};
use serde_json::Value;
use testkit::kmip::{Embedded, client_config, refused_address};
use tokio::net::TcpListener;

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
    service: Service,
    kmip: Embedded,
    monitor: HealthMonitor,
    keys: Arc<KmipKeyManager>,
    dir: tempfile::TempDir,
    /// Every `(method, path template)` the router mounts.
    routes: Vec<(axum::http::Method, String)>,
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
            service: service.clone(),
            auth: DigestAuthenticator::new(rand_secret(), Duration::from_secs(300)),
            throttle: Throttle::new(ThrottleConfig::default()),
            public_origin: None,
            scheme: "http",
        });
        let ops = Ops {
            health: Some(monitor.clone()),
            metrics: Some(Metrics::install().unwrap()),
        };
        let (app, routes) = headlock_api::app_and_routes(state, ops);
        let app = app.into_make_service_with_connect_info::<PeerAddr>();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stack {
            api,
            service,
            kmip,
            monitor,
            keys,
            dir,
            routes,
        }
    }

    async fn get(&self, path: &str) -> Response {
        get(self.api, path).await
    }

    /// A user with `role` (in `group` for a group role); returns its API key.
    async fn user(&self, username: &str, role: Role, group: Option<&str>) -> String {
        let key = format!("key-of-{username}");
        let s = derive_secrets(username, &key);
        let secrets = DigestSecrets {
            ha1_md5: s.ha1_md5.to_vec(),
            ha1_sha256: s.ha1_sha256.to_vec(),
        };
        self.service
            .users()
            .create_user(username, role, group, secrets)
            .await
            .unwrap();
        key
    }

    /// A GET with `curl --digest` as `username` (no credentials with None): status and
    /// body.
    async fn get_as(&self, user: Option<(&str, &str)>, path: &str) -> (u16, String) {
        let mut command = std::process::Command::new("curl");
        command.args(["-sS", "-w", "\n%{http_code}"]);
        if let Some((username, key)) = user {
            command.args(["--digest", "-u", &format!("{username}:{key}")]);
        }
        command.arg(format!("http://{}{path}", self.api));
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("curl must be installed to run these tests");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_string())
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

// ---- HTTP and the Prometheus text format --------------------------------------------

struct Response {
    status: u16,
    content_type: Option<String>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One GET with reqwest, its body read to the end.
async fn get(addr: SocketAddr, path: &str) -> Response {
    // reqwest is built without a crypto provider; plain HTTP needs none, but building a
    // client wants a process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.text().await.unwrap();
    Response {
        status,
        content_type,
        body,
    }
}

/// `c`, or a stand-in for `{` and `}`: prometheus-parse 0.2.5 reads a label set up to the
/// first `}`, so a route template such as `/groups/{group_id}` in a label value would
/// otherwise make it skip the whole sample.
fn mask(c: char) -> char {
    match c {
        '{' => '\u{e000}',
        '}' => '\u{e001}',
        c => c,
    }
}

fn masked(value: &str) -> String {
    value.chars().map(mask).collect()
}

/// The samples of an exposition; panics on a sample line prometheus-parse cannot read
/// (it would skip it silently).
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut lines = Vec::new();
    for line in text.lines() {
        // Mask the braces between the quotes of label values.
        let (mut out, mut quoted, mut escaped) = (String::new(), false, false);
        for c in line.chars() {
            out.push(if quoted { mask(c) } else { c });
            quoted ^= c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
        }
        let is_sample = matches!(
            LineInfo::parse(&out),
            LineInfo::Sample { value, .. } if value.parse::<f64>().is_ok()
        );
        let is_other = out.trim().is_empty() || out.starts_with('#');
        assert!(is_sample || is_other, "not a valid sample: {line}");
        lines.push(Ok(out));
    }
    Scrape::parse(lines.into_iter()).unwrap().samples
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k) == Some(masked(v).as_str()))
        })
        .map(|s| match s.value {
            PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => v,
            ref other => panic!("{name} is not a single value: {other:?}"),
        })
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
        r.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let samples = parse_exposition(&r.body);
    assert!(!samples.is_empty());
    // Histograms are real histograms: buckets ending in a +Inf bucket, sum and count.
    let name = "headlock_http_request_duration_seconds";
    let buckets = samples.iter().find_map(|s| match &s.value {
        PromValue::Histogram(buckets) if s.metric == name => Some(buckets),
        _ => None,
    });
    let buckets = buckets.unwrap_or_else(|| panic!("{name} buckets missing:\n{}", r.body));
    assert_eq!(buckets.last().unwrap().less_than, f64::INFINITY);
    for suffix in ["_sum", "_count"] {
        assert!(
            samples
                .iter()
                .any(|s| s.metric == format!("{name}{suffix}")),
            "{suffix} missing:\n{}",
            r.body
        );
    }
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
    assert_eq!(r.json(), serde_json::json!({"status": "starting"}));
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
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let body = r.json();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["database"], serde_json::json!({"ok": true}));
    assert_eq!(
        body["kmipServers"],
        serde_json::json!([{"reachable": true}])
    );
    let checked = body["checkedAt"].as_str().unwrap();
    time::OffsetDateTime::parse(checked, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("checkedAt {checked:?}: {e}"));
    let r = s.get("/ready").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"ready": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_kmip_servers_and_the_node_only_to_users_with_a_global_role() {
    let s = Stack::start(1).await;
    let (status, body) = s.get_as(None, "/api/public/v1.0/health").await;
    assert_eq!(status, 401, "{body}");
    let group = s
        .service
        .groups()
        .create_group(&headlock_service::Actor::system("test"), "g")
        .await
        .unwrap();
    let group = group.group.id.to_string();
    let owner = s.user("owner", Role::GroupOwner, Some(&group)).await;
    let (status, body) = s
        .get_as(Some(("owner", &owner)), "/api/public/v1.0/health")
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("USER_UNAUTHORIZED"), "{body}");
    let reader = s.user("reader", Role::GlobalReadOnly, None).await;
    let reader = Some(("reader", reader.as_str()));
    let (status, body) = s.get_as(reader, "/api/public/v1.0/health").await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "starting", "node": s.monitor.node()})
    );

    s.monitor.check_now().await;
    // Without authentication: whether each part answered, nothing that names them (the
    // unreachable server's error text names it too).
    let public = s.get("/health").await.body;
    let down = &s.keys.probe_servers().await[0].server;
    for secret in [s.kmip.server().as_str(), down.as_str(), s.monitor.node()] {
        assert!(!public.contains(secret), "{secret} in {public}");
    }
    // With it, everything.
    let (status, body) = s.get_as(reader, "/api/public/v1.0/health").await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["node"], s.monitor.node());
    assert!(body["database"]["latencyMs"].as_f64().unwrap() >= 0.0);
    let servers = &body["kmipServers"];
    assert_eq!(servers[0]["server"], down.as_str());
    assert_eq!(servers[0]["reachable"], false);
    assert!(
        servers[0]["error"]
            .as_str()
            .unwrap()
            .contains(down.as_str())
    );
    assert_eq!(servers[1]["server"], s.kmip.server().as_str());
    assert_eq!(servers[1]["reachable"], true);
    assert!(servers[1]["latencyMs"].as_f64().unwrap() > 0.0);
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
    assert_eq!(
        body["kmipServers"],
        serde_json::json!([{"reachable": false}])
    );

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
    let created = s
        .keys
        .create_master_key("cluster-failover", None)
        .await
        .unwrap();
    assert_eq!(created.server, s.kmip.server());
    let metrics = parse_exposition(&s.metrics().await);
    let addr = s.kmip.server();
    let addr = addr.as_str();
    let ok_create = [("server", addr), ("operation", "Create"), ("outcome", "ok")];
    // Create, Activate and Get went to this server as one message, counted under Create.
    assert_eq!(value(&metrics, "kmip_requests_total", &ok_create), 1.0);
    for operation in ["Activate", "Get"] {
        let labels = [("server", addr), ("operation", operation)];
        assert_eq!(value(&metrics, "kmip_requests_total", &labels), 0.0);
    }
    assert!(
        value(
            &metrics,
            "kmip_request_duration_seconds_count",
            &[("server", addr), ("operation", "Create")]
        ) >= 1.0
    );
}

/// A rotation's new key brings the material of the key it replaces in the same
/// message: no Get of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_brings_the_key_it_replaces_in_one_request() {
    let s = Stack::start(0).await;
    let first = s.keys.create_master_key("first", None).await.unwrap();
    assert!(first.previous.is_none());
    let second = s
        .keys
        .create_master_key("second", Some(&first.uid))
        .await
        .unwrap();
    // The material that came with the second key is the first key's: what one wraps,
    // the other unwraps (and the second key's own does not).
    let ctx = WrapContext {
        cluster_id: "c",
        master_key_uid: "m",
    };
    let wrapped = DataKey::generate()
        .unwrap()
        .wrap(second.previous.as_ref().unwrap(), &ctx)
        .unwrap();
    assert!(DataKey::unwrap(&wrapped, &first.material, &ctx).is_ok());
    assert!(DataKey::unwrap(&wrapped, &second.material, &ctx).is_err());
    let metrics = parse_exposition(&s.metrics().await);
    let addr = s.kmip.server();
    let count = |operation: &str| {
        let labels = [("server", addr.as_str()), ("operation", operation)];
        value(&metrics, "kmip_requests_total", &labels)
    };
    assert_eq!(
        (count("Create"), count("Activate"), count("Get")),
        (2.0, 0.0, 0.0)
    );
    // A replaced key the server does not have: the new key is made and Active all the
    // same, without it (the caller's own Get then says why).
    let missing = KmipUid::from("no-such-key");
    let third = s
        .keys
        .create_master_key("third", Some(&missing))
        .await
        .unwrap();
    assert!(third.previous.is_none());
    assert_eq!(
        s.keys.key_state(&third.uid).await.unwrap(),
        KeyState::Active
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
        let r = get(addr, path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["errorCode"], "RESOURCE_NOT_FOUND", "{path}");
    }
}

/// The OpenAPI document describes exactly the routes the router mounts (with every
/// operations endpoint mounted, as `headlock serve` does): a route added without its
/// description, or a description left after its route went, fails here.
#[tokio::test]
async fn openapi_document_describes_every_mounted_route() {
    let stack = Stack::start(0).await;
    assert!(stack.routes.len() > 30, "{:?}", stack.routes);
    if let Err(e) = headlock_api::openapi::check(&stack.routes) {
        panic!("{e}");
    }
    // And the router serves it, behind digest authentication.
    assert_eq!(stack.get("/api/public/v1.0/openapi.json").await.status, 401);
}
