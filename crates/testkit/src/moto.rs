//! An S3 server for tests: moto, started once per machine by `scripts/moto.sh` and
//! shared, with a fresh bucket for every caller so tests run in parallel.
//!
//! * [`moto_endpoint`] is `HEADLOCK_TEST_S3_ENDPOINT` when set (a moto, or another
//!   S3 server that accepts unsigned `CreateBucket`), else the URL `scripts/moto.sh
//!   start` prints (run once per process; the script installs `moto[server]` into
//!   `target/moto-venv`, starts it on 127.0.0.1 and a free port, and is idempotent and
//!   `flock`-guarded, so parallel test binaries share one server).
//! * [`moto_bucket`] creates a bucket of its own with an unsigned `PUT /<bucket>` (moto
//!   accepts any credentials) and returns where it is as plain strings ([`S3Target`]),
//!   so this crate needs no S3 client.
//!
//! The server outlives the tests (it is shared); `scripts/moto.sh stop` kills it by PID.
//! The HTTP request here is hand-written (a dozen lines on a `TcpStream`): one unsigned
//! PUT is not worth an HTTP client dependency.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::repo_root;

/// Names the variable that points the tests at an S3 server of one's own.
pub const S3_ENDPOINT_VAR: &str = "HEADLOCK_TEST_S3_ENDPOINT";

/// A fresh, empty bucket on the test S3 server, and how to reach it.
#[derive(Debug, Clone)]
pub struct S3Target {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The bucket, created for this caller.
    pub bucket: String,
    /// The region to sign for.
    pub region: String,
    /// A fake access key id (moto accepts any).
    pub access_key_id: String,
    /// A fake secret access key.
    pub secret_access_key: String,
}

/// The test S3 server's URL: `HEADLOCK_TEST_S3_ENDPOINT`, or moto started by
/// `scripts/moto.sh start` (once per process).
pub fn moto_endpoint() -> io::Result<String> {
    if let Ok(url) = std::env::var(S3_ENDPOINT_VAR) {
        if !url.is_empty() {
            return Ok(url.trim_end_matches('/').to_owned());
        }
    }
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        let script = repo_root().join("scripts/moto.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} start failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !url.starts_with("http://") {
            return Err(format!("{} start printed {url:?}", script.display()));
        }
        Ok(url)
    })
    .clone()
    .map_err(io::Error::other)
}

/// A new bucket on the test S3 server (see the module docs).
pub fn moto_bucket() -> io::Result<S3Target> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let endpoint = moto_endpoint()?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let bucket = format!(
        "hl-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    create_bucket(&endpoint, &bucket)?;
    Ok(S3Target {
        endpoint,
        bucket,
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
    })
}

/// `PUT /<bucket>` without a signature; Ok on a 200 answer.
fn create_bucket(endpoint: &str, bucket: &str) -> io::Result<()> {
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::other(format!("{endpoint} is not an http:// URL")))?
        .split('/')
        .next()
        .unwrap_or_default();
    let addr: SocketAddr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{authority} resolves to nothing")))?;
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(30)))?;
    write!(
        tcp,
        "PUT /{bucket} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    tcp.take(64 * 1024).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) == Some("200") {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "creating bucket {bucket} at {endpoint}: {}",
            answer.chars().take(500).collect::<String>()
        )))
    }
}
