//! The one harness for a `headlock serve` process: the real `headlock` binary in a
//! temporary data directory, on a free loopback port, driven by the real
//! `curl --digest` ([`Server`], [`Api`], [`World`]); `headlock users create`,
//! `headlock kmip-server` ([`KmipProcess`]), `serve` on PyKMIP ([`with_pykmip`]), and
//! several nodes on PostgreSQL, S3 and KMIP server processes ([`Deployment`]).
//!
//! The binary is found at run time ([`BIN`]): `HEADLOCK_BIN` if set, else
//! `CARGO_BIN_EXE_headlock`, which cargo sets when it runs the `headlock` crate's
//! integration tests (this crate does not depend on that crate, so it cannot name the
//! binary at build time). Other crates' tests set `HEADLOCK_BIN`.
//!
//! Blocking, like the rest of this crate except [`crate::kmip`].

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `headlock` binary under test, for `Command::new(BIN)`: `HEADLOCK_BIN` if set,
/// else `CARGO_BIN_EXE_headlock` (set by cargo for the `headlock` crate's tests).
/// Panics on first use if neither is set.
pub const BIN: Bin = Bin;

/// See [`BIN`].
#[derive(Debug, Clone, Copy)]
pub struct Bin;

impl Bin {
    /// The binary's path.
    pub fn path(self) -> &'static Path {
        static PATH: OnceLock<PathBuf> = OnceLock::new();
        PATH.get_or_init(|| {
            std::env::var_os("HEADLOCK_BIN")
                .or_else(|| std::env::var_os("CARGO_BIN_EXE_headlock"))
                .map(PathBuf::from)
                .expect(
                    "the headlock binary: set HEADLOCK_BIN, or run from the headlock crate's \
                     tests (cargo sets CARGO_BIN_EXE_headlock)",
                )
        })
    }
}

impl AsRef<OsStr> for Bin {
    fn as_ref(&self) -> &OsStr {
        self.path().as_os_str()
    }
}

/// A running `headlock serve`. Killed on drop.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub data_dir: PathBuf,
    pub log: Arc<Mutex<String>>,
    args: Vec<String>,
}

impl Server {
    /// Starts `headlock serve` on `data_dir` with extra arguments and waits until it
    /// listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::start_owned(data_dir, args, &[])
    }

    /// [`Server::start`] with extra environment variables (for this start only).
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::start_owned(data_dir, args, env)
    }

    fn start_owned(data_dir: &Path, args: Vec<String>, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .envs(env.iter().copied())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&args)
            .env("HEADLOCK_LOG", "info,headlock=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start headlock serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("headlock: API listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.to_string());
                    }
                }
                push_line(&log2, &line);
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "headlock serve did not start; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Server {
            child: Some(child),
            url,
            data_dir: data_dir.to_path_buf(),
            log,
            args,
        }
    }

    /// Stops with SIGTERM and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Kills with SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit by itself (e.g. after a crash point).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        child.wait().unwrap()
    }

    /// Starts again on the same data directory (new port), after it stopped.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        let next = Server::start_owned(&self.data_dir, self.args.clone(), &[]);
        *self = next;
    }

    /// Stops and starts again on the same data directory (new port).
    pub fn restart(&mut self) {
        self.stop();
        let next = Server::start_owned(&self.data_dir, self.args.clone(), &[]);
        *self = next;
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Appends one line of a child's standard error to its log.
fn push_line(log: &Mutex<String>, line: &str) {
    let mut l = log.lock().unwrap();
    l.push_str(line);
    l.push('\n');
}

/// Runs `headlock users create` and returns the API key it prints.
pub fn create_user(data_dir: &Path, username: &str, role: &str, group: Option<&str>) -> String {
    let dir = data_dir.to_str().unwrap();
    create_user_in(&["--data-dir", dir], username, role, group)
}

/// [`create_user`] on the store that `store_args` name (e.g. `--config FILE`).
pub fn create_user_in(
    store_args: &[&str],
    username: &str,
    role: &str,
    group: Option<&str>,
) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["users", "create"])
        .args(store_args)
        .args(["--username", username, "--role", role]);
    if let Some(g) = group {
        cmd.args(["--group", g]);
    }
    let out = cmd.output().expect("run headlock users create");
    assert!(
        out.status.success(),
        "users create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(key.len(), 36, "an API key is printed on stdout: {key:?}");
    key
}

/// A response: status, headers (raw) and body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// An API client: `curl --digest -u user:key`.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub user: String,
    pub key: String,
}

impl Api {
    pub fn new(server: &Server, user: &str, key: &str) -> Api {
        Api {
            base: format!("{}/api/public/v1.0", server.url),
            user: user.into(),
            key: key.into(),
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("curl failed: {e}"))
    }

    /// Like [`Api::call`], but a transport failure (no answer) is an `Err`.
    pub fn try_call(&self, method: &str, path: &str, body: Option<&str>) -> Result<Resp, String> {
        let url = format!("{}{}", self.base, path);
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-k", "--digest", "-u"])
            .arg(format!("{}:{}", self.user, self.key))
            .args([
                "-H",
                "Content-Type: application/json",
                "-X",
                method,
                "-w",
                "\n%{http_code}",
                "--max-time",
                "60",
            ])
            .arg(&url);
        if let Some(b) = body {
            cmd.args(["--data-binary", b]);
        }
        let out = cmd.output().expect("run curl");
        if !out.status.success() {
            return Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        Ok(Resp {
            status: code.parse().unwrap(),
            body: body.to_string(),
        })
    }

    pub fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None)
    }
    pub fn put(&self, path: &str) -> Resp {
        self.call("PUT", path, None)
    }
    pub fn post(&self, path: &str, body: &str) -> Resp {
        self.call("POST", path, Some(body))
    }
    pub fn patch(&self, path: &str, body: &str) -> Resp {
        self.call("PATCH", path, Some(body))
    }
    pub fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None)
    }

    /// Creates a group; its id.
    pub fn create_group(&self, name: &str) -> String {
        self.expect(
            self.post("/groups", &format!(r#"{{"name":"{name}"}}"#)),
            201,
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Registers a replica set; its id.
    pub fn create_replica_set(&self, group: &str, name: &str) -> String {
        let body = format!(
            r#"{{"clusterName":"{name}","typeName":"REPLICA_SET","replicaSetName":"{name}"}}"#
        );
        self.expect(self.post(&format!("/groups/{group}/clusters"), &body), 201)["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Turns encryption on for a cluster; the config.
    pub fn enable_encryption(&self, group: &str, cluster: &str) -> Value {
        self.expect(
            self.patch(
                &format!("/groups/{group}/backupConfigs/{cluster}"),
                r#"{"encryptionEnabled":true}"#,
            ),
            200,
        )
    }

    /// Registers a replica set with encryption on; its id.
    pub fn create_encrypted_replica_set(&self, group: &str, name: &str) -> String {
        let c = self.create_replica_set(group, name);
        self.enable_encryption(group, &c);
        c
    }

    /// The current key id of a cluster (GET encryptionKey).
    pub fn current_key(&self, group: &str, cluster: &str) -> String {
        self.expect(
            self.get(&format!(
                "/groups/{group}/backupConfigs/{cluster}/encryptionKey"
            )),
            200,
        )["encryptionKeyUUID"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The key history of a cluster, newest first.
    pub fn key_history(&self, group: &str, cluster: &str) -> Vec<Value> {
        self.expect(
            self.get(&format!(
                "/groups/{group}/backupConfigs/{cluster}/encryptionKeys?itemsPerPage=500"
            )),
            200,
        )["results"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// A group's events of one type, newest first.
    pub fn events_of(&self, group: &str, kind: &str) -> Vec<Value> {
        self.expect(
            self.get(&format!("/groups/{group}/events?itemsPerPage=500")),
            200,
        )["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["eventTypeName"] == kind)
            .cloned()
            .collect()
    }

    /// Asserts the status and returns the JSON body.
    /// Polls a compromise's re-encryption job until it is no longer RUNNING (at most
    /// 120 s); its last state.
    pub fn finished_reencryption_job(&self, g: &str, c: &str, job: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.expect(
                self.get(&format!(
                    "/groups/{g}/backupConfigs/{c}/reencryptionJobs/{job}"
                )),
                200,
            );
            if v["statusName"] != "RUNNING" {
                return v;
            }
            assert!(Instant::now() < deadline, "the job did not finish: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn expect(&self, r: Resp, status: u16) -> Value {
        assert_eq!(r.status, status, "unexpected status; body: {}", r.body);
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }
}

/// Asserts an Ops Manager error body.
pub fn assert_error(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "body: {}", r.body);
    let v = r.json();
    assert_eq!(v["error"], status, "{v}");
    assert_eq!(v["errorCode"], code, "{v}");
    assert!(v["detail"].is_string(), "{v}");
    assert!(v["reason"].is_string(), "{v}");
    assert!(v["parameters"].is_array(), "{v}");
    v
}

/// A server with one global owner, ready to use.
pub struct World {
    pub dir: tempfile::TempDir,
    pub server: Server,
    pub admin: Api,
}

impl World {
    #[allow(clippy::new_without_default)] // starts a process: no default value
    pub fn new() -> World {
        Self::with_args(&[])
    }

    pub fn with_args(args: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let key = create_user(dir.path(), "admin", "GLOBAL_OWNER", None);
        let server = Server::start(dir.path(), args);
        let admin = Api::new(&server, "admin", &key);
        World { dir, server, admin }
    }

    /// Creates a group and returns its id.
    pub fn group(&self, name: &str) -> String {
        self.admin.create_group(name)
    }

    /// Registers a replica set and returns its id.
    pub fn replica_set(&self, group: &str, name: &str) -> String {
        self.admin.create_replica_set(group, name)
    }

    /// Turns encryption on for a cluster.
    pub fn enable_encryption(&self, group: &str, cluster: &str) -> Value {
        self.admin.enable_encryption(group, cluster)
    }

    /// The current key id of a cluster.
    pub fn key_of(&self, group: &str, cluster: &str) -> String {
        self.admin.current_key(group, cluster)
    }

    /// Another user.
    pub fn user(&self, name: &str, role: &str, group: Option<&str>) -> Api {
        let key = create_user(self.dir.path(), name, role, group);
        Api::new(&self.server, name, &key)
    }
}

/// What the `headlock serve` nodes of one production-like deployment share: a
/// PostgreSQL database (`scripts/postgres.sh`), an S3 bucket (moto, `scripts/moto.sh`)
/// and `headlock kmip-server` processes on one key store, named in one config file.
/// Each deployment has its own database and bucket, so tests run in parallel.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    /// The config file every node and `headlock users create` read.
    pub config: PathBuf,
    pub kmip: Vec<KmipProcess>,
    /// The API key of `admin`, a global owner.
    pub key: String,
    _database: crate::PostgresDatabase,
}

impl Deployment {
    /// `kmip_servers` processes on one key store.
    pub fn new(kmip_servers: usize) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let database = crate::PostgresDatabase::create().expect("a PostgreSQL database");
        let bucket = crate::moto_bucket().expect("a moto bucket");
        let kmip_dir = dir.path().join("kmip-server");
        let kmip: Vec<KmipProcess> = (0..kmip_servers)
            .map(|_| KmipProcess::start(&kmip_dir))
            .collect();
        let all: Vec<&KmipProcess> = kmip.iter().collect();
        let config = dir.path().join("headlock.toml");
        std::fs::write(
            &config,
            format!(
                r#"database_url = "{db}"

[s3]
bucket = "{bucket}"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "{access}"
secret_access_key = "{secret}"
allow_http = true

{kmip}"#,
                db = database.url(),
                bucket = bucket.bucket,
                endpoint = bucket.endpoint,
                access = bucket.access_key_id,
                secret = bucket.secret_access_key,
                kmip = kmip[0].config_section(&all),
            ),
        )
        .unwrap();
        let config_arg = config.to_str().unwrap().to_string();
        let key = create_user_in(&["--config", &config_arg], "admin", "GLOBAL_OWNER", None);
        Deployment {
            dir,
            config,
            kmip,
            key,
            _database: database,
        }
    }

    /// Starts a node with a data directory of its own (its node id lives there).
    pub fn node(&self, name: &str) -> Server {
        let data = self.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        Server::start(&data, &["--config", self.config.to_str().unwrap()])
    }

    pub fn api(&self, node: &Server) -> Api {
        Api::new(node, "admin", &self.key)
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Uploads a file as a snapshot; `tar` says whether it is a tar stream.
pub fn upload(api: &Api, g: &str, c: &str, file: &Path, tar: bool) -> Result<Value, (u16, String)> {
    let ctype = if tar {
        "application/x-tar"
    } else {
        "application/octet-stream"
    };
    let out = Command::new("curl")
        .args(["-s", "--digest", "-u"])
        .arg(format!("{}:{}", api.user, api.key))
        .args(["-H", &format!("Content-Type: {ctype}"), "-X", "POST", "-T"])
        .arg(file)
        .args(["-w", "\n%{http_code}"])
        .arg(format!("{}/groups/{g}/clusters/{c}/snapshots", api.base))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let code: u16 = code.parse().unwrap_or(0);
    if code == 201 {
        Ok(serde_json::from_str(body).unwrap())
    } else {
        Err((code, body.to_string()))
    }
}

/// Restores a snapshot through a restore job and its one-time link: status and bytes.
pub fn restore(api: &Api, g: &str, c: &str, snapshot: &str) -> (u16, Vec<u8>) {
    let job = api.expect(
        api.post(
            &format!("/groups/{g}/clusters/{c}/restoreJobs"),
            &format!(r#"{{"snapshotId":"{snapshot}"}}"#),
        ),
        200,
    );
    let url = job["results"][0]["delivery"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out");
    let out = Command::new("curl")
        .args(["-s", "-o"])
        .arg(&file)
        .args(["-w", "%{http_code}", &url])
        .output()
        .unwrap();
    let code = String::from_utf8(out.stdout).unwrap().parse().unwrap_or(0);
    let bytes = std::fs::read(&file).unwrap_or_default();
    if !out.status.success() {
        // curl failed mid-transfer (the server stopped the stream): no complete data.
        return (0, bytes);
    }
    (code, bytes)
}

/// A `headlock kmip-server` process: a real KMIP server of its own, keys in a SQLite
/// file of its data directory. A second one started on the same directory shares the
/// keys (two servers of one KMIP cluster). Killed on drop.
pub struct KmipProcess {
    child: Child,
    pub addr: String,
    pub dir: PathBuf,
    /// Its standard error since this start.
    pub log: Arc<Mutex<String>>,
}

impl KmipProcess {
    pub fn start(dir: &Path) -> KmipProcess {
        Self::start_on(dir, "127.0.0.1:0")
    }

    /// Starts it again on the same directory and address, after [`KmipProcess::kill`].
    pub fn restart(&mut self) {
        let addr = self.addr.clone();
        *self = Self::start_on(&self.dir.clone(), &addr);
    }

    fn start_on(dir: &Path, listen: &str) -> KmipProcess {
        let mut child = Command::new(BIN)
            .args(["kmip-server", "--data-dir"])
            .arg(dir)
            .args(["--listen", listen])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start headlock kmip-server");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let addr = loop {
            let line = lines.next().expect("kmip-server exited").unwrap();
            push_line(&log, &line);
            if let Some(rest) = line.strip_prefix("headlock: KMIP server listening on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                push_line(&log2, &line);
            }
        });
        KmipProcess {
            child,
            addr,
            dir: dir.to_path_buf(),
            log,
        }
    }

    /// Its certificates (made at its first start).
    pub fn pki(&self) -> kmip_server::pki::PkiPaths {
        kmip_server::pki::PkiPaths::in_dir(&self.dir.join("kmip"))
    }

    /// The `[kmip]` section of a config file naming `servers` with this server's PKI.
    pub fn config_section(&self, servers: &[&KmipProcess]) -> String {
        let pki = self.pki();
        let servers: Vec<String> = servers.iter().map(|k| format!("{:?}", k.addr)).collect();
        format!(
            "[kmip]\nservers = [{}]\nca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}\n",
            servers.join(", "),
            pki.ca_cert,
            pki.client_cert,
            pki.client_key
        )
    }

    /// Runs `f` with a KMIP client of this server, on a runtime of its own.
    pub fn with_client<T>(&self, f: impl AsyncFnOnce(&::kmip::client::Client) -> T) -> T {
        let pki = self.pki();
        let client =
            ::kmip::client::Client::new(crate::kmip::client_config(&pki, vec![self.addr.clone()]))
                .unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f(&client))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its standard error since this start.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for KmipProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `serve`'s flags for the external KMIP servers `servers` (tried in that order) with the
/// certificates of `pki`; `client_key` replaces the PKI's client key file (an encrypted
/// copy, say).
pub fn kmip_flags(
    servers: &[&str],
    pki: &kmip_server::pki::PkiPaths,
    client_key: Option<&Path>,
) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap().to_string();
    vec![
        "--kmip-servers".into(),
        servers.join(","),
        "--kmip-ca-file".into(),
        path(&pki.ca_cert),
        "--kmip-client-cert-file".into(),
        path(&pki.client_cert),
        "--kmip-client-key-file".into(),
        path(client_key.unwrap_or(&pki.client_key)),
    ]
}

/// `headlock serve` against a third-party KMIP server: PyKMIP (started by testkit, on
/// certificates made for the test) as its external KMIP server, a `GLOBAL_OWNER` user
/// `admin`, and a KMIP client of the test's own with Headlock's client certificate
/// (PyKMIP shows objects to their owner). Fields drop in order: the server, PyKMIP,
/// then the directory.
pub struct WithPyKmip {
    pub server: Server,
    pub admin: Api,
    pub kmip: ::kmip::client::Client,
    pub pykmip: crate::PyKmipServer,
    /// Holds `pki/` and the server's `data/`.
    pub dir: tempfile::TempDir,
}

/// Starts PyKMIP and `headlock serve` on it, with `env` set for the server.
pub fn with_pykmip(env: &[(&str, &str)]) -> WithPyKmip {
    let dir = tempfile::tempdir().unwrap();
    let pki = kmip_server::pki::generate(&dir.path().join("pki"), "headlock").unwrap();
    let pykmip = crate::PyKmipServer::start(&crate::TlsFiles::from(&pki)).expect("start PyKMIP");
    let data = dir.path().join("data");
    let key = create_user(&data, "admin", "GLOBAL_OWNER", None);
    let flags = kmip_flags(&[&pykmip.addr()], &pki, None);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with_env(&data, &flags, env);
    assert!(
        !server.log().contains("embedded KMIP server"),
        "{}",
        server.log()
    );
    let admin = Api::new(&server, "admin", &key);
    let kmip =
        ::kmip::client::Client::new(crate::kmip::client_config(&pki, vec![pykmip.addr()])).unwrap();
    WithPyKmip {
        server,
        admin,
        kmip,
        pykmip,
        dir,
    }
}

/// Runs one SQL statement on a server's SQLite database behind its back (tests that
/// damage or edit its records), binding `args` to its `?`s in order, through Python's
/// `sqlite3`; the number of rows it changed.
pub fn sqlite_execute(db: &Path, sql: &str, args: &[&str]) -> u64 {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             con = sqlite3.connect(sys.argv[1], timeout=30)\n\
             n = con.execute(sys.argv[2], sys.argv[3:]).rowcount\n\
             con.commit()\n\
             print(n)\n",
        )
        .arg(db)
        .arg(sql)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
