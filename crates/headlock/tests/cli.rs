//! The API client commands (`groups`, `clusters`, `backup-configs`, `encryption-key`,
//! `events`) as a user runs them: the real `headlock` binary as a subprocess, against a
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

    let config = cli
        .run(&[
            "backup-configs",
            "set",
            "--group",
            &g,
            "--cluster",
            &c,
            "--encryption",
            "on",
        ])
        .json();
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
    let run = cli.run(&["clusters", "delete", "--group", &g, "--cluster", &c]);
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
