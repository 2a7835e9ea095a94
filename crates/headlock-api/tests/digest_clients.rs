//! Real HTTP clients against the digest module over real sockets: `curl --digest`,
//! Python `requests`' `HTTPDigestAuth`, `httpx.DigestAuth`, and raw requests shaped
//! like MongoDB's Go digest client. Each test starts its own axum server on
//! 127.0.0.1:0 (see `digest_clients/server.rs`). The Python clients come from the venv
//! that `scripts/http-clients-env.sh` creates on first use.

#[path = "digest_clients/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use headlock_api::auth::ThrottleConfig;
use md5::{Digest as _, Md5};
use serde_json::{Value, json};
use server::{CLUSTER, GROUP, KEY_UUID, TestServer, key_body, key_path};
use sha2::Sha256;

const USER: &str = "alice@example.com";
const KEY: &str = "0b5e9a6c-3d2f-4e8b-9c1a-7f6e5d4c3b2a";

fn alice() -> TestServer {
    TestServer::start(&[(USER, KEY, &[])])
}

fn get_body() -> Value {
    key_body(GROUP, CLUSTER)
}

fn put_body() -> Value {
    let mut b = get_body();
    b.as_object_mut().unwrap().remove("encryptionKeyUUID");
    b
}

// ---- curl -------------------------------------------------------------------

/// Runs curl with `--digest -u user:key` and returns (status, body) per URL.
fn curl(user: &str, key: &str, extra: &[&str], urls: &[String]) -> Vec<(u16, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--digest", "-u", &format!("{user}:{key}")])
        .args(["-w", "\nHTTP_CODE=%{http_code}\n"])
        .args(extra)
        .args(urls)
        .output()
        .expect("curl must be installed to run these tests");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut results = Vec::new();
    let mut body = String::new();
    for line in text.lines() {
        if let Some(code) = line.strip_prefix("HTTP_CODE=") {
            results.push((code.parse().unwrap(), std::mem::take(&mut body)));
        } else {
            body.push_str(line);
        }
    }
    assert_eq!(results.len(), urls.len(), "{text}");
    results
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn accepts_curl_digest_get() {
    let s = alice();
    let r = curl(USER, KEY, &[], &[s.url(&key_path())]);
    assert_eq!(r[0].0, 200, "{}", r[0].1);
    assert_eq!(json_of(&r[0].1), get_body());
    let seen = s.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].status, seen[0].nc.as_deref()), (401, None));
    assert_eq!(seen[1].status, 200);
}

#[test]
fn accepts_curl_digest_put() {
    let s = alice();
    let r = curl(USER, KEY, &["-X", "PUT"], &[s.url(&key_path())]);
    assert_eq!(r[0].0, 201, "{}", r[0].1);
    assert_eq!(json_of(&r[0].1), put_body());
    assert!(s.seen().iter().all(|x| x.method == "PUT"));
}

#[test]
fn accepts_curl_digest_with_query_string() {
    let s = alice();
    let path = format!("{}?pretty=true", key_path());
    let r = curl(USER, KEY, &[], &[s.url(&path)]);
    assert_eq!(r[0].0, 200, "{}", r[0].1);
    assert_eq!(s.seen().last().unwrap().target, path);
}

#[test]
fn accepts_curl_with_several_urls_in_one_invocation() {
    // curl >= 7.66 gives each URL of one command line its own handle (sharing the
    // connection), so each does its own 401 round trip; all must pass.
    let s = alice();
    let urls: Vec<String> = (0..4)
        .map(|i| s.url(&format!("{}?pretty=true&n={i}", key_path())))
        .collect();
    let r = curl(USER, KEY, &[], &urls);
    for (status, body) in &r {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(json_of(body), get_body());
    }
    let seen = s.seen();
    assert_eq!(seen.iter().filter(|x| x.status == 200).count(), 4);
    assert!(
        seen.iter().all(|x| x.status == 200 || x.nc.is_none()),
        "{seen:?}"
    );
}

#[test]
fn accepts_curl_reusing_its_nonce_with_the_next_nc() {
    // Within one handle curl answers from its cached nonce without a new 401: here
    // when following a redirect (-L) to the key with a query string.
    let s = alice();
    let url = s.url(&key_path().replace("encryptionKey", "redirect"));
    let r = curl(USER, KEY, &["-L"], &[url]);
    assert_eq!(r[0].0, 200, "{}", r[0].1);
    assert_eq!(json_of(&r[0].1), get_body());
    let seen = s.seen();
    let statuses: Vec<u16> = seen.iter().map(|x| x.status).collect();
    assert_eq!(statuses, [401, 302, 200], "{seen:?}");
    assert_eq!(seen[1].nonce, seen[2].nonce);
    assert_eq!(seen[1].nc.as_deref(), Some("00000001"));
    assert_eq!(seen[2].nc.as_deref(), Some("00000002"));
    assert!(seen[2].target.ends_with("?pretty=true"));
}

#[test]
fn rejects_curl_with_wrong_key_every_time() {
    let s = alice();
    for _ in 0..3 {
        let r = curl(USER, "wrong-key", &[], &[s.url(&key_path())]);
        assert_eq!(r[0].0, 401);
        assert_eq!(
            json_of(&r[0].1),
            json!({"detail": "You are not authorized for this resource.", "error": 401, "reason": "Unauthorized"})
        );
    }
    // Each curl run: one challenge round trip, one refused response.
    let seen = s.seen();
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|x| x.status == 401));
}

#[test]
fn rejects_curl_from_outside_the_access_list() {
    let s = TestServer::start(&[
        ("bob", "bob-key", &["192.0.2.0/24", "2001:db8::/32"]),
        ("carol", "carol-key", &["10.0.0.0/8", "127.0.0.1"]),
    ]);
    let r = curl("bob", "bob-key", &[], &[s.url(&key_path())]);
    assert_eq!(r[0].0, 403);
    assert_eq!(
        json_of(&r[0].1)["errorCode"],
        json!("IP_ADDRESS_NOT_ON_ACCESS_LIST")
    );
    let r = curl("carol", "carol-key", &[], &[s.url(&key_path())]);
    assert_eq!(r[0].0, 200, "{}", r[0].1);
}

// ---- Python requests and httpx ------------------------------------------------

/// Runs `requests` or `httpx` (one session/client, one auth object for all calls)
/// over `calls` of (method, url); returns (status, body) per call.
const PY_CLIENT: &str = r#"
import json, sys
lib, user, key, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
out = []
if lib == "requests":
    import requests
    from requests.auth import HTTPDigestAuth
    with requests.Session() as s:
        s.auth = HTTPDigestAuth(user, key)
        for method, url in calls:
            r = s.request(method, url, timeout=30)
            out.append([r.status_code, r.text])
elif lib == "httpx":
    import httpx
    with httpx.Client(auth=httpx.DigestAuth(user, key), timeout=30) as c:
        for method, url in calls:
            r = c.request(method, url)
            out.append([r.status_code, r.text])
print(json.dumps(out))
"#;

fn py_client(lib: &str, user: &str, key: &str, calls: &[(&str, String)]) -> Vec<(u16, String)> {
    let out = Command::new(testkit::http_clients_python())
        .args([
            "-c",
            PY_CLIENT,
            lib,
            user,
            key,
            &serde_json::to_string(calls).unwrap(),
        ])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{lib} client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check_python_client(lib: &str) {
    let s = alice();
    let pretty = s.url(&format!("{}?pretty=true", key_path()));
    let calls = [
        ("GET", s.url(&key_path())),
        ("PUT", s.url(&key_path())),
        ("GET", pretty.clone()),
        ("GET", pretty),
    ];
    let r = py_client(lib, USER, KEY, &calls);
    let statuses: Vec<u16> = r.iter().map(|x| x.0).collect();
    assert_eq!(statuses, [200, 201, 200, 200], "{r:?}");
    assert_eq!(json_of(&r[0].1), get_body());
    assert_eq!(json_of(&r[1].1), put_body());
    assert_eq!(json_of(&r[3].1), get_body());
    // Both clients keep the nonce of the first challenge and count up: one 401,
    // then nc 1, 2, 3, 4 on one nonce.
    let seen = s.seen();
    assert_eq!(
        seen.iter().filter(|x| x.status == 401).count(),
        1,
        "{seen:?}"
    );
    let ok: Vec<_> = seen.iter().filter(|x| x.nc.is_some()).collect();
    assert!(ok.iter().all(|x| x.nonce == ok[0].nonce), "{seen:?}");
    let ncs: Vec<&str> = ok.iter().map(|x| x.nc.as_deref().unwrap()).collect();
    assert_eq!(ncs, ["00000001", "00000002", "00000003", "00000004"]);
    // requests joins the two WWW-Authenticate headers and the last algorithm wins;
    // httpx takes the first challenge.
    let expected_alg = if lib == "requests" { "SHA-256" } else { "MD5" };
    assert!(
        ok.iter()
            .all(|x| x.algorithm.as_deref() == Some(expected_alg)),
        "{seen:?}"
    );

    let r = py_client(lib, USER, "wrong-key", &calls[..2]);
    assert!(r.iter().all(|x| x.0 == 401), "{r:?}");
}

#[test]
fn accepts_python_requests_http_digest_auth() {
    check_python_client("requests");
}

#[test]
fn accepts_httpx_digest_auth() {
    check_python_client("httpx");
}

// ---- Go digest client, by hand over a raw socket --------------------------------

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn raw_request(addr: SocketAddr, method: &str, target: &str, auth: Option<&str>) -> RawResponse {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Go-http-client/1.1\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("end of headers");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The challenge as `github.com/mongodb-forks/digest` reads it: the first
/// `WWW-Authenticate` header, split on `", "`, quotes trimmed, unknown keys fatal.
fn go_parse_challenge(value: &str) -> Vec<(String, String)> {
    let rest = value.strip_prefix("Digest ").expect("Digest challenge");
    rest.split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("k=v");
            assert!(
                [
                    "realm",
                    "domain",
                    "nonce",
                    "opaque",
                    "stale",
                    "algorithm",
                    "qop"
                ]
                .contains(&k),
                "Go digest client refuses `{k}` in {value}"
            );
            (k.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

fn get<'a>(c: &'a [(String, String)], k: &str) -> &'a str {
    &c.iter().find(|(n, _)| n == k).unwrap().1
}

fn hex_hash(sha256: bool, s: &str) -> String {
    if sha256 {
        hex::encode(Sha256::digest(s.as_bytes()))
    } else {
        hex::encode(Md5::digest(s.as_bytes()))
    }
}

/// One request the way the Go client makes it: unauthenticated round trip, parse the
/// challenge (the `pick`th header), answer with `format` filling in the fields.
fn go_style_request(
    s: &TestServer,
    method: &str,
    target: &str,
    key: &str,
    pick: usize,
    nc: &str,
    quoted_qop: bool,
) -> (RawResponse, Vec<(String, String)>) {
    let first = raw_request(s.addr, method, target, None);
    assert_eq!(first.status, 401);
    let challenges = first.header_values("www-authenticate");
    assert_eq!(challenges.len(), 2, "{:?}", first.headers);
    let c = go_parse_challenge(challenges[pick]);
    let alg = get(&c, "algorithm");
    let sha = alg == "SHA-256";
    let cnonce = "6b8b4567327b23c6";
    let ha1 = hex_hash(sha, &format!("{USER}:{}:{key}", get(&c, "realm")));
    let ha2 = hex_hash(sha, &format!("{method}:{target}"));
    let response = hex_hash(
        sha,
        &format!(
            "{ha1}:{}:{nc}:{cnonce}:{}:{ha2}",
            get(&c, "nonce"),
            get(&c, "qop")
        ),
    );
    let qop = if quoted_qop {
        format!("\"{}\"", get(&c, "qop"))
    } else {
        get(&c, "qop").to_owned()
    };
    let header = format!(
        "Digest username=\"{USER}\", realm=\"{}\", nonce=\"{}\", uri=\"{target}\", response=\"{response}\", algorithm=\"{alg}\", opaque=\"{}\", qop={qop}, nc={nc}, cnonce=\"{cnonce}\"",
        get(&c, "realm"),
        get(&c, "nonce"),
        get(&c, "opaque"),
    );
    (raw_request(s.addr, method, target, Some(&header)), c)
}

#[test]
fn accepts_challenge_as_the_go_client_parses_it() {
    let s = alice();
    let r = raw_request(s.addr, "GET", &key_path(), None);
    assert_eq!(r.status, 401);
    let ch = r.header_values("www-authenticate");
    assert_eq!(ch.len(), 2);
    for (v, alg) in ch.iter().zip(["MD5", "SHA-256"]) {
        let c = go_parse_challenge(v);
        let keys: Vec<&str> = c.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "realm",
                "domain",
                "nonce",
                "opaque",
                "algorithm",
                "qop",
                "stale"
            ]
        );
        assert_eq!(get(&c, "realm"), "MMS Public API");
        assert_eq!(get(&c, "qop"), "auth");
        assert_eq!(get(&c, "algorithm"), alg);
        assert_eq!(get(&c, "stale"), "false");
        assert!(v.contains(r#"qop="auth""#) && v.contains(r#"domain="""#));
    }
    assert_eq!(
        json_of(&r.body),
        json!({"detail": "You are not authorized for this resource.", "error": 401, "reason": "Unauthorized"})
    );
}

#[test]
fn accepts_go_client_header_with_quoted_algorithm_and_query() {
    let s = alice();
    let target = format!("{}?pretty=true", key_path());
    let (r, _) = go_style_request(&s, "GET", &target, KEY, 0, "00000001", false);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r.body), get_body());
    // A fresh 401 round trip before every request, nc=1 each time.
    let (r, _) = go_style_request(&s, "PUT", &target, KEY, 0, "00000001", false);
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn accepts_unpadded_nc_and_quoted_qop() {
    let s = alice();
    let target = format!("{}?pretty=true", key_path());
    let (r, _) = go_style_request(&s, "GET", &target, KEY, 0, "1", true);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.seen().last().unwrap().nc.as_deref(), Some("1"));
}

#[test]
fn accepts_sha256_from_the_second_challenge() {
    let s = alice();
    let (r, _) = go_style_request(&s, "GET", &key_path(), KEY, 1, "1", false);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.seen().last().unwrap().algorithm.as_deref(),
        Some("SHA-256")
    );
    assert!(r.body.contains(KEY_UUID));
}

#[test]
fn rejects_unknown_user_and_wrong_key_with_identical_answers() {
    let s = alice();
    let (wrong, _) = go_style_request(&s, "GET", &key_path(), "wrong", 0, "1", false);
    let first = raw_request(s.addr, "GET", &key_path(), None);
    let c = go_parse_challenge(first.header_values("www-authenticate")[0]);
    let header = format!(
        "Digest username=\"nobody@example.com\", realm=\"MMS Public API\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm=\"MD5\", qop=auth, nc=00000001, cnonce=\"abc\"",
        get(&c, "nonce"),
        key_path(),
        "0".repeat(32)
    );
    let unknown = raw_request(s.addr, "GET", &key_path(), Some(&header));
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    let shape = |r: &RawResponse| -> Vec<(String, String)> {
        r.header_values("www-authenticate")
            .iter()
            .flat_map(|v| go_parse_challenge(v))
            .filter(|(k, _)| k != "nonce")
            .collect()
    };
    assert_eq!(shape(&wrong), shape(&unknown));
    let names = |r: &RawResponse| -> Vec<String> {
        let mut v: Vec<String> = r
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .map(|(n, v)| format!("{n}:{}", v.len()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&wrong), names(&unknown));
}

#[test]
fn rejects_replayed_request_verbatim() {
    let s = alice();
    let first = raw_request(s.addr, "GET", &key_path(), None);
    let c = go_parse_challenge(first.header_values("www-authenticate")[0]);
    let ha1 = hex_hash(false, &format!("{USER}:MMS Public API:{KEY}"));
    let ha2 = hex_hash(false, &format!("GET:{}", key_path()));
    let resp = hex_hash(
        false,
        &format!("{ha1}:{}:00000001:xyz:auth:{ha2}", get(&c, "nonce")),
    );
    let header = format!(
        "Digest username=\"{USER}\", realm=\"MMS Public API\", nonce=\"{}\", uri=\"{}\", response=\"{resp}\", qop=auth, nc=00000001, cnonce=\"xyz\"",
        get(&c, "nonce"),
        key_path()
    );
    assert_eq!(
        raw_request(s.addr, "GET", &key_path(), Some(&header)).status,
        200
    );
    let again = raw_request(s.addr, "GET", &key_path(), Some(&header));
    assert_eq!(again.status, 401);
}

#[test]
fn rejects_expired_nonce_with_stale_true() {
    let s = TestServer::start_with(
        &[(USER, KEY, &[])],
        Duration::from_millis(1),
        ThrottleConfig::default(),
    );
    let first = raw_request(s.addr, "GET", &key_path(), None);
    let c = go_parse_challenge(first.header_values("www-authenticate")[0]);
    // Let the 1 ms nonce lifetime pass (a sleep for expiry, not a timing assertion).
    std::thread::sleep(Duration::from_millis(20));
    let answer = |key: &str| {
        let ha1 = hex_hash(false, &format!("{USER}:MMS Public API:{key}"));
        let ha2 = hex_hash(false, &format!("GET:{}", key_path()));
        let resp = hex_hash(false, &format!("{ha1}:{}:1:q:auth:{ha2}", get(&c, "nonce")));
        format!(
            "Digest username=\"{USER}\", realm=\"MMS Public API\", nonce=\"{}\", uri=\"{}\", response=\"{resp}\", qop=auth, nc=1, cnonce=\"q\"",
            get(&c, "nonce"),
            key_path()
        )
    };
    let stale = raw_request(s.addr, "GET", &key_path(), Some(&answer(KEY)));
    assert_eq!(stale.status, 401);
    for v in stale.header_values("www-authenticate") {
        assert_eq!(get(&go_parse_challenge(v), "stale"), "true", "{v}");
    }
    // A wrong key on the same old nonce is not told the nonce is merely stale.
    let wrong = raw_request(s.addr, "GET", &key_path(), Some(&answer("wrong")));
    assert_eq!(wrong.status, 401);
    for v in wrong.header_values("www-authenticate") {
        assert_eq!(get(&go_parse_challenge(v), "stale"), "false", "{v}");
    }
}

#[test]
fn rejects_with_429_after_repeated_failures_even_with_the_right_key() {
    let s = TestServer::start_with(
        &[(USER, KEY, &[])],
        Duration::from_secs(300),
        ThrottleConfig {
            base_delay: Duration::from_secs(600),
            ..ThrottleConfig::default()
        },
    );
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (r, _) = go_style_request(&s, "GET", &key_path(), "wrong", 0, "1", false);
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(json_of(&r.body)["errorCode"], json!("RATE_LIMITED"));
            let retry: u64 = r.header_values("retry-after")[0].parse().unwrap();
            assert!((1..=600).contains(&retry), "{retry}");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 401, 429]);
    // The right key is throttled too while the user is in a delay.
    let (r, _) = go_style_request(&s, "GET", &key_path(), KEY, 0, "1", false);
    assert_eq!(r.status, 429);
}
