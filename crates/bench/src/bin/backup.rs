//! `backup`: the backup and restore benchmark of issue 4, Headlock beside restic, on
//! the same input in the same run.
//!
//! ```text
//! cargo build --release -p headlock
//! cargo run --release -p bench --bin backup [-- --size-mib 1024 --seed 1 --dir /tmp]
//! ```
//!
//! 1. Generates, in a temporary directory under `--dir` (same disk as the tools'
//!    repositories), a `dbpath`-like tree of `--size-mib` MiB, half random bytes and
//!    half JSON documents, deterministic from `--seed` ([`bench::dataset`]).
//! 2. restic (Debian's package; installed with apt-get when missing and root):
//!    `restic init` in the temporary directory (`RESTIC_CACHE_DIR` there too), then
//!    timed: `restic cat config` (what every command pays before any data: start,
//!    scrypt key derivation, open), `restic backup DIR` twice (the second with
//!    nothing changed: restic finds its parent snapshot and skips unchanged files by
//!    their metadata), `restic backup --force DIR` (re-reads every file, for
//!    reference) and `restic restore latest --target OUT`.
//! 3. Headlock: `headlock serve` (embedded KMIP server) in a temporary data directory,
//!    a user, a group, a replica set with `encryptionEnabled: true`; then timed: the
//!    real CLI, `headlock backup --group G --cluster C DIR --quiet` twice and
//!    `headlock restore --group G --cluster C --snapshot S --target OUT --quiet`.
//! 4. Both restored trees must equal the input byte for byte.
//! 5. Prints MB/s (input bytes / wall time, MB = 10^6 bytes), peak memory and CPU
//!    time of each operation, and the ratios Headlock / restic against the targets of
//!    DESIGN.md.
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
use bench::dataset::{self, Spec, Summary};
use bench::measure::{self, Measured, Outcome, proc_cpu, proc_memory};
use bench::process::{self, Store};
use bench::rest::Api;
use bench::setup;
use clap::Parser;
use serde_json::Value;

/// The user the benchmark creates.
const USERNAME: &str = "bench";
/// How often the server's memory is sampled while a command runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Free space needed on the temporary directory's file system, in input sizes: the
/// input, one tool's repository (at most the input) and its restored copy (restic's
/// are removed before Headlock runs).
const SPACE_FACTOR: u64 = 3;
/// The restic repository's password (a throwaway repository in the temporary dir).
const RESTIC_PASSWORD: &str = "headlock-bench";
/// Targets of DESIGN.md: first backup, unchanged backup, restore (ratios to restic).
const TARGETS: [f64; 3] = [3.0, 2.0, 2.0];
/// Peak memory target of a 10 GiB backup or restore, in bytes.
const MEMORY_TARGET: u64 = 256 << 20;

/// Backup and restore throughput and memory, Headlock beside restic.
#[derive(Debug, Parser)]
#[command(name = "backup", version)]
struct Args {
    /// Size of the input in MiB, half random and half JSON (16 to 1048576).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    size_mib: u64,
    /// Seed of the input's random generators.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory in which the temporary directory is made [default: $TMPDIR or /tmp].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The headlock binary [default: `headlock` next to this executable].
    #[arg(long, value_name = "PATH")]
    headlock: Option<PathBuf>,
    /// Measure Headlock alone (e.g. for memory at 10 GiB); no ratios.
    #[arg(long)]
    no_restic: bool,
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
    /// Repository or data directory size after the operation (backups).
    stored: Option<u64>,
    /// What the tool said (data added, files skipped).
    note: String,
}

/// Everything the benchmark needs while it runs.
struct Bench {
    exe: PathBuf,
    stop: Arc<AtomicBool>,
    input: PathBuf,
    input_bytes: u64,
}

impl Bench {
    fn check(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(())
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
}

fn run(args: Args) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let headlock = setup::headlock_bin(args.headlock.as_deref())?;
    let restic = if args.no_restic {
        None
    } else {
        Some(ensure_restic()?)
    };

    // A small runtime for the API calls and the signal watcher; idle while measuring.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let stop = measure::watch_signals(rt.handle()).context("watching SIGINT and SIGTERM")?;

    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let bytes = args.size_mib << 20;
    setup::ensure_free_space(&parent, bytes, SPACE_FACTOR)?;
    // Removed on drop: on return, error and panic.
    let tmp = tempfile::Builder::new()
        .prefix("headlock-bench-backup-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let input = tmp.path().join("input");

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "backup benchmark: {} MiB input, seed {}, in {} ({cores} cores)",
        args.size_mib,
        args.seed,
        tmp.path().display()
    );
    let t = Instant::now();
    let spec = Spec::new(bytes, args.seed);
    let flag = stop.clone();
    let summary = dataset::generate(&input, &spec, &|| flag.load(Ordering::SeqCst))
        .context("generating the input")?;
    let kept = json_kept(&input, &spec)?;
    print_input(&summary, kept, t.elapsed());

    let bench = Bench {
        exe,
        stop,
        input: input.clone(),
        input_bytes: summary.bytes,
    };
    let restic_rows = match &restic {
        Some((bin, version)) => {
            println!("\n{version}: init, backup, backup (unchanged), backup --force, restore");
            Some(run_restic(&bench, bin, version, tmp.path())?)
        }
        None => None,
    };
    println!(
        "\nheadlock ({}): serve, backup, backup (unchanged), restore",
        headlock.display()
    );
    let headlock_rows = run_headlock(&bench, &headlock, tmp.path(), &rt)?;
    print_results(&bench, restic_rows.as_ref(), &headlock_rows);
    rt.shutdown_background();
    Ok(())
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

fn print_input(s: &Summary, kept: f64, took: Duration) {
    println!(
        "input: {} bytes in {} files ({} MiB random in collection-*.wt, {} MiB JSON in export/*.json, zstd -1 keeps {:.1}% of the JSON), written in {:.1} s",
        s.bytes,
        s.files,
        s.random_bytes >> 20,
        s.json_bytes >> 20,
        kept * 100.0,
        took.as_secs_f64()
    );
}

fn restic_cmd(bin: &Path, repo: &Path, cache: &Path) -> Measured {
    Measured::new(bin)
        .clear_env_prefix("RESTIC_")
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", RESTIC_PASSWORD)
        .env("RESTIC_CACHE_DIR", cache)
}

/// restic's `--json` summary line (the last line of its standard output).
fn restic_summary(out: &Outcome) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(v) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message_type"] == "summary")
    else {
        return String::new();
    };
    format!(
        "{} new, {} unmodified files; {} MiB added",
        v["files_new"],
        v["files_unmodified"],
        v["data_added"].as_u64().unwrap_or(0) >> 20
    )
}

/// What restic did.
struct ResticRun {
    version: String,
    /// First backup, unchanged backup, restore, and the forced re-read.
    rows: [Row; 4],
    /// Wall time of a command that reads no data (`restic cat config`).
    fixed: Duration,
}

/// restic: init, backup twice, backup --force, restore.
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

    let backup = |force: bool| -> anyhow::Result<Row> {
        let mut cmd = restic_cmd(bin, &repo, &cache).args(["backup", "--json", "--quiet"]);
        if force {
            cmd = cmd.arg("--force");
        }
        let cmd = cmd.arg(&bench.input);
        let out = bench.measure(&cmd, &mut || Ok(()))?;
        Ok(Row {
            wall: out.usage.wall,
            client_rss: out.usage.max_rss,
            client_cpu: out.usage.cpu(),
            stored: Some(dataset::tree_bytes(&repo)?),
            note: restic_summary(&out),
            ..Row::default()
        })
    };
    let first = backup(false)?;
    println!("  first backup      {}", brief(&first, bench.input_bytes));
    let second = backup(false)?;
    println!("  unchanged backup  {}", brief(&second, bench.input_bytes));
    let forced = backup(true)?;
    println!("  backup --force    {}", brief(&forced, bench.input_bytes));

    let cmd = restic_cmd(bin, &repo, &cache)
        .args(["restore", "latest", "--target"])
        .arg(&out_dir);
    let out = bench.measure(&cmd, &mut || Ok(()))?;
    let restore = Row {
        wall: out.usage.wall,
        client_rss: out.usage.max_rss,
        client_cpu: out.usage.cpu(),
        ..Row::default()
    };
    println!("  restore           {}", brief(&restore, bench.input_bytes));
    // restic restores the absolute path of what it backed up under the target.
    let rel = bench.input.strip_prefix("/").unwrap_or(&bench.input);
    let restored = out_dir.join(rel);
    let n = dataset::compare_trees(&bench.input, &restored)
        .with_context(|| format!("restic's restore in {}", restored.display()))?;
    println!("  restored tree identical to the input ({n} bytes compared)");
    // Free the space (and the page cache) before Headlock runs.
    for dir in [&out_dir, &repo, &cache] {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(ResticRun {
        version: version.to_string(),
        rows: [first, second, restore, forced],
        fixed: fixed.usage.wall,
    })
}

/// One line about a row, printed as the benchmark goes.
fn brief(r: &Row, bytes: u64) -> String {
    let mut s = format!(
        "{:>8.1} MB/s  {:>7.2} s  client {:>6.1} MiB, {:.1} s CPU",
        mbps(bytes, r.wall),
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

/// Headlock: serve, set up, backup twice, restore; rows of the first backup, the
/// unchanged backup and the restore.
fn run_headlock(
    bench: &Bench,
    bin: &Path,
    tmp: &Path,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<[Row; 3]> {
    let data = tmp.join("headlock-data");
    let out_dir = tmp.join("headlock-restore");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let store = Store::data_dir(&data);
    let key = process::create_user(bin, store, USERNAME, "GLOBAL_OWNER")?;
    // Killed on drop: on return, on error and on panic.
    let server = process::serve(bin, store, "headlock serve")?;
    let result = headlock_phases(bench, bin, &server, &key, &data, &out_dir, rt);
    if bench.stop.load(Ordering::SeqCst) {
        return result;
    }
    result.with_context(|| format!("headlock's log ends with:\n{}", server.log_tail()))
}

fn headlock_phases(
    bench: &Bench,
    bin: &Path,
    server: &Daemon,
    key: &str,
    data: &Path,
    out_dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<[Row; 3]> {
    let (group, cluster) = rt
        .block_on(async {
            let mut api = Api::connect(server.addr(), USERNAME, key).await?;
            api.encrypted_cluster("bench-backup", "rs0").await
        })
        .context("setting up a group and an encrypted replica set through the API")?;
    let pid = server.pid();
    println!(
        "  server pid {pid} on {}; group {group}, cluster {cluster}, encryption enabled; after start {:.1} MiB resident",
        server.addr(),
        mib(proc_memory(pid)?.rss)
    );
    let cli = |sub: &str| process::cli(bin, server.addr(), USERNAME, key, sub, &group, &cluster);
    // One operation with the server sampled: (outcome, row without `stored`).
    let phase = |cmd: Measured| -> anyhow::Result<(Outcome, Row)> {
        let before = proc_memory(pid)?;
        let cpu_before = proc_cpu(pid)?;
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
            wall: out.usage.wall,
            client_rss: out.usage.max_rss,
            client_cpu: out.usage.cpu(),
            server_rss: Some(server_rss),
            server_hwm: Some(after.hwm),
            server_cpu: Some(proc_cpu(pid)?.saturating_sub(cpu_before)),
            ..Row::default()
        };
        Ok((out, row))
    };
    let backup = || -> anyhow::Result<(Row, String)> {
        let (out, mut row) = phase(cli("backup").arg(&bench.input))?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        ensure!(
            id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "`headlock backup` printed {id:?} instead of a snapshot id"
        );
        row.stored = Some(dataset::tree_bytes(data)?);
        row.note = format!("snapshot {id}");
        Ok((row, id))
    };
    let (first, _) = backup()?;
    println!("  first backup      {}", brief(&first, bench.input_bytes));
    let (second, snapshot) = backup()?;
    println!("  unchanged backup  {}", brief(&second, bench.input_bytes));
    let (_, restore) = phase(
        cli("restore")
            .args(["--snapshot", &snapshot, "--target"])
            .arg(out_dir),
    )?;
    println!("  restore           {}", brief(&restore, bench.input_bytes));
    let n = dataset::compare_trees(&bench.input, out_dir)
        .with_context(|| format!("headlock's restore in {}", out_dir.display()))?;
    println!("  restored tree identical to the input ({n} bytes compared)");
    let hwm = proc_memory(pid)?.hwm;
    println!("  server VmHWM at the end: {:.1} MiB", mib(hwm));
    Ok([first, second, restore])
}

fn print_results(bench: &Bench, restic: Option<&ResticRun>, headlock: &[Row; 3]) {
    let bytes = bench.input_bytes;
    let ops = ["first backup", "unchanged backup", "restore"];
    println!(
        "\nresults: {} bytes ({:.0} MB) of input; MB/s = input bytes / wall time; memory = peak resident set",
        bytes,
        bytes as f64 / 1e6
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
            "  {:<18} {:>9} {:>9} {:>11} {:>8} {:>11}",
            "operation", "MB/s", "wall s", "peak MiB", "CPU s", "repo MiB"
        );
        let labels = [ops[0], ops[1], ops[2], "backup --force"];
        for (label, r) in labels.iter().zip(rows) {
            println!(
                "  {:<18} {:>9.1} {:>9.2} {:>11.1} {:>8.1} {:>11}",
                label,
                mbps(bytes, r.wall),
                r.wall.as_secs_f64(),
                mib(r.client_rss),
                r.client_cpu.as_secs_f64(),
                r.stored.map_or("-".into(), |s| format!("{:.1}", mib(s)))
            );
        }
    }
    println!("\nheadlock (CLI client + server)");
    println!(
        "  {:<18} {:>9} {:>9} {:>11} {:>11} {:>9} {:>8} {:>8} {:>11}",
        "operation",
        "MB/s",
        "wall s",
        "client MiB",
        "server MiB",
        "srv HWM",
        "cli CPU",
        "srv CPU",
        "data MiB"
    );
    for (label, r) in ops.iter().zip(headlock) {
        let (srss, exact) = r.server_rss.unwrap_or((0, false));
        println!(
            "  {:<18} {:>9.1} {:>9.2} {:>11.1} {:>11} {:>9.1} {:>8.1} {:>8.1} {:>11}",
            label,
            mbps(bytes, r.wall),
            r.wall.as_secs_f64(),
            mib(r.client_rss),
            format!("{}{:.1}", if exact { "" } else { "~" }, mib(srss)),
            mib(r.server_hwm.unwrap_or(0)),
            r.client_cpu.as_secs_f64(),
            r.server_cpu.unwrap_or_default().as_secs_f64(),
            r.stored.map_or("-".into(), |s| format!("{:.1}", mib(s)))
        );
    }
    println!(
        "  (server MiB: the operation's peak, exact when it raised VmHWM, else ~ the largest 20 ms VmRSS sample;\n   srv HWM: VmHWM after the operation, the server's peak since it started)"
    );
    let peak = headlock
        .iter()
        .map(|r| r.client_rss.max(r.server_rss.map_or(0, |s| s.0)))
        .max()
        .unwrap_or(0);
    println!(
        "  largest peak of one process: {:.1} MiB  (target for a 10 GiB backup or restore <= {} MiB: {} at {} MiB)",
        mib(peak),
        MEMORY_TARGET >> 20,
        if peak <= MEMORY_TARGET {
            "met"
        } else {
            "MISSED"
        },
        bytes >> 20
    );
    if let Some(ResticRun { rows, .. }) = restic {
        println!("\nratios headlock / restic (MB/s)");
        for (i, label) in ops.iter().enumerate() {
            let ratio = rows[i].wall.as_secs_f64() / headlock[i].wall.as_secs_f64();
            println!(
                "  {:<18} {:>6.2}   target >= {:.0}: {}",
                label,
                ratio,
                TARGETS[i],
                if ratio >= TARGETS[i] { "met" } else { "MISSED" }
            );
        }
        let ratio = rows[3].wall.as_secs_f64() / headlock[1].wall.as_secs_f64();
        println!(
            "  {:<18} {:>6.2}   (headlock's unchanged backup against restic's backup --force, which re-reads every file as headlock does)",
            "unchanged/--force", ratio
        );
    }
}
