//! `soak`: the fault soak of issue 14. Mixed traffic against `headlock serve` while
//! the service and its KMIP server are SIGKILLed and restarted at random; then checks
//! that nothing acknowledged was lost.
//!
//! ```text
//! scripts/soak.sh [--duration SECS] [--seed N]
//! ```
//!
//! Processes: `headlock kmip-server` on its own (a process of its own so that it can
//! be killed apart from the service) and `headlock serve` on SQLite, pointed at it with
//! `--kmip-servers` and the KMIP server's PKI (testkit's [`KmipProcess`] and
//! [`Server`]). One `GLOBAL_OWNER` user, one group, [`CLUSTERS`] encrypted replica sets.
//!
//! Traffic, until `--duration` ends (each thread with its own generator from `--seed`):
//! - two backup threads: the real CLI, `headlock backup` of a directory (an upload
//!   session) or of a file (a stream); an exit status 0 with a snapshot id is an
//!   acknowledged snapshot;
//! - a key thread: `PUT .../encryptionKey` (a 201 is an acknowledged rotation; the key
//!   current after it is read back) and, once, `POST .../encryptionKey/compromised`;
//! - a reader: GETs (key, key history, events, snapshots, health) and `headlock restore`
//!   of acknowledged snapshots, compared byte for byte;
//! - the main thread: every 2 to 8 s SIGKILLs the service, the KMIP server or both, and
//!   restarts them 0 to 2 s later.
//!
//! Clients retry on anything; errors are counted by kind, never failures by themselves.
//! At the end, with both processes up and no more kills: every acknowledged snapshot
//! restores byte for byte (`headlock restore`); every acknowledged rotation's key is the
//! new key of a successful `RS_ROTATE_MASTER_KEY_AUDIT` event (GET events); the audit
//! chain verifies (the service stopped, its SQLite store opened with
//! `verify_audit_chain`); the KMIP server holds exactly one Active symmetric key per
//! cluster part, each part's current key (KMIP Locate by state, Get Attributes State);
//! no log of either process contains a panic. Prints the counts; exits 1 on any
//! violation.
//!
//! A bench program rather than a test: it runs for minutes (30 by hand), owns its
//! processes, and prints figures; it reuses testkit's harness as the tests do.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use clap::Parser;
use headlock_core::store::AuditStore;
use kmip::types::{ObjectType, State};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use testkit::serve::{Api, BIN, KmipProcess, Resp, Server, create_user, noise};

/// Encrypted replica sets the traffic spreads over.
const CLUSTERS: usize = 3;
/// The user the soak creates.
const USERNAME: &str = "soak";
/// What a log line of a panic contains (Rust's panic message).
const PANIC_MARK: &str = "panicked at";

/// Mixed traffic while the service and the KMIP server are killed at random.
#[derive(Debug, Parser)]
#[command(name = "soak", version)]
struct Args {
    /// How long the traffic and the kills run, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    duration: u64,
    /// Seed of every random choice (traffic, sizes, kills).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory in which the temporary directory is made [default: $TMPDIR or /tmp].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// What a backup contained.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A directory of [`tree_files`].
    Tree,
    /// One file of [`file_bytes`].
    File,
}

/// An acknowledged snapshot and how to make its content again.
#[derive(Clone, Debug)]
struct Snap {
    cluster: usize,
    id: String,
    seed: u64,
    kind: Kind,
}

/// State the threads share.
struct Shared {
    /// The service's `http://127.0.0.1:PORT` (a new port at each start).
    url: RwLock<String>,
    key: String,
    group: String,
    clusters: Vec<String>,
    stop: AtomicBool,
    snaps: Mutex<Vec<Snap>>,
    /// Acknowledged rotations: (cluster index, key current after the 201).
    rotations: Mutex<Vec<(usize, String)>>,
    /// Compromise reports answered 202.
    compromises: Mutex<u64>,
    /// Client errors by kind.
    errors: Mutex<BTreeMap<String, u64>>,
    /// Restores during the traffic: (compared equal, differed).
    live_restores: Mutex<(u64, u64)>,
    /// Broken promises (each fails the run).
    violations: Mutex<Vec<String>>,
    scratch: PathBuf,
}

impl Shared {
    fn api(&self) -> Api {
        Api {
            base: format!("{}/api/public/v1.0", self.url.read().unwrap()),
            user: USERNAME.into(),
            key: self.key.clone(),
        }
    }

    fn error(&self, kind: String) {
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn violation(&self, what: String) {
        eprintln!("soak: VIOLATION: {what}");
        self.violations.lock().unwrap().push(what);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A request through curl; a transport failure or a non-2xx answer is counted.
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Option<Resp> {
        match self.api().try_call(method, path, body) {
            Err(_) => {
                self.error("http: no answer".into());
                None
            }
            Ok(r) if (200..300).contains(&r.status) => Some(r),
            Ok(r) => {
                let code = serde_json::from_str::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v["errorCode"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "-".into());
                self.error(format!("http: {} {code}", r.status));
                None
            }
        }
    }

    /// Runs the CLI with this run's credentials; stdout on exit 0, else the error kind
    /// is counted and `None`.
    fn cli(&self, args: &[&str], dir_arg: Option<&Path>) -> Option<Vec<u8>> {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        if let Some(d) = dir_arg {
            cmd.arg(d);
        }
        let out = cmd
            .env("HEADLOCK_URL", &*self.url.read().unwrap())
            .env("HEADLOCK_USERNAME", USERNAME)
            .env("HEADLOCK_API_KEY", &self.key)
            .stdin(Stdio::null())
            .output()
            .expect("run headlock");
        if out.status.success() {
            return Some(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        self.error(format!("cli {}: {}", args[0], cli_error_kind(&stderr)));
        None
    }
}

/// A short kind for a CLI error: the API's error code and status, or what failed.
fn cli_error_kind(stderr: &str) -> String {
    let msg = stderr
        .lines()
        .find_map(|l| l.strip_prefix("headlock: error: "))
        .unwrap_or(stderr)
        .trim();
    if msg.contains("cannot use the API") {
        return "no answer".into();
    }
    if let Some((code, rest)) = msg.split_once(" (") {
        if code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c == '-')
        {
            return format!("{} {code}", &rest[..rest.len().min(3)]);
        }
    }
    msg.chars().take(60).collect()
}

/// The files of a tree backup: a part every backup of the cluster shares (so backups
/// deduplicate) and one or two of their own, 1 KiB to 400 KiB.
fn tree_files(cluster: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut files = vec![("common".to_string(), noise(300_000, cluster as u64 + 1))];
    for i in 0..rng.gen_range(1..=2) {
        let len = rng.gen_range(1024..400_000);
        files.push((format!("f{i}"), noise(len, rng.r#gen())));
    }
    files
}

/// The bytes of a file backup: JSON lines and noise.
fn file_bytes(seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = "{\"_id\":1,\"name\":\"a document\"}\n"
        .repeat(rng.gen_range(10..10_000))
        .into_bytes();
    data.extend(noise(rng.gen_range(0..400_000), seed));
    data
}

/// One backup thread: backs up until told to stop.
fn backup_loop(shared: &Shared, worker: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = shared.scratch.join(format!("backup-{worker}"));
    while !shared.stopped() {
        // A pause, so that a long run's snapshots fit on a small disk.
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..1000)));
        let cluster = rng.gen_range(0..CLUSTERS);
        let snap_seed: u64 = rng.r#gen();
        let kind = if rng.gen_bool(0.5) {
            Kind::Tree
        } else {
            Kind::File
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let input = match kind {
            Kind::Tree => {
                let tree = dir.join("tree");
                std::fs::create_dir(&tree).unwrap();
                for (name, bytes) in tree_files(cluster, snap_seed) {
                    std::fs::write(tree.join(name), bytes).unwrap();
                }
                tree
            }
            Kind::File => {
                let file = dir.join("file");
                std::fs::write(&file, file_bytes(snap_seed)).unwrap();
                file
            }
        };
        let c = &shared.clusters[cluster];
        let args = [
            "backup",
            "--group",
            &shared.group,
            "--cluster",
            c,
            "--quiet",
        ];
        if let Some(out) = shared.cli(&args, Some(&input)) {
            let id = String::from_utf8_lossy(&out).trim().to_string();
            if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                shared.violation(format!("backup exited 0 without a snapshot id: {id:?}"));
                continue;
            }
            shared.snaps.lock().unwrap().push(Snap {
                cluster,
                id,
                seed: snap_seed,
                kind,
            });
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Restores a snapshot with the CLI: `Some(true)` if it matches, `Some(false)` if it
/// restored different bytes, `None` if the restore failed (counted).
fn restore_matches(shared: &Shared, snap: &Snap, out_dir: &Path) -> Option<bool> {
    let c = &shared.clusters[snap.cluster];
    let mut args = vec![
        "restore",
        "--group",
        &shared.group,
        "--cluster",
        c,
        "--snapshot",
        &snap.id,
        "--quiet",
        "--target",
    ];
    match snap.kind {
        Kind::File => {
            args.push("-");
            let out = shared.cli(&args, None)?;
            Some(out == file_bytes(snap.seed))
        }
        Kind::Tree => {
            let _ = std::fs::remove_dir_all(out_dir);
            let out = shared.cli(&args, Some(out_dir));
            let result = out.map(|_| {
                let files = tree_files(snap.cluster, snap.seed);
                let count = std::fs::read_dir(out_dir).map(|d| d.count()).unwrap_or(0);
                count == files.len()
                    && files.iter().all(|(name, bytes)| {
                        std::fs::read(out_dir.join(name)).ok().as_ref() == Some(bytes)
                    })
            });
            let _ = std::fs::remove_dir_all(out_dir);
            result
        }
    }
}

/// The key thread: rotations, and one compromise report a third of the way in.
fn key_loop(shared: &Shared, seed: u64, compromise_at: Instant) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut compromised = false;
    while !shared.stopped() {
        std::thread::sleep(Duration::from_millis(rng.gen_range(500..2500)));
        let cluster = rng.gen_range(0..CLUSTERS);
        let c = &shared.clusters[cluster];
        let g = &shared.group;
        if !compromised && Instant::now() >= compromise_at {
            let path = format!("/groups/{g}/backupConfigs/{c}/encryptionKey/compromised");
            if let Some(r) = shared.call("POST", &path, Some("")) {
                if r.status == 202 {
                    compromised = true;
                    *shared.compromises.lock().unwrap() += 1;
                }
            }
            continue;
        }
        let path = format!("/groups/{g}/backupConfigs/{c}/encryptionKey");
        let Some(r) = shared.call("PUT", &path, None) else {
            continue;
        };
        if r.status != 201 {
            shared.violation(format!(
                "PUT encryptionKey answered {}: {}",
                r.status, r.body
            ));
            continue;
        }
        // This thread alone changes keys: the key current now is the one just made.
        // Read it back, retrying through kills.
        loop {
            if let Some(r) = shared.call("GET", &path, None) {
                let key = r.json()["encryptionKeyUUID"].as_str().unwrap().to_string();
                shared.rotations.lock().unwrap().push((cluster, key));
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The reader: GETs, and restores of acknowledged snapshots.
fn read_loop(shared: &Shared, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let out_dir = shared.scratch.join("live-restore");
    while !shared.stopped() {
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..600)));
        let c = &shared.clusters[rng.gen_range(0..CLUSTERS)];
        let g = &shared.group;
        match rng.gen_range(0..6) {
            0 => {
                shared.call(
                    "GET",
                    &format!("/groups/{g}/backupConfigs/{c}/encryptionKey"),
                    None,
                );
            }
            1 => {
                shared.call(
                    "GET",
                    &format!("/groups/{g}/backupConfigs/{c}/encryptionKeys"),
                    None,
                );
            }
            2 => {
                shared.call("GET", &format!("/groups/{g}/events"), None);
            }
            3 => {
                shared.call("GET", &format!("/groups/{g}/clusters/{c}/snapshots"), None);
            }
            4 => {
                shared.call("GET", "/health", None);
            }
            _ => {
                let snap = {
                    let snaps = shared.snaps.lock().unwrap();
                    if snaps.is_empty() {
                        continue;
                    }
                    snaps[rng.gen_range(0..snaps.len())].clone()
                };
                match restore_matches(shared, &snap, &out_dir) {
                    Some(true) => shared.live_restores.lock().unwrap().0 += 1,
                    Some(false) => {
                        shared.live_restores.lock().unwrap().1 += 1;
                        shared.violation(format!(
                            "snapshot {} restored (exit 0) with different bytes during the run",
                            snap.id
                        ));
                    }
                    None => {}
                }
            }
        }
    }
}

/// Every event of the group (all pages), newest first.
fn all_events(shared: &Shared) -> Vec<Value> {
    let g = &shared.group;
    let mut events = Vec::new();
    for page in 1.. {
        let path = format!("/groups/{g}/events?itemsPerPage=500&pageNum={page}");
        let r = retry(shared, "GET", &path);
        let v = r.json();
        let results = v["results"].as_array().unwrap();
        events.extend(results.iter().cloned());
        if results.len() < 500 {
            break;
        }
    }
    events
}

/// A request retried until it answers 2xx (the end phase: nothing is killed, so only a
/// few retries for a KMIP connection still coming back).
fn retry(shared: &Shared, method: &str, path: &str) -> Resp {
    for _ in 0..60 {
        if let Some(r) = shared.call(method, path, None) {
            return r;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{method} {path} did not succeed in 30 s");
}

/// Appends a finished process's log to `file` and counts the panics in it.
fn keep_log(file: &Path, log: &str) -> usize {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    f.write_all(log.as_bytes()).unwrap();
    f.write_all(b"---- (killed or stopped; next start) ----\n")
        .unwrap();
    log.matches(PANIC_MARK).count()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = match std::fs::create_dir_all(&base).and_then(|()| {
        tempfile::Builder::new()
            .prefix("headlock-soak-")
            .tempdir_in(&base)
    }) {
        Ok(tmp) => tmp,
        Err(e) => {
            eprintln!(
                "soak: cannot make a directory under {}: {e}",
                base.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let root = tmp.path().to_path_buf();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    eprintln!(
        "soak: duration {} s, seed {}, in {} (logs in {})",
        args.duration,
        args.seed,
        root.display(),
        logs.display()
    );

    // The KMIP server, then the service pointed at it.
    let mut kmip = KmipProcess::start(&root.join("kmip"));
    let pki = kmip.pki();
    let data = root.join("data");
    let key = create_user(&data, USERNAME, "GLOBAL_OWNER", None);
    let serve_args = testkit::serve::kmip_flags(&[&kmip.addr], &pki, None);
    let serve_args: Vec<&str> = serve_args.iter().map(String::as_str).collect();
    let mut server = Server::start(&data, &serve_args);
    let setup = Api::new(&server, USERNAME, &key);
    let group = setup.create_group("soak");
    let clusters: Vec<String> = (0..CLUSTERS)
        .map(|i| setup.create_encrypted_replica_set(&group, &format!("rs{i}")))
        .collect();
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let shared = Arc::new(Shared {
        url: RwLock::new(server.url.clone()),
        key,
        group,
        clusters,
        stop: AtomicBool::new(false),
        snaps: Mutex::default(),
        rotations: Mutex::default(),
        compromises: Mutex::default(),
        errors: Mutex::default(),
        live_restores: Mutex::default(),
        violations: Mutex::default(),
        scratch,
    });

    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let mut threads = Vec::new();
    for w in 0..2u64 {
        let s = shared.clone();
        let seed = args.seed.wrapping_mul(31).wrapping_add(w);
        threads.push(std::thread::spawn(move || backup_loop(&s, w, seed)));
    }
    {
        let s = shared.clone();
        let seed = args.seed.wrapping_mul(31).wrapping_add(10);
        let at = start + Duration::from_secs(args.duration / 3);
        threads.push(std::thread::spawn(move || key_loop(&s, seed, at)));
    }
    {
        let s = shared.clone();
        let seed = args.seed.wrapping_mul(31).wrapping_add(11);
        threads.push(std::thread::spawn(move || read_loop(&s, seed)));
    }

    // The kills.
    let serve_log = logs.join("serve.log");
    let kmip_log = logs.join("kmip-server.log");
    let mut panics = 0usize;
    let (mut serve_kills, mut kmip_kills) = (0u64, 0u64);
    let mut rng = StdRng::seed_from_u64(args.seed.wrapping_mul(31).wrapping_add(20));
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(rng.gen_range(2000..8000)));
        if Instant::now() >= end {
            break;
        }
        let which = rng.gen_range(0..5); // 0-1 service, 2-3 KMIP server, 4 both
        let down = Duration::from_millis(rng.gen_range(0..2000));
        if which != 2 && which != 3 {
            server.kill();
            serve_kills += 1;
            panics += keep_log(&serve_log, &server.log());
        }
        if which >= 2 {
            kmip.kill();
            kmip_kills += 1;
            panics += keep_log(&kmip_log, &kmip.log());
        }
        std::thread::sleep(down);
        if which >= 2 {
            kmip.restart();
        }
        if which != 2 && which != 3 {
            server.start_again();
            *shared.url.write().unwrap() = server.url.clone();
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a traffic thread panicked");
    }
    let traffic = start.elapsed();
    eprintln!("soak: traffic over after {traffic:.0?}; checking");

    // The end: both up, nothing killed. First let the compromise's re-encryption end,
    // and end well: the old data key is deleted only by a job that FINISHED.
    let g = shared.group.clone();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut jobs_finished = 0u64;
    for c in &shared.clusters {
        loop {
            let r = retry(
                &shared,
                "GET",
                &format!("/groups/{g}/backupConfigs/{c}/reencryptionJobs"),
            );
            let jobs = r.json();
            let jobs = jobs["results"].as_array().unwrap();
            if jobs.iter().all(|j| j["statusName"] != "RUNNING") {
                for job in jobs {
                    if job["statusName"] == "FINISHED" {
                        jobs_finished += 1;
                    } else {
                        shared.violation(format!("a re-encryption job of {c} ended: {job}"));
                    }
                }
                break;
            }
            if Instant::now() > deadline {
                shared.violation(format!(
                    "a re-encryption job of {c} still runs after 5 minutes"
                ));
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    // 1. Every acknowledged snapshot restores byte for byte.
    let snaps = shared.snaps.lock().unwrap().clone();
    let errors_before_end = shared.errors.lock().unwrap().clone();
    let mut restored = 0u64;
    let out_dir = root.join("final-restore");
    for snap in &snaps {
        match restore_matches(&shared, snap, &out_dir) {
            Some(true) => restored += 1,
            Some(false) => {
                shared.violation(format!("snapshot {} restores different bytes", snap.id))
            }
            None => shared.violation(format!(
                "snapshot {} ({:?}) does not restore",
                snap.id, snap.kind
            )),
        }
    }

    // 2. Every acknowledged rotation is in the audit trail.
    let events = all_events(&shared);
    let audited_keys: HashSet<&str> = events
        .iter()
        .filter(|e| e["eventTypeName"] == "RS_ROTATE_MASTER_KEY_AUDIT" && e["outcome"] == "SUCCESS")
        .filter_map(|e| e["newEncryptionKeyUUID"].as_str())
        .collect();
    let rotations = shared.rotations.lock().unwrap().clone();
    let mut audited = 0u64;
    for (cluster, key) in &rotations {
        if audited_keys.contains(key.as_str()) {
            audited += 1;
        } else {
            shared.violation(format!(
                "rotation of {} to {key} (201) has no successful RS_ROTATE_MASTER_KEY_AUDIT event",
                shared.clusters[*cluster]
            ));
        }
    }

    // 3. Exactly one Active key per cluster part in the KMIP server: the current one.
    // Reconciliation (at start and every 30 s) finishes what the kills interrupted.
    let mut current: HashMap<String, String> = HashMap::new();
    let mut kmip_ok = false;
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(31));
        }
        current.clear();
        for c in &shared.clusters {
            let r = retry(
                &shared,
                "GET",
                &format!("/groups/{g}/backupConfigs/{c}/encryptionKey"),
            );
            current.insert(
                c.clone(),
                r.json()["encryptionKeyUUID"].as_str().unwrap().to_string(),
            );
        }
        let (active, states) = kmip.with_client(async |client| {
            let active = client
                .locate(None, Some(ObjectType::SYMMETRIC_KEY), Some(State::ACTIVE))
                .await
                .expect("KMIP Locate");
            let mut states = Vec::new();
            for key in current.values() {
                states.push(client.get_state(key).await.expect("KMIP Get Attributes"));
            }
            (active, states)
        });
        let wanted: HashSet<&String> = current.values().collect();
        let found: HashSet<&String> = active.iter().collect();
        kmip_ok = active.len() == CLUSTERS
            && wanted == found
            && states.iter().all(|s| *s == State::ACTIVE);
        if kmip_ok {
            break;
        }
        eprintln!(
            "soak: KMIP holds {} Active keys for {CLUSTERS} parts (current keys Active: {}); waiting for reconciliation",
            active.len(),
            states.iter().filter(|s| **s == State::ACTIVE).count()
        );
    }
    if !kmip_ok {
        shared.violation(
            "the KMIP server does not hold exactly one Active key per part, the current one".into(),
        );
    }

    // 4. The audit chain verifies (the service stopped; its store opened directly).
    server.stop();
    panics += keep_log(&serve_log, &server.log());
    let chain = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = headlock_store::SqlStore::open_sqlite(&data.join("headlock.db")).await?;
            store.verify_audit_chain().await
        });
    let chain_events = match chain {
        Ok(n) => n,
        Err(e) => {
            shared.violation(format!("the audit chain does not verify: {e}"));
            0
        }
    };
    kmip.kill();
    panics += keep_log(&kmip_log, &kmip.log());

    // 5. No panic in any log.
    if panics > 0 {
        shared.violation(format!("{panics} panics in the logs ({})", logs.display()));
    }

    println!(
        "soak: {} s of traffic, seed {}",
        traffic.as_secs(),
        args.seed
    );
    println!(
        "  snapshots acknowledged {}, restored byte for byte {restored}",
        snaps.len()
    );
    let (live_ok, live_bad) = *shared.live_restores.lock().unwrap();
    println!("  restores during the kills: {live_ok} equal, {live_bad} different");
    println!(
        "  rotations acknowledged {}, audited {audited}; compromise reports accepted {}",
        rotations.len(),
        shared.compromises.lock().unwrap()
    );
    println!("  audit chain: {chain_events} events verify");
    println!("  re-encryption jobs finished: {jobs_finished}");
    println!(
        "  KMIP: one Active key per part: {}",
        if kmip_ok { "yes" } else { "NO" }
    );
    println!("  kills: service {serve_kills}, KMIP server {kmip_kills}; panics in logs {panics}");
    println!("  errors seen by clients during the traffic, by kind:");
    for (kind, n) in &errors_before_end {
        println!("    {n:>6}  {kind}");
    }
    let violations = shared.violations.lock().unwrap();
    if violations.is_empty() {
        println!("soak: OK");
        ExitCode::SUCCESS
    } else {
        println!(
            "soak: {} VIOLATIONS (logs kept in {}):",
            violations.len(),
            logs.display()
        );
        for v in violations.iter() {
            println!("  {v}");
        }
        // Keep the directory for the post-mortem.
        let _ = tmp.keep();
        ExitCode::FAILURE
    }
}
