//! The edges of the service, with the real binary: throttling of failed logins, access
//! lists, Python digest clients, and `headlock kmip-server` on its own.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{BIN, World, assert_error};

#[test]
fn repeated_wrong_keys_are_throttled_with_429_not_locked_out() {
    let w = World::new();
    let g = w.group("t");
    let mut wrong = w.admin.clone();
    wrong.key = "00000000-0000-4000-8000-000000000000".into();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(wrong.get(&format!("/groups/{g}")).status);
    }
    assert!(
        statuses.starts_with(&[401, 401, 401, 401, 401]),
        "{statuses:?}"
    );
    let limited = wrong.get(&format!("/groups/{g}"));
    let v = assert_error(&limited, 429, "RATE_LIMITED");
    assert!(v["detail"].as_str().unwrap().contains("retry"), "{v}");
    // Only the guessed user is slowed down: another user from the same address is not.
    let other = w.user("other", "GLOBAL_READ_ONLY", None);
    assert_eq!(other.get(&format!("/groups/{g}")).status, 200);
}

#[test]
fn access_lists_refuse_other_addresses() {
    let w = World::new();
    let g = w.group("acl");
    let api = w.user("listed", "GROUP_OWNER", Some(&g));
    assert_eq!(api.get(&format!("/groups/{g}")).status, 200);
    let set = |entries: &str| {
        let out = Command::new(BIN)
            .args(["users", "access-list", "--data-dir"])
            .arg(w.dir.path())
            .args(["--username", "listed", "--set", entries])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A running server sees changes made by another process within its cache's
    // lifetime (one second): poll for a little longer than that.
    let settle = |want: u16| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let r = api.get(&format!("/groups/{g}"));
            if r.status == want || std::time::Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    set("192.0.2.0/24");
    let v = assert_error(&settle(403), 403, "IP_ADDRESS_NOT_ON_ACCESS_LIST");
    assert_eq!(v["parameters"], serde_json::json!(["127.0.0.1"]));
    set("192.0.2.0/24,127.0.0.0/8");
    assert_eq!(settle(200).status, 200);
    // Entries that are not addresses are refused, and the list is unchanged.
    let out = Command::new(BIN)
        .args(["users", "access-list", "--data-dir"])
        .arg(w.dir.path())
        .args(["--username", "listed", "--set", "not-an-ip"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(api.get(&format!("/groups/{g}")).status, 200);
}

#[test]
fn python_requests_and_httpx_rotate_and_read_the_key() {
    let w = World::new();
    let g = w.group("py");
    let c = w.replica_set(&g, "rs0");
    w.enable_encryption(&g, &c);
    let before = w.key_of(&g, &c);
    let script = r#"
import sys, requests, httpx
from requests.auth import HTTPDigestAuth
base, user, key = sys.argv[1], sys.argv[2], sys.argv[3]
s = requests.Session()
s.auth = HTTPDigestAuth(user, key)
r = s.put(base, headers={"Content-Type": "application/json"})
assert r.status_code == 201, (r.status_code, r.text)
r = s.get(base)
assert r.status_code == 200, (r.status_code, r.text)
first = r.json()["encryptionKeyUUID"]
with httpx.Client(auth=httpx.DigestAuth(user, key)) as c:
    r = c.put(base)
    assert r.status_code == 201, (r.status_code, r.text)
    r = c.get(base + "?pretty=true")
    assert r.status_code == 200, (r.status_code, r.text)
    second = r.json()["encryptionKeyUUID"]
assert first != second
print(second)
"#;
    let out = Command::new(testkit::http_clients_python())
        .arg("-c")
        .arg(script)
        .arg(format!(
            "{}/groups/{g}/backupConfigs/{c}/encryptionKey",
            w.admin.base
        ))
        .arg(&w.admin.user)
        .arg(&w.admin.key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(w.key_of(&g, &c), last);
    assert_ne!(last, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn kmip_server_command_serves_clients_with_its_generated_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["kmip-server", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let addr = loop {
        let line = lines.next().expect("kmip-server exited").unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(rest) = line.strip_prefix("headlock: KMIP server listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(log.contains("NOT a hardware security module"), "{log}");
    let pki = kmip_server::pki::PkiPaths::in_dir(&dir.path().join("kmip"));
    let client = kmip::client::Client::new(testkit::kmip::client_config(&pki, vec![addr])).unwrap();
    let uid = client
        .create_symmetric_key(
            kmip::types::CryptographicAlgorithm::AES,
            256,
            kmip::types::CryptographicUsageMask::ENCRYPT,
            Some("edge-test"),
        )
        .await
        .unwrap();
    client.activate(&uid).await.unwrap();
    assert_eq!(client.get_symmetric_key(&uid).await.unwrap().key.len(), 32);
    assert_eq!(
        client.locate(Some("edge-test"), None, None).await.unwrap(),
        vec![uid]
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `serve` bounds glibc's malloc arenas by starting itself again with
/// `MALLOC_ARENA_MAX` set (the same process, which then serves), and leaves a value the
/// operator set alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn serve_bounds_malloc_arenas_and_keeps_an_operators_value() {
    fn arena_max(pid: u32) -> Vec<String> {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        environ
            .split(|b| *b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .filter_map(|v| v.strip_prefix("MALLOC_ARENA_MAX="))
            .map(str::to_owned)
            .collect()
    }
    let w = World::new();
    assert_eq!(w.admin.get("/groups").status, 200, "it serves");
    let expected = std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        (cores / 2).max(2).to_string()
    });
    assert_eq!(arena_max(w.server.pid()), vec![expected]);
    // Re-executed through /proc/self/exe, it still goes by its own name (`pgrep
    // headlock`, `pidof`, `ss -p`), not `exe`.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", w.server.pid())).unwrap();
    assert_eq!(comm.trim_end(), "headlock");

    let dir = tempfile::tempdir().unwrap();
    let set = common::Server::start_with_env(dir.path(), &[], &[("MALLOC_ARENA_MAX", "7")]);
    assert_eq!(arena_max(set.pid()), vec!["7".to_string()]);
}
