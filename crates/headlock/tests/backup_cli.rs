//! `headlock backup`, `restore` and `verify` as a user runs them: the real binary as a
//! subprocess against a real `headlock serve` (embedded KMIP server) in its own
//! temporary directory and on its own port; data compared byte for byte and
//! metadata (kind, mode, modification time, link target) entry by entry.

mod common;

use std::fs::{self, File, FileTimes, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{BIN, Deployment, Server, World};

/// What one `headlock ...` run left behind.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "headlock failed: {}", self.stderr);
        self
    }

    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("UTF-8 stdout")
    }

    /// The one line of standard output.
    fn line(&self) -> String {
        self.ok();
        let text = self.text();
        assert_eq!(text.lines().count(), 1, "one line expected: {text:?}");
        text.trim_end().to_string()
    }
}

/// How a test calls the CLI: environment only (URL, user, key), standard error not a
/// terminal (plain progress lines).
struct Cli {
    env: Vec<(String, String)>,
}

impl Cli {
    fn of(world: &World) -> Cli {
        Cli::at(&world.server, &world.admin.user, &world.admin.key)
    }

    fn at(server: &Server, user: &str, key: &str) -> Cli {
        Cli {
            env: vec![
                ("HEADLOCK_URL".into(), server.url.clone()),
                ("HEADLOCK_USERNAME".into(), user.into()),
                ("HEADLOCK_API_KEY".into(), key.into()),
            ],
        }
    }

    fn run_with_input(&self, args: &[&str], input: Option<&[u8]>) -> Run {
        let mut child = Command::new(BIN)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run headlock");
        let writer = input.map(|data| {
            let mut stdin = child.stdin.take().unwrap();
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            })
        });
        let out = child.wait_with_output().expect("wait for headlock");
        if let Some(w) = writer {
            w.join().unwrap();
        }
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, None)
    }

    /// `headlock backup --group G --cluster C EXTRA... DIR`.
    fn backup(&self, (g, c): (&str, &str), extra: &[&str], dir: &Path) -> Run {
        let mut args = vec!["backup", "--group", g, "--cluster", c];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        self.run(&args)
    }

    /// `headlock restore` of `snapshot` into `dst`, which must then equal `src`.
    fn restore_matches(&self, (g, c): (&str, &str), snapshot: &str, src: &Path, dst: &Path) {
        self.run(&[
            "restore",
            "--group",
            g,
            "--cluster",
            c,
            "--snapshot",
            snapshot,
            "--target",
            dst.to_str().unwrap(),
        ])
        .ok();
        assert_same_tree(src, dst);
    }
}

/// A group and an encrypted replica set.
fn encrypted_cluster(world: &World) -> (String, String) {
    let g = world.group("snapshots");
    let c = world.replica_set(&g, "rs0");
    world.enable_encryption(&g, &c);
    (g, c)
}

/// A server, its CLI, an encrypted cluster, and [`sample_tree`] in `work/dbpath`.
struct Sample {
    world: World,
    cli: Cli,
    g: String,
    c: String,
    work: tempfile::TempDir,
    src: PathBuf,
}

fn sample() -> Sample {
    let sample = empty_sample("dbpath");
    sample_tree(&sample.src);
    sample
}

/// A server, its CLI, an encrypted cluster, and an empty `work/NAME` to fill.
fn empty_sample(name: &str) -> Sample {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_cluster(&world);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join(name);
    fs::create_dir(&src).unwrap();
    Sample {
        world,
        cli,
        g,
        c,
        work,
        src,
    }
}

/// Asserts that `run` failed with `code` in its standard error.
fn assert_refused(run: &Run, code: &str) {
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains(code), "{}", run.stderr);
}

/// Deterministic bytes that do not compress (xorshift).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn set_mtime(path: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

/// A dbpath-like tree: nested directories, a symbolic link, an empty file, a few MiB
/// of random bytes, modes 0600 and 0755, modification times years old.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("journal")).unwrap();
    fs::create_dir_all(root.join("diagnostic.data/nested/deeper")).unwrap();
    fs::write(
        root.join("collection-0.wt"),
        noise(3 * 1024 * 1024 + 123, 42),
    )
    .unwrap();
    fs::write(
        root.join("journal/WiredTigerLog.0000000001"),
        "{\"op\":\"i\",\"ns\":\"shop.orders\"}\n".repeat(20_000),
    )
    .unwrap();
    fs::write(root.join("mongod.lock"), "").unwrap();
    fs::write(
        root.join("diagnostic.data/nested/deeper/metrics"),
        noise(5000, 7),
    )
    .unwrap();
    fs::write(root.join("WiredTiger.turtle"), "turtle\n").unwrap();
    fs::set_permissions(
        root.join("WiredTiger.turtle"),
        Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(root.join("run.sh"), Permissions::from_mode(0o755)).unwrap();
    symlink("journal/WiredTigerLog.0000000001", root.join("current-log")).unwrap();
    symlink("/nonexistent/absolute/target", root.join("dangling")).unwrap();
    fs::set_permissions(root.join("journal"), Permissions::from_mode(0o700)).unwrap();
    let old = [
        ("collection-0.wt", 1_300_000_000),
        ("journal/WiredTigerLog.0000000001", 1_400_000_000),
        ("mongod.lock", 1_000_000_000),
        ("diagnostic.data/nested/deeper/metrics", 1_200_000_000),
        ("WiredTiger.turtle", 1_100_000_000),
        ("run.sh", 1_500_000_000),
        ("diagnostic.data/nested/deeper", 1_210_000_000),
        ("diagnostic.data/nested", 1_220_000_000),
        ("diagnostic.data", 1_230_000_000),
        ("journal", 1_410_000_000),
    ];
    for (p, t) in old {
        set_mtime(&root.join(p), t);
    }
}

/// Every entry under `root`, sorted: path, kind, size, mode and modification time
/// (files and directories), link target (links).
fn describe(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        for entry in fs::read_dir(root.join(&rel)).unwrap() {
            let name = entry.unwrap().file_name();
            let r = rel.join(&name);
            let p = root.join(&r);
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                pending.push(r.clone());
                format!("dir mode {:o} mtime {}", m.mode() & 0o7777, m.mtime())
            } else {
                format!(
                    "file size {} mode {:o} mtime {}",
                    m.len(),
                    m.mode() & 0o7777,
                    m.mtime()
                )
            };
            out.push(format!("{}: {what}", r.display()));
        }
    }
    out.sort();
    out
}

/// Asserts the same entries with the same metadata, and the same bytes in every file.
fn assert_same_tree(expected: &Path, got: &Path) {
    assert_eq!(describe(got), describe(expected));
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        for entry in fs::read_dir(expected.join(&rel)).unwrap() {
            let r = rel.join(entry.unwrap().file_name());
            let m = fs::symlink_metadata(expected.join(&r)).unwrap();
            if m.is_dir() {
                pending.push(r);
            } else if m.is_file() {
                assert!(
                    fs::read(expected.join(&r)).unwrap() == fs::read(got.join(&r)).unwrap(),
                    "{} differs",
                    r.display()
                );
            }
        }
    }
}

fn is_snapshot_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn accepts_a_tree_round_trip_with_sizes_modes_times_and_links() {
    let Sample {
        world,
        cli,
        g,
        c,
        work,
        src,
    } = sample();

    let backup = cli.run(&[
        "backup",
        "--group",
        &g,
        "--cluster",
        &c,
        src.to_str().unwrap(),
    ]);
    let id = backup.line();
    assert!(is_snapshot_id(&id), "{id:?}");
    // Plain progress lines (standard error is not a terminal), with the summary.
    assert!(
        backup.stderr.contains("headlock: backup: "),
        "{}",
        backup.stderr
    );
    assert!(backup.stderr.contains("new stored"), "{}", backup.stderr);

    // The service lists it, complete and encrypted.
    let listed = world.admin.expect(
        world
            .admin
            .get(&format!("/groups/{g}/clusters/{c}/snapshots/{id}")),
        200,
    );
    assert_eq!(listed["complete"], true, "{listed}");

    let dst = work.path().join("restored/rs0"); // missing: created
    cli.restore_matches((&g, &c), &id, &src, &dst);

    let verify = cli.run(&["verify", "--group", &g, "--cluster", &c, "--snapshot", &id]);
    assert_eq!(verify.line(), format!("{id} ok"));
}

#[test]
fn accepts_a_stream_round_trip_through_stdin_and_stdout() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_cluster(&world);
    let mut data = noise(2 * 1024 * 1024 + 17, 9);
    data.extend(
        "{\"_id\":1,\"name\":\"a document\"}\n"
            .repeat(30_000)
            .bytes(),
    );

    let id = cli
        .run_with_input(
            &["backup", "--group", &g, "--cluster", &c, "-"],
            Some(&data),
        )
        .line();
    assert!(is_snapshot_id(&id), "{id:?}");

    let restored = cli.run(&[
        "restore",
        "--group",
        &g,
        "--cluster",
        &c,
        "--snapshot",
        &id,
        "--target",
        "-",
    ]);
    restored.ok();
    assert_eq!(restored.stdout.len(), data.len());
    assert!(restored.stdout == data, "the bytes differ");

    // Into a directory: one file, named after the snapshot.
    let dir = tempfile::tempdir().unwrap();
    let r = cli.run(&[
        "restore",
        "--group",
        &g,
        "--cluster",
        &c,
        "--snapshot",
        &id,
        "--target",
        dir.path().to_str().unwrap(),
    ]);
    r.ok();
    assert!(r.stdout.is_empty());
    let file = dir.path().join(format!("snapshot-{id}.bin"));
    assert!(fs::read(&file).unwrap() == data);
    assert!(
        r.stderr.contains(&file.display().to_string()),
        "{}",
        r.stderr
    );
}

/// The storage a snapshot added, as the service reports it (`storageSizeBytes`).
fn stored_by(server: &Server, key: &str, (g, c): (&str, &str), snapshot: &str) -> u64 {
    let api = common::Api::new(server, "admin", key);
    let v = api.expect(
        api.get(&format!("/groups/{g}/clusters/{c}/snapshots/{snapshot}")),
        200,
    );
    v["parts"][0]["storageSizeBytes"]
        .as_u64()
        .expect("storageSizeBytes")
}

/// The upload path on the production stores: two nodes on one PostgreSQL database and
/// one S3 bucket. A first backup through one node; an unchanged re-backup through the
/// other (its parent's manifest read back from S3) that reads no file and sends
/// nothing; a change, backed up through the second node, that reads only the changed
/// file and stores only its new chunks; a compromise's re-encryption of them all,
/// after which the re-keyed parent still spares the next backup every read; every
/// snapshot restored through the node that did not take it, and verified.
#[test]
fn accepts_incremental_backups_through_two_nodes_on_postgresql_and_s3() {
    let deployment = Deployment::new(1);
    let (a, b) = (deployment.node("a"), deployment.node("b"));
    let api = deployment.api(&a);
    let g = api.create_group("snapshots");
    let c = api.create_encrypted_replica_set(&g, "rs0");
    let key = &deployment.key;
    let (cli_a, cli_b) = (Cli::at(&a, "admin", key), Cli::at(&b, "admin", key));
    let gc = (g.as_str(), c.as_str());
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("dbpath");
    fs::create_dir(&src).unwrap();
    sample_tree(&src);
    let wt = src.join("collection-2.wt");
    fs::write(&wt, noise(24 << 20, 97)).unwrap();

    let first = cli_a.backup(gc, &[], &src);
    let first_id = first.line();
    assert!(
        first.stderr.contains(" sent, 0 B already stored"),
        "{}",
        first.stderr
    );
    assert!(stored_by(&a, key, gc, &first_id) > 27_000_000);

    let unchanged = cli_b.backup(gc, &[], &src);
    let unchanged_id = unchanged.line();
    let out = &unchanged.stderr;
    assert!(out.contains("headlock: backup: 0 B read in "), "{out}");
    assert!(out.contains("; 0 B sent, "), "{out}");
    assert!(out.contains("; 0 B new stored"), "{out}");
    assert_eq!(stored_by(&b, key, gc, &unchanged_id), 0);
    cli_b.restore_matches(gc, &first_id, &src, &work.path().join("first"));
    cli_a.restore_matches(gc, &unchanged_id, &src, &work.path().join("unchanged"));

    // A checkpoint's worth of change: 64 KiB rewritten in the middle of the 24 MiB
    // file and 100 KB appended to it.
    let mut bytes = fs::read(&wt).unwrap();
    bytes[12 << 20..(12 << 20) + (64 << 10)].copy_from_slice(&noise(64 << 10, 99));
    bytes.extend_from_slice(&noise(100_000, 98));
    fs::write(&wt, &bytes).unwrap();
    set_mtime(&wt, 1_700_000_000);
    let changed = cli_b.backup(gc, &[], &src);
    let changed_id = changed.line();
    let out = &changed.stderr;
    assert!(
        out.contains(&format!(
            "headlock: backup: {} read in ",
            indicatif::HumanBytes(bytes.len() as u64)
        )),
        "{out}"
    );
    assert!(out.contains(", 6 unchanged files ("), "{out}");
    // What changed (164 KB) and the chunks around it (512 KiB on average, 4 MiB at
    // most), not the file.
    let added = stored_by(&b, key, gc, &changed_id);
    assert!(
        (164_000..8_000_000).contains(&added),
        "{added} bytes stored"
    );
    cli_a.restore_matches(gc, &changed_id, &src, &work.path().join("changed"));

    // A compromise: the job re-encrypts every snapshot under a new data key (new packs
    // and re-keyed manifests in S3). The parent is then read in its re-keyed form: an
    // unchanged re-backup still reads and sends nothing.
    let path = format!("/groups/{g}/backupConfigs/{c}/encryptionKey/compromised");
    let job = api.expect(api.post(&path, ""), 202);
    let job = job["id"].as_str().unwrap();
    let done = deployment.api(&b).finished_reencryption_job(&g, &c, job);
    assert_eq!(done["statusName"], "FINISHED", "{done}");
    assert_eq!(done["snapshotsDone"], 3, "{done}");
    let after = cli_a.backup(gc, &[], &src);
    let after_id = after.line();
    let out = &after.stderr;
    assert!(out.contains("headlock: backup: 0 B read in "), "{out}");
    assert!(out.contains("; 0 B sent, "), "{out}");
    cli_b.restore_matches(gc, &after_id, &src, &work.path().join("after"));
    let old = work.path().join("old");
    cli_a.restore_matches(gc, &first_id, &work.path().join("first"), &old);

    let verify = cli_a.run(&["verify", "--group", &g, "--cluster", &c]);
    verify.ok();
    let mut lines: Vec<String> = verify.text().lines().map(str::to_string).collect();
    lines.sort();
    let mut expected: Vec<String> = [first_id, unchanged_id, changed_id, after_id]
        .iter()
        .map(|id| format!("{id} ok"))
        .collect();
    expected.sort();
    assert_eq!(lines, expected);
}

#[test]
fn accepts_verify_of_every_snapshot_of_a_cluster() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_cluster(&world);
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("a"), noise(100_000, 1)).unwrap();
    let file = work.path().join("a");
    let mut ids: Vec<String> = (0..3)
        .map(|_| {
            cli.run(&[
                "backup",
                "-q",
                "--group",
                &g,
                "--cluster",
                &c,
                file.to_str().unwrap(),
            ])
            .line()
        })
        .collect();
    let verify = cli.run(&["verify", "--group", &g, "--cluster", &c]);
    verify.ok();
    let mut lines: Vec<String> = verify.text().lines().map(str::to_string).collect();
    lines.sort();
    ids.sort();
    assert_eq!(
        lines,
        ids.iter().map(|id| format!("{id} ok")).collect::<Vec<_>>()
    );
}

#[test]
fn accepts_quiet_backups_that_print_only_the_id() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_cluster(&world);
    let r = cli.run_with_input(
        &["backup", "--quiet", "--group", &g, "--cluster", &c, "-"],
        Some(b"small"),
    );
    assert!(is_snapshot_id(&r.line()));
    assert_eq!(r.stderr, "");
}

#[test]
fn rejects_backups_of_clusters_without_encryption() {
    let world = World::new();
    let cli = Cli::of(&world);
    let g = world.group("plain");
    let c = world.replica_set(&g, "rs-plain");
    let r = cli.run_with_input(
        &["backup", "--group", &g, "--cluster", &c, "-"],
        Some(&noise(1024 * 1024, 3)),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("CANNOT_BACKUP_ENCRYPTION_DISABLED"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    let list = world.admin.expect(
        world
            .admin
            .get(&format!("/groups/{g}/clusters/{c}/snapshots")),
        200,
    );
    assert_eq!(list["totalCount"], 0, "{list}");
}

#[test]
fn rejects_restores_into_a_non_empty_directory_without_force() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_cluster(&world);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    sample_tree(&src);
    let id = cli
        .run(&[
            "backup",
            "-q",
            "--group",
            &g,
            "--cluster",
            &c,
            src.to_str().unwrap(),
        ])
        .line();

    let dst = work.path().join("dst");
    fs::create_dir(&dst).unwrap();
    fs::write(dst.join("WiredTiger.turtle"), "stale").unwrap();
    let args = |force: bool| {
        let mut a = vec![
            "restore",
            "-q",
            "--group",
            &g,
            "--cluster",
            &c,
            "--snapshot",
            &id,
            "--target",
            dst.to_str().unwrap(),
        ];
        if force {
            a.push("--force");
        }
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let refused = cli.run(&args(false).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("not empty"), "{}", refused.stderr);
    assert_eq!(fs::read(dst.join("WiredTiger.turtle")).unwrap(), b"stale");

    cli.run(&args(true).iter().map(String::as_str).collect::<Vec<_>>())
        .ok();
    assert_same_tree(&src, &dst);
}

#[test]
fn rejects_unknown_snapshots_with_the_apis_error() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_cluster(&world);
    let dir = tempfile::tempdir().unwrap();
    let r = cli.run(&[
        "restore",
        "--group",
        &g,
        "--cluster",
        &c,
        "--snapshot",
        "5f0c0ffee0c0ffee0c0ffee0",
        "--target",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("(404 Not Found)"), "{}", r.stderr);
    let r = cli.run(&[
        "verify",
        "--group",
        &g,
        "--cluster",
        &c,
        "--snapshot",
        "5f0c0ffee0c0ffee0c0ffee0",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.text(), "5f0c0ffee0c0ffee0c0ffee0 NOT CHECKED\n");
}

/// Every pack file of the server, for tampering.
fn pack_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![data_dir.join("chunks")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else if p.components().any(|c| c.as_os_str() == "packs") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn rejects_damaged_snapshots_in_verify_and_restore() {
    let world = World::new();
    let cli = Cli::of(&world);
    let (g, c) = encrypted_cluster(&world);
    let data = noise(3 * 1024 * 1024, 11);
    let id = cli
        .run_with_input(
            &["backup", "-q", "--group", &g, "--cluster", &c, "-"],
            Some(&data),
        )
        .line();
    let packs = pack_files(&world.server.data_dir);
    assert!(
        !packs.is_empty(),
        "no pack under {}",
        world.server.data_dir.display()
    );
    for p in &packs {
        let mut bytes = fs::read(p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        fs::write(p, bytes).unwrap();
    }

    let verify = cli.run(&["verify", "--group", &g, "--cluster", &c]);
    assert_eq!(verify.code, 5, "{verify:?}");
    let line = verify.text();
    assert!(line.starts_with(&format!("{id} DAMAGED: chunk ")), "{line}");
    assert!(line.contains(" in pack ") && line.contains(&id), "{line}");

    let restored = cli.run(&[
        "restore",
        "-q",
        "--group",
        &g,
        "--cluster",
        &c,
        "--snapshot",
        &id,
        "--target",
        "-",
    ]);
    assert_ne!(
        restored.code, 0,
        "a damaged snapshot restored: {restored:?}"
    );
    assert!(
        restored.stdout != data,
        "the damaged snapshot came back whole"
    );
}

#[test]
fn accepts_an_unchanged_re_backup_that_sends_no_chunk_bytes() {
    let Sample {
        world,
        cli,
        g,
        c,
        work,
        src,
    } = sample();
    let backup = |extra: &[&str]| cli.backup((&g, &c), extra, &src);

    let first = backup(&[]);
    first.ok();
    assert!(
        first.stderr.contains(" sent, 0 B already stored"),
        "{}",
        first.stderr
    );
    assert!(!first.stderr.contains("; 0 B sent"), "{}", first.stderr);
    // Every chunk is known: nothing is sent, nothing new is stored.
    let second = backup(&[]);
    let id = second.line();
    assert!(second.stderr.contains("; 0 B sent, "), "{}", second.stderr);
    assert!(
        second.stderr.contains("; 0 B new stored"),
        "{}",
        second.stderr
    );
    // The tar path still works, and deduplicates against the same chunks.
    let plain = backup(&["--plain"]);
    let plain_id = plain.line();
    assert!(
        plain.stderr.contains("; 0 B new stored"),
        "{}",
        plain.stderr
    );
    assert!(!plain.stderr.contains(" sent, "), "{}", plain.stderr);

    for (n, snapshot) in [id, plain_id].iter().enumerate() {
        let dst = work.path().join(format!("restored-{n}"));
        cli.restore_matches((&g, &c), snapshot, &src, &dst);
    }
    // An ordinary backup never names a session the service no longer has (which the
    // audit trail records as a refusal).
    let refused = world.admin.events_of(&g, "SNAPSHOT_UPLOAD_REFUSED");
    assert!(refused.is_empty(), "{refused:?}");
    // Reading a parent, committing and restoring fail no chunk store call: an error
    // there is worth an alert (docs/metrics.md), so none may be routine. (Each read of
    // a parent used to count two: a probe for a re-keyed manifest, and a read past the
    // manifest's end.)
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("{}/metrics", world.server.url))
        .output()
        .unwrap();
    let metrics = String::from_utf8(out.stdout).unwrap();
    assert!(
        metrics.contains("headlock_chunk_store_duration_seconds_count{operation=\"head\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("headlock_chunk_store_errors_total{"),
        "{metrics}"
    );
}

#[test]
fn accepts_re_backups_that_read_only_files_changed_since_their_parent() {
    let Sample {
        world: _world,
        cli,
        g,
        c,
        work,
        src,
    } = sample();
    let changing = src.join("sizeStorer.wt");
    fs::write(&changing, noise(1000, 3)).unwrap();
    set_mtime(&changing, 1_600_000_000);
    let backup = |extra: &[&str]| {
        let run = cli.backup((&g, &c), extra, &src);
        let id = run.line();
        (id, run.stderr)
    };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let assert_restores = |snapshot: &str| {
        let dst = work.path().join(format!(
            "restored-{}",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        cli.restore_matches((&g, &c), snapshot, &src, &dst);
    };
    let total: u64 = 3 * 1024 * 1024 + 123 + 20_000 * 30 + 5000 + 7 + 17 + 1000;

    // The first backup has no parent: every file is read.
    let (first, out) = backup(&[]);
    assert!(out.contains(", 0 unchanged files (0 B) not read"), "{out}");
    assert!(!out.contains("headlock: backup: 0 B read"), "{out}");
    // Nothing changed: no file is opened, and the snapshot restores whole.
    let (second, out) = backup(&[]);
    assert!(out.contains("headlock: backup: 0 B read in "), "{out}");
    assert!(out.contains(", 7 unchanged files ("), "{out}");
    assert_restores(&second);

    // New content and a new mtime: only that file is read.
    fs::write(&changing, noise(1000, 4)).unwrap();
    set_mtime(&changing, 1_600_000_100);
    let (_, out) = backup(&[]);
    assert!(out.contains("headlock: backup: 1000 B read in "), "{out}");
    assert!(out.contains(", 6 unchanged files ("), "{out}");
    // Same size, and the old mtime put back (`touch -d`): the ctime moved, so it is
    // read again.
    fs::write(&changing, noise(1000, 5)).unwrap();
    set_mtime(&changing, 1_600_000_100);
    let (third, out) = backup(&[]);
    assert!(out.contains("headlock: backup: 1000 B read in "), "{out}");
    assert_restores(&third);

    // --force reads every file; --parent compares with the snapshot named.
    let (_, out) = backup(&["--force"]);
    assert!(
        out.contains(&format!(
            "headlock: backup: {} read in ",
            indicatif::HumanBytes(total)
        )),
        "{out}"
    );
    assert!(out.contains(", 0 unchanged files (0 B) not read"), "{out}");
    let (from_first, out) = backup(&["--parent", &first]);
    assert!(out.contains("headlock: backup: 1000 B read in "), "{out}");
    assert_restores(&from_first);
    // An unknown parent is the user's error, not a silent full read.
    let unknown = cli.backup((&g, &c), &["--parent", "0123456789abcdef01234567"], &src);
    assert_refused(&unknown, "SNAPSHOT_NOT_FOUND");
}

#[test]
fn accepts_a_backup_after_its_parents_chunks_were_collected() {
    let Sample {
        world,
        cli,
        g,
        c,
        work,
        src,
    } = sample();
    // Another source holding a copy of one file: its chunks outlive the parent.
    let other = work.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::copy(src.join("collection-0.wt"), other.join("copy.wt")).unwrap();
    let backup = |dir: &Path, extra: &[&str]| cli.backup((&g, &c), extra, dir);
    let shared: u64 = 3 * 1024 * 1024 + 123;
    let total: u64 = shared + 20_000 * 30 + 5000 + 7 + 17;
    backup(&other, &[]).line();
    let parent = backup(&src, &[]).line();
    let packs = pack_files(&world.server.data_dir).len();

    // The parent goes, and with it (collection runs on deletion) every chunk only it
    // used.
    let gone = world
        .admin
        .delete(&format!("/groups/{g}/clusters/{c}/snapshots/{parent}"));
    assert_eq!(gone.status, 202, "{}", gone.body);
    assert!(
        pack_files(&world.server.data_dir).len() < packs,
        "the parent's packs were not collected"
    );

    // The next backup has no parent, reads every file, re-sends every chunk the
    // cluster no longer has, and takes the shared ones as stored.
    let again = backup(&src, &[]);
    let id = again.line();
    let out = &again.stderr;
    assert!(
        out.contains(&format!(
            "headlock: backup: {} read in ",
            indicatif::HumanBytes(total)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "; {} sent, {} already stored, 0 unchanged files",
            indicatif::HumanBytes(total - shared),
            indicatif::HumanBytes(shared)
        )),
        "{out}"
    );
    let dst = work.path().join("restored");
    cli.restore_matches((&g, &c), &id, &src, &dst);
    let verify = cli.run(&["verify", "--group", &g, "--cluster", &c, "--snapshot", &id]);
    assert_eq!(verify.line(), format!("{id} ok"));

    // The deleted parent cannot be named as one.
    let named = backup(&src, &["--parent", &parent]);
    assert_refused(&named, "SNAPSHOT_NOT_FOUND");
}

#[test]
fn accepts_plain_progress_lines_with_files_bytes_totals_and_time_left() {
    let Sample {
        world: _world,
        mut cli,
        g,
        c,
        work: _work,
        src,
    } = sample();
    // A line every 0.1 s instead of every 5 s.
    cli.env
        .push(("HEADLOCK_PROGRESS_INTERVAL".into(), "0.1".into()));
    // Enough to read for a few lines.
    fs::write(src.join("collection-1.wt"), noise(32 << 20, 11)).unwrap();
    let files = 7;
    let run = cli.run(&[
        "backup",
        "--group",
        &g,
        "--cluster",
        &c,
        src.to_str().unwrap(),
    ]);
    run.ok();
    let err = &run.stderr;
    // Plain lines: no carriage return, no terminal escape.
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("headlock: backup: ") && !l.contains(" read in "))
        .collect();
    assert!(!lines.is_empty(), "no progress line: {err}");
    for line in &lines {
        // Files and bytes scanned, the rate, what was sent and skipped.
        let rest = line.strip_prefix("headlock: backup: ").unwrap();
        let (scanned, detail) = rest.split_once(" scanned").expect(line);
        assert!(scanned.contains(" files, "), "{line}");
        assert!(detail.contains("/s, "), "{line}");
        assert!(
            detail.contains(" sent, ") && detail.contains(" already stored, "),
            "{line}"
        );
        assert!(detail.contains(" unchanged files ("), "{line}");
        // Partly done with a known total: the time left.
        if let Some(p) = detail
            .strip_prefix(" (")
            .and_then(|d| d.split_once("%)"))
            .and_then(|(p, _)| p.parse::<u64>().ok())
        {
            assert!(scanned.contains(&format!(" of {files} files, ")), "{line}");
            if (1..100).contains(&p) {
                assert!(detail.contains(", ETA "), "{line}");
            }
        }
    }
    // The tree is sized long before the first line (0.1 s): every line has the totals.
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!(" of {files} files, "))),
        "{err}"
    );
    assert!(err.contains("; 7 files, 4 directories, 2 links"), "{err}");
}

/// `count` distinct files of 100 bytes (one chunk each), 100 a directory, under `root`.
fn tiny_files(root: &Path, count: u64, seed: u64) {
    for i in 0..count {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir(&dir).unwrap();
        }
        fs::write(dir.join(format!("f{i:05}")), noise(100, i + seed)).unwrap();
    }
}

/// A TCP proxy in front of `upstream` that forwards until the clients have sent
/// `budget` bytes in all, then cuts every connection and refuses new ones: a network
/// that fails mid-backup. Returns its `http://` URL.
fn cutting_proxy(upstream: &str, budget: u64) -> String {
    use std::io::Read;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            if sent.load(Ordering::SeqCst) >= budget {
                continue; // dropped: the connection closes at once
            }
            let server = TcpStream::connect(&upstream).unwrap();
            let (mut c_read, mut c_write) = (client.try_clone().unwrap(), client);
            let (mut s_read, mut s_write) = (server.try_clone().unwrap(), server);
            let sent = sent.clone();
            // Client to server, counted, cut when the budget is spent.
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let n = match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let before = sent.fetch_add(n as u64, Ordering::SeqCst);
                    let allowed = budget.saturating_sub(before).min(n as u64) as usize;
                    if s_write.write_all(&buf[..allowed]).is_err() || allowed < n {
                        break;
                    }
                }
                let _ = s_write.shutdown(Shutdown::Both);
                let _ = c_read.shutdown(Shutdown::Both);
            });
            // Server to client, as it comes.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(Shutdown::Both);
            });
        }
    });
    url
}

#[test]
fn accepts_a_re_run_of_a_backup_cut_off_mid_upload_that_sends_only_the_rest() {
    let Sample {
        world,
        cli,
        g,
        c,
        work,
        src,
    } = empty_sample("many");
    // 20,000 files of 100 distinct bytes, one chunk each: three rounds of at most
    // 8,192 chunks (the service's maxQueryIds), one at a time (`--connections 1`, so
    // that where the cut falls does not depend on timing). The first round (its
    // question, 256 KiB of ids, then about 1.1 MiB of chunks) ends before 1.5 MiB has
    // been sent; the cut at 2 MiB falls in the second round's upload, which the service
    // refuses whole, while the third round is being gathered.
    tiny_files(&src, 20_000, 1);
    let mut cut = Cli::of(&world);
    cut.env[0].1 = cutting_proxy(&world.server.url, 2 << 20);
    let failed = cut.backup((&g, &c), &["--connections", "1"], &src);
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("/chunks with ")
            && failed
                .stderr
                .contains("; nothing was committed (a re-run sends only what is missing)"),
        "{}",
        failed.stderr
    );
    let snapshots = world
        .admin
        .get(&format!("/groups/{g}/clusters/{c}/snapshots"));
    assert_eq!(snapshots.json()["totalCount"], 0, "nothing committed");

    // The re-run, on an intact network: the first round's 8,192 chunks are stored
    // (819,200 bytes), the rest is sent.
    let rerun = cli.backup((&g, &c), &[], &src);
    let id = rerun.line();
    assert!(
        rerun
            .stderr
            .contains("1.13 MiB sent, 800.00 KiB already stored"),
        "{}",
        rerun.stderr
    );
    cli.restore_matches((&g, &c), &id, &src, &work.path().join("restored"));
}

#[test]
fn sends_a_chunk_once_when_two_rounds_in_flight_both_lack_it() {
    let Sample {
        world: _world,
        cli,
        g,
        c,
        work,
        src,
    } = empty_sample("repeats");
    // 20,000 files of 100 bytes whose contents repeat every 8,192 files: the first
    // round (8,192 chunks, the service's maxQueryIds) holds each content once, and the
    // second round, all repeats, asks about its chunks on the second connection while
    // the first round's upload is in flight, so the service answers "missing" for
    // both. Each content must be sent once: 819,200 bytes.
    for i in 0..20_000u64 {
        let dir = src.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir(&dir).unwrap();
        }
        fs::write(dir.join(format!("f{i:05}")), noise(100, i % 8192 + 3)).unwrap();
    }
    let run = cli.backup((&g, &c), &[], &src);
    let id = run.line();
    assert!(
        run.stderr
            .contains("800.00 KiB sent, 1.13 MiB already stored"),
        "{}",
        run.stderr
    );
    cli.restore_matches((&g, &c), &id, &src, &work.path().join("restored"));
}

#[test]
fn accepts_a_tree_whose_rounds_fill_up_in_the_middle_of_a_hand_over() {
    let Sample {
        world: _world,
        cli,
        g,
        c,
        work,
        src,
    } = empty_sample("mixed");
    // A file of a few chunks first (handed over a few chunks at a time, by bytes),
    // then 20,000 one-chunk files (handed over 256 at a time): the 8,192nd chunk falls
    // inside a hand-over, and a round must stop there (the service answers about at
    // most 8,192 ids at once).
    fs::write(src.join("a-large"), noise(3 << 20, 5)).unwrap();
    tiny_files(&src, 20_000, 7);
    let id = cli.backup((&g, &c), &[], &src).line();
    cli.restore_matches((&g, &c), &id, &src, &work.path().join("restored"));
}
