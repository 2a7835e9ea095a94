//! What a hostile or unlucky network does to `headlock serve`, with the real binary over
//! real sockets: failed logins from one address must not lock a user out everywhere, a
//! captured request must not replay after a restart, slow clients must not hold
//! connections or cluster locks forever, and a digest challenge to a request with a body
//! must leave the connection usable.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Api, Server, World, assert_error, create_user};
use md5::{Digest as _, Md5};

/// `curl --digest` as `api`'s user, from the loopback address `from` (curl binds its
/// socket there): status and body.
fn curl_from(api: &Api, from: &str, method: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--digest", "-u"])
        .arg(format!("{}:{}", api.user, api.key))
        .args(["--interface", from, "-X", method, "-w", "\n%{http_code}"])
        .args(["--max-time", "60"])
        .arg(format!("{}{path}", api.base))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[test]
fn wrong_keys_from_one_address_do_not_lock_the_user_out_of_another() {
    let w = World::new();
    let g = w.group("lockout");
    let mut wrong = w.admin.clone();
    wrong.key = "00000000-0000-4000-8000-000000000000".into();
    let path = format!("/groups/{g}");
    let statuses: Vec<u16> = (0..7)
        .map(|_| curl_from(&wrong, "127.0.0.1", "GET", &path).0)
        .collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 401, 429]);
    // The guessing address is slowed down, even with the right key...
    let (status, body) = curl_from(&w.admin, "127.0.0.1", "GET", &path);
    assert_eq!(status, 429, "{body}");
    // ...but the user's own address is not.
    let (status, body) = curl_from(&w.admin, "127.0.0.2", "GET", &path);
    assert_eq!(status, 200, "{body}");

    // Guesses spread over many addresses are an alert (a WARN and a metric), never a
    // refusal of the right key.
    for i in 10..40 {
        let (status, _) = curl_from(&wrong, &format!("127.0.0.{i}"), "GET", &path);
        assert_eq!(status, 401);
    }
    let (status, body) = curl_from(&w.admin, "127.0.0.99", "GET", &path);
    assert_eq!(status, 200, "{body}");
    let log = w.server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("many failed logins for one username")),
        "{log}"
    );
    let metrics = reqwest_free_get(&w.server, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("headlock_auth_user_alerts_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// `GET` without credentials, by curl: the body.
fn reqwest_free_get(server: &Server, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30"])
        .arg(format!("{}{path}", server.url))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `curl -v --digest` and returns (status, the `Authorization` header it sent
/// with the answered request).
fn curl_capturing_authorization(api: &Api, method: &str, path: &str, body: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-v", "--digest", "-u"])
        .arg(format!("{}:{}", api.user, api.key))
        .args(["-H", "Content-Type: application/json", "-X", method])
        .args([
            "--data-binary",
            body,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("{}{path}", api.base))
        .output()
        .unwrap();
    let trace = String::from_utf8_lossy(&out.stderr);
    let header = trace
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("> Authorization: "))
        .unwrap_or_else(|| panic!("no Authorization header sent: {trace}"))
        .trim_end()
        .to_string();
    (
        String::from_utf8(out.stdout).unwrap().parse().unwrap(),
        header,
    )
}

/// Sends `method path` with a given `Authorization` header and JSON body: status and
/// the `WWW-Authenticate` headers.
fn replay(
    server: &Server,
    authorization: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null"])
        .args(["-H", &format!("Authorization: {authorization}")])
        .args(["-H", "Content-Type: application/json", "-X", method])
        .args(["--data-binary", body, "--max-time", "30"])
        .arg(format!("{}/api/public/v1.0{path}", server.url))
        .output()
        .unwrap();
    let head = String::from_utf8(out.stdout).unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head)
}

#[test]
fn a_captured_request_does_not_replay_after_a_restart() {
    let mut w = World::new();
    let (status, captured) =
        curl_capturing_authorization(&w.admin, "POST", "/groups", r#"{"name": "first"}"#);
    assert_eq!(status, 201);
    // On the same process the replay window refuses it...
    let (status, _) = replay(
        &w.server,
        &captured,
        "POST",
        "/groups",
        r#"{"name": "again"}"#,
    );
    assert_eq!(status, 401);
    // ...and after a restart, with another body, too: its nonce was used by the
    // process before; the answer asks real clients for a fresh nonce (stale=true).
    w.server.restart();
    w.admin = Api::new(&w.server, "admin", &w.admin.key);
    let (status, head) = replay(
        &w.server,
        &captured,
        "POST",
        "/groups",
        r#"{"name": "evil"}"#,
    );
    assert_eq!(status, 401, "{head}");
    assert!(head.contains("stale=true"), "{head}");
    let groups = w.admin.expect(w.admin.get("/groups"), 200);
    let names: Vec<&str> = groups["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first"]);
}

/// A Python `requests` session or `httpx` client kept across a restart: reads
/// `METHOD URL` lines on stdin, prints one status per line.
const PY_SESSION: &str = r#"
import sys
lib, user, key = sys.argv[1], sys.argv[2], sys.argv[3]
if lib == "requests":
    import requests
    from requests.auth import HTTPDigestAuth
    client = requests.Session()
    client.auth = HTTPDigestAuth(user, key)
    call = lambda m, u: client.request(m, u, timeout=30).status_code
else:
    import httpx
    client = httpx.Client(auth=httpx.DigestAuth(user, key), timeout=30)
    call = lambda m, u: client.request(m, u).status_code
for line in sys.stdin:
    method, url = line.split()
    print(call(method, url), flush=True)
"#;

#[test]
fn digest_clients_keep_working_across_a_restart() {
    let mut w = World::new();
    let g = w.group("restart");
    let python = testkit::http_clients_python();
    let mut clients: Vec<_> = ["requests", "httpx"]
        .iter()
        .map(|lib| {
            let mut child = Command::new(&python)
                .args(["-c", PY_SESSION, lib, &w.admin.user, &w.admin.key])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = BufReader::new(child.stdout.take().unwrap());
            (child, out)
        })
        .collect();
    let ask = |clients: &mut Vec<(std::process::Child, BufReader<std::process::ChildStdout>)>,
               base: &str| {
        clients
            .iter_mut()
            .map(|(child, out)| {
                let stdin = child.stdin.as_mut().unwrap();
                writeln!(stdin, "GET {base}/groups/{g}").unwrap();
                stdin.flush().unwrap();
                let mut line = String::new();
                out.read_line(&mut line).unwrap();
                line.trim().to_string()
            })
            .collect::<Vec<_>>()
    };
    for _ in 0..3 {
        assert_eq!(ask(&mut clients, &w.admin.base), ["200", "200"]);
    }
    w.server.restart();
    w.admin = Api::new(&w.server, "admin", &w.admin.key);
    // Each client's next request carries the nonce of the process before the restart:
    // answered stale=true, and the client retries with the new nonce by itself.
    for _ in 0..3 {
        assert_eq!(ask(&mut clients, &w.admin.base), ["200", "200"]);
    }
    assert_eq!(w.admin.get(&format!("/groups/{g}")).status, 200);
    for (mut child, _) in clients {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
}

/// A server whose connection timeouts are two seconds.
fn impatient_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let key = create_user(dir.path(), "admin", "GLOBAL_OWNER", None);
    let server = Server::start_with_env(
        dir.path(),
        &[],
        &[
            ("HEADLOCK_HTTP_HEADER_TIMEOUT_SECS", "2"),
            ("HEADLOCK_HTTP_BODY_TIMEOUT_SECS", "2"),
        ],
    );
    let admin = Api::new(&server, "admin", &key);
    World { dir, server, admin }
}

fn connect(server: &Server) -> TcpStream {
    let addr = server.url.strip_prefix("http://").unwrap();
    let s = TcpStream::connect(addr).unwrap();
    // Far longer than the server's timeouts: only a server that never closes the
    // connection makes a read wait this long.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Reads until the server closes the connection: what it sent, or the read error
/// (a reset is a close too; a timeout is not).
fn read_until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the server kept the connection open ({e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn slow_clients_are_disconnected_after_the_configured_timeouts() {
    let w = impatient_world();
    // Half a request head, never finished.
    let mut partial = connect(&w.server);
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .unwrap();
    // A head trickled a byte at a time, faster than any timeout per byte.
    let mut trickle = connect(&w.server);
    let trickler = std::thread::spawn({
        let mut s = trickle.try_clone().unwrap();
        move || {
            for b in b"GET /health HTTP/1.1\r\nX-Slow: "
                .iter()
                .chain([b'a'; 200].iter())
            {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    // A kept-alive connection that goes quiet after one answer.
    let mut idle = connect(&w.server);
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // A body that stops after four bytes.
    let mut stalled = connect(&w.server);
    stalled
        .write_all(b"POST /api/public/v1.0/groups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na")
        .unwrap();

    assert_eq!(read_until_closed(&mut partial), "");
    assert_eq!(read_until_closed(&mut trickle), "");
    trickler.join().unwrap();
    let answered = read_until_closed(&mut idle);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let refused = read_until_closed(&mut stalled);
    assert!(
        refused.is_empty() || refused.starts_with("HTTP/1.1 401"),
        "{refused}"
    );
    // The server still serves.
    assert_eq!(w.admin.get("/groups").status, 200);
}

/// The `Authorization` value for `method uri` from the challenge of a 401 `head`
/// (MD5, qop=auth, nc=1), as a digest client computes it.
fn answer_challenge(head: &str, user: &str, key: &str, method: &str, uri: &str) -> String {
    let challenge = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:") && l.contains("MD5"))
        .unwrap_or_else(|| panic!("no MD5 challenge: {head}"));
    let param = |name: &str| {
        let start = challenge.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let len = challenge[start..].find('"').unwrap();
        challenge[start..start + len].to_string()
    };
    let (nonce, opaque) = (param("nonce"), param("opaque"));
    let h = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let ha1 = h(format!("{user}:MMS Public API:{key}"));
    let ha2 = h(format!("{method}:{uri}"));
    let cnonce = "0a4f113b";
    let response = h(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    format!(
        r#"Digest username="{user}", realm="MMS Public API", nonce="{nonce}", uri="{uri}", algorithm=MD5, qop=auth, nc=00000001, cnonce="{cnonce}", response="{response}", opaque="{opaque}""#
    )
}

#[test]
fn a_stalled_upload_times_out_and_frees_its_cluster() {
    let w = impatient_world();
    let g = w.group("stall");
    let c = w.replica_set(&g, "rs0");
    w.enable_encryption(&g, &c);
    let data = w.dir.path().join("data.bin");
    std::fs::write(&data, common::noise(100_000, 7)).unwrap();
    let first = common::upload(&w.admin, &g, &c, &data, false).unwrap();
    let first_id = first["id"].as_str().unwrap().to_string();

    // An authenticated upload that sends four bytes of its body and stops.
    let uri = format!("/api/public/v1.0/groups/{g}/clusters/{c}/snapshots");
    let challenge = {
        let mut s = connect(&w.server);
        write!(
            s,
            "POST {uri} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        read_until_closed(&mut s)
    };
    let auth = answer_challenge(&challenge, "admin", &w.admin.key, "POST", &uri);
    let mut stalled = connect(&w.server);
    write!(
        stalled,
        "POST {uri} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\nabcd"
    )
    .unwrap();
    // Let the server start the backup, then queue a DELETE and another backup of the
    // same cluster behind it: both finish once the stalled upload has timed out.
    std::thread::sleep(Duration::from_millis(500));
    let delete = std::thread::spawn({
        let api = w.admin.clone();
        let path = format!("/groups/{g}/clusters/{c}/snapshots/{first_id}");
        move || api.delete(&path)
    });
    let later = std::thread::spawn({
        let api = w.admin.clone();
        let url = format!("{}/groups/{g}/clusters/{c}/snapshots", w.admin.base);
        let data = data.clone();
        move || {
            let out = Command::new("curl")
                .args(["-s", "--digest", "-u"])
                .arg(format!("{}:{}", api.user, api.key))
                .args(["-H", "Content-Type: application/octet-stream", "-T"])
                .arg(&data)
                .args(["-X", "POST", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(["--max-time", "60"])
                .arg(url)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        }
    });
    let deleted = delete.join().unwrap();
    assert!(
        [200, 202, 204].contains(&deleted.status),
        "{} {}",
        deleted.status,
        deleted.body
    );
    assert_eq!(
        later.join().unwrap(),
        "201",
        "a backup after the stalled one"
    );
    let refused = read_until_closed(&mut stalled);
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let r = w
        .admin
        .get(&format!("/groups/{g}/clusters/{c}/snapshots/{first_id}"));
    assert_error(&r, 404, "SNAPSHOT_NOT_FOUND");
}

/// Reads one HTTP/1.1 response with a `Content-Length` body from `s`: its head and
/// body, or `None` if the connection ended first.
fn read_response(s: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match s.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((head, String::from_utf8_lossy(&body).into_owned()))
}

#[test]
fn a_challenge_to_a_request_with_a_body_leaves_the_connection_usable() {
    let w = World::new();
    let s = connect(&w.server);
    let mut writer = s.try_clone().unwrap();
    let mut reader = BufReader::new(s);
    let body = r#"{"name": "late-body"}"#;
    // The head first, the body a moment later (as clients that write them separately
    // do): the 401 must not leave the body unread and close the connection.
    write!(
        writer,
        "POST /api/public/v1.0/groups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    writer.write_all(body.as_bytes()).unwrap();
    let (head, _) = read_response(&mut reader).expect("the 401");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    // The client answers the challenge on the same connection.
    let auth = answer_challenge(
        &head,
        "admin",
        &w.admin.key,
        "POST",
        "/api/public/v1.0/groups",
    );
    write!(
        writer,
        "POST /api/public/v1.0/groups HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (head, answer) = read_response(&mut reader).expect("an answer on the same connection");
    assert!(head.starts_with("HTTP/1.1 201"), "{head}{answer}");
    assert!(answer.contains("late-body"), "{answer}");
}

#[test]
fn digest_clients_post_and_patch_through_many_challenges() {
    let w = World::new();
    let g = w.group("challenges");
    let c = w.replica_set(&g, "rs0");
    let script = r#"
import sys, requests, httpx
from requests.auth import HTTPDigestAuth
base, user, key, g, c, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
statuses = []
with requests.Session() as s:
    for i in range(n):
        # A new auth object each time: every request is challenged, then sent again
        # with its body on the kept-alive connection.
        auth = HTTPDigestAuth(user, key)
        statuses.append(s.post(f"{base}/groups", json={"name": f"rq-{i}"}, auth=auth, timeout=30).status_code)
        auth = HTTPDigestAuth(user, key)
        statuses.append(s.patch(f"{base}/groups/{g}/backupConfigs/{c}", json={"encryptionKeyRotationPeriodDays": 30 + i}, auth=auth, timeout=30).status_code)
with httpx.Client(timeout=30) as client:
    for i in range(n):
        statuses.append(client.post(f"{base}/groups", json={"name": f"hx-{i}"}, auth=httpx.DigestAuth(user, key)).status_code)
        statuses.append(client.patch(f"{base}/groups/{g}/backupConfigs/{c}", json={"encryptionKeyRotationPeriodDays": 60 + i}, auth=httpx.DigestAuth(user, key)).status_code)
print(" ".join(map(str, statuses)))
"#;
    let n = 25;
    let out = Command::new(testkit::http_clients_python())
        .args([
            "-c",
            script,
            &w.admin.base,
            &w.admin.user,
            &w.admin.key,
            &g,
            &c,
        ])
        .arg(n.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses = String::from_utf8(out.stdout).unwrap();
    let expected: Vec<&str> = ["201", "200"].repeat(2 * n);
    assert_eq!(statuses.split_whitespace().collect::<Vec<_>>(), expected);

    // curl: many POSTs in one invocation, on one connection.
    let urls: Vec<String> = (0..n).map(|_| format!("{}/groups", w.admin.base)).collect();
    let out = Command::new("curl")
        .args(["-s", "--digest", "-u"])
        .arg(format!("{}:{}", w.admin.user, w.admin.key))
        .args(["-H", "Content-Type: application/json", "-X", "POST"])
        .args(["--data-binary", r#"{"name": "curl-group"}"#])
        .args(["-w", "\nHTTP_CODE=%{http_code}\n", "--max-time", "60"])
        .args(&urls)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let codes: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("HTTP_CODE="))
        .collect();
    // One group of that name, then the duplicates refused: every request answered.
    assert_eq!(codes.len(), n, "{codes:?}");
    assert_eq!(codes[0], "201", "{codes:?}");
    assert!(codes[1..].iter().all(|c| *c == "409"), "{codes:?}");
}

#[test]
fn serve_warns_when_it_listens_beyond_loopback_without_tls() {
    const WARNING: &str = "non-loopback address without TLS";
    let w = World::new();
    assert!(!w.server.log().contains(WARNING), "{}", w.server.log());
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .env("HEADLOCK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.starts_with("headlock: API listening on") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(WARNING)),
        "{log}"
    );
}
