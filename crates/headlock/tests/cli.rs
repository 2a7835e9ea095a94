//! The API client commands (`groups`, `clusters`, `backup-configs`, `encryption-key`,
//! `reencryption-jobs`, `snapshots`, `restore-jobs`, `events`, `health`, and the
//! generators `completions` and `man`) as a user runs them: the real `headlock` binary as a subprocess, against a
//! real `headlock serve` (embedded KMIP server) in its own temporary directory and on
//! its own port, with credentials from `headlock users create`. Cross-checks go through
//! the harness' `curl --digest` client.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{BIN, Server, World, create_user};
use serde_json::Value;

/// What one `headlock ...` run left behind.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success and parses standard output as JSON.
    fn json(&self) -> Value {
        self.ok();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "headlock failed: {self:?}");
        self
    }

    /// Asserts a failure with `code` whose message names `error_code`, and nothing on
    /// standard output.
    fn fails(&self, code: i32, error_code: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(
            self.stderr.contains(error_code),
            "stderr lacks {error_code}: {self:?}"
        );
        assert!(self.stdout.is_empty(), "{self:?}");
    }
}

/// How a test calls the CLI: environment only, nothing inherited from the test's own.
#[derive(Clone)]
struct Cli {
    env: Vec<(String, String)>,
}

impl Cli {
    fn new(url: &str, user: &str, key: &str) -> Cli {
        Cli {
            env: vec![
                ("HEADLOCK_URL".into(), url.into()),
                ("HEADLOCK_USERNAME".into(), user.into()),
                ("HEADLOCK_API_KEY".into(), key.into()),
            ],
        }
    }

    fn of(world: &World) -> Cli {
        Cli::new(&world.server.url, &world.admin.user, &world.admin.key)
    }

    fn without(mut self, var: &str) -> Cli {
        self.env.retain(|(k, _)| k != var);
        self
    }

    fn with(mut self, var: &str, value: &str) -> Cli {
        self = self.without(var);
        self.env.push((var.into(), value.into()));
        self
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(BIN)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("run headlock");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
        }
    }
}

impl Cli {
    /// `headlock ARGS --group G --cluster C`.
    fn run_at(&self, g: &str, c: &str, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--group", g, "--cluster", c]);
        self.run(&all)
    }

    /// Runs `headlock ARGS` on a terminal (a pseudo-terminal of util-linux `script`) and
    /// types `answer` into it; what the terminal showed (standard output and error).
    fn run_on_terminal(&self, args: &[&str], answer: &str) -> Run {
        use std::io::Write;
        let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
        let line: Vec<String> = std::iter::once(BIN.path().to_str().unwrap())
            .chain(args.iter().copied())
            .map(quote)
            .collect();
        let mut child = Command::new("script")
            .args([
                "--quiet",
                "--return",
                "--command",
                &line.join(" "),
                "/dev/null",
            ])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run script (util-linux)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{answer}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).replace('\r', ""),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// `rotated; current key: UID` -> UID.
fn rotated_key(run: &Run) -> String {
    run.ok();
    run.stdout
        .trim()
        .strip_prefix("rotated; current key: ")
        .unwrap_or_else(|| panic!("unexpected rotate output: {run:?}"))
        .to_string()
}

#[test]
fn accepts_group_cluster_and_key_lifecycle() {
    let world = World::new();
    let cli = Cli::of(&world);

    let group = cli.run(&["groups", "create", "prod"]).json();
    let g = id_of(&group);
    assert_eq!(group["name"], "prod");
    assert_eq!(g.len(), 24);
    assert_eq!(id_of(&cli.run(&["groups", "get", &g]).json()), g);
    assert_eq!(
        id_of(&cli.run(&["groups", "get", "--name", "prod"]).json()),
        g
    );
    let list = cli.run(&["groups", "list"]).json();
    assert!(
        list["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == g.as_str()),
        "{list}"
    );

    let rs = cli
        .run(&[
            "clusters",
            "register",
            "--group",
            &g,
            "--name",
            "rs0",
            "--replica-set",
            "rs0-set",
        ])
        .json();
    let c = id_of(&rs);
    assert_eq!(
        (rs["typeName"].as_str(), rs["replicaSetName"].as_str()),
        (Some("REPLICA_SET"), Some("rs0-set"))
    );
    assert_eq!(
        cli.run(&["clusters", "get", "--group", &g, "--cluster", &c])
            .json()["clusterName"],
        "rs0"
    );

    let config = enable_encryption(&cli, &g, &c);
    assert_eq!(config["encryptionEnabled"], true, "{config}");
    assert_eq!(
        cli.run(&["backup-configs", "get", "--group", &g, "--cluster", &c])
            .json()["encryptionEnabled"],
        true
    );
    let configs = cli.run(&["backup-configs", "list", "--group", &g]).json();
    assert_eq!(configs["totalCount"], 1, "{configs}");

    let before = cli
        .run(&["encryption-key", "get", "--group", &g, "--cluster", &c])
        .json();
    let first = before["encryptionKeyUUID"]
        .as_str()
        .expect("a key id")
        .to_string();
    assert_eq!(before["clusterId"], c.as_str());

    let second =
        rotated_key(&cli.run(&["encryption-key", "rotate", "--group", &g, "--cluster", &c]));
    assert_ne!(second, first, "rotation gives a new key");
    let after = cli
        .run(&["encryption-key", "get", "--group", &g, "--cluster", &c])
        .json();
    assert_eq!(after["encryptionKeyUUID"], second.as_str());
    // Another client (curl --digest) sees the same key.
    assert_eq!(world.key_of(&g, &c), second);

    let events = cli.run(&["events", "list", "--group", &g]).json();
    let rotation = events["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["newEncryptionKeyUUID"] == second.as_str())
        .unwrap_or_else(|| panic!("no event for the rotation: {events}"));
    assert_eq!(
        rotation["oldEncryptionKeyUUID"],
        first.as_str(),
        "{rotation}"
    );

    // Paging reaches the API.
    let page = cli
        .run(&["events", "list", "--group", &g, "--items-per-page", "1"])
        .json();
    assert_eq!(page["results"].as_array().unwrap().len(), 1, "{page}");
}

#[test]
fn accepts_sharded_clusters_and_rotates_every_part() {
    let world = World::new();
    let cli = Cli::of(&world);
    let g = id_of(&cli.run(&["groups", "create", "shops"]).json());
    let shop = cli
        .run(&[
            "clusters",
            "register",
            "--group",
            &g,
            "--name",
            "shop",
            "--shard",
            "shop-0=shop-rs0",
            "--shard",
            "shop-1",
            "--config-server-replica-set",
            "shop-config",
        ])
        .json();
    let whole = id_of(&shop);
    assert_eq!(shop["typeName"], "SHARDED_REPLICA_SET");
    let parts = shop["parts"].as_array().expect("parts").clone();
    assert_eq!(parts.len(), 3, "{shop}");
    let shard0 = parts
        .iter()
        .find(|p| p["shardName"] == "shop-0")
        .expect("shard shop-0");
    assert_eq!(shard0["replicaSetName"], "shop-rs0");
    let shard1 = parts
        .iter()
        .find(|p| p["shardName"] == "shop-1")
        .expect("shard shop-1");
    assert_eq!(shard1["replicaSetName"], "shop-1");

    let listed = cli
        .run(&["clusters", "list", "--group", &g, "--parent", &whole])
        .json();
    assert_eq!(listed["totalCount"], 3, "{listed}");

    // A shard's config cannot be changed on its own.
    cli.run(&[
        "backup-configs",
        "set",
        "--group",
        &g,
        "--cluster",
        &id_of(shard0),
        "--encryption",
        "on",
    ])
    .fails(3, "CANNOT_MODIFY_SHARD_BACKUP_CONFIG");

    cli.run(&[
        "backup-configs",
        "set",
        "--group",
        &g,
        "--cluster",
        &whole,
        "--encryption",
        "on",
    ])
    .ok();
    let before: Vec<String> = parts.iter().map(|p| world.key_of(&g, &id_of(p))).collect();
    let run = cli.run(&[
        "encryption-key",
        "rotate",
        "--group",
        &g,
        "--cluster",
        &whole,
    ]);
    run.ok();
    let line = run
        .stdout
        .trim()
        .strip_prefix("rotated; current keys: ")
        .unwrap_or_else(|| panic!("{run:?}"));
    for (part, old) in parts.iter().zip(&before) {
        let now = world.key_of(&g, &id_of(part));
        assert_ne!(&now, old, "part {} was rotated", id_of(part));
        assert!(line.contains(&format!("{}={now}", id_of(part))), "{line}");
    }

    // A compromise of the whole cluster starts one job per part, listed on the whole.
    let started = cli
        .run_at(&g, &whole, &["encryption-key", "compromised", "--yes"])
        .json();
    assert_eq!(started["totalCount"], 3, "{started}");
    let refused = cli.run_at(&g, &whole, &["encryption-key", "compromised"]);
    assert_eq!(refused.code, 2, "no --yes, no terminal: {refused:?}");
    let jobs = cli
        .run_at(&g, &whole, &["reencryption-jobs", "list"])
        .json();
    assert_eq!(jobs["totalCount"], 3, "{jobs}");
    for part in &parts {
        let history = cli
            .run_at(&g, &id_of(part), &["encryption-key", "history"])
            .json();
        assert_eq!(
            history["results"][0]["rotationType"], "COMPROMISE",
            "{history}"
        );
    }
}

#[test]
fn rejects_wrong_api_key() {
    let world = World::new();
    let run = Cli::of(&world)
        .with("HEADLOCK_API_KEY", "00000000-0000-0000-0000-000000000000")
        .run(&["groups", "list"]);
    run.fails(3, "USER_UNAUTHORIZED");
    assert!(run.stderr.contains("401"), "{run:?}");
}

#[test]
fn rejects_unknown_user() {
    let world = World::new();
    Cli::of(&world)
        .with("HEADLOCK_USERNAME", "nobody")
        .run(&["groups", "list"])
        .fails(3, "USER_UNAUTHORIZED");
}

#[test]
fn rejects_unknown_cluster_and_deleted_cluster() {
    let world = World::new();
    let cli = Cli::of(&world);
    let g = world.group("prod");
    let run = cli.run(&[
        "encryption-key",
        "get",
        "--group",
        &g,
        "--cluster",
        "5f0c0ffee0c0ffee0c0ffee0",
    ]);
    run.fails(3, "CLUSTER_NOT_FOUND");
    assert!(run.stderr.contains("404"), "{run:?}");

    let c = world.replica_set(&g, "rs0");
    // Without --yes and without a terminal to ask on: refused, nothing deleted.
    let run = cli.run(&["clusters", "delete", "--group", &g, "--cluster", &c]);
    run.fails(2, "--yes");
    assert_eq!(
        cli.run(&["clusters", "get", "--group", &g, "--cluster", &c])
            .json()["clusterName"],
        "rs0"
    );
    let run = cli.run(&[
        "clusters",
        "delete",
        "--group",
        &g,
        "--cluster",
        &c,
        "--yes",
    ]);
    run.ok();
    assert!(run.stdout.is_empty(), "{run:?}");
    cli.run(&["clusters", "get", "--group", &g, "--cluster", &c])
        .fails(3, "CLUSTER_NOT_FOUND");
}

#[test]
fn rejects_path_tricks_in_ids() {
    let world = World::new();
    let cli = Cli::of(&world);
    let g = world.group("prod");
    // The cluster argument stays one path segment: no way to reach another resource.
    cli.run(&[
        "clusters",
        "get",
        "--group",
        &g,
        "--cluster",
        "../../groups",
    ])
    .fails(3, "INVALID_CLUSTER_ID");
}

#[test]
fn rejects_rotation_while_encryption_is_off() {
    let world = World::new();
    let cli = Cli::of(&world);
    let g = world.group("prod");
    let c = world.replica_set(&g, "rs0");
    cli.run(&["encryption-key", "rotate", "--group", &g, "--cluster", &c])
        .fails(3, "CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED");
}

#[test]
fn rejects_users_outside_the_group() {
    let world = World::new();
    let g = world.group("prod");
    let other = world.group("other");
    let key = create_user(world.dir.path(), "ops", "GROUP_OWNER", Some(&other));
    let cli = Cli::new(&world.server.url, "ops", &key);
    cli.run(&["groups", "get", &g]).fails(3, "NOT_IN_GROUP");
    // Its own group works.
    assert_eq!(id_of(&cli.run(&["groups", "get", &other]).json()), other);
}

#[test]
fn rejects_unreachable_api() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = Cli::new(&format!("http://127.0.0.1:{port}"), "admin", "k").run(&["groups", "list"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("connecting to 127.0.0.1"), "{run:?}");
}

#[test]
fn rejects_missing_credentials_and_a_key_flag() {
    let cli = Cli::new("http://127.0.0.1:9", "admin", "k");
    let run = cli
        .clone()
        .without("HEADLOCK_API_KEY")
        .run(&["groups", "list"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("HEADLOCK_API_KEY"), "{run:?}");
    let run = cli
        .clone()
        .without("HEADLOCK_USERNAME")
        .run(&["groups", "list"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("--username"), "{run:?}");
    // There is no flag for the key itself: a usage error.
    let run = cli.run(&["groups", "list", "--api-key", "secret"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = cli.run(&["--url", "ftp://x", "groups", "list"]);
    assert_eq!(run.code, 2, "--url is not a top-level flag: {run:?}");
    let run = cli.run(&["groups", "list", "--url", "ftp://x"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("http:// or https://"), "{run:?}");
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn accepts_api_key_file_and_flags_after_the_subcommand() {
    let world = World::new();
    let key_file = world.dir.path().join("admin.key");
    write_private(&key_file, &format!("{}\n", world.admin.key));
    let cli = Cli::new("http://127.0.0.1:9", "nobody", "wrong").without("HEADLOCK_API_KEY");
    let key_file = key_file.to_str().unwrap();
    let run = cli.run(&[
        "groups",
        "create",
        "--url",
        &world.server.url,
        "--username",
        "admin",
        "--api-key-file",
        key_file,
        "prod",
    ]);
    assert_eq!(run.json()["name"], "prod");
    assert!(!run.stderr.contains("warning"), "{run:?}");
    // The same flags before the subcommand; the file wins over the variable.
    let run = cli.clone().with("HEADLOCK_API_KEY", "wrong").run(&[
        "groups",
        "--url",
        &world.server.url,
        "--username",
        "admin",
        "--api-key-file",
        key_file,
        "list",
    ]);
    assert_eq!(run.json()["totalCount"], 1);
}

#[test]
fn accepts_https_with_its_ca_and_rejects_another() {
    let dir = tempfile::tempdir().unwrap();
    let pki = kmip_server::pki::generate(&dir.path().join("tls"), "unused").unwrap();
    let other = kmip_server::pki::generate(&dir.path().join("other"), "unused").unwrap();
    let key = create_user(dir.path(), "admin", "GLOBAL_OWNER", None);
    let server = Server::start(
        dir.path(),
        &[
            "--tls-cert-file",
            pki.server_cert.to_str().unwrap(),
            "--tls-key-file",
            pki.server_key.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let cli = Cli::new(&server.url, "admin", &key);
    let run = cli.run(&[
        "groups",
        "create",
        "--ca-file",
        pki.ca_cert.to_str().unwrap(),
        "prod",
    ]);
    assert_eq!(run.json()["name"], "prod");
    let run = cli
        .clone()
        .with("HEADLOCK_CA_FILE", other.ca_cert.to_str().unwrap())
        .run(&["groups", "list"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("TLS handshake"), "{run:?}");
}

#[test]
fn accepts_help_with_examples_and_exit_statuses() {
    let cli = Cli::new("http://127.0.0.1:9", "a", "k");
    for cmd in [
        &["groups", "--help"][..],
        &["clusters", "register", "--help"],
        &["backup-configs", "set", "--help"],
        &["encryption-key", "rotate", "--help"],
        &["events", "list", "--help"],
        &["encryption-key", "compromised", "--help"],
        &["encryption-key", "schedule", "--help"],
        &["reencryption-jobs", "--help"],
        &["snapshots", "delete", "--help"],
        &["restore-jobs", "--help"],
        &["health", "--help"],
    ] {
        let run = cli.run(cmd);
        run.ok();
        assert!(run.stdout.contains("Example"), "{cmd:?}: {}", run.stdout);
        assert!(
            run.stdout.contains("HEADLOCK_API_KEY"),
            "{cmd:?}: {}",
            run.stdout
        );
    }
    let run = cli.run(&["groups", "--help"]);
    assert!(run.stdout.contains("Exit status"), "{}", run.stdout);
}

#[test]
fn migrate_reports_the_schema_version_and_help_never_shows_the_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let (version, latest) = line
        .trim()
        .strip_prefix("sqlite schema at version ")
        .and_then(|rest| rest.split_once(" (latest "))
        .unwrap_or_else(|| panic!("{line:?}"));
    assert_eq!(format!("{version})"), latest, "fully migrated: {line:?}");
    assert!(dir.path().join("headlock.db").exists());

    // A password in HEADLOCK_DATABASE_URL is never echoed by --help.
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .env("HEADLOCK_DATABASE_URL", "postgres://u:s3cret-pw@db/h")
        .output()
        .unwrap();
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(text.contains("--database-url"), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
}

/// Every interval and timeout variable is read by one rule: out of range or not a
/// number, `serve` stops at start naming the variable and the range it accepts.
#[test]
fn serve_refuses_interval_and_timeout_variables_out_of_range() {
    for (var, value, max) in [
        ("HEADLOCK_HTTP_HEADER_TIMEOUT_SECS", "abc", "3600"),
        ("HEADLOCK_HTTP_BODY_TIMEOUT_SECS", "0", "3600"),
        ("HEADLOCK_KEY_SCHEDULE_INTERVAL_SECS", "86401", "86400"),
        ("HEADLOCK_KEY_WATCH_INTERVAL_SECS", "-5", "86400"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        // Under `timeout`, so that a server that accepted the value ends the test
        // (failing it) instead of serving forever.
        let out = Command::new("timeout")
            .arg("30")
            .arg(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env(var, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{var}={value} was accepted: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "{var} must be a whole number of seconds from 1 to {max}, not \"{value}\""
            )),
            "{var}={value}: {stderr}"
        );
    }
}

/// The rows of a `--output table` list: each line split on runs of two spaces or more.
fn table_rows(run: &Run) -> Vec<Vec<String>> {
    run.ok();
    run.stdout
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// Backs up `bytes` with `headlock backup` as a stream snapshot; its id.
fn backup_bytes(cli: &Cli, dir: &Path, g: &str, c: &str, name: &str, bytes: &[u8]) -> String {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let run = cli.run(&[
        "backup",
        "--quiet",
        "--group",
        g,
        "--cluster",
        c,
        file.to_str().unwrap(),
    ]);
    run.ok();
    let id = run.stdout.trim().to_string();
    assert_eq!(id.len(), 24, "{run:?}");
    id
}

/// An encrypted replica set made with the CLI: (group, cluster).
fn encrypted_replica_set(cli: &Cli, group: &str) -> (String, String) {
    let g = id_of(&cli.run(&["groups", "create", group]).json());
    let c = id_of(
        &cli.run(&["clusters", "register", "--group", &g, "--name", "rs0"])
            .json(),
    );
    enable_encryption(cli, &g, &c);
    (g, c)
}

/// `backup-configs set --encryption on`; the configuration it printed.
fn enable_encryption(cli: &Cli, g: &str, c: &str) -> Value {
    cli.run_at(g, c, &["backup-configs", "set", "--encryption", "on"])
        .json()
}

#[test]
fn accepts_key_history_schedule_cancel_destruction_and_compromise() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_replica_set(&cli, "prod");
    let run = |a: &[&str]| cli.run_at(&g, &c, a);
    let s1 = backup_bytes(&cli, world.dir.path(), &g, &c, "a.bin", &[7u8; 300_000]);
    let s2 = backup_bytes(&cli, world.dir.path(), &g, &c, "b.bin", &[9u8; 200_000]);

    let first = world.key_of(&g, &c);
    let second = rotated_key(&run(&["encryption-key", "rotate"]));

    // History: newest first, the rotation's type and who asked.
    let history = run(&["encryption-key", "history"]).json();
    let keys = history["results"].as_array().expect("results");
    assert_eq!(history["totalCount"], 2, "{history}");
    assert_eq!(keys[0]["encryptionKeyUUID"], second.as_str(), "{history}");
    assert_eq!(keys[0]["rotationType"], "MANUAL", "{history}");
    assert_eq!(keys[0]["requestedBy"], world.admin.user.as_str());
    assert_eq!(keys[0]["snapshotCount"], 2, "{history}");
    assert_eq!(keys[1]["encryptionKeyUUID"], first.as_str(), "{history}");
    assert_eq!(keys[1]["rotationType"], "INITIAL", "{history}");
    assert!(!keys[1]["retired"].is_null(), "{history}");
    let rows = table_rows(&run(&["encryption-key", "history", "--output", "table"]));
    assert_eq!(rows[0][..3], ["KEY", "STATE", "ROTATION"], "{rows:?}");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[1][0], second);
    assert_eq!(rows[1][2], "MANUAL", "{rows:?}");
    assert_eq!(rows[2][0], first);

    // Schedule and retirement settings reach the backup configuration.
    let config = run(&[
        "encryption-key",
        "schedule",
        "--rotate-every-days",
        "90",
        "--destroy-retired-after-days",
        "30",
    ])
    .json();
    assert_eq!(config["encryptionKeyRotationPeriodDays"], 90, "{config}");
    assert_eq!(config["retiredKeyDestroyAfterDays"], 30, "{config}");
    let config = run(&["backup-configs", "get"]).json();
    assert_eq!(config["encryptionKeyRotationPeriodDays"], 90, "{config}");
    assert!(config["nextEncryptionKeyRotation"].is_string(), "{config}");
    // The retired key now has a destruction date.
    let history = run(&["encryption-key", "history"]).json();
    assert!(
        history["results"][1]["scheduledDestruction"].is_string(),
        "{history}"
    );
    // Out of range is a usage error, and nothing at all is a usage error.
    assert_eq!(
        run(&["encryption-key", "schedule", "--rotate-every-days", "3651"]).code,
        2
    );
    assert_eq!(run(&["encryption-key", "schedule"]).code, 2);
    let config = run(&["encryption-key", "schedule", "--rotate-every-days", "0"]).json();
    assert_eq!(config["encryptionKeyRotationPeriodDays"], 0, "{config}");
    assert!(config["nextEncryptionKeyRotation"].is_null(), "{config}");

    // Cancel the retired key's destruction; the current key's is refused.
    let kept = run(&["encryption-key", "cancel-destruction", "--key", &first]).json();
    assert_eq!(kept["encryptionKeyUUID"], first.as_str(), "{kept}");
    assert_eq!(kept["destructionCancelled"], true, "{kept}");
    let history = run(&["encryption-key", "history"]).json();
    assert_eq!(history["results"][1]["destructionCancelled"], true);
    assert!(history["results"][1]["scheduledDestruction"].is_null());
    run(&["encryption-key", "cancel-destruction", "--key", &second])
        .fails(3, "CANNOT_CANCEL_KEY_DESTRUCTION");

    // Compromise: refused without --yes and a terminal, changing nothing.
    let refused = run(&["encryption-key", "compromised"]);
    refused.fails(2, "--yes");
    assert_eq!(world.key_of(&g, &c), second, "no rotation without --yes");
    assert_eq!(run(&["reencryption-jobs", "list"]).json()["totalCount"], 0);

    let started = run(&["encryption-key", "compromised", "--yes"]);
    let job = started.json();
    let j = id_of(&job);
    assert!(
        started
            .stderr
            .contains(&format!("reencryption-jobs get --job {j} --wait")),
        "says how to follow the job: {started:?}"
    );
    assert_eq!(job["clusterId"], c.as_str(), "{job}");
    let third = world.key_of(&g, &c);
    assert_ne!(third, second, "the compromise rotated the key");

    // Follow the job to its end; it re-encrypted both snapshots.
    let done = run(&["reencryption-jobs", "get", "--job", &j, "--wait"]).json();
    assert_eq!(done["statusName"], "FINISHED", "{done}");
    assert_eq!(done["snapshotsDone"], 2, "{done}");
    assert_eq!(done["snapshotsTotal"], 2, "{done}");
    let jobs = run(&["reencryption-jobs", "list"]).json();
    assert_eq!(jobs["totalCount"], 1, "{jobs}");
    assert_eq!(jobs["results"][0]["id"], j.as_str());
    let rows = table_rows(&run(&["reencryption-jobs", "list", "--output", "table"]));
    assert_eq!(
        rows[1][..3],
        [j.clone(), c.clone(), "FINISHED".into()],
        "{rows:?}"
    );
    run(&[
        "reencryption-jobs",
        "get",
        "--job",
        "5f0c0ffee0c0ffee0c0ffee0",
    ])
    .fails(3, "REENCRYPTION_JOB_NOT_FOUND");

    let history = run(&["encryption-key", "history"]).json();
    assert_eq!(history["totalCount"], 3, "{history}");
    assert_eq!(history["results"][0]["encryptionKeyUUID"], third.as_str());
    assert_eq!(history["results"][0]["rotationType"], "COMPROMISE");
    assert_eq!(history["results"][1]["state"], "Compromised", "{history}");
    for s in [&s1, &s2] {
        let snap = run(&["snapshots", "get", "--snapshot", s]).json();
        assert_eq!(snap["parts"][0]["masterKeyUUID"], third.as_str(), "{snap}");
    }
}

#[test]
fn accepts_snapshots_list_get_set_delete_and_restore_jobs() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_replica_set(&cli, "prod");
    let run = |a: &[&str]| cli.run_at(&g, &c, a);
    let data: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let s1 = backup_bytes(&cli, world.dir.path(), &g, &c, "a.bin", b"first snapshot");
    let s2 = backup_bytes(&cli, world.dir.path(), &g, &c, "b.bin", &data);

    let list = run(&["snapshots", "list"]).json();
    assert_eq!(list["totalCount"], 2, "{list}");
    assert_eq!(
        list["results"][0]["id"],
        s2.as_str(),
        "newest first: {list}"
    );
    let rows = table_rows(&run(&["snapshots", "list", "--output", "table"]));
    assert_eq!(rows[0][..3], ["ID", "CREATED", "KIND"], "{rows:?}");
    assert_eq!(
        (rows[1][0].as_str(), rows[2][0].as_str()),
        (s2.as_str(), s1.as_str())
    );
    assert_eq!(rows[1][3], data.len().to_string(), "data bytes: {rows:?}");
    let one = run(&["snapshots", "get", "--snapshot", &s1]).json();
    assert_eq!(one["id"], s1.as_str());
    assert_eq!(one["kind"], "stream", "{one}");
    assert_eq!(one["parts"][0]["dataSizeBytes"], 14, "{one}");

    // do-not-delete protects it from deletion.
    let set = run(&[
        "snapshots",
        "set",
        "--snapshot",
        &s1,
        "--do-not-delete",
        "on",
    ])
    .json();
    assert_eq!(set["doNotDelete"], true, "{set}");
    run(&["snapshots", "delete", "--snapshot", &s1, "--yes"])
        .fails(3, "CANNOT_DELETE_SNAPSHOT_DO_NOT_DELETE");
    let set = run(&[
        "snapshots",
        "set",
        "--snapshot",
        &s1,
        "--do-not-delete",
        "off",
        "--expires",
        "2030-01-31T00:00:00Z",
    ])
    .json();
    assert_eq!(set["doNotDelete"], false, "{set}");
    assert!(
        set["expires"]
            .as_str()
            .unwrap_or("")
            .starts_with("2030-01-31"),
        "{set}"
    );
    let set = run(&["snapshots", "set", "--snapshot", &s1, "--expires", "never"]).json();
    assert!(set["expires"].is_null(), "{set}");
    run(&[
        "snapshots",
        "set",
        "--snapshot",
        &s1,
        "--expires",
        "tomorrow",
    ])
    .fails(3, "INVALID_ATTRIBUTE");
    assert_eq!(run(&["snapshots", "set", "--snapshot", &s1]).code, 2);

    // Delete: refused without --yes and a terminal, then done with --yes.
    run(&["snapshots", "delete", "--snapshot", &s1]).fails(2, "--yes");
    assert_eq!(run(&["snapshots", "list"]).json()["totalCount"], 2);
    let deleted = run(&["snapshots", "delete", "--snapshot", &s1, "--yes"]);
    deleted.ok();
    assert!(deleted.stdout.is_empty(), "{deleted:?}");
    let list = run(&["snapshots", "list"]).json();
    assert_eq!(list["totalCount"], 1, "{list}");
    assert_eq!(list["results"][0]["id"], s2.as_str());
    run(&["snapshots", "get", "--snapshot", &s1]).fails(3, "SNAPSHOT_NOT_FOUND");

    // A restore job without download: its link delivers the snapshot's bytes once.
    let created = run(&["restore-jobs", "create", "--snapshot", &s2]).json();
    let job = &created["results"][0];
    let j = id_of(job);
    assert_eq!(job["snapshotId"], s2.as_str(), "{created}");
    assert_eq!(job["delivery"]["statusName"], "READY", "{created}");
    let url = job["delivery"]["url"].as_str().expect("a link").to_string();
    let got = Command::new("curl").args(["-sf", &url]).output().unwrap();
    assert!(got.status.success(), "{got:?}");
    assert!(got.stdout == data, "the link delivers the snapshot's bytes");
    let again = run(&["restore-jobs", "get", "--job", &j]).json();
    assert_eq!(again["delivery"]["statusName"], "DOWNLOADED", "{again}");
    let jobs = run(&["restore-jobs", "list"]).json();
    assert_eq!(jobs["totalCount"], 1, "{jobs}");
    assert_eq!(jobs["results"][0]["id"], j.as_str());
    // The table of a new job shows it field by field, link included.
    let rows = table_rows(&run(&[
        "restore-jobs",
        "create",
        "--snapshot",
        &s2,
        "-o",
        "table",
    ]));
    let link = rows
        .iter()
        .find(|r| r[0] == "delivery.url")
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(link[1].starts_with("http"), "{rows:?}");
    run(&["restore-jobs", "get", "--job", "5f0c0ffee0c0ffee0c0ffee0"])
        .fails(3, "RESTORE_JOB_NOT_FOUND");
}

#[test]
fn accepts_events_get_health_and_table_output_everywhere() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_replica_set(&cli, "prod");

    let events = cli.run(&["events", "list", "--group", &g]).json();
    let newest = &events["results"][0];
    let e = id_of(newest);
    let one = cli
        .run(&["events", "get", "--group", &g, "--event", &e])
        .json();
    assert_eq!(one["id"], e.as_str());
    assert_eq!(one["eventTypeName"], newest["eventTypeName"], "{one}");
    cli.run(&[
        "events",
        "get",
        "--group",
        &g,
        "--event",
        "5f0c0ffee0c0ffee0c0ffee0",
    ])
    .fails(3, "EVENT_NOT_FOUND");
    let rows = table_rows(&cli.run(&["events", "list", "--group", &g, "-o", "table"]));
    assert_eq!(rows[0][..3], ["ID", "CREATED", "TYPE"], "{rows:?}");
    assert!(
        rows.iter().any(|r| r[2] == "BACKUP_ENCRYPTION_ENABLED"),
        "{rows:?}"
    );

    let health = cli.run(&["health"]).json();
    assert!(health["node"].is_string(), "{health}");
    assert!(health["status"].is_string(), "{health}");
    let rows = table_rows(&cli.run(&["health", "--output", "table"]));
    assert!(rows.iter().any(|r| r[0] == "node"), "{rows:?}");
    let key = create_user(world.dir.path(), "ops", "GROUP_OWNER", Some(&g));
    Cli::new(&world.server.url, "ops", &key)
        .run(&["health"])
        .fails(3, "USER_UNAUTHORIZED");

    // Tables for the older commands, by flag or by HEADLOCK_OUTPUT; JSON stays the default.
    let rows = table_rows(&cli.run(&["groups", "list", "--output", "table"]));
    assert_eq!(rows[0], ["ID", "NAME", "CLUSTERS", "CREATED"], "{rows:?}");
    assert_eq!(rows[1][..2], [g.clone(), "prod".into()], "{rows:?}");
    let table = cli.clone().with("HEADLOCK_OUTPUT", "table");
    let rows = table_rows(&table.run(&["clusters", "list", "--group", &g]));
    assert_eq!(
        rows[1][..3],
        [c.clone(), "rs0".into(), "REPLICA_SET".into()],
        "{rows:?}"
    );
    let rows = table_rows(&table.run(&["backup-configs", "list", "--group", &g]));
    assert_eq!(
        rows[1][..3],
        [c.clone(), "INACTIVE".into(), "true".into()],
        "{rows:?}"
    );
    let rows = table_rows(&table.run(&["encryption-key", "get", "--group", &g, "--cluster", &c]));
    let uid = world.key_of(&g, &c);
    assert!(
        rows.contains(&vec!["encryptionKeyUUID".to_string(), uid]),
        "{rows:?}"
    );
    // --output json overrides the variable; the older --json of rotate still works.
    assert_eq!(
        table.run(&["groups", "get", &g, "--output", "json"]).json()["name"],
        "prod"
    );
    for flags in [&["--json"][..], &["-o", "json"]] {
        let mut args = vec!["encryption-key", "rotate"];
        args.extend(flags);
        let rotated = cli.run_at(&g, &c, &args).json();
        assert_eq!(rotated["encryptionKeyUUID"], world.key_of(&g, &c).as_str());
    }
    assert_eq!(cli.run(&["groups", "list", "--output", "yaml"]).code, 2);
}

#[test]
fn completions_and_man_pages_name_every_command() {
    let cli = Cli::new("http://127.0.0.1:9", "a", "k");
    let new = [
        "reencryption-jobs",
        "snapshots",
        "restore-jobs",
        "health",
        "history",
        "schedule",
        "compromised",
        "cancel-destruction",
    ];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = cli.run(&["completions", shell]);
        run.ok();
        for word in new {
            assert!(run.stdout.contains(word), "{shell} lacks {word}");
        }
        // fish writes flags as `-l yes`.
        for flag in ["output", "yes"] {
            assert!(
                run.stdout.contains(&format!("--{flag}"))
                    || run.stdout.contains(&format!("-l {flag}")),
                "{shell} lacks --{flag}"
            );
        }
    }
    assert_eq!(cli.run(&["completions", "tcsh"]).code, 2);

    let run = cli.run(&["man"]);
    run.ok();
    assert!(
        run.stdout.contains("\n.TH headlock 1 "),
        "not roff: {run:?}"
    );
    for word in &new[..4] {
        assert!(
            run.stdout.contains(&word.replace('-', "\\-")),
            "man lacks {word}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    cli.run(&["man", "--dir", pages.to_str().unwrap()]).ok();
    let page = std::fs::read_to_string(pages.join("headlock-snapshots-delete.1"))
        .expect("a page per subcommand");
    assert!(page.contains("\\-\\-yes"), "{page}");
    let page = std::fs::read_to_string(pages.join("headlock-encryption-key-compromised.1"))
        .expect("a page per subcommand");
    assert!(page.contains("Key Compromise"), "{page}");
}

/// On a terminal the destructive commands show what they will do and go on only when
/// the word asked for is typed back.
#[test]
fn asks_on_a_terminal_before_destroying() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_replica_set(&cli, "prod");
    let s = backup_bytes(&cli, world.dir.path(), &g, &c, "a.bin", b"keep me");
    let key = world.key_of(&g, &c);
    let on_terminal = |a: &[&str], answer: &str| {
        let mut all = a.to_vec();
        all.extend(["--group", &g, "--cluster", &c]);
        cli.run_on_terminal(&all, answer)
    };

    // A wrong answer changes nothing.
    let run = on_terminal(&["encryption-key", "compromised"], "yes");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("COMPROMISED"), "{run:?}");
    assert!(run.stdout.contains(&key), "names the key: {run:?}");
    assert!(run.stdout.contains("Type rs0 to go on"), "{run:?}");
    assert!(
        run.stdout.contains("cancelled; nothing was changed"),
        "{run:?}"
    );
    assert_eq!(world.key_of(&g, &c), key);
    let run = on_terminal(&["snapshots", "delete", "--snapshot", &s], "rs0");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("About to DELETE snapshot"), "{run:?}");
    assert_eq!(
        cli.run_at(&g, &c, &["snapshots", "list"]).json()["totalCount"],
        1
    );

    // The right one goes on.
    let run = on_terminal(&["encryption-key", "compromised"], "rs0");
    assert_eq!(run.code, 0, "{run:?}");
    assert_ne!(world.key_of(&g, &c), key, "the compromise rotated the key");
    let run = on_terminal(&["snapshots", "delete", "--snapshot", &s], "delete");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("deleted snapshot"), "{run:?}");
    // The snapshot is gone.
    let list = cli.run_at(&g, &c, &["snapshots", "list"]).json();
    assert_eq!(list["totalCount"], 0, "{list}");
    let run = on_terminal(&["clusters", "delete"], "rs0");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("About to DELETE cluster \"rs0\""),
        "{run:?}"
    );
    cli.run_at(&g, &c, &["clusters", "get"])
        .fails(3, "CLUSTER_NOT_FOUND");
}

/// Every operation of the API (docs/openapi.json, which a test keeps equal to the
/// router) has a command, or is named here as used by one or as not for people; a route
/// added without either fails this test.
#[test]
fn every_api_operation_has_a_command() {
    const P: &str = "/api/public/v1.0/groups/{group_id}";
    #[rustfmt::skip]
    let table: [(&str, &str, &[&str]); 30] = [
        ("GET", "/api/public/v1.0/groups", &["groups", "list"]),
        ("POST", "/api/public/v1.0/groups", &["groups", "create"]),
        ("GET", "/api/public/v1.0/groups/byName/{name}", &["groups", "get"]),
        ("GET", "", &["groups", "get"]),
        ("GET", "/backupConfigs", &["backup-configs", "list"]),
        ("GET", "/backupConfigs/{cluster_id}", &["backup-configs", "get"]),
        ("PATCH", "/backupConfigs/{cluster_id}", &["backup-configs", "set"]),
        ("GET", "/backupConfigs/{cluster_id}/encryptionKey", &["encryption-key", "get"]),
        ("PUT", "/backupConfigs/{cluster_id}/encryptionKey", &["encryption-key", "rotate"]),
        ("POST", "/backupConfigs/{cluster_id}/encryptionKey/compromised", &["encryption-key", "compromised"]),
        ("GET", "/backupConfigs/{cluster_id}/encryptionKeys", &["encryption-key", "history"]),
        ("POST", "/backupConfigs/{cluster_id}/encryptionKeys/{key_id}/restore", &["encryption-key", "cancel-destruction"]),
        ("GET", "/backupConfigs/{cluster_id}/reencryptionJobs", &["reencryption-jobs", "list"]),
        ("GET", "/backupConfigs/{cluster_id}/reencryptionJobs/{job_id}", &["reencryption-jobs", "get"]),
        ("GET", "/clusters", &["clusters", "list"]),
        ("POST", "/clusters", &["clusters", "register"]),
        ("GET", "/clusters/{cluster_id}", &["clusters", "get"]),
        ("DELETE", "/clusters/{cluster_id}", &["clusters", "delete"]),
        ("GET", "/clusters/{cluster_id}/restoreJobs", &["restore-jobs", "list"]),
        ("POST", "/clusters/{cluster_id}/restoreJobs", &["restore-jobs", "create"]),
        ("GET", "/clusters/{cluster_id}/restoreJobs/{job_id}", &["restore-jobs", "get"]),
        ("GET", "/clusters/{cluster_id}/snapshots", &["snapshots", "list"]),
        ("POST", "/clusters/{cluster_id}/snapshots", &["backup"]),
        ("GET", "/clusters/{cluster_id}/snapshots/{snapshot_id}", &["snapshots", "get"]),
        ("PATCH", "/clusters/{cluster_id}/snapshots/{snapshot_id}", &["snapshots", "set"]),
        ("DELETE", "/clusters/{cluster_id}/snapshots/{snapshot_id}", &["snapshots", "delete"]),
        ("POST", "/clusters/{cluster_id}/snapshots/{snapshot_id}/verify", &["verify"]),
        ("GET", "/events", &["events", "list"]),
        ("GET", "/events/{event_id}", &["events", "get"]),
        ("GET", "/api/public/v1.0/health", &["health"]),
    ];
    let commands: Vec<(String, &[&str])> = table
        .into_iter()
        .map(|(m, path, cmd)| {
            let path = if path.starts_with("/api") {
                path.to_string()
            } else {
                format!("{P}{path}")
            };
            (format!("{m} {path}"), cmd)
        })
        .collect();
    // Used by `backup DIR` (upload sessions) and `restore` (the link), or not for
    // people (load balancers, Prometheus, OpenAPI tools): docs/cli.md, "Coverage".
    let not_commands = [
        "POST {P}/clusters/{cluster_id}/snapshotUploads",
        "DELETE {P}/clusters/{cluster_id}/snapshotUploads/{upload_id}",
        "POST {P}/clusters/{cluster_id}/snapshotUploads/{upload_id}/chunkIds",
        "PUT {P}/clusters/{cluster_id}/snapshotUploads/{upload_id}/chunks",
        "POST {P}/clusters/{cluster_id}/snapshotUploads/{upload_id}/commit",
        "GET {P}/clusters/{cluster_id}/snapshotUploads/{upload_id}/parent",
        "GET /backup/restore/{cluster_id}/{job_id}/{token}",
        "HEAD /backup/restore/{cluster_id}/{job_id}/{token}",
        "GET /api/public/v1.0/openapi.json",
        "GET /health",
        "GET /ready",
        "GET /metrics",
    ]
    .map(|op| op.replace("{P}", P));

    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut operations: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "put", "post", "patch", "delete", "head"].contains(&m.as_str()))
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    operations.sort();
    let mut covered: Vec<String> = commands
        .iter()
        .map(|(op, _)| op.clone())
        .chain(not_commands)
        .collect();
    covered.sort();
    assert_eq!(operations, covered);

    // Each command named exists (its help answers).
    let cli = Cli::new("http://127.0.0.1:9", "a", "k");
    for (op, cmd) in &commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let run = cli.run(&args);
        assert_eq!(run.code, 0, "{op}: headlock {cmd:?}: {run:?}");
    }
}
