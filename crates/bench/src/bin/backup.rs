//! `backup`: the backup and restore benchmark of issues 4 and 11, Headlock beside
//! restic, on the same input in the same run.
//!
//! ```text
//! cargo build --release -p headlock -p bench
//! ./target/release/backup [--dataset files] [--size-mib 1024]           # 1 GiB, 38 files
//! ./target/release/backup --dataset tree [--files 60000]                # ~3.5 GB, many files
//! ./target/release/backup --dataset tree --tree DIR                     # any real directory
//! ./target/release/backup --dataset dbpath [--size-mib 4096] [--link-mbit 1000]
//! ```
//!
//! 1. The input, in a temporary directory under `--dir` (same disk as the tools'
//!    repositories), deterministic from `--seed`: `files`, a `dbpath`-like tree of
//!    `--size-mib` MiB, half random bytes and half JSON documents
//!    ([`bench::dataset`]); `tree`, `--files` files of log-normal sizes around 8 KiB
//!    in nested directories with symbolic links, or the directory `--tree DIR` as it
//!    is (never changed); `dbpath`, `--size-mib` MiB of incompressible
//!    `collection-*.wt` and `index-*.wt` files of 1 MiB to 2 GiB ([`bench::trees`]).
//! 2. restic (Debian's package; installed with apt-get when missing and root):
//!    `restic init` in the temporary directory (`RESTIC_CACHE_DIR` there too), then
//!    timed: `restic cat config` (what every command pays before any data: start,
//!    scrypt key derivation, open), `restic backup DIR` twice (the second with
//!    nothing changed: restic finds its parent snapshot and skips unchanged files by
//!    their metadata), `restic backup --force DIR` (re-reads every file); for
//!    `dbpath`, a change step (a checkpoint's rewrites and appends,
//!    [`bench::trees::change_dbpath`]) and `restic backup DIR`, twice; then `restic
//!    restore latest --target OUT`. The change steps are then undone.
//! 3. Headlock: `headlock serve` (embedded KMIP server) in a temporary data directory,
//!    a user, a group, a replica set with `encryptionEnabled: true`; the CLI talks to
//!    it through a TCP proxy in this process ([`bench::proxy`], forwarding with
//!    `splice(2)`) that counts the bytes it sends; restores and verifies, which send
//!    only requests, go straight to the service. Timed: the real CLI, `headlock
//!    backup --group G --cluster C DIR --quiet` twice, then with `--force`; for
//!    `dbpath` the same two change steps, each followed by a backup, the second
//!    through the proxy held to `--link-mbit`
//!    (restic's figure for it is its local repository's); then `headlock restore
//!    --group G --cluster C --snapshot S --target OUT --quiet` of the last snapshot,
//!    then `headlock verify` of it (the service reads every chunk back).
//!    With an input of 10,000 files or more, the first restore starts no sooner than
//!    `--settle-secs` (370) after the benchmark did, and restic's restored tree stays
//!    until the end ([`Bench::settle`]).
//! 4. Both restored trees must equal the input (as last backed up) byte for byte.
//! 5. Prints MB/s (input bytes / wall time, MB = 10^6 bytes), peak memory and CPU
//!    time of each operation, the bytes the CLI sent and the bytes stored, and the
//!    ratios Headlock / restic against the targets of issue 11.
//!
//! Memory: each command's peak resident set comes from `getrusage(RUSAGE_CHILDREN)`
//! in a wrapper process whose only child it is ([`bench::measure`]); the server's
//! from `/proc/<pid>/status`: `VmHWM` (peak since start, cannot be reset) read after
//! each operation, so an operation that raised it has exactly that peak, and `VmRSS`
//! sampled every 20 ms for the others. Every measured operation starts after a
//! `sync()`, with a warm page cache (the input was just written; caches cannot be
//! dropped here). Temporary files and child processes are removed and killed on
//! success, error, panic, SIGINT and SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bench::daemon::Daemon;
use bench::dataset::{self, Spec};
use bench::measure::{self, Measured, Outcome, proc_cpu, proc_memory};
use bench::process::{self, Store};
use bench::proxy::Proxy;
use bench::rest::Api;
use bench::setup;
use bench::trees::{self, Changed, DbpathSpec, TreeSpec, TreeSummary};
use clap::{Parser, ValueEnum};
use serde_json::Value;

/// The user the benchmark creates.
const USERNAME: &str = "bench";
/// How often the server's memory is sampled while a command runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Free space needed on the temporary directory's file system, in input sizes: the
/// input, restic's restored copy (kept to the end: [`Bench::settle`]), one tool's
/// repository (at most the input; restic's is removed before Headlock runs) and
/// Headlock's restored copy.
const SPACE_FACTOR: u64 = 4;
/// Inputs of at least this many files wait `--settle-secs` before a restore.
const MANY_FILES: u64 = 10_000;
/// The restic repository's password (a throwaway repository in the temporary dir).
const RESTIC_PASSWORD: &str = "headlock-bench";
/// Peak memory target of a 10 GiB backup or restore, in bytes.
const MEMORY_TARGET: u64 = 256 << 20;
/// Most bytes the CLI may send for an incremental, in bytes changed (issue 11).
const SENT_TARGET: u64 = 3;

/// What the benchmark backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dataset {
    /// `--size-mib` MiB (default 1024), half random, half JSON, files of 32 MiB.
    Files,
    /// `--files` files (default 60,000, about 3.5 GB) of log-normal sizes around
    /// 8 KiB, nested directories, symbolic links; or `--tree DIR`.
    Tree,
    /// A MongoDB-like data directory of `--size-mib` MiB (default 4096) of
    /// incompressible `.wt` files, then a checkpoint-like change step, twice.
    Dbpath,
}

/// Backup and restore throughput and memory, Headlock beside restic.
#[derive(Debug, Parser)]
#[command(name = "backup", version)]
struct Args {
    /// The input.
    #[arg(long, value_enum, default_value_t = Dataset::Files)]
    dataset: Dataset,
    /// `files` and `dbpath`: size of the input in MiB (16 to 1048576) [default: 1024
    /// for files, 4096 for dbpath].
    #[arg(long, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    size_mib: Option<u64>,
    /// `tree`: number of files (100 to 10,000,000).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    files: u64,
    /// `tree`: back up this directory (read only) instead of a generated one.
    #[arg(long, value_name = "DIR")]
    tree: Option<PathBuf>,
    /// Seed of the input's random generators.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// `dbpath`: rate of the link for the second incremental backup, in Mbit/s (10^6
    /// bits; 0: no limit).
    #[arg(long, default_value_t = 1000)]
    link_mbit: u64,
    /// Directory in which the temporary directory is made [default: $TMPDIR or /tmp].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The headlock binary [default: `headlock` next to this executable].
    #[arg(long, value_name = "PATH")]
    headlock: Option<PathBuf>,
    /// Measure Headlock alone (e.g. for memory at 10 GiB); no ratios.
    #[arg(long)]
    no_restic: bool,
    /// An input of at least 10,000 files: seconds from the benchmark's start to the
    /// first restore. ext4 without a journal skips inodes freed in the last 6 minutes
    /// when it allocates one, and an earlier run may just have removed its trees
    /// (docs/benchmarks.md, "Restores of many files"). 0: no wait.
    #[arg(long, default_value_t = 370, value_parser = clap::value_parser!(u64).range(0..=3600))]
    settle_secs: u64,
}

fn main() -> ExitCode {
    if let Some(code) = measure::wrapper_main() {
        return code;
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backup benchmark: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One timed operation of one tool.
#[derive(Debug, Clone, Default)]
struct Row {
    /// What it was (`first backup`, ...).
    label: &'static str,
    /// Bytes of input at the time (MB/s are of these).
    bytes: u64,
    wall: Duration,
    /// The client's (the tool's) peak RSS.
    client_rss: u64,
    client_cpu: Duration,
    /// Headlock only: the server's peak RSS during the operation, and whether it is
    /// exact (VmHWM rose) or the largest 20 ms sample.
    server_rss: Option<(u64, bool)>,
    /// Headlock only: the server's VmHWM after the operation (peak since its start).
    server_hwm: Option<u64>,
    server_cpu: Option<Duration>,
    /// Headlock: bytes the CLI sent over its socket; restic: the data it added.
    sent: Option<u64>,
    /// Repository or data directory size after the operation (backups).
    stored: Option<u64>,
    /// What the tool said (data added, files skipped).
    note: String,
}

/// The operations, their labels, and which restic row each Headlock row compares with.
const FIRST: &str = "first backup";
const UNCHANGED: &str = "unchanged backup";
const FORCE: &str = "backup --force";
const INCREMENTAL: &str = "incremental";
const INCREMENTAL_LINK: &str = "incremental, link";
const INCREMENTAL_2: &str = "incremental 2";
const RESTORE: &str = "restore";
/// `headlock verify` of the restored snapshot (no restic row: restic's `check
/// --read-data` is not run).
const VERIFY: &str = "verify";

/// The restic row a Headlock row is compared with, and the target ratio if any.
fn pairing(dataset: Dataset, label: &str) -> Option<(&'static str, Option<f64>)> {
    let target = |files: f64, tree: f64, dbpath: Option<f64>| match dataset {
        Dataset::Files => Some(files),
        Dataset::Tree => Some(tree),
        Dataset::Dbpath => dbpath,
    };
    Some(match label {
        FIRST => (FIRST, target(3.0, 2.0, None)),
        UNCHANGED => (UNCHANGED, target(2.0, 2.0, None)),
        FORCE => (FORCE, None),
        INCREMENTAL => (INCREMENTAL, Some(2.0)),
        INCREMENTAL_LINK => (INCREMENTAL_2, None),
        RESTORE => (RESTORE, Some(2.0)),
        _ => return None,
    })
}

/// Everything the benchmark needs while it runs.
struct Bench {
    exe: PathBuf,
    stop: Arc<AtomicBool>,
    dataset: Dataset,
    input: PathBuf,
    /// `dbpath`: the seed of the change steps, and the undo file.
    changes: Option<(u64, PathBuf)>,
    /// When the benchmark started, and `--settle-secs` (zero for fewer than
    /// [`MANY_FILES`] files): see [`Bench::settle`].
    started: Instant,
    settle: Duration,
}

impl Bench {
    fn check(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(())
    }

    /// Before a restore of many files: waits until `--settle-secs` have passed since the
    /// benchmark started. On ext4 without a journal (this machine's root file system)
    /// the inode allocator passes over every free inode freed less than 60 s ago, or
    /// 360 s while its inode table block is dirty (`recently_deleted` in the kernel's
    /// fs/ext4/ialloc.c), reading that block for each. Creating a file dirties the block,
    /// so for 6 minutes after a removal of tens of thousands of files each new file can
    /// cost a scan of thousands of inodes. The benchmark itself removes no tree before a
    /// restore (restic's restored tree stays until the end); this wait is for the trees
    /// an earlier run removed just before this one started.
    fn settle(&self) -> anyhow::Result<()> {
        let until = self.started + self.settle;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        println!(
            "  waiting {:.0} s before the restore: ext4 passes over inodes freed in the last 6 minutes (--settle-secs)",
            left.as_secs_f64()
        );
        while Instant::now() < until {
            self.check()?;
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200)),
            );
        }
        Ok(())
    }

    /// Bytes of the input now.
    fn input_bytes(&self) -> anyhow::Result<u64> {
        Ok(dataset::tree_bytes(&self.input)?)
    }

    /// Runs `cmd` through the wrapper after a `sync()`, calling `sample` every 20 ms;
    /// fails unless it exits with 0.
    fn measure(
        &self,
        cmd: &Measured,
        sample: &mut dyn FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<Outcome> {
        self.check()?;
        nix::unistd::sync();
        let mut sample_error = None;
        let stop = self.stop.clone();
        let out = cmd.run(&self.exe, SAMPLE_EVERY, &mut || {
            if let Err(e) = sample() {
                sample_error = Some(e);
                return false;
            }
            !stop.load(Ordering::SeqCst)
        });
        if let Some(e) = sample_error {
            return Err(e.context(format!("while {} ran", cmd.name())));
        }
        let out = out?;
        ensure!(
            out.status.success(),
            "{} failed ({}): {}",
            cmd.name(),
            out.status,
            out.stderr
        );
        Ok(out)
    }

    /// Change step `n` (1 or 2) of the `dbpath`, printed.
    fn change(&self, n: u64) -> anyhow::Result<Changed> {
        let (seed, undo) = self
            .changes
            .as_ref()
            .context("a change step without dbpath")?;
        let c = trees::change_dbpath(&self.input, seed.wrapping_add(n), undo)
            .context("changing the dbpath")?;
        println!(
            "  change step {n}: {} files, {} bytes rewritten in runs of 32 KiB-1 MiB, {} appended ({:.1} MiB in all)",
            c.files,
            c.rewritten,
            c.appended,
            mib(c.bytes())
        );
        Ok(c)
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("locating this executable")?;
    let headlock = setup::headlock_bin(args.headlock.as_deref())?;
    ensure!(
        args.tree.is_none() || args.dataset == Dataset::Tree,
        "--tree DIR goes with --dataset tree"
    );
    let restic = if args.no_restic {
        None
    } else {
        Some(ensure_restic()?)
    };

    // A small runtime for the API calls, the signal watcher and the proxy.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let stop = measure::watch_signals(rt.handle()).context("watching SIGINT and SIGTERM")?;

    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    // Removed on drop: on return, error and panic.
    let tmp = tempfile::Builder::new()
        .prefix("headlock-bench-backup-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "backup benchmark: dataset {:?}, seed {}, in {} ({cores} cores)",
        args.dataset,
        args.seed,
        tmp.path().display()
    );
    let t = Instant::now();
    let flag = stop.clone();
    let stopping = move || flag.load(Ordering::SeqCst);
    let generated = tmp.path().join("input");
    let (input, changes, files) = match (args.dataset, &args.tree) {
        (Dataset::Files, _) => {
            let bytes = args.size_mib.unwrap_or(1024) << 20;
            setup::ensure_free_space(&parent, bytes, SPACE_FACTOR)?;
            let spec = Spec::new(bytes, args.seed);
            let s =
                dataset::generate(&generated, &spec, &stopping).context("generating the input")?;
            let kept = json_kept(&generated, &spec)?;
            println!(
                "input: {} bytes in {} files ({} MiB random in collection-*.wt, {} MiB JSON in export/*.json, zstd -1 keeps {:.1}% of the JSON), written in {:.1} s",
                s.bytes,
                s.files,
                s.random_bytes >> 20,
                s.json_bytes >> 20,
                kept * 100.0,
                t.elapsed().as_secs_f64()
            );
            (generated, None, s.files)
        }
        (Dataset::Tree, Some(dir)) => {
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("resolving {}", dir.display()))?;
            let s = trees::survey(&dir)?;
            setup::ensure_free_space(&parent, s.bytes, SPACE_FACTOR - 1)?;
            print_tree(&format!("{} (as it is)", dir.display()), &s, t.elapsed());
            (dir, None, s.files)
        }
        (Dataset::Tree, None) => {
            let spec = TreeSpec {
                files: args.files,
                seed: args.seed,
            };
            let (_, files, _) = spec.layout();
            let bytes = files.iter().map(|f| f.1).sum::<u64>();
            setup::ensure_free_space(&parent, bytes, SPACE_FACTOR)?;
            let s = trees::generate_tree(&generated, &spec, &stopping)
                .context("generating the input")?;
            print_tree("generated", &s, t.elapsed());
            (generated, None, s.files)
        }
        (Dataset::Dbpath, _) => {
            let bytes = args.size_mib.unwrap_or(4096) << 20;
            // Two change steps grow it by a few percent, and the undo file holds what
            // they overwrote.
            setup::ensure_free_space(&parent, bytes + bytes / 5, SPACE_FACTOR)?;
            let spec = DbpathSpec {
                bytes,
                seed: args.seed,
            };
            let s = trees::generate_dbpath(&generated, &spec, &stopping)
                .context("generating the input")?;
            print_tree("generated dbpath", &s, t.elapsed());
            (
                generated,
                Some((args.seed, tmp.path().join("undo"))),
                s.files,
            )
        }
    };

    let bench = Bench {
        exe,
        stop,
        dataset: args.dataset,
        input,
        changes,
        started,
        settle: if files >= MANY_FILES {
            Duration::from_secs(args.settle_secs)
        } else {
            Duration::ZERO
        },
    };
    let restic_rows = match &restic {
        Some((bin, version)) => {
            println!("\n{version}: init, backup, backup (unchanged), backup --force, ...");
            let rows = run_restic(&bench, bin, version, tmp.path())?;
            if let Some((_, undo)) = &bench.changes {
                trees::undo_changes(&bench.input, undo).context("undoing the change steps")?;
                println!("  change steps undone: the dbpath is as generated again");
            }
            Some(rows)
        }
        None => None,
    };
    let link = (args.link_mbit > 0).then(|| args.link_mbit * 1_000_000 / 8);
    println!(
        "\nheadlock ({}): serve, backup, backup (unchanged), backup --force, ...",
        headlock.display()
    );
    let (headlock_rows, changed) = run_headlock(&bench, &headlock, tmp.path(), &rt, link)?;
    print_results(
        &bench,
        restic_rows.as_ref(),
        &headlock_rows,
        changed.as_ref(),
        args.link_mbit,
    );
    rt.shutdown_background();
    Ok(())
}

fn print_tree(what: &str, s: &TreeSummary, took: Duration) {
    println!(
        "input: {what}: {} bytes in {} files ({:.1} KiB on average, the largest {:.1} MiB), {} directories, {} symbolic links, in {:.1} s",
        s.bytes,
        s.files,
        s.bytes as f64 / s.files.max(1) as f64 / 1024.0,
        mib(s.largest),
        s.dirs,
        s.symlinks,
        took.as_secs_f64()
    );
}

/// The restic binary and its version; installs Debian's package when missing (as root).
fn ensure_restic() -> anyhow::Result<(PathBuf, String)> {
    let version = || -> Option<String> {
        let out = Command::new("restic").arg("version").output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    if version().is_none() {
        ensure!(
            nix::unistd::Uid::effective().is_root(),
            "restic is not installed: install Debian's package (`sudo apt-get install -y restic`) and run again"
        );
        eprintln!("restic is missing: apt-get install -y restic");
        let status = Command::new("apt-get")
            .args(["install", "-y", "restic"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("running apt-get install -y restic")?;
        ensure!(
            status.success(),
            "apt-get install -y restic failed ({status})"
        );
    }
    let version = version().context("`restic version` failed after installing restic")?;
    let line = version.lines().next().unwrap_or_default();
    let short = line.split(" compiled").next().unwrap_or(line).to_string();
    Ok((PathBuf::from("restic"), short))
}

/// How much of the first JSON file zstd level 1 keeps.
fn json_kept(input: &Path, spec: &Spec) -> anyhow::Result<f64> {
    let Some((rel, _, _)) = spec
        .files()
        .into_iter()
        .find(|(_, _, k)| *k == dataset::Kind::Json)
    else {
        return Ok(0.0);
    };
    let path = input.join(rel);
    let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let packed = zstd::bulk::compress(&data, 1).context("zstd level 1")?;
    Ok(packed.len() as f64 / data.len().max(1) as f64)
}

fn restic_cmd(bin: &Path, repo: &Path, cache: &Path) -> Measured {
    Measured::new(bin)
        .clear_env_prefix("RESTIC_")
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", RESTIC_PASSWORD)
        .env("RESTIC_CACHE_DIR", cache)
}

/// restic's `--json` summary line (the last line of its standard output): a note,
/// and the bytes it added.
fn restic_summary(out: &Outcome) -> (String, Option<u64>) {
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(v) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message_type"] == "summary")
    else {
        return (String::new(), None);
    };
    let added = v["data_added"].as_u64();
    (
        format!(
            "{} new, {} changed, {} unmodified files; {:.1} MiB added",
            v["files_new"],
            v["files_changed"],
            v["files_unmodified"],
            mib(added.unwrap_or(0))
        ),
        added,
    )
}

/// What restic did.
struct ResticRun {
    version: String,
    rows: Vec<Row>,
    /// Wall time of a command that reads no data (`restic cat config`).
    fixed: Duration,
}

/// restic: init, backup twice, backup --force, (dbpath: change, backup, twice), restore.
fn run_restic(bench: &Bench, bin: &Path, version: &str, tmp: &Path) -> anyhow::Result<ResticRun> {
    let repo = tmp.join("restic-repo");
    let cache = tmp.join("restic-cache");
    let out_dir = tmp.join("restic-restore");
    let init = restic_cmd(bin, &repo, &cache).arg("init");
    bench.measure(&init, &mut || Ok(()))?;
    // What every restic command pays before any data: start, open the repository and
    // derive the key with the scrypt parameters `init` chose.
    let fixed = bench.measure(
        &restic_cmd(bin, &repo, &cache).args(["cat", "config"]),
        &mut || Ok(()),
    )?;
    println!(
        "  fixed cost of one command (`restic cat config`: start, scrypt, open): {:.2} s, {:.2} s CPU",
        fixed.usage.wall.as_secs_f64(),
        fixed.usage.cpu().as_secs_f64()
    );

    let backup = |label: &'static str, force: bool| -> anyhow::Result<Row> {
        let mut cmd = restic_cmd(bin, &repo, &cache).args(["backup", "--json", "--quiet"]);
        if force {
            cmd = cmd.arg("--force");
        }
        let cmd = cmd.arg(&bench.input);
        let bytes = bench.input_bytes()?;
        let out = bench.measure(&cmd, &mut || Ok(()))?;
        let (note, sent) = restic_summary(&out);
        let row = Row {
            label,
            bytes,
            wall: out.usage.wall,
            client_rss: out.usage.max_rss,
            client_cpu: out.usage.cpu(),
            sent,
            stored: Some(dataset::tree_bytes(&repo)?),
            note,
            ..Row::default()
        };
        println!("  {:<18}{}", label, brief(&row));
        Ok(row)
    };
    let mut rows = vec![
        backup(FIRST, false)?,
        backup(UNCHANGED, false)?,
        backup(FORCE, true)?,
    ];
    if bench.changes.is_some() {
        bench.change(1)?;
        rows.push(backup(INCREMENTAL, false)?);
        bench.change(2)?;
        rows.push(backup(INCREMENTAL_2, false)?);
    }

    let cmd = restic_cmd(bin, &repo, &cache)
        .args(["restore", "latest", "--target"])
        .arg(&out_dir);
    bench.settle()?;
    let bytes = bench.input_bytes()?;
    let out = bench.measure(&cmd, &mut || Ok(()))?;
    let restore = Row {
        label: RESTORE,
        bytes,
        wall: out.usage.wall,
        client_rss: out.usage.max_rss,
        client_cpu: out.usage.cpu(),
        ..Row::default()
    };
    println!("  {:<18}{}", RESTORE, brief(&restore));
    rows.push(restore);
    // restic restores the absolute path of what it backed up under the target.
    let rel = bench.input.strip_prefix("/").unwrap_or(&bench.input);
    let restored = out_dir.join(rel);
    let n = dataset::compare_trees(&bench.input, &restored)
        .with_context(|| format!("restic's restore in {}", restored.display()))?;
    println!("  restored tree identical to the input ({n} bytes compared)");
    // Free the space before Headlock runs. The restored tree stays until the end:
    // removing tens of thousands of files would slow the creation of files for the
    // next 6 minutes ([`Bench::settle`]), that is Headlock's restore.
    for dir in [&repo, &cache] {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(ResticRun {
        version: version.to_string(),
        rows,
        fixed: fixed.usage.wall,
    })
}

/// One line about a row, printed as the benchmark goes.
fn brief(r: &Row) -> String {
    let mut s = format!(
        "{:>8.1} MB/s  {:>7.2} s  client {:>6.1} MiB, {:.1} s CPU",
        mbps(r.bytes, r.wall),
        r.wall.as_secs_f64(),
        mib(r.client_rss),
        r.client_cpu.as_secs_f64()
    );
    if let (Some((rss, exact)), Some(cpu)) = (r.server_rss, r.server_cpu) {
        s += &format!(
            "; server {}{:.1} MiB, {:.1} s CPU",
            if exact { "" } else { "~" },
            mib(rss),
            cpu.as_secs_f64()
        );
    }
    if let (Some(sent), true) = (r.sent, r.server_rss.is_some()) {
        s += &format!("; sent {:.1} MiB", mib(sent));
    }
    if let Some(stored) = r.stored {
        s += &format!("; stored {:.1} MiB", mib(stored));
    }
    if !r.note.is_empty() {
        s += &format!(" ({})", r.note);
    }
    s
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

/// Headlock: serve, set up, the backups, restore; its rows, and what the first
/// change step changed (dbpath).
fn run_headlock(
    bench: &Bench,
    bin: &Path,
    tmp: &Path,
    rt: &tokio::runtime::Runtime,
    link: Option<u64>,
) -> anyhow::Result<(Vec<Row>, Option<Changed>)> {
    let data = tmp.join("headlock-data");
    let out_dir = tmp.join("headlock-restore");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let store = Store::data_dir(&data);
    let key = process::create_user(bin, store, USERNAME, "GLOBAL_OWNER")?;
    // Killed on drop: on return, on error and on panic.
    let server = process::serve(bin, store, "headlock serve")?;
    let result = headlock_phases(bench, bin, &server, &key, &data, &out_dir, rt, link);
    if bench.stop.load(Ordering::SeqCst) {
        return result;
    }
    result.with_context(|| format!("headlock's log ends with:\n{}", server.log_tail()))
}

#[allow(clippy::too_many_arguments)]
fn headlock_phases(
    bench: &Bench,
    bin: &Path,
    server: &Daemon,
    key: &str,
    data: &Path,
    out_dir: &Path,
    rt: &tokio::runtime::Runtime,
    link: Option<u64>,
) -> anyhow::Result<(Vec<Row>, Option<Changed>)> {
    let (group, cluster) = rt
        .block_on(async {
            let mut api = Api::connect(server.addr(), USERNAME, key).await?;
            api.encrypted_cluster("bench-backup", "rs0").await
        })
        .context("setting up a group and an encrypted replica set through the API")?;
    // The CLI's every connection goes through the proxy (no limit unless set).
    let proxy = rt
        .block_on(Proxy::start(server.addr()))
        .context("starting the proxy")?;
    let pid = server.pid();
    println!(
        "  server pid {pid} on {} (the CLI through a counting proxy on {}); group {group}, cluster {cluster}, encryption enabled; after start {:.1} MiB resident",
        server.addr(),
        proxy.addr(),
        mib(proc_memory(pid)?.rss)
    );
    // Backups go through the proxy (it counts what they send, and holds the link's rate
    // when asked); restores and verifies go straight to the service: they send only
    // requests, and the proxy's copy of every byte they receive would take CPU from
    // the same two cores during Headlock's runs only (restic's have no proxy). The
    // operation's label decides both its route and whether its bytes are counted.
    let through_proxy = |label: &str| label != RESTORE && label != VERIFY;
    let cli = |label: &str, sub: &str| {
        let to = if through_proxy(label) {
            proxy.addr()
        } else {
            server.addr()
        };
        process::cli(bin, to, USERNAME, key, sub, &group, &cluster)
    };
    // One operation with the server sampled: (outcome, row without `stored`); `sent`
    // only for an operation through the proxy.
    let phase = |label: &'static str, cmd: Measured| -> anyhow::Result<(Outcome, Row)> {
        let bytes = bench.input_bytes()?;
        let before = proc_memory(pid)?;
        let cpu_before = proc_cpu(pid)?;
        let sent_before = proxy.up();
        let mut peak = before.rss;
        let out = bench.measure(&cmd, &mut || {
            peak = peak.max(proc_memory(pid)?.rss);
            Ok(())
        })?;
        let after = proc_memory(pid).context("the server exited")?;
        let server_rss = if after.hwm > before.hwm {
            (after.hwm, true)
        } else {
            (peak.max(after.rss), false)
        };
        let row = Row {
            label,
            bytes,
            wall: out.usage.wall,
            client_rss: out.usage.max_rss,
            client_cpu: out.usage.cpu(),
            server_rss: Some(server_rss),
            server_hwm: Some(after.hwm),
            server_cpu: Some(proc_cpu(pid)?.saturating_sub(cpu_before)),
            sent: through_proxy(label).then(|| proxy.up() - sent_before),
            ..Row::default()
        };
        Ok((out, row))
    };
    let backup = |label: &'static str, force: bool| -> anyhow::Result<(Row, String)> {
        let mut cmd = cli(label, "backup");
        if force {
            cmd = cmd.arg("--force");
        }
        let (out, mut row) = phase(label, cmd.arg(&bench.input))?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        ensure!(
            id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "`headlock backup` printed {id:?} instead of a snapshot id"
        );
        row.stored = Some(dataset::tree_bytes(data)?);
        row.note = format!("snapshot {id}");
        println!("  {:<18}{}", label, brief(&row));
        Ok((row, id))
    };
    let mut rows = Vec::new();
    let mut last = String::new();
    for (label, force) in [(FIRST, false), (UNCHANGED, false), (FORCE, true)] {
        let (row, id) = backup(label, force)?;
        rows.push(row);
        last = id;
    }
    let mut changed = None;
    if bench.changes.is_some() {
        changed = Some(bench.change(1)?);
        rows.push(backup(INCREMENTAL, false)?.0);
        bench.change(2)?;
        proxy.set_rate(link);
        let result = backup(INCREMENTAL_LINK, false);
        proxy.set_rate(None);
        let (row, id) = result?;
        rows.push(row);
        last = id;
    }
    bench.settle()?;
    let (_, restore) = phase(
        RESTORE,
        cli(RESTORE, "restore")
            .args(["--snapshot", &last, "--target"])
            .arg(out_dir),
    )?;
    println!("  {:<18}{}", RESTORE, brief(&restore));
    rows.push(restore);
    let n = dataset::compare_trees(&bench.input, out_dir)
        .with_context(|| format!("headlock's restore in {}", out_dir.display()))?;
    println!("  restored tree identical to the input ({n} bytes compared)");
    let (_, verify) = phase(VERIFY, cli(VERIFY, "verify").args(["--snapshot", &last]))?;
    println!("  {:<18}{}", VERIFY, brief(&verify));
    rows.push(verify);
    let hwm = proc_memory(pid)?.hwm;
    println!("  server VmHWM at the end: {:.1} MiB", mib(hwm));
    Ok((rows, changed))
}

fn print_results(
    bench: &Bench,
    restic: Option<&ResticRun>,
    headlock: &[Row],
    changed: Option<&Changed>,
    link_mbit: u64,
) {
    println!(
        "\nresults: dataset {:?}; MB/s = input bytes (10^6 a MB) / wall time; memory = peak resident set",
        bench.dataset
    );
    if let Some(ResticRun {
        version,
        rows,
        fixed,
    }) = restic
    {
        println!(
            "\n{version} (every command pays {:.2} s before any data: start, scrypt key derivation, open)",
            fixed.as_secs_f64()
        );
        println!(
            "  {:<18} {:>9} {:>9} {:>11} {:>8} {:>11} {:>11}",
            "operation", "MB/s", "wall s", "peak MiB", "CPU s", "added MiB", "repo MiB"
        );
        for r in rows {
            println!(
                "  {:<18} {:>9.1} {:>9.2} {:>11.1} {:>8.1} {:>11} {:>11}",
                r.label,
                mbps(r.bytes, r.wall),
                r.wall.as_secs_f64(),
                mib(r.client_rss),
                r.client_cpu.as_secs_f64(),
                r.sent.map_or("-".into(), |s| format!("{:.1}", mib(s))),
                r.stored.map_or("-".into(), |s| format!("{:.1}", mib(s)))
            );
        }
    }
    println!("\nheadlock (CLI client + server)");
    println!(
        "  {:<18} {:>9} {:>9} {:>11} {:>11} {:>9} {:>8} {:>8} {:>10} {:>11}",
        "operation",
        "MB/s",
        "wall s",
        "client MiB",
        "server MiB",
        "srv HWM",
        "cli CPU",
        "srv CPU",
        "sent MiB",
        "data MiB"
    );
    for r in headlock {
        let (srss, exact) = r.server_rss.unwrap_or((0, false));
        println!(
            "  {:<18} {:>9.1} {:>9.2} {:>11.1} {:>11} {:>9.1} {:>8.1} {:>8.1} {:>10} {:>11}",
            r.label,
            mbps(r.bytes, r.wall),
            r.wall.as_secs_f64(),
            mib(r.client_rss),
            format!("{}{:.1}", if exact { "" } else { "~" }, mib(srss)),
            mib(r.server_hwm.unwrap_or(0)),
            r.client_cpu.as_secs_f64(),
            r.server_cpu.unwrap_or_default().as_secs_f64(),
            r.sent.map_or("-".into(), |s| format!("{:.1}", mib(s))),
            r.stored.map_or("-".into(), |s| format!("{:.1}", mib(s)))
        );
    }
    println!(
        "  (server MiB: the operation's peak, exact when it raised VmHWM, else ~ the largest 20 ms VmRSS sample;\n   srv HWM: VmHWM after the operation, the server's peak since it started;\n   sent MiB: bytes the CLI sent over its socket, requests and chunks, counted by the proxy;\n   restore and verify go straight to the service, not through the proxy)"
    );
    if bench.changes.is_some() {
        println!(
            "  (incremental, link: through the proxy held to {}; restic's row for it is its local repository's)",
            if link_mbit > 0 {
                format!("{link_mbit} Mbit/s each way")
            } else {
                "no limit".to_string()
            }
        );
    }
    let peak = headlock
        .iter()
        .map(|r| r.client_rss.max(r.server_rss.map_or(0, |s| s.0)))
        .max()
        .unwrap_or(0);
    let largest = headlock.iter().map(|r| r.bytes).max().unwrap_or(0);
    println!(
        "  largest peak of one process: {:.1} MiB  (target for a 10 GiB backup or restore <= {} MiB: {} at {} MiB)",
        mib(peak),
        MEMORY_TARGET >> 20,
        if peak <= MEMORY_TARGET {
            "met"
        } else {
            "MISSED"
        },
        largest >> 20
    );
    if let (Some(c), Some(row)) = (changed, headlock.iter().find(|r| r.label == INCREMENTAL)) {
        let sent = row.sent.unwrap_or(0);
        println!(
            "  incremental: sent {:.1} MiB for {:.1} MiB changed = {:.2}x  (target <= {SENT_TARGET}x: {})",
            mib(sent),
            mib(c.bytes()),
            sent as f64 / c.bytes().max(1) as f64,
            if sent <= SENT_TARGET * c.bytes() {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    let Some(ResticRun { rows, .. }) = restic else {
        return;
    };
    println!("\nratios headlock / restic (MB/s, i.e. restic's wall time / headlock's)");
    for h in headlock {
        let Some((peer, target)) = pairing(bench.dataset, h.label) else {
            continue;
        };
        let Some(r) = rows.iter().find(|r| r.label == peer) else {
            continue;
        };
        let ratio = r.wall.as_secs_f64() / h.wall.as_secs_f64();
        let verdict = match target {
            Some(t) => format!(
                "target >= {t:.0}: {}",
                if ratio >= t { "met" } else { "MISSED" }
            ),
            None => "no target".to_string(),
        };
        let against = if peer == h.label {
            String::new()
        } else {
            format!(" (against restic's {peer})")
        };
        println!("  {:<18} {:>6.2}   {verdict}{against}", h.label, ratio);
    }
    println!(
        "  (both tools skip unchanged files by their metadata in the unchanged backup, and re-read every file with --force)"
    );
}
