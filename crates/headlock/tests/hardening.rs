//! What an attacker or a careless client sends, with the real binary over real sockets
//! (issue 14): tar streams with huge long names and PAX headers, archives that put
//! entries below a file or a link, restore links and who sees them, `HEAD` on a link,
//! who may verify, request bodies that are not JSON, names with bidi controls, and a
//! plain-HTTP S3 endpoint.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, BIN, Resp, World, assert_error, upload};
use serde_json::Value;

/// A server with a group `g` and an encrypted replica set `c`.
fn world() -> (World, String, String) {
    let w = World::new();
    let g = w.group("hardening");
    let c = w.replica_set(&g, "rs0");
    w.enable_encryption(&g, &c);
    (w, g, c)
}

/// Peak resident memory of a process so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn answer(out: std::process::Output) -> Resp {
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Resp {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
    }
}

/// POSTs `head`, then `filler` bytes of `a`, then `tail` as a tree snapshot, streamed
/// through curl's standard input (never held whole in memory here either).
fn upload_streamed(api: &Api, g: &str, c: &str, head: Vec<u8>, filler: u64, tail: Vec<u8>) -> Resp {
    let mut child = Command::new("curl")
        .args(["-s", "--digest", "-u"])
        .arg(format!("{}:{}", api.user, api.key))
        .args([
            "-H",
            "Content-Type: application/x-tar",
            "-X",
            "POST",
            "-T",
            "-",
        ])
        .args(["-w", "\n%{http_code}", "--max-time", "120"])
        .arg(format!("{}/groups/{g}/clusters/{c}/snapshots", api.base))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // The server answers and stops reading early: a failed write ends the feed.
        let block = vec![b'a'; 1 << 20];
        let _ = (|| -> std::io::Result<()> {
            stdin.write_all(&head)?;
            let mut left = filler;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                stdin.write_all(&block[..n])?;
                left -= n as u64;
            }
            stdin.write_all(&tail)
        })();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    answer(out)
}

/// Zeros up to the next 512-byte block after `len` bytes, then one empty regular file
/// `x` and the end-of-archive marker: what follows an announcement of `len` bytes.
fn after_announcement(len: u64, first: &[u8]) -> Vec<u8> {
    let mut tail = first.to_vec();
    tail.resize(tail.len() + ((512 - len % 512) % 512) as usize, 0);
    let mut h = tar::Header::new_gnu();
    h.set_path("x").unwrap();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tail.extend_from_slice(h.as_bytes());
    tail.extend_from_slice(&[0; 1024]);
    tail
}

/// A header announcing `size` bytes of `kind` (a GNU long name or a PAX header).
fn announcing(kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    h.as_bytes().to_vec()
}

const HUGE: u64 = 256 << 20;
/// The most the service's peak memory may grow while it refuses a huge name: far less
/// than the name, far more than the buffers of one upload.
const GROWTH_BOUND: u64 = 96 << 20;

#[test]
fn rejects_a_huge_gnu_long_name_or_pax_path_with_400_without_reading_it_into_memory() {
    let (w, g, c) = world();
    let pid = w.server.pid();
    let before = peak_rss(pid);

    // A GNU long name of 256 MiB, then the entry it names.
    let r = upload_streamed(
        &w.admin,
        &g,
        &c,
        announcing(tar::EntryType::GNULongName, HUGE),
        HUGE,
        after_announcement(HUGE, b""),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let grew = peak_rss(pid).saturating_sub(before);
    eprintln!(
        "peak RSS growth refusing a 256 MiB long name: {} KiB",
        grew >> 10
    );
    assert!(
        grew < GROWTH_BOUND,
        "the service's peak memory grew by {} MiB refusing a 256 MiB long name",
        grew >> 20
    );
    let v = assert_error(&r, 400, "INVALID_ATTRIBUTE");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("long name or extended header of 268435456 bytes (at most 4096)"),
        "{v}"
    );

    // A PAX header of 256 MiB holding one `path` record.
    let value = HUGE - 64;
    let base = 1 + "path=".len() as u64 + value + 1;
    let mut len = base + 1;
    while len != base + len.to_string().len() as u64 {
        len = base + len.to_string().len() as u64;
    }
    let mut head = announcing(tar::EntryType::XHeader, len);
    head.extend_from_slice(format!("{len} path=").as_bytes());
    let r = upload_streamed(
        &w.admin,
        &g,
        &c,
        head,
        value,
        after_announcement(len, b"\n"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let grew = peak_rss(pid).saturating_sub(before);
    eprintln!(
        "peak RSS growth after a 256 MiB PAX header too: {} KiB",
        grew >> 10
    );
    assert!(
        grew < GROWTH_BOUND,
        "the service's peak memory grew by {} MiB refusing a 256 MiB PAX header",
        grew >> 20
    );
    let v = assert_error(&r, 400, "INVALID_ATTRIBUTE");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("extended header of {len} bytes (at most 65536)")),
        "{v}"
    );

    // The service is none the worse: a good archive goes in.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("good.tar");
    std::fs::write(&file, tar_of(&[Entry::File("a/b", b"data")])).unwrap();
    upload(&w.admin, &g, &c, &file, true).unwrap();
    assert_no_error_logged(&w);
}

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
}

fn tar_of(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        match e {
            Entry::File(path, data) => {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
            Entry::Link(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn assert_no_error_logged(w: &World) {
    let log = w.server.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.is_empty(),
        "refusals of client data logged as errors: {errors:#?}"
    );
}

#[test]
fn rejects_entries_below_a_file_or_a_link_with_400_not_500() {
    let (w, g, c) = world();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "a link, then an entry below it",
            tar_of(&[Entry::Link("lnk", "/etc"), Entry::File("lnk/x", b"x")]),
            "lnk/x is below lnk, which is a symbolic link in the archive, not a directory",
        ),
        (
            "a file, then an entry below it",
            tar_of(&[Entry::File("f", b"f"), Entry::File("f/x", b"x")]),
            "f/x is below f, which is a regular file in the archive, not a directory",
        ),
        (
            "an entry, then a file above it",
            tar_of(&[Entry::File("d/f/x", b"x"), Entry::File("d/f", b"f")]),
            "d/f/x is below d/f, which is a regular file in the archive, not a directory",
        ),
    ];
    for (what, tar, why) in cases {
        let file = dir.path().join("bad.tar");
        std::fs::write(&file, tar).unwrap();
        let (status, body) = upload(&w.admin, &g, &c, &file, true).unwrap_err();
        let r = Resp { status, body };
        let v = assert_error(&r, 400, "INVALID_ATTRIBUTE");
        assert!(v["detail"].as_str().unwrap().contains(why), "{what}: {v}");
    }
    let list = w.admin.expect(
        w.admin.get(&format!("/groups/{g}/clusters/{c}/snapshots")),
        200,
    );
    assert_eq!(list["totalCount"], 0, "{list}");
    assert_no_error_logged(&w);
}

/// A stream snapshot of `data` and a restore job for it, made by the admin: the job.
fn snapshot_and_job(w: &World, g: &str, c: &str, data: &[u8]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, data).unwrap();
    let snap = upload(&w.admin, g, c, &file, false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = w.admin.expect(
        w.admin.post(
            &format!("/groups/{g}/clusters/{c}/restoreJobs"),
            &format!(r#"{{"snapshotId":"{snap}"}}"#),
        ),
        200,
    )["results"][0]
        .clone();
    (snap, job)
}

#[test]
fn restore_links_are_shown_only_to_users_who_may_create_restore_jobs() {
    let (w, g, c) = world();
    let (_, job) = snapshot_and_job(&w, &g, &c, b"secret data");
    let url = job["delivery"]["url"].as_str().unwrap().to_string();
    let list_path = format!("/groups/{g}/clusters/{c}/restoreJobs");
    let job_path = format!("{list_path}/{}", job["id"].as_str().unwrap());

    let readers = [
        w.user("reader", "GROUP_READ_ONLY", Some(&g)),
        w.user("auditor", "GLOBAL_READ_ONLY", None),
    ];
    for reader in &readers {
        let list = reader.expect(reader.get(&list_path), 200);
        let shown = &list["results"][0];
        assert_eq!(shown["id"], job["id"], "{list}");
        assert_eq!(shown["delivery"]["statusName"], "READY", "{list}");
        assert!(
            shown["delivery"].get("url").is_none(),
            "{}: {list}",
            reader.user
        );
        let one = reader.expect(reader.get(&job_path), 200);
        assert!(
            one["delivery"].get("url").is_none(),
            "{}: {one}",
            reader.user
        );
    }
    let ops = w.user("ops", "GROUP_BACKUP_ADMIN", Some(&g));
    let one = ops.expect(ops.get(&job_path), 200);
    assert_eq!(one["delivery"]["url"], url.as_str(), "{one}");
    let list = ops.expect(ops.get(&list_path), 200);
    assert_eq!(
        list["results"][0]["delivery"]["url"],
        url.as_str(),
        "{list}"
    );
}

fn curl_status(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_head_request_does_not_use_up_a_restore_link() {
    let (w, g, c) = world();
    let data = common::noise(300_000, 3);
    let (_, job) = snapshot_and_job(&w, &g, &c, &data);
    let url = job["delivery"]["url"].as_str().unwrap();

    let head = Command::new("curl")
        .args(["-s", "-I", url])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: application/octet-stream"),
        "{head}"
    );
    assert!(head.contains("content-length: 300000"), "{head}");
    assert_eq!(curl_status(&["-I", url]), "200", "a second HEAD");

    let out = Command::new("curl").args(["-s", url]).output().unwrap();
    assert!(out.stdout == data, "the download after HEADs gets the data");
    assert_eq!(curl_status(&["-I", url]), "410", "HEAD on a used link");
    assert_eq!(curl_status(&[url]), "410", "GET on a used link");
    let forged = format!("{}0", &url[..url.len() - 1]);
    assert_eq!(
        curl_status(&["-I", &forged]),
        "410",
        "HEAD on a forged link"
    );
}

#[test]
fn read_only_users_cannot_start_verify() {
    let (w, g, c) = world();
    let (snap, _) = snapshot_and_job(&w, &g, &c, b"verify me");
    let path = format!("/groups/{g}/clusters/{c}/snapshots/{snap}/verify");
    for reader in [
        w.user("reader", "GROUP_READ_ONLY", Some(&g)),
        w.user("auditor", "GLOBAL_READ_ONLY", None),
    ] {
        assert_error(&reader.post(&path, ""), 403, "USER_UNAUTHORIZED");
    }
    let ops = w.user("ops", "GROUP_BACKUP_ADMIN", Some(&g));
    assert_eq!(ops.expect(ops.post(&path, ""), 200)["ok"], true);
}

/// `curl --digest` with exactly these headers and body.
fn raw_call(api: &Api, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Resp {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--digest", "-u"])
        .arg(format!("{}:{}", api.user, api.key))
        .args(["-X", method, "-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    answer(cmd.arg(format!("{}{path}", api.base)).output().unwrap())
}

#[test]
fn json_bodies_need_the_json_content_type() {
    let (w, g, c) = world();
    let api = &w.admin;
    for headers in [
        &["Content-Type: text/plain"][..],
        &["Content-Type: application/x-www-form-urlencoded"],
        &["Content-Type:"], // curl then sends none
    ] {
        let r = raw_call(api, "POST", "/groups", headers, Some(r#"{"name":"csrf"}"#));
        let v = assert_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
        assert_eq!(v["reason"], "Unsupported Media Type", "{v}");
        assert!(
            v["detail"].as_str().unwrap().contains("application/json"),
            "{v}"
        );
    }
    let r = raw_call(
        api,
        "PATCH",
        &format!("/groups/{g}/backupConfigs/{c}"),
        &["Content-Type: text/plain"],
        Some(r#"{"encryptionKeyRotationPeriodDays": 1}"#),
    );
    assert_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    assert_error(
        &raw_call(
            api,
            "POST",
            "/groups",
            &["Content-Type: text/plain"],
            Some(""),
        ),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    let r = raw_call(
        api,
        "POST",
        "/groups",
        &["Content-Type: application/json; charset=utf-8"],
        Some(r#"{"name":"with charset"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // The seed page's rotation: the JSON type and no body; and no type at all.
    let key = format!("/groups/{g}/backupConfigs/{c}/encryptionKey");
    let r = raw_call(api, "PUT", &key, &["Content-Type: application/json"], None);
    assert_eq!(r.status, 201, "{}", r.body);
    let r = raw_call(api, "PUT", &key, &[], None);
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn names_with_control_or_bidi_characters_are_refused() {
    let (w, g, _) = world();
    let api = &w.admin;
    for name in [
        "invoice\u{202E}fdp.exe",
        "a\u{2066}b\u{2069}",
        "x\u{200F}",
        "bell\u{7}",
    ] {
        let body = serde_json::json!({"name": name}).to_string();
        let v = assert_error(&api.post("/groups", &body), 400, "INVALID_ATTRIBUTE");
        assert!(v["detail"].as_str().unwrap().contains("bidi"), "{v}");
        let body = serde_json::json!({
            "clusterName": name, "typeName": "REPLICA_SET", "replicaSetName": "rs1",
        })
        .to_string();
        assert_error(
            &api.post(&format!("/groups/{g}/clusters"), &body),
            400,
            "INVALID_ATTRIBUTE",
        );
    }
    api.expect(api.post("/groups", r#"{"name":"Zürich – prod"}"#), 201);
    let out = Command::new(BIN)
        .args(["users", "create", "--data-dir"])
        .arg(w.dir.path())
        .args(["--username", "adm\u{202E}in", "--role", "GLOBAL_OWNER"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a username with a bidi override is refused"
    );
}

#[test]
fn serve_refuses_a_plain_http_s3_endpoint_without_the_explicit_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--s3-bucket", "chunks"])
        .args(["--s3-endpoint", "http://127.0.0.1:9"])
        .env_remove("HEADLOCK_S3_ALLOW_HTTP")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve kept running with a plain-HTTP S3 endpoint");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("plain HTTP"), "{err}");
    assert!(err.contains("--s3-allow-http"), "{err}");
}
