//! The web console in a real browser: Debian's chromium, headless, driven through
//! chromedriver (WebDriver, with the fantoccini crate) against the real `headlock serve`.
//!
//! scripts/test.sh installs `chromium` and `chromium-driver` (scripts/chromium.sh). Without
//! chromedriver the test fails under `CI=true` (as test.sh runs it) and is skipped, loudly,
//! otherwise.
//!
//! Screenshots of every page are written to `HEADLOCK_CONSOLE_SCREENSHOTS` when it is set
//! (docs/console is where docs/console.md finds them), else to a temporary directory.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{World, create_user, noise};
use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver, from PATH or Debian's place.
fn chromedriver() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("chromedriver"))
            .find(|f| f.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/bin/chromedriver");
        debian.is_file().then_some(debian)
    })
}

/// The chromedriver process, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver(bin: &Path) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver, downloads: &Path) -> Client {
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000",
                     "--force-device-scale-factor=1", "--lang=en-US"],
            "prefs": {
                "download.default_directory": downloads.to_str().unwrap(),
                "download.prompt_for_download": false,
            },
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// Where screenshots go.
fn shots_dir(tmp: &Path) -> PathBuf {
    match std::env::var_os("HEADLOCK_CONSOLE_SCREENSHOTS") {
        Some(d) => {
            let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(d);
            std::fs::create_dir_all(&d).unwrap();
            d
        }
        None => tmp.to_path_buf(),
    }
}

/// A screenshot of the whole page (the window grown to the page's height first).
async fn shot(c: &Client, dir: &Path, name: &str) {
    let h = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(1000)
        .clamp(600, 4000);
    c.set_window_size(1280, h as u32 + 140).await.unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    c.set_window_size(1280, 1000).await.unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => panic!(
            "{css}: {e}; at {}:\n{}",
            c.current_url().await.unwrap(),
            c.source().await.unwrap_or_default()
        ),
    }
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.unwrap().len()
}

/// Clicks `css`, which submits a form or follows a link, and waits for the next page
/// (until the current one's root element is gone).
async fn click(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "{css}: no new page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens the confirmation of the button `css`, checks that it names `what`, confirms.
async fn confirm(c: &Client, css: &str, what: &str) {
    click(c, css).await;
    let said = text(c, "#what").await;
    assert!(said.contains(what), "{said:?} should name {what:?}");
    click(c, "#confirm").await;
}

/// Types `value` into the field with id `id`.
async fn fill(c: &Client, id: &str, value: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .send_keys(value)
        .await
        .unwrap();
}

/// The last path segment of the page's URL (the id a create redirected to).
async fn last_segment(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    url.path().rsplit('/').next().unwrap().to_string()
}

async fn sign_in(c: &Client, base: &str, user: &str, key: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path() == "/sign-in");
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Id("api_key"))
        .await
        .unwrap()
        .send_keys(key)
        .await
        .unwrap();
    click(c, "#sign-in").await;
    assert_eq!(text(c, "#who").await.split_whitespace().next(), Some(user));
}

/// `curl` against the console: the status and the headers.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let code = text[text.len() - 3..].parse().unwrap();
    (code, text)
}

/// A `POST` of `form` with the session cookie and extra headers.
fn post(url: &str, cookie: &str, form: &str, headers: &[&str]) -> u16 {
    let mut args = vec![
        "-X".to_string(),
        "POST".into(),
        "-H".into(),
        format!("Cookie: headlock-session={cookie}"),
        "-H".into(),
        "Content-Type: application/x-www-form-urlencoded".into(),
        "--data".into(),
        form.into(),
    ];
    for h in headers {
        args.push("-H".into());
        args.push(h.to_string());
    }
    args.push(url.into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&refs).0
}

async fn session_of(c: &Client) -> (String, String) {
    let cookie = c
        .get_named_cookie("headlock-session")
        .await
        .unwrap()
        .value()
        .to_string();
    let csrf = c
        .find(Locator::Css("input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    (cookie, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_end_to_end_in_chromium() {
    let Some(driver_bin) = chromedriver() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "chromedriver is missing: scripts/chromium.sh installs Debian's chromium-driver"
            );
        }
        eprintln!(
            "SKIPPED: no chromedriver (install Debian's chromium-driver, or run scripts/test.sh)"
        );
        return;
    };
    let w = World::new();
    let base = w.server.url.clone();
    let admin_key = w.admin.key.clone();

    let tmp = tempfile::tempdir().unwrap();
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let shots = shots_dir(tmp.path());
    let driver = start_driver(&driver_bin);
    let c = browser(&driver, &downloads).await;

    // Sign in; the cookie is HttpOnly, SameSite=Strict, on Path=/, and every page carries
    // the security headers.
    c.goto(&format!("{base}/sign-in")).await.unwrap();
    shot(&c, &shots, "sign-in").await;
    let (status, headers) = curl(&[
        "--data-urlencode",
        "username=admin",
        "--data-urlencode",
        &format!("api_key={admin_key}"),
        &format!("{base}/sign-in"),
    ]);
    assert_eq!(status, 303, "{headers}");
    let lower = headers.to_ascii_lowercase();
    assert!(lower.contains("set-cookie: headlock-session="), "{headers}");
    for attr in ["httponly", "samesite=strict", "path=/", "max-age=28800"] {
        assert!(lower.contains(attr), "{attr}: {headers}");
    }
    for h in [
        "content-security-policy: default-src 'none'",
        "x-frame-options: deny",
        "cache-control: no-store",
    ] {
        assert!(lower.contains(h), "{h}: {headers}");
    }
    // A wrong key is refused.
    let (status, _) = curl(&[
        "--data",
        "username=admin&api_key=wrong",
        &format!("{base}/sign-in"),
    ]);
    assert_eq!(status, 401);

    // Nothing exists yet but the user: the group and its clusters are made here.
    sign_in(&c, &base, "admin", &admin_key).await;
    fill(&c, "group-name", "Payments").await;
    click(&c, "#create-group").await;
    let g = last_segment(&c).await;
    assert_eq!(
        w.admin.expect(w.admin.get(&format!("/groups/{g}")), 200)["name"],
        "Payments"
    );
    fill(&c, "cluster-name", "orders").await;
    click(&c, "#register").await;
    let rs = last_segment(&c).await;
    c.goto(&format!("{base}/g/{g}")).await.unwrap();
    shot(&c, &shots, "register").await;
    fill(&c, "cluster-name", "ledger").await;
    c.find(Locator::Css(
        "#cluster-type option[value=SHARDED_REPLICA_SET]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    fill(&c, "shards", "shard0 ledger-rs0\nshard1 ledger-rs1").await;
    fill(&c, "config-server", "ledger-cfg").await;
    click(&c, "#register").await;
    let sharded_id = last_segment(&c).await;
    let parts = w.admin.expect(
        w.admin.get(&format!(
            "/groups/{g}/clusters?parentClusterId={sharded_id}"
        )),
        200,
    );
    assert_eq!(parts["totalCount"], 3, "{parts}");
    w.enable_encryption(&g, &sharded_id);
    let viewer_key = create_user(w.dir.path(), "viewer", "GROUP_READ_ONLY", Some(&g));

    c.goto(&format!("{base}/")).await.unwrap();
    assert!(text(&c, "#groups").await.contains("Payments"));
    shot(&c, &shots, "groups").await;

    // The group: the sharded cluster as a tree of its shards and config server.
    c.goto(&format!("{base}/g/{g}")).await.unwrap();
    let tree = text(&c, "#clusters").await;
    for name in ["orders", "ledger", "shard0", "shard1", "ledger-cfg"] {
        assert!(tree.contains(name), "{name} in {tree}");
    }
    assert_eq!(count(&c, "tr.depth1").await, 3);
    shot(&c, &shots, "group").await;

    // Enable encryption, then rotate: the timeline gains a key.
    let cluster_url = format!("{base}/g/{g}/c/{rs}");
    c.goto(&cluster_url).await.unwrap();
    confirm(&c, "#enable-encryption", "Turn encryption on").await;
    assert_eq!(count(&c, "#timeline g.key").await, 1);
    let first_key = w.key_of(&g, &rs);
    click(&c, "#rotate").await;
    assert!(text(&c, "#what").await.contains(&first_key));
    shot(&c, &shots, "confirm-rotate").await;
    click(&c, "#confirm").await;
    assert_eq!(count(&c, "#timeline g.key").await, 2);
    assert_eq!(w.admin.key_history(&g, &rs).len(), 2);

    // The schedule and the retirement delay.
    let days = c.find(Locator::Id("rotation_days")).await.unwrap();
    days.clear().await.unwrap();
    days.send_keys("30").await.unwrap();
    let destroy = c.find(Locator::Id("destroy_days")).await.unwrap();
    destroy.clear().await.unwrap();
    destroy.send_keys("7").await.unwrap();
    confirm(&c, "#schedule-button", "every 30 days").await;
    assert_eq!(text(&c, "#schedule").await, "every 30 days");
    assert_eq!(text(&c, "#retirement").await, "after 7 days");
    assert!(!text(&c, "#next-rotation").await.contains("none"));

    // Back up with the CLI; the snapshot shows with its key.
    let data = noise(300 * 1024, 13);
    let mut cli = Command::new(testkit::serve::BIN)
        .args(["backup", "--group", &g, "--cluster", &rs, "-"])
        .env("HEADLOCK_URL", &base)
        .env("HEADLOCK_USERNAME", "admin")
        .env("HEADLOCK_API_KEY", &admin_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        cli.stdin.take().unwrap().write_all(&data).unwrap();
    }
    let out = cli.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot = String::from_utf8(out.stdout).unwrap().trim().to_string();
    c.refresh().await.unwrap();
    let listed = text(&c, "#snapshots").await;
    assert!(listed.contains(&snapshot), "{listed}");
    assert!(listed.contains(&w.key_of(&g, &rs)), "{listed}");
    assert!(listed.contains("300.0 KiB"), "{listed}");
    shot(&c, &shots, "cluster").await;

    // Restore through the console, and download the bytes in the browser.
    confirm(&c, &format!("#restore-{snapshot}"), &snapshot).await;
    shot(&c, &shots, "restore").await;
    // A download, not a navigation: a plain click.
    c.find(Locator::Id("download"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let file = downloads.join("snapshot.bin");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(file.is_file() && std::fs::metadata(&file).unwrap().len() == data.len() as u64) {
        assert!(Instant::now() < deadline, "the download did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        std::fs::read(&file).unwrap() == data,
        "downloaded bytes differ"
    );

    // Declare the key compromised and watch the re-encryption job finish.
    c.goto(&cluster_url).await.unwrap();
    let compromised_key = w.key_of(&g, &rs);
    confirm(&c, "#compromised", "re-encryption job").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = text(&c, "#reencryption-jobs .job-status").await;
        if status == "FINISHED" {
            break;
        }
        assert_ne!(status, "FAILED");
        assert!(
            Instant::now() < deadline,
            "the job did not finish: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.refresh().await.unwrap();
    }
    assert!(
        text(&c, "#reencryption-jobs")
            .await
            .contains("1/1 snapshots")
    );
    assert_eq!(count(&c, "#timeline g.key").await, 3);
    assert!(count(&c, "#timeline g.key.compromised").await >= 1);
    assert_ne!(w.key_of(&g, &rs), compromised_key);
    shot(&c, &shots, "cluster-after-compromise").await;

    // Cancel the scheduled destruction of the first key: it is kept for good.
    let first = w.admin.key_history(&g, &rs).last().unwrap()["encryptionKeyUUID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first, first_key);
    confirm(&c, &format!("#keep-key-{first}"), &first).await;
    assert!(text(&c, "#keys").await.contains("cancelled: kept"));
    let kept = w.admin.key_history(&g, &rs);
    assert_eq!(kept.last().unwrap()["destructionCancelled"], true);

    // The sharded cluster's page: its parts as a tree, whole-cluster actions.
    c.goto(&format!("{base}/g/{g}/c/{sharded_id}"))
        .await
        .unwrap();
    assert!(text(&c, "#parts").await.contains("ledger-cfg"));
    shot(&c, &shots, "sharded").await;
    // Rotating the whole sharded cluster rotates every part.
    let parts = w.admin.expect(
        w.admin.get(&format!(
            "/groups/{g}/clusters?parentClusterId={sharded_id}"
        )),
        200,
    )["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(parts.len(), 3);
    confirm(&c, "#rotate", "every part of ledger").await;
    for p in &parts {
        assert_eq!(w.admin.key_history(&g, p).len(), 2, "{p}");
    }

    // The audit feed, with the chain's verdict.
    c.goto(&format!("{base}/g/{g}/events")).await.unwrap();
    assert!(text(&c, "#chain").await.starts_with("Hash chain verified"));
    assert!(text(&c, "#events").await.contains("REENCRYPTION_FINISHED"));
    shot(&c, &shots, "events").await;

    // Forged POSTs: without the CSRF token, with a wrong one, from a foreign origin or
    // another site; each refused, and nothing rotated. The same POST done right works.
    c.goto(&cluster_url).await.unwrap();
    let (cookie, csrf) = session_of(&c).await;
    let act = format!("{cluster_url}/do");
    let keys_before = w.admin.key_history(&g, &rs).len();
    assert_eq!(post(&act, &cookie, "action=rotate", &[]), 403);
    assert_eq!(
        post(
            &act,
            &cookie,
            &format!("action=rotate&csrf={}", "0".repeat(64)),
            &[]
        ),
        403
    );
    let good = format!("action=rotate&csrf={csrf}");
    assert_eq!(
        post(&act, &cookie, &good, &["Origin: http://evil.example"]),
        403
    );
    assert_eq!(
        post(&act, &cookie, &good, &["Sec-Fetch-Site: cross-site"]),
        403
    );
    assert_eq!(w.admin.key_history(&g, &rs).len(), keys_before);
    assert_eq!(
        post(&act, &cookie, &good, &[&format!("Origin: {base}")]),
        303
    );
    assert_eq!(w.admin.key_history(&g, &rs).len(), keys_before + 1);

    // Sign out: the old cookie opens nothing any more.
    click(&c, "#sign-out").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/sign-in");
    let (status, headers) = curl(&[
        "-H",
        &format!("Cookie: headlock-session={cookie}"),
        &format!("{base}/g/{g}"),
    ]);
    assert_eq!(status, 303, "{headers}");
    assert!(headers.contains("location: /sign-in"), "{headers}");
    assert_eq!(post(&act, &cookie, &good, &[]), 403);
    assert_eq!(w.admin.key_history(&g, &rs).len(), keys_before + 1);
    // No secret reached the server's log (it logs at debug level in tests).
    let log = w.server.log();
    assert!(log.contains("console sign-in"), "the log is captured");
    for secret in [&cookie, &csrf, &admin_key] {
        assert!(!log.contains(secret.as_str()), "a secret in the log");
    }

    // A read-only user sees no action, and the server refuses them anyway.
    sign_in(&c, &base, "viewer", &viewer_key).await;
    c.goto(&cluster_url).await.unwrap();
    assert!(text(&c, "#snapshots").await.contains(&snapshot));
    assert_eq!(count(&c, "button.action").await, 0);
    assert_eq!(count(&c, "#actions").await, 0);
    shot(&c, &shots, "read-only").await;
    let (cookie, csrf) = session_of(&c).await;
    for form in [
        format!("action=rotate&csrf={csrf}"),
        format!("action=compromised&csrf={csrf}"),
        format!("action=delete-snapshot&snapshot={snapshot}&csrf={csrf}"),
    ] {
        assert_eq!(post(&act, &cookie, &form, &[]), 403, "{form}");
    }
    let (status, _) = curl(&[
        "-H",
        &format!("Cookie: headlock-session={cookie}"),
        &format!("{cluster_url}/confirm?action=rotate"),
    ]);
    assert_eq!(status, 403);
    // Nor may they create a group or register a cluster: no form, and a refused POST.
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(count(&c, "#create-group-form").await, 0);
    c.goto(&format!("{base}/g/{g}")).await.unwrap();
    assert_eq!(count(&c, "#register-form").await, 0);
    assert_eq!(
        post(
            &format!("{base}/groups"),
            &cookie,
            &format!("name=Other&csrf={csrf}"),
            &[]
        ),
        403
    );
    assert_eq!(
        post(
            &format!("{base}/g/{g}/clusters"),
            &cookie,
            &format!("cluster_name=other&type=REPLICA_SET&csrf={csrf}"),
            &[]
        ),
        403
    );
    assert_eq!(w.admin.key_history(&g, &rs).len(), keys_before + 1);
    assert_eq!(
        w.admin.expect(
            w.admin
                .get(&format!("/groups/{g}/clusters/{rs}/snapshots/{snapshot}")),
            200
        )["id"],
        snapshot.as_str()
    );

    // The owner deletes the snapshot from the console.
    click(&c, "#sign-out").await;
    sign_in(&c, &base, "admin", &admin_key).await;
    c.goto(&cluster_url).await.unwrap();
    confirm(
        &c,
        &format!("#delete-snapshot-{snapshot}"),
        "cannot be undone",
    )
    .await;
    assert_eq!(count(&c, "#snapshots").await, 0, "no snapshot is listed");
    assert_eq!(
        w.admin
            .get(&format!("/groups/{g}/clusters/{rs}/snapshots/{snapshot}"))
            .status,
        404
    );
    c.close().await.unwrap();
}

/// Over TLS the session cookie is `Secure` with the `__Host-` prefix, and only that
/// cookie opens a session (no browser needed: curl with the test CA).
#[test]
fn over_tls_the_session_cookie_is_secure_and_host_prefixed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = kmip_server::pki::generate(&dir.path().join("tls"), "unused").unwrap();
    let key = create_user(dir.path(), "admin", "GLOBAL_OWNER", None);
    let server = common::Server::start(
        dir.path(),
        &[
            "--tls-cert-file",
            pki.server_cert.to_str().unwrap(),
            "--tls-key-file",
            pki.server_key.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let ca = pki.ca_cert.to_str().unwrap();
    let (status, headers) = curl(&[
        "--cacert",
        ca,
        "--data-urlencode",
        "username=admin",
        "--data-urlencode",
        &format!("api_key={key}"),
        &format!("{}/sign-in", server.url),
    ]);
    assert_eq!(status, 303, "{headers}");
    let cookie_line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {headers}"));
    let value = cookie_line
        .split_once("__Host-headlock-session=")
        .and_then(|(_, rest)| rest.split(';').next())
        .unwrap_or_else(|| {
            panic!(
                "not a __Host- cookie: {}",
                cookie_line.split('=').next().unwrap()
            )
        });
    let attrs = cookie_line.split_once(';').map_or("", |(_, a)| a);
    for attr in [" Path=/", " HttpOnly", " SameSite=Strict", " Secure"] {
        assert!(attrs.split(';').any(|a| a == attr), "{attr}: {attrs}");
    }
    let (status, _) = curl(&[
        "--cacert",
        ca,
        "-H",
        &format!("Cookie: __Host-headlock-session={value}"),
        &format!("{}/", server.url),
    ]);
    assert_eq!(status, 200);
    // The same token under the name used over plain HTTP opens nothing here.
    let (status, _) = curl(&[
        "--cacert",
        ca,
        "-H",
        &format!("Cookie: headlock-session={value}"),
        &format!("{}/", server.url),
    ]);
    assert_eq!(status, 303);
    // A sign-in posted from the plain-HTTP origin of the same host is cross-origin.
    let (status, _) = curl(&[
        "--cacert",
        ca,
        "-H",
        &format!("Origin: {}", server.url.replacen("https://", "http://", 1)),
        "--data-urlencode",
        "username=admin",
        "--data-urlencode",
        &format!("api_key={key}"),
        &format!("{}/sign-in", server.url),
    ]);
    assert_eq!(status, 403);
}
